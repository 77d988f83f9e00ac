//! `export parquet` over time and against faults: incremental runs add files and never rewrite;
//! a killed or stopped export is completed with nothing missing or doubled; options that change
//! the files need --full; another cache's destination is refused; S3 destinations; the export
//! stays out of publications.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::parquet::{
    all_rows, parquet_files, requesters_of, run, split_logs, without_region,
};
use crate::common::s3::{self, TestBucket};
use crate::common::venv::python_with_duckdb;
use crate::common::{Env, fixture, new_repo, signal, stderr, tree};

#[test]
fn incremental_exports_add_files_never_rewrite_and_equal_a_full_one() {
    let env = Env::new();
    let (first, later) = split_logs(&env);
    run(&env, &["extract", first.to_str().unwrap()], 0);
    let dest = env.dir.path().join("export");
    let dest_text = dest.to_str().unwrap();
    // exported before any region is known: every row says `missing`
    run(&env, &["export", "parquet", dest_text], 0);
    let before = parquet_files(&dest);
    let first_rows = all_rows(&dest);
    assert!(
        first_rows
            .iter()
            .all(|row| row.split('\t').nth(8) == Some("missing"))
    );
    let said = run(&env, &["export", "parquet", dest_text], 0);
    assert!(
        said.contains("nothing extracted since the last export"),
        "{said}"
    );
    assert_eq!(parquet_files(&dest), before);

    run(&env, &["extract", later.to_str().unwrap()], 0);
    let ranges = fixture("ranges");
    run(
        &env,
        &[
            "update",
            "regions",
            "--ranges-dir",
            ranges.to_str().unwrap(),
        ],
        0,
    );
    // the requesters of the rows already exported got a region (the later ones do not count)
    let said = run(&env, &["export", "parquet", dest_text], 0);
    let expected = format!(
        "{} requesters got a region since the last export",
        requesters_of(&first_rows).len()
    );
    assert!(said.contains(&expected), "{expected}\n{said}");
    let after = parquet_files(&dest);
    // every earlier file is still there, byte for byte; days that got late logs got a file more
    for (name, bytes) in &before {
        assert_eq!(after.get(name), Some(bytes), "{name}");
    }
    let days = |files: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, usize> {
        let mut days = BTreeMap::new();
        for name in files.keys() {
            *days
                .entry(name.rsplit_once('/').unwrap().0.to_owned())
                .or_default() += 1;
        }
        days
    };
    let (days_before, days_after) = (days(&before), days(&after));
    assert!(
        days_before
            .iter()
            .any(|(day, count)| days_after[day] == count + 1),
        "{days_before:?} {days_after:?}"
    );

    // the same rows as one full export but for the regions of the first rows, and as many as
    // the store holds
    let full = env.dir.path().join("full");
    run(&env, &["export", "parquet", full.to_str().unwrap()], 0);
    let rows = all_rows(&full);
    let strip = |rows: &[String]| {
        let mut stripped: Vec<String> = rows.iter().map(|row| without_region(row)).collect();
        stripped.sort();
        stripped
    };
    assert_eq!(strip(&all_rows(&dest)), strip(&rows));
    assert_ne!(all_rows(&dest), rows);
    assert_eq!(
        rows.len(),
        env.dump().lines().count() - 1,
        "the dump's header aside"
    );
    // --full rewrites with today's regions: one file per day again, the same rows
    let said = run(&env, &["export", "parquet", dest_text, "--full"], 0);
    assert!(!said.contains("warning"), "{said}");
    assert_eq!(
        parquet_files(&dest).keys().collect::<Vec<_>>(),
        parquet_files(&full).keys().collect::<Vec<_>>()
    );
    assert_eq!(all_rows(&dest), rows);
    // a destination emptied by hand is written whole again, not left empty
    std::fs::remove_dir_all(&dest).unwrap();
    let said = run(&env, &["export", "parquet", dest_text], 0);
    assert!(
        said.contains("holds none of the files exported before"),
        "{said}"
    );
    assert_eq!(all_rows(&dest), rows);
}

