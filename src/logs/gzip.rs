//! Reading a gzip log as `gzip -d` does: member after member; bytes after the last complete
//! member that are no gzip member are ignored (and noted) instead of failing the whole file, and
//! an empty file is an empty log.

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::bufread::GzDecoder;

/// The magic bytes that start a gzip member.
const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The text of a gzip file, member after member.
pub(crate) struct Members<R: BufRead> {
    /// The member being read.
    decoder: Option<GzDecoder<R>>,
    /// The file between members.
    between: Option<R>,
    /// Members read to their end.
    complete: u32,
    /// Whether the member being read gave any text yet.
    started: bool,
    /// Raised when bytes after the last complete member were ignored.
    trailing: Arc<AtomicBool>,
}

impl<R: BufRead> Members<R> {
    /// Reads `reader`; `trailing` is raised if bytes after the last member are ignored.
    pub(crate) fn new(reader: R, trailing: Arc<AtomicBool>) -> Self {
        Self {
            decoder: None,
            between: Some(reader),
            complete: 0,
            started: false,
            trailing,
        }
    }

    /// Ends the text, ignoring what is left, once at least one member was complete.
    fn ignore_the_rest(&mut self) -> usize {
        self.trailing.store(true, Ordering::Relaxed);
        self.decoder = None;
        self.between = None;
        0
    }
}

impl<R: BufRead> Read for Members<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(decoder) = &mut self.decoder {
                match decoder.read(buffer) {
                    Ok(0) if !buffer.is_empty() => {
                        let decoder = self.decoder.take().expect("a member is being read");
                        self.between = Some(decoder.into_inner());
                        self.complete += 1;
                    }
                    Ok(n) => {
                        self.started = true;
                        return Ok(n);
                    }
                    // what follows the last complete member is no gzip member after all
                    Err(_) if self.complete > 0 && !self.started => {
                        return Ok(self.ignore_the_rest());
                    }
                    Err(error) => return Err(error),
                }
                continue;
            }
            let Some(reader) = &mut self.between else {
                return Ok(0);
            };
            let next = reader.fill_buf()?;
            if next.is_empty() {
                return Ok(0);
            }
            if self.complete > 0 && !next.starts_with(&MAGIC[..next.len().min(2)]) {
                return Ok(self.ignore_the_rest());
            }
            let reader = self.between.take().expect("between members");
            self.decoder = Some(GzDecoder::new(reader));
            self.started = false;
        }
    }
}

/// The gzip of `text` (for tests).
#[cfg(test)]
pub(crate) fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> (std::io::Result<String>, bool) {
        let trailing = Arc::new(AtomicBool::new(false));
        let mut text = String::new();
        let result = Members::new(bytes, trailing.clone())
            .read_to_string(&mut text)
            .map(|_| text);
        (result, trailing.load(Ordering::Relaxed))
    }

    #[test]
    fn members_are_read_in_turn_and_trailing_bytes_ignored_with_a_note() {
        let mut two = gzip("a\n");
        two.extend(gzip("b\n"));
        assert_eq!(read(&two).0.unwrap(), "a\nb\n");
        assert!(!read(&two).1);
        let mut garbage = gzip("a\n");
        garbage.extend(b"\x00\x00 not gzip at all");
        let (text, trailing) = read(&garbage);
        assert_eq!((text.unwrap().as_str(), trailing), ("a\n", true));
        // what looks like a member's start but is none: ignored too
        let mut fake = gzip("a\n");
        fake.extend(b"\x1f\x8b garbage");
        let (text, trailing) = read(&fake);
        assert_eq!((text.unwrap().as_str(), trailing), ("a\n", true));
        // empty: an empty log
        assert_eq!(read(b"").0.unwrap(), "");
        // no complete member at all: an error
        assert!(read(b"not gzip").0.is_err());
        let whole = gzip(&"x".repeat(10_000));
        assert!(read(&whole[..whole.len() / 2]).0.is_err());
    }
}
