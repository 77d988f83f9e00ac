//! `s3tally validate`: checks, on raw log files, the assumptions the fast parser makes about a log
//! format that has no escaping, and reports every line where one does not hold.
//!
//! Checks are versioned: a file validated by the same version of a check is not validated again;
//! a new version of a check validates every file again. The checks themselves are in [`checks`].

mod checks;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::logs::{Exclusion, FailedFile, LogFile, discover_all, excerpt};
use crate::progress::Progress;
use crate::stage::{self, Context, Outcome};
use checks::{check_line, get_ip, head, time_of_name};

pub(crate) use checks::Check;

/// A line where a check does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The file, relative to its log directory.
    pub file: String,
    /// Line number, from 1.
    pub line: u64,
    /// The check.
    pub check: Check,
    /// What is wrong.
    pub what: String,
    /// The line, IPs masked.
    pub excerpt: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}\n    {}",
            self.file,
            self.line,
            self.check.name(),
            self.what,
            self.excerpt
        )
    }
}

/// What `validate` needs.
#[derive(Debug, Clone)]
pub(crate) struct ValidateOptions {
    /// Directories holding log files.
    pub log_dirs: Vec<PathBuf>,
    /// The checks to run (all when empty).
    pub checks: Vec<Check>,
    /// Lines of these requesters are not checked (as in extraction).
    pub exclusion: Exclusion,
    /// Validate a random sample of this many files not validated yet.
    pub limit: Option<usize>,
}

/// Per check: files validated, lines checked, violations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CheckCounts {
    /// Files validated now.
    pub files: u64,
    /// Lines it applied to.
    pub lines: u64,
    /// Lines where it did not hold.
    pub violations: u64,
}

/// What `validate` did.
#[derive(Debug, Default)]
pub(crate) struct ValidateReport {
    /// Log files found.
    pub found: u64,
    /// Files validated now (for at least one check).
    pub validated: u64,
    /// Files skipped: every check asked for was run on them before, in its current version.
    pub skipped: u64,
    /// Counts by check.
    pub counts: BTreeMap<Check, CheckCounts>,
    /// Where each check first did not hold (`file:line`), for the table; every violation is
    /// printed as it is found, not kept.
    pub first: BTreeMap<Check, String>,
    /// Files that could not be read.
    pub failed: Vec<FailedFile>,
    /// Whether a stop request ended the run early.
    pub stopped: bool,
}

impl stage::Report for ValidateReport {
    /// Done when no violation was found and every file could be read; failed otherwise.
    fn outcome(&self) -> Outcome {
        if self.stopped {
            Outcome::Stopped
        } else if self.violation_count() == 0 && self.failed.is_empty() {
            Outcome::Done
        } else {
            Outcome::Failed
        }
    }

    fn summary(&self) -> Vec<String> {
        self.failed
            .iter()
            .map(|failed| {
                format!(
                    "error: cannot read {}: {}",
                    crate::output::escape_controls(&failed.path),
                    failed.error
                )
            })
            .collect()
    }

    fn new_work(&self) -> String {
        format!("{} files validated", self.validated)
    }
}

impl ValidateReport {
    /// Violations found now, of every check.
    pub(crate) fn violation_count(&self) -> u64 {
        self.counts.values().map(|c| c.violations).sum()
    }

    /// Writes the table and a closing line (the command's standard output, after the violations
    /// printed as they were found).
    pub(crate) fn write_to(&self, out: &mut (impl Write + ?Sized)) -> std::io::Result<()> {
        writeln!(out, "{}", self.table())?;
        writeln!(
            out,
            "validate: {} files validated, {} already validated, {} violations",
            self.validated,
            self.skipped,
            self.violation_count()
        )
    }

    /// The summary table.
    pub(crate) fn table(&self) -> String {
        let mut builder = tabled::builder::Builder::default();
        builder.push_record(["check", "version", "files", "lines", "violations", "first"]);
        for (check, counts) in &self.counts {
            builder.push_record([
                check.name().to_owned(),
                check.version().to_string(),
                counts.files.to_string(),
                counts.lines.to_string(),
                counts.violations.to_string(),
                self.first.get(check).cloned().unwrap_or_default(),
            ]);
        }
        builder
            .build()
            .with(tabled::settings::Style::rounded())
            .to_string()
    }
}

/// Violations of one file kept to be printed; the rest of that file's are only counted.
const SHOWN_PER_FILE: usize = 200;

/// What one file gave.
struct FileResult {
    lines: BTreeMap<Check, u64>,
    violations: BTreeMap<Check, u64>,
    /// The first violations, in line order, to print.
    shown: Vec<Violation>,
}

impl FileResult {
    fn found(&mut self, violation: Violation) {
        *self.violations.entry(violation.check).or_default() += 1;
        if self.shown.len() < SHOWN_PER_FILE {
            self.shown.push(violation);
        }
    }

    fn not_shown(&self) -> u64 {
        self.violations.values().sum::<u64>() - self.shown.len() as u64
    }
}

