//! Finding S3 access-log files under a directory, and opening one (plain or gzip) for reading in
//! bounded memory.
//!
//! A log file is named `[prefix]YYYY-MM-DD-hh-mm-ss-UNIQUE` (optionally `.gz`), in a flat layout or
//! the date-partitioned one (`.../YYYY/MM/DD/YYYY-MM-DD-...`); anything else is ignored and counted.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::gzip::Members;
use super::reader::{CHUNK_BYTES, Chunks};

/// What identifies a log file, so that it is extracted once: its name without `.gz`. S3 gives
/// every log object a globally unique name (`[prefix]YYYY-MM-DD-hh-mm-ss-UNIQUE`), so the same log
/// found under two paths, through a symlink, in a moved directory or as a local copy of the
/// bucket's object is one log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LogIdentity(pub String);

impl LogIdentity {
    /// The identity of the log at this path or key: its last segment without `.gz`.
    pub(crate) fn of(path_or_key: &str) -> Self {
        let name = path_or_key.rsplit('/').next().unwrap_or(path_or_key);
        LogIdentity(name.strip_suffix(".gz").unwrap_or(name).to_owned())
    }
}

/// An opened log file: its text as chunks, and a flag raised when trailing bytes of a gzip file
/// were ignored.
pub(crate) type Opened = (Chunks<Box<dyn Read + Send>>, Arc<AtomicBool>);

/// Where a log file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogPlace {
    /// On this machine.
    Local(PathBuf),
    /// An object of the bucket numbered `bucket` among the run's buckets, named `name`; its key
    /// is the file's `relative`.
    Object {
        /// The bucket's number (its connection) in the run.
        bucket: usize,
        /// The bucket's name.
        name: Arc<str>,
    },
}

/// A log file found under a log directory or in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogFile {
    /// Where it is.
    pub place: LogPlace,
    /// Path relative to the log directory, `/`-separated, or the object's key.
    pub relative: String,
    /// Size in bytes.
    pub size: u64,
}

impl std::fmt::Display for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.place {
            LogPlace::Local(path) => write!(f, "{}", path.display()),
            LogPlace::Object { name, .. } => write!(f, "s3://{name}/{}", self.relative),
        }
    }
}

impl LogFile {
    /// Whether the file is gzip-compressed (by its name).
    #[allow(
        clippy::case_sensitive_file_extension_comparisons,
        reason = "S3 names compressed logs `.gz`; `is_log_name` matches the same case"
    )]
    pub(crate) fn is_gzip(&self) -> bool {
        self.relative.ends_with(".gz")
    }

    /// The file's identity: its name without `.gz` (compressing a log after it was extracted
    /// does not make it new).
    pub(crate) fn identity(&self) -> LogIdentity {
        LogIdentity::of(&self.relative)
    }

    /// Opens a local file for reading as chunks of whole lines (see [`LogFile::read`]).
    pub(crate) fn open(&self) -> std::io::Result<Opened> {
        match &self.place {
            LogPlace::Local(path) => Ok(self.read(Box::new(std::fs::File::open(path)?))),
            LogPlace::Object { .. } => Err(std::io::Error::other(
                "an object is read through its bucket's downloads",
            )),
        }
    }

    /// Reads the file's bytes from `reader` as chunks of whole lines, decompressed, in bounded
    /// memory. Bytes after the last complete gzip member are ignored, as `gzip -d` does, and
    /// noted in the returned flag.
    pub(crate) fn read(&self, reader: Box<dyn Read + Send>) -> Opened {
        let trailing = Arc::new(AtomicBool::new(false));
        let reader: Box<dyn Read + Send> = if self.is_gzip() {
            Box::new(Members::new(
                std::io::BufReader::new(reader),
                trailing.clone(),
            ))
        } else {
            reader
        };
        (Chunks::new(reader, CHUNK_BYTES), trailing)
    }
}

/// A log file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedFile {
    /// Where it is, as shown.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

impl FailedFile {
    /// Failed files from (path, error) pairs.
    pub(crate) fn all(unreadable: Vec<(String, String)>) -> Vec<FailedFile> {
        unreadable
            .into_iter()
            .map(|(path, error)| FailedFile { path, error })
            .collect()
    }
}

