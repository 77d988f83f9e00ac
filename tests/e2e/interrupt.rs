//! Crash safety: SIGKILL at random points, `stop`, SIGINT and SIGTERM, one writer per cache.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use crate::common::{Env, generate_logs, signal};

/// Pause after each batch so that a test can act in the middle of an extraction.
const PAUSE: (&str, &str) = ("S3TALLY_TEST_BATCH_PAUSE_MS", "40");

fn logs(env: &Env) -> std::path::PathBuf {
    let logs = env.dir.path().join("logs");
    // 40 files of about 50 kB
    generate_logs(&logs, 2, 0.05, 5);
    logs
}

/// The dump of an uninterrupted extraction of `logs` in a fresh cache.
fn reference_dump(logs: &Path) -> String {
    let env = Env::new();
    env.extract(&[logs], 0);
    env.dump()
}

/// Streams the child's standard error lines into a channel.
fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if sender.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits for the first committed batch to be reported.
fn wait_for_first_batch(lines: &Receiver<String>) {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("extract reports its first batch");
        if line.contains("extract: 1/") {
            return;
        }
    }
}

fn extract_args(logs: &Path) -> Vec<String> {
    vec![
        "extract".into(),
        logs.display().to_string(),
        "--batch-files".into(),
        "1".into(),
    ]
}

fn spawn_extract(env: &Env, logs: &Path, paused: bool) -> Child {
    let args = extract_args(logs);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.spawn(&args, if paused { &[PAUSE] } else { &[] })
}

fn files_extracted(env: &Env) -> u64 {
    let output = env.run(&["status"]);
    let text = String::from_utf8(output.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("log files extracted"))
        .unwrap();
    line.split('│').nth(2).unwrap().trim().parse().unwrap()
}

/// A small deterministic pseudo-random sequence (xorshift).
fn random_sequence(mut state: u64) -> impl FnMut(u64) -> u64 {
    move |range: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % range.max(1)
    }
}

/// Starts an extraction, kills it with SIGKILL after `delay`; whether it was still running.
fn kill_after(env: &Env, logs: &Path, paused: bool, delay: Duration) -> bool {
    let mut child = spawn_extract(env, logs, paused);
    std::thread::sleep(delay);
    child.kill().unwrap();
    child.wait().unwrap().code().is_none()
}

#[test]
fn kill_between_batches_then_resume_gives_the_same_dump() {
    let env = Env::new();
    let logs = logs(&env);
    let reference = reference_dump(&logs);
    let mut next = random_sequence(0x2545_f491_4f6c_dd1d);
    for _ in 0..4 {
        assert!(kill_after(
            &env,
            &logs,
            true,
            Duration::from_millis(20 + next(200))
        ));
    }
    let partial = files_extracted(&env);
    assert!(
        partial > 0 && partial < 40,
        "{partial} files after the kills"
    );
    env.extract(&[&logs], 0);
    assert_eq!(files_extracted(&env), 40);
    assert_eq!(env.dump(), reference);
}

#[test]
fn kill_anywhere_then_resume_gives_the_same_dump() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    generate_logs(&logs, 12, 0.2, 9);
    // time an uninterrupted run, then kill at random points within that time: while reading,
    // parsing, writing or committing
    let reference_env = Env::new();
    let started = std::time::Instant::now();
    let args = extract_args(&logs);
    let output = reference_env.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success());
    let full = started.elapsed().as_micros() as u64;
    let reference = reference_env.dump();
    let mut next = random_sequence(0x9e37_79b9_7f4a_7c15);
    let mut killed_midway = 0;
    for _ in 0..6 {
        let delay = Duration::from_micros(next(full / 3));
        killed_midway += u32::from(kill_after(&env, &logs, false, delay));
    }
    assert!(
        killed_midway >= 3,
        "only {killed_midway} kills landed mid-run"
    );
    env.extract(&[&logs], 0);
    assert_eq!(env.dump(), reference);
}

