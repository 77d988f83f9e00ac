//! The store: one SQLite database in the cache directory holding objects, requesters (salted
//! indexes; raw IPs only in the pending-lookup list), per-object bins, processed-file records and
//! rejected lines. A batch is written in one transaction, so a kill loses at most the batch in flight.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

/// File name of the database inside the cache directory.
pub const DB_FILE: &str = "s3tally.sqlite";
/// Version of the schema this build writes.
const SCHEMA_VERSION: i64 = 1;
/// At most this many rejected lines are kept in full per file.
pub const REJECTS_KEPT_PER_FILE: usize = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- keyed by the object key itself (no rowid, no second copy of the key in an index)
CREATE TABLE IF NOT EXISTS objects(key BLOB PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
-- labelled_in: the labelling round (meta label_updates) that gave the current label
CREATE TABLE IF NOT EXISTS requesters(id INTEGER PRIMARY KEY, requester_index BLOB NOT NULL UNIQUE, region TEXT, labelled_in INTEGER);
-- each dataset's exact figures as of the last summaries run (JSON), for incremental updates
CREATE TABLE IF NOT EXISTS dataset_tallies(dataset TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_lookups(requester_id INTEGER PRIMARY KEY, ip TEXT NOT NULL);
-- raw IPs of resolved requesters, only with `update regions --keep-ips`
CREATE TABLE IF NOT EXISTS kept_ips(requester_id INTEGER PRIMARY KEY, ip TEXT NOT NULL);
-- clustered by object: an object's bins are adjacent, in batch order
CREATE TABLE IF NOT EXISTS bins(
    object_id INTEGER NOT NULL, batch INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY(object_id, batch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files(
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, gzip INTEGER NOT NULL, lines INTEGER NOT NULL, requests INTEGER NOT NULL,
    excluded INTEGER NOT NULL, rejected INTEGER NOT NULL, extracted_at INTEGER NOT NULL) WITHOUT ROWID;
-- which version of which validation check ran on which log file
CREATE TABLE IF NOT EXISTS validated(path TEXT NOT NULL, check_name TEXT NOT NULL, version INTEGER NOT NULL,
    violations INTEGER NOT NULL, PRIMARY KEY(path, check_name)) WITHOUT ROWID;
-- every geocoder answer, found or not, so that a label is asked once, ever
CREATE TABLE IF NOT EXISTS coordinates(label TEXT PRIMARY KEY, latitude REAL, longitude REAL, asked_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejects(
    file TEXT NOT NULL, line INTEGER NOT NULL, reason TEXT NOT NULL, excerpt TEXT NOT NULL,
    PRIMARY KEY(file, line)) WITHOUT ROWID;
";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The cache directory cannot be created.
    #[error("cannot create cache directory {path}: {source}")]
    CreateDir {
        /// The cache directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
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
    /// Nothing has been extracted into this cache yet.
    #[error("no store in {0} yet: run `s3tally extract LOG_DIR` first")]
    Missing(PathBuf),
}

/// What is recorded of one extracted log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Path relative to the log directory it was found in.
    pub path: String,
    /// Size in bytes on disk when extracted.
    pub size: u64,
    /// Whether it was read gzip-compressed.
    pub gzip: bool,
    /// Lines read.
    pub lines: u64,
    /// GET-2xx requests kept.
    pub requests: u64,
    /// GET-2xx requests dropped by `--exclude-ip`.
    pub excluded: u64,
    /// Lines that could not be read.
    pub rejected: u64,
}

/// A rejected line kept in full (IPs masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRecord {
    /// Path of the log file, relative to its log directory.
    pub file: String,
    /// Line number, from 1.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The line with IPs masked, shortened if very long.
    pub excerpt: String,
}

/// Totals shown by `s3tally status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Log files extracted.
    pub files: u64,
    /// Bytes of log files extracted.
    pub file_bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Requests extracted.
    pub requests: u64,
    /// Requests dropped by exclusion.
    pub excluded: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// Distinct objects.
    pub objects: u64,
    /// Distinct requesters.
    pub requesters: u64,
    /// Requesters waiting for a region lookup.
    pub pending_lookups: u64,
    /// Bins.
    pub bins: u64,
}

/// The open store.
pub struct Store {
    conn: Connection,
    dir: PathBuf,
    path: PathBuf,
}

impl Store {
    /// Opens the store for writing, creating the cache directory and the schema if needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let store = Self {
            conn,
            dir: dir.to_path_buf(),
            path,
        };
        store
            .conn
            .execute_batch(
                "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON;
                 PRAGMA busy_timeout=10000; PRAGMA cache_size=-65536;",
            )
            .map_err(|e| store.error(e))?;
        store
            .conn
            .execute_batch(SCHEMA)
            .map_err(|e| store.error(e))?;
        store.check_schema_version()?;
        store.add_missing_columns()?;
        Ok(store)
    }

    /// Brings a store written by an earlier version of this schema up to date.
    fn add_missing_columns(&self) -> Result<(), StoreError> {
        let has_column = self
            .conn
            .prepare("SELECT 1 FROM pragma_table_info('requesters') WHERE name = 'labelled_in'")
            .and_then(|mut statement| statement.exists([]))
            .map_err(|e| self.error(e))?;
        if !has_column {
            self.conn
                .execute_batch("ALTER TABLE requesters ADD COLUMN labelled_in INTEGER")
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Opens an existing store read-only (`dump`, `status`); an error if there is none.
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
            |source| StoreError::Sqlite {
                path: path.clone(),
                source,
            },
        )?;
        let store = Self {
            conn,
            dir: dir.to_path_buf(),
            path,
        };
        store
            .conn
            .execute_batch("PRAGMA busy_timeout=10000;")
            .map_err(|e| store.error(e))?;
        store.check_schema_version()?;
        Ok(store)
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.error(e))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
            .map_err(|e| self.error(e))
    }

    fn check_schema_version(&self) -> Result<(), StoreError> {
        match self.meta("schema_version")? {
            Some(found) => {
                let found: i64 = found.parse().unwrap_or(i64::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        dir: self.dir.clone(),
                        found,
                    });
                }
                Ok(())
            }
            None if self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) => Ok(()),
            None => self.set_meta("schema_version", &SCHEMA_VERSION.to_string()),
        }
    }

    /// A value a stage keeps between runs (for example what its last run saw).
    pub fn stage_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.meta(&format!("state:{key}"))
    }

    /// Keeps a value for the next run of a stage.
    pub fn set_stage_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.set_meta(&format!("state:{key}"), value)
    }

    /// What the summaries depend on: extraction batches committed and region labelling rounds.
    pub fn data_version(&self) -> Result<(i64, i64), StoreError> {
        let counter = |name: &str| -> Result<i64, StoreError> {
            Ok(self.meta(name)?.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        Ok((counter("batches")?, counter("label_updates")?))
    }

    /// Every object key and its id.
    pub fn object_keys(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        self.collect("SELECT key, id FROM objects", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }

    /// The objects that got bins in batches after `batch`.
    pub fn objects_extracted_since(&self, batch: i64) -> Result<HashSet<i64>, StoreError> {
        self.collect(
            "SELECT DISTINCT object_id FROM bins WHERE batch > ?1",
            [batch],
            |row| row.get(0),
        )
    }

    /// The requesters labelled in labelling rounds after `round`.
    pub fn requesters_labelled_since(&self, round: i64) -> Result<HashSet<u64>, StoreError> {
        self.collect(
            "SELECT id FROM requesters WHERE labelled_in > ?1",
            [round],
            |row| Ok(row.get::<_, i64>(0)? as u64),
        )
    }

    /// Every dataset's saved figures (JSON).
    pub fn saved_tallies(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.collect("SELECT dataset, data FROM dataset_tallies", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }

    /// Replaces the saved figures of the datasets given (all of them when `replace_all`), with
    /// the state they correspond to, in one transaction.
    pub fn save_tallies(
        &mut self,
        tallies: &[(String, String)],
        replace_all: bool,
        state: &str,
    ) -> Result<(), StoreError> {
        self.in_transaction(|tx| {
            if replace_all {
                tx.execute("DELETE FROM dataset_tallies", [])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO dataset_tallies(dataset, data) VALUES (?1, ?2)",
            )?;
            for (dataset, data) in tallies {
                insert.execute([dataset, data])?;
            }
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('state:tallies', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [state],
            )?;
            Ok(())
        })
    }

    /// Runs `work` in one transaction, committed when it succeeds.
    fn in_transaction<T>(
        &mut self,
        work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let result = self.conn.transaction().and_then(|tx| {
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        });
        result.map_err(|source| StoreError::Sqlite { path, source })
    }

    /// Records the salt's fingerprint on first use; refuses a different salt afterwards.
    pub fn check_salt(&self, fingerprint: &str) -> Result<(), StoreError> {
        match self.meta("salt_fingerprint")? {
            Some(stored) if stored == fingerprint => Ok(()),
            Some(stored) => Err(StoreError::SaltMismatch {
                dir: self.dir.clone(),
                stored,
                given: fingerprint.to_owned(),
            }),
            None => self.set_meta("salt_fingerprint", fingerprint),
        }
    }

    /// Runs a query and collects its rows.
    fn collect<T, C: FromIterator<T>>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<C, StoreError> {
        self.conn
            .prepare(sql)
            .and_then(|mut statement| statement.query_map(params, row)?.collect())
            .map_err(|e| self.error(e))
    }

    /// The recorded log files: identity (relative path without `.gz`) to size and compression.
    pub fn processed_files(&self) -> Result<HashMap<String, (u64, bool)>, StoreError> {
        self.collect("SELECT path, size, gzip FROM files", [], |row| {
            Ok((row.get(0)?, (row.get::<_, i64>(1)? as u64, row.get(2)?)))
        })
    }

    /// Starts the transaction of one batch.
    pub fn begin_batch(&mut self) -> Result<Batch<'_>, StoreError> {
        let counter = |name: &str| -> Result<i64, StoreError> {
            Ok(self.meta(name)?.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        let number = counter("batches")? + 1;
        let next_object_id = counter("objects")? + 1;
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                source,
            })?;
        Ok(Batch {
            tx,
            path,
            number,
            next_object_id,
        })
    }

    /// Moves everything from the write-ahead log into the database file and empties the log.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.error(e))
    }

    /// Bytes on disk of the database and its write-ahead log.
    pub fn size_on_disk(&self) -> u64 {
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

    /// Totals over the whole store.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let count = |sql: &str| -> Result<u64, StoreError> {
            self.conn
                .query_row(sql, [], |row| row.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(|e| self.error(e))
        };
        let (files, file_bytes, lines, requests, excluded, rejected) = self
            .conn
            .query_row(
                "SELECT count(*), total(size), total(lines), total(requests), total(excluded), total(rejected) FROM files",
                [],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)? as u64,
                        row.get::<_, f64>(1)? as u64,
                        row.get::<_, f64>(2)? as u64,
                        row.get::<_, f64>(3)? as u64,
                        row.get::<_, f64>(4)? as u64,
                        row.get::<_, f64>(5)? as u64,
                    ))
                },
            )
            .map_err(|e| self.error(e))?;
        Ok(StoreCounts {
            files,
            file_bytes,
            lines,
            requests,
            excluded,
            rejected,
            objects: count("SELECT count(*) FROM objects")?,
            requesters: count("SELECT count(*) FROM requesters")?,
            pending_lookups: count("SELECT count(*) FROM pending_lookups")?,
            bins: count("SELECT count(*) FROM bins")?,
        })
    }

    /// Calls `visit(key, bin)` for every bin, ordered by object key then bin; only the bins of
    /// `only` when given.
    pub fn visit_bins(
        &self,
        only: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let all = "SELECT o.key, b.data FROM objects o JOIN bins b ON b.object_id = o.id
                   ORDER BY o.key, b.batch";
        let one = "SELECT o.key, b.data FROM objects o JOIN bins b ON b.object_id = o.id
                   WHERE o.key = ?1 ORDER BY b.batch";
        let mut statement = self
            .conn
            .prepare(if only.is_some() { one } else { all })
            .map_err(|e| self.error(e))?;
        let mut rows = match only {
            Some(key) => statement.query([key]),
            None => statement.query([]),
        }
        .map_err(|e| self.error(e))?;
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            let key = row.get_ref(0).and_then(|v| Ok(v.as_blob()?))?;
            let data = row.get_ref(1).and_then(|v| Ok(v.as_blob()?))?;
            visit(key, data)?;
        }
        Ok(())
    }

    /// The requesters waiting for a region lookup: id and raw IP.
    pub fn pending_lookups(&self) -> Result<Vec<(i64, String)>, StoreError> {
        self.collect(
            "SELECT requester_id, ip FROM pending_lookups ORDER BY requester_id",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    /// How many requesters wait for a region lookup.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM pending_lookups", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.error(e))
    }

    /// The resolved requesters whose raw IP is kept: id, salted index and IP.
    pub fn kept_ips(&self) -> Result<Vec<(i64, Vec<u8>, String)>, StoreError> {
        self.collect(
            "SELECT k.requester_id, r.requester_index, k.ip FROM kept_ips k
                 JOIN requesters r ON r.id = k.requester_id ORDER BY k.requester_id",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
    }

    /// The region label of each requester id given.
    pub fn regions_of(&self, ids: &[i64]) -> Result<HashMap<i64, Option<String>>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT region FROM requesters WHERE id = ?1")
            .map_err(|e| self.error(e))?;
        ids.iter()
            .map(|&id| {
                Ok((
                    id,
                    statement
                        .query_row([id], |row| row.get(0))
                        .map_err(|e| self.error(e))?,
                ))
            })
            .collect()
    }

    /// Gives requesters their region label in one transaction and deletes their raw IP from the
    /// pending list (moving it to the kept IPs when `keep_ips`).
    pub fn label_requesters(
        &mut self,
        labels: &[(i64, String)],
        keep_ips: bool,
    ) -> Result<(), StoreError> {
        if labels.is_empty() {
            // nothing labelled: no new round
            return Ok(());
        }
        self.in_transaction(|tx| {
            // this labelling round's number, recorded with each label it gives
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('label_updates', '1')
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                [],
            )?;
            let round: i64 = tx.query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'label_updates'",
                [],
                |row| row.get(0),
            )?;
            let mut label = tx.prepare_cached(
                "UPDATE requesters SET region = ?2, labelled_in = ?3 WHERE id = ?1",
            )?;
            let mut keep = tx.prepare_cached(
                "INSERT OR REPLACE INTO kept_ips(requester_id, ip)
                 SELECT requester_id, ip FROM pending_lookups WHERE requester_id = ?1",
            )?;
            let mut forget =
                tx.prepare_cached("DELETE FROM pending_lookups WHERE requester_id = ?1")?;
            for (id, region) in labels {
                label.execute(params![id, region, round])?;
                if keep_ips {
                    keep.execute([id])?;
                }
                forget.execute([id])?;
            }
            Ok(())
        })
    }

    /// Deletes every kept raw IP of resolved requesters; returns how many.
    pub fn forget_kept_ips(&self) -> Result<u64, StoreError> {
        self.conn
            .execute("DELETE FROM kept_ips", [])
            .map(|n| n as u64)
            .map_err(|e| self.error(e))
    }

    /// The geocoder's earlier answers: label to coordinates (`None`: asked, not found).
    pub fn cached_coordinates(&self) -> Result<HashMap<String, Option<(f64, f64)>>, StoreError> {
        self.collect(
            "SELECT label, latitude, longitude FROM coordinates",
            [],
            |row| {
                let latitude: Option<f64> = row.get(1)?;
                let longitude: Option<f64> = row.get(2)?;
                Ok((row.get(0)?, latitude.zip(longitude)))
            },
        )
    }

    /// Keeps a geocoder answer at once (its own transaction).
    pub fn cache_coordinates(
        &self,
        label: &str,
        place: Option<(f64, f64)>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO coordinates(label, latitude, longitude, asked_at) VALUES (?1, ?2, ?3, ?4)",
                params![label, place.map(|p| p.0), place.map(|p| p.1), chrono::Utc::now().timestamp()],
            )
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Deletes every extracted request and processed-file record, in one transaction;
    /// requesters, their labels and coordinates stay.
    pub fn reset_extraction(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "BEGIN;
                 DELETE FROM bins; DELETE FROM objects; DELETE FROM files; DELETE FROM rejects;
                 DELETE FROM dataset_tallies;
                 DELETE FROM meta WHERE key IN ('batches', 'objects') OR key LIKE 'state:%';
                 COMMIT;",
            )
            .map_err(|e| self.error(e))?;
        self.checkpoint()
    }

    /// The validation checks already run: log file path to check name to version.
    pub fn validated(&self) -> Result<HashMap<String, HashMap<String, u32>>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT path, check_name, version FROM validated")
            .map_err(|e| self.error(e))?;
        let mut rows = statement.query([]).map_err(|e| self.error(e))?;
        let mut done: HashMap<String, HashMap<String, u32>> = HashMap::new();
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            let (path, check, version): (String, String, u32) = (
                row.get(0).map_err(|e| self.error(e))?,
                row.get(1).map_err(|e| self.error(e))?,
                row.get(2).map_err(|e| self.error(e))?,
            );
            done.entry(path).or_default().insert(check, version);
        }
        Ok(done)
    }

    /// Records checks run on log files (path, check, version, violations), in one transaction.
    pub fn record_validation(
        &mut self,
        records: &[(String, &str, u32, u64)],
    ) -> Result<(), StoreError> {
        self.in_transaction(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO validated(path, check_name, version, violations) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (file, check, version, violations) in records {
                insert.execute(params![file, check, version, *violations as i64])?;
            }
            Ok(())
        })
    }

    /// Every requester: store id, region label (`None`: not resolved yet).
    pub fn requester_regions(&self) -> Result<Vec<(u64, Option<String>)>, StoreError> {
        self.collect("SELECT id, region FROM requesters", [], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get(1)?))
        })
    }

    /// Requesters by region label (`None`: not resolved yet).
    pub fn region_counts(&self) -> Result<Vec<(Option<String>, u64)>, StoreError> {
        self.collect(
            "SELECT region, count(*) FROM requesters GROUP BY region ORDER BY region",
            [],
            |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)),
        )
    }

    /// Every requester's salted index, by store id.
    pub fn requester_indexes(&self) -> Result<HashMap<u64, Vec<u8>>, StoreError> {
        self.collect("SELECT id, requester_index FROM requesters", [], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get(1)?))
        })
    }

    /// The rejected lines kept in full, by file and line.
    pub fn rejects(&self) -> Result<Vec<RejectRecord>, StoreError> {
        self.collect(
            "SELECT file, line, reason, excerpt FROM rejects ORDER BY file, line",
            [],
            |row| {
                Ok(RejectRecord {
                    file: row.get(0)?,
                    line: row.get::<_, i64>(1)? as u64,
                    reason: row.get(2)?,
                    excerpt: row.get(3)?,
                })
            },
        )
    }
}

