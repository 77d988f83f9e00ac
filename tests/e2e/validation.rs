//! s3tally agrees with the independent reference extraction in validation/ (Python, one regular
//! expression per line) on every object, on the fixtures and on generated benchmark logs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::common::{Env, fixture, generate_logs, per_object};

fn reference(logs: &Path) -> BTreeMap<String, (u64, u64, u64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("validation/reference_extract.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(logs)
        .output()
        .expect("python3 is needed to run the reference extraction");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (
                f[0].to_owned(),
                (
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                ),
            )
        })
        .collect()
}

fn assert_agree(logs: &Path) {
    let env = Env::new();
    env.extract(&[logs], 0);
    let ours = per_object(&env.dump());
    let theirs = reference(logs);
    assert!(!theirs.is_empty());
    let differing: Vec<_> = theirs
        .keys()
        .chain(ours.keys())
        .filter(|key| theirs.get(*key) != ours.get(*key))
        .collect();
    assert!(differing.is_empty(), "differing objects: {differing:?}");
}

#[test]
fn fixtures_agree_with_the_reference() {
    assert_agree(&fixture(""));
}

#[test]
fn generated_logs_agree_with_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    generate_logs(dir.path(), 20, 2.0, 42);
    assert_agree(dir.path());
}
