//! Places with no API key: an offline IP database, ISO labels in either style, bundled places.

use super::regions::regions;
use crate::common::mock::{MockServer, Reply};
use crate::common::{Env, fixture, labels_of, stderr};

fn city_db() -> String {
    fixture("geoip/s3tally-test-city.mmdb")
        .to_str()
        .unwrap()
        .to_owned()
}

/// `update regions` with the bundled range lists and `--geoip-db DB`, no ipinfo key.
fn regions_from(env: &Env, db: &str) -> std::process::Output {
    regions(env, None, &["--geoip-db", db])
}

#[test]
fn the_database_places_every_requester_ipinfo_would_have_with_no_key() {
    let env = Env::new();
    env.extract(&[&fixture("regions/logs")], 0);
    let output = regions_from(&env, &city_db());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("places from the IP database"), "{text}");
    assert!(text.contains("GeoLite2-City"), "{text}");
    assert!(text.contains("0 still pending"), "{text}");
    // by hand from fixtures/geoip/make_test_databases.py (the others from fixtures/ranges)
    let expected = [
        ("8.8.8.8", "US-CA"),
        ("2001:4860:4860::8888", "US-CA"),
        ("1.1.1.1", "AU-QLD"),
        ("9.9.9.9", "CH"),
        ("149.112.112.112", "DE-BY"),
        // not in the test database
        ("8.8.4.4", "unknown"),
        ("192.0.2.10", "bogon"),
        ("52.1.1.1", "AWS/us-east-1"),
    ];
    let ips: Vec<&str> = expected.iter().map(|(ip, _)| *ip).collect();
    let labels = labels_of(&env, &ips);
    for (ip, label) in expected {
        assert_eq!(labels[ip].as_deref(), Some(label), "{ip}");
    }
    // placed from the database, their raw IPs are gone from every byte of the cache
    for ip in ["8.8.8.8", "149.112.112.112", "2001:4860:4860::8888"] {
        assert_eq!(
            crate::common::files_containing(&env.cache, ip),
            Vec::<std::path::PathBuf>::new(),
            "{ip}"
        );
    }
}

#[test]
fn a_missing_or_corrupt_database_leaves_requesters_pending_with_one_clear_error() {
    let env = Env::new();
    env.extract(&[&fixture("regions/logs")], 0);
    let missing = env.dir.path().join("nowhere.mmdb");
    let output = regions_from(&env, missing.to_str().unwrap());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("s3tally update geoip"),
        "{}",
        stderr(&output)
    );
    let corrupt = env.dir.path().join("corrupt.mmdb");
    let bytes = std::fs::read(city_db()).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();
    let output = regions_from(&env, corrupt.to_str().unwrap());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    // nothing was decided from a database that does not open: still waiting, not `unknown`
    assert_eq!(labels_of(&env, &["8.8.8.8"])["8.8.8.8"], None);
    // a good one afterwards places them
    assert!(regions_from(&env, &city_db()).status.success());
    assert_eq!(
        labels_of(&env, &["8.8.8.8"])["8.8.8.8"].as_deref(),
        Some("US-CA")
    );
}

