//! The git side of publishing: running git in the publication repository, and the commit message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use super::PublishError;
use crate::summaries::ARCHIVE;

/// Runs git in `repo`; its standard output, trimmed.
pub(super) fn git(repo: &Path, args: &[&str]) -> Result<String, PublishError> {
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

/// Says what changed: the datasets updated and the dates the published figures cover.
pub(super) fn commit_message(
    changed: &str,
    content: &str,
    contents: &BTreeMap<String, String>,
) -> String {
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
