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
//! content/.s3tally-manifest      the files above, as last published
//! ```
//!
//! It owns only those files ([`manifest`]): anything else in the repository (a README beside the
//! statistics, notes, staged changes of the user's) is never changed, removed, staged or
//! committed.

mod git;
mod lint;
mod manifest;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::coordinates::COORDINATES_FILE;
use crate::output::write_if_changed;
use crate::privacy::requester_id;
use crate::stage::{self, Context, Outcome};
use crate::store::Store;
use crate::summaries::{ARCHIVE_TOTALS_FILE, TOTALS_FILE, recorded_settings};
use git::{commit_message, git};
use lint::check_private;

/// What the publish stage needs.
#[derive(Debug, Clone)]
pub(crate) struct PublishOptions {
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
    /// Publish summaries computed with weaker than default privacy settings.
    pub allow_exact: bool,
}

/// What the publish stage did.
#[derive(Debug, Default)]
pub(crate) struct PublishReport {
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
    /// Whether a stale `index.lock` (left by a killed git) was removed first.
    pub cleared_lock: bool,
}

impl stage::Report for PublishReport {
    fn outcome(&self) -> Outcome {
        Outcome::Done
    }

    fn summary(&self) -> Vec<String> {
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
        let mut lines = vec![line];
        if self.cleared_lock {
            lines.push(format!(
                "publish: removed a stale .git/index.lock (older than {} s) left by an interrupted git",
                STALE_LOCK.as_secs()
            ));
        }
        lines
    }

    fn new_work(&self) -> String {
        match &self.commit {
            Some(commit) => format!("commit {commit}"),
            None => "no change".to_owned(),
        }
    }
}

/// The publish stage.
pub(crate) struct Publish;

impl stage::Stage for Publish {
    const NAME: &'static str = "publish";
    type Options = PublishOptions;
    type Report = PublishReport;

    fn run(context: &Context<'_>, options: &PublishOptions) -> anyhow::Result<PublishReport> {
        let attribution = context
            .store
            .stage_state(crate::regions::geoip::DATABASE_STATE)?
            .and_then(|kind| crate::regions::geoip::attribution(&kind));
        Ok(publish(
            options,
            &requester_ids(context.store)?,
            attribution,
        )?)
    }
}

/// An `index.lock` older than this was left by a git that was killed; a younger one may belong
/// to a git still working.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the repository's `index.lock` when it is stale (a publish or git killed midway would
/// otherwise block every later publish); refuses when it is recent. Whether it removed one.
fn clear_stale_index_lock(repo: &Path) -> Result<bool, PublishError> {
    let lock = repo.join(git(repo, &["rev-parse", "--git-path", "index.lock"])?);
    let Ok(meta) = std::fs::metadata(&lock) else {
        return Ok(false);
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .unwrap_or_default();
    if age < STALE_LOCK {
        return Err(PublishError::Git {
            command: "add".into(),
            repo: repo.to_path_buf(),
            message: format!(
                "another git is working in this repository ({} exists, {} s old); publish again later, or remove it if no git is running",
                lock.display(),
                age.as_secs()
            ),
        });
    }
    std::fs::remove_file(&lock).map_err(|source| PublishError::Io { path: lock, source })?;
    Ok(true)
}

/// Whether the current branch has commits its upstream lacks (or has no upstream yet).
fn has_unpushed_commits(repo: &Path) -> bool {
    git(repo, &["rev-list", "--count", "@{upstream}..HEAD"]).map_or(true, |count| count != "0")
}

/// Refuses summaries written with weaker than default privacy (unless allowed), or whose settings
/// are not recorded.
fn check_settings(dir: &Path, allow_exact: bool) -> Result<(), PublishError> {
    let refuse = |why: String| PublishError::NotPrivate {
        dir: dir.to_path_buf(),
        why,
    };
    let recorded = recorded_settings(dir)
        .map_err(|error| refuse(error.to_string()))?
        .unwrap_or_default();
    let written = [
        ("summaries", dir.join("archive").join("by_day.tsv")),
        ("totals", dir.join(TOTALS_FILE)),
    ];
    for (stage, output) in written {
        if !output.exists() {
            continue;
        }
        let Some(privacy) = recorded.get(stage) else {
            return Err(refuse(format!(
                "no record of the privacy settings the {stage} were written with (written by an older s3tally?): run `s3tally update {stage} --full` first"
            )));
        };
        let weaker = privacy.weaknesses();
        if !weaker.is_empty() && !allow_exact {
            return Err(refuse(format!(
                "the {stage} were written with {}, weaker than the defaults; write them again with the defaults, or publish exact figures knowingly with --allow-exact",
                weaker.join(", ")
            )));
        }
    }
    Ok(())
}

/// Every requester's opaque id (as `dump` shows it), to make sure none is published.
fn requester_ids(store: &Store) -> anyhow::Result<HashSet<String>> {
    Ok(store
        .requester_indexes()?
        .into_values()
        .map(|index| requester_id(&index))
        .collect())
}

/// Why publishing stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
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
    /// The summaries were computed with weaker privacy than the defaults, or it is not known how.
    #[error("refusing to publish {dir}: {why}")]
    NotPrivate {
        /// The summaries directory.
        dir: PathBuf,
        /// What is weaker, and what to do.
        why: String,
    },
    /// A Parquet file (the export's per-request rows) lies where publishing would reach it.
    #[error(
        "refusing to publish: {0} is a Parquet file: the Parquet export holds one row per request with a pseudonymous requester and must never be published; move it out of the repository and the summaries directory"
    )]
    Export(PathBuf),
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
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The files to publish: path in the repository (under the content directory) to path on disk.
fn files_to_publish(summaries_dir: &Path) -> BTreeMap<String, PathBuf> {
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
    files
}

