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
    /// Every violation found now, by file and line.
    pub violations: Vec<Violation>,
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
        } else if self.violations.is_empty() && self.failed.is_empty() {
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
                    failed.path.display(),
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
    /// Writes every violation, the table and a closing line (the command's standard output).
    pub(crate) fn write_to(&self, out: &mut (impl Write + ?Sized)) -> std::io::Result<()> {
        for violation in &self.violations {
            writeln!(out, "{violation}")?;
        }
        writeln!(out, "{}", self.table())?;
        writeln!(
            out,
            "validate: {} files validated, {} already validated, {} violations",
            self.validated,
            self.skipped,
            self.violations.len()
        )
    }

    /// The summary table.
    pub(crate) fn table(&self) -> String {
        let mut builder = tabled::builder::Builder::default();
        builder.push_record(["check", "version", "files", "lines", "violations"]);
        for (check, counts) in &self.counts {
            builder.push_record([
                check.name().to_owned(),
                check.version().to_string(),
                counts.files.to_string(),
                counts.lines.to_string(),
                counts.violations.to_string(),
            ]);
        }
        builder
            .build()
            .with(tabled::settings::Style::rounded())
            .to_string()
    }
}

/// What one file gave.
struct FileResult {
    lines: BTreeMap<Check, u64>,
    violations: Vec<Violation>,
}

fn validate_file(
    file: &LogFile,
    checks: &[Check],
    exclusion: &Exclusion,
) -> std::io::Result<FileResult> {
    let data = file.read()?;
    let name = file.relative.rsplit('/').next().unwrap_or(&file.relative);
    let file_time = time_of_name(name);
    let mut result = FileResult {
        lines: checks.iter().map(|c| (*c, 0)).collect(),
        violations: Vec::new(),
    };
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
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
        for (check, what) in check_line(line, get_ip(head), checks, file_time) {
            result.violations.push(Violation {
                file: file.relative.clone(),
                line: index as u64 + 1,
                check,
                what,
                excerpt: excerpt(line),
            });
        }
    }
    Ok(result)
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
                        path: file.path.clone(),
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
                let violations = result
                    .violations
                    .iter()
                    .filter(|v| v.check == *check)
                    .count() as u64;
                counts.violations += violations;
                records.push((
                    file.relative.clone(),
                    check.name(),
                    check.version(),
                    violations,
                ));
            }
            report.violations.extend(result.violations);
        }
        store.record_validation(&records)?;
        progress.advance(chunk.len() as u64, bytes, "files validated");
    }
    progress.finish();
    report
        .violations
        .sort_by(|a, b| (&a.file, a.line, a.check).cmp(&(&b.file, b.line, b.check)));
    Ok(report)
}
