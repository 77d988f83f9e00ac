//! The publish stage: copy the summaries, totals and coordinates into a git working tree and
//! commit what changed, after checking that nothing in them identifies a requester.
//!
//! Layout in the repository (under `content/` by default):
//!
//! ```text
//! content/summaries/<dataset>/{by_day,by_asset,by_region,requester_count}.tsv
//! content/summaries/archive/{by_day,by_region,requester_count}.tsv
//! content/totals.json
//! content/archive_totals.json
//! content/region_codes_to_coordinates.yaml
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::coordinates::COORDINATES_FILE;
use crate::output::write_if_changed;
use crate::summaries::{ARCHIVE, ARCHIVE_TOTALS_FILE, TOTALS_FILE};

/// What the publish stage needs.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The git working tree.
    pub repo: PathBuf,
    /// Where the summaries were written.
    pub summaries_dir: PathBuf,
    /// The directory inside the repository that s3tally manages.
    pub content_dir: String,
    /// Commit the change.
    pub commit: bool,
    /// Push the commit to the configured remote.
    pub push: bool,
}

/// What the publish stage did.
#[derive(Debug, Default)]
pub struct PublishReport {
    /// Files written or changed in the repository.
    pub written: Vec<String>,
    /// Files removed (datasets that no longer exist).
    pub removed: Vec<String>,
    /// The commit made, if any.
    pub commit: Option<String>,
    /// Its message.
    pub message: String,
    /// Whether it was pushed.
    pub pushed: bool,
}

impl PublishReport {
    /// A short human summary, one item per line.
    pub fn summary(&self) -> Vec<String> {
        let mut line = format!(
            "publish: {} files updated, {} removed",
            self.written.len(),
            self.removed.len()
        );
        match &self.commit {
            Some(commit) => line.push_str(&format!(", commit {commit}: {}", self.message)),
            None => line.push_str(", nothing to commit"),
        }
        if self.pushed {
            line.push_str(", pushed");
        }
        vec![line]
    }
}

