//! `update coordinates` against a mock `OpenCage` that behaves like the real API.

use std::process::Output;
use std::time::Duration;

use crate::common::mock::{MockServer, Reply, Request};
use crate::common::{Env, copy_dir, fixture, stderr};
use serde_json::json;

const KEY: &str = "test-key";

/// The region labels the mock ipinfo gives the requesters of fixtures/regions/logs (the others
/// get theirs from fixtures/ranges): places the ISO tables know, and a region name they cannot
/// place (its requester gets the country alone).
fn ipinfo_details(ip: &str) -> serde_json::Value {
    match ip {
        "8.8.8.8" | "2001:4860:4860::8888" => {
            json!({"ip": ip, "region": "California", "country": "US"})
        }
        "1.1.1.1" => json!({"ip": ip, "region": "Queensland", "country": "AU"}),
        "9.9.9.9" => json!({"ip": ip, "region": "Mordoviya Republic", "country": "RU"}),
        "149.112.112.112" => json!({"ip": ip, "country": "CH"}),
        _ => json!({"ip": ip, "region": "Nowhere Land", "country": "NZ"}),
    }
}

/// The store of fixtures/regions/logs with every requester labelled.
fn labelled() -> Env {
    let env = Env::new();
    env.extract(&[&fixture("regions/logs")], 0);
    let ipinfo = MockServer::start(|request, _| {
        let ips: Vec<String> = serde_json::from_slice(&request.body).unwrap();
        let answer: serde_json::Map<String, serde_json::Value> = ips
            .iter()
            .map(|ip| (ip.clone(), ipinfo_details(ip)))
            .collect();
        Reply::json(200, serde_json::Value::Object(answer))
    });
    let mut command = env.command(&[
        "update",
        "regions",
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
    ]);
    command
        .env("IPINFO_API_KEY", "token")
        .env("IPINFO_URL", &ipinfo.url);
    assert!(command.output().unwrap().status.success());
    // the summaries name every label (K = 1), and one already published names subdivisions the
    // ISO tables do not know (only those go to the geocoder)
    assert!(
        env.run(&["update", "summaries", "--region-min-requesters", "1"])
            .status
            .success()
    );
    copy_dir(
        &fixture("coordinates/summaries"),
        &env.cache.join("summaries"),
    );
    env
}

/// Decodes a query string value (`+` and `%XX`).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() + 1 => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn param(request: &Request, name: &str) -> Option<String> {
    let query = request.path.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| decode(value))
}

/// (query, country) of every request.
fn asked(server: &MockServer) -> Vec<(String, String)> {
    server
        .requests()
        .iter()
        .map(|r| (param(r, "q").unwrap(), param(r, "countrycode").unwrap()))
        .collect()
}

/// What `OpenCage` answers, in its format.
fn geocode_answer(request: &Request) -> Reply {
    if param(request, "key").as_deref() != Some(KEY) {
        return Reply::json(
            401,
            json!({"status": {"code": 401, "message": "invalid API key"}, "results": [], "total_results": 0}),
        );
    }
    let place = match (
        param(request, "q").unwrap().as_str(),
        param(request, "countrycode").unwrap().as_str(),
    ) {
        ("ZZ", "us") => Some((
            36.7014631,
            -118.755997,
            "somewhere, United States of America",
        )),
        ("QQ", "au") => Some((-25.5, 134.5, "somewhere, Australia")),
        ("XX", "ch") => Some((46.7985624, 8.2319736, "Switzerland")),
        ("YY", "fr") => Some((48.6443057, 2.7537863, "Ile-de-France, France")),
        _ => None,
    };
    let results: Vec<serde_json::Value> = place
        .into_iter()
        .map(|(lat, lng, formatted)| json!({"formatted": formatted, "confidence": 1, "geometry": {"lat": lat, "lng": lng}}))
        .collect();
    let total = results.len();
    Reply::json(
        200,
        json!({"results": results, "status": {"code": 200, "message": "OK"}, "total_results": total}),
    )
}

