//! Bad input gives one clear message and the documented exit code, and loses nothing.

use crate::common::{Env, copy_dir, fixture, per_object, stderr};

#[test]
fn an_unreadable_file_is_named_the_rest_is_extracted_and_it_is_retried() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    copy_dir(&fixture("nasty/logs"), &logs);
    let broken = logs.join("2021-06-04-00-00-00-DDDDDDDDDDDDDDDD.gz");
    std::fs::write(&broken, b"\x1f\x8b\x08\x00 this is not gzip data").unwrap();
    let output = env.extract(&[&logs], 1);
    let text = stderr(&output);
    assert!(
        text.contains("cannot read") && text.contains("2021-06-04-00-00-00-DDDDDDDDDDDDDDDD.gz"),
        "{text}"
    );
    assert_eq!(
        per_object(&env.dump()).values().map(|v| v.0).sum::<u64>(),
        11
    );
    // still broken: tried again, still named
    assert!(stderr(&env.extract(&[&logs], 1)).contains("DDDDDDDDDDDDDDDD"));
    // repaired: extracted now, once
    let line = "o b [04/Jun/2021:00:00:00 +0000] 192.0.2.10 - R REST.GET.OBJECT ds9/x \"GET /ds9/x HTTP/1.1\" 200 - 5 5 1 1 \"-\" \"-\" -\n";
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, line.as_bytes()).unwrap();
    std::fs::write(&broken, encoder.finish().unwrap()).unwrap();
    env.extract(&[&logs], 0);
    let objects = per_object(&env.dump());
    assert_eq!(objects["ds9/x"], (1, 5, 1));
    assert_eq!(objects.values().map(|v| v.0).sum::<u64>(), 12);
}

#[test]
fn a_missing_directory_is_bad_usage_and_creates_nothing() {
    let env = Env::new();
    let missing = env.dir.path().join("no-such-dir");
    let output = env.extract(&[&missing], 2);
    let text = stderr(&output);
    assert!(
        text.contains("no-such-dir") && text.contains("does not exist"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!env.cache.exists());
}

#[test]
fn an_empty_directory_says_there_is_nothing() {
    let env = Env::new();
    let empty = env.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let text = stderr(&env.extract(&[&empty], 0));
    assert!(text.contains("no S3 access-log files"), "{text}");
}

#[test]
fn a_directory_of_other_files_says_they_were_ignored() {
    let env = Env::new();
    let other = env.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "hello").unwrap();
    std::fs::write(other.join("2020-01-01.csv"), "a,b").unwrap();
    let text = stderr(&env.extract(&[&other], 0));
    assert!(text.contains("2 other files ignored"), "{text}");
    assert!(text.contains("no S3 access-log files"), "{text}");
}

