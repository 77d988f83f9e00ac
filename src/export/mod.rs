//! The Parquet export: every extracted request as Hive-partitioned Parquet
//! (`DEST/year=YYYY/month=MM/day=DD/*.parquet`) for query engines (`DuckDB`, Athena, Spark).
//!
//! Incremental: each run writes the batches extracted since the last one, as new files named by
//! their batches ([`destination::file_name`]); published files are never rewritten unless asked
//! (`--full`). Crash-safe: the range of batches being written is recorded in the store before the
//! first file, files appear whole (temporary name, then rename; one PUT on S3), and a run that
//! finds a recorded range unfinished first removes that range's files, then writes it again, so a
//! kill at any point leaves nothing missing or counted twice once the next run ends.
//!
//! Private by design: rows carry the store's requester number (pseudonymous, per request); the
//! export is the archive's internal data and `publish` refuses it.

pub(crate) mod columns;
pub(crate) mod destination;
pub(crate) mod rows;

use rayon::prelude::*;

use crate::labels::{LabelStyle, RegionLabel};
use crate::stage::{self, Context, Outcome};
use crate::store::{BatchNumber, LabelRound, Store};
use crate::summaries::grouping::Grouping;
use columns::Regions;
use destination::Destination;
use rows::Partition;

/// Rows held in memory by default (about 30 bytes each; 490 MB at the peak of an export of 10
/// million requests).
pub(crate) const DEFAULT_ROWS_IN_MEMORY: usize = 4_000_000;

/// What the export needs.
#[derive(Debug, Clone)]
pub(crate) struct ExportOptions {
    /// Where the files go: a local directory or `s3://BUCKET/PREFIX`.
    pub destination: String,
    /// How to reach S3 when it is there.
    pub s3: crate::s3::S3Settings,
    /// Which keys go to which dataset and asset; which requests are left out.
    pub grouping: Grouping,
    /// How region labels are written.
    pub label_style: LabelStyle,
    /// By day or by month.
    pub partition: Partition,
    /// Whether the `requester` column is written.
    pub with_requester: bool,
    /// Write everything again (every file of ours there is replaced).
    pub full: bool,
    /// Rows held in memory; more wait in spill files in the cache.
    pub rows_in_memory: usize,
}

/// What the files' form depends on: an export is continued only with the same.
fn layout(options: &ExportOptions) -> String {
    format!(
        "partition {:?} requester {}",
        options.partition, options.with_requester
    )
}

/// What the rows' values depend on besides the data: a change makes older files disagree.
fn meaning(options: &ExportOptions) -> String {
    format!(
        "{} labels {:?}",
        options.grouping.figures_key(),
        options.label_style
    )
}

/// What the store keeps of an export, under `export <destination>`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct ExportState {
    /// The last batch whose rows are all there.
    done: i64,
    /// The batches being written (files of them may be there, not all).
    writing: Option<(i64, i64)>,
    /// [`layout`] of the files there.
    layout: String,
    /// [`meaning`] of the files there.
    meaning: String,
    /// The labelling round the rows' regions are from.
    labels: i64,
    /// The highest requester number there was then (those above came later).
    requesters: u64,
}

/// The file in the destination that names the cache whose export it holds (engines skip names
/// starting with `_`; no `*.parquet` glob matches it).
const OWNER_FILE: &str = "_s3tally_export.json";

/// The cache's folder for rows waiting to be written (see [`rows`]).
const SPILL_DIR: &str = "export-spill";

/// What an export run did.
#[derive(Debug, Default)]
pub(crate) struct ExportReport {
    /// The destination as written.
    pub destination: String,
    /// The batches written, if any.
    pub batches: Option<(i64, i64)>,
    /// Rows written.
    pub rows: u64,
    /// Files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Rows that waited in spill files (more than `--rows-in-memory` were gathered).
    pub spilled: u64,
    /// Files of s3tally removed first (a range written again, or everything with `--full`).
    pub removed: u64,
    /// Stopped before the end: the next run completes it.
    pub stopped: bool,
    /// Warnings: rows already there that now disagree with what a new export would write.
    pub warnings: Vec<String>,
    /// Seconds the run took.
    pub seconds: f64,
}

impl stage::Report for ExportReport {
    fn outcome(&self) -> Outcome {
        Outcome::stopped_if(self.stopped)
    }

