//! Listing the log objects of a bucket, incrementally.
//!
//! S3 delivers logs in two layouts: flat, `PREFIX` + `YYYY-MM-DD-hh-mm-ss-UNIQUE`, and
//! date-partitioned, `PREFIX` + `ACCOUNT/REGION/BUCKET/YYYY/MM/DD/` + the same name. Each run of
//! keys that sorts by day is a *stream*: a flat stream is the key up to the name's date, a
//! partitioned one the key up to `YYYY/MM/DD/` (its root). The first listing reads every key
//! under the location; it remembers each stream and the day to list it from next time. Later
//! runs list each stream from that day (S3's `start-after`) and walk the folders for partition
//! roots that are new, so that a daily run asks for a few pages, not the whole bucket.
//!
//! The day to list from is the last day whose logs are all extracted (a day is complete once a
//! later day has logs: keys are not strictly in time order and logs arrive late), or the day of
//! the first log not extracted yet, whichever is earlier; the listing rewinds to its start.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use chrono::NaiveDate;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Bucket, PAGE_KEYS, Page, S3Error, S3Location};
use crate::interrupt::StopFlag;
use crate::logs::files::is_log_name;
use crate::progress::timestamped;

/// A line of progress every this many listing pages (100,000 keys).
const PAGES_PER_PROGRESS_LINE: u64 = 100;
/// Folder levels walked below the location looking for partition roots (`ACCOUNT/REGION/BUCKET`
/// and a few of the user's own).
const MAX_DEPTH: usize = 8;

/// How a stream's keys are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Layout {
    /// `STREAM` + `YYYY-MM-DD-...`.
    Flat,
    /// `STREAM` + `YYYY/MM/DD/` + name.
    Partitioned,
}

/// A log object found in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedLog {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its stream's key prefix (shared by the stream's logs).
    pub stream: Arc<str>,
    /// The day its key says.
    pub day: NaiveDate,
}

/// What is remembered of one stream between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StreamState {
    layout: Layout,
    /// List from the start of this day (`YYYY-MM-DD`).
    from: String,
}

/// What is remembered of one location between runs (stage state, as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ListingState {
    streams: BTreeMap<String, StreamState>,
}

/// The log objects found at a location, and how they were found.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Log objects, in key order.
    pub logs: Vec<ListedLog>,
    /// Other keys seen, ignored.
    pub ignored: u64,
    /// Listing requests made.
    pub requests: u64,
    /// Whether every key was listed (no earlier state, or asked).
    pub full: bool,
    /// Keys that cannot be asked for (an empty segment, `.` or `..`), skipped.
    pub unaddressable: Vec<String>,
    /// Whether a stop request ended the listing before its end (then it is incomplete: nothing
    /// of it may be remembered).
    pub stopped: bool,
    /// The streams and their layouts: those remembered and those found now.
    streams: BTreeMap<String, Layout>,
    /// The state this listing started from.
    previous: ListingState,
}

/// The stage-state key under which a location's listing is remembered.
pub(crate) fn state_key(location: &S3Location) -> String {
    format!("s3_listing {}", location.url())
}

/// Where a log key belongs: its stream, layout and day; `None` for a key that is no log.
pub(crate) fn classify(key: &str) -> Option<(String, Layout, NaiveDate)> {
    static NAME_DATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(\d{4})-(\d{1,2})-(\d{1,2})-\d{1,2}-\d{1,2}-\d{1,2}-[0-9A-Za-z]{1,64}(\.gz)?$")
            .expect("valid regex")
    });
    static FOLDER_DATE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(\d{4})/(\d{2})/(\d{2})/$").expect("valid regex"));
    let name_start = key.rfind('/').map_or(0, |slash| slash + 1);
    let (folder, name) = key.split_at(name_start);
    if !is_log_name(name) {
        return None;
    }
    let date = |captures: &regex::Captures<'_>| {
        let number = |i: usize| captures[i].parse::<u32>().ok();
        NaiveDate::from_ymd_opt(number(1)? as i32, number(2)?, number(3)?)
    };
    if let Some(captures) = FOLDER_DATE.captures(folder)
        && let Some(day) = date(&captures)
    {
        let root = &folder[..captures.get(0).expect("whole match").start()];
        return Some((root.to_owned(), Layout::Partitioned, day));
    }
    let captures = NAME_DATE.captures(name)?;
    let day = date(&captures)?;
    let stream = &key[..name_start + captures.get(1).expect("year").start()];
    Some((stream.to_owned(), Layout::Flat, day))
}

