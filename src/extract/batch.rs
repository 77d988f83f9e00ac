//! Planning and writing batches: which files are new, how they are grouped, and how one parsed
//! batch lands in the store in one transaction.

use std::collections::HashSet;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::ExtractReport;
use super::parse::ParsedFile;
use crate::bins::{self, BinRequest};
use crate::logs::{Exclusion, FailedFile, LogFile, discover_all};
use crate::privacy::Salt;
use crate::store::{Batch, FileRecord, ObjectId, RejectRecord, RequesterId, Store};

/// How many rejected lines the end-of-run summary shows in full.
const REJECTS_SHOWN: usize = 5;
/// Above this many cached object ids the cache is emptied (the store still has them).
const OBJECT_CACHE_LIMIT: usize = 4_000_000;

/// The files to extract now, after skipping what the store already has.
pub(super) struct Plan {
    pub files: Vec<LogFile>,
    pub bytes: u64,
}

/// Finds the log files under the directories and keeps those not extracted yet.
pub(super) fn plan(
    log_dirs: &[std::path::PathBuf],
    store: &Store,
    report: &mut ExtractReport,
) -> anyhow::Result<Plan> {
    let processed = store.processed_files()?;
    let found = discover_all(log_dirs)?;
    report.ignored = found.ignored;
    report.found = found.files.len() as u64;
    report.failed = FailedFile::all(found.unreadable);
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for file in found.files {
        let identity = file.identity();
        if !seen.insert(identity.clone()) {
            // the same log under another path or link: counted once
            report.duplicates.push(file.path.clone());
            continue;
        }
        match processed.get(&identity) {
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
pub(super) fn batches(files: &[LogFile], max_bytes: u64, max_files: usize) -> Vec<&[LogFile]> {
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
pub(super) struct Ids<'a> {
    salt: &'a Salt,
    exclusion: &'a Exclusion,
    objects: FxHashMap<Vec<u8>, ObjectId>,
    /// Remote IP as written to requester id, `None` when excluded.
    requesters: FxHashMap<Vec<u8>, Option<RequesterId>>,
}

impl<'a> Ids<'a> {
    pub(super) fn new(salt: &'a Salt, exclusion: &'a Exclusion) -> Self {
        Self {
            salt,
            exclusion,
            objects: FxHashMap::default(),
            requesters: FxHashMap::default(),
        }
    }

    fn requester(&mut self, batch: &Batch<'_>, raw: &[u8]) -> anyhow::Result<Option<RequesterId>> {
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

    fn object(&mut self, batch: &mut Batch<'_>, key: &[u8]) -> anyhow::Result<ObjectId> {
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
pub(super) struct BatchCounts {
    pub files: u64,
    pub bytes: u64,
    pub requests: u64,
}

/// Writes one parsed batch in one transaction.
pub(super) fn write_batch(
    store: &Store,
    ids: &mut Ids<'_>,
    parsed: Vec<(&LogFile, std::io::Result<ParsedFile>)>,
    report: &mut ExtractReport,
) -> anyhow::Result<BatchCounts> {
    let mut batch = store.begin_batch()?;
    let now = chrono::Utc::now().timestamp();
    let mut by_object: FxHashMap<ObjectId, Vec<BinRequest>> = FxHashMap::default();
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
            identity: file.identity(),
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
                    requester: requester.0,
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
    for (object, mut requests) in objects {
        let data = bins::encode(&mut requests);
        batch.add_bin(object, &data)?;
    }
    batch.commit()?;
    report.extracted += counts.files;
    report.bytes += counts.bytes;
    report.batches += 1;
    Ok(counts)
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
}
