//! The extract stage: raw log files in, per-object bins out.
//!
//! New log files are grouped into batches ([`batch`]). Worker threads (rayon) read and parse the
//! files of one batch ([`parse`]) while the writer commits the previous one; a batch's bins, new
//! objects, new requesters and file records land in one transaction. A stop request is honoured
//! between batches.

mod batch;
pub(crate) mod parse;

use std::collections::HashMap;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cache::{Cache, REJECTS_REPORT};
use crate::clients::ClientRules;
use crate::logs::{Exclusion, FailedFile, LogFile, LogPlace, LogSource, SourceOptions};
use crate::output::escape_controls;
use crate::privacy::Salt;
use crate::progress::Progress;
use crate::s3::Bucket;
use crate::stage::{self, Context, Outcome};
use crate::store::{RejectRecord, Store};

/// Testing only: milliseconds to pause before writing each batch, so that tests can stop or kill
/// an extraction with a batch in flight.
pub(crate) const TEST_PAUSE_ENV: &str = "S3TALLY_TEST_BATCH_PAUSE_MS";

/// Parsed chunks on their way from the parsing threads to the writer, at most.
const PIECES_IN_FLIGHT: usize = 16;

/// What the extract stage needs.
#[derive(Debug, Clone)]
pub(crate) struct ExtractOptions {
    /// Directories and buckets to read log files from.
    pub sources: Vec<LogSource>,
    /// How to read the buckets.
    pub finding: SourceOptions,
    /// Requesters to leave out.
    pub exclusion: Exclusion,
    /// A batch closes once it holds this many bytes of log files...
    pub batch_bytes: u64,
    /// ...or this many files.
    pub batch_files: usize,
    /// The secret under which requester IPs are hashed.
    pub salt: Salt,
    /// How user agents are classified.
    pub clients: std::sync::Arc<ClientRules>,
}

/// What the extract stage did.
#[derive(Debug, Default)]
pub(crate) struct ExtractReport {
    /// Where log files were looked for.
    pub sources: Vec<String>,
    /// How the buckets were listed (or read from an inventory).
    pub notes: Vec<String>,
    /// Log files found.
    pub found: u64,
    /// Other files, ignored.
    pub ignored: u64,
    /// Files skipped because they were extracted before.
    pub already_extracted: u64,
    /// Files found again in this run under another path, link or source (the same log name).
    pub duplicates: Vec<String>,
    /// Files read with a caveat (trailing bytes of a gzip file), said as warnings.
    pub warnings: Vec<String>,
    /// Files extracted before whose size has changed since (not extracted again).
    pub changed: Vec<String>,
    /// What was extracted now.
    pub extracted: batch::Counts,
    /// Files that could not be read (not recorded: they are tried again next time).
    pub failed: Vec<FailedFile>,
    /// The first rejected lines, IPs masked.
    pub first_rejects: Vec<RejectRecord>,
    /// Batches committed.
    pub batches: u64,
    /// Whether a stop request ended the stage before all files were extracted.
    pub stopped: bool,
    /// Wall time.
    pub elapsed: Duration,
}

impl ExtractReport {
    /// Adds what a committed batch extracted.
    fn add(&mut self, counts: &batch::BatchCounts) {
        self.extracted.add(&counts.counts);
        self.batches += 1;
        let room = 5usize.saturating_sub(self.first_rejects.len());
        self.first_rejects
            .extend(counts.first_rejects.iter().take(room).cloned());
    }
}

impl stage::Report for ExtractReport {
    fn outcome(&self) -> Outcome {
        if self.stopped {
            Outcome::Stopped
        } else if !self.failed.is_empty() {
            Outcome::Failed
        } else {
            Outcome::Done
        }
    }

