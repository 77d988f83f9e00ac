//! Places with no API key: an offline IP database, ISO labels in either style, bundled places.

use crate::common::{Env, fixture, labels_of, stderr};

fn city_db() -> String {
    fixture("geoip/s3tally-test-city.mmdb")
        .to_str()
        .unwrap()
        .to_owned()
}

/// `update regions` with the bundled range lists and `--geoip-db DB`, no ipinfo key.
fn regions_from(env: &Env, db: &str) -> std::process::Output {
    env.command(&[
        "update",
        "regions",
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
        "--geoip-db",
        db,
    ])
    .env_remove("IPINFO_API_KEY")
    .output()
    .unwrap()
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
