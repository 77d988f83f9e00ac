//! The extract stage: raw log files in, per-object bins out.
//!
//! New log files are grouped into batches ([`batch`]). Worker threads (rayon) read and parse the
//! files of one batch ([`parse`]) while the writer commits the previous one; a batch's bins, new
//! objects, new requesters and file records land in one transaction. A stop request is honoured
//! between batches.

mod batch;
pub(crate) mod parse;

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cache::{Cache, REJECTS_REPORT};
use crate::logs::{Exclusion, FailedFile};
use crate::privacy::Salt;
use crate::progress::Progress;
use crate::stage::{self, Context, Outcome};
use crate::store::{RejectRecord, Store};

/// Testing only: milliseconds to pause before writing each batch, so that tests can stop or kill
/// an extraction with a batch in flight.
pub(crate) const TEST_PAUSE_ENV: &str = "S3TALLY_TEST_BATCH_PAUSE_MS";

/// What the extract stage needs.
#[derive(Debug, Clone)]
pub(crate) struct ExtractOptions {
    /// Directories to search for log files.
    pub log_dirs: Vec<PathBuf>,
    /// Requesters to leave out.
    pub exclusion: Exclusion,
    /// A batch closes once it holds this many bytes of log files...
    pub batch_bytes: u64,
    /// ...or this many files.
    pub batch_files: usize,
    /// The secret under which requester IPs are hashed.
    pub salt: Salt,
}

/// What the extract stage did.
#[derive(Debug, Default)]
pub(crate) struct ExtractReport {
    /// Where log files were looked for.
    pub log_dirs: Vec<PathBuf>,
    /// Log files found.
    pub found: u64,
    /// Other files, ignored.
    pub ignored: u64,
    /// Files skipped because they were extracted before.
    pub already_extracted: u64,
    /// Files found again in this run under another path or link (the same log name).
    pub duplicates: Vec<PathBuf>,
    /// Files extracted before whose size has changed since (not extracted again).
    pub changed: Vec<String>,
    /// Files extracted now.
    pub extracted: u64,
    /// Files that could not be read (not recorded: they are tried again next time).
    pub failed: Vec<FailedFile>,
    /// Bytes of log files extracted now.
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// GET-2xx requests extracted.
    pub requests: u64,
    /// GET-2xx requests left out by exclusion.
    pub excluded: u64,
    /// Lines that could not be read.
    pub rejected: u64,
    /// The first rejected lines, IPs masked.
    pub first_rejects: Vec<RejectRecord>,
    /// Batches committed.
    pub batches: u64,
    /// Whether a stop request ended the stage before all files were extracted.
    pub stopped: bool,
    /// Wall time.
    pub elapsed: Duration,
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
        let mut lines = vec![format!(
            "extract: {} new log files ({:.1} MB, {} lines) in {:.2} s ({:.0} MB/s): {} requests, {} excluded, {} rejected lines",
            self.extracted,
            self.bytes as f64 / 1e6,
            self.lines,
            seconds,
            self.bytes as f64 / 1e6 / seconds,
            self.requests,
            self.excluded,
            self.rejected
        )];
        lines.push(format!(
            "extract: {} log files found, {} already extracted, {} other files ignored",
            self.found, self.already_extracted, self.ignored
        ));
        if let Some(first) = self.duplicates.first() {
            lines.push(format!(
                "extract: {} log files were found under more than one path or link and counted once (first: {})",
                self.duplicates.len(),
                first.display()
            ));
        }
        for reject in &self.first_rejects {
            lines.push(format!(
                "rejected {}:{}: {}: {}",
                reject.file, reject.line, reject.reason, reject.excerpt
            ));
        }
        if self.rejected > self.first_rejects.len() as u64 {
            lines.push(format!(
                "rejected lines: {} in all, the first of each file are in {REJECTS_REPORT} in the cache",
                self.rejected
            ));
        }
        for path in &self.changed {
            lines.push(format!(
                "warning: {path} has changed size since it was extracted; it is not extracted again"
            ));
        }
        for failed in &self.failed {
            lines.push(format!(
                "error: cannot read {}: {}",
                failed.path.display(),
                failed.error
            ));
        }
        if self.stopped {
            lines.push(
                "extract: stopped after committing the current batch; run again to resume".into(),
            );
        }
        if self.found == 0 {
            let dirs: Vec<String> = self
                .log_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            lines.push(format!(
                "extract: no S3 access-log files (named YYYY-MM-DD-hh-mm-ss-UNIQUE) in {}",
                dirs.join(", ")
            ));
        }
        lines
    }

    fn new_work(&self) -> String {
        format!("{} files, {} requests", self.extracted, self.requests)
    }

    fn pending(&self) -> String {
        if self.stopped {
            let left = self.found.saturating_sub(
                self.already_extracted + self.extracted + self.duplicates.len() as u64,
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
        log_dirs: options.log_dirs.clone(),
        ..ExtractReport::default()
    };
    store.check_salt(&options.salt.fingerprint())?;
    let plan = batch::plan(&options.log_dirs, store, &mut report)?;
    let batches = batch::batches(&plan.files, options.batch_bytes, options.batch_files);
    let mut progress = Progress::new("extract", plan.files.len() as u64, plan.bytes);
    let mut ids = batch::Ids::new(&options.salt, &options.exclusion);

    let result = std::thread::scope(|scope| -> anyhow::Result<()> {
        let (sender, receiver) = sync_channel(1);
        let batches = &batches;
        scope.spawn(move || {
            for batch in batches {
                if stop.is_raised() {
                    break;
                }
                let parsed: Vec<_> = batch
                    .par_iter()
                    .map(|file| (file, file.read().map(|data| parse::parse_log(&data))))
                    .collect();
                if sender.send(parsed).is_err() {
                    break;
                }
            }
        });
        let pause = std::env::var(TEST_PAUSE_ENV)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis);
        let mut committed = 0;
        for parsed in receiver {
            if stop.is_raised() {
                break;
            }
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
            let counts = batch::write_batch(store, &mut ids, parsed, &mut report)?;
            committed += 1;
            progress.advance(
                counts.files,
                counts.bytes,
                &format!("{} requests", counts.requests),
            );
            if stop.is_raised() {
                break;
            }
        }
        report.stopped = stop.is_raised() && committed < batches.len();
        Ok(())
    });
    progress.finish();
    result?;
    store.checkpoint()?;
    write_rejects_report(store, cache)?;
    report.elapsed = start.elapsed();
    Ok(report)
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
            reject.file,
            reject.line,
            reject.reason,
            reject.excerpt.replace('\t', " ")
        ));
    }
    crate::output::write_if_changed(&path, &text)?;
    Ok(())
}
