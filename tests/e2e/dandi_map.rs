//! `map dandi` against a local mock of the DANDI API: pagination, retries, withdrawn Dandisets,
//! and reruns that ask only for what changed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::dandi::read;
use crate::common::mock::{MockServer, Reply};
use crate::common::{Env, stderr};

/// A mock of the DANDI API endpoints `map dandi` uses, serving `world` (Dandisets with their
/// listing and versions) in pages of `page_size`, with `next` links as the real API gives them.
/// `/dandisets/000009/versions/` answers 404 (withdrawn), and the first request for
/// `/dandisets/000002/versions/` 503 (retried).
fn dandi_api(world: Arc<Mutex<serde_json::Value>>) -> MockServer {
    let base = Arc::new(Mutex::new(String::new()));
    let base_in = base.clone();
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = MockServer::start(move |request, _| {
        let url = split_query(&request.path);
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
fn split_query(path: &str) -> (String, BTreeMap<String, String>) {
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
