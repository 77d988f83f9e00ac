//! `s3tally validate`: checks, on raw log files, the assumptions the fast parser makes about a log
//! format that has no escaping, and reports every line where one does not hold.
//!
//! Checks are versioned: a file validated by the same version of a check is not validated again;
//! a new version of a check validates every file again.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::LazyLock;

use rand::seq::SliceRandom;
use rayon::prelude::*;
use regex::bytes::Regex;

use crate::Outcome;
use crate::extract::{Exclusion, FailedFile, excerpt};
use crate::interrupt::StopFlag;
use crate::logfiles::{self, LogFile};
use crate::parser::{self, GET_OBJECT};
use crate::progress::Progress;
use crate::store::Store;

/// One check of the log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The request URI of a GET line ends at exactly one closing quote followed by a 3-digit status.
    RequestLine,
    /// The status the fast parser reads equals the one a strict parse from the end of the line finds.
    Status,
    /// The remote IP of a GET line parses as IPv4 or IPv6.
    RemoteIp,
    /// The time of a GET line parses and lies within a day of the time in the file's name.
    Timestamp,
    /// A status-200 GET sends the whole object (bytes sent not smaller than the object size).
    Downloads,
    /// The line has a number of fields the format defines (18 to 27).
    Fields,
}

impl Check {
    /// Every check, in the order reported.
    pub const ALL: [Check; 6] = [
        Check::RequestLine,
        Check::Status,
        Check::RemoteIp,
        Check::Timestamp,
        Check::Downloads,
        Check::Fields,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::RequestLine => "request-line",
            Check::Status => "status",
            Check::RemoteIp => "remote-ip",
            Check::Timestamp => "timestamp",
            Check::Downloads => "downloads",
            Check::Fields => "fields",
        }
    }

    /// Its version: raised whenever what it checks changes, so files are validated again.
    pub fn version(self) -> u32 {
        1
    }

    /// The check of a name (for `--check`).
    pub fn from_name(name: &str) -> Result<Check, String> {
        Check::ALL
            .into_iter()
            .find(|check| check.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
                format!("unknown check `{name}` (one of {})", names.join(", "))
            })
    }
}

/// A line where a check does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
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
pub struct ValidateOptions {
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
pub struct CheckCounts {
    /// Files validated now.
    pub files: u64,
    /// Lines it applied to.
    pub lines: u64,
    /// Lines where it did not hold.
    pub violations: u64,
}

/// What `validate` did.
#[derive(Debug, Default)]
pub struct ValidateReport {
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

impl ValidateReport {
    /// Done when no violation was found and every file could be read; failed otherwise.
    pub fn outcome(&self) -> Outcome {
        if self.stopped {
            Outcome::Stopped
        } else if self.violations.is_empty() && self.failed.is_empty() {
            Outcome::Done
        } else {
            Outcome::Failed
        }
    }

    /// The summary table.
    pub fn table(&self) -> String {
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

/// The operation and remote IP of any line, read independently of the fast parser.
static HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)^\S+ +\S+ +\[[^\]]*\] +(?P<ip>\S+) +\S+ +\S+ +(?P<op>\S+) +\S+")
        .expect("valid regex")
});

/// A strict parse of the whole line from its end: trailing unquoted fields, the user agent and
/// referrer (quoted, with no quote followed by a space inside), four numeric-or-`-` fields, the
/// error code, the status and the quote closing the request URI. At most one place in a line can
/// start such a tail (another would put a quote and a space inside the referrer or user agent),
/// so the search need not be anchored at the start, which keeps it fast.
static STRICT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?-u)" +(?P<status>\d{3}) +\S+ +(?:\d+|-) +(?:\d+|-) +(?:\d+|-) +(?:\d+|-) +"(?:[^"]|"[^ ])*" +"(?:[^"]|"[^ ])*"(?: +[^" ]+)* *$"#,
    )
    .expect("valid regex")
});

/// A closing quote followed by a 3-digit status.
static URI_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?-u)" +\d{3} "#).expect("valid regex"));

/// The time in a log file's name.
fn time_of_name(name: &str) -> Option<i64> {
    static NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"(\d{4})-(\d{1,2})-(\d{1,2})-(\d{1,2})-(\d{1,2})-(\d{1,2})-[0-9A-Za-z]+(\.gz)?$",
        )
        .expect("valid regex")
    });
    let caps = NAME.captures(name)?;
    let number = |i: usize| caps[i].parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(caps[1].parse().ok()?, number(2)?, number(3)?)?;
    Some(
        date.and_hms_opt(number(4)?, number(5)?, number(6)?)?
            .and_utc()
            .timestamp(),
    )
}

/// The number of fields of a line: the fast parser's fields up to the referrer, then the quoted
/// and unquoted fields after it.
fn count_fields(line: &[u8]) -> Option<usize> {
    let head = HEAD.find(line)?;
    let after = parser::find_request_end(line, head.end())?;
    let mut count = 15;
    let mut pos = after.referrer_start;
    while pos < line.len() {
        if line[pos] == b' ' {
            pos += 1;
            continue;
        }
        count += 1;
        if line[pos] == b'"' {
            // a quoted field ends at a quote followed by a space, or at the end of the line
            let mut end = pos + 1;
            while end < line.len()
                && !(line[end] == b'"' && line.get(end + 1).is_none_or(|b| *b == b' '))
            {
                end += 1;
            }
            pos = end + 1;
        } else {
            pos += memchr::memchr(b' ', &line[pos..]).unwrap_or(line.len() - pos);
        }
    }
    Some(count)
}

/// The remote IP and operation of a line, read independently of the fast parser.
fn head(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let caps = HEAD.captures(line)?;
    Some((caps.name("ip")?.as_bytes(), caps.name("op")?.as_bytes()))
}

