//! Privacy: raw IPs are at rest only in the store's pending-lookup list; nothing else the tool
//! writes or prints holds one.

use crate::common::{Env, files_containing, fixture};

/// Every IP written in fixtures/nasty/logs, in the forms the logs use.
const IPS: [&str; 5] = [
    "192.0.2.10",
    "2001:db8::20",
    "2001:0db8:0000::0020",
    "198.51.100.5",
    "203.0.113.7",
];

#[test]
fn raw_ips_are_only_in_the_pending_lookup_list() {
    let env = Env::new();
    let output = env.extract(&[&fixture("nasty/logs")], 0);
    let dump = env.dump();
    let status = env.run(&["status"]);
    let printed = [
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        dump,
        String::from_utf8_lossy(&status.stdout).into_owned(),
    ];
    for ip in IPS {
        for text in &printed {
            assert!(!text.contains(ip), "{ip} printed: {text}");
        }
        // config directory (salt), rejects report, lock file: none
        for file in files_containing(env.dir.path(), ip) {
            assert!(
                file.ends_with("cache/s3tally.sqlite"),
                "{ip} found in {}",
                file.display()
            );
        }
    }
    // the rejected lines (which hold 192.0.2.10) are kept masked
    let rejects = std::fs::read_to_string(env.cache.join("rejects.tsv")).unwrap();
    assert!(rejects.contains("<ip>"), "{rejects}");

    // inside the store, the raw IPs are the pending-lookup list and nothing else: empty that list
    // and no IP is left anywhere in the database file
    let db = env.cache.join("s3tally.sqlite");
    let connection = rusqlite::Connection::open(&db).unwrap();
    let pending: Vec<String> = connection
        .prepare("SELECT ip FROM pending_lookups ORDER BY ip")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        pending,
        ["192.0.2.10", "198.51.100.5", "2001:db8::20", "203.0.113.7"]
    );
    // (as the regions stage will: with secure delete, so that freed pages are zeroed)
    connection
        .pragma_update(None, "secure_delete", "ON")
        .unwrap();
    connection
        .execute("DELETE FROM pending_lookups", [])
        .unwrap();
    connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(connection);
    for ip in IPS {
        assert!(files_containing(env.dir.path(), ip).is_empty(), "{ip} left");
    }
}

use std::path::Path;
use std::process::Output;

use crate::common::mock::{MockServer, Reply};
use crate::common::{git, stderr};
use serde_json::json;

const TOKEN: &str = "tok3n-s3cr3t-0123";

/// A mock ipinfo placing the public resolvers in California and one IPv6 address in Region37.
fn ipinfo() -> MockServer {
    MockServer::start(|request, _| {
        let ips: Vec<String> = serde_json::from_slice(&request.body).unwrap_or_default();
        let answer: serde_json::Map<String, serde_json::Value> = ips
            .iter()
            .map(|ip| {
                let (region, country) = if ip.contains(':') {
                    ("Region37", "DE")
                } else {
                    ("California", "US")
                };
                (
                    ip.clone(),
                    json!({"ip": ip, "region": region, "country": country}),
                )
            })
            .collect();
        Reply::json(200, serde_json::Value::Object(answer))
    })
}

/// A log of one GET of `ds1/a.nwb` by each (address, bytes).
fn log(dir: &Path, name: &str, requests: &[(&str, u64)]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::new();
    for (i, (ip, bytes)) in requests.iter().enumerate() {
        text.push_str(&format!(
            "owner bucket [02/Jul/2024:10:{i:02}:00 +0000] {ip} - R{i} REST.GET.OBJECT ds1/a.nwb \"GET /ds1/a.nwb HTTP/1.1\" 200 - {bytes} {bytes} 1 1 \"-\" \"-\" -\n"
        ));
    }
    std::fs::write(dir.join(name), text).unwrap();
}

fn run_and_publish(env: &Env, logs: &Path, repo: &Path, ipinfo: &MockServer) -> Output {
    let mut command = crate::common::run_and_publish(env, logs, repo);
    command
        .env("IPINFO_API_KEY", TOKEN)
        .env("IPINFO_URL", &ipinfo.url)
        .env_remove("OPENCAGE_API_KEY");
    command.output().unwrap()
}

