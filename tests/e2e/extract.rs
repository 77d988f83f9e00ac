//! End-to-end tests of `extract` and `dump` on fixtures whose expected rows were derived by hand
//! (fixtures/nasty) or by the Python tool s3-log-extraction (fixtures/s3-log-extraction-examples).

use std::collections::{BTreeMap, HashMap};

use crate::common::{Env, copy_dir, fixture, per_object};

/// Checks `dump` against a fixture's `expected-dump.tsv` written by hand: the first four columns
/// exactly, the requester as an opaque id that maps one to one onto the IPs written there, and a
/// client class in every row.
fn assert_dump_is(env: &Env, expected_file: &str, distinct_ips: usize) {
    let dump = env.dump();
    let expected = std::fs::read_to_string(fixture(expected_file)).unwrap();
    let mut dump_lines = dump.lines();
    assert_eq!(
        dump_lines.next(),
        Some("object_key\ttimestamp\tbytes_sent\tstatus\trequester\tclient_class\tclient_family")
    );
    let expected_rows: Vec<&str> = expected.lines().skip(1).collect();
    let rows: Vec<&str> = dump_lines.collect();
    assert_eq!(rows.len(), expected_rows.len(), "{dump}");
    let mut id_of_ip: HashMap<String, String> = HashMap::new();
    let mut ip_of_id: HashMap<String, String> = HashMap::new();
    for (row, expected_row) in rows.iter().zip(&expected_rows) {
        let fields: Vec<&str> = row.split('\t').collect();
        assert_eq!(fields.len(), 7, "{row:?}");
        let (got, requester) = (fields[..4].join("\t"), fields[4]);
        let class = fields[5];
        assert!(
            ["browser", "tool", "robot", "unknown"].contains(&class),
            "{row:?}"
        );
        let (want, ip) = expected_row.rsplit_once('\t').unwrap();
        assert_eq!(got, want);
        assert_eq!(requester.len(), 16);
        assert!(!requester.contains(ip));
        assert_eq!(
            id_of_ip.entry(ip.into()).or_insert(requester.into()),
            requester
        );
        assert_eq!(ip_of_id.entry(requester.into()).or_insert(ip.into()), ip);
    }
    assert_eq!(id_of_ip.len(), distinct_ips);
}

/// Checks the rejects report against a fixture's `expected-rejects.tsv` (file and line), and
/// that each rejected line is also named on standard error.
fn assert_rejects_are(env: &Env, stderr: &str, expected_file: &str) {
    let report = std::fs::read_to_string(env.cache.join("rejects.tsv")).unwrap();
    let expected = std::fs::read_to_string(fixture(expected_file)).unwrap();
    let located: Vec<String> = report
        .lines()
        .map(|line| line.split('\t').take(2).collect::<Vec<_>>().join("\t"))
        .collect();
    assert_eq!(located, expected.lines().collect::<Vec<_>>());
    for line in expected.lines().skip(1) {
        let (file, number) = line.split_once('\t').unwrap();
        assert!(
            stderr.contains(&format!("rejected {file}:{number}:")),
            "{stderr}"
        );
    }
}

