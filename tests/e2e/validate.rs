//! `validate`: one fixture per check, each with one line that breaks that check only.

use crate::common::{Env, fixture};

const FILE: &str = "2024-07-01-10-00-00-AAAAAAAAAAAAAAAA";

fn validate(env: &Env, dir: &str, extra: &[&str]) -> (Option<i32>, String) {
    let path = fixture(&format!("validate/{dir}"));
    let mut args = vec!["validate", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = env.run(&args);
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// The `file:line: check:` heads of the violations reported.
fn reported(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|line| line.starts_with(FILE))
        .map(|line| line.splitn(4, ':').take(3).collect::<Vec<_>>().join(":"))
        .collect()
}

#[test]
fn each_check_reports_its_line_and_only_it() {
    for check in [
        "request-line",
        "status",
        "remote-ip",
        "timestamp",
        "downloads",
        "fields",
    ] {
        let env = Env::new();
        let (code, stdout) = validate(&env, check, &[]);
        assert_eq!(code, Some(1), "{check}: {stdout}");
        assert_eq!(
            reported(&stdout),
            [format!("{FILE}:3: {check}")],
            "{stdout}"
        );
        // the line is shown with its IP masked
        assert!(!stdout.contains("192.0.2.3"), "{stdout}");
    }
}

#[test]
fn a_good_file_passes_every_check() {
    let env = Env::new();
    let (code, stdout) = validate(&env, "good", &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(reported(&stdout).is_empty());
    assert!(stdout.contains("1 files validated"), "{stdout}");
}

#[test]
fn only_the_checks_asked_for_run() {
    let env = Env::new();
    let (code, stdout) = validate(
        &env,
        "downloads",
        &["--check", "status", "--check", "fields"],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains("downloads │"), "{stdout}");
}

#[test]
fn excluded_requesters_are_not_checked() {
    let env = Env::new();
    let (code, stdout) = validate(&env, "downloads", &["--exclude-ip", "192.0.2.3"]);
    assert_eq!(code, Some(0), "{stdout}");
}

#[test]
fn validated_files_are_skipped_until_a_check_changes_version() {
    let env = Env::new();
    let (code, _) = validate(&env, "timestamp", &[]);
    assert_eq!(code, Some(1));
    let (code, stdout) = validate(&env, "timestamp", &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("0 files validated, 1 already validated"),
        "{stdout}"
    );
    // as if the file had been validated by an older version of the timestamp check
    let connection = rusqlite::Connection::open(env.cache.join("s3tally.sqlite")).unwrap();
    connection
        .execute(
            "UPDATE validated SET version = 0 WHERE check_name = 'timestamp'",
            [],
        )
        .unwrap();
    drop(connection);
    let (code, stdout) = validate(&env, "timestamp", &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(reported(&stdout), [format!("{FILE}:3: timestamp")]);
    // only that check ran again
    assert!(
        stdout.contains("│ timestamp │ 1       │ 1     │"),
        "{stdout}"
    );
    assert!(!stdout.contains("│ status"), "{stdout}");
}

#[test]
fn limit_validates_a_sample() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    crate::common::generate_logs(&logs, 1, 0.1, 2);
    let output = env.run(&[
        "validate",
        logs.to_str().unwrap(),
        "--limit",
        "3",
        "--check",
        "remote-ip",
    ]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("3 files validated, 0 already validated"),
        "{stdout}"
    );
    let output = env.run(&["validate", logs.to_str().unwrap(), "--check", "remote-ip"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("7 files validated, 3 already validated"),
        "{stdout}"
    );
}

/// Violations are printed as they are found, at most 200 a file, the rest counted: memory stays
/// bounded whatever a file holds; the table names where each check first failed.
#[test]
fn many_violations_are_streamed_with_a_bounded_sample() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut text = String::new();
    for i in 0..1000 {
        // the remote IP is no address: a remote-ip violation each
        text.push_str(&format!(
            "owner bucket [01/Jul/2024:10:00:00 +0000] not-an-ip - R{i} REST.GET.OBJECT k \"GET /k HTTP/1.1\" 200 - 5 5 1 1 \"-\" \"-\" - h= SigV4 C A b.s3.amazonaws.com TLSv1.2 - -\n"
        ));
    }
    std::fs::write(logs.join(FILE), text).unwrap();
    let output = env.run(&["validate", logs.to_str().unwrap(), "--check", "remote-ip"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let shown: Vec<String> = reported(&stdout)
        .into_iter()
        .filter(|head| head.ends_with(": remote-ip"))
        .collect();
    assert_eq!(shown.len(), 200, "{stdout}");
    assert_eq!(shown[0], format!("{FILE}:1: remote-ip"));
    assert!(
        stdout.contains(&format!("{FILE}: 800 more violations not shown")),
        "{stdout}"
    );
    assert!(stdout.contains("1000 violations"), "{stdout}");
    assert!(stdout.contains(&format!("{FILE}:1 ")), "{stdout}");
}