fn coordinates(env: &Env, server: Option<&MockServer>, extra: &[&str]) -> Output {
    let mut args = vec!["update", "coordinates", "--retry-base-ms", "10"];
    args.extend_from_slice(extra);
    let mut command = env.command(&args);
    command
        .env_remove("OPENCAGE_API_KEY")
        .env_remove("OPENCAGE_URL");
    if let Some(server) = server {
        command
            .env("OPENCAGE_API_KEY", KEY)
            .env("OPENCAGE_URL", &server.url);
    }
    command.output().unwrap()
}

fn yaml(env: &Env) -> String {
    std::fs::read_to_string(env.cache.join("summaries/region_codes_to_coordinates.yaml")).unwrap()
}

/// What the geocoder is asked: the subdivision codes the ISO tables do not know, in their country.
const PLACES: [(&str, &str); 5] = [
    ("QQ", "au"),
    ("WW", "nz"),
    ("XX", "ch"),
    ("YY", "fr"),
    ("ZZ", "us"),
];

#[test]
fn the_file_is_what_was_written_by_hand_and_only_places_are_asked() {
    let env = labelled();
    let server = MockServer::start(|request, _| geocode_answer(request));
    let output = coordinates(&env, Some(&server), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected = std::fs::read_to_string(fixture("coordinates/expected.yaml")).unwrap();
    assert_eq!(yaml(&env), expected);
    // places the tables do not know only, each once, in their country; never the tables' labels
    // nor place-less ones
    let mut asked = asked(&server);
    asked.sort();
    let places: Vec<(String, String)> = PLACES
        .iter()
        .map(|(q, c)| (q.to_string(), c.to_string()))
        .collect();
    assert_eq!(asked, places);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/geocode/v1/json?"))
    );
    let text = stderr(&output);
    assert!(
        text.contains("could not place 1 labels") && text.contains("NZ/WW"),
        "{text}"
    );
}

#[test]
fn no_label_is_asked_twice_across_runs() {
    let env = labelled();
    let server = MockServer::start(|request, _| geocode_answer(request));
    assert!(coordinates(&env, Some(&server), &[]).status.success());
    let file = env.cache.join("summaries/region_codes_to_coordinates.yaml");
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let output = coordinates(&env, Some(&server), &[]);
    assert!(output.status.success());
    assert_eq!(server.requests().len(), 5, "asked again");
    assert!(stderr(&output).contains("unchanged"));
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        modified
    );
    // the place the geocoder could not find is not asked again either, and still listed
    assert!(stderr(&output).contains("NZ/WW"));
}

#[test]
fn without_a_key_the_table_and_cache_are_used_and_the_rest_listed() {
    let env = labelled();
    let output = coordinates(&env, None, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("5 labels need the geocoder (OPENCAGE_API_KEY is not set): AU/QQ, CH/XX, FR/YY, NZ/WW, US/ZZ"),
        "{text}"
    );
    let file = yaml(&env);
    // by hand from src/labels/iso3166-2.tsv: Mordoviya's reference point, not Missouri
    assert!(
        file.contains("\"RU/Mordovija, Respublika\": {latitude: 54.442, longitude: 44.4661}\n")
    );
    assert!(file.contains("\"US/California\": {latitude: 36.7015, longitude: -118.756}\n"));
    assert!(file.contains("\"US/ZZ\": {latitude: null, longitude: null}\n"));
}

