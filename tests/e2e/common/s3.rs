//! A real local S3 server for the tests: moto (`moto_server`, from `PyPI`), started once per test
//! run on 127.0.0.1 and stopped when the tests end; each test talks to it through its own
//! recording proxy ([`MockServer`] forwarding), which can also answer in its place (a 503, a
//! 403) to script faults.
//!
//! The server is `$S3TALLY_TEST_MOTO`, else `target/test-venv/bin/moto_server` (which `.ci/run`
//! installs), else it is installed there with pip. A test that cannot start it fails, loudly.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::Env;
use super::mock::{MockServer, Reply, Request};

/// The test credentials (moto takes any, unless it checks them).
pub(crate) const ACCESS_KEY: &str = "AKIDS3TALLYTEST";

/// A running moto server.
pub(crate) struct Moto {
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The shell that stops the server when the tests end.
    _watcher: std::sync::Mutex<std::process::Child>,
}

/// The shared server that accepts any credentials.
pub(crate) fn moto() -> &'static Moto {
    static SERVER: OnceLock<Moto> = OnceLock::new();
    SERVER.get_or_init(|| start_moto(false))
}

/// A second server that checks credentials (knows no key at all: every signed request is
/// refused with `InvalidAccessKeyId`).
pub(crate) fn moto_checking_credentials() -> &'static Moto {
    static SERVER: OnceLock<Moto> = OnceLock::new();
    SERVER.get_or_init(|| start_moto(true))
}

fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("S3TALLY_TEST_MOTO") {
        return path.into();
    }
    super::venv::tool("bin/moto_server", "moto[server]==5.2.5", Path::exists)
}

fn start_moto(check_credentials: bool) -> Moto {
    let binary = moto_binary();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // the server goes when this test process does: a watcher shell kills it
    let script = format!(
        "\"$0\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & server=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $server",
        std::process::id()
    );
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg(&binary)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if check_credentials {
        command.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
    }
    let watcher = command.spawn().unwrap_or_else(|error| {
        panic!(
            "cannot start the local S3 server {}: {error}",
            binary.display()
        )
    });
    let address = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while TcpStream::connect(&address).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the local S3 server {} did not start on {address} within 60 s",
            binary.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        address,
        _watcher: std::sync::Mutex::new(watcher),
    }
}

/// One plain HTTP request to `address`: (status, body). Moto takes unsigned requests.
pub(crate) fn http(address: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_with(address, method, path, "", body)
}

/// [`http`] with extra header lines (each ending in CRLF).
pub(crate) fn http_with(
    address: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/octet-stream\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let status = String::from_utf8_lossy(&answer[9..12]).parse().unwrap();
    (status, answer[end + 4..].to_vec())
}

/// A bucket of the shared server.
pub(crate) struct TestBucket {
    pub name: String,
    pub server: &'static Moto,
}

impl TestBucket {
    /// Creates bucket `name` (each test its own name).
    pub(crate) fn create(name: &str) -> Self {
        Self::create_on(moto(), name)
    }

    /// Creates bucket `name` on `server`.
    pub(crate) fn create_on(server: &'static Moto, name: &str) -> Self {
        let (status, body) = http(&server.address, "PUT", &format!("/{name}"), b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        Self {
            name: name.to_owned(),
            server,
        }
    }

    /// Stores objects, several at once.
    pub(crate) fn put_all(&self, objects: &[(String, Vec<u8>)]) {
        self.put_with(objects, "");
    }

    /// Stores objects anyone may read.
    pub(crate) fn put_public(&self, objects: &[(String, Vec<u8>)]) {
        self.put_with(objects, "x-amz-acl: public-read\r\n");
    }

    fn put_with(&self, objects: &[(String, Vec<u8>)], headers: &str) {
        std::thread::scope(|scope| {
            for part in objects.chunks(objects.len().div_ceil(8).max(1)) {
                scope.spawn(move || {
                    for (key, body) in part {
                        let (status, answer) = http_with(
                            &self.server.address,
                            "PUT",
                            &format!("/{}/{key}", self.name),
                            headers,
                            body,
                        );
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                    }
                });
            }
        });
    }

    /// The URL `s3://NAME/PREFIX`.
    pub(crate) fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }
}

/// A recording proxy to `server` that answers with `fault(request, index)` when it gives one,
/// and forwards the rest.
pub(crate) fn proxy(
    server: &'static Moto,
    fault: impl Fn(&Request, usize) -> Option<Reply> + Send + Sync + 'static,
) -> MockServer {
    let address = server.address.clone();
    MockServer::start(move |request, index| {
        fault(request, index).unwrap_or_else(|| Reply::Forward(address.clone()))
    })
}

