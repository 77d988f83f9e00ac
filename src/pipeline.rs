//! `s3tally run`: every stage in order (extract, regions, coordinates, summaries, totals, and
//! publish when asked), each incremental, with one timestamped line per stage and a final table.
//!
//! A stage that cannot finish (stopped, quota, missing key, refused key) is reported and the later
//! stages still run on what is there; only a stopped extraction ends the run early (exit 3).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::Outcome;
use crate::coordinates::{self, CoordinatesOptions};
use crate::extract::{self, ExtractOptions};
use crate::interrupt::StopFlag;
use crate::privacy::Salt;
use crate::progress::timestamped;
use crate::publish::{self, PublishOptions};
use crate::regions::{self, RegionsOptions};
use crate::store::Store;
use crate::summaries::{self, Stage, SummaryOptions};

/// What `run` needs: every stage's options.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Extraction.
    pub extract: ExtractOptions,
    /// Region labels.
    pub regions: RegionsOptions,
    /// Coordinates.
    pub coordinates: CoordinatesOptions,
    /// Summaries and totals.
    pub summaries: SummaryOptions,
    /// Recompute the summaries even when nothing is new.
    pub full: bool,
    /// Publish into this repository at the end.
    pub publish: Option<PublishOptions>,
}

/// One line of the final report.
#[derive(Debug, Clone, Tabled)]
pub struct StageRow {
    /// The stage.
    pub stage: &'static str,
    /// done, stopped, failed, skipped.
    pub result: String,
    /// What was new.
    pub new: String,
    /// How long it took.
    pub time: String,
    /// What is left for the next run.
    pub pending: String,
}

/// What `run` did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// One row per stage that ran.
    pub rows: Vec<StageRow>,
    /// How the run ends.
    pub outcome: Option<Outcome>,
}

impl RunReport {
    /// Failed if a stage failed, else stopped if a stage stopped, else done.
    pub fn outcome(&self) -> Outcome {
        if let Some(outcome) = self.outcome {
            return outcome;
        }
        if self.rows.iter().any(|r| r.result == "failed") {
            Outcome::Failed
        } else if self.rows.iter().any(|r| r.result == "stopped") {
            Outcome::Stopped
        } else {
            Outcome::Done
        }
    }

    /// The final table.
    pub fn table(&self) -> String {
        Table::new(&self.rows).with(Style::rounded()).to_string()
    }

    fn add(
        &mut self,
        stage: &'static str,
        result: &str,
        new: String,
        started: Instant,
        pending: String,
    ) {
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{}",
            timestamped(&format!(
                "run: {stage} {result} in {seconds:.2} s: {new}{}",
                if pending.is_empty() {
                    String::new()
                } else {
                    format!("; pending: {pending}")
                }
            ))
        );
        self.rows.push(StageRow {
            stage,
            result: result.to_owned(),
            new,
            time: format!("{seconds:.2} s"),
            pending,
        });
    }

    fn failed(&mut self, stage: &'static str, error: &anyhow::Error, started: Instant) {
        eprintln!("error: {stage}: {error:#}");
        self.add(
            stage,
            "failed",
            format!("{error:#}"),
            started,
            String::new(),
        );
    }
}

fn print(lines: Vec<String>) {
    for line in lines {
        eprintln!("{line}");
    }
}

/// Runs every stage on an open store (the caller holds the writer lock).
pub fn run(
    store: &mut Store,
    cache_dir: &Path,
    salt: &Salt,
    options: &RunOptions,
    stop: &StopFlag,
) -> anyhow::Result<RunReport> {
    let mut report = RunReport::default();

    let started = Instant::now();
    let extracted = extract::extract(store, cache_dir, salt, &options.extract, stop)?;
    print(extracted.summary());
    let left = extracted
        .found
        .saturating_sub(extracted.already_extracted + extracted.extracted);
    report.add(
        "extract",
        extracted.outcome().word(),
        format!(
            "{} files, {} requests",
            extracted.extracted, extracted.requests
        ),
        started,
        if extracted.stopped {
            format!("{left} files")
        } else {
            String::new()
        },
    );
    if extracted.stopped {
        report.outcome = Some(Outcome::Stopped);
        return Ok(report);
    }

    let started = Instant::now();
    match regions::update_regions(store, cache_dir, &options.regions, stop) {
        Ok(labelled) => {
            print(labelled.summary());
            let count: u64 = labelled.labelled.values().sum();
            report.add(
                "regions",
                labelled.outcome().word(),
                format!("{count} requesters labelled"),
                started,
                format!("{} requesters", labelled.still_pending),
            );
        }
        Err(error) => report.failed("regions", &error, started),
    }

    let started = Instant::now();
    match coordinates::update_coordinates(store, &options.coordinates, stop) {
        Ok(placed) => {
            print(placed.summary());
            let pending = placed.need_key.len() + placed.unplaced.len();
            report.add(
                "coordinates",
                placed.outcome().word(),
                format!("{} labels geocoded", placed.geocoded),
                started,
                if pending > 0 {
                    format!("{pending} labels without coordinates")
                } else {
                    String::new()
                },
            );
        }
        Err(error) => report.failed("coordinates", &error, started),
    }

    for stage in [Stage::Summaries, Stage::Totals] {
        let started = Instant::now();
        match summaries::update(store, &options.summaries, stage, options.full) {
            Ok(written) => {
                print(written.summary(stage.name()));
                let new = if written.nothing_new {
                    "nothing new".to_owned()
                } else {
                    format!("{} files written", written.written.len())
                };
                let held = written.held_back.len();
                report.add(
                    stage.name(),
                    "done",
                    new,
                    started,
                    if held > 0 {
                        format!("{held} by_region.tsv held back")
                    } else {
                        String::new()
                    },
                );
            }
            Err(error) => report.failed(stage.name(), &error, started),
        }
    }

    if let Some(publish_options) = &options.publish {
        let started = Instant::now();
        match requester_ids(store).and_then(|ids| Ok(publish::publish(publish_options, &ids)?)) {
            Ok(published) => {
                print(published.summary());
                let new = match &published.commit {
                    Some(commit) => format!("commit {commit}"),
                    None => "no change".to_owned(),
                };
                report.add("publish", "done", new, started, String::new());
            }
            Err(error) => report.failed("publish", &error, started),
        }
    }
    Ok(report)
}

/// Every requester's opaque id (as `dump` shows it), to make sure none is published.
pub fn requester_ids(store: &Store) -> anyhow::Result<HashSet<String>> {
    Ok(store
        .requester_indexes()?
        .into_values()
        .map(|index| crate::dump::requester_id(&index))
        .collect())
}

/// The summaries directory of a cache, unless another is given.
pub fn summaries_dir(cache_dir: &Path, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| cache_dir.join("summaries"))
}
