//! Reading a log file in bounded memory: plain or gzip, as chunks of whole lines of at most a few
//! megabytes each, whatever the file's size or how far it expands. A line longer than a chunk
//! (no real log line is) is not kept: it is reported by number, with its beginning, and skipped.

use std::io::Read;

/// Bytes of text in one chunk (a chunk ends at the last line end within this many bytes).
pub(crate) const CHUNK_BYTES: usize = 8 << 20;
/// How much of an overlong line is kept, to show where it starts.
const OVERLONG_KEPT: usize = 400;

/// Whole lines of a log file, and where they start.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// The text: whole lines, each ended by `\n` except perhaps the file's last.
    pub data: Vec<u8>,
    /// The line number (from 1) of the chunk's first line.
    pub first_line: u64,
    /// Lines longer than a chunk met just before this chunk's text: line number and beginning.
    pub overlong: Vec<(u64, Vec<u8>)>,
}

/// A log file's text as chunks of whole lines.
pub(crate) struct Chunks<R> {
    reader: R,
    /// Read but not yet handed out (the beginning of a line).
    carry: Vec<u8>,
    /// The number of the next line to hand out.
    next_line: u64,
    chunk_bytes: usize,
    done: bool,
}

impl<R: Read> Chunks<R> {
    /// Chunks of at most `chunk_bytes` of `reader`'s text.
    pub(crate) fn new(reader: R, chunk_bytes: usize) -> Self {
        Self {
            reader,
            carry: Vec::new(),
            next_line: 1,
            chunk_bytes: chunk_bytes.max(1),
            done: false,
        }
    }

    /// Reads until `buffer` holds `want` bytes or the text ends; whether it ended. The buffer
    /// grows with what is read (a small file never costs a chunk's worth of memory).
    fn fill(&mut self, buffer: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
        let missing = want.saturating_sub(buffer.len());
        if missing == 0 {
            return Ok(false);
        }
        let read = (&mut self.reader)
            .take(missing as u64)
            .read_to_end(buffer)?;
        Ok(read < missing)
    }

    /// Drops text up to and including the next line end; the bytes after it stay in `buffer`.
    fn skip_line(&mut self, buffer: &mut Vec<u8>) -> std::io::Result<()> {
        loop {
            if let Some(end) = memchr::memchr(b'\n', buffer) {
                buffer.drain(..=end);
                return Ok(());
            }
            buffer.clear();
            if self.fill(buffer, self.chunk_bytes)? {
                self.done = true;
                return Ok(());
            }
        }
    }

    /// The next chunk, or `None` at the end of the text.
    pub(crate) fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        let mut overlong = Vec::new();
        loop {
            if self.done && self.carry.is_empty() {
                return Ok((!overlong.is_empty()).then(|| Chunk {
                    data: Vec::new(),
                    first_line: self.next_line,
                    overlong,
                }));
            }
            let mut buffer = std::mem::take(&mut self.carry);
            if !self.done && self.fill(&mut buffer, self.chunk_bytes)? {
                self.done = true;
            }
            if buffer.is_empty() && self.done {
                continue;
            }
            let last_end = memchr::memrchr(b'\n', &buffer[..buffer.len().min(self.chunk_bytes)]);
            let cut = match last_end {
                _ if self.done && buffer.len() <= self.chunk_bytes => buffer.len(),
                Some(end) => end + 1,
                None => {
                    // one line longer than a chunk: keep its beginning, skip the rest
                    let beginning = buffer[..OVERLONG_KEPT.min(buffer.len())].to_vec();
                    overlong.push((self.next_line, beginning));
                    self.next_line += 1;
                    self.skip_line(&mut buffer)?;
                    self.carry = buffer;
                    continue;
                }
            };
            self.carry = buffer.split_off(cut);
            let first_line = self.next_line;
            self.next_line += memchr::memchr_iter(b'\n', &buffer).count() as u64;
            return Ok(Some(Chunk {
                data: buffer,
                first_line,
                overlong,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(text: &[u8], size: usize) -> Vec<(u64, String, Vec<u64>)> {
        let mut reader = Chunks::new(text, size);
        let mut out = Vec::new();
        while let Some(chunk) = reader.next_chunk().unwrap() {
            let overlong = chunk.overlong.iter().map(|(line, _)| *line).collect();
            out.push((
                chunk.first_line,
                String::from_utf8(chunk.data).unwrap(),
                overlong,
            ));
        }
        out
    }

    #[test]
    fn chunks_hold_whole_lines_and_count_them() {
        assert_eq!(
            chunks(b"aa\nbb\ncc\n", 6),
            [(1, "aa\nbb\n".into(), vec![]), (3, "cc\n".into(), vec![])]
        );
        // the last line without an end
        assert_eq!(chunks(b"aa\nbb", 100), [(1, "aa\nbb".into(), vec![])]);
        assert!(chunks(b"", 10).is_empty());
        // concatenated, the chunks are the text
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("line {i}\n"));
        }
        let joined: String = chunks(text.as_bytes(), 64)
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn an_overlong_line_is_skipped_and_named() {
        let text = format!("ok\n{}\nnext\n{}", "x".repeat(50), "y".repeat(30));
        let got = chunks(text.as_bytes(), 10);
        // line 2 (50 x) and line 4 (30 y, at the end, no line end) are too long for a chunk of 10
        assert_eq!(
            got,
            [
                (1, "ok\n".into(), vec![]),
                (3, "next\n".into(), vec![2]),
                (5, String::new(), vec![4]),
            ]
        );
        let mut reader = Chunks::new(text.as_bytes(), 10);
        reader.next_chunk().unwrap();
        let second = reader.next_chunk().unwrap().unwrap();
        // what was read of it when it was found too long: one chunk's worth
        assert_eq!(second.overlong[0].1, vec![b'x'; 10]);
    }
}
