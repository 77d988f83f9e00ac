//! The cache directory: what lives where inside it, and the writer lock that lets one s3tally
//! write to it at a time.
//!
//! ```text
//! <cache>/s3tally.sqlite        the store (with -wal and -shm beside it)
//! <cache>/writer.lock           the writer's PID, locked while it runs
//! <cache>/stop.request          left by `s3tally stop`; the writer commits its batch and exits
//! <cache>/rejects.tsv           the first rejected lines of each log file, IPs masked
//! <cache>/regions-refresh.log   labels changed by `update regions --refresh`
//! <cache>/ranges/               downloaded range lists
//! <cache>/summaries/            the default output directory
//! ```
//!
//! The directory is private to its owner (0700) and the files s3tally keeps there are 0600.

mod lock;

use std::path::{Path, PathBuf};

pub(crate) use lock::{StopOutcome, WriterLock, stop_writer};

/// File name of the store.
const STORE_FILE: &str = "s3tally.sqlite";
/// File name of the writer lock.
const LOCK_FILE: &str = "writer.lock";
/// File name of the stop request.
const STOP_REQUEST: &str = "stop.request";
/// File name of the rejects report.
pub(crate) const REJECTS_REPORT: &str = "rejects.tsv";
/// File name of the refresh log.
pub(crate) const REFRESH_LOG: &str = "regions-refresh.log";

/// A cache directory whose location is known (it may not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cache {
    dir: PathBuf,
}

/// The cache directory cannot be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create cache directory {path} (choose another with --cache or S3TALLY_CACHE)")]
pub(crate) struct CreateError {
    /// The cache directory.
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

impl Cache {
    /// The cache in `dir`, which is not touched.
    pub(crate) fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Creates the directory if needed (the only place that does), private to its owner (0700:
    /// it holds raw IPs while they wait for a lookup). An existing cache (it holds a store) is
    /// made private too; another existing directory is not changed (it may be shared, or a home
    /// directory), and when others may enter it a warning says so (the files s3tally keeps there
    /// are 0600 anyway).
    pub(crate) fn create(&self) -> Result<(), CreateError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let error = |source| CreateError {
            path: self.dir.clone(),
            source,
        };
        if let Ok(meta) = std::fs::metadata(&self.dir) {
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() && mode & 0o077 != 0 && self.has_store() {
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(error)?;
            } else if meta.is_dir() && mode & 0o077 != 0 {
                eprintln!(
                    "warning: cache directory {} may be read by others (mode {mode:o}); its files are private, but `chmod 700` it to hide even their names",
                    self.dir.display()
                );
            }
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(error)
    }

    /// The directory itself.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store's database file.
    pub(crate) fn store_file(&self) -> PathBuf {
        self.dir.join(STORE_FILE)
    }

    /// Whether a store was created here.
    pub(crate) fn has_store(&self) -> bool {
        self.store_file().exists()
    }

    /// The writer lock file.
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// The stop request `s3tally stop` leaves for the writer.
    pub(crate) fn stop_request(&self) -> PathBuf {
        self.dir.join(STOP_REQUEST)
    }

    /// The rejects report.
    pub(crate) fn rejects_report(&self) -> PathBuf {
        self.dir.join(REJECTS_REPORT)
    }

    /// The log of labels changed by a refresh.
    pub(crate) fn refresh_log(&self) -> PathBuf {
        self.dir.join(REFRESH_LOG)
    }

    /// Where a downloaded range list is kept.
    pub(crate) fn range_list(&self, file_name: &str) -> PathBuf {
        self.dir.join("ranges").join(file_name)
    }

    /// The summaries directory: `given` when set, else `summaries` in the cache.
    pub(crate) fn summaries_dir(&self, given: Option<&Path>) -> PathBuf {
        given.map_or_else(|| self.dir.join("summaries"), Path::to_path_buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_under_the_directory_and_creation_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("a/b"));
        assert!(!cache.has_store());
        cache.create().unwrap();
        cache.create().unwrap();
        assert!(cache.dir().is_dir());
        assert_eq!(cache.store_file(), dir.path().join("a/b/s3tally.sqlite"));
        assert_eq!(
            cache.range_list("aws.json"),
            dir.path().join("a/b/ranges/aws.json")
        );
        assert_eq!(cache.summaries_dir(None), dir.path().join("a/b/summaries"));
        assert_eq!(
            cache.summaries_dir(Some(Path::new("/out"))),
            PathBuf::from("/out")
        );
    }
}
