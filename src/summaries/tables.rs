//! Writing the TSV summaries: per dataset `by_day.tsv`, `by_asset.tsv`, `by_region.tsv`,
//! `requester_count.tsv`, and the archive's (without `by_asset.tsv`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::disclosure::{Privacy, resolved_regions_changed};
use super::tally::{Figures, Tallies, Tally};
use super::{ARCHIVE, SummaryOptions, SummaryReport};
use crate::labels::RegionLabel;

/// The header and rows of one summary table.
fn table<K>(
    key_name: &str,
    rows: &BTreeMap<K, Figures>,
    privacy: &Privacy,
    key: impl Fn(&K) -> String,
) -> String {
    let mut text = format!(
        "{key_name}\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\tnumber_of_views\n"
    );
    for (k, figures) in rows {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            key(k),
            figures.bytes_sent,
            privacy.count(figures.requests),
            privacy.count(figures.downloads),
            privacy.count(figures.views)
        ));
    }
    text
}

/// A day number as `YYYY-MM-DD`.
fn date(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Writes a `by_region.tsv` unless too few resolved regions changed since the file there.
fn write_by_region(
    report: &mut SummaryReport,
    path: PathBuf,
    content: &str,
    threshold: usize,
) -> std::io::Result<()> {
    if threshold > 0 {
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != content {
            let changed = resolved_regions_changed(&old, content);
            if changed <= threshold {
                report.held_back.push((path, changed));
                return Ok(());
            }
        }
    }
    report.write(path, content)
}

/// Writes the summaries of every dataset and of the archive.
#[allow(
    clippy::unnecessary_wraps,
    reason = "one signature for the writers of both stages; a dataset's failure is reported, not returned"
)]
pub(crate) fn write_summaries(
    tallies: &Tallies,
    options: &SummaryOptions,
    report: &mut SummaryReport,
) -> anyhow::Result<()> {
    // one dataset that cannot be written (a full disk, a name the file system refuses) does not
    // stop the others
    for (name, tally) in &tallies.datasets {
        if let Err(error) =
            write_tables(report, &options.output_dir.join(name), tally, true, options)
        {
            report.failed.push((name.clone(), error.to_string()));
        }
    }
    let archive = options.output_dir.join(ARCHIVE);
    if let Err(error) = write_tables(report, &archive, &tallies.archive, false, options) {
        report.failed.push((ARCHIVE.to_owned(), error.to_string()));
    }
    Ok(())
}

/// Writes the tables of one dataset (with `by_asset.tsv`) or of the archive (without) in `base`.
fn write_tables(
    report: &mut SummaryReport,
    base: &Path,
    tally: &Tally,
    with_assets: bool,
    options: &SummaryOptions,
) -> std::io::Result<()> {
    let privacy = &options.privacy;
    report.write(
        base.join("by_day.tsv"),
        &table("date", &tally.by_day, privacy, |day| date(*day)),
    )?;
    if with_assets {
        let by_asset = table("asset_path", &tally.by_asset, privacy, String::clone);
        report.write(base.join("by_asset.tsv"), &by_asset)?;
    }
    let by_region = table("region", &tally.by_region, privacy, RegionLabel::to_string);
    write_by_region(
        report,
        base.join("by_region.tsv"),
        &by_region,
        options.region_threshold,
    )?;
    let requesters = privacy.count(tally.requesters.len() as u64);
    report.write(base.join("requester_count.tsv"), &format!("{requesters}\n"))
}

/// Reads a written summary table back (for `show`): header and rows.
pub(crate) fn read_table(path: &Path) -> std::io::Result<Vec<Vec<String>>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect())
}
