//! Planning and writing batches: which files are new, how they are grouped, and how one parsed
//! batch lands in the store in one transaction.

use std::collections::HashSet;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use std::sync::mpsc::{Receiver, SyncSender};

use super::ExtractReport;
use super::parse::{ParsedChunk, parse_chunk};
use crate::bins::{self, BinRequest};
use crate::clients::ClientRules;
use crate::logs::files::Opened;
use crate::logs::{Exclusion, FailedFile, Found, LogFile};
use crate::privacy::Salt;
use crate::store::{
    Batch, FileRecord, ObjectId, REJECTS_KEPT_PER_FILE, RejectRecord, RequesterId, Store,
};

/// How many rejected lines the end-of-run summary shows in full.
const REJECTS_SHOWN: usize = 5;
/// Above this many cached object ids or requester ids a cache is emptied (the store still has
/// them), so that memory stays bounded whatever the number of objects and requesters.
const ID_CACHE_LIMIT: usize = 500_000;
/// Pending requests are encoded into bins and written once this many are waiting.
const FLUSH_REQUESTS: usize = 1_000_000;

/// The files to extract now, after skipping what the store already has.
pub(super) struct Plan {
    pub files: Vec<LogFile>,
    pub bytes: u64,
}

/// Keeps the log files found that are not extracted yet.
pub(super) fn plan(
    found: &Found,
    store: &Store,
    report: &mut ExtractReport,
) -> anyhow::Result<Plan> {
    let processed = store.processed_files()?;
    report.ignored = found.ignored;
    report.found = found.files.len() as u64;
    report.failed = FailedFile::all(found.unreadable.clone());
    report.notes.clone_from(&found.notes);
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for file in &found.files {
        let identity = file.identity();
        if !seen.insert(identity.clone()) {
            // the same log under another path, link or source: counted once
            report.duplicates.push(file.to_string());
            continue;
        }
        match processed.get(&identity) {
            None => files.push(file.clone()),
            Some(&(size, gzip)) if size == file.size || gzip != file.is_gzip() => {
                report.already_extracted += 1;
            }
            Some(_) => report.changed.push(file.to_string()),
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

/// Ids of objects, requesters and clients already resolved in this run.
pub(super) struct Ids<'a> {
    salt: &'a Salt,
    exclusion: &'a Exclusion,
    rules: &'a ClientRules,
    objects: FxHashMap<Vec<u8>, ObjectId>,
    /// Remote IP as written to requester id, `None` when excluded.
    requesters: FxHashMap<Vec<u8>, Option<RequesterId>>,
    /// User agent as written to client id: each distinct agent is classified once.
    agents: FxHashMap<Vec<u8>, u32>,
}

impl<'a> Ids<'a> {
    pub(super) fn new(salt: &'a Salt, exclusion: &'a Exclusion, rules: &'a ClientRules) -> Self {
        Self {
            salt,
            exclusion,
            rules,
            objects: FxHashMap::default(),
            requesters: FxHashMap::default(),
            agents: FxHashMap::default(),
        }
    }

    /// Forgets every id: after a rolled-back batch, ids it gave may belong to others.
    pub(super) fn forget(&mut self) {
        self.objects.clear();
        self.requesters.clear();
        self.agents.clear();
    }

    fn client(&mut self, batch: &Batch<'_>, agent: &[u8]) -> anyhow::Result<u32> {
        if let Some(&id) = self.agents.get(agent) {
            return Ok(id);
        }
        let id = batch.client_id(&self.rules.classify_bytes(agent))?;
        if self.agents.len() >= ID_CACHE_LIMIT {
            self.agents.clear();
        }
        self.agents.insert(agent.to_vec(), id);
        Ok(id)
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
        if self.requesters.len() >= ID_CACHE_LIMIT {
            self.requesters.clear();
        }
        self.requesters.insert(raw.to_vec(), id);
        Ok(id)
    }

    fn object(&mut self, batch: &mut Batch<'_>, key: &[u8]) -> anyhow::Result<ObjectId> {
        if let Some(&id) = self.objects.get(key) {
            return Ok(id);
        }
        if self.objects.len() >= ID_CACHE_LIMIT {
            self.objects.clear();
        }
        let id = batch.object_id(key)?;
        self.objects.insert(key.to_vec(), id);
        Ok(id)
    }
}

/// What a parsing thread sends the writer about one file of the batch.
pub(super) enum Piece {
    /// The requests of the next chunk of file number `file` (in the batch's order).
    Chunk { file: usize, parsed: ParsedChunk },
    /// File number `file` was read to its end.
    End {
        file: usize,
        /// Bytes after its last complete gzip member were ignored.
        trailing: bool,
    },
    /// File number `file` could not be read (further).
    Failed { file: usize, error: String },
}

/// Where parsing threads send their pieces.
pub(super) type PieceSender = SyncSender<Piece>;

/// Opens one local file and streams it to the writer (see [`stream_opened`]).
pub(super) fn stream_file(index: usize, file: &LogFile, sender: &PieceSender) {
    match file.open() {
        Ok(opened) => stream_opened(index, opened, sender),
        Err(error) => {
            let _ = sender.send(Piece::Failed {
                file: index,
                error: error.to_string(),
            });
        }
    }
}

/// Reads one opened file chunk by chunk, parsing each, and sends the pieces to the writer;
/// stops early when the writer is gone.
pub(super) fn stream_opened(index: usize, opened: Opened, sender: &PieceSender) {
    let failed = |error: std::io::Error| Piece::Failed {
        file: index,
        error: error.to_string(),
    };
    let (mut chunks, trailing) = opened;
    loop {
        let piece = match chunks.next_chunk() {
            Ok(Some(chunk)) => Piece::Chunk {
                file: index,
                parsed: parse_chunk(&chunk),
            },
            Ok(None) => Piece::End {
                file: index,
                trailing: trailing.load(std::sync::atomic::Ordering::Relaxed),
            },
            Err(error) => failed(error),
        };
        let last = !matches!(piece, Piece::Chunk { .. });
        if sender.send(piece).is_err() || last {
            return;
        }
    }
}

/// What was extracted: files, their bytes and lines, requests kept, excluded, lines rejected.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    /// Log files.
    pub files: u64,
    /// Bytes of log files.
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// GET-2xx requests kept.
    pub requests: u64,
    /// GET-2xx requests left out by exclusion.
    pub excluded: u64,
    /// Lines that could not be read.
    pub rejected: u64,
}

impl Counts {
    /// Adds other counts.
    pub(crate) fn add(&mut self, other: &Counts) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.lines += other.lines;
        self.requests += other.requests;
        self.excluded += other.excluded;
        self.rejected += other.rejected;
    }

    /// The counts of one extracted file.
    fn of(record: &FileRecord) -> Counts {
        Counts {
            files: 1,
            bytes: record.size,
            lines: record.lines,
            requests: record.requests,
            excluded: record.excluded,
            rejected: record.rejected,
        }
    }
}