#[test]
fn nasty_lines_give_the_rows_written_by_hand() {
    let env = Env::new();
    let output = env.extract(&[&fixture("nasty/logs")], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 log files found"), "{stderr}");
    assert!(stderr.contains("1 other files ignored"), "{stderr}");
    assert!(stderr.contains("11 requests"), "{stderr}");
    assert!(stderr.contains("2 rejected lines"), "{stderr}");
    assert_dump_is(&env, "nasty/expected-dump.tsv", 4);
}

#[test]
fn rejected_lines_are_reported_with_file_and_line() {
    let env = Env::new();
    let output = env.extract(&[&fixture("nasty/logs")], 0);
    assert_rejects_are(
        &env,
        &String::from_utf8_lossy(&output.stderr),
        "nasty/expected-rejects.tsv",
    );
}

/// A requester with spaces (a `CloudFront` origin access identity), a bare `-` referrer and empty
/// fields written `""` are read; an operation field not shaped like one and a clock out of range
/// are rejected with a reason, never skipped nor rolled into another day.
#[test]
fn real_shapes_are_read_or_rejected_never_skipped() {
    let env = Env::new();
    let output = env.extract(&[&fixture("shapes/logs")], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("4 requests"), "{stderr}");
    assert!(stderr.contains("2 rejected lines"), "{stderr}");
    assert!(stderr.contains("no operation field"), "{stderr}");
    assert!(stderr.contains("real date and time"), "{stderr}");
    assert_dump_is(&env, "shapes/expected-dump.tsv", 3);
    assert_rejects_are(&env, &stderr, "shapes/expected-rejects.tsv");
}

/// Reads the Python tool's expected extraction: per object key, sorted (`YYMMDDhhmmss`, bytes, download).
fn anchor_expected() -> BTreeMap<String, Vec<(String, u64, u64)>> {
    let root = fixture("s3-log-extraction-examples/expected/extraction");
    let mut expected = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.unwrap();
        if entry.file_name() != "bytes_sent.txt" {
            continue;
        }
        let dir = entry.path().parent().unwrap();
        let key = dir
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let read = |name: &str| -> Vec<String> {
            std::fs::read_to_string(dir.join(name))
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        };
        let times = read("timestamps.txt");
        let bytes = read("bytes_sent.txt");
        let downloads = read("download.txt");
        let mut rows: Vec<_> = (0..times.len())
            .map(|i| {
                (
                    times[i].clone(),
                    bytes[i].parse().unwrap(),
                    downloads[i].parse().unwrap(),
                )
            })
            .collect();
        rows.sort();
        expected.insert(key, rows);
    }
    expected
}

#[test]
fn example_logs_match_the_python_tool() {
    let env = Env::new();
    env.extract(&[&fixture("s3-log-extraction-examples/logs")], 0);
    let dump = env.dump();
    let mut ours: BTreeMap<String, Vec<(String, u64, u64)>> = BTreeMap::new();
    for line in dump.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        // 2020-01-01T05:06:35Z -> 200101050635
        let t = f[1];
        let short = format!(
            "{}{}{}{}{}{}",
            &t[2..4],
            &t[5..7],
            &t[8..10],
            &t[11..13],
            &t[14..16],
            &t[17..19]
        );
        ours.entry(f[0].to_owned()).or_default().push((
            short,
            f[2].parse().unwrap(),
            u64::from(f[3] == "200"),
        ));
    }
    for rows in ours.values_mut() {
        rows.sort();
    }
    let expected = anchor_expected();
    assert_eq!(expected.len(), 7);
    assert_eq!(ours, expected);
}

#[test]
fn a_second_run_extracts_nothing_and_changes_nothing() {
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let first = env.dump();
    let output = env.extract(&[&fixture("nasty/logs")], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("0 new log files"), "{stderr}");
    assert!(stderr.contains("3 already extracted"), "{stderr}");
    assert_eq!(env.dump(), first);
}

#[test]
fn new_files_are_added_and_compressed_copies_are_not_counted_twice() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    copy_dir(&fixture("s3-log-extraction-examples/logs"), &logs);
    std::fs::remove_file(logs.join("2022-01-01-05-06-35-0123456789ABCDEF")).unwrap();
    env.extract(&[&logs], 0);
    assert_eq!(per_object(&env.dump()).len(), 3);
    copy_dir(&fixture("s3-log-extraction-examples/logs"), &logs);
    env.extract(&[&logs], 0);
    let all = env.dump();
    assert_eq!(per_object(&all).len(), 7);

    // gzip the first file in place: it is the same log, already extracted
    let name = "2020-01-01-05-06-35-0123456789ABCDEF";
    let data = std::fs::read(logs.join(name)).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &data).unwrap();
    std::fs::write(logs.join(format!("{name}.gz")), encoder.finish().unwrap()).unwrap();
    std::fs::remove_file(logs.join(name)).unwrap();
    env.extract(&[&logs], 0);
    assert_eq!(env.dump(), all);
}

