//! What extraction writes: objects, bins, processed-file records and rejected lines, one batch at
//! a time; and what later stages read back from them.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, Transaction, params};

use super::{BatchNumber, ObjectId, RequesterId, Store, StoreError};
use crate::clients::{Client, ClientClass};
use crate::logs::LogIdentity;

/// What is recorded of one extracted log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRecord {
    /// The file's identity (see [`crate::logs::LogFile::identity`]).
    pub identity: LogIdentity,
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
pub(crate) struct RejectRecord {
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
pub(crate) struct StoreCounts {
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

/// A count or sum read from `SQLite` (never negative).
fn count(value: i64) -> u64 {
    value.max(0).cast_unsigned()
}

/// A count written to `SQLite` (always far below `i64::MAX`).
fn sql_count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// The recorded log files: identity to size and compression.
    pub(crate) fn processed_files(&self) -> Result<HashMap<LogIdentity, (u64, bool)>, StoreError> {
        self.collect("SELECT path, size, gzip FROM files", [], |row| {
            Ok((row.get(0)?, (count(row.get(1)?), row.get(2)?)))
        })
    }

    /// Starts the transaction of one batch.
    pub(crate) fn begin_batch(&self) -> Result<Batch<'_>, StoreError> {
        let number = BatchNumber(self.counter("batches")? + 1);
        let next_object_id = self.counter("objects")? + 1;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.error(e))?;
        Ok(Batch {
            tx,
            store: self,
            number,
            next_object_id,
        })
    }

    /// Every object key and its id.
    pub(crate) fn object_keys(&self) -> Result<Vec<(Vec<u8>, ObjectId)>, StoreError> {
        self.collect("SELECT key, id FROM objects", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }

    /// The objects that got bins in batches after `batch`.
    pub(crate) fn objects_extracted_since(
        &self,
        batch: BatchNumber,
    ) -> Result<HashSet<ObjectId>, StoreError> {
        self.collect(
            "SELECT DISTINCT object_id FROM bins WHERE batch > ?1",
            [batch],
            |row| row.get(0),
        )
    }

    /// Calls `visit(key, bin)` for every bin, ordered by object key then bin; only the bins of
    /// `only` when given.
    pub(crate) fn visit_bins(
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
        let mut rows = self.with(|_| match only {
            Some(key) => statement.query([key]),
            None => statement.query([]),
        })?;
        while let Some(row) = self.with(|_| rows.next())? {
            let (key, data) =
                self.with(|_| Ok((row.get_ref(0)?.as_blob()?, row.get_ref(1)?.as_blob()?)))?;
            visit(key, data)?;
        }
        Ok(())
    }

    /// Calls `visit(key, bin)` for every bin of the batches `from..=to`, ordered by object key
    /// then batch.
    pub(crate) fn visit_bins_of_batches(
        &self,
        (from, to): (BatchNumber, BatchNumber),
        mut visit: impl FnMut(&[u8], &[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT o.key, b.data FROM objects o JOIN bins b ON b.object_id = o.id
                 WHERE b.batch BETWEEN ?1 AND ?2 ORDER BY o.key, b.batch",
            )
            .map_err(|e| self.error(e))?;
        let mut rows = self.with(|_| statement.query([from, to]))?;
        while let Some(row) = self.with(|_| rows.next())? {
            let (key, data) =
                self.with(|_| Ok((row.get_ref(0)?.as_blob()?, row.get_ref(1)?.as_blob()?)))?;
            visit(key, data)?;
        }
        Ok(())
    }

    /// Totals over the whole store.
    pub(crate) fn counts(&self) -> Result<StoreCounts, StoreError> {
        let total = |sql: &str| -> Result<u64, StoreError> {
            self.with(|conn| conn.query_row(sql, [], |row| row.get::<_, i64>(0)))
                .map(count)
        };
        // sums as floats (SQLite's total), which are exact far beyond any real log volume
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let sums = self.with(|conn| {
            conn.query_row(
                "SELECT count(*), total(size), total(lines), total(requests), total(excluded), total(rejected) FROM files",
                [],
                |row| {
                    let sum = |i| row.get::<_, f64>(i).map(|v| v as u64);
                    Ok([count(row.get(0)?), sum(1)?, sum(2)?, sum(3)?, sum(4)?, sum(5)?])
                },
            )
        })?;
        let [files, file_bytes, lines, requests, excluded, rejected] = sums;
        Ok(StoreCounts {
            files,
            file_bytes,
            lines,
            requests,
            excluded,
            rejected,
            objects: total("SELECT count(*) FROM objects")?,
            requesters: total("SELECT count(*) FROM requesters")?,
            pending_lookups: total("SELECT count(*) FROM pending_lookups")?,
            bins: total("SELECT count(*) FROM bins")?,
        })
    }

    /// The rejected lines kept in full, by file and line.
    pub(crate) fn rejects(&self) -> Result<Vec<RejectRecord>, StoreError> {
        self.collect(
            "SELECT file, line, reason, excerpt FROM rejects ORDER BY file, line",
            [],
            |row| {
                Ok(RejectRecord {
                    file: row.get(0)?,
                    line: count(row.get(1)?),
                    reason: row.get(2)?,
                    excerpt: row.get(3)?,
                })
            },
        )
    }

    /// Every client requests were classified as, by id (an id no request has is `unknown`).
    pub(crate) fn clients(&self) -> Result<Vec<Client>, StoreError> {
        // a store of schema 4 read without being brought up to date has no clients table
        let has_table: Vec<i64> = self.collect(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'clients'",
            [],
            |row| row.get(0),
        )?;
        if has_table.is_empty() {
            return Ok(vec![Client::unknown()]);
        }
        let rows: Vec<(u32, String, String)> = self.collect(
            "SELECT id, class, family FROM clients ORDER BY id",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let mut clients = vec![Client::unknown(); rows.last().map_or(1, |row| row.0 as usize + 1)];
        for (id, class, family) in rows {
            // a class this build does not know is shown as unknown
            let class = ClientClass::parse(&class).unwrap_or(ClientClass::Unknown);
            clients[id as usize] = Client { class, family };
        }
        Ok(clients)
    }

    /// Deletes every extracted request and processed-file record, in one transaction;
    /// requesters, their labels and coordinates stay, and so do the region rows last published:
    /// the summaries after extracting again must not reveal a change the diff-safe region rule
    /// would have held back.
    pub(crate) fn reset_extraction(&self) -> Result<(), StoreError> {
        self.in_transaction(|tx| {
            tx.execute_batch(
                "DELETE FROM bins; DELETE FROM objects; DELETE FROM files; DELETE FROM rejects;
                 DELETE FROM dataset_tallies;
                 DELETE FROM meta WHERE key IN ('batches', 'objects') OR key LIKE 'state:%';",
            )
        })?;
        self.checkpoint()
    }
}

/// The open transaction of one batch: everything in it lands together at `commit`, or not at all.
pub(crate) struct Batch<'a> {
    tx: Transaction<'a>,
    store: &'a Store,
    /// This batch's number: the order of an object's bins.
    number: BatchNumber,
    /// The id the next new object gets.
    next_object_id: i64,
}

impl Batch<'_> {
    /// Runs `work` on the transaction, as [`Store::with`] does on the connection.
    fn with<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.store.with(|_| work(&self.tx))
    }

    /// The id of an object key, adding the object if it is new.
    pub(crate) fn object_id(&mut self, key: &[u8]) -> Result<ObjectId, StoreError> {
        let found = self.with(|tx| {
            tx.prepare_cached("SELECT id FROM objects WHERE key = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()
        })?;
        if let Some(id) = found {
            return Ok(id);
        }
        let id = ObjectId(self.next_object_id);
        self.with(|tx| {
            tx.prepare_cached("INSERT INTO objects(key, id) VALUES (?1, ?2)")?
                .execute(params![key, id])
        })?;
        self.next_object_id += 1;
        Ok(id)
    }

    /// The id of a requester, adding it with its raw IP to the pending-lookup list if it is new.
    pub(crate) fn requester_id(&self, index: &[u8], ip: &str) -> Result<RequesterId, StoreError> {
        self.with(|tx| {
            let found = tx
                .prepare_cached("SELECT id FROM requesters WHERE requester_index = ?1")?
                .query_row([index], |row| row.get(0))
                .optional()?;
            if let Some(id) = found {
                return Ok(id);
            }
            tx.prepare_cached("INSERT INTO requesters(requester_index) VALUES (?1)")?
                .execute([index])?;
            let id = RequesterId(tx.last_insert_rowid().cast_unsigned());
            tx.prepare_cached("INSERT INTO pending_lookups(requester_id, ip) VALUES (?1, ?2)")?
                .execute(params![id, ip])?;
            Ok(id)
        })
    }

    /// The id of a client (class and family), adding it if it is new.
    pub(crate) fn client_id(&self, client: &Client) -> Result<u32, StoreError> {
        self.with(|tx| {
            let class = client.class.as_str();
            tx.prepare_cached("INSERT OR IGNORE INTO clients(class, family) VALUES (?1, ?2)")?
                .execute([class, &client.family])?;
            tx.prepare_cached("SELECT id FROM clients WHERE class = ?1 AND family = ?2")?
                .query_row([class, &client.family], |row| row.get(0))
        })
    }

    /// Starts a new set of bins in the same transaction: an object may get one more bin, ordered
    /// after the ones added so far (a batch flushes its requests in parts to bound memory).
    pub(crate) fn start_new_part(&mut self) {
        self.number = BatchNumber(self.number.0 + 1);
    }

    /// Adds one object's bin.
    pub(crate) fn add_bin(&self, object: ObjectId, data: &[u8]) -> Result<(), StoreError> {
        self.with(|tx| {
            tx.prepare_cached("INSERT INTO bins(object_id, batch, data) VALUES (?1, ?2, ?3)")?
                .execute(params![object, self.number, data])
                .map(drop)
        })
    }

    /// Records a log file as extracted.
    pub(crate) fn add_file(&self, file: &FileRecord, extracted_at: i64) -> Result<(), StoreError> {
        self.with(|tx| {
            tx.prepare_cached(
                "INSERT INTO files(path, size, gzip, lines, requests, excluded, rejected, extracted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                file.identity,
                sql_count(file.size),
                file.gzip,
                sql_count(file.lines),
                sql_count(file.requests),
                sql_count(file.excluded),
                sql_count(file.rejected),
                extracted_at
            ])
            .map(drop)
        })
    }

    /// Keeps a rejected line in full.
    pub(crate) fn add_reject(&self, reject: &RejectRecord) -> Result<(), StoreError> {
        self.with(|tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO rejects(file, line, reason, excerpt) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                reject.file,
                sql_count(reject.line),
                reject.reason,
                reject.excerpt
            ])
            .map(drop)
        })
    }

    /// Makes the whole batch durable at once.
    pub(crate) fn commit(self) -> Result<(), StoreError> {
        let counters = "INSERT INTO meta(key, value) VALUES ('batches', ?1), ('objects', ?2)
                        ON CONFLICT(key) DO UPDATE SET value = excluded.value";
        self.with(|tx| {
            tx.execute(
                counters,
                params![
                    self.number.0.to_string(),
                    (self.next_object_id - 1).to_string()
                ],
            )
        })?;
        let store = self.store;
        store.with(|_| self.tx.commit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;

    #[test]
    fn a_batch_not_committed_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Cache::at(dir.path())).unwrap();
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
        assert_eq!(c, ObjectId(a.0 + 2));
        batch.add_bin(c, &[1]).unwrap();
        batch.commit().unwrap();
        assert_eq!(
            store.objects_extracted_since(BatchNumber(1)).unwrap(),
            HashSet::from([c])
        );
    }
}