/// A command for s3tally with test credentials and `endpoint`, and nothing of the user's own
/// AWS setup (no profile, no shared files, no instance role).
pub(crate) fn command(env: &Env, endpoint: &str, args: &[&str]) -> Command {
    let mut command = env.command(args);
    for name in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        command.env_remove(name);
    }
    command
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "s3tally-test-secret")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            env.dir.path().join("no-credentials"),
        )
        .env("AWS_CONFIG_FILE", env.dir.path().join("no-config"))
        // nothing listens there: no instance role
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9");
    command
}

/// Runs s3tally against `endpoint`; panics unless the exit code is `expected`.
pub(crate) fn run(env: &Env, endpoint: &str, args: &[&str], expected: i32) -> Output {
    let output = command(env, endpoint, args).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(expected),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A small log: one GET of `key` per address, at `hour` of `day` (YYYY-MM-DD).
pub(crate) fn log_text(day: &str, hour: u32, key: &str, ips: &[&str]) -> Vec<u8> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    let stamp = date.format("%d/%b/%Y");
    let mut text = String::new();
    for (i, ip) in ips.iter().enumerate() {
        text.push_str(&format!(
            "owner bucket [{stamp}:{hour:02}:{:02}:00 +0000] {ip} - R{i} REST.GET.OBJECT {key} \"GET /{key} HTTP/1.1\" 200 - 100 100 1 1 \"-\" \"aws-cli/2.0\" -\n",
            i % 60
        ));
    }
    text.into_bytes()
}

/// The gzip of `bytes`.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The paths of the GETs of objects (not listings) among `requests`.
pub(crate) fn object_gets(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method == "GET" && !r.path.contains("list-type="))
        .map(|r| r.path.clone())
        .collect()
}

/// The listing requests among `requests`.
pub(crate) fn listings(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("list-type="))
        .map(|r| r.path.clone())
        .collect()
}

/// Documentation addresses the test logs use.
pub(crate) const IPS: [&str; 3] = ["192.0.2.10", "198.51.100.20", "203.0.113.30"];

/// A flat-layout log key under `prefix` for `day`, number `n`.
pub(crate) fn flat_key(prefix: &str, day: &str, n: usize) -> String {
    format!(
        "{prefix}{day}-{:02}-{:02}-{:02}-{:016X}",
        n % 24,
        n % 60,
        n % 60,
        n
    )
}

/// `count` flat-layout log keys under `logs/`, spread over the first `days` days of May 2024.
pub(crate) fn spread_keys(count: usize, days: usize) -> Vec<String> {
    (0..count)
        .map(|n| flat_key("logs/", &format!("2024-05-{:02}", 1 + n % days), n))
        .collect()
}

/// A new bucket `name` holding one small log per key: the bucket and its objects.
pub(crate) fn bucket_holding(name: &str, keys: &[String]) -> (TestBucket, Vec<(String, Vec<u8>)>) {
    let bucket = TestBucket::create(name);
    let objects = logs(keys);
    bucket.put_all(&objects);
    (bucket, objects)
}

/// A date-partitioned log key under `root` (`.../ACCOUNT/REGION/BUCKET/`) for `day`.
pub(crate) fn partitioned_key(root: &str, day: &str, n: usize) -> String {
    format!("{root}{}/{}", day.replace('-', "/"), flat_key("", day, n))
}

/// Objects: one small log per key (gzip when the key ends in .gz), each with its own object.
pub(crate) fn logs(keys: &[String]) -> Vec<(String, Vec<u8>)> {
    keys.iter()
        .enumerate()
        .map(|(n, key)| {
            let name = key.rsplit('/').next().unwrap();
            let day = &name[..10];
            let text = log_text(
                day,
                (n % 24) as u32,
                &format!("data/{n:04}.nwb"),
                &IPS[..=(n % 3)],
            );
            let body = if Path::new(key).extension().is_some_and(|e| e == "gz") {
                gzip(&text)
            } else {
                text
            };
            (key.clone(), body)
        })
        .collect()
}

/// Writes the objects as local files (their names only: identity is the name).
pub(crate) fn write_locally(dir: &Path, objects: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (key, body) in objects {
        std::fs::write(dir.join(key.rsplit('/').next().unwrap()), body).unwrap();
    }
}

/// The dump of extracting `objects` from a local directory: what reading them from S3 must give.
pub(crate) fn local_dump(objects: &[(String, Vec<u8>)]) -> String {
    let env = Env::new();
    let dir = env.dir.path().join("logs");
    write_locally(&dir, objects);
    env.extract(&[&dir], 0);
    env.dump()
}

pub(crate) fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
