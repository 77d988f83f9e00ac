//! The store's schema, its version, and how a store written by an earlier version is brought up
//! to date when it is opened.

use rusqlite::Connection;

use crate::labels::RegionLabel;

/// Version of the schema this build writes. Raise it with every schema change, and add the step
/// that brings the previous version up to date to [`migrate`].
///
/// - 1: the first.
/// - 2: a log file is identified by its name (S3 makes it unique), no longer by its path
///   relative to the directory given; records of one log found under two paths merge.
/// - 3: the region rows last published (values and the requesters behind them), for the
///   diff-safe region rule; saved figures are computed again to hold each region's requesters.
/// - 4: places are stored as ISO codes (`US-CA`, not `US/California`): stored labels, and the
///   region rows last published, are converted; the geocoder's answers for places are dropped
///   (the bundled ISO tables place them); saved figures are computed again.
/// - 5: the clients table (class and family of the user agents, by id; id 0 is `unknown`), and
///   bins of version 2 that give each request a client; bins written before stay version 1 and
///   read as `unknown`. Saved figures are computed again (they gain the figures by client).
pub(crate) const VERSION: i64 = 5;

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
-- per dataset (and the archive, as an empty name): the region rows last published (JSON)
CREATE TABLE IF NOT EXISTS published_regions(scope TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
-- the client classes and families requests were classified as (bins hold the id)
CREATE TABLE IF NOT EXISTS clients(id INTEGER PRIMARY KEY, class TEXT NOT NULL, family TEXT NOT NULL,
    UNIQUE(class, family));
INSERT OR IGNORE INTO clients(id, class, family) VALUES (0, 'unknown', '');
CREATE TABLE IF NOT EXISTS rejects(
    file TEXT NOT NULL, line INTEGER NOT NULL, reason TEXT NOT NULL, excerpt TEXT NOT NULL,
    PRIMARY KEY(file, line)) WITHOUT ROWID;
";

/// Brings a store written by schema version `from` up to the current version, in one transaction.
pub(crate) fn migrate(conn: &Connection, from: i64) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    if from <= 1 {
        add_labelled_in(&tx)?;
        identify_logs_by_name(&tx)?;
    }
    if from <= 3 {
        places_as_iso_codes(&tx)?;
        // saved figures lack the requesters behind each region (2), or name places by their
        // old labels (3): computed again next run
        tx.execute_batch(
            "DELETE FROM dataset_tallies; DELETE FROM meta WHERE key LIKE 'state:%';",
        )?;
    }
    if from <= 4 {
        // saved figures lack the figures by client: computed again next run (the other stage
        // states, such as an export's or an S3 listing's, stay)
        tx.execute_batch(
            "DELETE FROM dataset_tallies;
             DELETE FROM meta WHERE key IN ('state:tallies', 'state:summaries', 'state:totals');",
        )?;
    }
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [VERSION.to_string()],
    )?;
    tx.commit()
}

/// Version 4: place labels become ISO codes (`US/California` -> `US-CA`; a name the ISO table
/// cannot place -> the country alone), in the requesters' labels and in the region rows last
/// published (rows that become one are added up, their requesters joined).
fn places_as_iso_codes(conn: &Connection) -> rusqlite::Result<()> {
    let labels: Vec<String> = conn
        .prepare("SELECT DISTINCT region FROM requesters WHERE region LIKE '__/%'")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    {
        let mut relabel = conn.prepare("UPDATE requesters SET region = ?2 WHERE region = ?1")?;
        for old in &labels {
            if let Ok(new) = RegionLabel::parse_legacy(old) {
                relabel.execute([old.as_str(), new.as_str()])?;
            }
        }
    }
    conn.execute(
        "DELETE FROM coordinates WHERE label LIKE '__/%' AND label NOT LIKE 'AWS/%' AND label NOT LIKE 'GCP/%'",
        [],
    )?;
    let scopes: Vec<(String, String)> = conn
        .prepare("SELECT scope, data FROM published_regions")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare("UPDATE published_regions SET data = ?2 WHERE scope = ?1")?;
    for (scope, data) in scopes {
        let Ok(serde_json::Value::Object(rows)) = serde_json::from_str(&data) else {
            continue;
        };
        let mut merged = serde_json::Map::new();
        for (label, row) in rows {
            let label =
                RegionLabel::parse_legacy(&label).map_or(label, |label| label.as_str().to_owned());
            match merged.get_mut(&label) {
                None => {
                    merged.insert(label, row);
                }
                Some(existing) => merge_published_row(existing, &row),
            }
        }
        update.execute([scope, serde_json::Value::Object(merged).to_string()])?;
    }
    Ok(())
}

/// Adds a published region row (`{figures: {...}, requesters: [...]}`) into another.
fn merge_published_row(into: &mut serde_json::Value, row: &serde_json::Value) {
    if let (Some(into), Some(row)) = (into["figures"].as_object_mut(), row["figures"].as_object()) {
        for (name, value) in row {
            let sum = into
                .get(name)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
                + value.as_u64().unwrap_or(0);
            into.insert(name.clone(), sum.into());
        }
    }
    let mut requesters: Vec<serde_json::Value> =
        into["requesters"].as_array().cloned().unwrap_or_default();
    for requester in row["requesters"].as_array().into_iter().flatten() {
        if !requesters.contains(requester) {
            requesters.push(requester.clone());
        }
    }
    into["requesters"] = serde_json::Value::Array(requesters);
}

/// Version 1 stores written before `labelled_in` existed get the column.
fn add_labelled_in(conn: &Connection) -> rusqlite::Result<()> {
    let has_labelled_in = conn
        .prepare("SELECT 1 FROM pragma_table_info('requesters') WHERE name = 'labelled_in'")?
        .exists([])?;
    if !has_labelled_in {
        conn.execute_batch("ALTER TABLE requesters ADD COLUMN labelled_in INTEGER")?;
    }
    Ok(())
}

/// Version 2: a file record is keyed by the log's name (its last path segment); when one log
/// was recorded under several paths, the first record extracted stays.
fn identify_logs_by_name(conn: &Connection) -> rusqlite::Result<()> {
    let paths: Vec<String> = conn
        .prepare("SELECT path FROM files ORDER BY extracted_at, path")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    conn.execute_batch(
        "CREATE TABLE files_by_name AS SELECT * FROM files WHERE 0;
         DELETE FROM files_by_name;",
    )?;
    {
        let mut copy = conn.prepare(
            "INSERT OR IGNORE INTO files(path, size, gzip, lines, requests, excluded, rejected, extracted_at)
             SELECT ?2, size, gzip, lines, requests, excluded, rejected, extracted_at FROM files_by_name
             WHERE path = ?1",
        )?;
        conn.execute_batch("INSERT INTO files_by_name SELECT * FROM files; DELETE FROM files;")?;
        for path in &paths {
            let name = path.rsplit('/').next().unwrap_or(path);
            copy.execute([path.as_str(), name])?;
        }
    }
    conn.execute_batch("DROP TABLE files_by_name;")
}
