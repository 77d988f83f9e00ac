//! The store: one `SQLite` database in the cache directory holding objects, requesters (salted
//! indexes; raw IPs only in the pending-lookup list), per-object bins, processed-file records,
//! rejected lines, and what later stages keep between runs. A batch is written in one
//! transaction, so a kill loses at most the batch in flight.
//!
//! One file per family of tables: [`extraction`] (objects, bins, files, rejects),
//! [`requesters`] (requesters, labels, raw IPs), [`tallies`] (saved figures, stage state),
//! [`coordinates`] (geocoder answers), [`validation`] (checks run). Every `SQLite` error crosses
//! into [`StoreError`] in one place, [`Store::with`].

mod coordinates;
mod extraction;
mod ids;
mod requesters;
mod schema;
mod tallies;
mod validation;

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction};

use crate::cache::Cache;

pub(crate) use extraction::{Batch, FileRecord, RejectRecord, StoreCounts};
pub(crate) use ids::{BatchNumber, LabelRound, ObjectId, RequesterId};
pub(crate) use schema::VERSION as SCHEMA_VERSION;

/// Checkpoints tried by [`Store::erase`] (each waits for readers up to the busy timeout).
const ERASE_ATTEMPTS: u32 = 3;

/// At most this many rejected lines are kept in full per file.
pub(crate) const REJECTS_KEPT_PER_FILE: usize = 5;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// `SQLite` failed.
    #[error("store {path}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The store was built with another salt.
    #[error(
        "the store in {dir} was built with another salt (fingerprint {stored}, this salt has {given}); \
         use the original salt (S3TALLY_SALT or the salt.key file) or another --cache: mixing salts would split every requester in two"
    )]
    SaltMismatch {
        /// The cache directory.
        dir: PathBuf,
        /// Fingerprint kept in the store.
        stored: String,
        /// Fingerprint of the salt given now.
        given: String,
    },
    /// The store was written by a newer s3tally.
    #[error(
        "the store in {dir} has schema version {found}, newer than this s3tally ({SCHEMA_VERSION}); upgrade s3tally"
    )]
    NewerSchema {
        /// The cache directory.
        dir: PathBuf,
        /// The version found.
        found: i64,
    },
    /// Deleted data could not be erased from the write-ahead log because of readers.
    #[error(
        "the raw IPs just deleted could not be erased from {path}-wal: another process is reading the store (s3tally dump or status, a backup); they stay on disk until it ends: run `s3tally update regions` again then"
    )]
    Readers {
        /// The database file.
        path: PathBuf,
    },
    /// The store file cannot be made private.
    #[error("cannot create {path} private to its owner")]
    Private {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A reader cannot read the store: it may not create the -shm file and the log holds changes.
    #[error(
        "cannot read {path} without writing beside it: the cache is read-only for this user (or on a read-only file system) and {log} holds changes not yet moved into the store; run this as a user who may write the cache, or once the last writer has finished (it moves them at its end)"
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// The write-ahead log.
        log: PathBuf,
    },
    /// The store file is empty: cut short, never a new store.
    #[error(
        "{path} is empty (cut short by a full disk or a copy?): restore it from a backup, or delete it and extract the logs again with the same salt"
    )]
    Empty {
        /// The database file.
        path: PathBuf,
    },
    /// The file is not an s3tally store, or it is damaged.
    #[error(
        "{path} is not an s3tally store or is damaged ({what}): restore it from a backup, or delete it and extract the logs again with the same salt"
    )]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// What `SQLite` said.
        what: String,
    },
    /// The schema version written in the store is not a number.
    #[error(
        "{path} holds the schema version `{found}`, which is not a number: the store was changed by something else than s3tally; restore it from a backup"
    )]
    BadVersion {
        /// The database file.
        path: PathBuf,
        /// What was found.
        found: String,
    },
    /// Nothing has been extracted into this cache yet.
    #[error("no store in {0} yet: run `s3tally extract LOG_DIR` first")]
    Missing(PathBuf),
}

/// The open store.
pub(crate) struct Store {
    conn: Connection,
    dir: PathBuf,
    path: PathBuf,
}