/// Finding 1: a lone requester in a new region between two publications. The diff shows neither
/// the region nor a named row holding that requester's bytes.
#[test]
fn comparing_two_publications_does_not_isolate_a_lone_requester() {
    let env = Env::new();
    let ipinfo = ipinfo();
    let repo = env.dir.path().join("published");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet"]);
    let logs = env.dir.path().join("logs");
    let resolvers = [
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "9.9.9.9",
        "149.112.112.112",
    ];
    let many: Vec<(&str, u64)> = resolvers.iter().map(|ip| (*ip, 1000)).collect();
    log(&logs, "2024-07-02-10-00-00-AAAAAAAAAAAAAAAA", &many);
    let first = run_and_publish(&env, &logs, &repo, &ipinfo);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let by_region =
        std::fs::read_to_string(repo.join("content/summaries/ds1/by_region.tsv")).unwrap();
    assert!(by_region.contains("\nUS/California\t6000\t"), "{by_region}");
    // one person in a new region downloads once
    log(
        &logs,
        "2024-07-02-11-00-00-BBBBBBBBBBBBBBBB",
        &[("2001:4860:4860::8888", 4242)],
    );
    let second = run_and_publish(&env, &logs, &repo, &ipinfo);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let diff = git(&repo, &["diff", "HEAD~1", "HEAD"]);
    assert!(!diff.is_empty());
    assert!(!diff.contains("Region37"), "{diff}");
    for line in diff
        .lines()
        .filter(|l| l.starts_with(['+', '-']) && !l.starts_with("+++") && !l.starts_with("---"))
    {
        // no named region row changes; the bytes go to `other` (unnamed) and the day's total
        assert!(
            !line.contains("US/California") && !line.contains("DE/"),
            "{line}"
        );
    }
    let totals = std::fs::read_to_string(repo.join("content/totals.json")).unwrap();
    assert!(
        totals.contains("\"number_of_unique_regions\": 1"),
        "{totals}"
    );
    assert!(
        totals.contains("\"number_of_unique_countries\": 1"),
        "{totals}"
    );
    // nowhere in what is published
    assert!(files_containing(&repo.join("content"), "Region37").is_empty());
}

/// Finding 2: a reader holding the store open keeps the deleted raw IPs in the write-ahead log:
/// the stage says so and fails; once the reader is gone, a rerun erases them from every byte.
#[test]
fn raw_ips_are_erased_for_real_or_the_stage_fails_saying_why() {
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let reader = rusqlite::Connection::open_with_flags(
        env.cache.join("s3tally.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM pending_lookups", [], |row| row.get(0))
        .unwrap();
    let ranges = fixture("ranges");
    let regions = || {
        env.run(&[
            "update",
            "regions",
            "--ranges-dir",
            ranges.to_str().unwrap(),
        ])
    };
    let blocked = regions();
    assert_eq!(blocked.status.code(), Some(1), "{}", stderr(&blocked));
    assert!(
        stderr(&blocked).contains("another process is reading the store"),
        "{}",
        stderr(&blocked)
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let done = regions();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    for ip in IPS {
        assert!(
            files_containing(env.dir.path(), ip).is_empty(),
            "{ip} left on disk"
        );
    }
}

/// Finding 4: no secret in any message: an ipinfo that echoes the request's Authorization header,
/// a range-list URL with credentials, an address whose separators are damaged.
#[test]
fn no_secret_reaches_a_message_or_a_file() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("2024-07-02-10-00-00-AAAAAAAAAAAAAAAA"),
        "owner bucket [02/Jul/2024:10:00:00 +0000] 8.8.8.8 - R1 REST.GET.OBJECT k \"GET /k HTTP/1.1\" 200 - 5 5 1 1 \"-\" \"-\" -\n\
         owner bucket [02/Jul/2024:10:00:01 +0000] 8.8.4.4 - R2 REST.GET.OBJECT k \"GET /k?from=203.0.1\"13.77 HTTP/1.1\" 200 - 5\n",
    )
    .unwrap();
    let extracted = env.run(&["extract", logs.to_str().unwrap()]);
    let echo = MockServer::start(|request, _| {
        let authorization = request
            .header("Authorization")
            .unwrap_or_default()
            .to_owned();
        Reply::json(
            400,
            json!({"error": {"title": "Bad request", "message": format!("you sent {authorization}")}}),
        )
    });
    let mut command = env.command(&["update", "regions", "--timeout", "2"]);
    command
        .env("IPINFO_API_KEY", TOKEN)
        .env("IPINFO_URL", &echo.url)
        .env(
            "S3TALLY_GITHUB_RANGES_URL",
            "http://someone:pa55w0rd@127.0.0.1:9/github.json",
        )
        .env(
            "S3TALLY_AWS_RANGES_URL",
            "http://127.0.0.1:9/aws.json?key=pa55w0rd",
        )
        .env("S3TALLY_GCP_RANGES_URL", "http://127.0.0.1:9/gcp.json")
        .env("S3TALLY_VPN_RANGES_URL", "http://127.0.0.1:9/vpn.txt");
    let regions = command.output().unwrap();
    // the ranges are unreachable: nothing is sent to ipinfo; send it once with local lists
    let mut command = env.command(&[
        "update",
        "regions",
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
    ]);
    command
        .env("IPINFO_API_KEY", TOKEN)
        .env("IPINFO_URL", &echo.url);
    let asked = command.output().unwrap();
    assert!(!echo.requests().is_empty());
    assert!(stderr(&asked).contains("<secret>"), "{}", stderr(&asked));
    for output in [&extracted, &regions, &asked] {
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            for secret in [TOKEN, "pa55w0rd", "203.0.1", "13.77"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }
    for secret in [TOKEN, "pa55w0rd", "203.0.1\"13.77"] {
        for dir in [&env.cache, &env.config] {
            assert!(files_containing(dir, secret).is_empty(), "{secret} on disk");
        }
    }
}

/// Finding 5: exact figures are never published by accident.
#[test]
fn weaker_settings_warn_and_publish_refuses_them_unless_asked() {
    let env = Env::new();
    env.extract(&[&fixture("summaries/logs")], 0);
    let repo = env.dir.path().join("published");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet"]);
    for stage in ["summaries", "totals"] {
        let output = env.run(&["update", stage, "--round-to", "1"]);
        assert!(output.status.success());
        assert!(
            stderr(&output).contains("--round-to 1 (default 20)"),
            "{}",
            stderr(&output)
        );
    }
    let refused = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("--allow-exact"),
        "{}",
        stderr(&refused)
    );
    assert!(!repo.join("content").exists());
    let allowed = env.run(&["publish", repo.to_str().unwrap(), "--allow-exact"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    // the settings file stays beside the summaries, never published
    assert!(files_containing(&repo, "round_to").is_empty());
}

/// Finding 6: the cache is private, a short text salt is refused, and the store's fingerprint is
/// not a plain hash of the salt.
#[test]
fn the_cache_is_private_and_the_salt_cannot_be_checked_cheaply() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.cache), 0o700);
    for entry in std::fs::read_dir(&env.cache).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    let conn = rusqlite::Connection::open(env.cache.join("s3tally.sqlite")).unwrap();
    let fingerprint: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'salt_fingerprint'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(fingerprint.starts_with("v2:"), "{fingerprint}");
    // a short text salt is refused before anything is read
    let mut short = env.command(&["extract", fixture("nasty/logs").to_str().unwrap()]);
    short.env("S3TALLY_SALT", "only-twenty-chars!!!");
    let output = short.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("at least 32 characters"),
        "{}",
        stderr(&output)
    );
}

