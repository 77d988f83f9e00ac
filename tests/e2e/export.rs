//! `export parquet` read by `DuckDB` (from `PyPI`, run by Python): its answers to the queries of
//! docs/scale.md equal s3tally's exact summaries row for row; the columns as an engine sees them;
//! no address in them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::parquet::{all_rows, duckdb, run};
use crate::common::{EXACT, Env, fixture, tree};

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
    // one dataset picked: its rows only, and the archive of it alone
    let picked = env.dir.path().join("picked");
    check_against_summaries(&env, &picked, &["--label-style", "iso", "--pick", "ds1"]);
    assert!(
        all_rows(&picked)
            .iter()
            .all(|row| row.split('\t').nth(1) == Some("ds1"))
    );

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