/// What one batch added, merged into the report once it is committed.
#[derive(Debug, Default)]
pub(super) struct BatchCounts {
    /// The files extracted.
    pub counts: Counts,
    /// The first rejected lines of the batch, IPs masked.
    pub first_rejects: Vec<RejectRecord>,
    /// Files that failed before any of their requests was written: nothing to undo.
    pub failed: Vec<FailedFile>,
    /// What was read with a caveat (trailing bytes of a gzip file).
    pub warnings: Vec<String>,
}

/// How writing a batch ended.
pub(super) enum Written {
    /// Committed.
    Committed(BatchCounts),
    /// Some files failed after part of their requests was written: nothing was committed; these
    /// files (by number in the batch) are to be left out, and the batch written again.
    RolledBack(Vec<(usize, String)>),
}

/// A file's record while its chunks arrive.
struct Progressing {
    record: FileRecord,
    rejects_kept: usize,
    chunks: u32,
}

/// Requests waiting to be encoded into bins, flushed into the open transaction in parts.
#[derive(Default)]
struct PendingBins {
    by_object: FxHashMap<ObjectId, Vec<BinRequest>>,
    requests: usize,
}

impl PendingBins {
    /// Encodes and adds every pending bin (objects in id order); the next part starts empty.
    fn flush(&mut self, batch: &mut Batch<'_>) -> anyhow::Result<()> {
        if self.requests == 0 {
            return Ok(());
        }
        let mut objects: Vec<_> = std::mem::take(&mut self.by_object).into_iter().collect();
        objects.sort_unstable_by_key(|(id, _)| *id);
        for (object, mut requests) in objects {
            batch.add_bin(object, &bins::encode(&mut requests))?;
        }
        self.requests = 0;
        batch.start_new_part();
        Ok(())
    }
}