/// The publish lint: harmless names pass, a dataset named like an address is refused.
#[test]
fn the_publish_lint_reads_addresses_with_real_rules() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    log(
        &logs,
        "2024-07-02-10-00-00-AAAAAAAAAAAAAAAA",
        &[("192.0.2.1", 1)],
    );
    std::fs::write(
        logs.join("2024-07-02-11-00-00-BBBBBBBBBBBBBBBB"),
        "owner bucket [02/Jul/2024:11:00:00 +0000] 192.0.2.2 - R REST.GET.OBJECT ds1/model_v2.0.1.2.zip \"GET / HTTP/1.1\" 200 - 1 1 1 1 \"-\" \"-\" -\n\
         owner bucket [02/Jul/2024:11:00:01 +0000] 192.0.2.2 - R REST.GET.OBJECT ds1/file::1 \"GET / HTTP/1.1\" 200 - 1 1 1 1 \"-\" \"-\" -\n",
    )
    .unwrap();
    env.extract(&[&logs], 0);
    for stage in ["summaries", "totals"] {
        assert!(env.run(&["update", stage]).status.success());
    }
    let repo = env.dir.path().join("published");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet"]);
    let published = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(published.status.code(), Some(0), "{}", stderr(&published));
    // a dataset directory named like an address
    log(
        &logs,
        "2024-07-02-12-00-00-CCCCCCCCCCCCCCCC",
        &[("192.0.2.3", 1)],
    );
    std::fs::write(
        logs.join("2024-07-02-12-00-00-DDDDDDDDDDDDDDDD"),
        "owner bucket [02/Jul/2024:12:00:00 +0000] 192.0.2.4 - R REST.GET.OBJECT 8.8.8.8/x \"GET / HTTP/1.1\" 200 - 1 1 1 1 \"-\" \"-\" -\n",
    )
    .unwrap();
    env.extract(&[&logs], 0);
    for stage in ["summaries", "totals"] {
        assert!(env.run(&["update", stage]).status.success());
    }
    let refused = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("summaries/8.8.8.8/"),
        "{}",
        stderr(&refused)
    );
}

/// An existing cache written by an earlier version (0755) is made private; a directory that is
/// not a cache yet (perhaps shared) is left as it is, with a warning.
#[test]
fn existing_caches_are_made_private_but_foreign_directories_are_not_changed() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.extract(&[&fixture("nasty/logs")], 0);
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(&env.cache, open.clone()).unwrap();
    env.extract(&[&fixture("nasty/logs")], 0);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.cache), 0o700);
    let shared = env.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, open).unwrap();
    let foreign = std::process::Command::new(env!("CARGO_BIN_EXE_s3tally"))
        .env("S3TALLY_CONFIG_DIR", &env.config)
        .env("S3TALLY_SALT", &env.salt)
        .args(["--cache", shared.to_str().unwrap(), "extract"])
        .arg(fixture("nasty/logs"))
        .output()
        .unwrap();
    assert!(foreign.status.success(), "{}", stderr(&foreign));
    assert!(
        stderr(&foreign).contains("may be read by others (mode 755)"),
        "{}",
        stderr(&foreign)
    );
    assert_eq!(mode(&shared), 0o755);
}