fn region_rows(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.cache.join("summaries/archive/by_region.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split('\t').next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_label_style_switches_without_any_lookup() {
    let env = Env::new();
    env.extract(&[&fixture("regions/logs")], 0);
    assert!(regions_from(&env, &city_db()).status.success());
    let summaries = |style: &str| {
        let output = env.run(&[
            "update",
            "summaries",
            "--region-min-requesters",
            "1",
            "--label-style",
            style,
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let output = env.run(&["update", "coordinates"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stderr(&output)
    };
    summaries("names");
    let names = region_rows(&env);
    for label in ["US/California", "AU/Queensland", "CH", "DE/Bayern"] {
        assert!(names.contains(&label.to_owned()), "{label} in {names:?}");
    }
    // every place from the bundled tables, none left for a geocoder
    let coordinates = summaries("iso");
    assert!(!coordinates.contains("need the geocoder"), "{coordinates}");
    let iso = region_rows(&env);
    for label in [
        "USA/CA",
        "AUS/QLD",
        "CHE",
        "DEU/BY",
        "AWS/us-east-1",
        "bogon",
    ] {
        assert!(iso.contains(&label.to_owned()), "{label} in {iso:?}");
    }
    assert!(!iso.iter().any(|label| label.contains("California")));
    // the coordinates file follows the style: by hand from src/labels/iso3166-2.tsv
    let yaml =
        std::fs::read_to_string(env.cache.join("summaries/region_codes_to_coordinates.yaml"))
            .unwrap();
    assert!(
        yaml.contains("\"USA/CA\": {latitude: 36.7015, longitude: -118.756}\n"),
        "{yaml}"
    );
    assert!(!yaml.contains("US/California"), "{yaml}");
    // and back, still without any lookup (no key, no database: nothing pending either)
    let status = env.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("requesters pending lookup        │ 0")
    );
    summaries("names");
    assert_eq!(region_rows(&env), names);
}

/// The test city database packed as `MaxMind` serves it: a .tar.gz with a dated directory.
fn maxmind_tarball() -> Vec<u8> {
    let database = std::fs::read(city_db()).unwrap();
    let mut tarball = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(database.len() as u64);
    tarball
        .append_data(
            &mut header,
            "GeoLite2-City_20261124/GeoLite2-City.mmdb",
            database.as_slice(),
        )
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tarball.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A mock of `MaxMind`'s download service: the archive and its `.sha256`, behind basic auth
/// (`42:secret`); `checksum` is what the `.sha256` says.
fn maxmind(checksum: String) -> MockServer {
    let archive = maxmind_tarball();
    MockServer::start(move |request, _| {
        // "42:secret" in base64
        if request.header("authorization") != Some("Basic NDI6c2VjcmV0") {
            return Reply::Respond(401, vec![], "Invalid license key".into());
        }
        let binary = |body: Vec<u8>| {
            Reply::Bytes(
                200,
                vec![("Content-Type".into(), "application/gzip".into())],
                body,
            )
        };
        match request.path.as_str() {
            "/geoip/databases/GeoLite2-City/download?suffix=tar.gz.sha256" => Reply::Respond(
                200,
                vec![],
                format!("{checksum}  GeoLite2-City_20261124.tar.gz\n"),
            ),
            "/geoip/databases/GeoLite2-City/download?suffix=tar.gz" => binary(archive.clone()),
            _ => Reply::Respond(404, vec![], "not found".into()),
        }
    })
}

fn update_geoip(env: &Env, server: &MockServer, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "update",
        "geoip",
        "--maxmind-url",
        &server.url,
        "--retry-base-ms",
        "10",
    ];
    args.extend_from_slice(extra);
    env.command(&args)
        .env("MAXMIND_ACCOUNT_ID", "42")
        .env("MAXMIND_LICENSE_KEY", "secret")
        .output()
        .unwrap()
}

#[test]
fn update_geoip_downloads_checks_replaces_and_skips_a_fresh_copy() {
    let env = Env::new();
    let good = maxmind(sha256_hex(&maxmind_tarball()));
    let output = update_geoip(&env, &good, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let db = env.cache.join("geoip/GeoLite2-City.mmdb");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        std::fs::read(city_db()).unwrap()
    );
    assert_eq!(good.requests().len(), 2);
    // remembered: `update regions` uses it without --geoip-db
    env.extract(&[&fixture("regions/logs")], 0);
    let output = regions(&env, None, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        labels_of(&env, &["8.8.8.8"])["8.8.8.8"].as_deref(),
        Some("US-CA")
    );
    // fresh: nothing asked
    let output = update_geoip(&env, &good, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("kept"), "{}", stderr(&output));
    assert_eq!(good.requests().len(), 2);
    // a checksum that does not match: refused, the old copy stays
    let before = std::fs::read(&db).unwrap();
    let tampered = maxmind("0".repeat(64));
    let output = update_geoip(&env, &tampered, &["--force"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("SHA-256"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&db).unwrap(), before);
    // no temporary file left beside it
    let beside: Vec<_> = std::fs::read_dir(db.parent().unwrap()).unwrap().collect();
    assert_eq!(beside.len(), 1);
}

#[test]
fn refused_keys_and_the_daily_limit_are_handled_and_the_old_copy_stays() {
    let env = Env::new();
    let db = env.dir.path().join("kept.mmdb");
    std::fs::copy(city_db(), &db).unwrap();
    let db_arg = db.to_str().unwrap();
    let refusing =
        MockServer::start(|_, _| Reply::Respond(401, vec![], "Invalid license key".into()));
    let output = update_geoip(&env, &refusing, &["--db", db_arg, "--force"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("MAXMIND_ACCOUNT_ID") && !text.contains("secret"),
        "{text}"
    );
    assert_eq!(refusing.requests().len(), 1, "401 is not retried");
    let limited = MockServer::start(|_, _| Reply::Respond(429, vec![], "Too many".into()));
    let output = update_geoip(
        &env,
        &limited,
        &["--db", db_arg, "--force", "--retries", "1"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("download limit"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        limited.requests().len(),
        1,
        "429 is not retried: it counts against the limit"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        std::fs::read(city_db()).unwrap()
    );
    // without credentials and without --url: bad usage naming both ways
    let output = env
        .command(&["update", "geoip"])
        .env_remove("MAXMIND_ACCOUNT_ID")
        .env_remove("MAXMIND_LICENSE_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--url"), "{}", stderr(&output));
}

#[test]
fn any_url_works_and_a_download_that_is_no_database_is_refused() {
    let env = Env::new();
    let database = std::fs::read(city_db()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &database).unwrap();
    let gzipped = gz.finish().unwrap();
    let server = MockServer::start(move |request, _| match request.path.as_str() {
        "/dbip-city-lite-2026-11.mmdb.gz" => Reply::Bytes(200, vec![], gzipped.clone()),
        _ => Reply::Respond(200, vec![], "<html>not a database</html>".into()),
    });
    let db = env.dir.path().join("dbip.mmdb");
    let url = format!("{}/dbip-city-lite-2026-11.mmdb.gz", server.url);
    let output = env.run(&[
        "update",
        "geoip",
        "--url",
        &url,
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read(&db).unwrap(), database);
    let bad = format!("{}/page.html", server.url);
    let output = env.run(&[
        "update",
        "geoip",
        "--url",
        &bad,
        "--db",
        db.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not an IP database"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&db).unwrap(), database);
}

#[test]
fn azure_requesters_get_their_region_and_its_data_centre() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    crate::common::write_log(
        &logs,
        "2024-07-02-10-00-00-AAAAAAAAAAAAAAAA",
        "ds1/a.nwb",
        &["20.41.1.1", "20.42.0.9"],
    );
    env.extract(&[&logs], 0);
    let output = regions_from(&env, &city_db());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let labels = labels_of(&env, &["20.41.1.1", "20.42.0.9"]);
    // by hand from fixtures/ranges/azure.json
    assert_eq!(labels["20.41.1.1"].as_deref(), Some("Azure/westeurope"));
    assert_eq!(labels["20.42.0.9"].as_deref(), Some("Azure/eastus"));
    assert!(
        env.run(&["update", "summaries", "--region-min-requesters", "1"])
            .status
            .success()
    );
    assert!(env.run(&["update", "coordinates"]).status.success());
    let yaml =
        std::fs::read_to_string(env.cache.join("summaries/region_codes_to_coordinates.yaml"))
            .unwrap();
    // src/labels/region_coordinates.tsv
    assert!(
        yaml.contains("\"Azure/westeurope\": {latitude: 52.3667, longitude: 4.9}\n"),
        "{yaml}"
    );
}

#[test]
fn publish_credits_the_database_in_the_repository_readme_once() {
    let env = Env::new();
    let repo = crate::common::new_repo(&env);
    std::fs::write(repo.join("README.md"), "# Our usage statistics\n").unwrap();
    let publish = || {
        let output = crate::common::run_and_publish(&env, &fixture("geoip/logs"), &repo)
            .args(["--geoip-db", &city_db()])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    };
    publish();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    // the test database says it is GeoLite2-City: MaxMind's attribution
    assert!(readme.starts_with("# Our usage statistics\n"), "{readme}");
    assert_eq!(
        readme.matches("GeoLite2 data created by MaxMind").count(),
        1,
        "{readme}"
    );
    let committed = crate::common::git(&repo, &["show", "--stat", "HEAD"]);
    assert!(committed.contains("README.md"), "{committed}");
    publish();
    assert_eq!(
        std::fs::read_to_string(repo.join("README.md")).unwrap(),
        readme
    );
}

#[test]
fn a_remembered_database_is_used_and_can_be_forgotten() {
    let env = Env::new();
    let bad = env.dir.path().join("bad.mmdb");
    std::fs::write(&bad, "not a database").unwrap();
    let refused = env.run(&["config", "geoip", "set", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        env.run(&["config", "geoip", "set", &city_db()])
            .status
            .success()
    );
    let shown = env.run(&["config", "geoip", "show"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("s3tally-test-city.mmdb"));
    env.extract(&[&fixture("geoip/logs")], 0);
    let output = regions(&env, None, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        labels_of(&env, &["8.8.8.1"])["8.8.8.1"].as_deref(),
        Some("US-CA")
    );
    assert!(env.run(&["config", "geoip", "unset"]).status.success());
    let shown = env.run(&["config", "geoip", "show"]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout), "none\n");
}
