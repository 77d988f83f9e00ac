//! Helpers of the Parquet export tests: `DuckDB` (from `PyPI`, run by Python) over an export,
//! generated logs split in two deliveries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::venv::python_with_duckdb;
use super::{Env, generate_logs, stderr, tree};

/// `DuckDB`'s answers to the queries of docs/scale.md over the export in `dir`: query name to rows
/// (with `rows`, also `schema` and `rows`: every row).
pub(crate) fn duckdb(dir: &Path, rows: bool) -> BTreeMap<String, Vec<String>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/scripts/duckdb_queries.py");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scale.md");
    let mut command = Command::new(python_with_duckdb());
    command.arg(script).arg(docs).arg(dir);
    if rows {
        command.arg("--rows");
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "DuckDB: {}", stderr(&output));
    let mut answers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        if let Some(name) = line.strip_prefix("### ") {
            name.clone_into(&mut current);
            answers.entry(current.clone()).or_default();
        } else {
            answers.get_mut(&current).unwrap().push(line.to_owned());
        }
    }
    answers
}

/// Runs s3tally; panics unless the exit code is `expected`. Standard error.
pub(crate) fn run(env: &Env, args: &[&str], expected: i32) -> String {
    let output = env.run(args);
    assert_eq!(output.status.code(), Some(expected), "{}", stderr(&output));
    stderr(&output)
}

/// The Parquet files under `dir`: relative path to bytes.
pub(crate) fn parquet_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir)
        .into_iter()
        .filter(|(name, _)| name.ends_with(".parquet"))
        .collect()
}

/// Every row of an export, sorted, without the file it came from.
pub(crate) fn all_rows(dest: &Path) -> Vec<String> {
    duckdb(dest, true)["rows"].clone()
}

/// Splits generated logs into two directories: even files first, odd ones later (so the later
/// ones add to days already exported).
pub(crate) fn split_logs(env: &Env) -> (PathBuf, PathBuf) {
    let all = env.dir.path().join("all");
    generate_logs(&all, 3, 0.1, 7);
    let first = env.dir.path().join("first");
    let later = env.dir.path().join("later");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&later).unwrap();
    let mut names: Vec<PathBuf> = walkdir::WalkDir::new(&all)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{}", names.len());
    for (i, path) in names.iter().enumerate() {
        let into = if i % 2 == 0 { &first } else { &later };
        std::fs::copy(path, into.join(path.file_name().unwrap())).unwrap();
    }
    (first, later)
}

/// The distinct requesters of some rows (as `DuckDB` prints them: the 8th column).
pub(crate) fn requesters_of(rows: &[String]) -> std::collections::BTreeSet<String> {
    rows.iter()
        .map(|row| row.split('\t').nth(7).unwrap().to_owned())
        .collect()
}

/// A row without its region (the 9th column).
pub(crate) fn without_region(row: &str) -> String {
    let mut fields: Vec<&str> = row.split('\t').collect();
    fields[8] = "";
    fields.join("\t")
}
