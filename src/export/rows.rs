//! The rows of an export, gathered from the bins of a range of batches by partition (a day or a
//! month): at most a given number held in memory, the rest in spill files in the cache, so that
//! memory stays bounded and a partition gets one file per range unless it alone holds more rows
//! than memory may (then one file per that many rows).
//!
//! A request of a key the dataset map shares between datasets is one row per dataset (each
//! counts it); `in_archive` marks the one the archive-wide figures count, as in the summaries.
//! Requests of excluded requesters and of datasets not picked are left out, as in the summaries.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::bins::BinRequest;
use crate::interrupt::StopFlag;
use crate::progress::{Amount, Progress};
use crate::store::{BatchNumber, Store};
use crate::summaries::excluded::Counted;
use crate::summaries::grouping::Grouping;

/// How the files are partitioned: `year=/month=/day=` or `year=/month=`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum Partition {
    /// One folder per day.
    Day,
    /// One folder per month.
    Month,
}

impl Partition {
    /// The partition of a day (days since 1970-01-01): the day itself, or the first of its month.
    pub(crate) fn of(self, day: i64) -> i64 {
        match self {
            Partition::Day => day,
            Partition::Month => {
                let date = date_of(day);
                day - i64::from(chrono::Datelike::day0(&date))
            }
        }
    }

    /// The folder of a partition: `year=2024/month=05/day=02` or `year=2024/month=05`.
    pub(crate) fn folder(self, start: i64) -> String {
        let date = date_of(start);
        match self {
            Partition::Day => date.format("year=%Y/month=%m/day=%d").to_string(),
            Partition::Month => date.format("year=%Y/month=%m").to_string(),
        }
    }
}

/// The date of a day number (days outside chrono's range clamp to its ends: bins hold real times).
fn date_of(day: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .unwrap_or_default()
        .date_naive()
}

/// Where one row's request is counted: a dataset, the asset in it, the object key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RowPlace {
    /// The dataset.
    pub dataset: std::sync::Arc<str>,
    /// The asset path in it, as the summaries write it.
    pub asset: String,
    /// The object key (invalid UTF-8 replaced).
    pub object_key: String,
    /// The archive-wide figures count the request through this dataset.
    pub in_archive: bool,
}

/// The rows of one partition, a column each.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    /// Seconds since the Unix epoch, UTC.
    pub time: Vec<i64>,
    /// Index into the places.
    pub place: Vec<u32>,
    /// The store's requester id.
    pub requester: Vec<u64>,
    /// Bytes sent.
    pub bytes_sent: Vec<u64>,
    /// HTTP status.
    pub status: Vec<u16>,
}

impl Rows {
    /// How many rows.
    pub(crate) fn len(&self) -> usize {
        self.time.len()
    }

    fn push(&mut self, request: &BinRequest, place: u32) {
        self.time.push(request.time);
        self.place.push(place);
        self.requester.push(request.requester);
        self.bytes_sent.push(request.bytes_sent);
        self.status.push(request.status);
    }
}

/// How the gathering ended.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    /// Rows handed to the writer.
    pub rows: u64,
    /// Rows that went through the spill files (more than `rows_in_memory` were held).
    pub spilled: u64,
    /// A stop was asked: the range is not complete.
    pub stopped: bool,
}

/// Bytes of one row in a spill file: time, place, requester, bytes sent, status.
const SPILLED_ROW: usize = 8 + 4 + 8 + 8 + 2;

/// Rows held beyond memory, one file per partition in a private folder of the cache, removed
/// when dropped.
struct Spill {
    dir: std::path::PathBuf,
}

impl Spill {
    fn file(&self, start: i64) -> std::path::PathBuf {
        self.dir.join(format!("{start}.rows"))
    }

    /// Appends every partition's rows to its file.
    fn append(&self, partitions: &BTreeMap<i64, Rows>) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        // in the private cache, and private too (requester numbers)
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        for (start, rows) in partitions {
            let mut out = Vec::with_capacity(rows.len() * SPILLED_ROW);
            for i in 0..rows.len() {
                out.extend_from_slice(&rows.time[i].to_le_bytes());
                out.extend_from_slice(&rows.place[i].to_le_bytes());
                out.extend_from_slice(&rows.requester[i].to_le_bytes());
                out.extend_from_slice(&rows.bytes_sent[i].to_le_bytes());
                out.extend_from_slice(&rows.status[i].to_le_bytes());
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(self.file(*start))?;
            std::io::Write::write_all(&mut file, &out)?;
        }
        Ok(())
    }

