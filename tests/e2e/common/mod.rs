//! Helpers for end-to-end tests: run the s3tally binary on a private cache and config directory.

pub(crate) mod mock;
pub(crate) mod parquet;
pub(crate) mod s3;
pub(crate) mod venv;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use tempfile::TempDir;

/// Summaries options that publish every figure exactly (no small-count hiding, no rounding,
/// every region named): for checking figures worked out by hand.
pub(crate) const EXACT: [&str; 6] = [
    "--privacy-minimum",
    "0",
    "--round-to",
    "1",
    "--region-min-requesters",
    "1",
];

/// A fixed test salt (64 hex digits).
pub(crate) const SALT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A private place to run s3tally: its own cache and config directories.
pub(crate) struct Env {
    pub dir: TempDir,
    pub cache: PathBuf,
    pub config: PathBuf,
    pub salt: String,
}

impl Env {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let config = dir.path().join("config");
        Self {
            dir,
            cache,
            config,
            salt: SALT.to_owned(),
        }
    }

    /// A command for the binary with this environment's cache, config and salt.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_s3tally"));
        command
            .env_remove("S3TALLY_CACHE")
            .env("S3TALLY_CONFIG_DIR", &self.config)
            .env("S3TALLY_SALT", &self.salt)
            .arg("--cache")
            .arg(&self.cache)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs the binary to the end.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts the binary with piped standard error.
    pub(crate) fn spawn(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Child {
        let mut command = self.command(args);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `extract` on the given directories; panics unless the exit code is as expected.
    pub(crate) fn extract(&self, dirs: &[&Path], expected_code: i32) -> Output {
        let mut args = vec!["extract".to_owned()];
        args.extend(dirs.iter().map(|d| d.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self.run(&args);
        assert_eq!(
            output.status.code(),
            Some(expected_code),
            "stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The whole dump as text.
    pub(crate) fn dump(&self) -> String {
        let output = self.run(&["dump"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// A path under the repository's `fixtures/`.
pub(crate) fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

/// Copies a directory tree.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Per object: (requests, bytes sent, downloads) from a dump.
pub(crate) fn per_object(dump: &str) -> BTreeMap<String, (u64, u64, u64)> {
    let mut totals = BTreeMap::new();
    for line in dump.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let entry = totals.entry(fields[0].to_owned()).or_insert((0, 0, 0));
        entry.0 += 1;
        entry.1 += fields[2].parse::<u64>().unwrap();
        entry.2 += u64::from(fields[3] == "200");
    }
    totals
}

/// Every file under `dir` whose bytes contain `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let data = std::fs::read(e.path()).unwrap();
            data.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Writes benchmark logs with the binary's own generator.
pub(crate) fn generate_logs(dir: &Path, size_mb: u64, file_mb: f64, seed: u64) {
    let output = Command::new(env!("CARGO_BIN_EXE_s3tally"))
        .args(["bench", "generate"])
        .arg(dir)
        .args(["--size-mb", &size_mb.to_string()])
        .args(["--file-mb", &file_mb.to_string()])
        .args(["--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success());
}

/// Writes a log file named `name` in `dir` with one GET of `key` per address.
pub(crate) fn write_log(dir: &Path, name: &str, key: &str, ips: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::new();
    for (i, ip) in ips.iter().enumerate() {
        text.push_str(&format!(
            "owner bucket [02/Jul/2024:10:{:02}:00 +0000] {ip} - R{i} REST.GET.OBJECT {key} \"GET /{key} HTTP/1.1\" 200 - 10 10 1 1 \"-\" \"-\" -\n",
            i % 60
        ));
    }
    std::fs::write(dir.join(name), text).unwrap();
}

/// The region label of each address's requester, found by computing its salted index here
/// (HMAC-SHA256 under the test salt) independently of s3tally.
pub(crate) fn labels_of(
    env: &Env,
    ips: &[&str],
) -> std::collections::HashMap<String, Option<String>> {
    use hmac::{Hmac, Mac};
    let key = hex::decode(&env.salt).unwrap();
    let connection = rusqlite::Connection::open_with_flags(
        env.cache.join("s3tally.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    ips.iter()
        .map(|ip| {
            let canonical = ip
                .parse::<std::net::IpAddr>()
                .map_or_else(|_| ip.to_string(), |a| a.to_string());
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
            mac.update(canonical.as_bytes());
            let index = mac.finalize().into_bytes().to_vec();
            let region: Option<String> = connection
                .query_row(
                    "SELECT region FROM requesters WHERE requester_index = ?1",
                    [index],
                    |row| row.get(0),
                )
                .unwrap_or_else(|e| panic!("no requester for {ip}: {e}"));
            (ip.to_string(), region)
        })
        .collect()
}

/// A command's standard error as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file under `dir` but git's own, relative path to bytes.
pub(crate) fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let relative = e.path().strip_prefix(dir).unwrap();
            (
                relative.to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Sends `signal` (`libc::SIGINT`, `libc::SIGTERM`, `libc::SIGKILL`) to a child process.
#[allow(
    unsafe_code,
    reason = "libc::kill on our own child, which has not been waited for, so its PID is not reused"
)]
pub(crate) fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill has no memory effects; the PID is our unreaped child's
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

/// Runs git in `repo`; its standard output (panics when git fails).
pub(crate) fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A fresh git repository to publish into.
pub(crate) fn new_repo(env: &Env) -> PathBuf {
    let repo = env.dir.path().join("published");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet"]);
    repo
}

/// `run` on `logs` with the bundled range lists, publishing into `repo`.
pub(crate) fn run_and_publish(env: &Env, logs: &Path, repo: &Path) -> Command {
    env.command(&[
        "run",
        logs.to_str().unwrap(),
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
        "--publish",
        repo.to_str().unwrap(),
    ])
}
