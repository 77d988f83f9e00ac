//! The CRON pipeline: `run` end to end with mock services and a local git repository, one run per
//! cache, `stop` during a run, `reset extraction` (publishing itself: `publish.rs`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::common::mock::{MockServer, Reply};
use crate::common::{Env, copy_dir, fixture, generate_logs, git, new_repo, stderr, tree};
use serde_json::json;

fn ipinfo() -> MockServer {
    MockServer::start(|request, _| {
        let ips: Vec<String> = serde_json::from_slice(&request.body).unwrap();
        let answer: serde_json::Map<String, serde_json::Value> = ips
            .iter()
            .map(|ip| {
                (
                    ip.clone(),
                    json!({"ip": ip, "region": "California", "country": "US"}),
                )
            })
            .collect();
        Reply::json(200, serde_json::Value::Object(answer))
    })
}

fn opencage() -> MockServer {
    MockServer::start(|_, _| {
        Reply::json(
            200,
            json!({"results": [{"geometry": {"lat": 36.7014631, "lng": -118.755997}}],
            "status": {"code": 200, "message": "OK"}, "total_results": 1}),
        )
    })
}

/// `run` on `logs` with both mock services, publishing into `repo`.
fn run(env: &Env, logs: &Path, repo: &Path, ipinfo: &MockServer, opencage: &MockServer) -> Output {
    let mut command = crate::common::run_and_publish(env, logs, repo);
    command
        .env("IPINFO_API_KEY", "token")
        .env("IPINFO_URL", &ipinfo.url)
        .env("OPENCAGE_API_KEY", "key")
        .env("OPENCAGE_URL", &opencage.url);
    command.output().unwrap()
}

#[test]
fn run_publishes_then_commits_only_what_changed_then_nothing() {
    let env = Env::new();
    let (ipinfo, opencage) = (ipinfo(), opencage());
    let repo = new_repo(&env);
    let logs = env.dir.path().join("logs");
    copy_dir(&fixture("summaries/logs"), &logs.join("a"));

    let first = run(&env, &logs, &repo, &ipinfo, &opencage);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let table = String::from_utf8_lossy(&first.stdout).into_owned();
    for stage in [
        "extract",
        "regions",
        "coordinates",
        "summaries",
        "totals",
        "publish",
    ] {
        assert!(table.contains(stage), "{table}");
    }
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).trim(), "1");
    let published = tree(&repo);
    for file in [
        "content/totals.json",
        "content/archive_totals.json",
        "content/region_codes_to_coordinates.yaml",
        "content/summaries/archive/by_day.tsv",
        "content/summaries/ds1/by_asset.tsv",
    ] {
        assert!(
            published.contains_key(file),
            "{file} not published: {:?}",
            published.keys()
        );
    }
    // the YAML places the regions the summaries publish, and only those: the requester ipinfo
    // placed in California stands alone, so California is pooled in `other` and not named
    let yaml =
        String::from_utf8(published["content/region_codes_to_coordinates.yaml"].clone()).unwrap();
    let published_rows: String = published
        .iter()
        .filter(|(path, _)| path.ends_with("by_region.tsv"))
        .map(|(_, bytes)| String::from_utf8(bytes.clone()).unwrap())
        .collect();
    for entry in yaml.lines() {
        let label = entry.split('"').nth(1).unwrap();
        assert!(
            published_rows.contains(&format!("{label}\t")),
            "{label} in {yaml}"
        );
    }
    assert!(!yaml.contains("US/California"), "{yaml}");
    let message = git(&repo, &["log", "-1", "--format=%s"]);
    assert!(
        message.contains("ds1") && message.contains("from 2024-03-01 to 2024-03-03"),
        "{message}"
    );

    // more logs, in one dataset only: the second commit holds exactly the files whose bytes changed
    let more = logs.join("b");
    crate::common::write_log(
        &more,
        "2024-03-04-00-00-00-9999999999999999",
        "zarr/abc/2/0",
        &["34.80.0.1"],
    );
    let second = run(&env, &logs, &repo, &ipinfo, &opencage);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).trim(), "2");
    let after = tree(&repo);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(path, bytes)| published.get(*path) != Some(*bytes))
        .map(|(path, _)| path)
        .collect();
    let mut committed: Vec<String> = git(&repo, &["diff", "--name-only", "HEAD~1", "HEAD"])
        .lines()
        .map(str::to_owned)
        .collect();
    committed.sort();
    assert!(!changed.is_empty());
    assert_eq!(committed.iter().collect::<Vec<_>>(), changed);
    assert!(
        !committed.iter().any(|path| path.contains("/ds1/")),
        "{committed:?}"
    );

    // nothing new: no commit
    let third = run(&env, &logs, &repo, &ipinfo, &opencage);
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).trim(), "2");
    assert!(String::from_utf8_lossy(&third.stdout).contains("no change"));
}

