//! Privacy: raw IPs are at rest only in the store's pending-lookup list; nothing else the tool
//! writes or prints holds one.

use crate::common::{Env, files_containing, fixture};

/// Every IP written in fixtures/nasty/logs, in the forms the logs use.
const IPS: [&str; 5] = [
    "192.0.2.10",
    "2001:db8::20",
    "2001:0db8:0000::0020",
    "198.51.100.5",
    "203.0.113.7",
];

#[test]
fn raw_ips_are_only_in_the_pending_lookup_list() {
    let env = Env::new();
    let output = env.extract(&[&fixture("nasty/logs")], 0);
    let dump = env.dump();
    let status = env.run(&["status"]);
    let printed = [
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        dump,
        String::from_utf8_lossy(&status.stdout).into_owned(),
    ];
    for ip in IPS {
        for text in &printed {
            assert!(!text.contains(ip), "{ip} printed: {text}");
        }
        // config directory (salt), rejects report, lock file: none
        for file in files_containing(env.dir.path(), ip) {
            assert!(
                file.ends_with("cache/s3tally.sqlite"),
                "{ip} found in {}",
                file.display()
            );
        }
    }
    // the rejected lines (which hold 192.0.2.10) are kept masked
    let rejects = std::fs::read_to_string(env.cache.join("rejects.tsv")).unwrap();
    assert!(rejects.contains("<ip>"), "{rejects}");

    // inside the store, the raw IPs are the pending-lookup list and nothing else: empty that list
    // and no IP is left anywhere in the database file
    let db = env.cache.join("s3tally.sqlite");
    let connection = rusqlite::Connection::open(&db).unwrap();
    let pending: Vec<String> = connection
        .prepare("SELECT ip FROM pending_lookups ORDER BY ip")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        pending,
        ["192.0.2.10", "198.51.100.5", "2001:db8::20", "203.0.113.7"]
    );
    // (as the regions stage will: with secure delete, so that freed pages are zeroed)
    connection
        .pragma_update(None, "secure_delete", "ON")
        .unwrap();
    connection
        .execute("DELETE FROM pending_lookups", [])
        .unwrap();
    connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(connection);
    for ip in IPS {
        assert!(files_containing(env.dir.path(), ip).is_empty(), "{ip} left");
    }
}