    fn summary(&self) -> Vec<String> {
        let mut lines = self.warnings.clone();
        let destination = &self.destination;
        lines.push(match (self.batches, self.stopped) {
            (None, _) => format!("export: {destination}: nothing extracted since the last export"),
            (Some((from, to)), false) => format!(
                "export: {destination}: batches {from} to {to}: {} rows in {} files ({:.1} MB, {:.2} bytes a row) in {:.1} s",
                self.rows,
                self.files,
                self.bytes as f64 / 1e6,
                self.bytes as f64 / (self.rows.max(1)) as f64,
                self.seconds
            ),
            (Some((from, to)), true) => format!(
                "export: {destination}: stopped while writing batches {from} to {to}: run it again to complete them"
            ),
        });
        if self.spilled > 0 {
            lines.push(format!(
                "export: {} rows waited on disk in the cache (more than --rows-in-memory)",
                self.spilled
            ));
        }
        if self.removed > 0 {
            lines.push(format!(
                "export: {} files of an earlier or unfinished export removed first",
                self.removed
            ));
        }
        lines
    }

    fn new_work(&self) -> String {
        format!("{} rows", self.rows)
    }
}

/// The export stage.
pub(crate) struct Export;

impl stage::Stage for Export {
    const NAME: &'static str = "export";
    type Options = ExportOptions;
    type Report = ExportReport;

