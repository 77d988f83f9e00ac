//! The summaries and totals stages: per dataset and archive-wide figures by day, asset and region,
//! computed from the exact per-request data ([`tally`]), written private by default
//! ([`disclosure`]), in the format s3-log-extraction publishes ([`tables`], [`totals`]).
//!
//! A request is a GET-2xx; a download a request with status 200; a view a maximal run of streaming
//! requests (2xx other than 200) by one requester to one asset with no gap over 8 hours, counted
//! once, on the day and in the region of its first request. Requesters labelled `GitHub` (CI
//! traffic) make no views and are not counted as requesters; their requests, bytes and downloads
//! count. Keys map to datasets and assets by [`grouping`].

pub(crate) mod disclosure;
pub(crate) mod excluded;
pub(crate) mod grouping;
pub(crate) mod saved;
pub(crate) mod tables;
pub(crate) mod tally;
pub(crate) mod totals;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::output::write_if_changed;
use crate::stage::{self, Context, Outcome, Stage as _};
use crate::store::Store;
use disclosure::Privacy;
use grouping::Grouping;

/// The directory of the archive-wide summaries.
pub(crate) const ARCHIVE: &str = "archive";
/// The per-dataset totals file.
pub(crate) const TOTALS_FILE: &str = "totals.json";
/// The archive totals file.
pub(crate) const ARCHIVE_TOTALS_FILE: &str = "archive_totals.json";
/// Beside the outputs (never published): the privacy settings each stage wrote them with.
pub(crate) const SETTINGS_FILE: &str = ".s3tally-privacy.json";

/// The privacy settings each stage (`summaries`, `totals`) last wrote its files with.
pub(crate) type RecordedSettings = BTreeMap<String, disclosure::Privacy>;

/// Reads the settings recorded beside the outputs in `dir` (`None` when there are none).
pub(crate) fn recorded_settings(dir: &std::path::Path) -> anyhow::Result<Option<RecordedSettings>> {
    let path = dir.join(SETTINGS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).map_err(|error| {
            anyhow::anyhow!(
                "{}: not a record of privacy settings: {error}",
                path.display()
            )
        })?)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(anyhow::anyhow!("{}: {error}", path.display())),
    }
}

/// Records that `stage` wrote its files with `privacy`.
fn record_settings(
    dir: &std::path::Path,
    stage: &str,
    privacy: disclosure::Privacy,
) -> anyhow::Result<()> {
    let mut recorded = recorded_settings(dir)?.unwrap_or_default();
    if recorded.get(stage) == Some(&privacy) {
        return Ok(());
    }
    recorded.insert(stage.to_owned(), privacy);
    let text = serde_json::to_string_pretty(&recorded)? + "\n";
    write_if_changed(&dir.join(SETTINGS_FILE), &text)?;
    Ok(())
}

/// What the summaries and totals stages need.
#[derive(Debug, Clone)]
pub(crate) struct SummaryOptions {
    /// Where the files go.
    pub output_dir: PathBuf,
    /// Which keys go where.
    pub grouping: Grouping,
    /// How counts are published.
    pub privacy: Privacy,
    /// How place labels are published.
    pub label_style: crate::labels::LabelStyle,
    /// Compute again even when nothing was extracted or labelled since the last run.
    pub full: bool,
}

impl SummaryOptions {
    /// What the files of `stage` were written from: the store's data version and every option
    /// that changes them. The same state twice means nothing to do.
    fn state(&self, store: &Store, stage: &str) -> anyhow::Result<String> {
        let (batch, round) = store.data_version()?;
        let decisive = SummaryOptions {
            full: false,
            ..self.clone()
        };
        Ok(format!("{stage}|({}, {})|{decisive:?}", batch.0, round.0))
    }
}

