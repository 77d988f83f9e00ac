//! The rows of an export, gathered from the bins of a range of batches and held by partition
//! (a day or a month), at most a given number at a time.
//!
//! A request of a key the dataset map shares between datasets is one row per dataset (each
//! counts it); `in_archive` marks the one the archive-wide figures count, as in the summaries.
//! Requests of excluded requesters and of datasets not picked are left out, as in the summaries.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::bins::{self, BinRequest};
use crate::interrupt::StopFlag;
use crate::store::{BatchNumber, Store};
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
    pub dataset: String,
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

/// What is handed to the writer each time the rows held reach the limit, and at the end: the
/// rows by partition start, and every place seen so far.
pub(crate) struct Held<'a> {
    /// Rows by the first day of their partition.
    pub partitions: BTreeMap<i64, Rows>,
    /// The places the rows point into.
    pub places: &'a [RowPlace],
}

/// How the gathering ended.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    /// Rows handed to the writer.
    pub rows: u64,
    /// Requests read (before the exclusions and the datasets not picked).
    pub requests: u64,
    /// A stop was asked: the range is not complete.
    pub stopped: bool,
}

/// Reads the bins of `batches` and hands their rows to `write`, by partition, whenever
/// `rows_in_memory` are held and once at the end (nothing more is handed after a stop).
pub(crate) fn gather(
    store: &Store,
    batches: (BatchNumber, BatchNumber),
    grouping: &Grouping,
    partition: Partition,
    rows_in_memory: usize,
    stop: &StopFlag,
    mut write: impl FnMut(Held<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<Gathered> {
    let excluded: HashSet<u64> = grouping
        .excluded
        .resolve(store)?
        .into_iter()
        .map(|id| id.0)
        .collect();
    let mut places: Vec<RowPlace> = Vec::new();
    let mut place_index: HashMap<RowPlace, u32> = HashMap::new();
    let mut partitions: BTreeMap<i64, Rows> = BTreeMap::new();
    let mut held = 0usize;
    let mut gathered = Gathered::default();
    let mut current_key: Vec<u8> = Vec::new();
    let mut current_places: Vec<u32> = Vec::new();
    let mut requests: Vec<BinRequest> = Vec::new();
    let outcome = store.visit_bins_of_batches(batches, |key, data| {
        if stop.is_raised() {
            return Err(Stopped.into());
        }
        if key != current_key.as_slice() {
            key.clone_into(&mut current_key);
            let object_key = String::from_utf8_lossy(key).into_owned();
            current_places.clear();
            for found in grouping.locate(key) {
                let place = RowPlace {
                    dataset: found.dataset,
                    asset: found.asset,
                    object_key: object_key.clone(),
                    in_archive: found.in_archive,
                };
                let next = u32::try_from(places.len()).expect("fewer than 4 billion places");
                let index = *place_index.entry(place.clone()).or_insert_with(|| {
                    places.push(place);
                    next
                });
                current_places.push(index);
            }
        }
        requests.clear();
        bins::decode_into(data, &mut requests)
            .map_err(|error| anyhow::anyhow!("object {}: {error}", String::from_utf8_lossy(key)))?;
        gathered.requests += requests.len() as u64;
        for request in &requests {
            if excluded.contains(&request.requester) {
                continue;
            }
            let start = partition.of(request.time.div_euclid(86_400));
            let rows = partitions.entry(start).or_default();
            for &place in &current_places {
                rows.push(request, place);
                held += 1;
            }
        }
        if held >= rows_in_memory {
            gathered.rows += held as u64;
            held = 0;
            write(Held {
                partitions: std::mem::take(&mut partitions),
                places: &places,
            })?;
        }
        Ok(())
    });
    match outcome {
        Ok(()) => {}
        Err(error) if error.is::<Stopped>() => {
            gathered.stopped = true;
            return Ok(gathered);
        }
        Err(error) => return Err(error),
    }
    if held > 0 {
        gathered.rows += held as u64;
        write(Held {
            partitions,
            places: &places,
        })?;
    }
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
