//! Parsing a chunk of a log file (whole lines) into its requests, with object keys, remote IPs and
//! user agents interned per chunk so that the writer resolves each once.

use rustc_hash::FxHashMap;

use crate::logs::excerpt;
use crate::logs::parser::{self, Line};
use crate::logs::reader::{CHUNK_BYTES, Chunk};
use crate::store::REJECTS_KEPT_PER_FILE;

/// One chunk's requests, before the store's ids are known.
#[derive(Debug, Default)]
pub(crate) struct ParsedChunk {
    /// Distinct object keys, indexed by `LocalRequest::key`.
    pub keys: Vec<Vec<u8>>,
    /// Distinct remote IPs as written, indexed by `LocalRequest::ip`.
    pub ips: Vec<Vec<u8>>,
    /// Distinct user agents as written, indexed by `LocalRequest::agent`.
    pub agents: Vec<Vec<u8>>,
    /// The GET-2xx requests.
    pub requests: Vec<LocalRequest>,
    /// Lines read.
    pub lines: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// The first rejected lines of the chunk: line number in the file, reason, masked excerpt.
    pub rejects: Vec<(u64, String, String)>,
}

/// A request whose key and IP are indexes into its file's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalRequest {
    /// Index into `ParsedChunk::keys`.
    pub key: u32,
    /// Index into `ParsedChunk::ips`.
    pub ip: u32,
    /// Index into `ParsedChunk::agents`.
    pub agent: u32,
    /// Seconds since the Unix epoch, UTC.
    pub time: i64,
    /// HTTP status.
    pub status: u16,
    /// Bytes sent.
    pub bytes_sent: u64,
}

/// Parses one chunk of a log file.
pub(crate) fn parse_chunk(chunk: &Chunk) -> ParsedChunk {
    let mut parsed = parse_lines(&chunk.data, chunk.first_line);
    for (line, beginning) in &chunk.overlong {
        parsed.lines += 1;
        parsed.rejected += 1;
        if parsed.rejects.len() < REJECTS_KEPT_PER_FILE {
            let reason = format!("line longer than {} MB", CHUNK_BYTES >> 20);
            parsed.rejects.push((*line, reason, excerpt(beginning)));
        }
    }
    parsed
}

/// Parses whole lines of a log file, the first being line `first_line`.
pub(crate) fn parse_lines(data: &[u8], first_line: u64) -> ParsedChunk {
    let mut parsed = ParsedChunk::default();
    let mut keys: FxHashMap<&[u8], u32> = FxHashMap::default();
    let mut ips: FxHashMap<&[u8], u32> = FxHashMap::default();
    let mut agents: FxHashMap<&[u8], u32> = FxHashMap::default();
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if data.is_empty() {
        return parsed;
    }
    // memchr finds the line ends many bytes at a time (a byte-by-byte split was a sixth of
    // extraction's time)
    let mut start = 0;
    let lines = memchr::memchr_iter(b'\n', body)
        .map(Some)
        .chain(std::iter::once(None))
        .map(|end| {
            let end = end.unwrap_or(body.len());
            let line = &body[start..end];
            start = end + 1;
            line
        });
    for (index, line) in lines.enumerate() {
        parsed.lines += 1;
        match parser::parse_line(line) {
            Line::Get(request) => {
                let key = intern(&mut keys, request.key);
                let ip = intern(&mut ips, request.remote_ip);
                let agent = intern(&mut agents, request.user_agent);
                parsed.requests.push(LocalRequest {
                    key,
                    ip,
                    agent,
                    time: request.time,
                    status: request.status,
                    bytes_sent: request.bytes_sent,
                });
            }
            Line::Skipped => {}
            Line::Rejected(reason) => {
                parsed.rejected += 1;
                if parsed.rejects.len() < REJECTS_KEPT_PER_FILE {
                    parsed.rejects.push((
                        first_line + index as u64,
                        reason.to_string(),
                        excerpt(line),
                    ));
                }
            }
        }
    }
    parsed.keys = invert(keys);
    parsed.ips = invert(ips);
    parsed.agents = invert(agents);
    parsed
}

/// The index of `value` in the table, adding it if new.
fn intern<'a>(table: &mut FxHashMap<&'a [u8], u32>, value: &'a [u8]) -> u32 {
    let next = u32::try_from(table.len()).expect("fewer than 4 billion distinct values per file");
    *table.entry(value).or_insert(next)
}

fn invert(interned: FxHashMap<&[u8], u32>) -> Vec<Vec<u8>> {
    let mut table = vec![Vec::new(); interned.len()];
    for (bytes, index) in interned {
        table[index as usize] = bytes.to_vec();
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_with_keys_interned_and_counted() {
        let line = |key: &str, ip: &str| {
            format!(
                "o b [01/Jan/2020:00:00:00 +0000] {ip} - ID REST.GET.OBJECT {key} \"GET /{key} HTTP/1.1\" 200 - 5 5 1 1 \"-\" \"-\" -\n"
            )
        };
        let text = format!(
            "{}{}{}garbage 192.0.2.9\n\n{}",
            line("a", "192.0.2.1"),
            line("b", "192.0.2.1"),
            line("a", "192.0.2.2"),
            line("a", "192.0.2.1").trim_end()
        );
        let parsed = parse_lines(text.as_bytes(), 1);
        assert_eq!(parsed.lines, 6);
        assert_eq!(parsed.requests.len(), 4);
        assert_eq!(parsed.keys.len(), 2);
        assert_eq!(parsed.ips.len(), 2);
        assert_eq!(parsed.agents, [b"-".to_vec()]);
        assert_eq!(parsed.rejected, 1);
        let (line_number, _, excerpt) = &parsed.rejects[0];
        assert_eq!(*line_number, 4);
        assert_eq!(excerpt, "garbage <ip>");
        assert_eq!(parse_lines(b"", 1).lines, 0);
        // a truncated remote IP is masked too
        let cut = parse_lines(b"o b [01/Jan/2020:00:00:00 +0000] 2001:db8:18f4", 1);
        assert_eq!(cut.rejects[0].2, "o b [01/Jan/2020:00:00:00 +0000] <ip>");
        // line numbers count from the chunk's first line
        assert_eq!(parse_lines(b"x\ny\n", 41).rejects[1].0, 42);
    }
}