/// What a summaries or totals run wrote.
#[derive(Debug, Default)]
pub(crate) struct SummaryReport {
    /// The stage: `summaries` or `totals`.
    pub stage: &'static str,
    /// Nothing was extracted or labelled since the last run with the same options: nothing done.
    pub nothing_new: bool,
    /// Datasets summarized.
    pub datasets: u64,
    /// Datasets whose figures were computed again (the others were unchanged since last run).
    pub recomputed: u64,
    /// Files written (content changed).
    pub written: Vec<PathBuf>,
    /// Files whose content did not change.
    pub unchanged: u64,
    /// Files of datasets that no longer exist, removed.
    pub removed: usize,
    /// Region rows pooled in `other` (fewer than K requesters), over every `by_region.tsv`.
    pub pooled: usize,
    /// Named region rows kept at their last published values (fewer than K new requesters).
    pub held: usize,
    /// Keys computed now whose dataset name cannot be a directory: how many, the first few.
    pub undetermined_keys: (u64, Vec<String>),
    /// Datasets whose files could not be written, and why (the others were written).
    pub failed: Vec<(String, String)>,
}

impl SummaryReport {
    /// Writes a file unless it already holds `content`, and counts it.
    fn write(&mut self, path: PathBuf, content: &str) -> std::io::Result<()> {
        if write_if_changed(&path, content)? {
            self.written.push(path);
        } else {
            self.unchanged += 1;
        }
        Ok(())
    }
}

impl stage::Report for SummaryReport {
    fn outcome(&self) -> Outcome {
        if self.failed.is_empty() {
            Outcome::Done
        } else {
            Outcome::Failed
        }
    }