/// The last key or folder of a page (each comes sorted): where the listing goes on from.
fn last_of(page: &Page) -> Option<String> {
    let key = page.objects.last().map(|(key, _)| key.as_str());
    let folder = page.folders.last().map(String::as_str);
    key.max(folder).map(str::to_owned)
}

/// The folder a stream's keys are in: the stream up to its last `/`.
fn stream_folder(stream: &str) -> &str {
    &stream[..stream.rfind('/').map_or(0, |slash| slash + 1)]
}

/// The key to list a stream from (S3 returns the keys after it): the start of `day`.
fn offset(stream: &str, layout: Layout, day: NaiveDate) -> String {
    match layout {
        Layout::Flat => format!("{stream}{}", day.format("%Y-%m-%d")),
        Layout::Partitioned => format!("{stream}{}", day.format("%Y/%m/%d")),
    }
}

/// Lists the log objects at `location`: every key when there is no `state` or `full`, else each
/// remembered stream from its day and the folders for new partition roots. A stop request ends
/// it between two pages (`Listing::stopped`).
pub(crate) fn list(
    bucket: &Bucket,
    location: &S3Location,
    state: Option<&str>,
    full: bool,
    stop: &StopFlag,
) -> Result<Listing, S3Error> {
    let previous: Option<ListingState> = state.and_then(|text| serde_json::from_str(text).ok());
    let mut lister = Lister {
        bucket,
        stop,
        listing: Listing::default(),
        visited: HashSet::new(),
        names: HashMap::new(),
    };
    match previous {
        Some(previous) if !full && !previous.streams.is_empty() => {
            lister.listing.previous = previous.clone();
            for (stream, remembered) in &previous.streams {
                lister
                    .listing
                    .streams
                    .insert(stream.clone(), remembered.layout);
            }
            for (stream, remembered) in &previous.streams {
                let from = NaiveDate::parse_from_str(&remembered.from, "%Y-%m-%d").ok();
                let start = from.map(|day| offset(stream, remembered.layout, day));
                let folders = remembered.layout == Layout::Flat;
                let found = lister.pages(stream, folders, start.as_deref())?;
                for folder in found {
                    lister.walk(&folder, 1)?;
                }
            }
            lister.walk(&location.prefix, 0)?;
        }
        _ => {
            lister.listing.full = true;
            lister.pages(&location.prefix, false, None)?;
        }
    }
    let mut listing = lister.listing;
    listing.logs.sort_by(|a, b| a.key.cmp(&b.key));
    // two flat streams of one folder list each other's keys: a key counts once
    listing.logs.dedup_by(|a, b| a.key == b.key);
    Ok(listing)
}

/// A listing in progress.
struct Lister<'a> {
    bucket: &'a Bucket,
    stop: &'a StopFlag,
    listing: Listing,
    /// Folders walked already.
    visited: HashSet<String>,
    /// Each stream's name, once.
    names: HashMap<String, Arc<str>>,
}