/// The repository's README, where the attribution a data source's license asks for is kept.
const README: &str = "README.md";
/// The lines around the block of the README that publish owns.
const ATTRIBUTION_START: &str = "<!-- s3tally: attribution (written by s3tally publish) -->";
/// The end of that block.
const ATTRIBUTION_END: &str = "<!-- s3tally: end of attribution -->";

/// `readme` with its attribution block holding `text`: replaced where it is, else added at the
/// end; everything else stays as the user wrote it.
fn with_attribution(readme: &str, text: &str) -> String {
    let block = format!("{ATTRIBUTION_START}\n{text}\n{ATTRIBUTION_END}\n");
    if let (Some(start), Some(end)) = (readme.find(ATTRIBUTION_START), readme.find(ATTRIBUTION_END))
        && start < end
    {
        let after = &readme[end + ATTRIBUTION_END.len()..];
        let after = after.strip_prefix('\n').unwrap_or(after);
        return format!("{}{block}{after}", &readme[..start]);
    }
    let separator = match readme {
        "" => "",
        text if text.ends_with("\n\n") => "",
        text if text.ends_with('\n') => "\n",
        _ => "\n\n",
    };
    format!("{readme}{separator}{block}")
}

/// Refuses trees holding a Parquet file (outside `.git`): the export is never published, and a
/// copy of it in the repository would be one `git add` away.
fn refuse_parquet(dirs: &[&Path]) -> Result<(), PublishError> {
    for dir in dirs {
        let found = walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_entry(|entry| entry.file_name() != ".git")
            .filter_map(Result::ok)
            .find(|entry| {
                let name = entry.file_name().to_string_lossy();
                entry.file_type().is_file()
                    && (name.ends_with(".parquet") || name.ends_with(".parquet.tmp"))
            });
        if let Some(entry) = found {
            return Err(PublishError::Export(entry.into_path()));
        }
    }
    Ok(())
}