    fn summary(&self) -> Vec<String> {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let done = &self.extracted;
        let mut lines = vec![format!(
            "extract: {} new log files ({:.1} MB, {} lines) in {:.2} s ({:.0} MB/s): {} requests, {} excluded, {} rejected lines",
            done.files,
            done.bytes as f64 / 1e6,
            done.lines,
            seconds,
            done.bytes as f64 / 1e6 / seconds,
            done.requests,
            done.excluded,
            done.rejected
        )];
        lines.push(format!(
            "extract: {} log files found, {} already extracted, {} other files ignored",
            self.found, self.already_extracted, self.ignored
        ));
        for note in &self.notes {
            lines.push(format!("extract: {note}"));
        }
        if let Some(first) = self.duplicates.first() {
            lines.push(format!(
                "extract: {} log files were found under more than one path or link and counted once (first: {first})",
                self.duplicates.len(),
            ));
        }
        for reject in &self.first_rejects {
            lines.push(format!(
                "rejected {}:{}: {}: {}",
                reject.file, reject.line, reject.reason, reject.excerpt
            ));
        }
        if done.rejected > self.first_rejects.len() as u64 {
            lines.push(format!(
                "rejected lines: {} in all, the first of each file are in {REJECTS_REPORT} in the cache",
                done.rejected
            ));
        }
        for warning in &self.warnings {
            lines.push(format!("warning: {warning}"));
        }
        for path in &self.changed {
            lines.push(format!(
                "warning: {path} has changed size since it was extracted; it is not extracted again"
            ));
        }
        for failed in &self.failed {
            lines.push(format!(
                "error: cannot read {}: {}",
                escape_controls(&failed.path),
                failed.error
            ));
        }
        if self.stopped {
            lines.push(
                "extract: stopped after committing the current batch; run again to resume".into(),
            );
        }
        if self.found == 0 {
            lines.push(format!(
                "extract: no S3 access-log files (named YYYY-MM-DD-hh-mm-ss-UNIQUE) in {}",
                self.sources.join(", ")
            ));
        }
        lines
    }

    fn new_work(&self) -> String {
        format!(
            "{} files, {} requests",
            self.extracted.files, self.extracted.requests
        )
    }

    fn pending(&self) -> String {
        if self.stopped {
            let left = self.found.saturating_sub(
                self.already_extracted + self.extracted.files + self.duplicates.len() as u64,
            );
            format!("{left} files")
        } else {
            String::new()
        }
    }
}

/// The extract stage.
pub(crate) struct Extract;

impl stage::Stage for Extract {
    const NAME: &'static str = "extract";
    const ENDS_RUN_WHEN_STOPPED: bool = true;
    type Options = ExtractOptions;
    type Report = ExtractReport;

    fn run(context: &Context<'_>, options: &ExtractOptions) -> anyhow::Result<ExtractReport> {
        extract(context, options)
    }
}

