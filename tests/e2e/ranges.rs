//! The range lists of `update regions`: downloaded, cached, used stale when offline, broken, and
//! redirected.

use std::collections::HashMap;
use std::process::Output;
use std::time::Duration;

use super::regions::{TOKEN, assert_labels, batch_answer, extracted};
use crate::common::mock::{MockServer, Reply};
use crate::common::{Env, fixture, stderr, write_log};

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario across five runs: downloaded, cached, stale, unavailable"
)]
fn range_lists_are_downloaded_cached_and_used_stale_when_offline() {
    let files: HashMap<&str, String> = ["github.json", "aws.json", "gcp.json", "vpn.txt"]
        .into_iter()
        .map(|name| {
            (
                name,
                std::fs::read_to_string(fixture("ranges").join(name)).unwrap(),
            )
        })
        .collect();
    let lists = MockServer::start(move |request, _| {
        let name = request.path.trim_start_matches('/');
        match files.get(name) {
            Some(body) => Reply::Respond(200, vec![], body.clone()),
            None => Reply::Respond(404, vec![], "Not Found".into()),
        }
    });
    let env = extracted();
    let run = |env: &Env, base: &str| -> Output {
        let mut command = env.command(&["update", "regions", "--timeout", "2"]);
        command
            .env_remove("IPINFO_API_KEY")
            .env("S3TALLY_GITHUB_RANGES_URL", format!("{base}/github.json"))
            .env("S3TALLY_AWS_RANGES_URL", format!("{base}/aws.json"))
            .env("S3TALLY_GCP_RANGES_URL", format!("{base}/gcp.json"))
            .env("S3TALLY_VPN_RANGES_URL", format!("{base}/vpn.txt"));
        command.output().unwrap()
    };
    let output = run(&env, &lists.url);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(lists.requests().len(), 4);
    assert_labels(
        &env,
        &[
            ("52.95.1.1", Some("AWS/eu-west-1")),
            ("140.82.112.3", Some("GitHub")),
        ],
    );
    assert!(env.cache.join("ranges/aws.json").exists());

    // fresh cache: used without asking
    let logs = env.dir.path().join("more");
    write_log(
        &logs,
        "2024-07-02-10-00-00-2222222222222222",
        "ds/y",
        &["52.1.1.2"],
    );
    env.extract(&[&logs], 0);
    let output = run(&env, &lists.url);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(lists.requests().len(), 4);
    assert_labels(&env, &[("52.1.1.2", Some("AWS/us-east-1"))]);

    // stale cache and the server gone: the stale copy, with a warning
    let eight_days_ago = std::time::SystemTime::now() - Duration::from_secs(8 * 86_400);
    for name in ["github.json", "aws.json", "gcp.json", "vpn.txt"] {
        let file = std::fs::File::options()
            .write(true)
            .open(env.cache.join("ranges").join(name))
            .unwrap();
        file.set_modified(eight_days_ago).unwrap();
    }
    let offline = "http://127.0.0.1:9";
    write_log(
        &logs,
        "2024-07-02-11-00-00-3333333333333333",
        "ds/y",
        &["52.1.1.3"],
    );
    env.extract(&[&logs], 0);
    let output = run(&env, offline);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot refresh the AWS range list"),
        "{}",
        stderr(&output)
    );
    assert_labels(&env, &[("52.1.1.3", Some("AWS/us-east-1"))]);

    // no cache and offline: what needs the lists stays pending, never sent to ipinfo
    std::fs::remove_dir_all(env.cache.join("ranges")).unwrap();
    write_log(
        &logs,
        "2024-07-02-12-00-00-4444444444444444",
        "ds/y",
        &["52.1.1.4", "192.0.2.77"],
    );
    env.extract(&[&logs], 0);
    let ipinfo = MockServer::start(|request, _| batch_answer(request, &[]));
    let mut command = env.command(&["update", "regions", "--timeout", "2"]);
    for service in ["GITHUB", "AWS", "GCP", "VPN"] {
        command.env(
            format!("S3TALLY_{service}_RANGES_URL"),
            format!("{offline}/x"),
        );
    }
    command
        .env("IPINFO_API_KEY", TOKEN)
        .env("IPINFO_URL", &ipinfo.url);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("the GitHub range list is unavailable"),
        "{text}"
    );
    assert!(text.contains("requesters wait for a range list"), "{text}");
    assert_labels(&env, &[("52.1.1.4", None), ("192.0.2.77", Some("bogon"))]);
    assert!(ipinfo.requests().is_empty());
}

#[test]
fn a_broken_range_file_makes_that_service_unavailable() {
    let env = extracted();
    let ranges = env.dir.path().join("ranges");
    crate::common::copy_dir(&fixture("ranges"), &ranges);
    std::fs::write(ranges.join("gcp.json"), "<html>not json</html>").unwrap();
    let output = env.run(&[
        "update",
        "regions",
        "--ranges-dir",
        ranges.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let text = stderr(&output);
    assert!(text.contains("the GCP range list is unavailable"), "{text}");
    // GitHub and AWS come before GCP: still labelled; GCP and later wait
    assert_labels(
        &env,
        &[
            ("140.82.112.3", Some("GitHub")),
            ("52.1.1.1", Some("AWS/us-east-1")),
            ("34.80.0.1", None),
            ("104.131.0.1", None),
        ],
    );
}

/// A range list may follow a redirect to https only; to plain http it is unavailable.
#[test]
fn a_range_list_redirect_to_plain_http_is_not_followed() {
    let env = extracted();
    let lists = MockServer::start(|request, _| {
        let name = request.path.trim_start_matches('/');
        Reply::Respond(
            200,
            vec![],
            std::fs::read_to_string(fixture("ranges").join(name)).unwrap_or_default(),
        )
    });
    let target = format!("{}/aws.json", lists.url);
    let redirecting = MockServer::redirecting(302, target);
    let mut command = env.command(&["update", "regions", "--timeout", "2"]);
    command
        .env_remove("IPINFO_API_KEY")
        .env(
            "S3TALLY_GITHUB_RANGES_URL",
            format!("{}/github.json", lists.url),
        )
        .env(
            "S3TALLY_AWS_RANGES_URL",
            format!("{}/aws.json", redirecting.url),
        )
        .env("S3TALLY_GCP_RANGES_URL", format!("{}/gcp.json", lists.url))
        .env("S3TALLY_VPN_RANGES_URL", format!("{}/vpn.txt", lists.url));
    let output = command.output().unwrap();
    let text = stderr(&output);
    assert!(text.contains("the AWS range list is unavailable"), "{text}");
    assert!(text.contains("HTTP 302"), "{text}");
    assert!(!lists.requests().iter().any(|r| r.path == "/aws.json"));
}
