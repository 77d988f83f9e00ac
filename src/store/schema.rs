//! The store's schema, its version, and how a store written by an earlier version is brought up
//! to date when it is opened.

use rusqlite::Connection;

/// Version of the schema this build writes. Raise it with every schema change, and add the step
/// that brings the previous version up to date to [`migrate`].
pub(crate) const VERSION: i64 = 1;

/// Settings of every connection that writes.
pub(super) const WRITER_PRAGMAS: &str =
    "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
     PRAGMA secure_delete=ON; PRAGMA busy_timeout=10000; PRAGMA cache_size=-65536;";

/// Every table, created when missing.
pub(super) const TABLES: &str = "
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

/// Brings a store of version 1 written before a column was added up to date. Each later version
/// adds its step here, run when the stored version is older.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // version 1 stores written before `labelled_in` existed
    let has_labelled_in = conn
        .prepare("SELECT 1 FROM pragma_table_info('requesters') WHERE name = 'labelled_in'")?
        .exists([])?;
    if !has_labelled_in {
        conn.execute_batch("ALTER TABLE requesters ADD COLUMN labelled_in INTEGER")?;
    }
    Ok(())
}