impl Store {
    /// Opens the store of a cache whose directory exists, for writing, creating the schema (or
    /// bringing an older one up to date) if needed.
    pub(crate) fn open(cache: &Cache) -> Result<Self, StoreError> {
        let path = cache.store_file();
        refuse_empty(&path)?;
        if !path.exists() {
            create(&path)?;
        }
        // private to its owner (SQLite gives its -wal and -shm files the database's permissions)
        make_private(&path).map_err(|source| StoreError::Private {
            path: path.clone(),
            source,
        })?;
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let store = Self {
            conn,
            dir: cache.dir().to_path_buf(),
            path,
        };
        store
            .with(|conn| conn.execute_batch(schema::WRITER_PRAGMAS))
            .map_err(|error| store.not_a_store(error))?;
        store.with(|conn| conn.execute_batch(schema::TABLES))?;
        match store.check_schema_version()? {
            Some(found) if found < SCHEMA_VERSION => {
                store.with(|conn| schema::migrate(conn, found))?;
            }
            Some(_) => {}
            None => store.set_meta("schema_version", &SCHEMA_VERSION.to_string())?,
        }
        Ok(store)
    }

    /// Opens an existing store read-only (`dump`, `status`); an error if there is none.
    pub(crate) fn open_existing(cache: &Cache) -> Result<Self, StoreError> {
        if !cache.has_store() {
            return Err(StoreError::Missing(cache.dir().to_path_buf()));
        }
        let path = cache.store_file();
        refuse_empty(&path)?;
        match Self::open_reader(cache, &path, false) {
            Err(StoreError::Sqlite { source, .. })
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) =>
            {
                // a reader may not create the -shm file (a read-only file system, a directory
                // it may not write): with nothing in the write-ahead log, the store is read as
                // an immutable file
                let mut log = path.as_os_str().to_owned();
                log.push("-wal");
                let log = PathBuf::from(log);
                if std::fs::metadata(&log).is_ok_and(|meta| meta.len() > 0) {
                    return Err(StoreError::ReadOnly { path, log });
                }
                Self::open_reader(cache, &path, true)
            }
            other => other,
        }
    }

    /// Opens the store read-only; `immutable`: as a file nothing changes (no locks, no -shm).
    fn open_reader(
        cache: &Cache,
        path: &std::path::Path,
        immutable: bool,
    ) -> Result<Self, StoreError> {
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = if immutable {
            let escaped = percent_encoding::utf8_percent_encode(
                &path.to_string_lossy(),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string()
            .replace("%2F", "/");
            Connection::open_with_flags(
                format!("file:{escaped}?immutable=1"),
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )
        } else {
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        }
        .map_err(sqlite)?;
        let store = Self {
            conn,
            dir: cache.dir().to_path_buf(),
            path: path.to_path_buf(),
        };
        store.with(|conn| conn.execute_batch("PRAGMA busy_timeout=10000;"))?;
        store
            .check_schema_version()
            .map_err(|error| store.not_a_store(error))?;
        Ok(store)
    }

    /// Runs `work` on the connection: the one place where `SQLite` errors become store errors.
    fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        work(&self.conn).map_err(|source| self.error(source))
    }

    /// A store error, said as "not a store" when `SQLite` found no database or a damaged one.
    fn not_a_store(&self, error: StoreError) -> StoreError {
        match &error {
            StoreError::Sqlite { source, .. }
                if matches!(
                    source.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
                ) || source.to_string().contains("no such table: meta") =>
            {
                StoreError::NotAStore {
                    path: self.path.clone(),
                    what: source.to_string(),
                }
            }
            _ => error,
        }
    }

    /// A `SQLite` error of this store, naming its file.
    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `work` in one transaction, committed when it succeeds.
    fn in_transaction<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        })
    }

    /// Runs a query and collects its rows.
    fn collect<T, C: FromIterator<T>>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<C, StoreError> {
        self.with(|conn| conn.prepare(sql)?.query_map(params, row)?.collect())
    }

    /// A value of the meta table.
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
        })
    }

    /// A counter of the meta table (0 when absent).
    fn counter(&self, key: &str) -> Result<i64, StoreError> {
        Ok(self.meta(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Sets a value of the meta table.
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
        })
    }

    /// The schema version written in the store (`None` for a new store); an error when newer
    /// than this build's.
    fn check_schema_version(&self) -> Result<Option<i64>, StoreError> {
        let Some(found) = self.meta("schema_version")? else {
            return Ok(None);
        };
        let Ok(found) = found.trim().parse::<i64>() else {
            return Err(StoreError::BadVersion {
                path: self.path.clone(),
                found,
            });
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                dir: self.dir.clone(),
                found,
            });
        }
        Ok(Some(found))
    }

    /// Records the salt's fingerprint on first use; refuses a different salt afterwards. A
    /// fingerprint of the old kind (`legacy`) is replaced by the new one when it matches.
    pub(crate) fn check_salt(&self, fingerprint: &str, legacy: &str) -> Result<(), StoreError> {
        match self.meta("salt_fingerprint")? {
            Some(stored) if stored == fingerprint => Ok(()),
            Some(stored) if stored == legacy => self.set_meta("salt_fingerprint", fingerprint),
            Some(stored) => Err(StoreError::SaltMismatch {
                dir: self.dir.clone(),
                stored,
                given: fingerprint.to_owned(),
            }),
            None => self.set_meta("salt_fingerprint", fingerprint),
        }
    }

    /// Moves everything from the write-ahead log into the database file and empties the log, as
    /// far as readers allow (see [`Store::erase`] when that must be complete).
    pub(crate) fn checkpoint(&self) -> Result<(), StoreError> {
        self.with(|conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
    }

    /// Makes deleted data (raw IPs) gone from every byte of the store: deleted rows are zeroed
    /// in place (secure delete), and the write-ahead log, which still holds the old pages, is
    /// checkpointed and emptied. A process reading the store (`dump`, `status`, a backup) keeps
    /// the log from being emptied: retried for a few seconds, then an error saying so.
    pub(crate) fn erase(&self) -> Result<(), StoreError> {
        // each attempt waits for readers a second, not the writer's usual ten
        self.with(|conn| conn.busy_timeout(std::time::Duration::from_secs(1)))?;
        let mut erased = false;
        for _ in 0..ERASE_ATTEMPTS {
            let busy: i64 = self.with(|conn| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            })?;
            if busy == 0 {
                erased = true;
                break;
            }
        }
        self.with(|conn| conn.busy_timeout(std::time::Duration::from_secs(10)))?;
        if erased {
            Ok(())
        } else {
            Err(StoreError::Readers {
                path: self.path.clone(),
            })
        }
    }

    /// Bytes on disk of the database and its write-ahead log.
    pub(crate) fn size_on_disk(&self) -> u64 {
        ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut name = self.path.clone().into_os_string();
                name.push(suffix);
                std::fs::metadata(name).ok()
            })
            .map(|meta| meta.len())
            .sum()
    }
}