#[test]
fn a_killed_or_stopped_export_is_completed_with_nothing_missing_or_doubled() {
    let env = Env::new();
    let (first, later) = split_logs(&env);
    run(
        &env,
        &["extract", first.to_str().unwrap(), later.to_str().unwrap()],
        0,
    );
    let reference = env.dir.path().join("reference");
    run(&env, &["export", "parquet", reference.to_str().unwrap()], 0);
    let expected = all_rows(&reference);

    let dest = env.dir.path().join("export");
    let dest_text = dest.to_str().unwrap();
    // small files, slowly: the export is killed between two of them
    let args = ["export", "parquet", dest_text, "--rows-in-memory", "500"];
    for (how, code) in [(libc::SIGKILL, None), (libc::SIGTERM, Some(3))] {
        if dest.exists() {
            std::fs::remove_dir_all(&dest).unwrap();
        }
        let mut child = env.spawn(
            &[&args[..], &["--full"]].concat(),
            &[("S3TALLY_TEST_EXPORT_PAUSE_MS", "100")],
        );
        let start = std::time::Instant::now();
        while !dest.exists() || parquet_files(&dest).len() < 3 {
            assert!(start.elapsed().as_secs() < 60, "no file written");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        signal(&child, how);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), code);
        // only whole files are visible: DuckDB reads them all; some rows are missing
        let partial = all_rows(&dest);
        assert!(partial.len() < expected.len());
        // what a kill in the middle of a write leaves
        let day = parquet_files(&dest)
            .keys()
            .next()
            .unwrap()
            .rsplit_once('/')
            .unwrap()
            .0
            .to_owned();
        std::fs::write(
            dest.join(&day)
                .join("s3tally-00000001-00000002-0099.parquet.tmp"),
            b"half a file",
        )
        .unwrap();
        run(&env, &args, 0);
        assert_eq!(all_rows(&dest), expected, "after {how}");
        assert!(
            tree(&dest)
                .keys()
                .all(|name| !name.contains(".parquet.tmp"))
        );
    }
}

#[test]
fn other_options_need_full_and_the_requester_column_can_be_left_out() {
    let env = Env::new();
    run(
        &env,
        &["extract", fixture("dandi/logs").to_str().unwrap()],
        0,
    );
    let dest = env.dir.path().join("export");
    let dest_text = dest.to_str().unwrap();
    run(&env, &["export", "parquet", dest_text], 0);
    let said = run(&env, &["export", "parquet", dest_text, "--no-requester"], 2);
    assert!(said.contains("--full"), "{said}");
    run(
        &env,
        &["export", "parquet", dest_text, "--no-requester", "--full"],
        0,
    );
    let answers = duckdb_schema_only(&dest);
    assert!(
        !answers
            .iter()
            .any(|column| column.starts_with("requester\t"))
    );
    assert!(answers.iter().any(|column| column.starts_with("region\t")));
    // another cache's first export would remove this one's files: refused, nothing touched
    let other = Env::new();
    run(
        &other,
        &["extract", fixture("dandi/logs").to_str().unwrap()],
        0,
    );
    let before = parquet_files(&dest);
    let said = run(&other, &["export", "parquet", dest_text], 2);
    assert!(said.contains("another s3tally cache"), "{said}");
    assert_eq!(parquet_files(&dest), before);
    // a reset of this cache's extraction keeps it the owner
    run(&env, &["reset", "extraction", "--yes"], 0);
    run(
        &env,
        &["extract", fixture("dandi/logs").to_str().unwrap()],
        0,
    );
    run(&env, &["export", "parquet", dest_text, "--no-requester"], 0);
    // monthly folders
    let monthly = env.dir.path().join("monthly");
    run(
        &env,
        &[
            "export",
            "parquet",
            monthly.to_str().unwrap(),
            "--partition",
            "month",
        ],
        0,
    );
    let folders: Vec<String> = parquet_files(&monthly)
        .keys()
        .map(|name| name.rsplit_once('/').unwrap().0.to_owned())
        .collect();
    assert!(
        folders
            .iter()
            .all(|f| f.starts_with("year=2024/month=") && f.len() == 18),
        "{folders:?}"
    );
}

