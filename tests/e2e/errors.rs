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
