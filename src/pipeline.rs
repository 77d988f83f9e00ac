//! `s3tally run`: every stage in order (extract, regions, summaries, totals, coordinates, then
//! publish and the Parquet export when asked), each through the one [`Stage`] contract, with one
//! timestamped line per stage and a final table.
//!
//! A stage that cannot finish by itself (quota, missing key, refused key) is reported and the
//! later stages still run on what is there; a stage marked [`Stage::ENDS_RUN_WHEN_STOPPED`]
//! (extraction) ends the run when it stops early, and its error ends the run too. A stop request
//! (`s3tally stop`, SIGINT, SIGTERM) ends the run after the current stage. Publishing happens only
//! when no stage failed: only a complete, consistent tree is published. The export (private data,
//! never published) comes last and does not depend on publishing.

use std::time::Instant;

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::coordinates::{Coordinates, CoordinatesOptions};
use crate::export::{Export, ExportOptions};
use crate::extract::{Extract, ExtractOptions};
use crate::progress::timestamped;
use crate::publish::{Publish, PublishOptions};
use crate::regions::{Regions, RegionsOptions};
use crate::stage::{Context, Outcome, Report, Stage, print_summary};
use crate::summaries::{Summaries, SummaryOptions, Totals};

/// What `run` needs: every stage's options.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    /// Extraction.
    pub extract: ExtractOptions,
    /// Region labels.
    pub regions: RegionsOptions,
    /// Coordinates.
    pub coordinates: CoordinatesOptions,
    /// Summaries and totals.
    pub summaries: SummaryOptions,
    /// Publish into this repository at the end.
    pub publish: Option<PublishOptions>,
    /// Then export every request as Parquet there.
    pub export: Option<ExportOptions>,
}

/// One line of the final report.
#[derive(Debug, Clone, Tabled)]
pub(crate) struct StageRow {
    /// The stage.
    pub stage: &'static str,
    /// done, stopped, failed.
    pub result: &'static str,
    /// What was new.
    pub new: String,
    /// How long it took.
    pub time: String,
    /// What is left for the next run.
    pub pending: String,
}

/// What `run` did.
#[derive(Debug, Default)]
pub(crate) struct RunReport {
    /// One row per stage that ran.
    pub rows: Vec<StageRow>,
    /// How the run ends: the worst of its stages.
    pub outcome: Option<Outcome>,
}

impl RunReport {
    /// Failed if a stage failed, else stopped if a stage stopped, else done.
    pub(crate) fn outcome(&self) -> Outcome {
        self.outcome.unwrap_or(Outcome::Done)
    }

    /// The final table.
    pub(crate) fn table(&self) -> String {
        Table::new(&self.rows).with(Style::rounded()).to_string()
    }

    /// Adds a stage's row and says it on a timestamped line.
    fn add(
        &mut self,
        stage: &'static str,
        outcome: Outcome,
        new: String,
        pending: String,
        started: Instant,
    ) {
        let seconds = started.elapsed().as_secs_f64();
        let result = outcome.word();
        let pending_text = if pending.is_empty() {
            String::new()
        } else {
            format!("; pending: {pending}")
        };
        eprintln!(
            "{}",
            timestamped(&format!(
                "run: {stage} {result} in {seconds:.2} s: {new}{pending_text}"
            ))
        );
        self.outcome = Some(self.outcome().and(outcome));
        self.rows.push(StageRow {
            stage,
            result,
            new,
            time: format!("{seconds:.2} s"),
            pending,
        });
    }

    /// Runs one stage and records it; whether the later stages may run.
    fn step<S: Stage>(
        &mut self,
        context: &Context<'_>,
        options: &S::Options,
    ) -> anyhow::Result<bool> {
        let go_on = self.run_step::<S>(context, options)?;
        if go_on && context.stop.is_raised() {
            eprintln!(
                "{}",
                timestamped(&format!(
                    "run: stopped on request after {}; run again to go on",
                    S::NAME
                ))
            );
            self.outcome = Some(self.outcome().and(Outcome::Stopped));
            return Ok(false);
        }
        Ok(go_on)
    }

    /// Runs one stage and records it; whether the later stages may run, as far as it is concerned.
    fn run_step<S: Stage>(
        &mut self,
        context: &Context<'_>,
        options: &S::Options,
    ) -> anyhow::Result<bool> {
        let started = Instant::now();
        match S::run(context, options) {
            Ok(report) => {
                print_summary(&report);
                let outcome = report.outcome();
                self.add(
                    S::NAME,
                    outcome,
                    report.new_work(),
                    report.pending(),
                    started,
                );
                Ok(!(S::ENDS_RUN_WHEN_STOPPED && outcome == Outcome::Stopped))
            }
            Err(error) if S::ENDS_RUN_WHEN_STOPPED => Err(error),
            Err(error) => {
                let said = crate::exit::describe(&error);
                eprintln!("error: {}: {said}", S::NAME);
                self.add(S::NAME, Outcome::Failed, said, String::new(), started);
                Ok(true)
            }
        }
    }
}

/// Runs every stage (the caller holds the writer lock).
pub(crate) fn run(context: &Context<'_>, options: &RunOptions) -> anyhow::Result<RunReport> {
    let mut report = RunReport::default();
    // coordinates after the summaries: only the regions they publish are placed
    let mut go_on = report.step::<Extract>(context, &options.extract)?
        && report.step::<Regions>(context, &options.regions)?
        && report.step::<Summaries>(context, &options.summaries)?
        && report.step::<Totals>(context, &options.summaries)?
        && report.step::<Coordinates>(context, &options.coordinates)?;
    if go_on && let Some(publish) = &options.publish {
        if report.outcome() == Outcome::Failed {
            eprintln!(
                "{}",
                timestamped("run: publish not started: a stage failed (see above)")
            );
        } else {
            go_on = report.step::<Publish>(context, publish)?;
        }
    }
    if go_on && let Some(export) = &options.export {
        report.step::<Export>(context, export)?;
    }
    Ok(report)
}
