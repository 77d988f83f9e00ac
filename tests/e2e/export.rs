//! `export parquet`: `DuckDB` (from `PyPI`, run by Python) reads the export and its answers, from
//! the queries of docs/scale.md, equal s3tally's exact summaries row for row; incremental runs add
//! files and never rewrite; a killed or stopped export is completed with nothing missing or
//! doubled; S3 destinations; privacy (publish refuses it, no IP in it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::s3::{self, TestBucket};
use crate::common::venv::python_with_duckdb;
use crate::common::{EXACT, Env, fixture, generate_logs, new_repo, signal, stderr, tree};

/// `DuckDB`'s answers to the queries of docs/scale.md over the export in `dir`: query name to rows
/// (with `rows`, also `schema` and `rows`: every row).
fn duckdb(dir: &Path, rows: bool) -> BTreeMap<String, Vec<String>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/scripts/duckdb_queries.py");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scale.md");
    let mut command = Command::new(python_with_duckdb());
    command.arg(script).arg(docs).arg(dir);
    if rows {
        command.arg("--rows");
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "DuckDB: {}", stderr(&output));
    let mut answers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        if let Some(name) = line.strip_prefix("### ") {
            name.clone_into(&mut current);
            answers.entry(current.clone()).or_default();
        } else {
            answers.get_mut(&current).unwrap().push(line.to_owned());
        }
    }
    answers
}

/// Runs s3tally; panics unless the exit code is `expected`. Standard error.
fn run(env: &Env, args: &[&str], expected: i32) -> String {
    let output = env.run(args);
    assert_eq!(output.status.code(), Some(expected), "{}", stderr(&output));
    stderr(&output)
}

/// The exact summaries as `DuckDB`'s queries answer them: `dataset<TAB>row` for the per-dataset
/// queries, `row` for the archive's, each query's rows in file order.
fn summaries_as_rows(summaries: &Path) -> BTreeMap<String, Vec<String>> {
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut datasets: Vec<String> = walkdir::WalkDir::new(summaries)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name() == "by_day.tsv")
        .map(|entry| {
            let dir = entry
                .path()
                .parent()
                .unwrap()
                .strip_prefix(summaries)
                .unwrap();
            dir.to_string_lossy().into_owned()
        })
        .collect();
    datasets.sort();
    for dataset in &datasets {
        for table in ["by_day", "by_asset", "by_region"] {
            let path = summaries.join(dataset).join(format!("{table}.tsv"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                assert!(
                    dataset == "archive" && table == "by_asset",
                    "{}",
                    path.display()
                );
                continue;
            };
            let rows = text.lines().skip(1).map(str::to_owned);
            if dataset == "archive" {
                expected
                    .entry(format!("archive {table}"))
                    .or_default()
                    .extend(rows);
            } else {
                expected
                    .entry(table.to_owned())
                    .or_default()
                    .extend(rows.map(|row| format!("{dataset}\t{row}")));
            }
        }
    }
    expected
}

/// Exports into `dest` and checks that `DuckDB`'s answers equal the exact summaries, row for row
/// (`grouping`: the dataset options of both).
fn check_against_summaries(env: &Env, dest: &Path, grouping: &[&str]) {
    let mut export = vec!["export", "parquet", dest.to_str().unwrap()];
    export.extend(grouping);
    run(env, &export, 0);
    let summaries = env.dir.path().join("exact");
    let mut args = vec![
        "update",
        "summaries",
        "--output",
        summaries.to_str().unwrap(),
    ];
    args.extend(EXACT);
    args.extend(grouping);
    run(env, &args, 0);
    let expected = summaries_as_rows(&summaries);
    let answers = duckdb(dest, false);
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (query, rows) in &expected {
        assert!(rows.len() > 1, "{query}: too few rows to prove anything");
        assert_eq!(&answers[query], rows, "{query}");
    }
}