    /// Hands a partition's spilled rows, then those still `held`, to `part` in parts of at most
    /// `size` rows; removes its file.
    fn drain(
        &self,
        start: i64,
        held: Option<Rows>,
        size: usize,
        mut part: impl FnMut(Rows) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let path = self.file(start);
        let file = std::fs::File::open(&path)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut rows = Rows::default();
        let mut row = [0u8; SPILLED_ROW];
        loop {
            match std::io::Read::read_exact(&mut reader, &mut row) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(error) => return Err(error.into()),
            }
            let field = |from: usize, to: usize| -> [u8; 8] {
                let mut bytes = [0u8; 8];
                bytes[..to - from].copy_from_slice(&row[from..to]);
                bytes
            };
            rows.time.push(i64::from_le_bytes(field(0, 8)));
            rows.place.push(u64::from_le_bytes(field(8, 12)) as u32);
            rows.requester.push(u64::from_le_bytes(field(12, 20)));
            rows.bytes_sent.push(u64::from_le_bytes(field(20, 28)));
            rows.status.push(u64::from_le_bytes(field(28, 30)) as u16);
            if rows.len() == size {
                part(std::mem::take(&mut rows))?;
            }
        }
        if let Some(held) = held {
            for i in 0..held.len() {
                rows.time.push(held.time[i]);
                rows.place.push(held.place[i]);
                rows.requester.push(held.requester[i]);
                rows.bytes_sent.push(held.bytes_sent[i]);
                rows.status.push(held.status[i]);
                if rows.len() == size {
                    part(std::mem::take(&mut rows))?;
                }
            }
        }
        if rows.len() > 0 {
            part(rows)?;
        }
        std::fs::remove_file(&path)?;
        Ok(())
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The places of the rows, numbered. Bins come ordered by key, so a key's places are numbered
/// once, when its first bin comes; each costs the length of its key and asset (datasets are
/// shared).
#[derive(Default)]
struct Places {
    /// By number.
    list: Vec<RowPlace>,
    /// Each dataset's name, once.
    datasets: HashMap<String, std::sync::Arc<str>>,
    /// The key whose places are `current`.
    current_key: Vec<u8>,
    /// The numbers of the places of `current_key`.
    current: Vec<u32>,
}

impl Places {
    /// The numbers of the places where `key`'s requests count.
    fn of_key(&mut self, key: &[u8], grouping: &Grouping) -> &[u32] {
        if key != self.current_key.as_slice() {
            key.clone_into(&mut self.current_key);
            let object_key = String::from_utf8_lossy(key).into_owned();
            self.current.clear();
            for found in grouping.locate(key) {
                let dataset = self
                    .datasets
                    .entry(found.dataset)
                    .or_insert_with_key(|name| name.as_str().into())
                    .clone();
                self.current
                    .push(u32::try_from(self.list.len()).expect("fewer than 4 billion places"));
                self.list.push(RowPlace {
                    dataset,
                    asset: found.asset,
                    object_key: object_key.clone(),
                    in_archive: found.in_archive,
                });
            }
        }
        &self.current
    }
}

/// What the rows are gathered from and how.
pub(crate) struct Gathering<'a> {
    /// The store.
    pub store: &'a Store,
    /// Which keys count where, whose requests are left out.
    pub grouping: &'a Grouping,
    /// By day or by month.
    pub partition: Partition,
    /// Rows held in memory at most; the rest wait in spill files under `spill_dir`.
    pub rows_in_memory: usize,
    /// A private folder for the spill files (emptied first).
    pub spill_dir: std::path::PathBuf,
    /// Raised when the export should end.
    pub stop: &'a StopFlag,
}

/// Reads the bins of `batches`, then hands each partition's rows to `write` (partition start and
/// rows, with the places they point to), in order of partitions, several at once while they fit
/// in `rows_in_memory`; a partition that had to be spilled comes in parts of at most that many
/// rows. Nothing is handed after a stop.
pub(crate) fn gather(
    gathering: &Gathering<'_>,
    batches: (BatchNumber, BatchNumber),
    write: impl FnMut(&[(i64, Rows)], &[RowPlace]) -> anyhow::Result<()>,
) -> anyhow::Result<Gathered> {
    match read(gathering, batches)? {
        Some(read) => hand_out(gathering, read, write),
        None => Ok(Gathered {
            stopped: true,
            ..Gathered::default()
        }),
    }
}

/// What reading the bins leaves: the places, the rows still held by partition, the partitions
/// that have rows in the spill files too.
struct Read {
    places: Places,
    partitions: BTreeMap<i64, Rows>,
    spill: Spill,
    spilled: HashSet<i64>,
    spilled_rows: u64,
}

