//! What `publish` owns in the repository: the files it wrote, listed in a manifest committed
//! beside them (`content/.s3tally-manifest`). Only those are updated, removed, staged and
//! committed; a README or notes of the user's beside the statistics are never touched.

use std::collections::BTreeSet;
use std::path::Path;

use super::PublishError;
use super::git::git;
use crate::summaries::tables::DATASET_FILES;

/// File name of the manifest inside the content directory.
pub(super) const MANIFEST: &str = ".s3tally-manifest";

/// The files s3tally wrote at the last publication (relative to the content directory). A
/// repository published before the manifest existed: the files there that s3tally's outputs are
/// named like.
pub(super) fn previous(content_root: &Path) -> Result<BTreeSet<String>, PublishError> {
    let path = content_root.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(named_like_ours(content_root))
        }
        Err(source) => Err(PublishError::Io { path, source }),
    }
}

/// The files under `content_root` named like s3tally's outputs.
fn named_like_ours(content_root: &Path) -> BTreeSet<String> {
    let mut found: BTreeSet<String> = [
        "totals.json",
        "archive_totals.json",
        "region_codes_to_coordinates.yaml",
    ]
    .into_iter()
    .filter(|name| content_root.join(name).is_file())
    .map(str::to_owned)
    .collect();
    let summaries = content_root.join("summaries");
    for entry in walkdir::WalkDir::new(&summaries)
        .into_iter()
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file()
            && DATASET_FILES.contains(&name.as_ref())
            && let Ok(relative) = entry.path().strip_prefix(content_root)
        {
            found.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    found
}

/// The manifest's text for these files.
pub(super) fn text(files: &BTreeSet<String>) -> String {
    let mut text = String::new();
    for file in files {
        text.push_str(file);
        text.push('\n');
    }
    text
}

/// Runs git with the given paths (relative to the repository) passed through a file, so that
/// any number of them fits.
pub(super) fn git_with_paths(
    repo: &Path,
    args: &[&str],
    paths: &[String],
) -> Result<String, PublishError> {
    let list = repo.join(git(repo, &["rev-parse", "--git-path", "s3tally-paths"])?);
    let mut bytes = Vec::new();
    for path in paths {
        bytes.extend_from_slice(path.as_bytes());
        bytes.push(0);
    }
    std::fs::write(&list, bytes).map_err(|source| PublishError::Io {
        path: list.clone(),
        source,
    })?;
    let from = format!("--pathspec-from-file={}", list.display());
    let mut full: Vec<&str> = args.to_vec();
    full.extend([from.as_str(), "--pathspec-file-nul"]);
    let result = git(repo, &full);
    let _ = std::fs::remove_file(&list);
    result
}