#[test]
fn duckdb_over_the_export_reproduces_the_exact_summaries() {
    // every fixture, labelled offline (places, clouds, bogons): many datasets and regions
    let env = Env::new();
    let ranges = fixture("ranges");
    let geoip = fixture("geoip/s3tally-test-city.mmdb");
    let fixtures = fixture("");
    run(
        &env,
        &[
            "run",
            fixtures.to_str().unwrap(),
            "--ranges-dir",
            ranges.to_str().unwrap(),
            "--geoip-db",
            geoip.to_str().unwrap(),
            "--label-style",
            "iso",
        ],
        0,
    );
    let dest = env.dir.path().join("export");
    check_against_summaries(&env, &dest, &["--label-style", "iso"]);

    // the columns and their types, as an engine sees them
    let answers = duckdb(&dest, true);
    assert_eq!(
        answers["schema"],
        [
            "time\tTIMESTAMP WITH TIME ZONE",
            "dataset\tVARCHAR",
            "asset\tVARCHAR",
            "object_key\tVARCHAR",
            "bytes_sent\tBIGINT",
            "status\tSMALLINT",
            "download\tBOOLEAN",
            "requester\tBIGINT",
            "region\tVARCHAR",
            "country\tVARCHAR",
            "in_archive\tBOOLEAN",
            "day\tVARCHAR",
            "month\tVARCHAR",
            "year\tBIGINT",
        ]
    );
    // one row per extracted request (no map: no key shared)
    let dump = env.dump();
    assert!(dump.starts_with("object_key\t"), "a header line first");
    assert_eq!(answers["rows"].len(), dump.lines().count() - 1);
    // no address of the logs anywhere in the rows, and none in the files' bytes
    let all_rows = answers["rows"].join("\n");
    for address in ["192.0.2.", "198.51.100.", "203.0.113.", "2001:db8:"] {
        assert!(!all_rows.contains(address), "{address}");
    }
    for (name, bytes) in tree(&dest) {
        assert!(
            name.ends_with(".parquet") || name == "_s3tally_export.json",
            "{name}"
        );
        assert!(
            !bytes
                .windows(8)
                .any(|w| w == b"192.0.2." || w == b"203.0.11"),
            "{name}"
        );
    }
}

#[test]
fn duckdb_counts_a_shared_key_in_each_dataset_and_once_in_the_archive() {
    let env = Env::new();
    let logs = fixture("dandi/logs");
    let ranges = fixture("ranges");
    let map = fixture("dandi/map.tsv");
    // `run` exports last, with the summaries' datasets
    let from_run = env.dir.path().join("from-run");
    let said = run(
        &env,
        &[
            "run",
            logs.to_str().unwrap(),
            "--ranges-dir",
            ranges.to_str().unwrap(),
            "--dataset-map",
            map.to_str().unwrap(),
            "--export-parquet",
            from_run.to_str().unwrap(),
        ],
        0,
    );
    assert!(said.contains("run: export done"), "{said}");
    let dest = env.dir.path().join("export");
    check_against_summaries(&env, &dest, &["--dataset-map", map.to_str().unwrap()]);
    assert_eq!(all_rows(&from_run), all_rows(&dest));
    // the shared video: one row per Dandiset, one of them counted in the archive
    let rows = duckdb(&dest, true)["rows"].clone();
    let video: Vec<&String> = rows
        .iter()
        .filter(|row| row.contains("b0b00000-0000-4000-8000-00000000000b"))
        .collect();
    assert!(!video.is_empty());
    // in_archive is the 11th column
    let in_archive = video
        .iter()
        .filter(|row| row.split('\t').nth(10) == Some("True"))
        .count();
    assert_eq!(video.len(), 2 * in_archive, "{video:#?}");
}

/// The Parquet files under `dir`: relative path to bytes.
fn parquet_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir)
        .into_iter()
        .filter(|(name, _)| name.ends_with(".parquet"))
        .collect()
}

/// Every row of an export, sorted, without the file it came from.
fn all_rows(dest: &Path) -> Vec<String> {
    duckdb(dest, true)["rows"].clone()
}

/// Splits generated logs into two directories: even files first, odd ones later (so the later
/// ones add to days already exported).
fn split_logs(env: &Env) -> (PathBuf, PathBuf) {
    let all = env.dir.path().join("all");
    generate_logs(&all, 3, 0.1, 7);
    let first = env.dir.path().join("first");
    let later = env.dir.path().join("later");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&later).unwrap();
    let mut names: Vec<PathBuf> = walkdir::WalkDir::new(&all)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{}", names.len());
    for (i, path) in names.iter().enumerate() {
        let into = if i % 2 == 0 { &first } else { &later };
        std::fs::copy(path, into.join(path.file_name().unwrap())).unwrap();
    }
    (first, later)
}

/// The distinct requesters of some rows (as `DuckDB` prints them: the 8th column).
fn requesters_of(rows: &[String]) -> std::collections::BTreeSet<String> {
    rows.iter()
        .map(|row| row.split('\t').nth(7).unwrap().to_owned())
        .collect()
}

/// A row without its region (the 9th column).
fn without_region(row: &str) -> String {
    let mut fields: Vec<&str> = row.split('\t').collect();
    fields[8] = "";
    fields.join("\t")
}

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
