//! The extract stage: raw log files in, per-object bins out.
//!
//! New log files are grouped into batches. Worker threads (rayon) read and parse the files of one
//! batch while the writer commits the previous one; a batch's bins, new objects, new requesters and
//! file records land in one transaction. A stop request is honoured between batches.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rayon::prelude::*;
use regex::Regex;
use rustc_hash::FxHashMap;

use crate::Outcome;
use crate::bins::{self, BinRequest};
use crate::interrupt::StopFlag;
use crate::logfiles::{self, LogFile};
use crate::parser::{self, Line};
use crate::privacy::{self, Salt};
use crate::progress::Progress;
use crate::store::{FileRecord, REJECTS_KEPT_PER_FILE, RejectRecord, Store};

/// How many rejected lines the end-of-run summary shows in full.
const REJECTS_SHOWN: usize = 5;
/// Longest excerpt of a rejected line kept, in characters.
const EXCERPT_CHARS: usize = 400;
/// File name of the rejects report inside the cache directory.
pub const REJECTS_REPORT: &str = "rejects.tsv";
/// Above this many cached object ids the cache is emptied (the store still has them).
const OBJECT_CACHE_LIMIT: usize = 4_000_000;
/// Testing only: milliseconds to pause before writing each batch, so that tests can stop or kill
/// an extraction with a batch in flight.
pub const TEST_PAUSE_ENV: &str = "S3TALLY_TEST_BATCH_PAUSE_MS";

/// Requesters to leave out: the archive's own machines.
#[derive(Debug, Clone, Default)]
pub struct Exclusion {
    /// Addresses and ranges.
    pub networks: Vec<IpNet>,
    /// A pattern matched against the IP as written in the log.
    pub pattern: Option<Regex>,
}

impl Exclusion {
    /// Whether a requester (its IP as written, and parsed) is left out.
    pub fn excludes(&self, raw: &str, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.networks.iter().any(|net| net.contains(&ip)))
            || self.pattern.as_ref().is_some_and(|re| re.is_match(raw))
    }
}

/// Parses an `--exclude-ip` value: an address (`192.0.2.7`, `2001:db8::1`) or a range (`192.0.2.0/24`).
pub fn parse_ip_or_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is neither an IP address nor a CIDR range"))
}

/// What the extract stage needs.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Directories to search for log files.
    pub log_dirs: Vec<PathBuf>,
    /// Requesters to leave out.
    pub exclusion: Exclusion,
    /// A batch closes once it holds this many bytes of log files...
    pub batch_bytes: u64,
    /// ...or this many files.
    pub batch_files: usize,
}

/// A log file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFile {
    /// Where it is.
    pub path: PathBuf,
    /// What went wrong.
    pub error: String,
}

impl FailedFile {
    /// Failed files from (path, error) pairs.
    pub fn all(unreadable: Vec<(PathBuf, String)>) -> Vec<FailedFile> {
        unreadable
            .into_iter()
            .map(|(path, error)| FailedFile { path, error })
            .collect()
    }
}

/// What the extract stage did.
#[derive(Debug, Default)]
pub struct ExtractReport {
    /// Log files found.
    pub found: u64,
    /// Other files, ignored.
    pub ignored: u64,
    /// Files skipped because they were extracted before.
    pub already_extracted: u64,
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

impl ExtractReport {
    /// Done, failed (some file unreadable) or stopped early.
    pub fn outcome(&self) -> Outcome {
        if self.stopped {
            Outcome::Stopped
        } else if !self.failed.is_empty() {
            Outcome::Failed
        } else {
            Outcome::Done
        }
    }

    /// A short human summary, one item per line.
    pub fn summary(&self) -> Vec<String> {
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
        lines
    }
}

/// One file's requests, before the store's ids are known.
#[derive(Debug, Default)]
pub struct ParsedFile {
    /// Distinct object keys, indexed by `LocalRequest::key`.
    pub keys: Vec<Vec<u8>>,
    /// Distinct remote IPs as written, indexed by `LocalRequest::ip`.
    pub ips: Vec<Vec<u8>>,
    /// The GET-2xx requests.
    pub requests: Vec<LocalRequest>,
    /// Lines read.
    pub lines: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// The first rejected lines: line number, reason, masked excerpt.
    pub rejects: Vec<(u64, String, String)>,
}

/// A request whose key and IP are indexes into its file's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRequest {
    /// Index into `ParsedFile::keys`.
    pub key: u32,
    /// Index into `ParsedFile::ips`.
    pub ip: u32,
    /// Seconds since the Unix epoch, UTC.
    pub time: i64,
    /// HTTP status.
    pub status: u16,
    /// Bytes sent.
    pub bytes_sent: u64,
}

