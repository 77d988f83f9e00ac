//! Reading logs from S3 when things go wrong: a forbidden object, a 503, kill and stop (also
//! while listing), refused or missing credentials, keys no client can ask for.

use crate::common::mock::Reply;
use crate::common::s3::{
    self, TestBucket, bucket_holding, flat_key, listings, local_dump, logs, moto,
    moto_checking_credentials, object_gets, proxy, spread_keys, text,
};
use crate::common::{Env, signal};

#[test]
fn a_forbidden_object_is_named_and_the_rest_extracted_and_a_503_is_retried() {
    let keys = spread_keys(6, 1);
    let (bucket, objects) = bucket_holding("s3tally-faults", &keys);
    let forbidden = format!("/{}/{}", bucket.name, keys[2]);
    let slow = format!("/{}/{}", bucket.name, keys[4]);
    let slow_seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let list_seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let forbidden = forbidden.clone();
        let slow = slow.clone();
        let slow_seen = slow_seen.clone();
        proxy(moto(), move |request, _| {
            use std::sync::atomic::Ordering::SeqCst;
            let error = |status: u16, code: &str| {
                Some(Reply::Respond(
                    status,
                    vec![("Content-Type".into(), "application/xml".into())],
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>scripted</Message></Error>"
                    ),
                ))
            };
            if request.path == forbidden {
                error(403, "AccessDenied")
            } else if request.path == slow && !slow_seen.swap(true, SeqCst) {
                error(503, "SlowDown")
            } else if request.path.contains("list-type=") && !list_seen.swap(true, SeqCst) {
                error(500, "InternalError")
            } else {
                None
            }
        })
    };
    let env = Env::new();
    let output = s3::run(&env, &server.url, &["extract", &bucket.url("logs/")], 1);
    let said = text(&output);
    assert!(
        said.contains(&format!("cannot read s3://{}/{}", bucket.name, keys[2]))
            && said.contains("AccessDenied"),
        "{said}"
    );
    assert!(said.contains("5 new log files"), "{said}");
    // the 503 was asked again, and the object read
    let gets = object_gets(&server.requests());
    assert_eq!(gets.iter().filter(|g| **g == slow).count(), 2, "{gets:#?}");
    let mut readable = objects.clone();
    readable.remove(2);
    assert_eq!(env.dump(), local_dump(&readable));
    // once readable, the next run takes it (and only it)
    let server = proxy(moto(), |_, _| None);
    s3::run(&env, &server.url, &["extract", &bucket.url("logs/")], 0);
    assert_eq!(object_gets(&server.requests()), [forbidden]);
    assert_eq!(env.dump(), local_dump(&objects));
}