/// Writes the pieces of one batch's files into one transaction, and commits it unless a file
/// failed after part of it was written. `before_commit` runs just before the commit.
pub(super) fn write_batch(
    store: &Store,
    ids: &mut Ids<'_>,
    files: &[&LogFile],
    pieces: Receiver<Piece>,
    before_commit: impl FnOnce(),
) -> anyhow::Result<Written> {
    let mut batch = store.begin_batch()?;
    let now = chrono::Utc::now().timestamp();
    let mut pending = PendingBins::default();
    let mut counts = BatchCounts::default();
    let mut progressing: FxHashMap<usize, Progressing> = FxHashMap::default();
    let mut undo: Vec<(usize, String)> = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Chunk { file, parsed } => {
                let state = progressing.entry(file).or_insert_with(|| Progressing {
                    record: empty_record(files[file]),
                    rejects_kept: 0,
                    chunks: 0,
                });
                state.chunks += 1;
                write_chunk(
                    &mut batch,
                    ids,
                    files[file],
                    parsed,
                    state,
                    &mut pending,
                    &mut counts,
                )?;
                if pending.requests >= FLUSH_REQUESTS {
                    pending.flush(&mut batch)?;
                }
            }
            Piece::End { file, trailing } => {
                if trailing {
                    counts.warnings.push(format!(
                        "{}: bytes after its last complete gzip member were ignored (as gzip does)",
                        files[file]
                    ));
                }
                let record = progressing.remove(&file).map_or_else(
                    // an empty file: no chunk at all
                    || empty_record(files[file]),
                    |state| state.record,
                );
                batch.add_file(&record, now)?;
                counts.counts.add(&Counts::of(&record));
            }
            Piece::Failed { file, error } => {
                if progressing.remove(&file).is_some() {
                    undo.push((file, error));
                } else {
                    counts.failed.push(FailedFile {
                        path: files[file].to_string(),
                        error,
                    });
                }
            }
        }
    }
    if !undo.is_empty() {
        // dropping the batch rolls its transaction back
        return Ok(Written::RolledBack(undo));
    }
    pending.flush(&mut batch)?;
    before_commit();
    batch.commit()?;
    Ok(Written::Committed(counts))
}

/// The record of a file before any of its lines is counted.
fn empty_record(file: &LogFile) -> FileRecord {
    FileRecord {
        identity: file.identity(),
        size: file.size,
        gzip: file.is_gzip(),
        lines: 0,
        requests: 0,
        excluded: 0,
        rejected: 0,
    }
}

/// Adds one chunk's objects, requesters, requests and rejected lines to the open batch.
fn write_chunk(
    batch: &mut Batch<'_>,
    ids: &mut Ids<'_>,
    file: &LogFile,
    parsed: ParsedChunk,
    state: &mut Progressing,
    pending: &mut PendingBins,
    counts: &mut BatchCounts,
) -> anyhow::Result<()> {
    let mut object_ids = Vec::with_capacity(parsed.keys.len());
    for key in &parsed.keys {
        object_ids.push(ids.object(batch, key)?);
    }
    let mut requester_ids = Vec::with_capacity(parsed.ips.len());
    for ip in &parsed.ips {
        requester_ids.push(ids.requester(batch, ip)?);
    }
    let mut client_ids = Vec::with_capacity(parsed.agents.len());
    for agent in &parsed.agents {
        client_ids.push(ids.client(batch, agent)?);
    }
    let record = &mut state.record;
    record.lines += parsed.lines;
    record.rejected += parsed.rejected;
    for request in &parsed.requests {
        let Some(requester) = requester_ids[request.ip as usize] else {
            record.excluded += 1;
            continue;
        };
        record.requests += 1;
        pending.requests += 1;
        pending
            .by_object
            .entry(object_ids[request.key as usize])
            .or_default()
            .push(BinRequest {
                time: request.time,
                requester: requester.0,
                client: client_ids[request.agent as usize],
                status: request.status,
                bytes_sent: request.bytes_sent,
            });
    }
    for (line, reason, excerpt) in parsed.rejects {
        if state.rejects_kept >= REJECTS_KEPT_PER_FILE {
            break;
        }
        state.rejects_kept += 1;
        let reject = RejectRecord {
            file: file.relative.clone(),
            line,
            reason,
            excerpt,
        };
        batch.add_reject(&reject)?;
        if counts.first_rejects.len() < REJECTS_SHOWN {
            counts.first_rejects.push(reject);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> LogFile {
        LogFile {
            place: crate::logs::LogPlace::Local(name.into()),
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