/// Parses the content of one log file.
pub fn parse_log(data: &[u8]) -> ParsedFile {
    let mut parsed = ParsedFile::default();
    let mut keys: FxHashMap<&[u8], u32> = FxHashMap::default();
    let mut ips: FxHashMap<&[u8], u32> = FxHashMap::default();
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if data.is_empty() {
        return parsed;
    }
    for (index, line) in body.split(|&byte| byte == b'\n').enumerate() {
        parsed.lines += 1;
        match parser::parse_line(line) {
            Line::Get(request) => {
                let next = keys.len() as u32;
                let key = *keys.entry(request.key).or_insert(next);
                let next = ips.len() as u32;
                let ip = *ips.entry(request.remote_ip).or_insert(next);
                parsed.requests.push(LocalRequest {
                    key,
                    ip,
                    time: request.time,
                    status: request.status,
                    bytes_sent: request.bytes_sent,
                });
            }
            Line::Skipped => {}
            Line::Rejected(reason) => {
                parsed.rejected += 1;
                if parsed.rejects.len() < REJECTS_KEPT_PER_FILE {
                    parsed
                        .rejects
                        .push((index as u64 + 1, reason.to_string(), excerpt(line)));
                }
            }
        }
    }
    parsed.keys = invert(keys);
    parsed.ips = invert(ips);
    parsed
}

fn invert(interned: FxHashMap<&[u8], u32>) -> Vec<Vec<u8>> {
    let mut table = vec![Vec::new(); interned.len()];
    for (bytes, index) in interned {
        table[index as usize] = bytes.to_vec();
    }
    table
}

/// A rejected line as it may be shown: valid UTF-8, IPs masked, shortened. The remote IP field
/// (the one after the time) is masked whatever it holds, even a truncated address.
pub fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let short: String = text.chars().take(EXCERPT_CHARS).collect();
    let short = match short.split_once("] ") {
        Some((head, rest)) => {
            let rest = rest.trim_start_matches(' ');
            let field_end = rest.find(' ').unwrap_or(rest.len());
            format!("{head}] <ip>{}", &rest[field_end..])
        }
        None => short,
    };
    let mut masked = privacy::mask_ips(&short).into_owned();
    if text.chars().count() > EXCERPT_CHARS {
        masked.push('…');
    }
    masked
}

/// The files to extract now, after skipping what the store already has.
struct Plan {
    files: Vec<LogFile>,
    bytes: u64,
}

fn plan(
    options: &ExtractOptions,
    store: &Store,
    report: &mut ExtractReport,
) -> anyhow::Result<Plan> {
    let processed = store.processed_files()?;
    let found = logfiles::discover_all(&options.log_dirs)?;
    report.ignored = found.ignored;
    report.found = found.files.len() as u64;
    report.failed = FailedFile::all(found.unreadable);
    let mut seen = std::collections::HashSet::new();
    let mut files = Vec::new();
    for file in found.files {
        if !seen.insert(file.identity().to_owned()) {
            report.already_extracted += 1;
            continue;
        }
        match processed.get(file.identity()) {
            None => files.push(file),
            Some(&(size, gzip)) if size == file.size || gzip != file.is_gzip() => {
                report.already_extracted += 1;
            }
            Some(_) => report.changed.push(file.relative.clone()),
        }
    }
    let bytes = files.iter().map(|file| file.size).sum();
    Ok(Plan { files, bytes })
}

/// Splits files into batches of at most `max_bytes` (a larger file is a batch alone) and `max_files`.
fn batches(files: &[LogFile], max_bytes: u64, max_files: usize) -> Vec<&[LogFile]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, file) in files.iter().enumerate() {
        let count = index - start;
        if count > 0 && (bytes + file.size > max_bytes || count >= max_files) {
            batches.push(&files[start..index]);
            start = index;
            bytes = 0;
        }
        bytes += file.size;
    }
    if start < files.len() {
        batches.push(&files[start..]);
    }
    batches
}