    fn run(context: &Context<'_>, options: &ExportOptions) -> anyhow::Result<ExportReport> {
        let started = std::time::Instant::now();
        let mut report = export(context, options)?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}

/// Testing only: milliseconds to wait after each file, so that a test can kill the export
/// between two files.
pub(crate) const TEST_PAUSE_ENV: &str = "S3TALLY_TEST_EXPORT_PAUSE_MS";

fn pause_for_test() {
    if let Some(ms) = std::env::var(TEST_PAUSE_ENV)
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// The store's key of a destination's state.
fn state_key(destination: &Destination) -> String {
    format!("export {}", destination.url())
}

fn export(context: &Context<'_>, options: &ExportOptions) -> anyhow::Result<ExportReport> {
    let store = context.store;
    let destination = &Destination::open(&options.destination, &options.s3)?;
    let key = state_key(destination);
    let saved: Option<ExportState> = match store.stage_state(&key)? {
        Some(json) => Some(serde_json::from_str(&json).map_err(|error| {
            anyhow::anyhow!("the export state of {} in the store is damaged ({error}): run with --full to write everything again", destination.url())
        })?),
        None => None,
    };
    let mut report = ExportReport {
        destination: destination.url(),
        ..ExportReport::default()
    };
    let (last_batch, label_round) = store.data_version()?;
    claim(store, destination)?;
    // s3tally's files there, listed once: each range only removes what was there before the run
    let (ours, temporary) = destination.own_files()?;
    let mut state = continued(
        store,
        destination,
        &ours,
        saved,
        options,
        &mut report.warnings,
    )?;
    state.layout = layout(options);
    // an unfinished range is written again first, exactly (same files), then what is new
    let mut ranges = Vec::new();
    if let Some(writing) = state.writing {
        ranges.push(writing);
    }
    let written = state.done.max(state.writing.map_or(0, |(_, to)| to));
    if last_batch.0 > written {
        ranges.push((written + 1, last_batch.0));
    }
    if ranges.is_empty() {
        return Ok(report);
    }
    let regions = regions(store, options.label_style)?;
    let gathering = rows::Gathering {
        store,
        grouping: &options.grouping,
        partition: options.partition,
        rows_in_memory: options.rows_in_memory,
        spill_dir: context.cache.dir().join(SPILL_DIR),
        stop: context.stop,
    };
    for name in &temporary {
        destination.remove(name)?;
    }
    for range in ranges {
        state.writing = Some(range);
        state.meaning = meaning(options);
        state.labels = label_round.0;
        state.requesters = regions.of_requester.keys().max().copied().unwrap_or(0);
        store.set_stage_state(&key, &serde_json::to_string(&state)?)?;
        report.removed += clear(destination, &ours, range)?;
        report.batches = Some((report.batches.map_or(range.0, |(from, _)| from), range.1));
        // the parts of one partition: 0, 1, ...
        let mut part = (i64::MIN, 0u32);
        let gathered = rows::gather(
            &gathering,
            (BatchNumber(range.0), BatchNumber(range.1)),
            |parts, places| {
                // encoded in parallel, written in order
                let encoded: Vec<anyhow::Result<Vec<u8>>> = parts
                    .par_iter()
                    .map(|(_, rows)| {
                        let mut data = Vec::new();
                        columns::write(rows, places, &regions, options.with_requester, &mut data)?;
                        Ok(data)
                    })
                    .collect();
                for ((start, _), data) in parts.iter().zip(encoded) {
                    let data = data?;
                    part = if part.0 == *start {
                        (*start, part.1 + 1)
                    } else {
                        (*start, 0)
                    };
                    report.bytes += data.len() as u64;
                    report.files += 1;
                    let relative = format!(
                        "{}/{}",
                        options.partition.folder(*start),
                        destination::file_name(range, part.1)
                    );
                    destination.put(&relative, data)?;
                    pause_for_test();
                }
                Ok(())
            },
        )?;
        report.spilled += gathered.spilled;
        report.rows += gathered.rows;
        if gathered.stopped {
            report.stopped = true;
            return Ok(report);
        }
        state.done = range.1;
        state.writing = None;
        store.set_stage_state(&key, &serde_json::to_string(&state)?)?;
    }
    Ok(report)
}

/// Makes sure the destination holds this cache's export, or none yet (then marks it as this
/// cache's): the export of another cache there would be removed by a first export.
fn claim(store: &Store, destination: &Destination) -> anyhow::Result<()> {
    let ours =
        serde_json::json!({ "cache": store.store_id()?, "written_by": "s3tally export parquet" });
    match destination.read(OWNER_FILE)? {
        None => destination.put(
            OWNER_FILE,
            (serde_json::to_string_pretty(&ours)? + "\n").into_bytes(),
        ),
        Some(data) => {
            let theirs: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
            if theirs["cache"] == ours["cache"] {
                return Ok(());
            }
            Err(crate::exit::UsageError(format!(
                "{} holds the export of another s3tally cache (its {OWNER_FILE} names another): export each cache to its own destination, or remove that export first",
                destination.url()
            ))
            .into())
        }
    }
}

/// The state an export goes on from: the saved one, or a fresh one (everything written again)
/// with `--full`, on a first export, or when none of the files exported before is there any more
/// (a new directory, an emptied bucket). Other partitioning or columns than those of the files
/// there are refused.
fn continued(
    store: &Store,
    destination: &Destination,
    ours: &[String],
    saved: Option<ExportState>,
    options: &ExportOptions,
    warnings: &mut Vec<String>,
) -> anyhow::Result<ExportState> {
    let Some(state) = saved.filter(|_| !options.full) else {
        return Ok(ExportState::default());
    };
    if ours.is_empty() {
        if state.done > 0 {
            warnings.push(format!(
                "export: {} holds none of the files exported before: writing everything",
                destination.url()
            ));
        }
        return Ok(ExportState::default());
    }
    if state.layout != layout(options) {
        return Err(crate::exit::UsageError(format!(
            "{} holds an export written with other options ({}; now {}): give the same options, or --full to write everything again",
            destination.url(),
            state.layout,
            layout(options)
        ))
        .into());
    }
    warnings.extend(disagreements(store, &state, options)?);
    Ok(state)
}

/// Removes the files of ours (`ours`, listed before the run) that stand in the way of writing
/// `range`: those of that range from an unfinished run, and, when the range starts from the first
/// batch (a first export, `--full`, or a store extracted again), all of them. How many it removed.
fn clear(destination: &Destination, ours: &[String], range: (i64, i64)) -> anyhow::Result<u64> {
    let mut removed = 0;
    for name in ours {
        let file = name.rsplit('/').next().unwrap_or(name);
        if range.0 == 1 || destination::batches_of(file) == Some(range) {
            destination.remove(name)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// What makes the rows already exported disagree with a new export: other grouping options or
/// label style, requesters whose region changed since.
fn disagreements(
    store: &Store,
    state: &ExportState,
    options: &ExportOptions,
) -> anyhow::Result<Vec<String>> {
    let mut warnings = Vec::new();
    if state.meaning != meaning(options) {
        warnings.push(
            "warning: export: the rows already exported were written with other dataset, exclusion or label options; new rows follow the new ones (--full writes everything again)".to_owned(),
        );
    }
    // those that were there at the last export (new ones have no row there yet)
    let relabelled = store
        .requesters_labelled_since(LabelRound(state.labels))?
        .into_iter()
        .filter(|id| id.0 <= state.requesters)
        .count();
    if relabelled > 0 {
        warnings.push(format!(
            "warning: export: {relabelled} requesters got a region since the last export; their rows exported before keep the region they had then (--full writes everything again)"
        ));
    }
    Ok(warnings)
}

/// Every requester's region as published, and its country.
fn regions(store: &Store, style: LabelStyle) -> anyhow::Result<Regions> {
    let mut labels: Vec<(String, Option<String>)> = Vec::new();
    let mut index: std::collections::HashMap<RegionLabel, u32> = std::collections::HashMap::new();
    let mut intern = |label: RegionLabel| -> u32 {
        let next = labels.len() as u32;
        *index.entry(label.clone()).or_insert_with(|| {
            labels.push((
                label.published(style).into_owned(),
                label.place_country().map(str::to_owned),
            ));
            next
        })
    };
    let missing = intern(RegionLabel::missing());
    let mut of_requester = rustc_hash::FxHashMap::default();
    for (id, label) in store.requester_regions()? {
        of_requester.insert(id.0, label.map_or(missing, &mut intern));
    }
    Ok(Regions {
        of_requester,
        labels,
        missing,
    })
}
