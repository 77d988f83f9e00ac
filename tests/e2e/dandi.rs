//! A feed for the DANDI usage page: datasets from the archive's map, asset types per week, and
//! the page's contract on what is published.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::common::mock::{MockServer, Reply};
use crate::common::{EXACT, Env, files_containing, fixture, git, run_and_publish, stderr};

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

fn read(path: &Path) -> String {
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

/// A fresh repository to publish into.
fn repository(env: &Env) -> PathBuf {
    let repo = env.dir.path().join("usage");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    repo
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
    let repo = repository(&env);
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

/// A mock of the DANDI API endpoints `map dandi` uses, serving `world` (Dandisets with their
/// listing and versions) in pages of `page_size`, with `next` links as the real API gives them.
/// `/dandisets/000009/versions/` answers 404 (withdrawn), and the first request for
/// `/dandisets/000002/versions/` 503 (retried).
fn dandi_api(world: Arc<Mutex<serde_json::Value>>) -> MockServer {
    let base = Arc::new(Mutex::new(String::new()));
    let base_in = base.clone();
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = MockServer::start(move |request, _| {
        let url = reqwest_like_parse(&request.path);
        let (path, query) = url;
        let size: usize = query.get("page_size").map_or(100, |s| s.parse().unwrap());
        let page: usize = query.get("page").map_or(1, |s| s.parse().unwrap());
        let world = world.lock().unwrap();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let items: Vec<serde_json::Value> = match segments.as_slice() {
            ["api", "dandisets"] => world
                .as_object()
                .unwrap()
                .iter()
                .map(|(id, d)| {
                    let mut listing = d["listing"].clone();
                    listing["identifier"] = serde_json::json!(id);
                    listing
                })
                .collect(),
            ["api", "dandisets", "000009", "versions"] => {
                return Reply::json(404, serde_json::json!({"detail": "Not found."}));
            }
            ["api", "dandisets", "000002", "versions"]
                if !failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) =>
            {
                return Reply::Respond(503, vec![], "busy".into());
            }
            ["api", "dandisets", id, ..] if world[*id]["broken"] == true => {
                return Reply::Respond(500, vec![], "broken".into());
            }
            ["api", "dandisets", id, "versions"] => world[*id]["versions"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, v)| serde_json::json!({"version": name, "modified": v["modified"]}))
                .collect(),
            ["api", "dandisets", id, "versions", version, "assets"] => world[*id]["versions"]
                [*version]["assets"]
                .as_array()
                .unwrap()
                .clone(),
            _ => return Reply::json(404, serde_json::json!({"detail": "Not found."})),
        };
        let start = (page - 1) * size;
        let results: Vec<_> = items.iter().skip(start).take(size).cloned().collect();
        let next = (start + size < items.len()).then(|| {
            format!(
                "{}{path}?page={}&page_size={size}",
                base_in.lock().unwrap(),
                page + 1
            )
        });
        Reply::json(
            200,
            serde_json::json!({"count": items.len(), "next": next, "previous": null, "results": results}),
        )
    });
    base.lock().unwrap().clone_from(&server.url);
    server
}

/// A request path split into path and query parameters.
fn reqwest_like_parse(path: &str) -> (String, BTreeMap<String, String>) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let params = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (path.to_owned(), params)
}

const BLOB_A: &str = "1a2b3c00-0000-4000-8000-00000000000a";
const BLOB_B: &str = "b0b00000-0000-4000-8000-00000000000b";
const BLOB_C: &str = "c0c00000-0000-4000-8000-00000000000c";
const BLOB_D: &str = "d0d00000-0000-4000-8000-00000000000d";
const ZARR: &str = "2c3d0000-0000-4000-8000-0000000000f1";

fn asset(blob: Option<&str>, zarr: Option<&str>, path: &str) -> serde_json::Value {
    serde_json::json!({"asset_id": path, "blob": blob, "zarr": zarr, "path": path, "size": 1})
}

/// Two Dandisets (one with a published version) and a withdrawn one.
fn dandi_world() -> serde_json::Value {
    serde_json::json!({
        "000001": {
            "listing": {"modified": "m1", "draft_version": {"version": "draft", "modified": "d1"},
                        "most_recent_published_version": {"version": "0.240101.0000"}},
            "versions": {
                "draft": {"modified": "d1", "assets": [
                    asset(Some(BLOB_A), None, "sub-01/a.nwb"),
                    asset(None, Some(ZARR), "micr/x.ome.zarr")]},
                "0.240101.0000": {"modified": "p1", "assets": [
                    asset(Some(BLOB_A), None, "old/a.nwb"),
                    asset(Some(BLOB_B), None, "video.mp4")]}
            }
        },
        "000002": {
            "listing": {"modified": "m2", "draft_version": {"version": "draft", "modified": "d2"},
                        "most_recent_published_version": null},
            "versions": {"draft": {"modified": "d2", "assets": [
                asset(Some(BLOB_B), None, "behavior/video.mp4"),
                asset(Some(BLOB_C), None, "notes.txt"),
                asset(Some("../../etc/passwd"), None, "hostile.nwb")]}}
        },
        "000009": {
            "listing": {"modified": "m9", "draft_version": {"version": "draft", "modified": "d9"},
                        "most_recent_published_version": null},
            "versions": {}
        }
    })
}