/// Ids of objects and requesters already resolved in this run.
struct Ids<'a> {
    salt: &'a Salt,
    exclusion: &'a Exclusion,
    objects: FxHashMap<Vec<u8>, i64>,
    /// Remote IP as written to requester id, `None` when excluded.
    requesters: FxHashMap<Vec<u8>, Option<i64>>,
}

impl Ids<'_> {
    fn requester(
        &mut self,
        batch: &crate::store::Batch<'_>,
        raw: &[u8],
    ) -> anyhow::Result<Option<i64>> {
        if let Some(&id) = self.requesters.get(raw) {
            return Ok(id);
        }
        let written = String::from_utf8_lossy(raw);
        let ip = written.parse::<IpAddr>().ok();
        let id = if self.exclusion.excludes(&written, ip) {
            None
        } else {
            // the canonical form, so that one address written two ways is one requester
            let canonical = ip.map_or_else(|| written.to_string(), |ip| ip.to_string());
            let index = self.salt.requester_index(canonical.as_bytes());
            Some(batch.requester_id(&index, &canonical)?)
        };
        self.requesters.insert(raw.to_vec(), id);
        Ok(id)
    }

    fn object(&mut self, batch: &mut crate::store::Batch<'_>, key: &[u8]) -> anyhow::Result<i64> {
        if let Some(&id) = self.objects.get(key) {
            return Ok(id);
        }
        if self.objects.len() >= OBJECT_CACHE_LIMIT {
            self.objects.clear();
        }
        let id = batch.object_id(key)?;
        self.objects.insert(key.to_vec(), id);
        Ok(id)
    }
}

/// What one committed batch added.
#[derive(Debug, Default)]
struct BatchCounts {
    files: u64,
    bytes: u64,
    requests: u64,
}

/// Writes one parsed batch in one transaction.
fn write_batch(
    store: &mut Store,
    ids: &mut Ids<'_>,
    parsed: Vec<(&LogFile, std::io::Result<ParsedFile>)>,
    report: &mut ExtractReport,
) -> anyhow::Result<BatchCounts> {
    let mut batch = store.begin_batch()?;
    let now = chrono::Utc::now().timestamp();
    let mut by_object: FxHashMap<i64, Vec<BinRequest>> = FxHashMap::default();
    let mut counts = BatchCounts::default();
    for (file, result) in parsed {
        let content = match result {
            Ok(content) => content,
            Err(error) => {
                report.failed.push(FailedFile {
                    path: file.path.clone(),
                    error: error.to_string(),
                });
                continue;
            }
        };
        let mut object_ids = Vec::with_capacity(content.keys.len());
        for key in &content.keys {
            object_ids.push(ids.object(&mut batch, key)?);
        }
        let mut requester_ids = Vec::with_capacity(content.ips.len());
        for ip in &content.ips {
            requester_ids.push(ids.requester(&batch, ip)?);
        }
        let mut record = FileRecord {
            path: file.identity().to_owned(),
            size: file.size,
            gzip: file.is_gzip(),
            lines: content.lines,
            requests: 0,
            excluded: 0,
            rejected: content.rejected,
        };
        for request in &content.requests {
            let Some(requester) = requester_ids[request.ip as usize] else {
                record.excluded += 1;
                continue;
            };
            record.requests += 1;
            by_object
                .entry(object_ids[request.key as usize])
                .or_default()
                .push(BinRequest {
                    time: request.time,
                    requester: requester as u64,
                    status: request.status,
                    bytes_sent: request.bytes_sent,
                });
        }
        for (line, reason, excerpt) in content.rejects {
            let reject = RejectRecord {
                file: file.relative.clone(),
                line,
                reason,
                excerpt,
            };
            batch.add_reject(&reject)?;
            if report.first_rejects.len() < REJECTS_SHOWN {
                report.first_rejects.push(reject);
            }
        }
        batch.add_file(&record, now)?;
        counts.files += 1;
        counts.bytes += file.size;
        counts.requests += record.requests;
        report.lines += record.lines;
        report.requests += record.requests;
        report.excluded += record.excluded;
        report.rejected += record.rejected;
    }
    let mut objects: Vec<_> = by_object.into_iter().collect();
    objects.sort_unstable_by_key(|(id, _)| *id);
    for (object_id, mut requests) in objects {
        let data = bins::encode(&mut requests);
        batch.add_bin(object_id, &data)?;
    }
    batch.commit()?;
    report.extracted += counts.files;
    report.bytes += counts.bytes;
    report.batches += 1;
    Ok(counts)
}