impl Lister<'_> {
    /// Lists every page of `prefix` from `offset`, taking the logs; the folders found (with
    /// `folders`).
    fn pages(
        &mut self,
        prefix: &str,
        folders: bool,
        offset: Option<&str>,
    ) -> Result<Vec<String>, S3Error> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        // where to start again without a token: after the last key or folder taken
        let mut resume = offset.map(str::to_owned);
        loop {
            if self.stop.is_raised() {
                self.listing.stopped = true;
                return Ok(found);
            }
            let asked = match &token {
                Some(_) => self
                    .bucket
                    .list_page(prefix, folders, offset, token.clone(), PAGE_KEYS),
                None => self
                    .bucket
                    .list_page(prefix, folders, resume.as_deref(), None, PAGE_KEYS),
            };
            self.listing.requests += 1;
            let mut page = match asked {
                Ok(page) => page,
                Err(error) => {
                    let Some(bad) = error.unaddressable_key() else {
                        return Err(error);
                    };
                    let before = self.before(prefix, folders, resume.as_deref(), &bad)?;
                    self.add(before, &mut found);
                    self.listing.unaddressable.push(bad.clone());
                    self.listing.ignored += 1;
                    resume = Some(bad);
                    token = None;
                    continue;
                }
            };
            if self
                .listing
                .requests
                .is_multiple_of(PAGES_PER_PROGRESS_LINE)
            {
                eprintln!(
                    "{}",
                    timestamped(&format!(
                        "extract: listing s3://{}/{prefix}: {} log objects so far",
                        self.bucket.name(),
                        self.listing.logs.len()
                    ))
                );
            }
            resume = last_of(&page).or(resume);
            token = page.next.take();
            self.add(page, &mut found);
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    /// Takes a page's logs and folders.
    fn add(&mut self, page: Page, found: &mut Vec<String>) {
        for (key, size) in page.objects {
            self.take(key, size);
        }
        found.extend(page.folders);
    }

    /// The keys and folders after `from` and before the key `bad` that fails any page holding
    /// it: the longest page that can be listed from `from` (found by halving, ten requests).
    fn before(
        &mut self,
        prefix: &str,
        folders: bool,
        from: Option<&str>,
        bad: &str,
    ) -> Result<Page, S3Error> {
        let (mut fits, mut fails) = (0, PAGE_KEYS);
        let mut best = Page::default();
        while fails - fits > 1 {
            let middle = usize::midpoint(fits, fails);
            self.listing.requests += 1;
            match self.bucket.list_page(prefix, folders, from, None, middle) {
                Ok(page) => {
                    fits = middle;
                    best = page;
                }
                Err(error) if error.unaddressable_key().as_deref() == Some(bad) => fails = middle,
                Err(error) => return Err(error),
            }
        }
        Ok(best)
    }

    /// Keeps a key if it is a log (and records a new stream).
    fn take(&mut self, key: String, size: u64) {
        let Some((stream, layout, day)) = classify(&key) else {
            self.listing.ignored += 1;
            return;
        };
        self.listing.streams.entry(stream.clone()).or_insert(layout);
        let stream = self
            .names
            .entry(stream)
            .or_insert_with_key(|name| name.as_str().into())
            .clone();
        self.listing.logs.push(ListedLog {
            key,
            size,
            stream,
            day,
        });
    }

    /// Looks for partition roots under `folder` that are not remembered, and lists them whole.
    /// A folder that holds a remembered stream's flat logs is not listed from its start: its
    /// folders come from the first page (those that sort before the logs, such as account ids
    /// starting with 0 or 1) and from the stream's own listing (those after its day).
    fn walk(&mut self, folder: &str, depth: usize) -> Result<(), S3Error> {
        if depth > MAX_DEPTH || self.listing.stopped || !self.visited.insert(folder.to_owned()) {
            return Ok(());
        }
        let remembered = &self.listing.previous.streams;
        if remembered
            .get(folder)
            .is_some_and(|s| s.layout == Layout::Partitioned)
        {
            return Ok(());
        }
        let holds_flat_logs = remembered
            .iter()
            .any(|(stream, s)| s.layout == Layout::Flat && stream_folder(stream) == folder);
        let folders = if holds_flat_logs {
            let page = self.bucket.list_page(folder, true, None, None, PAGE_KEYS)?;
            self.listing.requests += 1;
            page.folders
        } else {
            self.pages(folder, true, None)?
        };
        let is_year = |f: &str| {
            let name = f[folder.len()..].trim_end_matches('/');
            name.len() == 4 && name.bytes().all(|b| b.is_ascii_digit())
        };
        if folders.iter().any(|f| is_year(f)) {
            // a partition root nobody listed yet: all of it
            self.pages(folder, false, None)?;
        }
        for next in folders.iter().filter(|f| !is_year(f)) {
            self.walk(next, depth + 1)?;
        }
        Ok(())
    }
}

