//! Where logs are: local directories and S3 locations, listed (incrementally) or read from an
//! S3 Inventory. `extract` and `status --source` find their log files here, all with the same
//! identity (a log's name), so that a log copied down earlier and later seen in its bucket is
//! one log.

use std::path::PathBuf;
use std::sync::Arc;

use super::files::{LogFile, LogIdentity, LogPlace, discover};
use crate::interrupt::StopFlag;
use crate::s3::inventory::{self, InventoryPlace};
use crate::s3::listing::{self, Listing};
use crate::s3::{Bucket, S3Location, S3Settings};
use crate::store::Store;

/// A place to read logs from, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// A local directory, searched recursively.
    Dir(PathBuf),
    /// `s3://BUCKET/PREFIX`.
    Bucket(S3Location),
}

impl LogSource {
    /// `s3://BUCKET/PREFIX` or a directory.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("s3://") {
            S3Location::parse(text).map(LogSource::Bucket)
        } else {
            Ok(LogSource::Dir(PathBuf::from(text)))
        }
    }
}

impl std::fmt::Display for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogSource::Dir(dir) => write!(f, "{}", dir.display()),
            LogSource::Bucket(location) => write!(f, "{location}"),
        }
    }
}

/// How to read the S3 sources.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceOptions {
    /// Reaching S3.
    pub s3: S3Settings,
    /// Take the list of log objects from this S3 Inventory instead of listing (one bucket).
    pub inventory: Option<InventoryPlace>,
    /// List every key again, not from the remembered days.
    pub full_listing: bool,
}

/// The log files found in every source.
#[derive(Default)]
pub(crate) struct Found {
    /// Log files, each source's sorted by path or key.
    pub files: Vec<LogFile>,
    /// Other files or keys, ignored.
    pub ignored: u64,
    /// Entries that could not be read (where, error).
    pub unreadable: Vec<(String, String)>,
    /// Connections to the buckets (`LogPlace::Object::bucket` numbers them).
    pub buckets: Vec<Bucket>,
    /// How each bucket was listed, to remember when the run ends.
    pub listings: Vec<(S3Location, Listing)>,
    /// What was done to find them (listing requests, the inventory read), said in the report.
    pub notes: Vec<String>,
    /// Whether a stop request ended a listing: the sources after it were not looked at, and
    /// nothing of that listing is kept.
    pub stopped: bool,
}

/// Errors finding logs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FindError {
    /// A directory that is none.
    #[error(transparent)]
    Discover(#[from] super::files::DiscoverError),
    /// A bucket that cannot be listed.
    #[error(transparent)]
    S3(#[from] crate::s3::S3Error),
    /// An inventory that cannot be read.
    #[error(transparent)]
    Inventory(#[from] inventory::InventoryError),
    /// The store could not say how a bucket was listed before.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// `--inventory` with other than one bucket.
    #[error("--inventory lists one bucket: give exactly one s3:// location with it")]
    InventoryNeedsOneBucket,
}

/// Finds the log files of every source; the buckets are listed from the days remembered in the
/// store (unless `full_listing`).
pub(crate) fn find(
    sources: &[LogSource],
    options: &SourceOptions,
    store: Option<&Store>,
    stop: &StopFlag,
) -> Result<Found, FindError> {
    let buckets = sources
        .iter()
        .filter(|source| matches!(source, LogSource::Bucket(_)))
        .count();
    if options.inventory.is_some() && buckets != 1 {
        return Err(FindError::InventoryNeedsOneBucket);
    }
    let mut found = Found::default();
    for source in sources {
        match source {
            LogSource::Dir(dir) => {
                let discovered = discover(dir)?;
                found.files.extend(discovered.files);
                found.ignored += discovered.ignored;
                found.unreadable.extend(discovered.unreadable);
            }
            LogSource::Bucket(location) => {
                find_in_bucket(location, options, store, stop, &mut found)?;
            }
        }
        if found.stopped {
            break;
        }
    }
    Ok(found)
}

/// Lists one bucket's logs (or reads them from the inventory).
fn find_in_bucket(
    location: &S3Location,
    options: &SourceOptions,
    store: Option<&Store>,
    stop: &StopFlag,
    found: &mut Found,
) -> Result<(), FindError> {
    let bucket = Bucket::connect(&location.bucket, &options.s3)?;
    let number = found.buckets.len();
    let name: Arc<str> = location.bucket.as_str().into();
    let object = |key: String, size: u64| LogFile {
        place: LogPlace::Object {
            bucket: number,
            name: name.clone(),
        },
        relative: key,
        size,
    };
    if let Some(place) = &options.inventory {
        let inventory_bucket = match place {
            InventoryPlace::Remote(at) if at.bucket == location.bucket => None,
            InventoryPlace::Remote(at) => Some(Bucket::connect(&at.bucket, &options.s3)?),
            InventoryPlace::Local(_) => None,
        };
        let read = inventory::read(place, inventory_bucket.as_ref().or(Some(&bucket)), location)?;
        let total = read.objects.len();
        for (key, size) in read.objects {
            if listing::classify(&key).is_some() {
                found.files.push(object(key, size));
            } else {
                found.ignored += 1;
            }
        }
        found.notes.push(format!(
            "{location}: {total} objects from the inventory {}",
            read.manifest
        ));
        found.notes.extend(read.warnings);
    } else {
        let state = match store {
            Some(store) => store.stage_state(&listing::state_key(location))?,
            None => None,
        };
        let listed = listing::list(
            &bucket,
            location,
            state.as_deref(),
            options.full_listing,
            stop,
        )?;
        if listed.stopped {
            found.stopped = true;
            found.notes.push(format!(
                "{location}: stopped while listing ({} requests); run again to list and extract it",
                listed.requests
            ));
            return Ok(());
        }
        found.ignored += listed.ignored;
        if let Some(first) = listed.unaddressable.first() {
            found.notes.push(format!(
                "{location}: {} keys that cannot be asked for (an empty segment, . or ..) were skipped (first: {})",
                listed.unaddressable.len(),
                crate::output::escape_controls(first)
            ));
        }
        found.notes.push(format!(
            "{location}: {} log objects listed in {} requests ({})",
            listed.logs.len(),
            listed.requests,
            if listed.full {
                "every key"
            } else {
                "from the last complete day of each log folder"
            }
        ));
        for log in &listed.logs {
            found.files.push(object(log.key.clone(), log.size));
        }
        found.listings.push((location.clone(), listed));
    }
    found.buckets.push(bucket);
    Ok(())
}

impl Found {
    /// Remembers, for each bucket listed, the day to list each log folder from next time, given
    /// the logs the store now holds.
    pub(crate) fn remember_listings(&self, store: &Store) -> anyhow::Result<()> {
        if self.listings.is_empty() {
            return Ok(());
        }
        let processed = store.processed_files()?;
        for (location, listing) in &self.listings {
            let state =
                listing.state_after(|log| processed.contains_key(&LogIdentity::of(&log.key)));
            store.set_stage_state(&listing::state_key(location), &state)?;
        }
        Ok(())
    }
}