#[test]
fn an_unwritable_cache_is_one_clear_error() {
    let mut env = Env::new();
    let file = env.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    env.cache = file.join("cache");
    let text = stderr(&env.extract(&[&fixture("nasty/logs")], 1));
    assert!(text.contains("cannot create cache directory"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn a_different_salt_is_refused() {
    let mut env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let before = env.dump();
    env.salt = "another salt, at least sixteen characters".into();
    let text = stderr(&env.extract(&[&fixture("s3-log-extraction-examples/logs")], 1));
    assert!(text.contains("another salt"), "{text}");
    env.salt = crate::common::SALT.into();
    assert_eq!(env.dump(), before);
}

#[test]
fn a_bad_exclusion_is_bad_usage() {
    let env = Env::new();
    let output = env.run(&[
        "extract",
        fixture("nasty/logs").to_str().unwrap(),
        "--exclude-ip",
        "not-an-ip",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not-an-ip"));
    let output = env.run(&[
        "extract",
        fixture("nasty/logs").to_str().unwrap(),
        "--exclude-ip-regex",
        "(",
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn dump_and_status_without_a_store_say_so() {
    let env = Env::new();
    for command in ["dump", "status"] {
        let output = env.run(&[command]);
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("run `s3tally extract LOG_DIR` first"));
    }
}

/// A store that is empty, not a store, or has a schema version that is not a number is an error
/// naming the file and saying how to recover: never a silent new store, never `no such table`.
#[test]
fn a_store_that_is_empty_damaged_or_odd_is_named_with_what_to_do() {
    let cases: [(&str, &[u8], &str); 2] = [
        ("empty", b"", "is empty"),
        (
            "text",
            b"these are not the bytes of a database\n",
            "is not an s3tally store",
        ),
    ];
    for (name, bytes, said) in cases {
        let env = Env::new();
        std::fs::create_dir_all(&env.cache).unwrap();
        let store = env.cache.join("s3tally.sqlite");
        std::fs::write(&store, bytes).unwrap();
        for args in [
            vec!["status"],
            vec!["dump"],
            vec!["extract", fixture("nasty/logs").to_str().unwrap()],
        ] {
            let output = env.run(&args);
            let text = stderr(&output);
            assert_eq!(output.status.code(), Some(1), "{name} {args:?}: {text}");
            assert!(
                text.contains(said) && text.contains("s3tally.sqlite"),
                "{name} {args:?}: {text}"
            );
            assert!(text.contains("restore it from a backup"), "{text}");
            assert!(!text.contains("no such table"), "{text}");
        }
        // left as it was: nothing was counted into it
        assert_eq!(std::fs::read(&store).unwrap(), bytes, "{name}");
    }
    // a schema version that is not a number is not "newer than this s3tally"
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let conn = rusqlite::Connection::open(env.cache.join("s3tally.sqlite")).unwrap();
    conn.execute(
        "UPDATE meta SET value = 'v3-beta' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let text = stderr(&env.run(&["status"]));
    assert!(text.contains("`v3-beta`, which is not a number"), "{text}");
    assert!(!text.contains("newer"), "{text}");
}

/// `SQLite`'s message and its cause are the same text: said once.
#[test]
fn a_damaged_store_is_said_once() {
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let store = env.cache.join("s3tally.sqlite");
    let mut bytes = std::fs::read(&store).unwrap();
    assert!(bytes.len() > 3 * 16384);
    // the pages after the first (the schema) are garbage now
    for byte in &mut bytes[16384 + 8..] {
        *byte = 0xA5;
    }
    std::fs::write(&store, bytes).unwrap();
    let output = env.run(&["dump"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("s3tally.sqlite"), "{text}");
    for phrase in ["malformed", "not a database"] {
        assert!(text.matches(phrase).count() <= 1, "{text}");
    }
    assert!(
        text.contains("malformed") || text.contains("not a database"),
        "{text}"
    );
}

/// Several first runs at once on a fresh config directory agree on one salt: the key file is
/// created whole and atomically, and the runs that lose the race read the winner's.
#[test]
fn first_runs_racing_for_the_salt_agree_on_one() {
    let env = Env::new();
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let cache = env.dir.path().join(format!("cache{i}"));
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_s3tally"));
            command
                .env_remove("S3TALLY_SALT")
                .env_remove("S3TALLY_CACHE")
                .env("S3TALLY_CONFIG_DIR", &env.config)
                .args(["--cache", cache.to_str().unwrap(), "extract"])
                .arg(fixture("nasty/logs"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            (cache, command.spawn().unwrap())
        })
        .collect();
    let mut fingerprints = std::collections::BTreeSet::new();
    for (cache, child) in runs {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let conn = rusqlite::Connection::open(cache.join("s3tally.sqlite")).unwrap();
        let fingerprint: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'salt_fingerprint'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        fingerprints.insert(fingerprint);
    }
    assert_eq!(fingerprints.len(), 1, "{fingerprints:?}");
    let names: Vec<_> = std::fs::read_dir(&env.config)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["salt.key"], "temporary files left: {names:?}");
}

/// A `.gz` log whose complete member is followed by garbage yields that member's requests and a
/// warning naming it, once (it is recorded, not retried every run); an empty `.gz` is an empty log.
#[test]
fn trailing_gzip_garbage_warns_once_and_an_empty_gz_is_an_empty_log() {
    use std::io::Write;
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let line = "owner bucket [02/Jul/2024:10:00:00 +0000] 192.0.2.1 - R REST.GET.OBJECT ds/a \"GET /ds/a HTTP/1.1\" 200 - 7 7 1 1 \"-\" \"-\" -\n";
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(line.repeat(3).as_bytes()).unwrap();
    let mut bytes = encoder.finish().unwrap();
    bytes.extend_from_slice(b"\x00\x00\x00 garbage appended by a broken copy");
    std::fs::write(logs.join("2024-07-02-10-00-00-AAAAAAAAAAAAAAAA.gz"), bytes).unwrap();
    std::fs::write(logs.join("2024-07-02-11-00-00-BBBBBBBBBBBBBBBB.gz"), b"").unwrap();
    let text = stderr(&env.extract(&[&logs], 0));
    assert!(
        text.contains(
            "AAAAAAAAAAAAAAAA.gz: bytes after its last complete gzip member were ignored"
        ),
        "{text}"
    );
    assert!(
        text.contains("2 new log files") && text.contains("3 requests"),
        "{text}"
    );
    let again = stderr(&env.extract(&[&logs], 0));
    assert!(
        again.contains("2 already extracted") && !again.contains("warning"),
        "{again}"
    );
}

/// Runs s3tally with `args` where the cache is on a read-only file system (a read-only bind
/// mount in a private mount namespace: the suite runs as root, as CI does; this fails loudly
/// where it cannot).
fn on_read_only_cache(env: &Env, args: &str) -> std::process::Output {
    let cache = env.cache.display();
    let binary = env!("CARGO_BIN_EXE_s3tally");
    let script = format!(
        "mount --bind {cache} {cache} && mount -o remount,bind,ro {cache} && exec {binary} --cache {cache} {args}"
    );
    let output = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("S3TALLY_CONFIG_DIR", &env.config)
        .env("S3TALLY_SALT", &env.salt)
        .output()
        .expect("unshare runs (util-linux)");
    let text = stderr(&output);
    assert!(
        !text.contains("mount:"),
        "cannot make a read-only file system here: {text}"
    );
    output
}

/// `status` and `dump` work on a cache the user may not write; when they cannot, they say why.
#[test]
fn read_only_use_works_or_says_exactly_why_not() {
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let expected = env.dump();
    let status = on_read_only_cache(&env, "status");
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert!(String::from_utf8_lossy(&status.stdout).contains("log files extracted"));
    let dump = on_read_only_cache(&env, "dump");
    assert_eq!(String::from_utf8(dump.stdout).unwrap(), expected);
    // a write-ahead log holding changes, and no -shm a reader could use: said exactly
    let writer = rusqlite::Connection::open(env.cache.join("s3tally.sqlite")).unwrap();
    writer
        .execute("INSERT INTO meta(key, value) VALUES ('probe', '1')", [])
        .unwrap();
    std::fs::remove_file(env.cache.join("s3tally.sqlite-shm")).unwrap();
    let blocked = on_read_only_cache(&env, "status");
    assert_eq!(blocked.status.code(), Some(1));
    let text = stderr(&blocked);
    assert!(
        text.contains("s3tally.sqlite-wal holds changes not yet moved into the store"),
        "{text}"
    );
    drop(writer);
}
