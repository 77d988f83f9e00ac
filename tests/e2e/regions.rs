//! `update regions` against local range files and a mock ipinfo that behaves like the real one
//! (the range lists themselves: `ranges.rs`).

use std::collections::BTreeSet;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::mock::{MockServer, Reply, Request};
use crate::common::{Env, files_containing, fixture, labels_of, stderr};
use serde_json::json;

pub(super) const TOKEN: &str = "test-token";

/// Every requester of fixtures/regions/logs and its label, worked out by hand from
/// fixtures/ranges and the mock ipinfo answers below.
const EXPECTED: [(&str, &str); 16] = [
    ("8.8.8.8", "US-CA"),
    ("8.8.4.4", "US-CA"),
    ("1.1.1.1", "AU-QLD"),
    ("9.9.9.9", "CH"),
    ("2001:4860:4860::8888", "US-CA"),
    ("149.112.112.112", "unknown"),
    ("192.0.2.10", "bogon"),
    ("10.20.30.40", "bogon"),
    ("140.82.112.3", "GitHub"),
    ("52.95.1.1", "AWS/eu-west-1"),
    ("52.1.1.1", "AWS/us-east-1"),
    ("2600:1f18::5", "AWS/us-west-2"),
    ("34.80.0.1", "GCP/asia-east1"),
    ("2600:1900:4000::1", "GCP/us-central1"),
    ("104.131.0.1", "VPN"),
    ("-", "unknown"),
];

/// The addresses that only ipinfo can label.
const FOR_IPINFO: [&str; 6] = [
    "8.8.8.8",
    "8.8.4.4",
    "1.1.1.1",
    "9.9.9.9",
    "2001:4860:4860::8888",
    "149.112.112.112",
];

/// What ipinfo knows, in its answer format.
fn details(ip: &str) -> serde_json::Value {
    match ip {
        "8.8.8.8" | "8.8.4.4" => {
            json!({"ip": ip, "hostname": "dns.google", "city": "Mountain View",
            "region": "California", "country": "US", "loc": "37.4056,-122.0775",
            "org": "AS15169 Google LLC", "postal": "94043", "timezone": "America/Los_Angeles", "anycast": true})
        }
        "1.1.1.1" => json!({"ip": ip, "hostname": "one.one.one.one", "city": "Brisbane",
            "region": "Queensland", "country": "AU", "loc": "-27.4820,153.0136", "anycast": true}),
        "9.9.9.9" => json!({"ip": ip, "country": "CH"}),
        "2001:4860:4860::8888" => {
            json!({"ip": ip, "city": "Mountain View", "region": "California", "country": "US"})
        }
        "10.1.1.1" => json!({"ip": ip, "bogon": true}),
        _ => json!({"ip": ip}),
    }
}

/// An ipinfo batch answer to `request`, leaving out the addresses in `omit`.
pub(super) fn batch_answer(request: &Request, omit: &[&str]) -> Reply {
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Reply::json(
            401,
            json!({"error": {"title": "Unknown token", "message": "Please ensure you've entered your token correctly."}}),
        );
    }
    let mut answer = serde_json::Map::new();
    for ip in asked(request) {
        if !omit.contains(&ip.as_str()) {
            answer.insert(ip.clone(), details(&ip));
        }
    }
    Reply::json(200, serde_json::Value::Object(answer))
}

