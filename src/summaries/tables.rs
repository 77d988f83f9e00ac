//! Writing the TSV summaries: per dataset `by_day.tsv`, `by_asset.tsv`, `by_region.tsv`,
//! `by_client.tsv`, `by_asset_type_per_week.tsv`, `requester_count.tsv`, and the archive's
//! (without `by_asset.tsv`); and removing those of datasets that no longer exist.

use std::collections::BTreeMap;
use std::path::Path;

use super::disclosure::{Disclosed, Privacy};
use super::tally::{Figures, Tally};
use super::{ARCHIVE, Publication, SummaryOptions, SummaryReport};
use crate::clients::ClientClass;

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

/// `by_asset_type_per_week.tsv`: `week_start` (a Monday) then the bytes sent of each asset type,
/// in the rules' order, every type always (0 when none).
fn weekly_types(tally: &Tally, types: &[String]) -> String {
    let mut text = format!("week_start\t{}\n", types.join("\t"));
    for (week, bytes) in &tally.by_type_week {
        text.push_str(&date(*week));
        for name in types {
            text.push_str(&format!("\t{}", bytes.get(name).copied().unwrap_or(0)));
        }
        text.push('\n');
    }
    text
}

/// `by_client.tsv`: client class and family (`-` when the class alone is known), bytes,
/// requests and downloads, in the order of the classes then families.
fn clients_table(tally: &Tally, privacy: &Privacy) -> String {
    let mut text = String::from(
        "client_class\tclient_family\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\n",
    );
    let mut rows: Vec<(ClientClass, &str, &Figures)> = tally
        .by_client
        .iter()
        .map(|(label, figures)| {
            let (class, family) = label.split_once('/').unwrap_or((label, "-"));
            let class = ClientClass::parse(class).unwrap_or(ClientClass::Unknown);
            (class, family, figures)
        })
        .collect();
    let order = |class: ClientClass| ClientClass::ALL.iter().position(|c| *c == class);
    rows.sort_by(|a, b| (order(a.0), a.1).cmp(&(order(b.0), b.1)));
    for (class, family, figures) in rows {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            class.as_str(),
            family,
            figures.bytes_sent,
            privacy.count(figures.requests),
            privacy.count(figures.downloads)
        ));
    }
    text
}

/// The files a dataset's directory holds.
pub(crate) const DATASET_FILES: [&str; 6] = [
    "by_day.tsv",
    "by_asset.tsv",
    "by_region.tsv",
    "by_client.tsv",
    "by_asset_type_per_week.tsv",
    "requester_count.tsv",
];

/// Removes the summary files of datasets not in `current` (nor the archive) from `output_dir`,
/// and their directories when that empties them: a dataset the map no longer names, or one no
/// longer picked, is not published any more. Files of other names are left. Returns how many
/// files were removed.
fn remove_stale(output_dir: &Path, current: &BTreeMap<String, Tally>) -> std::io::Result<usize> {
    let mut stale = Vec::new();
    for entry in walkdir::WalkDir::new(output_dir)
        .min_depth(2)
        .into_iter()
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file() || !DATASET_FILES.contains(&name.as_ref()) {
            continue;
        }
        let Some(dataset) = entry
            .path()
            .parent()
            .and_then(|dir| dir.strip_prefix(output_dir).ok())
            .map(|dir| dir.to_string_lossy().replace('\\', "/"))
        else {
            continue;
        };
        if dataset != ARCHIVE && !current.contains_key(&dataset) {
            stale.push(entry.into_path());
        }
    }
    for path in &stale {
        std::fs::remove_file(path)?;
        let mut parent = path.parent();
        while let Some(dir) = parent
            && dir != output_dir
            && std::fs::remove_dir(dir).is_ok()
        {
            parent = dir.parent();
        }
    }
    Ok(stale.len())
}

/// A day number as `YYYY-MM-DD`.
fn date(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Writes the summaries of every dataset and of the archive.
pub(crate) fn write_summaries(
    publication: &Publication<'_>,
    options: &SummaryOptions,
    report: &mut SummaryReport,
) -> anyhow::Result<()> {
    let tallies = publication.tallies;
    // one dataset that cannot be written (a full disk, a name the file system refuses) does not
    // stop the others
    for (name, tally) in &tallies.datasets {
        let figures = (tally, &publication.regions[name]);
        if let Err(error) = write_tables(
            report,
            &options.output_dir.join(name),
            figures,
            true,
            options,
        ) {
            report.failed.push((name.clone(), error.to_string()));
        }
    }
    let archive = options.output_dir.join(ARCHIVE);
    let archive_figures = (&tallies.archive, publication.archive_regions);
    if let Err(error) = write_tables(report, &archive, archive_figures, false, options) {
        report.failed.push((ARCHIVE.to_owned(), error.to_string()));
    }
    if report.failed.is_empty() {
        report.removed = remove_stale(&options.output_dir, &tallies.datasets)?;
    }
    Ok(())
}

/// Writes the tables of one dataset (with `by_asset.tsv`) or of the archive (without) in `base`.
fn write_tables(
    report: &mut SummaryReport,
    base: &Path,
    (tally, regions): (&Tally, &Disclosed),
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
    // rows sorted by the label as published
    let style = options.label_style;
    let by_text: BTreeMap<String, Figures> = regions
        .rows
        .iter()
        .map(|(label, figures)| (label.published(style).into_owned(), *figures))
        .collect();
    let by_region = table("region", &by_text, privacy, String::clone);
    report.write(base.join("by_region.tsv"), &by_region)?;
    report.write(base.join("by_client.tsv"), &clients_table(tally, privacy))?;
    let types = options.grouping.asset_types.names();
    report.write(
        base.join("by_asset_type_per_week.tsv"),
        &weekly_types(tally, types),
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
