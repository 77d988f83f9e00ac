//! `publish`: refusing private data, pushing, a stale git lock, and touching only what it wrote.

use std::process::Command;
use std::time::Duration;

use crate::common::{Env, copy_dir, fixture, git, new_repo, stderr};

#[test]
fn publish_refuses_a_file_holding_an_ip_and_names_it() {
    let env = Env::new();
    env.extract(&[&fixture("summaries/logs")], 0);
    assert!(env.run(&["update", "summaries"]).status.success());
    let by_asset = env.cache.join("summaries/ds1/by_asset.tsv");
    let mut text = std::fs::read_to_string(&by_asset).unwrap();
    text.push_str("from 198.51.100.23\t1\t<50\t<50\t<50\n");
    std::fs::write(&by_asset, &text).unwrap();
    let repo = new_repo(&env);
    let output = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    let line = text.lines().count();
    assert!(
        message.contains(&format!(
            "summaries/ds1/by_asset.tsv line {line} holds an IP address"
        )),
        "{message}"
    );
    assert!(!message.contains("198.51.100.23"));
    // nothing was written
    assert!(!repo.join("content").exists());

    // a requester id is refused too
    let id = String::from_utf8(env.run(&["dump"]).stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .nth(4)
        .unwrap()
        .to_owned();
    std::fs::write(&by_asset, format!("asset_path\tbytes_sent\nx{id}\t1\n")).unwrap();
    let output = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("line 2 holds a requester index"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn publish_pushes_to_the_configured_remote() {
    let env = Env::new();
    env.extract(&[&fixture("summaries/logs")], 0);
    assert!(env.run(&["update", "summaries"]).status.success());
    let remote = env.dir.path().join("remote.git");
    let status = Command::new("git")
        .args(["init", "--quiet", "--bare"])
        .arg(&remote)
        .status()
        .unwrap();
    assert!(status.success());
    let clone = env.dir.path().join("clone");
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(&remote)
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success());
    let output = env.run(&["publish", clone.to_str().unwrap(), "--push"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("pushed"), "{}", stderr(&output));
    let files = git(&remote, &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(
        files
            .lines()
            .any(|f| f == "content/summaries/ds1/by_day.tsv"),
        "{files}"
    );
    // --no-commit copies without committing
    let fresh = new_repo(&env);
    let output = env.run(&["publish", fresh.to_str().unwrap(), "--no-commit"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(fresh.join("content/summaries/ds1/by_day.tsv").exists());
    assert!(git(&fresh, &["status", "--porcelain"]).contains("content/"));
}

/// A git killed midway leaves `.git/index.lock`: an old one is cleared, a fresh one refused
/// with a message saying what to do.
#[test]
fn a_stale_index_lock_is_cleared_and_a_fresh_one_refused() {
    let env = Env::new();
    env.extract(&[&fixture("summaries/logs")], 0);
    assert!(env.run(&["update", "summaries"]).status.success());
    let repo = new_repo(&env);
    let lock = repo.join(".git/index.lock");
    std::fs::write(&lock, "").unwrap();
    let refused = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("another git is working"),
        "{}",
        stderr(&refused)
    );
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let published = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(published.status.code(), Some(0), "{}", stderr(&published));
    assert!(stderr(&published).contains("removed a stale .git/index.lock"));
    assert!(!lock.exists());
    assert!(git(&repo, &["log", "--oneline"]).lines().count() == 1);
}

/// A push that failed is tried again by the next publish, even with nothing new to commit.
#[test]
fn a_failed_push_is_retried_when_nothing_is_new() {
    let env = Env::new();
    env.extract(&[&fixture("summaries/logs")], 0);
    assert!(env.run(&["update", "summaries"]).status.success());
    let remote = env.dir.path().join("remote.git");
    git(
        env.dir.path(),
        &["init", "--quiet", "--bare", remote.to_str().unwrap()],
    );
    let clone = env.dir.path().join("clone");
    git(
        env.dir.path(),
        &[
            "clone",
            "--quiet",
            remote.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    // the remote is unreachable during the first publish
    let away = env.dir.path().join("away.git");
    std::fs::rename(&remote, &away).unwrap();
    let failed = env.run(&["publish", clone.to_str().unwrap(), "--push"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    std::fs::rename(&away, &remote).unwrap();
    let retried = env.run(&["publish", clone.to_str().unwrap(), "--push"]);
    assert_eq!(retried.status.code(), Some(0), "{}", stderr(&retried));
    let said = stderr(&retried);
    assert!(said.contains("nothing to commit, pushed"), "{said}");
    assert_eq!(
        git(&remote, &["rev-parse", "HEAD"]),
        git(&clone, &["rev-parse", "HEAD"])
    );
    // and with nothing to push, nothing is pushed
    let idle = env.run(&["publish", clone.to_str().unwrap(), "--push"]);
    assert!(!stderr(&idle).contains("pushed"), "{}", stderr(&idle));
}

/// `publish` owns only what it wrote: a README the user committed under `content/summaries/` and
/// an untracked note beside the statistics survive, and are never committed by s3tally; the files
/// of a dataset that no longer exists are still removed.
#[test]
fn publish_never_touches_what_it_did_not_write() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    copy_dir(&fixture("summaries/logs"), &logs);
    env.extract(&[&logs], 0);
    for stage in ["summaries", "totals"] {
        assert!(env.run(&["update", stage]).status.success());
    }
    let repo = new_repo(&env);
    std::fs::create_dir_all(repo.join("content/summaries")).unwrap();
    std::fs::write(
        repo.join("content/summaries/README.md"),
        "# Our statistics\n",
    )
    .unwrap();
    git(&repo, &["add", "content/summaries/README.md"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@x",
            "commit",
            "--quiet",
            "-m",
            "readme",
        ],
    );
    std::fs::write(repo.join("content/NOTES.md"), "private notes\n").unwrap();
    let first = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    // the next publication no longer has dataset ds2 (picked away)
    for stage in ["summaries", "totals"] {
        let output = env.run(&["update", stage, "--skip", "ds2"]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let second = env.run(&["publish", repo.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(repo.join("content/summaries/README.md").is_file());
    assert!(!repo.join("content/summaries/ds2").exists());
    let tracked = git(&repo, &["ls-files"]);
    assert!(tracked.contains("content/summaries/README.md"), "{tracked}");
    assert!(!tracked.contains("NOTES.md"), "{tracked}");
    assert!(repo.join("content/NOTES.md").is_file());
    let status = git(&repo, &["status", "--porcelain"]);
    assert_eq!(status.trim(), "?? content/NOTES.md", "{status}");
}