/// Why publishing stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file holds something that identifies a requester.
    #[error("refusing to publish: {file} line {line} holds {what}")]
    Private {
        /// The file, relative to the summaries directory.
        file: String,
        /// Line number, from 1.
        line: usize,
        /// What was found (never the value itself).
        what: &'static str,
    },
    /// The target is not a git working tree.
    #[error("{0} is not a git working tree (git init it, or clone the publication repository)")]
    NotARepository(PathBuf),
    /// A git command failed.
    #[error("git {command} failed in {repo}: {message}")]
    Git {
        /// The git subcommand.
        command: String,
        /// The repository.
        repo: PathBuf,
        /// What git said.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn git(repo: &Path, args: &[&str]) -> Result<String, PublishError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|source| PublishError::Git {
            command: args.join(" "),
            repo: repo.to_path_buf(),
            message: source.to_string(),
        })?;
    if !output.status.success() {
        return Err(PublishError::Git {
            command: args.join(" "),
            repo: repo.to_path_buf(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The files to publish: path in the repository (under the content directory) to path on disk.
fn files_to_publish(summaries_dir: &Path) -> Result<BTreeMap<String, PathBuf>, PublishError> {
    let mut files = BTreeMap::new();
    for name in [TOTALS_FILE, ARCHIVE_TOTALS_FILE, COORDINATES_FILE] {
        let path = summaries_dir.join(name);
        if path.is_file() {
            files.insert(name.to_owned(), path);
        }
    }
    for entry in walkdir::WalkDir::new(summaries_dir)
        .into_iter()
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file() && name.ends_with(".tsv") {
            let relative = entry
                .path()
                .strip_prefix(summaries_dir)
                .unwrap_or(entry.path())
                .to_string_lossy()
                .replace('\\', "/");
            if relative.contains('/') {
                files.insert(format!("summaries/{relative}"), entry.path().to_path_buf());
            }
        }
    }
    Ok(files)
}

/// Refuses content that holds an IPv4 or IPv6 address or a requester index.
pub fn check_private(
    file: &str,
    content: &str,
    requester_ids: &HashSet<String>,
) -> Result<(), PublishError> {
    for (index, line) in content.lines().enumerate() {
        let private = |what| PublishError::Private {
            file: file.to_owned(),
            line: index + 1,
            what,
        };
        if crate::privacy::mask_ips(line) != line {
            return Err(private("an IP address"));
        }
        if holds_requester_id(line, requester_ids) {
            return Err(private("a requester index"));
        }
    }
    Ok(())
}

/// Whether a run of hex digits in `line` contains one of the requesters' ids (the first 16 hex
/// digits of their salted index, as `dump` shows them).
fn holds_requester_id(line: &str, requester_ids: &HashSet<String>) -> bool {
    line.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|run| run.len() >= 16)
        .any(|run| {
            let run = run.to_ascii_lowercase();
            (0..=run.len() - 16).any(|start| requester_ids.contains(&run[start..start + 16]))
        })
}

/// Copies the outputs into the repository, removes those of datasets that no longer exist, and
/// commits (and pushes) when something changed.
pub fn publish(
    options: &PublishOptions,
    requester_ids: &HashSet<String>,
) -> Result<PublishReport, PublishError> {
    let repo = &options.repo;
    if !repo.is_dir() || git(repo, &["rev-parse", "--is-inside-work-tree"]).is_err() {
        return Err(PublishError::NotARepository(repo.clone()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PublishError::Io { path, source }
    };
    // check everything before writing anything
    let mut contents = BTreeMap::new();
    for (target, source) in files_to_publish(&options.summaries_dir)? {
        let content = std::fs::read_to_string(&source).map_err(io(&source))?;
        check_private(&target, &content, requester_ids)?;
        contents.insert(target, content);
    }
    let content_root = repo.join(&options.content_dir);
    let mut report = PublishReport::default();
    for (target, content) in &contents {
        let path = content_root.join(target);
        if write_if_changed(&path, content).map_err(io(&path))? {
            report.written.push(target.clone());
        }
    }
    // published files of datasets that no longer exist
    let published_summaries = content_root.join("summaries");
    if published_summaries.is_dir() {
        for entry in walkdir::WalkDir::new(&published_summaries)
            .contents_first(true)
            .into_iter()
            .filter_map(Result::ok)
        {
            let relative = format!(
                "summaries/{}",
                entry
                    .path()
                    .strip_prefix(&published_summaries)
                    .unwrap_or(entry.path())
                    .to_string_lossy()
            );
            if entry.file_type().is_file() && !contents.contains_key(&relative) {
                std::fs::remove_file(entry.path()).map_err(io(entry.path()))?;
                report.removed.push(relative);
            } else if entry.file_type().is_dir() && entry.path() != published_summaries {
                // removes the directory only when empty
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
    if !options.commit {
        return Ok(report);
    }
    let content = options.content_dir.as_str();
    git(repo, &["add", "--all", "--", content])?;
    let changed = git(repo, &["diff", "--cached", "--name-only", "--", content])?;
    if changed.is_empty() {
        return Ok(report);
    }
    report.message = commit_message(&changed, content, &contents);
    let mut args = Vec::new();
    if git(repo, &["config", "user.email"]).is_err() {
        args.extend([
            "-c",
            "user.name=s3tally",
            "-c",
            "user.email=s3tally@localhost",
        ]);
    }
    args.extend(["commit", "--quiet", "-m", &report.message, "--", content]);
    git(repo, &args)?;
    report.commit = Some(git(repo, &["rev-parse", "--short", "HEAD"])?);
    if options.push {
        git(repo, &["push", "--quiet"])?;
        report.pushed = true;
    }
    Ok(report)
}

/// Says what changed: the datasets updated and the dates the published figures cover.
fn commit_message(changed: &str, content: &str, contents: &BTreeMap<String, String>) -> String {
    let prefix = format!("{content}/summaries/");
    let datasets: BTreeSet<&str> = changed
        .lines()
        .filter_map(|path| path.strip_prefix(&prefix))
        .filter_map(|rest| rest.rsplit_once('/').map(|(dataset, _)| dataset))
        .filter(|dataset| *dataset != ARCHIVE)
        .collect();
    let mut message = match datasets.len() {
        0 => "Update usage statistics".to_owned(),
        n if n <= 10 => format!(
            "Update usage statistics of {} dataset{}: {}",
            n,
            if n == 1 { "" } else { "s" },
            datasets.iter().copied().collect::<Vec<_>>().join(", ")
        ),
        n => format!("Update usage statistics of {n} datasets"),
    };
    let days: Vec<&str> = contents
        .get(&format!("summaries/{ARCHIVE}/by_day.tsv"))
        .map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| l.split('\t').next())
                .collect()
        })
        .unwrap_or_default();
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        message.push_str(&format!(" (requests from {first} to {last})"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_requester_ids_are_refused_with_file_and_line() {
        let ids: HashSet<String> = ["93214cc95e4f6a8e".to_owned()].into();
        let ok = "region\tbytes_sent\nUS/California\t5\nAWS/us-east-1\t7\nblobs/0c9c5c57-4f1e-4a3a-9ad2-0f3b0d1e2a3b\t1\n";
        check_private("a.tsv", ok, &ids).unwrap();
        let cases = [
            ("x\t1\n192.0.2.4\t5\n", 2, "an IP address"),
            ("x\nregion 2001:db8::1 here\n", 2, "an IP address"),
            ("x\ny\nid93214CC95E4F6A8Eff\t3\n", 3, "a requester index"),
        ];
        for (content, line, what) in cases {
            match check_private("a.tsv", content, &ids) {
                Err(PublishError::Private {
                    file,
                    line: l,
                    what: w,
                }) => {
                    assert_eq!((file.as_str(), l, w), ("a.tsv", line, what));
                }
                other => panic!("{content}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_message_names_datasets_and_dates() {
        let mut contents = BTreeMap::new();
        contents.insert(
            "summaries/archive/by_day.tsv".to_owned(),
            "date\tb\n2024-03-01\t1\n2024-03-05\t2\n".to_owned(),
        );
        let changed = "content/summaries/ds1/by_day.tsv\ncontent/summaries/ds2/by_asset.tsv\ncontent/summaries/archive/by_day.tsv\ncontent/totals.json";
        assert_eq!(
            commit_message(changed, "content", &contents),
            "Update usage statistics of 2 datasets: ds1, ds2 (requests from 2024-03-01 to 2024-03-05)"
        );
    }
}