/// A run slowed down by a pause before each extraction batch, and its standard error lines.
fn slow_run(
    env: &Env,
    logs: &Path,
    extra: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let ranges = fixture("ranges");
    let mut args = vec![
        "run",
        logs.to_str().unwrap(),
        "--ranges-dir",
        ranges.to_str().unwrap(),
        "--batch-files",
        "1",
    ];
    args.extend_from_slice(extra);
    let mut child = env
        .command(&args)
        .env("S3TALLY_TEST_BATCH_PAUSE_MS", "40")
        .env_remove("IPINFO_API_KEY")
        .env_remove("OPENCAGE_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if sender.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    (child, receiver)
}

fn wait_for(lines: &std::sync::mpsc::Receiver<String>, needle: &str) {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the line comes");
        if line.contains(needle) {
            return;
        }
    }
}

#[test]
fn two_runs_on_one_cache_the_second_exits_naming_the_pid_or_waits() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    generate_logs(&logs, 1, 0.05, 3);
    let (mut first, lines) = slow_run(&env, &logs, &[]);
    wait_for(&lines, "extract: 1/");
    let second = env.run(&[
        "run",
        logs.to_str().unwrap(),
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
    ]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains(&format!("in use by s3tally PID {}", first.id())),
        "{}",
        stderr(&second)
    );
    // --wait queues behind it
    let waiting = env
        .command(&[
            "run",
            logs.to_str().unwrap(),
            "--ranges-dir",
            fixture("ranges").to_str().unwrap(),
            "--wait",
        ])
        .env_remove("IPINFO_API_KEY")
        .output()
        .unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert_eq!(waiting.status.code(), Some(0), "{}", stderr(&waiting));
    assert!(stderr(&waiting).contains(&format!("waiting for s3tally PID {}", first.id())));
}

#[test]
fn stop_during_run_exits_3_and_the_next_run_resumes() {
    let reference = {
        let env = Env::new();
        let logs = env.dir.path().join("logs");
        generate_logs(&logs, 1, 0.05, 4);
        env.extract(&[&logs], 0);
        env.dump()
    };
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    generate_logs(&logs, 1, 0.05, 4);
    let (mut child, lines) = slow_run(&env, &logs, &[]);
    wait_for(&lines, "extract: 1/");
    assert!(env.run(&["stop"]).status.success());
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("run: extract stopped")),
        "{rest:?}"
    );
    // the later stages did not run after a stopped extraction
    assert!(
        !rest.iter().any(|l| l.contains("run: summaries")),
        "{rest:?}"
    );
    let output = env
        .command(&[
            "run",
            logs.to_str().unwrap(),
            "--ranges-dir",
            fixture("ranges").to_str().unwrap(),
        ])
        .env_remove("IPINFO_API_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(env.dump(), reference);
}