    fn summary(&self) -> Vec<String> {
        let stage = self.stage;
        if self.nothing_new {
            return vec![format!(
                "{stage}: nothing new since the last run (--full recomputes anyway)"
            )];
        }
        let mut lines = vec![format!(
            "{stage}: {} datasets ({} computed again), {} files written, {} unchanged",
            self.datasets,
            self.recomputed,
            self.written.len(),
            self.unchanged
        )];
        if self.removed > 0 {
            lines.push(format!(
                "{stage}: {} files of datasets that no longer exist removed",
                self.removed
            ));
        }
        if stage == Summaries::NAME && self.pooled + self.held > 0 {
            lines.push(format!(
                "{stage}: region rows: {} pooled in `other` (fewer than K requesters behind each), {} kept at their last published values (fewer than K new requesters)",
                self.pooled, self.held
            ));
        }
        let (count, first) = &self.undetermined_keys;
        if *count > 0 && stage == Summaries::NAME {
            lines.push(format!(
                "warning: {count} object keys have no row in the dataset map or name no dataset that can be a directory, and are counted under `{}`: {}",
                grouping::UNDETERMINED,
                first
                    .iter()
                    .map(|key| format!("`{key}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for (dataset, error) in &self.failed {
            lines.push(format!(
                "error: {stage}: cannot write the files of {dataset}: {error}"
            ));
        }
        lines
    }

    fn new_work(&self) -> String {
        if self.nothing_new {
            "nothing new".to_owned()
        } else {
            format!("{} files written", self.written.len())
        }
    }

    fn pending(&self) -> String {
        match self.held {
            0 => String::new(),
            held => format!("{held} region rows held"),
        }
    }
}

/// The summaries stage: the TSV files.
pub(crate) struct Summaries;

impl stage::Stage for Summaries {
    const NAME: &'static str = "summaries";
    type Options = SummaryOptions;
    type Report = SummaryReport;

    fn run(context: &Context<'_>, options: &SummaryOptions) -> anyhow::Result<SummaryReport> {
        update(context.store, options, Self::NAME, tables::write_summaries)
    }
}

/// The totals stage: the JSON files.
pub(crate) struct Totals;

impl stage::Stage for Totals {
    const NAME: &'static str = "totals";
    type Options = SummaryOptions;
    type Report = SummaryReport;

    fn run(context: &Context<'_>, options: &SummaryOptions) -> anyhow::Result<SummaryReport> {
        update(context.store, options, Self::NAME, totals::write_totals)
    }
}

/// Writes one stage's files from the current figures.
type Writer = fn(&Publication<'_>, &SummaryOptions, &mut SummaryReport) -> anyhow::Result<()>;

/// What a stage writes from: the exact figures, and the region rows that may be shown.
pub(crate) struct Publication<'a> {
    /// Every dataset's figures and the archive's.
    pub tallies: &'a tally::Tallies,
    /// The region rows of each dataset.
    pub regions: &'a BTreeMap<String, disclosure::Disclosed>,
    /// The region rows of the archive.
    pub archive_regions: &'a disclosure::Disclosed,
}

/// The scope of the archive's region rows in the store.
const ARCHIVE_SCOPE: &str = "";

/// The region rows each `by_region.tsv` may show now, from the rows last published (kept in the
/// store, and updated there).
fn disclose(
    store: &Store,
    tallies: &tally::Tallies,
    k: usize,
) -> anyhow::Result<(
    BTreeMap<String, disclosure::Disclosed>,
    disclosure::Disclosed,
)> {
    let saved = store.published_regions()?;
    let previous = |scope: &str| -> anyhow::Result<disclosure::PublishedRegions> {
        Ok(match saved.get(scope) {
            Some(json) => serde_json::from_str(json).map_err(|error| {
                let name = if scope == ARCHIVE_SCOPE { ARCHIVE } else { scope };
                anyhow::anyhow!(
                    "the region rows last published for {name} (store table published_regions) are damaged ({error}): delete that row to decide its regions afresh"
                )
            })?,
            None => disclosure::PublishedRegions::new(),
        })
    };
    let mut changed = Vec::new();
    let mut remember = |scope: &str,
                        before: &disclosure::PublishedRegions,
                        now: &disclosure::Disclosed|
     -> anyhow::Result<()> {
        if k > 1 && *before != now.published {
            changed.push((scope.to_owned(), serde_json::to_string(&now.published)?));
        }
        Ok(())
    };
    let mut regions = BTreeMap::new();
    for (name, tally) in &tallies.datasets {
        let before = previous(name)?;
        let now = disclosure::disclose_regions(tally, &before, k);
        remember(name, &before, &now)?;
        regions.insert(name.clone(), now);
    }
    let before = previous(ARCHIVE_SCOPE)?;
    let archive = disclosure::disclose_regions(&tallies.archive, &before, k);
    remember(ARCHIVE_SCOPE, &before, &archive)?;
    store.save_published_regions(&changed)?;
    Ok((regions, archive))
}

/// Runs the summaries or the totals stage: nothing when nothing was extracted or labelled since
/// the last run with the same options (unless `full`), else the figures of the datasets that
/// changed computed again exactly and the files whose content changed rewritten.
fn update(
    store: &Store,
    options: &SummaryOptions,
    stage: &'static str,
    write: Writer,
) -> anyhow::Result<SummaryReport> {
    let state = options.state(store, stage)?;
    if !options.full
        && options.output_dir.is_dir()
        && store.stage_state(stage)?.as_deref() == Some(state.as_str())
    {
        record_settings(&options.output_dir, stage, options.privacy)?;
        return Ok(SummaryReport {
            stage,
            nothing_new: true,
            ..SummaryReport::default()
        });
    }
    let (tallies, recomputed) = saved::current_tallies(store, &options.grouping, options.full)?;
    let mut report = SummaryReport {
        stage,
        datasets: tallies.datasets.len() as u64,
        recomputed,
        undetermined_keys: tallies.undetermined_keys.clone(),
        ..SummaryReport::default()
    };
    let (regions, archive_regions) =
        disclose(store, &tallies, options.privacy.region_min_requesters)?;
    report.pooled = regions.values().map(|d| d.pooled).sum::<usize>() + archive_regions.pooled;
    report.held = regions.values().map(|d| d.held).sum::<usize>() + archive_regions.held;
    let publication = Publication {
        tallies: &tallies,
        regions: &regions,
        archive_regions: &archive_regions,
    };
    write(&publication, options, &mut report)?;
    record_settings(&options.output_dir, stage, options.privacy)?;
    // only a complete write is remembered: after a failure the next run writes again
    if report.failed.is_empty() {
        store.set_stage_state(stage, &state)?;
    }
    Ok(report)
}