#[test]
fn killed_or_stopped_midway_a_rerun_completes_the_same_dump() {
    let keys = spread_keys(40, 4);
    let (bucket, objects) = bucket_holding("s3tally-interrupted", &keys);
    let expected = local_dump(&objects);
    let server = proxy(moto(), |_, _| None);
    let url = bucket.url("logs/");
    let args = ["extract", "--batch-files", "5", url.as_str()];
    for how in ["kill", "stop"] {
        let env = Env::new();
        let mut child = s3::command(&env, &server.url, &args)
            .env("S3TALLY_TEST_BATCH_PAUSE_MS", "300")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // until the first batches are committed (not all: each waits 300 ms)
        let start = std::time::Instant::now();
        while !env.cache.join("s3tally.sqlite").exists()
            || String::from_utf8_lossy(&env.run(&["dump"]).stdout)
                .lines()
                .count()
                < 2
        {
            assert!(start.elapsed().as_secs() < 60, "{how}: nothing committed");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if how == "kill" {
            signal(&child, libc::SIGKILL);
            child.wait().unwrap();
        } else {
            let stop = env.run(&["stop"]);
            assert!(stop.status.success());
            assert_eq!(child.wait().unwrap().code(), Some(3));
        }
        let partial = env.dump();
        assert!(
            partial.lines().count() > 1 && partial != expected,
            "{how}: some, not all"
        );
        s3::run(&env, &server.url, &args[..], 0);
        assert_eq!(env.dump(), expected, "after {how}");
    }
}

#[test]
fn credentials_refused_missing_or_from_a_profile_are_said_once_and_clearly() {
    // a server that knows no key: every signed request is refused
    let checking = moto_checking_credentials();
    let server = proxy(checking, |_, _| None);
    let env = Env::new();
    let output = s3::run(
        &env,
        &server.url,
        &["extract", "s3://s3tally-refused/logs/"],
        1,
    );
    let said = text(&output);
    assert!(
        said.contains("S3 refused access to s3://s3tally-refused/logs/ (InvalidAccessKeyId")
            && said.contains("AWS_ACCESS_KEY_ID"),
        "{said}"
    );
    // refused at once: no retries
    assert_eq!(server.requests().len(), 1);

    // no credentials anywhere
    let server = proxy(moto(), |_, _| None);
    let output = s3::command(&env, &server.url, &["extract", "s3://s3tally-nokeys/logs/"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = text(&output);
    assert!(
        said.contains("no AWS credentials for s3://s3tally-nokeys")
            && said.contains("--no-sign-request"),
        "{said}"
    );
    assert!(server.requests().is_empty());

    // the keys of AWS_PROFILE's profile in the shared credentials file
    let bucket = TestBucket::create("s3tally-profile");
    let objects = logs(&[flat_key("logs/", "2024-05-01", 1)]);
    bucket.put_all(&objects);
    let credentials = env.dir.path().join("aws-credentials");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = x\n[archive]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = y\n",
    )
    .unwrap();
    let output = s3::command(&env, &server.url, &["extract", &bucket.url("logs/")])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_PROFILE", "archive")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let signed = server.requests();
    assert!(
        signed.iter().all(|r| r
            .header("authorization")
            .is_some_and(|a| a.contains("Credential=AKIDPROFILE/"))),
        "{signed:#?}"
    );
    // an SSO profile: its keys exported into the environment are used; without them, what to run
    let config = env.dir.path().join("aws-config");
    std::fs::write(
        &config,
        "[profile sso]\nsso_session = corp\nregion = us-east-1\n",
    )
    .unwrap();
    let with_sso = |keys: bool| {
        let mut command = s3::command(&env, &server.url, &["extract", &bucket.url("logs/")]);
        command
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_PROFILE", "sso");
        if !keys {
            command
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY");
        }
        command.output().unwrap()
    };
    let output = with_sso(true);
    assert!(output.status.success(), "{}", text(&output));
    let output = with_sso(false);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("aws configure export-credentials --profile sso"),
        "{}",
        text(&output)
    );
    // a public bucket: nothing signed
    let bucket = TestBucket::create("s3tally-public");
    bucket.put_public(&objects);
    let server = proxy(moto(), |_, _| None);
    let public = Env::new();
    let output = s3::command(
        &public,
        &server.url,
        &["extract", "--no-sign-request", &bucket.url("logs/")],
    )
    .env_remove("AWS_ACCESS_KEY_ID")
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[test]
fn a_stop_while_listing_ends_the_run_and_remembers_nothing_of_it() {
    let keys = spread_keys(1010, 3);
    let (bucket, objects) = bucket_holding("s3tally-stop-listing", &keys);
    // every listing page takes a second
    let server = proxy(moto(), |request, _| {
        if request.path.contains("list-type=") {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        None
    });
    let env = Env::new();
    let url = bucket.url("logs/");
    let child = s3::command(&env, &server.url, &["extract", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while listings(&server.requests()).is_empty() {
        assert!(start.elapsed().as_secs() < 30, "no listing");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(env.run(&["stop"]).status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let said = text(&output);
    assert!(said.contains("stopped while listing"), "{said}");
    assert_eq!(
        listings(&server.requests()).len(),
        1,
        "no page after the stop"
    );
    assert!(object_gets(&server.requests()).is_empty());
    // the next run lists everything (nothing was remembered) and extracts it all
    let server = proxy(moto(), |_, _| None);
    s3::run(&env, &server.url, &["extract", &url], 0);
    assert!(!listings(&server.requests())[0].contains("start-after"));
    assert_eq!(env.dump(), local_dump(&objects));
}

#[test]
fn keys_no_client_can_ask_for_are_skipped_and_named_the_rest_extracted() {
    let (bucket, objects) = bucket_holding("s3tally-hostile-keys", &spread_keys(1005, 3));
    // an empty segment and a `..` segment, one on the first page, one on the second
    let hostile = logs(&[
        flat_key("logs/../", "2024-05-01", 9001),
        flat_key("logs/x//", "2024-05-02", 9002),
    ]);
    bucket.put_all(&hostile);
    let server = proxy(moto(), |_, _| None);
    let env = Env::new();
    let output = s3::run(&env, &server.url, &["extract", &bucket.url("logs/")], 0);
    let said = text(&output);
    assert!(
        said.contains("2 keys that cannot be asked for (an empty segment, . or ..) were skipped (first: logs/../2024-05-01"),
        "{said}"
    );
    assert!(said.contains("1005 new log files"), "{said}");
    assert_eq!(env.dump(), local_dump(&objects));
}