/// The paths asked of the mock after the first `since` requests.
fn paths_since(api: &MockServer, since: usize) -> Vec<String> {
    api.requests()[since..]
        .iter()
        .map(|r| r.path.clone())
        .collect()
}

/// `map dandi` against the mock, retrying fast.
fn build_map(env: &Env, api: &MockServer, out: &Path, extra: &[&str]) -> std::process::Output {
    let url = format!("{}/api", api.url);
    let mut args = vec!["map", "dandi", "--api-url", &url, "--retry-base-ms", "10"];
    args.extend(extra);
    args.push(out.to_str().unwrap());
    env.run(&args)
}

fn blob_key(blob: &str) -> String {
    format!("blobs/{}/{}/{blob}", &blob[..3], &blob[3..6])
}

#[test]
fn the_dandi_map_builder_pages_retries_skips_withdrawn_and_asks_only_for_changes() {
    let env = Env::new();
    let world = Arc::new(Mutex::new(dandi_world()));
    let api = dandi_api(world.clone());
    let out = env.dir.path().join("map.tsv");
    let build = || build_map(&env, &api, &out, &["--page-size", "1"]);
    let first = build();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let text = stderr(&first);
    assert!(
        text.contains("Dandiset 000009 left out: withdrawn (404)"),
        "{text}"
    );
    assert!(text.contains("1 assets left out"), "{text}");
    // by hand: the draft's path first, then the published version's for what the draft lacks;
    // the shared video in both Dandisets; the hostile blob id left out
    let expected = format!(
        "key\tdataset_id\tasset_path\n\
         {}\t000001\tsub-01/a.nwb\n\
         zarr/{ZARR}/\t000001\tmicr/x.ome.zarr\n\
         {}\t000001\tvideo.mp4\n\
         {}\t000002\tbehavior/video.mp4\n\
         {}\t000002\tnotes.txt\n",
        blob_key(BLOB_A),
        blob_key(BLOB_B),
        blob_key(BLOB_B),
        blob_key(BLOB_C)
    );
    assert_eq!(read(&out), expected);
    let requests = api.requests();
    // every list was paginated (page size 1): the second page of the Dandisets was asked
    assert!(
        requests
            .iter()
            .any(|r| r.path.starts_with("/api/dandisets/?page=2")),
        "{requests:?}"
    );
    // the 503 was retried
    let versions_2 = requests
        .iter()
        .filter(|r| r.path.starts_with("/api/dandisets/000002/versions/?"))
        .count();
    assert_eq!(versions_2, 2);
    // the map reads as summaries read it
    let check = env.run(&["map", "check", out.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout)
            .contains("5 rows, 2 datasets, under 2 top-level prefixes (blobs/ zarr/)"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // nothing changed: only the Dandiset listing is asked (three pages of one)
    let asked_before = api.requests().len();
    let second = build();
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let asked = paths_since(&api, asked_before);
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(
        asked.iter().all(|p| p.starts_with("/api/dandisets/?")),
        "{asked:?}"
    );
    assert_eq!(read(&out), expected);

    // 000002's draft gains a file: only its versions and its draft's assets are asked again
    {
        let mut world = world.lock().unwrap();
        world["000002"]["listing"]["draft_version"]["modified"] = "d2b".into();
        let draft = &mut world["000002"]["versions"]["draft"];
        draft["modified"] = "d2b".into();
        draft["assets"]
            .as_array_mut()
            .unwrap()
            .push(asset(Some(BLOB_D), None, "new.nwb"));
    }
    let asked_before = api.requests().len();
    let third = build();
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    let asked = paths_since(&api, asked_before);
    assert!(
        asked
            .iter()
            .all(|p| p.starts_with("/api/dandisets/?") || p.starts_with("/api/dandisets/000002/")),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .any(|p| p.starts_with("/api/dandisets/000002/versions/draft/assets/")),
        "{asked:?}"
    );
    assert!(read(&out).ends_with(&format!("{}\t000002\tnew.nwb\n", blob_key(BLOB_D))));

    // 000001 changes but its API keeps failing: an error, its previous rows kept, 000002 unharmed
    {
        let mut world = world.lock().unwrap();
        world["000001"]["listing"]["modified"] = "m1b".into();
        world["000001"]["broken"] = true.into();
    }
    let before = read(&out);
    let fourth = build_map(&env, &api, &out, &["--retries", "1"]);
    assert_eq!(fourth.status.code(), Some(1), "{}", stderr(&fourth));
    assert!(
        stderr(&fourth).contains("Dandiset 000001 could not be fetched"),
        "{}",
        stderr(&fourth)
    );
    assert_eq!(read(&out), before);
}

#[test]
fn a_dandi_api_that_keeps_failing_is_an_error_and_the_old_map_stays() {
    let env = Env::new();
    let out = env.dir.path().join("map.tsv");
    std::fs::write(
        &out,
        "key\tdataset_id\tasset_path\nblobs/x/y\t1\tkept.nwb\n",
    )
    .unwrap();
    let api = MockServer::start(|_, _| Reply::Respond(502, vec![], "bad gateway".into()));
    let output = env.run(&[
        "map",
        "dandi",
        "--api-url",
        &format!("{}/api", api.url),
        "--retries",
        "2",
        "--retry-base-ms",
        "10",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("after 3 attempts"),
        "{}",
        stderr(&output)
    );
    assert_eq!(api.requests().len(), 3);
    assert!(read(&out).contains("kept.nwb"));
}