fn asked(request: &Request) -> Vec<String> {
    request
        .json()
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| Some(v.as_str()?.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn all_asked(server: &MockServer) -> Vec<String> {
    server.requests().iter().flat_map(asked).collect()
}

fn quota_reply() -> Reply {
    Reply::json(
        429,
        json!({"status": 429, "error": {"title": "Quota exceeded", "message": "Your monthly request quota has been exhausted."}}),
    )
}

/// An environment with fixtures/regions/logs extracted.
pub(super) fn extracted() -> Env {
    let env = Env::new();
    env.extract(&[&fixture("regions/logs")], 0);
    env
}

pub(super) fn regions(env: &Env, ipinfo: Option<&MockServer>, extra: &[&str]) -> Output {
    let ranges = fixture("ranges");
    let mut args = vec![
        "update",
        "regions",
        "--ranges-dir",
        ranges.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut command = env.command(&args);
    command
        .env_remove("IPINFO_API_KEY")
        .env_remove("IPINFO_URL");
    if let Some(server) = ipinfo {
        command
            .env("IPINFO_API_KEY", TOKEN)
            .env("IPINFO_URL", &server.url);
    }
    command.output().unwrap()
}

pub(super) fn assert_labels(env: &Env, expected: &[(&str, Option<&str>)]) {
    let ips: Vec<&str> = expected.iter().map(|(ip, _)| *ip).collect();
    let labels = labels_of(env, &ips);
    for (ip, label) in expected {
        assert_eq!(labels[*ip].as_deref(), *label, "label of {ip}");
    }
}

fn all_expected() -> Vec<(&'static str, Option<&'static str>)> {
    EXPECTED
        .iter()
        .map(|(ip, label)| (*ip, Some(*label)))
        .collect()
}

#[test]
fn without_a_key_bogons_and_services_are_labelled_the_rest_waits() {
    let env = extracted();
    let output = regions(&env, None, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("6 requesters need ipinfo and stay pending: set IPINFO_API_KEY"),
        "{text}"
    );
    let expected: Vec<_> = EXPECTED
        .iter()
        .map(|(ip, label)| (*ip, (!FOR_IPINFO.contains(ip)).then_some(*label)))
        .collect();
    assert_labels(&env, &expected);
    // the IPs still waiting are on disk, the resolved ones are not
    for ip in FOR_IPINFO {
        assert!(!files_containing(&env.cache, ip).is_empty(), "{ip}");
    }
    for (ip, _) in EXPECTED
        .iter()
        .filter(|(ip, _)| !FOR_IPINFO.contains(ip) && *ip != "-")
    {
        assert!(
            files_containing(&env.cache, ip).is_empty(),
            "{ip} left on disk"
        );
    }
    let status = String::from_utf8(env.run(&["status"]).stdout).unwrap();
    let value = |what: &str| {
        let line = status.lines().find(|l| l.contains(what)).unwrap();
        line.split('│').nth(2).unwrap().trim().to_owned()
    };
    assert_eq!(value("labelled bogon"), "2");
    assert_eq!(value("labelled AWS"), "3");
    assert_eq!(value("labelled GCP"), "2");
    assert_eq!(value("labelled GitHub"), "1");
    assert_eq!(value("labelled VPN"), "1");
    assert_eq!(value("labelled unknown"), "1");
    assert_eq!(value("not labelled yet"), "6");
}

#[test]
fn ipinfo_labels_the_rest_and_no_raw_ip_is_left_on_disk() {
    let env = extracted();
    let server = MockServer::start(|request, _| batch_answer(request, &[]));
    let output = regions(&env, Some(&server), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_labels(&env, &all_expected());
    // only what needs ipinfo was sent to it, once, by POST /batch with the token
    let asked: BTreeSet<String> = all_asked(&server).into_iter().collect();
    assert_eq!(
        asked,
        FOR_IPINFO
            .iter()
            .map(std::string::ToString::to_string)
            .collect()
    );
    assert_eq!(all_asked(&server).len(), 6);
    for request in server.requests() {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/batch")
        );
    }
    for (ip, _) in EXPECTED.iter().filter(|(ip, _)| *ip != "-") {
        assert!(
            files_containing(env.dir.path(), ip).is_empty(),
            "{ip} left on disk"
        );
    }
    // nothing left to do: a second run asks nothing
    let again = regions(&env, Some(&server), &[]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn batches_hold_at_most_the_batch_size_and_several_are_in_flight() {
    let env = extracted();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let server = {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        MockServer::start(move |request, _| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            batch_answer(request, &[])
        })
    };
    let output = regions(
        &env,
        Some(&server),
        &["--batch-size", "2", "--concurrency", "3"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(server.requests().len(), 3);
    assert!(server.requests().iter().all(|r| asked(r).len() <= 2));
    assert!(
        most.load(Ordering::SeqCst) >= 2,
        "never more than one request in flight"
    );
    assert_labels(&env, &all_expected());
}

#[test]
fn retry_after_is_honoured() {
    let env = extracted();
    let server = MockServer::start(|request, index| {
        if index == 0 {
            Reply::Respond(
                429,
                vec![("Retry-After".into(), "1".into())],
                "Too Many Requests".into(),
            )
        } else {
            batch_answer(request, &[])
        }
    });
    let started = Instant::now();
    let output = regions(&env, Some(&server), &["--retry-base-ms", "10"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.requests().len(), 2);
    assert_labels(&env, &all_expected());
}

#[test]
fn rate_limits_without_retry_after_and_server_errors_are_retried() {
    let env = extracted();
    let server = MockServer::start(|request, index| match index {
        0 => Reply::json(429, json!({"error": {"title": "Rate limit exceeded"}})),
        1 => Reply::Respond(500, vec![], "Internal Server Error".into()),
        2 => Reply::Respond(503, vec![], "Service Unavailable".into()),
        _ => batch_answer(request, &[]),
    });
    let output = regions(&env, Some(&server), &["--retry-base-ms", "10"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(server.requests().len(), 4);
    assert_labels(&env, &all_expected());
}

#[test]
fn a_hung_connection_times_out_and_the_stage_stops_cleanly() {
    let env = extracted();
    let server = MockServer::start(|_, _| Reply::Hang);
    let started = Instant::now();
    let output = regions(
        &env,
        Some(&server),
        &["--timeout", "1", "--retries", "1", "--retry-base-ms", "10"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(8));
    let text = stderr(&output);
    assert!(
        text.contains("did not answer after 2 attempts (last: timed out)"),
        "{text}"
    );
    assert!(
        text.contains("6 requesters stay pending for the next run"),
        "{text}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn retries_exhausted_stop_cleanly_with_exit_3() {
    let env = extracted();
    let server = MockServer::start(|_, _| Reply::Respond(502, vec![], "Bad Gateway".into()));
    let output = regions(
        &env,
        Some(&server),
        &["--retries", "2", "--retry-base-ms", "10"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(server.requests().len(), 3);
    assert!(stderr(&output).contains("6 requesters stay pending"));
}

#[test]
fn stopped_on_quota_the_rerun_finishes_and_no_requester_is_asked_twice() {
    let env = extracted();
    let first = MockServer::start(|request, index| {
        if index == 0 {
            batch_answer(request, &[])
        } else {
            quota_reply()
        }
    });
    let args = [
        "--batch-size",
        "2",
        "--concurrency",
        "1",
        "--retry-base-ms",
        "10",
    ];
    let output = regions(&env, Some(&first), &args);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("quota exhausted"), "{text}");
    assert!(text.contains("4 requesters stay pending"), "{text}");
    // quota is not retried
    assert_eq!(first.requests().len(), 2);
    let answered: BTreeSet<String> = asked(&first.requests()[0]).into_iter().collect();

    let second = MockServer::start(|request, _| batch_answer(request, &[]));
    let output = regions(&env, Some(&second), &args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let asked_again: Vec<String> = all_asked(&second);
    assert_eq!(asked_again.len(), 4);
    assert!(
        asked_again.iter().all(|ip| !answered.contains(ip)),
        "{asked_again:?} {answered:?}"
    );
    assert_labels(&env, &all_expected());
}

#[test]
fn a_quota_answered_with_402_also_stops() {
    let env = extracted();
    let server =
        MockServer::start(|_, _| Reply::json(402, json!({"error": {"title": "Payment required"}})));
    let output = regions(&env, Some(&server), &["--retry-base-ms", "10"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_refused_key_is_one_clear_error_naming_the_variable() {
    let env = extracted();
    let server = MockServer::start(|request, _| batch_answer(request, &[]));
    let mut command = env.command(&[
        "update",
        "regions",
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
    ]);
    command
        .env("IPINFO_API_KEY", "wrong-token")
        .env("IPINFO_URL", &server.url);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(
        errors[0].contains("IPINFO_API_KEY") && errors[0].contains("401"),
        "{text}"
    );
    // refused at once, not retried
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn an_address_missing_from_the_answer_stays_pending() {
    let env = extracted();
    let server = MockServer::start(|request, _| batch_answer(request, &["8.8.4.4"]));
    let output = regions(&env, Some(&server), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("left 1 addresses out of its answers"));
    assert_labels(&env, &[("8.8.4.4", None), ("8.8.8.8", Some("US-CA"))]);
    let full = MockServer::start(|request, _| batch_answer(request, &[]));
    regions(&env, Some(&full), &[]);
    assert_eq!(all_asked(&full), ["8.8.4.4"]);
    assert_labels(&env, &all_expected());
}

#[test]
fn stop_and_sigint_during_lookups_commit_what_was_answered() {
    for signal in [None, Some(libc::SIGINT)] {
        let env = extracted();
        let slow = MockServer::start(|request, _| {
            std::thread::sleep(Duration::from_millis(300));
            batch_answer(request, &[])
        });
        let ranges = fixture("ranges");
        let mut command = env.command(&[
            "update",
            "regions",
            "--ranges-dir",
            ranges.to_str().unwrap(),
            "--batch-size",
            "1",
            "--concurrency",
            "1",
        ]);
        command
            .env("IPINFO_API_KEY", TOKEN)
            .env("IPINFO_URL", &slow.url);
        let mut child = command.stderr(std::process::Stdio::null()).spawn().unwrap();
        while slow.requests().len() < 2 {
            std::thread::sleep(Duration::from_millis(20));
        }
        match signal {
            None => assert!(env.run(&["stop"]).status.success()),
            Some(signal) => crate::common::signal(&child, signal),
        }
        assert_eq!(child.wait().unwrap().code(), Some(3));
        let answered_before = slow.requests().len();
        assert!(answered_before < 6, "{answered_before}");
        let first: Vec<String> = all_asked(&slow);
        let labels = labels_of(&env, &FOR_IPINFO);
        let labelled: Vec<&str> = FOR_IPINFO
            .iter()
            .copied()
            .filter(|ip| labels[*ip].is_some())
            .collect();
        assert!(!labelled.is_empty());

        let rest = MockServer::start(|request, _| batch_answer(request, &[]));
        let output = regions(&env, Some(&rest), &[]);
        assert_eq!(output.status.code(), Some(0));
        let second = all_asked(&rest);
        assert!(
            second.iter().all(|ip| !labelled.contains(&ip.as_str())),
            "{second:?}"
        );
        assert_eq!(second.len() + labelled.len(), 6, "{first:?} {second:?}");
        assert_labels(&env, &all_expected());
    }
}

/// The refresh share of an address's requester: the first 8 bytes of its salted index, mod 90.
fn partition_of(env: &Env, ip: &str) -> u64 {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&hex::decode(&env.salt).unwrap()).unwrap();
    mac.update(ip.as_bytes());
    let index = mac.finalize().into_bytes();
    u64::from_be_bytes(index[..8].try_into().unwrap()) % 90
}

#[test]
fn keep_ips_and_refresh_one_share_a_day() {
    let env = extracted();
    let server = MockServer::start(|request, _| batch_answer(request, &[]));
    let output = regions(&env, Some(&server), &["--keep-ips"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!files_containing(&env.cache, "8.8.8.8").is_empty());

    // 8.8.8.8 moved; refresh the share it is in
    let share = partition_of(&env, "8.8.8.8");
    let moved = MockServer::start(|request, _| {
        let mut answer = serde_json::Map::new();
        for ip in asked(request) {
            let details = if ip == "8.8.8.8" {
                json!({"ip": ip, "region": "Texas", "country": "US"})
            } else {
                details(&ip)
            };
            answer.insert(ip, details);
        }
        Reply::json(200, serde_json::Value::Object(answer))
    });
    let share_text = share.to_string();
    let output = regions(
        &env,
        Some(&moved),
        &[
            "--keep-ips",
            "--refresh",
            "--refresh-partition",
            &share_text,
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let asked: BTreeSet<String> = all_asked(&moved).into_iter().collect();
    let kept_in_share: BTreeSet<String> = EXPECTED
        .iter()
        .map(|(ip, _)| ip.to_string())
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .filter(|ip| {
            partition_of(&env, &ip.parse::<std::net::IpAddr>().unwrap().to_string()) == share
        })
        .collect();
    // only those of the share that the range lists do not decide go to ipinfo
    let for_ipinfo: BTreeSet<String> = FOR_IPINFO
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    assert_eq!(asked, &kept_in_share & &for_ipinfo);
    assert!(asked.contains("8.8.8.8"));
    assert_labels(&env, &[("8.8.8.8", Some("US-TX"))]);
    let log = std::fs::read_to_string(env.cache.join("regions-refresh.log")).unwrap();
    assert!(log.contains("\tUS-CA\tUS-TX\n"), "{log}");
    assert!(!log.contains("8.8.8.8"));

    // without --keep-ips the kept IPs go
    let output = regions(&env, Some(&server), &[]);
    assert_eq!(output.status.code(), Some(0));
    for (ip, _) in EXPECTED.iter().filter(|(ip, _)| *ip != "-") {
        assert!(
            files_containing(&env.cache, ip).is_empty(),
            "{ip} left on disk"
        );
    }
}

/// An ipinfo redirect is not followed (the request carries addresses and the token): the batch
/// goes nowhere else, and the error names the service.
#[test]
fn an_ipinfo_redirect_is_not_followed() {
    let env = extracted();
    let elsewhere = MockServer::start(|request, _| batch_answer(request, &[]));
    let target = format!("{}/batch", elsewhere.url);
    let redirecting = MockServer::redirecting(307, target);
    let output = regions(&env, Some(&redirecting), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("ipinfo answered with a redirect (HTTP 307)"),
        "{}",
        stderr(&output)
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the addresses were sent on"
    );
    assert_eq!(redirecting.requests().len(), 1);
}

/// An answer larger than 64 MB is an error, not an allocation of whatever size was sent.
#[test]
fn an_oversized_answer_is_an_error() {
    let env = extracted();
    let huge = "x".repeat((64 << 20) + 1);
    let server = MockServer::start(move |_, _| Reply::Respond(200, vec![], huge.clone()));
    let output = regions(&env, Some(&server), &["--retries", "0"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("answer larger than 64 MB"),
        "{}",
        stderr(&output)
    );
}

/// A service that answers but drips its body slower than the timeout ends in "timed out", not
/// in a confusing "unreadable answer".
#[test]
fn a_dripping_answer_times_out() {
    let env = extracted();
    let server = MockServer::start(|_, _| Reply::Drip(1000));
    let output = regions(&env, Some(&server), &["--timeout", "1", "--retries", "0"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("timed out"), "{text}");
    assert!(!text.contains("unreadable answer"), "{text}");
}
