//! One writer per cache: a lock file holding the writer's PID (an OS file lock, released even on
//! kill -9), and `s3tally stop`, which leaves a stop request in the cache that the writer watches,
//! and waits for the lock to be released.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Cache;

/// Errors taking the lock or stopping the writer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    /// Another process writes to this cache.
    #[error("cache {dir} is in use by s3tally PID {pid}; wait for it or run `s3tally stop`")]
    Busy {
        /// The cache directory.
        dir: PathBuf,
        /// The writer's PID as written in the lock file.
        pid: String,
    },
    /// The lock file cannot be created or read.
    #[error("cannot use lock file {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The writer did not stop in time.
    #[error(
        "the s3tally writing to this cache (PID {pid}) did not stop within {seconds} s; it stops after its current batch (the request stays)"
    )]
    Timeout {
        /// The writer's PID.
        pid: String,
        /// How long `stop` waited.
        seconds: u64,
    },
}

/// The held writer lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

/// Opens (creating) the lock file of a cache whose directory exists.
fn open_lock_file(cache: &Cache) -> Result<(File, PathBuf), LockError> {
    let path = cache.lock_file();
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    Ok((file, path))
}

fn read_pid(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match text.trim() {
        "" => "unknown".to_owned(),
        pid => pid.to_owned(),
    }
}

impl WriterLock {
    /// Takes the lock of a cache whose directory exists, or says which PID holds it.
    pub(crate) fn acquire(cache: &Cache) -> Result<Self, LockError> {
        let (mut file, path) = open_lock_file(cache)?;
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::Busy {
                    dir: cache.dir().to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file })
    }

    /// Takes the lock, waiting as long as another process holds it; `on_wait` is told its PID
    /// once.
    pub(crate) fn acquire_waiting(
        cache: &Cache,
        on_wait: impl FnOnce(&str),
    ) -> Result<Self, LockError> {
        let mut on_wait = Some(on_wait);
        loop {
            match Self::acquire(cache) {
                Err(LockError::Busy { pid, .. }) => {
                    if let Some(tell) = on_wait.take() {
                        tell(&pid);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }
}

/// What `stop` found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StopOutcome {
    /// No writer was running on the cache.
    NotRunning,
    /// The writer with this PID committed its batch and exited.
    Stopped(String),
}

/// Asks the writer of the cache to finish its current batch and exit, and waits until it has
/// released the lock. The request is a file in the cache that the writer watches: no signal is
/// sent, so no other process can be hit, even one with the same PID in another PID namespace
/// (a container sharing the cache with its host).
pub(crate) fn stop_writer(cache: &Cache, timeout: Duration) -> Result<StopOutcome, LockError> {
    if !cache.lock_file().exists() {
        return Ok(StopOutcome::NotRunning);
    }
    let (mut file, path) = open_lock_file(cache)?;
    match file.try_lock() {
        Ok(()) => return Ok(StopOutcome::NotRunning),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(source)) => return Err(LockError::Io { path, source }),
    }
    let pid = read_pid(&mut file);
    let request = cache.stop_request();
    crate::output::write_private(
        &request,
        format!("stop requested by PID {}\n", std::process::id()).as_bytes(),
    )
    .map_err(|source| LockError::Io {
        path: request.clone(),
        source,
    })?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::remove_file(&request);
                return Ok(StopOutcome::Stopped(pid));
            }
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                // the request stays: the writer stops at its next check
                return Err(LockError::Timeout {
                    pid,
                    seconds: timeout.as_secs(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(LockError::Io { path, source });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_told_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let lock = WriterLock::acquire(&cache).unwrap();
        let error = WriterLock::acquire(&cache).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("PID {}", std::process::id())),
            "{message}"
        );
        drop(lock);
        WriterLock::acquire(&cache).unwrap();
    }

    #[test]
    fn stop_without_writer_says_so() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            stop_writer(&Cache::at(dir.path()), Duration::from_secs(1)).unwrap(),
            StopOutcome::NotRunning
        );
    }
}