/// The open transaction of one batch: everything in it lands together at `commit`, or not at all.
pub struct Batch<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
    /// This batch's number, from 1: the order of an object's bins.
    number: i64,
    /// The id the next new object gets.
    next_object_id: i64,
}

impl Batch<'_> {
    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The id found by `sql` (one `?1` parameter), if any.
    fn find_id(&self, sql: &str, value: &[u8]) -> Result<Option<i64>, StoreError> {
        self.tx
            .prepare_cached(sql)
            .and_then(|mut select| select.query_row([value], |row| row.get(0)).optional())
            .map_err(|e| self.error(e))
    }

    /// The id of an object key, adding the object if it is new.
    pub fn object_id(&mut self, key: &[u8]) -> Result<i64, StoreError> {
        if let Some(id) = self.find_id("SELECT id FROM objects WHERE key = ?1", key)? {
            return Ok(id);
        }
        let id = self.next_object_id;
        self.tx
            .prepare_cached("INSERT INTO objects(key, id) VALUES (?1, ?2)")
            .and_then(|mut insert| insert.execute(params![key, id]))
            .map_err(|e| self.error(e))?;
        self.next_object_id += 1;
        Ok(id)
    }

    /// The id of a requester, adding it with its raw IP to the pending-lookup list if it is new.
    pub fn requester_id(&self, index: &[u8], ip: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.find_id(
            "SELECT id FROM requesters WHERE requester_index = ?1",
            index,
        )? {
            return Ok(id);
        }
        self.tx
            .prepare_cached("INSERT INTO requesters(requester_index) VALUES (?1)")
            .and_then(|mut insert| insert.execute([index]))
            .map_err(|e| self.error(e))?;
        let id = self.tx.last_insert_rowid();
        self.tx
            .prepare_cached("INSERT INTO pending_lookups(requester_id, ip) VALUES (?1, ?2)")
            .and_then(|mut insert| insert.execute(params![id, ip]))
            .map_err(|e| self.error(e))?;
        Ok(id)
    }

    /// Adds one object's bin.
    pub fn add_bin(&self, object_id: i64, data: &[u8]) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("INSERT INTO bins(object_id, batch, data) VALUES (?1, ?2, ?3)")
            .and_then(|mut insert| insert.execute(params![object_id, self.number, data]))
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Records a log file as extracted.
    pub fn add_file(&self, file: &FileRecord, extracted_at: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO files(path, size, gzip, lines, requests, excluded, rejected, extracted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    file.path,
                    file.size as i64,
                    file.gzip,
                    file.lines as i64,
                    file.requests as i64,
                    file.excluded as i64,
                    file.rejected as i64,
                    extracted_at
                ])
            })
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Keeps a rejected line in full.
    pub fn add_reject(&self, reject: &RejectRecord) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO rejects(file, line, reason, excerpt) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    reject.file,
                    reject.line as i64,
                    reject.reason,
                    reject.excerpt
                ])
            })
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Makes the whole batch durable at once.
    pub fn commit(self) -> Result<(), StoreError> {
        let counters = "INSERT INTO meta(key, value) VALUES ('batches', ?1), ('objects', ?2)
                        ON CONFLICT(key) DO UPDATE SET value = excluded.value";
        self.tx
            .execute(
                counters,
                params![
                    self.number.to_string(),
                    (self.next_object_id - 1).to_string()
                ],
            )
            .map_err(|e| self.error(e))?;
        let path = self.path;
        self.tx
            .commit()
            .map_err(|source| StoreError::Sqlite { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_not_committed_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        {
            let mut batch = store.begin_batch().unwrap();
            let object = batch.object_id(b"ds/a").unwrap();
            batch.add_bin(object, &[1, 2, 3]).unwrap();
            batch.requester_id(&[7; 32], "192.0.2.1").unwrap();
            // dropped without commit
        }
        assert_eq!(store.counts().unwrap(), StoreCounts::default());
        let mut batch = store.begin_batch().unwrap();
        let a = batch.object_id(b"ds/a").unwrap();
        assert_eq!(batch.object_id(b"ds/a").unwrap(), a);
        assert_ne!(batch.object_id(b"ds/b").unwrap(), a);
        let r = batch.requester_id(&[7; 32], "192.0.2.1").unwrap();
        assert_eq!(batch.requester_id(&[7; 32], "192.0.2.1").unwrap(), r);
        batch.commit().unwrap();
        let counts = store.counts().unwrap();
        assert_eq!(
            (counts.objects, counts.requesters, counts.pending_lookups),
            (2, 1, 1)
        );
        // ids continue after a commit, never reused
        let mut batch = store.begin_batch().unwrap();
        let c = batch.object_id(b"ds/c").unwrap();
        assert_eq!(c, a + 2);
        batch.add_bin(c, &[1]).unwrap();
        batch.commit().unwrap();
    }

    #[test]
    fn a_different_salt_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.check_salt("aaaa").unwrap();
        store.check_salt("aaaa").unwrap();
        let error = store.check_salt("bbbb").unwrap_err().to_string();
        assert!(error.contains("another salt"), "{error}");
    }

    #[test]
    fn readers_need_an_existing_store() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Store::open_existing(dir.path()),
            Err(StoreError::Missing(_))
        ));
    }
}