fn extract(context: &Context<'_>, options: &ExtractOptions) -> anyhow::Result<ExtractReport> {
    let Context { store, cache, stop } = *context;
    let start = Instant::now();
    let mut report = ExtractReport {
        sources: options.sources.iter().map(ToString::to_string).collect(),
        ..ExtractReport::default()
    };
    store.check_salt(&options.salt.fingerprint(), &options.salt.fingerprint_v1())?;
    let found = crate::logs::sources::find(&options.sources, &options.finding, Some(store), stop)?;
    let plan = batch::plan(&found, store, &mut report)?;
    let batches = batch::batches(&plan.files, options.batch_bytes, options.batch_files);
    let mut progress = Progress::new("extract", plan.files.len() as u64, plan.bytes);
    let mut ids = batch::Ids::new(&options.salt, &options.exclusion, &options.clients);

    let pause = std::env::var(TEST_PAUSE_ENV)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let mut committed = 0;
    let result = (|| -> anyhow::Result<()> {
        for files in &batches {
            if stop.is_raised() {
                break;
            }
            let counts = extract_batch(store, &mut ids, files, &found.buckets, pause, &mut report)?;
            committed += 1;
            progress.advance(
                counts.counts.files,
                counts.counts.bytes,
                &format!("{} requests", counts.counts.requests),
            );
        }
        Ok(())
    })();
    report.stopped = found.stopped || (stop.is_raised() && committed < batches.len());
    progress.finish();
    result?;
    found.remember_listings(store)?;
    store.checkpoint()?;
    write_rejects_report(store, cache)?;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Extracts one batch of files in one transaction: parsing threads stream each file's chunks to
/// this (the writing) thread; objects are downloaded concurrently and parsed as they arrive.
/// When a file fails after part of it was written, the transaction is rolled back and the batch
/// written again without it, so that no file is ever half counted.
fn extract_batch(
    store: &Store,
    ids: &mut batch::Ids<'_>,
    files: &[LogFile],
    buckets: &[Bucket],
    pause: Option<Duration>,
    report: &mut ExtractReport,
) -> anyhow::Result<batch::BatchCounts> {
    let mut files: Vec<&LogFile> = files.iter().collect();
    loop {
        let (sender, pieces) = sync_channel(PIECES_IN_FLIGHT);
        let written = std::thread::scope(|scope| {
            let to_read = &files;
            scope.spawn(move || read_files(to_read, buckets, &sender));
            batch::write_batch(store, ids, &files, pieces, || {
                if let Some(pause) = pause {
                    std::thread::sleep(pause);
                }
            })
        })?;
        match written {
            batch::Written::Committed(counts) => {
                report.add(&counts);
                report.failed.extend(counts.failed.iter().cloned());
                report.warnings.extend(counts.warnings.iter().cloned());
                return Ok(counts);
            }
            batch::Written::RolledBack(failed) => {
                ids.forget();
                let failed: HashMap<usize, String> = failed.into_iter().collect();
                for (index, error) in &failed {
                    report.failed.push(FailedFile {
                        path: files[*index].to_string(),
                        error: error.clone(),
                    });
                }
                files = files
                    .into_iter()
                    .enumerate()
                    .filter(|(index, _)| !failed.contains_key(index))
                    .map(|(_, file)| file)
                    .collect();
            }
        }
    }
}

/// Reads and parses the files of a batch on the worker threads, sending their pieces to the
/// writer: local files first, then each bucket's objects as their downloads start.
fn read_files(files: &[&LogFile], buckets: &[Bucket], sender: &batch::PieceSender) {
    let local: Vec<(usize, &LogFile)> = files
        .iter()
        .enumerate()
        .filter(|(_, file)| matches!(file.place, LogPlace::Local(_)))
        .map(|(index, file)| (index, *file))
        .collect();
    local
        .par_iter()
        .for_each_with(sender.clone(), |sender, (index, file)| {
            batch::stream_file(*index, file, sender);
        });
    for (number, bucket) in buckets.iter().enumerate() {
        let keys: Vec<(usize, String)> = files
            .iter()
            .enumerate()
            .filter(|(_, file)| matches!(file.place, LogPlace::Object { bucket, .. } if bucket == number))
            .map(|(index, file)| (index, file.relative.clone()))
            .collect();
        if keys.is_empty() {
            continue;
        }
        bucket.fetch(keys).into_iter().par_bridge().for_each_with(
            sender.clone(),
            |sender, (index, body)| match body {
                Ok(body) => batch::stream_opened(index, files[index].read(Box::new(body)), sender),
                Err(error) => {
                    let _ = sender.send(batch::Piece::Failed { file: index, error });
                }
            },
        );
    }
}

/// Rewrites `rejects.tsv` in the cache from the rejected lines kept in the store.
fn write_rejects_report(store: &Store, cache: &Cache) -> anyhow::Result<()> {
    let rejects = store.rejects()?;
    let path = cache.rejects_report();
    if rejects.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let mut text = String::from("file\tline\treason\tline_with_ips_masked\n");
    for reject in rejects {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            escape_controls(&reject.file),
            reject.line,
            reject.reason,
            reject.excerpt
        ));
    }
    if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
        crate::output::write_private(&path, text.as_bytes())?;
    }
    Ok(())
}