/// Checks one file, reading it chunk by chunk (bounded memory).
fn validate_file(
    file: &LogFile,
    checks: &[Check],
    exclusion: &Exclusion,
) -> std::io::Result<FileResult> {
    let (mut chunks, _) = file.open()?;
    let name = file.relative.rsplit('/').next().unwrap_or(&file.relative);
    let file_time = time_of_name(name);
    let mut result = FileResult {
        lines: checks.iter().map(|c| (*c, 0)).collect(),
        violations: BTreeMap::new(),
        shown: Vec::new(),
    };
    let violation = |line: u64, check, what, text: &[u8]| Violation {
        file: file.relative.clone(),
        line,
        check,
        what,
        excerpt: excerpt(text),
    };
    while let Some(chunk) = chunks.next_chunk()? {
        for (line, beginning) in &chunk.overlong {
            if checks.contains(&Check::Fields) {
                let what = "a line longer than a chunk: its fields cannot be told apart".to_owned();
                result.found(violation(*line, Check::Fields, what, beginning));
            }
        }
        let body = chunk.data.strip_suffix(b"\n").unwrap_or(&chunk.data);
        for (index, line) in body.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(|b| *b == b' ') {
                continue;
            }
            let head = head(line);
            if let Some((ip, _)) = head {
                let written = String::from_utf8_lossy(ip);
                if exclusion.excludes(&written, written.parse().ok()) {
                    continue;
                }
            }
            for count in result.lines.values_mut() {
                *count += 1;
            }
            let number = chunk.first_line + index as u64;
            for (check, what) in check_line(line, get_ip(head), checks, file_time) {
                result.found(violation(number, check, what, line));
            }
        }
    }
    result.shown.sort_by_key(|v| (v.line, v.check));
    Ok(result)
}

/// Prints violations to standard output as they are found; after a closed pipe, prints no more.
struct Printer {
    closed: bool,
}

impl Printer {
    fn print(&mut self, text: &str) {
        if self.closed {
            return;
        }
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").is_err() {
            self.closed = true;
        }
    }
}

/// The validate command, run as a stage.
pub(crate) struct Validate;

impl stage::Stage for Validate {
    const NAME: &'static str = "validate";
    type Options = ValidateOptions;
    type Report = ValidateReport;

    fn run(context: &Context<'_>, options: &ValidateOptions) -> anyhow::Result<ValidateReport> {
        validate(context, options)
    }
}

/// Runs the checks on the log files not validated yet by their current versions.
fn validate(context: &Context<'_>, options: &ValidateOptions) -> anyhow::Result<ValidateReport> {
    let Context { store, stop, .. } = *context;
    let checks: Vec<Check> = if options.checks.is_empty() {
        Check::ALL.to_vec()
    } else {
        options.checks.clone()
    };
    let done = store.validated()?;
    let mut report = ValidateReport::default();
    let mut todo: Vec<(LogFile, Vec<Check>)> = Vec::new();
    let found = discover_all(&options.log_dirs)?;
    report.found = found.files.len() as u64;
    report.failed = FailedFile::all(found.unreadable);
    for file in found.files {
        let previous: Option<&HashMap<String, u32>> = done.get(&file.relative);
        let due: Vec<Check> = checks
            .iter()
            .copied()
            .filter(|check| previous.and_then(|p| p.get(check.name())) != Some(&check.version()))
            .collect();
        if due.is_empty() {
            report.skipped += 1;
        } else {
            todo.push((file, due));
        }
    }
    if let Some(limit) = options.limit {
        todo.shuffle(&mut rand::thread_rng());
        todo.truncate(limit);
        todo.sort_by(|a, b| a.0.relative.cmp(&b.0.relative));
    }
    let total_bytes = todo.iter().map(|(f, _)| f.size).sum();
    let mut progress = Progress::new("validate", todo.len() as u64, total_bytes);
    let mut printer = Printer { closed: false };
    for chunk in todo.chunks(64) {
        if stop.is_raised() {
            report.stopped = true;
            break;
        }
        let results: Vec<_> = chunk
            .par_iter()
            .map(|(file, due)| (file, due, validate_file(file, due, &options.exclusion)))
            .collect();
        let mut records = Vec::new();
        let mut bytes = 0;
        for (file, due, result) in results {
            bytes += file.size;
            let result = match result {
                Ok(result) => result,
                Err(error) => {
                    report.failed.push(FailedFile {
                        path: file.to_string(),
                        error: error.to_string(),
                    });
                    continue;
                }
            };
            report.validated += 1;
            for check in due {
                let counts = report.counts.entry(*check).or_default();
                counts.files += 1;
                counts.lines += result.lines[check];
                let violations = result.violations.get(check).copied().unwrap_or(0);
                counts.violations += violations;
                records.push((
                    file.relative.clone(),
                    check.name(),
                    check.version(),
                    violations,
                ));
            }
            for violation in &result.shown {
                report
                    .first
                    .entry(violation.check)
                    .or_insert_with(|| format!("{}:{}", violation.file, violation.line));
                printer.print(&violation.to_string());
            }
            if result.not_shown() > 0 {
                printer.print(&format!(
                    "{}: {} more violations not shown",
                    file.relative,
                    result.not_shown()
                ));
            }
        }
        store.record_validation(&records)?;
        progress.advance(chunk.len() as u64, bytes, "files validated");
    }
    progress.finish();
    Ok(report)
}