/// The remote IP of a `REST.GET.OBJECT` line; `None` for other lines.
fn get_ip<'a>(head: Option<(&'a [u8], &[u8])>) -> Option<&'a [u8]> {
    head.filter(|(_, op)| *op == GET_OBJECT).map(|(ip, _)| ip)
}

/// The checks of one line that do not hold, with what is wrong; `get_ip` is the line's remote IP
/// when it is a `REST.GET.OBJECT` line.
fn check_line(
    line: &[u8],
    get_ip: Option<&[u8]>,
    checks: &[Check],
    file_time: Option<i64>,
) -> Vec<(Check, String)> {
    let mut found = Vec::new();
    let is_get = get_ip.is_some();
    let fields = if is_get {
        parser::get_fields(line).ok().flatten()
    } else {
        None
    };
    for &check in checks {
        let problem = match check {
            Check::Fields => match count_fields(line) {
                Some(n) if (18..=27).contains(&n) => None,
                Some(n) => Some(format!("{n} fields (the format has 18 to 27)")),
                None => Some("the fields cannot be told apart".to_owned()),
            },
            _ if !is_get => None,
            Check::RequestLine => match URI_END.find_iter(line).count() {
                1 => None,
                0 => Some("no closing quote followed by a status".to_owned()),
                n => Some(format!("{n} places could end the request URI")),
            },
            Check::Status => {
                let fast = fields.map(|f| f.after_uri.status);
                let strict = STRICT.captures(line).and_then(|caps| {
                    std::str::from_utf8(&caps["status"])
                        .ok()?
                        .parse::<u16>()
                        .ok()
                });
                (fast != strict).then(|| {
                    let show = |s: Option<u16>| s.map_or("none".to_owned(), |s| s.to_string());
                    format!(
                        "the fast parser reads status {}, a strict parse {}",
                        show(fast),
                        show(strict)
                    )
                })
            }
            Check::RemoteIp => {
                let parses = std::str::from_utf8(get_ip.unwrap_or_default())
                    .ok()
                    .is_some_and(|ip| ip.parse::<IpAddr>().is_ok());
                (!parses).then(|| "the remote IP is not an IPv4 or IPv6 address".to_owned())
            }
            Check::Timestamp => match fields.map(|f| parser::parse_time(f.time)) {
                Some(None) => Some("the time does not parse".to_owned()),
                Some(Some(time)) => file_time.and_then(|name_time| {
                    let hours = (time - name_time).abs() / 3600;
                    (hours >= 24).then(|| {
                        format!("the time is {hours} hours from the time in the file's name")
                    })
                }),
                None => None,
            },
            Check::Downloads => fields.and_then(|f| {
                let a = f.after_uri;
                let sent = parser::parse_count(a.bytes_sent).filter(|_| a.bytes_sent != b"-")?;
                let size = parser::parse_count(a.object_size).filter(|_| a.object_size != b"-")?;
                (a.status == 200 && sent < size)
                    .then(|| format!("a 200 sent {sent} bytes of an object of {size}"))
            }),
        };
        if let Some(what) = problem {
            found.push((check, what));
        }
    }
    found
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

/// Runs the checks on the log files not validated yet by their current versions.
pub fn validate(
    store: &mut Store,
    options: &ValidateOptions,
    stop: &StopFlag,
) -> anyhow::Result<ValidateReport> {
    let checks: Vec<Check> = if options.checks.is_empty() {
        Check::ALL.to_vec()
    } else {
        options.checks.clone()
    };
    let done = store.validated()?;
    let mut report = ValidateReport::default();
    let mut todo: Vec<(LogFile, Vec<Check>)> = Vec::new();
    let found = logfiles::discover_all(&options.log_dirs)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "o b [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - ID REST.GET.OBJECT k \"GET /k HTTP/1.1\" 200 - 5 5 1 1 \"-\" \"curl\" - host= SigV4 ECDHE AuthHeader b.s3.amazonaws.com TLSv1.2 - -";

    fn problems(line: &str) -> Vec<Check> {
        check_line(
            line.as_bytes(),
            get_ip(head(line.as_bytes())),
            &Check::ALL,
            time_of_name("2020-01-01-05-00-00-ABC"),
        )
        .into_iter()
        .map(|(check, _)| check)
        .collect()
    }

    #[test]
    fn a_good_line_passes_every_check() {
        assert_eq!(count_fields(GOOD.as_bytes()), Some(26));
        assert!(problems(GOOD).is_empty(), "{:?}", problems(GOOD));
    }

    #[test]
    fn each_check_catches_its_own_problem_only() {
        let cases = [
            (
                GOOD.replace("/k HTTP", "/k?q=\" 404 x HTTP"),
                Check::RequestLine,
            ),
            (
                GOOD.replace("\"-\" \"curl\"", "\"r\" \"x\" \"curl\""),
                Check::Status,
            ),
            (GOOD.replace("192.0.2.1", "-"), Check::RemoteIp),
            (GOOD.replace("01/Jan/2020", "03/Jan/2020"), Check::Timestamp),
            (GOOD.replace("200 - 5 5", "200 - 4 5"), Check::Downloads),
            (
                GOOD.replace(
                    " - host= SigV4 ECDHE AuthHeader b.s3.amazonaws.com TLSv1.2 - -",
                    "",
                ),
                Check::Fields,
            ),
        ];
        for (line, check) in cases {
            assert_eq!(problems(&line), vec![check], "{line}");
        }
    }

    #[test]
    fn names_of_checks() {
        for check in Check::ALL {
            assert_eq!(Check::from_name(check.name()), Ok(check));
        }
        assert!(
            Check::from_name("nope")
                .unwrap_err()
                .contains("request-line")
        );
    }
}