/// Creates a new store whole: written under a temporary name (with its tables and version) and
/// renamed into place, so that a kill at any moment never leaves an empty or half-made store.
fn create(path: &std::path::Path) -> Result<(), StoreError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let sqlite = |source| StoreError::Sqlite {
        path: temporary.clone(),
        source,
    };
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = temporary.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
    make_private(&temporary).map_err(|source| StoreError::Private {
        path: temporary.clone(),
        source,
    })?;
    let conn = Connection::open(&temporary).map_err(sqlite)?;
    conn.execute_batch("PRAGMA page_size=16384;")
        .and_then(|()| conn.execute_batch(schema::TABLES))
        .and_then(|()| {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)",
                [SCHEMA_VERSION.to_string()],
            )
        })
        .map_err(sqlite)?;
    conn.close().map_err(|(_, source)| sqlite(source))?;
    std::fs::rename(&temporary, path).map_err(|source| StoreError::Private {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses a store file that exists but is empty: it was cut short, and taking it for a new store
/// would start counting again from nothing.
fn refuse_empty(path: &std::path::Path) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => Err(StoreError::Empty {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Creates the store file with mode 0600, or makes an existing one (and its -wal, -shm) 0600.
fn make_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        if let Ok(meta) = std::fs::metadata(&name)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_salt_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Cache::at(dir.path())).unwrap();
        store.check_salt("v2:aaaa", "aaaa").unwrap();
        store.check_salt("v2:aaaa", "aaaa").unwrap();
        let error = store.check_salt("v2:bbbb", "bbbb").unwrap_err().to_string();
        assert!(error.contains("another salt"), "{error}");
    }

    #[test]
    fn readers_need_an_existing_store() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Store::open_existing(&Cache::at(dir.path())),
            Err(StoreError::Missing(_))
        ));
    }

    #[test]
    fn a_store_without_the_labelled_in_column_is_brought_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        {
            let conn = Connection::open(cache.store_file()).unwrap();
            conn.execute_batch(
                "CREATE TABLE requesters(id INTEGER PRIMARY KEY, requester_index BLOB NOT NULL UNIQUE, region TEXT);
                 INSERT INTO requesters(requester_index, region) VALUES (x'01', 'bogon');
                 CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                 INSERT INTO meta VALUES ('schema_version', '1');",
            )
            .unwrap();
        }
        let store = Store::open(&cache).unwrap();
        assert_eq!(
            store
                .requesters_labelled_since(LabelRound(0))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(store.requester_regions().unwrap().len(), 1);
    }

    #[test]
    fn a_version_3_store_gets_iso_place_labels() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let store = Store::open(&cache).unwrap();
        store
            .with(|conn| {
                conn.execute_batch(
                    "INSERT INTO requesters(requester_index, region) VALUES
                         (x'01', 'US/California'), (x'02', 'US/Atlantis'), (x'03', 'AWS/us-east-1'),
                         (x'04', 'CH');
                     INSERT INTO coordinates VALUES ('US/California', 36.7, -119.4, 0),
                         ('AWS/us-east-1', 39.0, -77.5, 0);
                     INSERT INTO published_regions VALUES ('', '{
                         \"US/California\": {\"figures\": {\"bytes_sent\": 10, \"requests\": 1, \"downloads\": 1, \"views\": 0}, \"requesters\": [1]},
                         \"US/Atlantis\": {\"figures\": {\"bytes_sent\": 5, \"requests\": 1, \"downloads\": 0, \"views\": 1}, \"requesters\": [2]},
                         \"US\": {\"figures\": {\"bytes_sent\": 7, \"requests\": 2, \"downloads\": 2, \"views\": 0}, \"requesters\": [2, 5]}}');
                     INSERT INTO dataset_tallies VALUES ('ds', '{}');
                     UPDATE meta SET value = '3' WHERE key = 'schema_version';",
                )
            })
            .unwrap();
        drop(store);
        let store = Store::open(&cache).unwrap();
        let mut labels: Vec<String> = store
            .requester_regions()
            .unwrap()
            .into_iter()
            .filter_map(|(_, label)| label.map(|l| l.as_str().to_owned()))
            .collect();
        labels.sort();
        assert_eq!(labels, ["AWS/us-east-1", "CH", "US", "US-CA"]);
        // the geocoder's answer for the old place label is gone, the cloud region's stays
        let cached = store.cached_coordinates().unwrap();
        assert_eq!(cached.keys().collect::<Vec<_>>(), ["AWS/us-east-1"]);
        // `US/Atlantis` became `US`: the two rows added up, their requesters joined
        let published: serde_json::Value =
            serde_json::from_str(&store.published_regions().unwrap()[""]).unwrap();
        assert_eq!(published["US"]["figures"]["bytes_sent"], 12);
        assert_eq!(published["US"]["figures"]["views"], 1);
        assert_eq!(published["US"]["requesters"], serde_json::json!([2, 5]));
        assert_eq!(published["US-CA"]["figures"]["bytes_sent"], 10);
        assert!(store.saved_tallies().unwrap().is_empty());
    }

    #[test]
    fn a_newer_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        Store::open(&cache)
            .unwrap()
            .set_meta("schema_version", "99")
            .unwrap();
        let error = Store::open(&cache).err().unwrap().to_string();
        assert!(error.contains("schema version 99"), "{error}");
    }
}

#[cfg(test)]
mod salt_tests {
    use super::*;

    #[test]
    fn an_old_fingerprint_of_the_same_salt_is_replaced_by_the_new_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Cache::at(dir.path())).unwrap();
        store
            .set_meta("salt_fingerprint", "0011223344556677")
            .unwrap();
        store.check_salt("v2:8899", "0011223344556677").unwrap();
        assert_eq!(
            store.meta("salt_fingerprint").unwrap().as_deref(),
            Some("v2:8899")
        );
        assert!(store.check_salt("v2:0000", "0011223344556677").is_err());
    }
}