#[test]
fn a_file_that_grew_is_reported_not_counted_again() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    copy_dir(&fixture("s3-log-extraction-examples/logs"), &logs);
    env.extract(&[&logs], 0);
    let before = env.dump();
    let path = logs.join("2020-01-01-05-06-35-0123456789ABCDEF");
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(b"one more line\n");
    std::fs::write(&path, data).unwrap();
    let output = env.extract(&[&logs], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2020-01-01-05-06-35-0123456789ABCDEF has changed size"),
        "{stderr}"
    );
    assert_eq!(env.dump(), before);
}

#[test]
fn excluded_requesters_are_left_out() {
    let env = Env::new();
    let output = env.run(&[
        "extract",
        fixture("nasty/logs").to_str().unwrap(),
        "--exclude-ip",
        "192.0.2.0/24",
        "--exclude-ip",
        "2001:db8::20",
        "--exclude-ip-regex",
        r"^203\.0\.113\.",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // left: the three requests of 198.51.100.5 (by hand from expected-dump.tsv)
    assert!(stderr.contains("3 requests, 8 excluded"), "{stderr}");
    let objects = per_object(&env.dump());
    assert_eq!(objects.keys().collect::<Vec<_>>(), ["ds2/c.txt"]);
    assert_eq!(objects["ds2/c.txt"], (3, 106, 1));
}

#[test]
fn dump_of_one_object() {
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let output = env.run(&["dump", "--object", "ds2/c.txt"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        per_object(&text).into_iter().collect::<Vec<_>>(),
        [("ds2/c.txt".to_owned(), (3, 106, 1))]
    );
}

#[test]
fn status_shows_the_counts() {
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let output = env.run(&["status"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let value = |what: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("{what} in {text}"));
        line.split('│').nth(2).unwrap().trim().to_owned()
    };
    assert_eq!(value("log files extracted"), "3");
    assert_eq!(value("requests (GET, 2xx)"), "11");
    assert_eq!(value("rejected lines"), "2");
    assert_eq!(value("objects"), "4");
    assert_eq!(value("requesters pending lookup"), "4");
}

#[test]
fn the_remembered_cache_is_used() {
    let env = Env::new();
    let remembered = env.dir.path().join("remembered");
    let set = std::process::Command::new(env!("CARGO_BIN_EXE_s3tally"))
        .env("S3TALLY_CONFIG_DIR", &env.config)
        .env_remove("S3TALLY_CACHE")
        .args(["config", "cache", "set"])
        .arg(&remembered)
        .output()
        .unwrap();
    assert!(set.status.success());
    let extract = std::process::Command::new(env!("CARGO_BIN_EXE_s3tally"))
        .env("S3TALLY_CONFIG_DIR", &env.config)
        .env("S3TALLY_SALT", &env.salt)
        .env_remove("S3TALLY_CACHE")
        .arg("extract")
        .arg(fixture("nasty/logs"))
        .output()
        .unwrap();
    assert!(extract.status.success());
    assert!(remembered.join("s3tally.sqlite").exists());
    assert!(!env.cache.exists());
}

#[test]
fn generated_logs_give_the_same_dump_whatever_the_batches() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    crate::common::generate_logs(&logs, 3, 0.2, 11);
    env.extract(&[&logs], 0);
    let one_run = env.dump();
    let small = Env::new();
    let output = small.run(&[
        "extract",
        logs.to_str().unwrap(),
        "--batch-files",
        "1",
        "--threads",
        "1",
    ]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(small.dump(), one_run);
    assert!(one_run.lines().count() > 1000);
}