/// Copies the outputs into the repository, removes those of datasets that no longer exist, and
/// commits (and pushes) when something changed.
fn publish(
    options: &PublishOptions,
    requester_ids: &HashSet<String>,
    attribution: Option<&str>,
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
    check_settings(&options.summaries_dir, options.allow_exact)?;
    refuse_parquet(&[repo, &options.summaries_dir])?;
    let mut contents = BTreeMap::new();
    for (target, source) in files_to_publish(&options.summaries_dir) {
        let content = std::fs::read_to_string(&source).map_err(io(&source))?;
        // the path is published too (a dataset named like an address)
        check_private(&format!("the path of {target}"), &target, requester_ids)?;
        check_private(&target, &content, requester_ids)?;
        contents.insert(target, content);
    }
    let content_root = repo.join(&options.content_dir);
    let previous = manifest::previous(&content_root)?;
    let mut report = PublishReport::default();
    for (target, content) in &contents {
        let path = content_root.join(target);
        if write_if_changed(&path, content).map_err(io(&path))? {
            report.written.push(target.clone());
        }
    }
    // what s3tally wrote before and no longer writes (datasets that no longer exist): only those
    for gone in previous.iter().filter(|file| !contents.contains_key(*file)) {
        let path = content_root.join(gone);
        match std::fs::remove_file(&path) {
            Ok(()) => report.removed.push(gone.clone()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(PublishError::Io { path, source }),
        }
        // its directories, when nothing else is left in them
        let mut parent = path.parent();
        while let Some(dir) = parent
            && dir != content_root
            && std::fs::remove_dir(dir).is_ok()
        {
            parent = dir.parent();
        }
    }
    let owned: std::collections::BTreeSet<String> = contents.keys().cloned().collect();
    let manifest_path = content_root.join(manifest::MANIFEST);
    write_if_changed(&manifest_path, &manifest::text(&owned)).map_err(io(&manifest_path))?;
    if !options.commit {
        return Ok(report);
    }
    let content = options.content_dir.as_str();
    let in_repo = |file: &String| format!("{content}/{file}");
    let mut ours: Vec<String> = owned.iter().map(in_repo).collect();
    ours.push(in_repo(&manifest::MANIFEST.to_owned()));
    if let Some(text) = attribution {
        let readme = repo.join(README);
        let before = std::fs::read_to_string(&readme).unwrap_or_default();
        write_if_changed(&readme, &with_attribution(&before, text)).map_err(io(&readme))?;
        ours.push(README.to_owned());
    }
    report.cleared_lock = clear_stale_index_lock(repo)?;
    manifest::git_with_paths(repo, &["add"], &ours)?;
    let removed: Vec<String> = report.removed.iter().map(in_repo).collect();
    if !removed.is_empty() {
        manifest::git_with_paths(
            repo,
            &["rm", "--cached", "--quiet", "--ignore-unmatch"],
            &removed,
        )?;
    }
    let mine: std::collections::BTreeSet<&String> = ours.iter().chain(&removed).collect();
    let changed: Vec<String> = git(repo, &["diff", "--cached", "--name-only"])?
        .lines()
        .filter(|path| mine.contains(&path.to_string()))
        .map(str::to_owned)
        .collect();
    if changed.is_empty() {
        // a push that failed last time is tried again
        if options.push && has_unpushed_commits(repo) {
            git(repo, &["push", "--quiet"])?;
            report.pushed = true;
        }
        return Ok(report);
    }
    let changed_text = changed.join("\n");
    report.message = commit_message(&changed_text, content, &contents);
    check_private("the commit message", &report.message, requester_ids)?;
    let mut args = Vec::new();
    if git(repo, &["config", "user.email"]).is_err() {
        args.extend([
            "-c",
            "user.name=s3tally",
            "-c",
            "user.email=s3tally@localhost",
        ]);
    }
    // only s3tally's own paths, whatever else the user has staged
    args.extend(["commit", "--quiet", "-m", &report.message]);
    manifest::git_with_paths(repo, &args, &changed)?;
    report.commit = Some(git(repo, &["rev-parse", "--short", "HEAD"])?);
    if options.push {
        git(repo, &["push", "--quiet"])?;
        report.pushed = true;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attribution_block_is_added_once_and_replaced_in_place() {
        let text = "Data by someone.";
        let fresh = with_attribution("", text);
        assert_eq!(
            fresh,
            format!("{ATTRIBUTION_START}\nData by someone.\n{ATTRIBUTION_END}\n")
        );
        let users = "# Usage statistics\n\nOur notes.\n";
        let added = with_attribution(users, text);
        assert!(added.starts_with(users));
        assert_eq!(with_attribution(&added, text), added);
        let replaced = with_attribution(&format!("{added}More notes.\n"), "Other data.");
        assert_eq!(
            replaced,
            format!("{users}\n{ATTRIBUTION_START}\nOther data.\n{ATTRIBUTION_END}\nMore notes.\n")
        );
    }
}