/// Errors finding log files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiscoverError {
    /// The log directory does not exist or is not a directory.
    #[error("log directory {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
}

/// What a directory holds.
#[derive(Debug, Default)]
pub(crate) struct Discovery {
    /// Log files, sorted by relative path.
    pub files: Vec<LogFile>,
    /// Files that are not log files.
    pub ignored: u64,
    /// Entries that could not be read (path and error).
    pub unreadable: Vec<(String, String)>,
}

/// Whether a file name is an S3 access-log name.
pub(crate) fn is_log_name(name: &str) -> bool {
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\d{4}-\d{1,2}-\d{1,2}-\d{1,2}-\d{1,2}-\d{1,2}-[0-9A-Za-z]{1,64}(\.gz)?$")
            .expect("valid regex")
    });
    NAME.is_match(name)
}

/// Finds every log file under `root`, recursively.
pub(crate) fn discover(root: &Path) -> Result<Discovery, DiscoverError> {
    if !root.is_dir() {
        return Err(DiscoverError::NotADirectory(root.to_path_buf()));
    }
    let mut found = Discovery::default();
    for entry in walkdir::WalkDir::new(root).follow_links(true) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                let path = error.path().unwrap_or(root).to_path_buf();
                found
                    .unreadable
                    .push((path.display().to_string(), error.to_string()));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if !is_log_name(&name) {
            found.ignored += 1;
            continue;
        }
        let size = match entry.metadata() {
            Ok(meta) => meta.len(),
            Err(error) => {
                found
                    .unreadable
                    .push((entry.path().display().to_string(), error.to_string()));
                continue;
            }
        };
        let relative = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .components()
            .map(|part| part.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        found.files.push(LogFile {
            place: LogPlace::Local(entry.path().to_path_buf()),
            relative,
            size,
        });
    }
    found.files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(found)
}

/// Finds every log file under each directory, in order; the files of each directory sorted.
pub(crate) fn discover_all(roots: &[PathBuf]) -> Result<Discovery, DiscoverError> {
    let mut all = Discovery::default();
    for root in roots {
        let found = discover(root)?;
        all.files.extend(found.files);
        all.ignored += found.ignored;
        all.unreadable.extend(found.unreadable);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names() {
        for name in [
            "2020-01-01-05-06-35-0123456789ABCDEF",
            "2019-03-23-5-3-7-06F355AC7BE5C237",
            "2020-01-01-05-06-35-0123456789ABCDEF.gz",
            "logs-2020-01-01-05-06-35-0123456789ABCDEF",
        ] {
            assert!(is_log_name(name), "{name}");
        }
        for name in [
            "README.md",
            "2020-01-01",
            "2020-01-01-05-06-35-",
            "x.gz",
            "2020-01-01-05-06-35-ABC.txt",
        ] {
            assert!(!is_log_name(name), "{name}");
        }
    }

    #[test]
    fn finds_flat_nested_and_gzip_files_and_counts_others() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("2020/01/02")).unwrap();
        std::fs::write(root.join("2020-01-01-05-06-35-0123456789ABCDEF"), "a").unwrap();
        std::fs::write(
            root.join("2020/01/02/2020-01-02-00-00-00-FEDCBA9876543210"),
            "bb",
        )
        .unwrap();
        std::fs::write(
            root.join("2020/01/02/2020-01-02-01-00-00-FEDCBA9876543210.gz"),
            "c",
        )
        .unwrap();
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        let found = discover(root).unwrap();
        let names: Vec<_> = found.files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(
            names,
            [
                "2020-01-01-05-06-35-0123456789ABCDEF",
                "2020/01/02/2020-01-02-00-00-00-FEDCBA9876543210",
                "2020/01/02/2020-01-02-01-00-00-FEDCBA9876543210.gz",
            ]
        );
        assert_eq!(found.files[1].size, 2);
        assert_eq!(found.ignored, 1);
        assert!(discover(&root.join("missing")).is_err());
    }
}
