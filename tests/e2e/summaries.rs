//! `update summaries` and `update totals` against expected files written by hand
//! (fixtures/summaries/expected) and the Python tool's expected summaries.

use std::path::{Path, PathBuf};

use crate::common::{EXACT, Env, files_containing, fixture, tree, write_log};

/// fixtures/summaries/logs extracted and labelled from fixtures/ranges (no ipinfo key).
fn labelled(logs: &[&Path]) -> Env {
    let env = Env::new();
    env.extract(logs, 0);
    let output = env.run(&[
        "update",
        "regions",
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
    ]);
    assert!(output.status.success());
    env
}

fn update(env: &Env, stage: &str, extra: &[&str]) -> String {
    let mut args = vec!["update", stage];
    args.extend_from_slice(extra);
    let output = env.run(&args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

fn summaries_and_totals(env: &Env, extra: &[&str]) {
    update(env, "summaries", extra);
    update(env, "totals", extra);
}

fn out(env: &Env) -> PathBuf {
    env.cache.join("summaries")
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

#[test]
fn figures_match_the_files_written_by_hand() {
    let env = labelled(&[&fixture("summaries/logs")]);
    let mut args = EXACT.to_vec();
    args.extend(["--collapse-prefix", "zarr/"]);
    let stderr = update(&env, "summaries", &args);
    assert!(
        stderr.contains("publish more exactly than the defaults"),
        "{stderr}"
    );
    update(&env, "totals", &args);
    let mut ours = tree(&out(&env));
    // the settings recorded beside the outputs (never published)
    let settings: serde_json::Value =
        serde_json::from_slice(&ours.remove(".s3tally-privacy.json").unwrap()).unwrap();
    assert_eq!(
        settings["summaries"],
        serde_json::json!({"minimum": 0, "round_to": 1, "region_min_requesters": 1})
    );
    let expected = tree(&fixture("summaries/expected"));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, content) in &expected {
        assert_eq!(&ours[path], content, "{path}");
    }
}

#[test]
fn without_collapsing_each_chunk_is_an_asset_with_its_own_view() {
    let env = labelled(&[&fixture("summaries/logs")]);
    update(&env, "summaries", &EXACT);
    // by hand: the three keys of the store, the two chunks streamed 5 s apart by one requester
    assert_eq!(
        read(out(&env).join("zarr/by_asset.tsv")),
        "asset_path\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\tnumber_of_views\n\
         abc/.zattrs\t30\t1\t1\t0\nabc/0/0\t10\t1\t0\t1\nabc/1/0\t20\t1\t0\t1\n"
    );
}

#[test]
fn dataset_depth_two() {
    let env = labelled(&[&fixture("summaries/logs")]);
    update(
        &env,
        "summaries",
        &[&EXACT[..], &["--dataset-depth", "2"]].concat(),
    );
    assert_eq!(
        read(out(&env).join("ds1/sub/by_asset.tsv")),
        "asset_path\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\tnumber_of_views\nb c.txt\t10\t2\t2\t0\n"
    );
    // keys with fewer than three segments are unassociated: ds1/a.nwb (8 requests) and index.html
    let unassociated = read(out(&env).join("unassociated/by_asset.tsv"));
    assert!(
        unassociated.contains("\nds1/a.nwb\t2470\t8\t2\t3\n"),
        "{unassociated}"
    );
    assert!(
        unassociated.contains("\nindex.html\t7\t1\t1\t0\n"),
        "{unassociated}"
    );
    assert!(out(&env).join("zarr/abc/by_asset.tsv").exists());
}

#[test]
fn the_python_tool_examples_match_column_for_column() {
    let env = Env::new();
    env.extract(&[&fixture("s3-log-extraction-examples/logs")], 0);
    summaries_and_totals(&env, &["--region-min-requesters", "1"]);
    let expected_dir = fixture("s3-log-extraction-examples/expected/summaries");
    for (path, theirs) in tree(&expected_dir) {
        let theirs = String::from_utf8(theirs).unwrap();
        let ours = read(out(&env).join(&path));
        if path.rsplit_once('.').is_some_and(|(_, ext)| ext == "json") {
            let mut ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
            let theirs: serde_json::Value = serde_json::from_str(&theirs).unwrap();
            // that tool predates views
            if path == "totals.json" {
                for totals in ours.as_object_mut().unwrap().values_mut() {
                    totals
                        .as_object_mut()
                        .unwrap()
                        .remove("total_number_of_views");
                }
            } else {
                ours.as_object_mut()
                    .unwrap()
                    .remove("total_number_of_views");
            }
            assert_eq!(ours, theirs, "{path}");
        } else if path.ends_with("requester_count.tsv") {
            assert_eq!(ours.trim_end(), theirs.trim_end(), "{path}");
        } else {
            let without_views: Vec<String> = ours
                .lines()
                .map(|line| line.rsplit_once('\t').unwrap().0.to_owned())
                .collect();
            assert_eq!(without_views, theirs.lines().collect::<Vec<_>>(), "{path}");
        }
    }
}

#[test]
fn counts_are_hidden_below_the_minimum_and_rounded_above() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    // by hand: n distinct requesters each download a 10-byte file of dataset dN once
    for (i, n) in [49usize, 50, 59, 70].into_iter().enumerate() {
        let ips: Vec<String> = (1..=n).map(|k| format!("198.51.100.{k}")).collect();
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        write_log(
            &logs,
            &format!("2024-05-0{}-00-00-00-666666666666666{i}", i + 1),
            &format!("d{n}/f"),
            &ips,
        );
    }
    let env = {
        env.extract(&[&logs], 0);
        env
    };
    summaries_and_totals(&env, &[]);
    let expected = [("d49", "<50"), ("d50", "60"), ("d59", "60"), ("d70", "80")];
    for (dataset, shown) in expected {
        let n: u64 = dataset[1..].parse().unwrap();
        assert_eq!(
            read(out(&env).join(format!("{dataset}/by_asset.tsv")))
                .lines()
                .nth(1)
                .unwrap(),
            format!("f\t{}\t{shown}\t{shown}\t<50", n * 10),
            "{dataset}"
        );
        assert_eq!(
            read(out(&env).join(format!("{dataset}/requester_count.tsv"))),
            format!("{shown}\n")
        );
    }
    // the archive: 70 distinct requesters (the same addresses again in each dataset), 228 requests
    assert_eq!(read(out(&env).join("archive/requester_count.tsv")), "80\n");
    let archive: serde_json::Value =
        serde_json::from_str(&read(out(&env).join("archive_totals.json"))).unwrap();
    assert_eq!(archive["total_number_of_requests"], serde_json::json!(220));
    assert_eq!(archive["total_bytes_sent"], serde_json::json!(2280));
    assert_eq!(archive["total_number_of_views"], serde_json::json!("<50"));
}

/// The byte column of a summary table, summed.
fn bytes_of(table: &str) -> u64 {
    table
        .lines()
        .skip(1)
        .map(|row| row.split('\t').nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn by_region_always_exists_and_adds_up_to_the_dataset() {
    let env = labelled(&[&fixture("summaries/logs")]);
    // K larger than any region's requesters: every row is pooled in `other`
    summaries_and_totals(&env, &["--region-min-requesters", "1000"]);
    let totals: serde_json::Value =
        serde_json::from_str(&read(out(&env).join("totals.json"))).unwrap();
    let datasets = totals.as_object().unwrap();
    assert_eq!(datasets.len(), 3);
    for (name, figures) in datasets {
        let by_region = read(out(&env).join(name).join("by_region.tsv"));
        let rows: Vec<&str> = by_region.lines().skip(1).collect();
        assert_eq!(rows.len(), 1, "{name}: {by_region}");
        assert!(rows[0].starts_with("other\t"), "{name}: {by_region}");
        assert_eq!(
            bytes_of(&by_region),
            figures["total_bytes_sent"].as_u64().unwrap()
        );
        // no region is counted as published
        assert_eq!(figures["number_of_unique_regions"], serde_json::json!(0));
        assert_eq!(figures["number_of_unique_countries"], serde_json::json!(0));
    }
    // with the default K (5) the file exists too, and still adds up
    summaries_and_totals(&env, &[]);
    for (name, figures) in datasets {
        let by_region = read(out(&env).join(name).join("by_region.tsv"));
        assert_eq!(
            bytes_of(&by_region),
            figures["total_bytes_sent"].as_u64().unwrap()
        );
    }
    // the retired option says what replaced it
    let output = env.run(&["update", "summaries", "--region-threshold", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--region-min-requesters"));
}

#[test]
fn a_second_run_rewrites_nothing() {
    let env = labelled(&[&fixture("summaries/logs")]);
    summaries_and_totals(&env, &["--region-min-requesters", "1"]);
    let before: Vec<_> = walkdir::WalkDir::new(out(&env))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().to_path_buf(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    for stage in ["summaries", "totals"] {
        let stderr = update(&env, stage, &["--region-min-requesters", "1"]);
        assert!(
            stderr.contains("nothing new since the last run"),
            "{stderr}"
        );
        // recomputed in full: the same content, so nothing is rewritten either
        let stderr = update(&env, stage, &["--region-min-requesters", "1", "--full"]);
        assert!(stderr.contains(" 0 files written"), "{stderr}");
    }
    for (path, modified) in before {
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified,
            "{}",
            path.display()
        );
    }
}

#[test]
fn updating_after_more_logs_equals_a_full_run() {
    let env = labelled(&[&fixture("summaries/logs")]);
    summaries_and_totals(&env, &["--region-min-requesters", "1"]);
    env.extract(&[&fixture("nasty/logs")], 0);
    env.run(&[
        "update",
        "regions",
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
    ]);
    summaries_and_totals(&env, &["--region-min-requesters", "1"]);

    let fresh = labelled(&[&fixture("summaries/logs"), &fixture("nasty/logs")]);
    summaries_and_totals(&fresh, &["--region-min-requesters", "1", "--full"]);
    assert_eq!(tree(&out(&env)), tree(&out(&fresh)));
}

#[test]
fn outputs_hold_no_ip_and_no_requester_index() {
    let env = labelled(&[
        &fixture("summaries/logs"),
        &fixture("regions/logs"),
        &fixture("nasty/logs"),
    ]);
    summaries_and_totals(&env, &EXACT);
    let dump = String::from_utf8(env.run(&["dump"]).stdout).unwrap();
    let ids: std::collections::BTreeSet<&str> = dump
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(4).unwrap())
        .collect();
    assert!(ids.len() > 10);
    for id in ids {
        assert!(
            files_containing(&out(&env), id).is_empty(),
            "requester {id} published"
        );
    }
    let logs = [
        fixture("summaries/logs"),
        fixture("regions/logs"),
        fixture("nasty/logs"),
    ];
    for dir in logs {
        for entry in walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
        {
            if !entry.file_type().is_file() || entry.path().extension().is_some_and(|e| e == "gz") {
                continue;
            }
            for line in String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).lines() {
                let Some(ip) = line
                    .split("] ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                else {
                    continue;
                };
                if ip.parse::<std::net::IpAddr>().is_ok() {
                    assert!(
                        files_containing(&out(&env), ip).is_empty(),
                        "{ip} published"
                    );
                }
            }
        }
    }
}

#[test]
fn show_prints_the_tables() {
    let env = labelled(&[&fixture("summaries/logs")]);
    update(&env, "summaries", &["--region-min-requesters", "1"]);
    let output = env.run(&["show", "ds1"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("ds1/by_day.tsv") && text.contains("2024-03-02"),
        "{text}"
    );
    assert!(text.contains("sub/b c.txt"), "{text}");
    let missing = env.run(&["show", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn only_datasets_with_new_requests_are_computed_again() {
    let env = labelled(&[&fixture("summaries/logs")]);
    let stderr = update(&env, "summaries", &["--region-min-requesters", "1"]);
    assert!(stderr.contains("3 datasets (3 computed again)"), "{stderr}");
    // a new request to the zarr dataset only, by a requester already labelled
    let more = env.dir.path().join("more");
    write_log(
        &more,
        "2024-03-06-00-00-00-ABABABABABABABAB",
        "zarr/abc/9/9",
        &["34.80.0.1"],
    );
    env.extract(&[&more], 0);
    let stderr = update(&env, "summaries", &["--region-min-requesters", "1"]);
    assert!(stderr.contains("3 datasets (1 computed again)"), "{stderr}");
    // the totals reuse what the summaries computed
    let stderr = update(&env, "totals", &["--region-min-requesters", "1"]);
    assert!(stderr.contains("(0 computed again)"), "{stderr}");

    let fresh = labelled(&[&fixture("summaries/logs"), &more]);
    summaries_and_totals(&fresh, &["--region-min-requesters", "1"]);
    assert_eq!(tree(&out(&env)), tree(&out(&fresh)));
}

#[test]
fn only_datasets_with_newly_labelled_requesters_are_computed_again() {
    use crate::common::mock::{MockServer, Reply};
    // ds (fixtures/regions) has requesters only ipinfo can place; ds1 and ds2 (fixtures/nasty)
    // only bogons
    let env = labelled(&[&fixture("regions/logs"), &fixture("nasty/logs")]);
    let stderr = update(&env, "summaries", &["--region-min-requesters", "1"]);
    assert!(stderr.contains("3 datasets (3 computed again)"), "{stderr}");
    let ipinfo = MockServer::start(|request, _| {
        let ips: Vec<String> = serde_json::from_slice(&request.body).unwrap();
        let answer: serde_json::Map<String, serde_json::Value> = ips
            .iter()
            .map(|ip| {
                (
                    ip.clone(),
                    serde_json::json!({"ip": ip, "region": "California", "country": "US"}),
                )
            })
            .collect();
        Reply::json(200, serde_json::Value::Object(answer))
    });
    // every requester ipinfo knows, in California
    let label_with_ipinfo = |env: &Env| {
        let ranges = fixture("ranges");
        let output = env
            .command(&[
                "update",
                "regions",
                "--ranges-dir",
                ranges.to_str().unwrap(),
            ])
            .env("IPINFO_API_KEY", "token")
            .env("IPINFO_URL", &ipinfo.url)
            .output()
            .unwrap();
        assert!(output.status.success());
    };
    label_with_ipinfo(&env);
    let stderr = update(&env, "summaries", &["--region-min-requesters", "1"]);
    assert!(stderr.contains("3 datasets (1 computed again)"), "{stderr}");
    assert!(read(out(&env).join("ds/by_region.tsv")).contains("US/California"));

    let fresh = Env::new();
    fresh.extract(&[&fixture("regions/logs"), &fixture("nasty/logs")], 0);
    label_with_ipinfo(&fresh);
    update(&fresh, "summaries", &["--region-min-requesters", "1"]);
    assert_eq!(tree(&out(&env)), tree(&out(&fresh)));
}

/// A damaged row of the saved figures names its table and dataset, and what to run.
#[test]
fn a_damaged_saved_row_names_its_table_and_dataset() {
    let env = labelled(&[&fixture("summaries/logs")]);
    update(&env, "summaries", &[]);
    let conn = rusqlite::Connection::open(env.cache.join("s3tally.sqlite")).unwrap();
    conn.execute(
        "UPDATE dataset_tallies SET data = '[1, 2' WHERE dataset = 'ds1'",
        [],
    )
    .unwrap();
    drop(conn);
    // something new, so that the saved figures are read
    let more = env.dir.path().join("more");
    write_log(
        &more,
        "2024-03-09-00-00-00-6666666666666666",
        "ds2/x",
        &["192.0.2.77"],
    );
    env.extract(&[&more], 0);
    let output = env.run(&["update", "summaries"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("dataset ds1 (store table dataset_tallies) are damaged")
            && text.contains("update summaries --full"),
        "{text}"
    );
    assert!(env.run(&["update", "summaries", "--full"]).status.success());
}

/// A full disk while writing summaries: the error names the file, no `.tmp` stays behind, the
/// other datasets are written, and the next run writes the one that failed.
#[test]
fn a_full_disk_names_the_file_and_leaves_no_temporary_file() {
    let env = labelled(&[&fixture("summaries/logs")]);
    let output = env
        .command(&["update", "summaries"])
        .env("S3TALLY_TEST_FULL_DISK_FOR", "by_asset.tsv")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("ds1/by_asset.tsv") && text.contains("No space left on device"),
        "{text}"
    );
    let left: Vec<_> = walkdir::WalkDir::new(out(&env))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(out(&env).join("ds1/by_day.tsv").is_file());
    assert!(env.run(&["update", "summaries"]).status.success());
    assert!(out(&env).join("ds1/by_asset.tsv").is_file());
}
