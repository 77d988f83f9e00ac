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
pub(crate) mod grouping;
pub(crate) mod tables;
pub(crate) mod tally;
pub(crate) mod totals;

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

/// What the summaries and totals stages need.
#[derive(Debug, Clone)]
pub(crate) struct SummaryOptions {
    /// Where the files go.
    pub output_dir: PathBuf,
    /// Which keys go where.
    pub grouping: Grouping,
    /// How counts are published.
    pub privacy: Privacy,
    /// A `by_region.tsv` is rewritten only when more than this many resolved regions change
    /// (0: always rewritten).
    pub region_threshold: usize,
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
    /// `by_region.tsv` files held back by the region threshold: path and regions changed.
    pub held_back: Vec<(PathBuf, usize)>,
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
        const LISTED: usize = 5;
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
        for (path, changed) in self.held_back.iter().take(LISTED) {
            lines.push(format!(
                "{stage}: {} not updated: only {changed} resolved regions changed (see --region-threshold)",
                path.display()
            ));
        }
        if self.held_back.len() > LISTED {
            lines.push(format!(
                "{stage}: {} more by_region.tsv files not updated for the same reason",
                self.held_back.len() - LISTED
            ));
        }
        let (count, first) = &self.undetermined_keys;
        if *count > 0 && stage == Summaries::NAME {
            lines.push(format!(
                "warning: {count} object keys name no dataset that can be a directory and are counted under `{}`: {}",
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
        match self.held_back.len() {
            0 => String::new(),
            held => format!("{held} by_region.tsv held back"),
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
type Writer = fn(&tally::Tallies, &SummaryOptions, &mut SummaryReport) -> anyhow::Result<()>;

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
        return Ok(SummaryReport {
            stage,
            nothing_new: true,
            ..SummaryReport::default()
        });
    }
    let (tallies, recomputed) = tally::current_tallies(store, &options.grouping, options.full)?;
    let mut report = SummaryReport {
        stage,
        datasets: tallies.datasets.len() as u64,
        recomputed,
        undetermined_keys: tallies.undetermined_keys.clone(),
        ..SummaryReport::default()
    };
    write(&tallies, options, &mut report)?;
    // only a complete write is remembered: after a failure the next run writes again
    if report.failed.is_empty() {
        store.set_stage_state(stage, &state)?;
    }
    Ok(report)
}