/// The schema rows of `DuckDB`'s view of an export without a requester column (the documented
/// queries need it for views, so only the schema is asked).
fn duckdb_schema_only(dest: &Path) -> Vec<String> {
    let output = Command::new(python_with_duckdb())
        .arg("-c")
        .arg(format!(
            "import duckdb\nfor name, kind in duckdb.sql(\"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{}/**/*.parquet'))\").fetchall(): print(name + '\\t' + kind)",
            dest.display()
        ))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_export_stays_out_of_publications() {
    let env = Env::new();
    run(
        &env,
        &["extract", fixture("dandi/logs").to_str().unwrap()],
        0,
    );
    let repo = new_repo(&env);
    // a destination inside a git working tree is refused
    let inside = repo.join("analytics");
    let said = run(&env, &["export", "parquet", inside.to_str().unwrap()], 2);
    assert!(said.contains("git working tree"), "{said}");
    assert!(!inside.exists());
    // a copy of it in the repository stops publish before anything is written
    run(&env, &["update", "summaries"], 0);
    let dest = env.dir.path().join("export");
    run(&env, &["export", "parquet", dest.to_str().unwrap()], 0);
    let copied = repo.join("notes/requests.parquet");
    std::fs::create_dir_all(copied.parent().unwrap()).unwrap();
    let (_, first) = parquet_files(&dest).into_iter().next().unwrap();
    std::fs::write(&copied, first).unwrap();
    let said = run(&env, &["publish", repo.to_str().unwrap()], 1);
    assert!(said.contains("Parquet"), "{said}");
    assert!(!repo.join("content").exists());
}

/// Every object of a bucket: key to bytes. The objects s3tally put are private: the requests
/// name the test key (this moto does not check signatures).
fn bucket_objects(bucket: &TestBucket) -> BTreeMap<String, Vec<u8>> {
    let owner = format!(
        "Authorization: AWS4-HMAC-SHA256 Credential={}/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n",
        s3::ACCESS_KEY
    );
    let get = |path: &str| s3::http_with(&bucket.server.address, "GET", path, &owner, b"");
    let (status, listing) = get(&format!("/{}?list-type=2", bucket.name));
    assert_eq!(status, 200);
    let listing = String::from_utf8(listing).unwrap();
    assert!(!listing.contains("<IsTruncated>true"), "one page expected");
    listing
        .split("<Key>")
        .skip(1)
        .map(|part| {
            let key = part.split("</Key>").next().unwrap().to_owned();
            let (status, body) = get(&format!("/{}/{key}", bucket.name));
            assert_eq!(status, 200);
            (key, body)
        })
        .collect()
}

#[test]
fn an_s3_destination_gets_the_same_files_and_only_new_ones_later() {
    let env = Env::new();
    let (first, later) = split_logs(&env);
    run(&env, &["extract", first.to_str().unwrap()], 0);
    let bucket = TestBucket::create("s3tally-export");
    let proxy = s3::proxy(bucket.server, |_, _| None);
    let endpoint = proxy.url.clone();
    let url = bucket.url("analytics/s3tally");
    let local = env.dir.path().join("local");
    // something else in the bucket is left alone
    bucket.put_all(&[(
        "analytics/s3tally/README.txt".to_owned(),
        b"theirs".to_vec(),
    )]);

    s3::run(&env, &endpoint, &["export", "parquet", &url], 0);
    run(&env, &["export", "parquet", local.to_str().unwrap()], 0);
    let ours = |objects: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        objects
            .into_iter()
            .filter_map(|(key, bytes)| {
                let relative = key.strip_prefix("analytics/s3tally/")?;
                (relative != "README.txt").then(|| (relative.to_owned(), bytes))
            })
            .collect()
    };
    let same = |objects: BTreeMap<String, Vec<u8>>| {
        // compared by name, then byte for byte (a failure does not print megabytes)
        let (objects, files) = (ours(objects), tree(&local));
        assert_eq!(
            objects.keys().collect::<Vec<_>>(),
            files.keys().collect::<Vec<_>>()
        );
        assert!(objects == files, "same names, other bytes");
    };
    same(bucket_objects(&bucket));

    run(&env, &["extract", later.to_str().unwrap()], 0);
    let before = proxy.requests().len();
    s3::run(&env, &endpoint, &["export", "parquet", &url], 0);
    run(&env, &["export", "parquet", local.to_str().unwrap()], 0);
    let objects = bucket_objects(&bucket);
    same(objects.clone());
    assert!(objects.contains_key("analytics/s3tally/README.txt"));
    // the second run put only files of the new batches, and deleted nothing
    let requests = proxy.requests();
    let puts: Vec<&str> = requests[before..]
        .iter()
        .filter(|request| request.method == "PUT")
        .map(|request| request.path.as_str())
        .collect();
    assert!(!puts.is_empty());
    assert!(
        puts.iter().all(|path| !path.contains("s3tally-00000001-")),
        "{puts:?}"
    );
    assert!(
        !requests[before..]
            .iter()
            .any(|request| request.method == "DELETE")
    );
}