/// Starts an extraction that pauses before each batch, lets it commit one, calls `stop_it`, and
/// checks it exits 3 with part of the files extracted; then resumes and checks the dump equals an
/// uninterrupted run's. Returns the extraction's standard error lines.
fn stop_midway_and_resume(stop_it: impl FnOnce(&Env, &Child)) -> Vec<String> {
    let env = Env::new();
    let logs = logs(&env);
    let reference = reference_dump(&logs);
    let mut child = spawn_extract(&env, &logs, true);
    let lines = stderr_lines(&mut child);
    wait_for_first_batch(&lines);
    stop_it(&env, &child);
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let partial = files_extracted(&env);
    assert!(partial > 0 && partial < 40, "{partial}");
    env.extract(&[&logs], 0);
    assert_eq!(env.dump(), reference);
    lines.try_iter().collect()
}

#[test]
fn stop_commits_the_batch_exits_3_and_resumes_cleanly() {
    let lines = stop_midway_and_resume(|env, child| {
        let stop = env.run(&["stop"]);
        let said = String::from_utf8_lossy(&stop.stdout);
        assert!(stop.status.success(), "{said}");
        let expected = format!("PID {} committed its batch and stopped", child.id());
        assert!(said.contains(&expected), "{said}");
        // stop with nobody running any more
        let idle = env.run(&["stop"]);
        assert!(String::from_utf8_lossy(&idle.stdout).contains("no s3tally is writing"));
    });
    assert!(
        lines.iter().any(|l| l.contains("stopped after committing")),
        "{lines:?}"
    );
}

#[test]
fn sigint_and_sigterm_stop_after_the_batch_with_exit_3() {
    for signal_number in [libc::SIGINT, libc::SIGTERM] {
        stop_midway_and_resume(|_, child| signal(child, signal_number));
    }
}

#[test]
fn a_second_sigint_aborts_at_once_and_loses_nothing_committed() {
    let env = Env::new();
    let logs = logs(&env);
    let reference = reference_dump(&logs);
    // a long pause before each batch is written: the first SIGINT alone would wait for it and then
    // commit the batch in flight; the second must abort at once, losing that batch
    let mut child = env.spawn(
        &extract_args(&logs)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[("S3TALLY_TEST_BATCH_PAUSE_MS", "1500")],
    );
    let lines = stderr_lines(&mut child);
    wait_for_first_batch(&lines);
    // let it enter the pause before the next batch, then interrupt it twice
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, libc::SIGINT);
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(status.code(), Some(130), "{status:?}");
    env.extract(&[&logs], 0);
    assert_eq!(env.dump(), reference);
}

#[test]
fn one_writer_per_cache() {
    let env = Env::new();
    let logs = logs(&env);
    let mut child = spawn_extract(&env, &logs, true);
    let lines = stderr_lines(&mut child);
    wait_for_first_batch(&lines);
    let second = env.run(&["extract", logs.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("in use by s3tally PID {}", child.id())),
        "{stderr}"
    );
    // readers are not blocked
    assert!(env.run(&["status"]).status.success());
    signal(&child, libc::SIGTERM);
    child.wait().unwrap();
}

/// `stop` asks through the cache, never by signal: a process that merely holds the lock file
/// (here one of the test's own, standing for a process of another PID namespace whose number is
/// written there) is not signalled, and `stop --timeout` gives up in time.
#[test]
fn stop_never_signals_a_process_that_is_not_the_writer() {
    let env = Env::new();
    std::fs::create_dir_all(&env.cache).unwrap();
    let mut bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let lock = env.cache.join("writer.lock");
    std::fs::write(&lock, format!("{}\n", bystander.id())).unwrap();
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock)
        .unwrap();
    held.lock().unwrap();
    let started = std::time::Instant::now();
    let output = env.run(&["stop", "--timeout", "1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("did not stop within 1 s"), "{text}");
    // still alive: nothing was sent to it
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was signalled"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    drop(held);
    // the request left behind is not taken by the next writer as meant for it
    assert!(env.cache.join("stop.request").exists());
    env.extract(&[&crate::common::fixture("nasty/logs")], 0);
    assert!(!env.cache.join("stop.request").exists());
}
