//! A feed for the DANDI usage page: datasets from the archive's map, asset types per week, and
//! the page's contract on what is published.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::{EXACT, Env, files_containing, fixture, new_repo, run_and_publish, stderr};

/// The files the page reads for every dataset, with their headers.
const PAGE_FILES: [(&str, &str); 4] = [
    (
        "by_day.tsv",
        "date\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\tnumber_of_views",
    ),
    (
        "by_asset.tsv",
        "asset_path\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\tnumber_of_views",
    ),
    (
        "by_region.tsv",
        "region\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\tnumber_of_views",
    ),
    (
        "by_asset_type_per_week.tsv",
        "week_start\tNeurophysiology\tMicroscopy\tVideo\tMiscellaneous",
    ),
];

/// Labels that name no place, which the page does not put on the map.
const PLACELESS: [&str; 6] = ["other", "unknown", "bogon", "missing", "VPN", "GitHub"];

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `YYYY-MM-DD` date as (year, month, day), checked to exist.
fn parse_date(text: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("{text:?} is not a date: {e}"))
}

/// The bytes of a summary table (column 1, or every column after 0 for the weekly types),
/// checking every row as the page reads it.
fn table_bytes(path: &Path, header: &str) -> (u64, Vec<Vec<String>>) {
    let text = read(path);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header), "{}", path.display());
    let rows: Vec<Vec<String>> = lines
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect();
    assert!(
        !rows.is_empty(),
        "{}: no rows (the page needs one)",
        path.display()
    );
    let weekly = header.starts_with("week_start");
    let mut bytes = 0;
    for row in &rows {
        assert_eq!(
            row.len(),
            header.split('\t').count(),
            "{}: {row:?}",
            path.display()
        );
        let columns = if weekly { &row[1..] } else { &row[1..2] };
        for value in columns {
            bytes += value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{}: {value:?} is not an integer", path.display()));
        }
        if header.starts_with("date") {
            parse_date(&row[0]);
        }
        if weekly {
            let week = parse_date(&row[0]);
            assert_eq!(
                week.format("%A").to_string(),
                "Monday",
                "{}",
                path.display()
            );
        }
    }
    (bytes, rows)
}

/// The page's contract on a published `content/` directory: for every dataset of `totals.json`
/// and for the archive, its files exist with their headers, bytes are integers, dates parse,
/// every placed region has coordinates, and the byte sums agree with the totals. Returns the
/// dataset ids.
fn check_page_contract(content: &Path) -> BTreeSet<String> {
    let totals: serde_json::Value =
        serde_json::from_str(&read(&content.join("totals.json"))).unwrap();
    let archive: serde_json::Value =
        serde_json::from_str(&read(&content.join("archive_totals.json"))).unwrap();
    let yaml = read(&content.join("region_codes_to_coordinates.yaml"));
    let placed: BTreeSet<String> = yaml
        .lines()
        .filter(|line| !line.starts_with([' ', '#']) && !line.contains(": null"))
        .filter_map(|line| line.split("\": ").next())
        .map(|key| key.trim_start_matches('"').to_owned())
        .collect();
    let mut scopes: Vec<(String, &serde_json::Value)> = totals
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, totals)| (format!("summaries/{id}"), totals))
        .collect();
    scopes.push(("summaries/archive".to_owned(), &archive));
    for (dir, totals) in scopes {
        let expected = totals["total_bytes_sent"].as_u64().unwrap();
        for (file, header) in PAGE_FILES {
            let path = content.join(&dir).join(file);
            if file == "by_asset.tsv" && dir.ends_with("/archive") {
                assert!(!path.exists());
                continue;
            }
            assert!(path.is_file(), "{} is missing", path.display());
            let (bytes, rows) = table_bytes(&path, header);
            assert_eq!(bytes, expected, "{}", path.display());
            if file == "by_region.tsv" {
                for row in rows {
                    let label = row[0].as_str();
                    assert!(
                        PLACELESS.contains(&label) || placed.contains(label),
                        "{dir}: region {label} has no coordinates"
                    );
                }
            }
        }
    }
    totals.as_object().unwrap().keys().cloned().collect()
}

fn map() -> String {
    fixture("dandi/map.tsv").to_str().unwrap().to_owned()
}