#[test]
fn quota_stops_with_exit_3_and_the_rerun_asks_only_the_rest() {
    let env = labelled();
    let first = MockServer::start(|request, index| {
        if index == 0 {
            geocode_answer(request)
        } else {
            Reply::json(
                402,
                json!({"status": {"code": 402, "message": "quota exceeded"}, "results": []}),
            )
        }
    });
    let output = coordinates(&env, Some(&first), &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("quota exhausted"));
    assert_eq!(first.requests().len(), 2, "402 is not retried");
    let answered = asked(&first)[0].clone();
    let second = MockServer::start(|request, _| geocode_answer(request));
    let output = coordinates(&env, Some(&second), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let again = asked(&second);
    assert_eq!(again.len(), 4);
    assert!(!again.contains(&answered));
    let expected = std::fs::read_to_string(fixture("coordinates/expected.yaml")).unwrap();
    assert_eq!(yaml(&env), expected);
}

#[test]
fn rate_limits_and_server_errors_are_retried_then_the_stage_stops() {
    let env = labelled();
    let flaky = MockServer::start(|request, index| match index {
        0 => Reply::Respond(429, vec![("Retry-After".into(), "1".into())], "{}".into()),
        1 => Reply::json(
            503,
            json!({"status": {"code": 503, "message": "unavailable"}}),
        ),
        _ => geocode_answer(request),
    });
    let output = coordinates(&env, Some(&flaky), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(flaky.requests().len(), 7);

    let env = labelled();
    let down = MockServer::start(|_, _| Reply::Respond(500, vec![], "oops".into()));
    let output = coordinates(&env, Some(&down), &["--retries", "2"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(down.requests().len(), 3);
    // the file is still written with what is known
    assert!(yaml(&env).contains("\"AWS/us-east-1\": {latitude: 39.0438, longitude: -77.4874}\n"));
}

#[test]
fn a_timeout_is_retried_then_stops() {
    let env = labelled();
    let hung = MockServer::start(|_, _| Reply::Hang);
    let output = coordinates(&env, Some(&hung), &["--timeout", "1", "--retries", "1"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("timed out"));
}

#[test]
fn a_refused_key_is_one_error_naming_the_variable() {
    let env = labelled();
    let server = MockServer::start(|_, _| {
        Reply::json(
            401,
            json!({"status": {"code": 401, "message": "invalid API key"}, "results": []}),
        )
    });
    let output = coordinates(&env, Some(&server), &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("OPENCAGE_API_KEY"), "{text}");
    assert_eq!(server.requests().len(), 1);
}

/// A 200 answer that is not the documented shape (no results list, a latitude out of range) is an
/// error retried next run, never cached as "not found"; a good answer later places the label.
#[test]
fn an_answer_of_the_wrong_shape_is_never_cached_as_not_found() {
    let env = labelled();
    for broken in [
        json!({"status": {"code": 200, "message": "OK"}}),
        json!({"results": [{"geometry": {"lat": 123.4, "lng": 5.0}}], "total_results": 1}),
    ] {
        let server = MockServer::start(move |_, _| Reply::json(200, broken.clone()));
        let output = coordinates(&env, Some(&server), &["--retries", "1"]);
        assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("unreadable answer"),
            "{}",
            stderr(&output)
        );
        assert!(!yaml(&env).contains("latitude: 123.4"));
    }
    let good = MockServer::start(|request, _| geocode_answer(request));
    let output = coordinates(&env, Some(&good), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        asked(&good).len(),
        5,
        "every place is asked: none was cached as not found"
    );
    assert!(yaml(&env).contains("\"US/ZZ\": {latitude: 36.7014631, longitude: -118.755997}"));
}

/// `--forget LABEL` asks again for one label; `--refresh` for every label.
#[test]
fn forgotten_answers_are_asked_again() {
    let env = labelled();
    let server = MockServer::start(|request, _| geocode_answer(request));
    assert!(coordinates(&env, Some(&server), &[]).status.success());
    assert_eq!(server.requests().len(), 5);
    let output = coordinates(&env, Some(&server), &["--forget", "US/ZZ"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("1 earlier answers forgotten"),
        "{}",
        stderr(&output)
    );
    assert_eq!(asked(&server)[5..], [("ZZ".to_owned(), "us".to_owned())]);
    assert!(
        coordinates(&env, Some(&server), &["--refresh"])
            .status
            .success()
    );
    assert_eq!(server.requests().len(), 5 + 1 + 5);
    // a label that is no label is bad usage
    assert_eq!(
        coordinates(&env, Some(&server), &["--forget", "not a label"])
            .status
            .code(),
        Some(2)
    );
}

/// A redirect is not followed: the request carries the key.
#[test]
fn a_redirect_is_not_followed_with_the_key() {
    let env = labelled();
    let elsewhere = MockServer::start(|request, _| geocode_answer(request));
    let target = format!("{}/geocode/v1/json", elsewhere.url);
    let redirecting = MockServer::redirecting(302, target);
    let output = coordinates(&env, Some(&redirecting), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("OpenCage answered with a redirect"),
        "{}",
        stderr(&output)
    );
    assert!(elsewhere.requests().is_empty());
}
