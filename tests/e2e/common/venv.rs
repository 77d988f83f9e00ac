//! The Python tools some tests run (the local S3 server, `DuckDB`), from the virtual environment
//! `.ci/run` creates (`target/test-venv`), installed there with pip when missing. A test that
//! cannot get its tool fails, loudly: it never passes by skipping.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One install at a time (tests run in parallel and share the environment).
static INSTALLING: Mutex<()> = Mutex::new(());

/// The test environment's directory.
fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv")
}

/// The environment's `file` (`bin/moto_server`, `bin/python`), after installing `package` (a pip
/// requirement) unless `ready` already holds.
pub(crate) fn tool(file: &str, package: &str, ready: impl Fn(&Path) -> bool) -> PathBuf {
    let _one = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = venv();
    let path = venv.join(file);
    if ready(&path) {
        return path;
    }
    let created = venv.join("bin/pip").exists()
        || Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|status| status.success());
    let installed = created
        && Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", package])
            .status()
            .is_ok_and(|status| status.success());
    assert!(
        installed && ready(&path),
        "cannot install {package} for the tests: run .ci/run (or `python3 -m venv target/test-venv && target/test-venv/bin/pip install '{package}'`)"
    );
    path
}

/// The environment's Python with `DuckDB`.
pub(crate) fn python_with_duckdb() -> PathBuf {
    tool("bin/python", "duckdb==1.4.2", |python| {
        Command::new(python)
            .args(["-c", "import duckdb"])
            .status()
            .is_ok_and(|status| status.success())
    })
}