/// The summaries' directories under `dir`, as dataset names.
fn directories(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_mapped_archive_publishes_each_dandiset_as_the_page_reads_it() {
    let env = Env::new();
    let repo = new_repo(&env);
    let output = run_and_publish(&env, &fixture("dandi/logs"), &repo)
        .args(["--dataset-map", &map()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let content = repo.join("content");
    assert_eq!(
        directories(&content.join("summaries")),
        BTreeSet::from(
            [
                "000001",
                "000002",
                "archive",
                "unassociated",
                "undetermined"
            ]
            .map(String::from)
        )
    );
    let ids = check_page_contract(&content);
    assert_eq!(
        ids,
        BTreeSet::from(["000001", "000002", "unassociated", "undetermined"].map(String::from))
    );
    // every figure as worked out by hand (fixtures/dandi/README.md)
    let expected_dir = fixture("dandi/expected");
    for entry in walkdir::WalkDir::new(&expected_dir) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let relative = entry.path().strip_prefix(&expected_dir).unwrap();
            let ours = read(&content.join("summaries").join(relative));
            assert_eq!(ours, read(entry.path()), "{}", relative.display());
        }
    }
    let totals: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&read(&content.join("totals.json"))).unwrap();
    let bytes: BTreeMap<&str, u64> = totals
        .iter()
        .map(|(id, t)| (id.as_str(), t["total_bytes_sent"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        bytes,
        BTreeMap::from([
            ("000001", 5700),
            ("000002", 607),
            ("unassociated", 3),
            ("undetermined", 11)
        ])
    );
    let archive: serde_json::Value =
        serde_json::from_str(&read(&content.join("archive_totals.json"))).unwrap();
    // the shared video once: 5,700 + 7 + 11 + 3
    assert_eq!(archive["total_bytes_sent"], 5721);
}

/// `update summaries` (exact counts) with a map file.
fn summaries(env: &Env, map: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "update",
        "summaries",
        "--dataset-map",
        map.to_str().unwrap(),
    ];
    args.extend(EXACT);
    args.extend(extra);
    let output = env.run(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stderr(&output)
}

fn labelled_dandi_env() -> Env {
    let env = Env::new();
    env.extract(&[&fixture("dandi/logs")], 0);
    let ranges = fixture("ranges");
    let output = env.run(&[
        "update",
        "regions",
        "--ranges-dir",
        ranges.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    env
}

fn total_bytes(by_day: &Path) -> u64 {
    read(by_day)
        .lines()
        .skip(1)
        .map(|line| line.split('\t').nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn a_changed_map_computes_again_only_the_datasets_it_touches() {
    let env = labelled_dandi_env();
    let out = env.cache.join("summaries");
    let map_file = env.dir.path().join("map.tsv");
    let original = read(&fixture("dandi/map.tsv"));
    std::fs::write(&map_file, &original).unwrap();
    let first = summaries(&env, &map_file, &[]);
    assert!(first.contains("4 datasets (4 computed again)"), "{first}");
    // nothing changed: nothing computed
    let again = summaries(&env, &map_file, &[]);
    assert!(again.contains("nothing new"), "{again}");
    // notes.txt moves from 000002 to 000003: those two (and undetermined) are computed again,
    // 000001 is not
    let moved = original.replace("notes.txt", "moved.txt").replace(
        "00000000000c\t000002\tmoved.txt",
        "00000000000c\t000003\tnotes.txt",
    );
    assert_ne!(moved, original);
    std::fs::write(&map_file, &moved).unwrap();
    let second = summaries(&env, &map_file, &[]);
    assert!(second.contains("5 datasets (3 computed again)"), "{second}");
    assert_eq!(total_bytes(&out.join("000003/by_day.tsv")), 7);
    assert_eq!(total_bytes(&out.join("000002/by_day.tsv")), 600);
    assert_eq!(total_bytes(&out.join("000001/by_day.tsv")), 5700);
    assert_eq!(total_bytes(&out.join("archive/by_day.tsv")), 5721);
    // the video no longer in 000002 either: 000002 has no key left, and its files go
    let without = moved
        .lines()
        .filter(|line| !line.contains("\t000002\t"))
        .fold(String::new(), |text, line| text + line + "\n");
    std::fs::write(&map_file, &without).unwrap();
    let third = summaries(&env, &map_file, &[]);
    assert!(
        third.contains("files of datasets that no longer exist removed"),
        "{third}"
    );
    assert!(!out.join("000002").exists());
    assert_eq!(total_bytes(&out.join("archive/by_day.tsv")), 5721);
    // and the figures computed incrementally are those a full computation gives
    let incremental = read(&out.join("000001/by_asset.tsv"));
    summaries(&env, &map_file, &["--full"]);
    assert_eq!(read(&out.join("000001/by_asset.tsv")), incremental);
    assert_eq!(total_bytes(&out.join("000003/by_day.tsv")), 7);
}

#[test]
fn excluded_addresses_leave_figures_already_extracted_without_a_trace() {
    let env = labelled_dandi_env();
    let out = env.cache.join("summaries");
    let excluded = env.dir.path().join("our-servers.txt");
    std::fs::write(&excluded, "# the archive's own mirror\n192.0.2.10\n").unwrap();
    summaries(
        &env,
        &fixture("dandi/map.tsv"),
        &["--exclude-ips-file", excluded.to_str().unwrap()],
    );
    // by hand: 192.0.2.10 made the video's second request (300) and notes.txt (7)
    assert_eq!(total_bytes(&out.join("000002/by_day.tsv")), 300);
    assert_eq!(total_bytes(&out.join("000001/by_day.tsv")), 5400);
    assert_eq!(total_bytes(&out.join("archive/by_day.tsv")), 5721 - 307);
    assert!(!read(&out.join("000002/by_region.tsv")).contains("bogon"));
    // the address is nowhere in the cache or the outputs
    assert_eq!(
        files_containing(&env.cache, "192.0.2.10"),
        Vec::<PathBuf>::new()
    );
    // without the file, the figures come back
    summaries(&env, &fixture("dandi/map.tsv"), &[]);
    assert_eq!(total_bytes(&out.join("archive/by_day.tsv")), 5721);
    // a line that is not an address: an error naming the line, not its text
    std::fs::write(&excluded, "192.0.2.10\n198.51.100.0/24\n").unwrap();
    let output = env.run(&[
        "update",
        "summaries",
        "--exclude-ips-file",
        excluded.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("line 2: not an IP address"), "{text}");
    assert!(!text.contains("198.51.100"), "{text}");
}

#[test]
fn a_broken_map_is_refused_with_its_line() {
    let env = labelled_dandi_env();
    let map_file = env.dir.path().join("map.tsv");
    std::fs::write(
        &map_file,
        "key\tdataset_id\tasset_path\nblobs/x\t../../etc\tx\n",
    )
    .unwrap();
    let output = env.run(&[
        "update",
        "summaries",
        "--dataset-map",
        map_file.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("line 2"), "{text}");
    assert!(text.contains("cannot be a directory"), "{text}");
    let both = env.run(&[
        "update",
        "summaries",
        "--dataset-map",
        map_file.to_str().unwrap(),
        "--dataset-depth",
        "2",
    ]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}
