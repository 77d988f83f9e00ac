//! `s3tally report counter`: COUNTER-style dataset metrics for one month, after the Code of
//! Practice (Release 5.1, which covers research data).
//!
//! - An item is a dataset; a request is a GET-2xx of one of its objects (a download or a range
//!   request), counted in the dataset (and the archive) the summaries count it in.
//! - Robots are left out (the client classes decided at extraction); tools are `TDM` (machine)
//!   access, browsers and requests without a user agent `Regular`.
//! - Double clicks: of requests by one requester and client to one object no more than
//!   [`DOUBLE_CLICK_SECONDS`] apart, the earlier is removed and the later kept; a run of them
//!   counts once. Requests up to 30 s after the month are read so that its last requests are
//!   filtered the same way.
//! - `Total_Item_Requests` counts the requests left; `Unique_Item_Requests` the user sessions (one
//!   requester, one client, one clock hour, as the Code defines a session without cookies) that
//!   requested the dataset at least once. The archive's figures are the sum over its datasets,
//!   as a platform's are over its items.
//! - By country: the requester's country (ISO 3166-1 alpha-2 of a resolved place), `unknown`
//!   for the rest; a country behind fewer requesters than the regions' K is pooled in `other`.

mod report;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::bins::BinRequest;
use crate::clients::ClientClass;
use crate::store::Store;
use crate::summaries::disclosure::Privacy;
use crate::summaries::excluded::Counted;
use crate::summaries::grouping::Grouping;

pub(crate) use report::write_reports;

/// Two requests of one object by one requester and client this close (seconds) are a double
/// click.
pub(crate) const DOUBLE_CLICK_SECONDS: i64 = 30;

/// A month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// The first day.
    pub first: chrono::NaiveDate,
    /// The first day of the next month.
    pub next: chrono::NaiveDate,
}

impl Period {
    /// Parses `YYYY-MM`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let first = chrono::NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
            .ok()
            .filter(|_| text.len() == 7)
            .ok_or_else(|| format!("{text:?} is not a month written YYYY-MM"))?;
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .ok_or_else(|| format!("{text:?} is too far in the future"))?;
        Ok(Self { first, next })
    }

    /// `YYYY-MM`.
    pub(crate) fn name(self) -> String {
        self.first.format("%Y-%m").to_string()
    }

    /// The last day.
    pub(crate) fn last(self) -> chrono::NaiveDate {
        self.next.pred_opt().unwrap_or(self.first)
    }

    /// Its first and next month's first second (Unix time, UTC).
    fn seconds(self) -> (i64, i64) {
        let start =
            |day: chrono::NaiveDate| day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
        (start(self.first), start(self.next))
    }
}

/// What `report counter` needs.
#[derive(Debug, Clone)]
pub(crate) struct CounterOptions {
    /// The month.
    pub period: Period,
    /// Which keys count where, and whose requests are left out.
    pub grouping: Grouping,
    /// How counts are written, and K for the countries.
    pub privacy: Privacy,
    /// Where the reports go (`<dir>/<dataset>/counter_YYYY-MM.json` and `.tsv`).
    pub output_dir: PathBuf,
}

/// The Code's access methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Access {
    /// People: browsers, and requests without a user agent.
    Regular,
    /// Machines: scripts and tools (text and data mining, in the Code's words).
    Tdm,
}

impl Access {
    /// The Code's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Access::Regular => "Regular",
            Access::Tdm => "TDM",
        }
    }
}

/// Total and unique item requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Metrics {
    /// `Total_Item_Requests`.
    pub total: u64,
    /// `Unique_Item_Requests`.
    pub unique: u64,
}

/// The exact metrics of one dataset, or of the archive, by access method and country.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ItemMetrics {
    /// By (access method, country).
    pub cells: BTreeMap<(Access, String), Metrics>,
    /// The distinct requesters behind each country (for the pooling rule).
    pub requesters: BTreeMap<String, HashSet<u64>>,
}

impl ItemMetrics {
    fn add(&mut self, access: Access, country: &str, requester: u64, new_session: bool) {
        let cell = self.cells.entry((access, country.to_owned())).or_default();
        cell.total += 1;
        cell.unique += u64::from(new_session);
        self.requesters
            .entry(country.to_owned())
            .or_default()
            .insert(requester);
    }
}

/// Every dataset's metrics for the month, and the archive's.
#[derive(Debug, Default)]
pub(crate) struct CounterMetrics {
    /// By dataset.
    pub datasets: BTreeMap<String, ItemMetrics>,
    /// The archive (the sum over its datasets).
    pub archive: ItemMetrics,
}