#[test]
fn a_stage_that_cannot_finish_is_reported_and_the_rest_still_runs() {
    let env = Env::new();
    let refused =
        MockServer::start(|_, _| Reply::json(401, json!({"error": {"title": "Unknown token"}})));
    let output = env
        .command(&[
            "run",
            fixture("regions/logs").to_str().unwrap(),
            "--ranges-dir",
            fixture("ranges").to_str().unwrap(),
        ])
        .env("IPINFO_API_KEY", "wrong")
        .env("IPINFO_URL", &refused.url)
        .env_remove("OPENCAGE_API_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("IPINFO_API_KEY"));
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(table.contains("failed"), "{table}");
    assert!(env.cache.join("summaries/totals.json").exists(), "{table}");
}

#[test]
fn the_readme_main_job_needs_no_key_and_no_network() {
    let env = Env::new();
    let output = env
        .command(&[
            "run",
            fixture("").to_str().unwrap(),
            "--ranges-dir",
            fixture("ranges").to_str().unwrap(),
            "--geoip-db",
            fixture("geoip/s3tally-test-city.mmdb").to_str().unwrap(),
        ])
        .env_remove("IPINFO_API_KEY")
        .env_remove("OPENCAGE_API_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = env.cache.join("summaries");
    for file in [
        "totals.json",
        "archive_totals.json",
        "region_codes_to_coordinates.yaml",
        "archive/by_day.tsv",
        "archive/by_region.tsv",
        "archive/requester_count.tsv",
        "ds1/by_day.tsv",
        "ds1/by_asset.tsv",
        "ds1/by_region.tsv",
        "ds1/requester_count.tsv",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    let regions = std::fs::read_to_string(out.join("archive/by_region.tsv")).unwrap();
    // bogon, AWS/us-east-1 (the five of fixtures/dandi), US/California and AU/Queensland (the
    // five each of fixtures/geoip, placed by the test database) have 5 or more requesters behind
    // them; GitHub fewer: pooled. Nobody is left `missing`: the database placed everyone.
    for label in [
        "AWS/us-east-1",
        "AU/Queensland",
        "US/California",
        "bogon",
        "other",
    ] {
        assert!(
            regions.contains(&format!("\n{label}\t")),
            "{label} in {regions}"
        );
    }
    for pooled in ["GitHub", "GCP/", "missing"] {
        assert!(!regions.contains(pooled), "{pooled} in {regions}");
    }
    // every published label with a place is placed by the bundled tables, no geocoder
    let yaml = std::fs::read_to_string(out.join("region_codes_to_coordinates.yaml")).unwrap();
    for label in ["AU/Queensland", "US/California", "AWS/us-east-1"] {
        let line = yaml
            .lines()
            .find(|line| line.starts_with(&format!("\"{label}\"")))
            .unwrap_or_else(|| panic!("{label} in {yaml}"));
        assert!(!line.contains("null"), "{line}");
    }
    let placeless = ["\"bogon\"", "\"other\"", "\"unknown\""];
    for line in yaml.lines().filter(|line| line.contains("null")) {
        assert!(placeless.iter().any(|p| line.starts_with(p)), "{line}");
    }
}

#[test]
fn reset_extraction_asks_unless_yes() {
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let before = env.dump();
    let refused = env.run(&["reset", "extraction"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--yes"));
    assert_eq!(env.dump(), before);
    assert!(env.run(&["reset", "extraction", "--yes"]).status.success());
    assert_eq!(env.dump().lines().count(), 1);
    env.extract(&[&fixture("nasty/logs")], 0);
    assert_eq!(env.dump(), before);
}

/// A stop request during a later stage ends the run after that stage: the stages after it and
/// publish do not start (exit 3).
#[test]
fn stop_during_regions_ends_the_run_after_that_stage() {
    let env = Env::new();
    let repo = new_repo(&env);
    // ipinfo never answers: the regions stage waits on it until stopped
    let hanging = MockServer::start(|_, _| Reply::Hang);
    let mut child = env
        .command(&[
            "run",
            fixture("regions/logs").to_str().unwrap(),
            "--ranges-dir",
            fixture("ranges").to_str().unwrap(),
            "--timeout",
            "60",
            "--publish",
            repo.to_str().unwrap(),
        ])
        .env("IPINFO_API_KEY", "token")
        .env("IPINFO_URL", &hanging.url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    wait_for(&lines, "run: extract done");
    while hanging.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(env.run(&["stop"]).status.success());
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("stopped on request after regions")),
        "{rest:?}"
    );
    for later in [
        "run: coordinates",
        "run: summaries",
        "run: totals",
        "run: publish",
    ] {
        assert!(
            !rest.iter().any(|l| l.contains(later)),
            "{later} ran: {rest:?}"
        );
    }
    assert!(!repo.join("content").exists());
}
