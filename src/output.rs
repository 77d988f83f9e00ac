//! Writing files that others read: atomically (temporary file, then rename), and only when their
//! content changes, so that an unchanged file keeps its modification time and published diffs stay
//! small.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// `text` with every control character (C0, DEL, C1: tabs, line ends, NUL, escapes) written as
/// `%XX` per byte, so that it cannot break a TSV row, a YAML line or a terminal.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(escaped, "%{byte:02X}");
            }
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Bytes with every ASCII control byte (below 0x20, and 0x7F) written as `%XX`.
pub(crate) fn escape_control_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.iter().any(u8::is_ascii_control) {
        return Cow::Borrowed(bytes);
    }
    let mut escaped = Vec::with_capacity(bytes.len() + 8);
    for &byte in bytes {
        if byte.is_ascii_control() {
            escaped.extend_from_slice(format!("%{byte:02X}").as_bytes());
        } else {
            escaped.push(byte);
        }
    }
    Cow::Owned(escaped)
}

/// Testing only: writing a file of this name fails as on a full disk, after half of it is written.
pub(crate) const TEST_FULL_DISK_ENV: &str = "S3TALLY_TEST_FULL_DISK_FOR";

/// Writes `data` to `path` through a temporary file and a rename, creating parent directories.
/// On failure the temporary file is removed and the error names the file.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_through_temporary(path, data, None)
}

/// Like [`write_atomically`], for a file only its owner may read (0600): what the cache keeps.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_through_temporary(path, data, Some(0o600))
}

fn write_through_temporary(path: &Path, data: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let named = |error: std::io::Error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot write {}: {error}", path.display()),
        )
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(named)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if let Some(mode) = mode {
            options.mode(mode);
        }
        let mut file = options.open(&temporary)?;
        if fails_for_test(path) {
            file.write_all(&data[..data.len() / 2])?;
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        file.write_all(data)?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        // nothing half-written stays behind
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(named)
}

/// Whether the test switch says writing `path` fails.
fn fails_for_test(path: &Path) -> bool {
    std::env::var_os(TEST_FULL_DISK_ENV)
        .is_some_and(|name| path.file_name() == Some(name.as_os_str()))
}

/// Writes `content` unless the file already holds exactly it; whether it wrote.
pub(crate) fn write_if_changed(path: &Path, content: &str) -> std::io::Result<bool> {
    if std::fs::read(path).ok().as_deref() == Some(content.as_bytes()) {
        return Ok(false);
    }
    write_atomically(path, content.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape_controls("a b/é.nwb"), "a b/é.nwb");
        assert_eq!(
            escape_controls("a\tb\nc\0d\u{1b}[31m\u{85}"),
            "a%09b%0Ac%00d%1B[31m%C2%85"
        );
        assert_eq!(&*escape_control_bytes(b"k\te\x7f\xff"), b"k%09e%7F\xff");
    }

    #[test]
    fn unchanged_content_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.tsv");
        assert!(write_if_changed(&path, "x\n").unwrap());
        assert!(!write_if_changed(&path, "x\n").unwrap());
        assert!(write_if_changed(&path, "y\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "y\n");
        assert!(!dir.path().join("a/b.tsv.tmp").exists());
    }
}