/// The requests of one object in reading, with where they count.
struct Object {
    places: Vec<(usize, bool)>,
    requests: Vec<BinRequest>,
}

/// Computes the metrics of the month from the store's bins.
pub(crate) fn compute(
    store: &Store,
    grouping: &Grouping,
    period: Period,
) -> anyhow::Result<CounterMetrics> {
    let (start, end) = period.seconds();
    let counted = Counted::of(grouping, store)?;
    let access: Vec<Option<Access>> = store
        .clients()?
        .iter()
        .map(|client| match client.class {
            ClientClass::Robot => None,
            ClientClass::Tool => Some(Access::Tdm),
            ClientClass::Browser | ClientClass::Unknown => Some(Access::Regular),
        })
        .collect();
    let countries: FxHashMap<u64, String> = store
        .requester_regions()?
        .into_iter()
        .filter_map(|(id, label)| Some((id.0, label?.place_country()?.to_owned())))
        .collect();
    let mut computing = Computing {
        access,
        countries,
        end,
        names: Vec::new(),
        index: FxHashMap::default(),
        metrics: Vec::new(),
        archive: ItemMetrics::default(),
        sessions: FxHashSet::default(),
    };
    let mut current_key: Vec<u8> = Vec::new();
    let mut object = Object {
        places: Vec::new(),
        requests: Vec::new(),
    };
    let mut decoded = Vec::new();
    store.visit_bins(None, |key, data| {
        if key != current_key.as_slice() {
            computing.object(&mut object);
            current_key = key.to_vec();
            object.places = grouping
                .locate(key)
                .into_iter()
                .map(|place| (computing.dataset(&place.dataset), place.in_archive))
                .collect();
        }
        if object.places.is_empty() {
            return Ok(());
        }
        counted.decode(key, data, &mut decoded)?;
        object.requests.extend(decoded.iter().filter(|request| {
            request.time >= start
                && request.time < end + DOUBLE_CLICK_SECONDS
                && computing.access_of(request).is_some()
        }));
        Ok(())
    })?;
    computing.object(&mut object);
    let datasets = computing
        .names
        .into_iter()
        .zip(computing.metrics)
        .filter(|(_, metrics)| !metrics.cells.is_empty())
        .collect();
    Ok(CounterMetrics {
        datasets,
        archive: computing.archive,
    })
}

/// The state of one pass over the bins.
struct Computing {
    /// By client id: the access method, `None` for a robot.
    access: Vec<Option<Access>>,
    countries: FxHashMap<u64, String>,
    /// The first second after the month.
    end: i64,
    names: Vec<String>,
    index: FxHashMap<String, usize>,
    metrics: Vec<ItemMetrics>,
    archive: ItemMetrics,
    /// (archive?, dataset, requester, client, hour) of every session seen.
    sessions: FxHashSet<(bool, usize, u64, u32, i64)>,
}

impl Computing {
    fn dataset(&mut self, name: &str) -> usize {
        if let Some(&index) = self.index.get(name) {
            return index;
        }
        self.names.push(name.to_owned());
        self.metrics.push(ItemMetrics::default());
        self.index.insert(name.to_owned(), self.names.len() - 1);
        self.names.len() - 1
    }

    fn access_of(&self, request: &BinRequest) -> Option<Access> {
        // a client id this build never gave (a newer store) counts as unknown: regular
        self.access
            .get(request.client as usize)
            .copied()
            .unwrap_or(Some(Access::Regular))
    }

    /// Counts the requests of one object (double clicks filtered), and empties it.
    fn object(&mut self, object: &mut Object) {
        let requests = &mut object.requests;
        requests.sort_unstable_by_key(|r| (r.requester, r.client, r.time));
        for (index, request) in requests.iter().enumerate() {
            let double_click = requests.get(index + 1).is_some_and(|next| {
                (next.requester, next.client) == (request.requester, request.client)
                    && next.time - request.time <= DOUBLE_CLICK_SECONDS
            });
            if double_click || request.time >= self.end {
                continue;
            }
            let Some(access) = self.access_of(request) else {
                continue;
            };
            let country = self
                .countries
                .get(&request.requester)
                .map_or("unknown", String::as_str);
            let (requester, client) = (request.requester, request.client);
            let hour = request.time.div_euclid(3600);
            for &(dataset, in_archive) in &object.places {
                let new = self
                    .sessions
                    .insert((false, dataset, requester, client, hour));
                self.metrics[dataset].add(access, country, requester, new);
                if in_archive {
                    let new = self
                        .sessions
                        .insert((true, dataset, requester, client, hour));
                    self.archive.add(access, country, requester, new);
                }
            }
        }
        requests.clear();
    }
}