impl Listing {
    /// The state to remember after the run: each stream's day to list from, given which logs
    /// are now extracted (or need not be).
    pub(crate) fn state_after(&self, done: impl Fn(&ListedLog) -> bool) -> String {
        // per stream: the newest day, and the first day with a log not done
        let mut days: HashMap<&str, (NaiveDate, Option<NaiveDate>)> = HashMap::new();
        for log in &self.logs {
            let entry = days.entry(&log.stream).or_insert((log.day, None));
            entry.0 = entry.0.max(log.day);
            if !done(log) {
                entry.1 = Some(entry.1.map_or(log.day, |d| d.min(log.day)));
            }
        }
        let mut state = ListingState::default();
        for (stream, layout) in &self.streams {
            let (newest, first_undone) = days
                .get(stream.as_str())
                .map_or((None, None), |&(newest, undone)| (Some(newest), undone));
            let previous = self
                .previous
                .streams
                .get(stream)
                .map(|remembered| remembered.from.clone());
            // the last complete day is the one before the newest that has logs
            let complete = newest.and_then(|day| day.pred_opt());
            let from = match (first_undone, complete) {
                (Some(undone), Some(complete)) => Some(undone.min(complete)),
                (undone, complete) => undone.or(complete),
            };
            let from = from
                .map(|day| day.format("%Y-%m-%d").to_string())
                .or(previous);
            if let Some(from) = from {
                state.streams.insert(
                    stream.clone(),
                    StreamState {
                        layout: *layout,
                        from,
                    },
                );
            }
        }
        serde_json::to_string(&state).expect("a listing state serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn keys_are_classified_by_layout() {
        assert_eq!(
            classify("logs/2024-05-01-10-00-00-0123456789ABCDEF"),
            Some(("logs/".into(), Layout::Flat, day("2024-05-01")))
        );
        assert_eq!(
            classify("logs/access-2024-05-01-10-00-00-0123456789ABCDEF.gz"),
            Some(("logs/access-".into(), Layout::Flat, day("2024-05-01")))
        );
        assert_eq!(
            classify("2024-05-01-10-00-00-0123456789ABCDEF"),
            Some((String::new(), Layout::Flat, day("2024-05-01")))
        );
        // the folder's day (event time partitioning may differ from the name's)
        assert_eq!(
            classify(
                "logs/123456789012/us-east-1/my-bucket/2024/04/30/2024-05-01-00-10-00-0123456789ABCDEF"
            ),
            Some((
                "logs/123456789012/us-east-1/my-bucket/".into(),
                Layout::Partitioned,
                day("2024-04-30")
            ))
        );
        assert_eq!(classify("logs/README"), None);
        assert_eq!(classify("logs/2024-13-01-10-00-00-0123456789ABCDEF"), None);
    }

    #[test]
    fn offsets_sort_before_the_days_keys_and_after_the_day_before() {
        let flat = offset("logs/", Layout::Flat, day("2024-05-01"));
        assert!(flat.as_str() < "logs/2024-05-01-00-00-00-0123456789ABCDEF");
        assert!(flat.as_str() > "logs/2024-04-30-23-59-59-0123456789ABCDEF");
        let partitioned = offset("r/", Layout::Partitioned, day("2024-05-01"));
        assert!(partitioned.as_str() < "r/2024/05/01/2024-05-01-00-00-00-0123456789ABCDEF");
        assert!(partitioned.as_str() > "r/2024/04/30/2024-04-30-23-59-59-0123456789ABCDEF");
    }

    fn log(key: &str) -> ListedLog {
        let (stream, _, day) = classify(key).unwrap();
        ListedLog {
            key: key.into(),
            size: 1,
            stream: stream.into(),
            day,
        }
    }

    #[test]
    fn the_next_listing_starts_at_the_last_complete_day_or_the_first_undone() {
        let logs = vec![
            log("logs/2024-05-01-10-00-00-0123456789ABCDEF"),
            log("logs/2024-05-02-10-00-00-0123456789ABCDEF"),
            log("logs/2024-05-03-10-00-00-0123456789ABCDEF"),
        ];
        let mut listing = Listing {
            logs,
            ..Listing::default()
        };
        listing.streams.insert("logs/".into(), Layout::Flat);
        let from = |state: String| {
            let state: ListingState = serde_json::from_str(&state).unwrap();
            state.streams["logs/"].from.clone()
        };
        // all done: the day before the newest (the newest may still get logs)
        assert_eq!(from(listing.state_after(|_| true)), "2024-05-02");
        // the first not extracted yet comes first
        assert_eq!(
            from(listing.state_after(|log| !log.key.contains("05-01-"))),
            "2024-05-01"
        );
        // nothing listed this time: the remembered day stays
        listing.logs.clear();
        listing.previous.streams.insert(
            "logs/".into(),
            StreamState {
                layout: Layout::Flat,
                from: "2024-04-01".into(),
            },
        );
        assert_eq!(from(listing.state_after(|_| true)), "2024-04-01");
    }
}