/// Runs the extract stage on an open store (the caller holds the writer lock).
pub fn extract(
    store: &mut Store,
    cache_dir: &std::path::Path,
    salt: &Salt,
    options: &ExtractOptions,
    stop: &StopFlag,
) -> anyhow::Result<ExtractReport> {
    let start = Instant::now();
    let mut report = ExtractReport::default();
    store.check_salt(&salt.fingerprint())?;
    let plan = plan(options, store, &mut report)?;
    let batches = batches(&plan.files, options.batch_bytes, options.batch_files);
    let mut progress = Progress::new("extract", plan.files.len() as u64, plan.bytes);
    let mut ids = Ids {
        salt,
        exclusion: &options.exclusion,
        objects: FxHashMap::default(),
        requesters: FxHashMap::default(),
    };

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
                    .map(|file| (file, file.read().map(|data| parse_log(&data))))
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
            let counts = write_batch(store, &mut ids, parsed, &mut report)?;
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
    write_rejects_report(store, cache_dir)?;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Rewrites `rejects.tsv` in the cache from the rejected lines kept in the store.
fn write_rejects_report(store: &Store, cache_dir: &std::path::Path) -> anyhow::Result<()> {
    let rejects = store.rejects()?;
    let path = cache_dir.join(REJECTS_REPORT);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> LogFile {
        LogFile {
            path: name.into(),
            relative: name.into(),
            size,
        }
    }

    #[test]
    fn batches_close_on_bytes_or_files() {
        let files: Vec<_> = [5, 5, 20, 1, 1, 1].iter().map(|&s| file("f", s)).collect();
        let sizes = |b: Vec<&[LogFile]>| b.iter().map(|b| b.len()).collect::<Vec<_>>();
        assert_eq!(sizes(batches(&files, 10, 100)), [2, 1, 3]);
        assert_eq!(sizes(batches(&files, 100, 2)), [2, 2, 2]);
        assert!(batches(&[], 10, 10).is_empty());
    }

    #[test]
    fn exclusion_by_network_and_pattern() {
        let exclusion = Exclusion {
            networks: vec![
                parse_ip_or_network("192.0.2.0/24").unwrap(),
                parse_ip_or_network("2001:db8::1").unwrap(),
            ],
            pattern: Some(Regex::new(r"^198\.51\.100\.").unwrap()),
        };
        let check = |text: &str| exclusion.excludes(text, text.parse().ok());
        assert!(check("192.0.2.200"));
        assert!(check("2001:db8::1"));
        assert!(!check("2001:db8::2"));
        assert!(check("198.51.100.9"));
        assert!(!check("203.0.113.1"));
        assert!(parse_ip_or_network("not-an-ip").is_err());
    }

    #[test]
    fn parse_log_interns_keys_and_counts_lines() {
        let line = |key: &str, ip: &str| {
            format!(
                "o b [01/Jan/2020:00:00:00 +0000] {ip} - ID REST.GET.OBJECT {key} \"GET /{key} HTTP/1.1\" 200 - 5 5 1 1 \"-\" \"-\" -\n"
            )
        };
        let text = format!(
            "{}{}{}garbage 192.0.2.9\n\n{}",
            line("a", "192.0.2.1"),
            line("b", "192.0.2.1"),
            line("a", "192.0.2.2"),
            line("a", "192.0.2.1").trim_end()
        );
        let parsed = parse_log(text.as_bytes());
        assert_eq!(parsed.lines, 6);
        assert_eq!(parsed.requests.len(), 4);
        assert_eq!(parsed.keys.len(), 2);
        assert_eq!(parsed.ips.len(), 2);
        assert_eq!(parsed.rejected, 1);
        let (line_number, _, excerpt) = &parsed.rejects[0];
        assert_eq!(*line_number, 4);
        assert_eq!(excerpt, "garbage <ip>");
        assert_eq!(parse_log(b"").lines, 0);
        // a truncated remote IP is masked too
        let cut = parse_log(b"o b [01/Jan/2020:00:00:00 +0000] 2001:db8:18f4");
        assert_eq!(cut.rejects[0].2, "o b [01/Jan/2020:00:00:00 +0000] <ip>");
    }
}