/// Reads the bins of `batches` into rows by partition (`None` when stopped).
fn read(
    gathering: &Gathering<'_>,
    batches: (BatchNumber, BatchNumber),
) -> anyhow::Result<Option<Read>> {
    let Gathering {
        store,
        grouping,
        partition,
        rows_in_memory,
        stop,
        ..
    } = *gathering;
    let counted = Counted::of(grouping, store)?;
    let _ = std::fs::remove_dir_all(&gathering.spill_dir);
    let mut read = Read {
        places: Places::default(),
        partitions: BTreeMap::new(),
        spill: Spill {
            dir: gathering.spill_dir.clone(),
        },
        spilled: HashSet::new(),
        spilled_rows: 0,
    };
    let mut held = 0usize;
    let mut requests: Vec<BinRequest> = Vec::new();
    let outcome = store.visit_bins_of_batches(batches, |key, data| {
        if stop.is_raised() {
            return Err(Stopped.into());
        }
        let current_places = read.places.of_key(key, grouping);
        if current_places.is_empty() {
            // a dataset not picked
            return Ok(());
        }
        counted.decode(key, data, &mut requests)?;
        for request in &requests {
            let start = partition.of(request.time.div_euclid(86_400));
            let rows = read.partitions.entry(start).or_default();
            for &place in current_places {
                rows.push(request, place);
                held += 1;
            }
        }
        if held >= rows_in_memory {
            read.spill.append(&read.partitions)?;
            read.spilled.extend(read.partitions.keys());
            read.spilled_rows += held as u64;
            held = 0;
            read.partitions.clear();
        }
        Ok(())
    });
    match outcome {
        Ok(()) => Ok(Some(read)),
        Err(error) if error.is::<Stopped>() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Hands the rows read to `write`, partition by partition (see [`gather`]).
fn hand_out(
    gathering: &Gathering<'_>,
    mut read: Read,
    mut write: impl FnMut(&[(i64, Rows)], &[RowPlace]) -> anyhow::Result<()>,
) -> anyhow::Result<Gathered> {
    let (rows_in_memory, stop) = (gathering.rows_in_memory, gathering.stop);
    let mut gathered = Gathered {
        spilled: read.spilled_rows,
        ..Gathered::default()
    };
    let mut starts: Vec<i64> = read
        .partitions
        .keys()
        .chain(&read.spilled)
        .copied()
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let held: u64 = read.partitions.values().map(|rows| rows.len() as u64).sum();
    let mut progress = Progress::counting(
        "export",
        "partitions",
        starts.len() as u64,
        Amount::Items("rows"),
        read.spilled_rows + held,
    );
    // parts are handed together while they fit in memory (the writer encodes them in parallel)
    let mut ready: Vec<(i64, Rows)> = Vec::new();
    let mut ready_rows = 0usize;
    // partitions come in order: one is counted when its first part is written
    let mut counted: Option<i64> = None;
    let places = &read.places.list;
    let mut hand = |ready: &mut Vec<(i64, Rows)>, ready_rows: &mut usize| {
        gathered.rows += *ready_rows as u64;
        let result = write(ready, places);
        let mut new = 0;
        for (start, _) in ready.iter() {
            if counted < Some(*start) {
                counted = Some(*start);
                new += 1;
            }
        }
        progress.advance(new, *ready_rows as u64, "written");
        *ready_rows = 0;
        ready.clear();
        result
    };
    for start in starts {
        if stop.is_raised() {
            gathered.stopped = true;
            return Ok(gathered);
        }
        // a partition held in memory only is one part; one that was spilled too comes in parts
        // of at most the rows held in memory (its spilled rows, then those still held)
        let mut part = |rows: Rows| -> anyhow::Result<()> {
            if ready_rows + rows.len() > rows_in_memory && !ready.is_empty() {
                hand(&mut ready, &mut ready_rows)?;
            }
            ready_rows += rows.len();
            ready.push((start, rows));
            Ok(())
        };
        let held = read.partitions.remove(&start);
        if read.spilled.contains(&start) {
            read.spill.drain(start, held, rows_in_memory, &mut part)?;
        } else if let Some(held) = held {
            part(held)?;
        }
    }
    if !ready.is_empty() && !stop.is_raised() {
        hand(&mut ready, &mut ready_rows)?;
    }
    progress.finish();
    Ok(gathered)
}

/// A stop asked while reading the bins.
#[derive(Debug, thiserror::Error)]
#[error("stopped")]
struct Stopped;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_days_or_months_with_hive_folders() {
        // 2024-05-02 is day 19845 (checked: 19845 * 86400 = 1714608000 = 2024-05-02T00:00Z)
        assert_eq!(Partition::Day.of(19845), 19845);
        assert_eq!(Partition::Day.folder(19845), "year=2024/month=05/day=02");
        assert_eq!(Partition::Month.of(19845), 19844);
        assert_eq!(Partition::Month.folder(19844), "year=2024/month=05");
        // the last day of a leap February belongs to February
        assert_eq!(
            Partition::Month.folder(Partition::Month.of(19782)),
            "year=2024/month=02"
        );
        assert_eq!(Partition::Day.folder(19782), "year=2024/month=02/day=29");
    }
}
