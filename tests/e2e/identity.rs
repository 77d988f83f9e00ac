//! Each log is counted exactly once, whatever path, link or layout it is found under: a log is
//! identified by its name (S3 makes it unique), not by its path relative to the directory given.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::common::{Env, copy_dir, fixture, stderr};

/// The nasty fixture in the date-partitioned layout under `root/logs`: 14 requests in 3 logs.
fn partitioned_logs(root: &Path) -> std::path::PathBuf {
    let logs = root.join("logs");
    copy_dir(&fixture("nasty/logs"), &logs);
    logs
}

/// Extracts the same logs once, and returns the dump: every later way of reaching them must
/// give exactly this.
fn reference_dump(logs: &Path) -> String {
    let env = Env::new();
    env.extract(&[logs], 0);
    env.dump()
}

#[test]
fn a_directory_and_its_subdirectory_count_once() {
    let env = Env::new();
    let logs = partitioned_logs(env.dir.path());
    let text = stderr(&env.extract(&[&logs, &logs.join("2021")], 0));
    assert!(
        text.contains("2 log files were found under more than one path or link and counted once"),
        "{text}"
    );
    assert_eq!(env.dump(), reference_dump(&logs));
}

#[test]
fn a_latest_symlink_and_a_symlinked_mirror_count_once() {
    let env = Env::new();
    let logs = partitioned_logs(env.dir.path());
    symlink("2021/06/02", logs.join("latest")).unwrap();
    let mirror = env.dir.path().join("mirror");
    symlink(&logs, &mirror).unwrap();
    let text = stderr(&env.extract(&[&logs, &mirror], 0));
    // 3 logs, found 3 + 1 (latest) + 4 (the mirror, with its latest) times
    assert!(text.contains("8 log files found"), "{text}");
    assert!(
        text.contains("5 log files were found under more than one path"),
        "{text}"
    );
    assert!(text.contains("3 new log files"), "{text}");
    assert_eq!(env.dump(), reference_dump(&logs));
}

#[test]
fn a_cron_line_moved_one_directory_down_extracts_nothing_again() {
    let env = Env::new();
    let logs = partitioned_logs(env.dir.path());
    env.extract(&[&logs], 0);
    let before = env.dump();
    let text = stderr(&env.extract(&[&logs.join("2021")], 0));
    assert!(text.contains("0 new log files"), "{text}");
    assert!(text.contains("2 already extracted"), "{text}");
    // and moved elsewhere altogether
    let moved = env.dir.path().join("archive/old-logs");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&logs, &moved).unwrap();
    let text = stderr(&env.extract(&[&moved], 0));
    assert!(text.contains("3 already extracted"), "{text}");
    assert_eq!(env.dump(), before);
}

/// A cache written by schema version 1 kept paths relative to the directory given; opening it
/// migrates the records to log names, merging a log recorded under two paths.
#[test]
fn a_version_1_cache_is_migrated_to_log_names() {
    let env = Env::new();
    let logs = partitioned_logs(env.dir.path());
    env.extract(&[&logs], 0);
    let before = env.dump();
    // turn the store back into what version 1 wrote: paths relative to a directory given, one
    // of them recorded twice (the double count this version fixes)
    let store = env.cache.join("s3tally.sqlite");
    let conn = rusqlite::Connection::open(&store).unwrap();
    conn.execute_batch(
        "UPDATE meta SET value = '1' WHERE key = 'schema_version';
         UPDATE files SET path = '2021/06/02/' || path WHERE path LIKE '2021-06-02-%';
         INSERT INTO files SELECT '06/02/' || substr(path, 12), size, gzip, lines, requests, excluded,
             rejected, extracted_at + 1 FROM files WHERE path LIKE '2021/06/02/%';",
    )
    .unwrap();
    let count = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM files", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(count(&conn), 4);
    drop(conn);
    let text = stderr(&env.extract(&[&logs.join("2021")], 0));
    assert!(text.contains("0 new log files"), "{text}");
    let conn = rusqlite::Connection::open(&store).unwrap();
    assert_eq!(count(&conn), 3);
    let version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, "5");
    let names: Vec<String> = conn
        .prepare("SELECT path FROM files ORDER BY path")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        names,
        [
            "2021-06-01-10-00-00-AAAAAAAAAAAAAAAA",
            "2021-06-02-00-00-00-BBBBBBBBBBBBBBBB",
            "2021-06-03-00-00-00-CCCCCCCCCCCCCCCC"
        ]
    );
    assert_eq!(env.dump(), before);
}
