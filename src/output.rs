//! Writing files that others read: atomically (temporary file, then rename), and only when their
//! content changes, so that an unchanged file keeps its modification time and published diffs stay
//! small.

use std::path::Path;

/// Writes `data` to `path` through a temporary file and a rename, creating parent directories.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, data)?;
    std::fs::rename(&temporary, path)
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
