//! Exact figures from the store's bins: per dataset by day, asset, region and asset type per
//! week, requester sets and views (saved per dataset by [`super::saved`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::FxHashMap;

use super::excluded::Counted;
use super::grouping::{Grouping, UNDETERMINED};
use crate::bins::BinRequest;
use crate::clients::Client;
use crate::labels::{LabelKind, RegionLabel};
use crate::output::escape_controls;
use crate::privacy::mask_ips;
use crate::store::{RequesterId, Store};

/// How many keys counted under `undetermined` a run names.
const UNDETERMINED_SHOWN: usize = 5;
/// Longest gap between two requests of one view, in seconds.
pub(crate) const VIEW_GAP_SECONDS: i64 = 8 * 3600;

/// Bytes, requests, downloads and views.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Figures {
    /// Bytes sent.
    pub bytes_sent: u64,
    /// GET-2xx requests.
    pub requests: u64,
    /// Requests with status 200.
    pub downloads: u64,
    /// Views (see the module documentation).
    pub views: u64,
}

impl Figures {
    /// Adds other figures; bytes are checked (counts are bounded by the lines read).
    fn add(&mut self, other: &Figures) -> Result<(), Overflow> {
        self.bytes_sent = self
            .bytes_sent
            .checked_add(other.bytes_sent)
            .ok_or(Overflow)?;
        self.requests += other.requests;
        self.downloads += other.downloads;
        self.views += other.views;
        Ok(())
    }

    /// The sum of two figures (of one client under two ids: no overflow check needed, each is
    /// a part of a checked total).
    fn plus(&self, other: &Figures) -> Figures {
        Figures {
            bytes_sent: self.bytes_sent.saturating_add(other.bytes_sent),
            requests: self.requests + other.requests,
            downloads: self.downloads + other.downloads,
            views: self.views + other.views,
        }
    }

    /// Takes away figures that were added before (a part of these).
    fn subtract(&mut self, part: &Figures) {
        self.bytes_sent = self.bytes_sent.saturating_sub(part.bytes_sent);
        self.requests = self.requests.saturating_sub(part.requests);
        self.downloads = self.downloads.saturating_sub(part.downloads);
        self.views = self.views.saturating_sub(part.views);
    }

    /// Adds one request.
    fn request(&mut self, request: &BinRequest) -> Result<(), Overflow> {
        self.bytes_sent = self
            .bytes_sent
            .checked_add(request.bytes_sent)
            .ok_or(Overflow)?;
        self.requests += 1;
        self.downloads += u64::from(request.status == 200);
        Ok(())
    }
}

/// A byte total beyond 2^64 bytes: impossible for real logs (each request sends at most 2^60).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Overflow;

impl Overflow {
    /// The error naming the dataset (or `archive`) whose total overflowed.
    fn of(dataset: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "the bytes sent of {dataset} add up to more than 2^64 bytes, which real logs cannot: \
             check that dataset's requests with `s3tally dump`"
        )
    }
}

/// The exact figures of one dataset, or of the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tally {
    /// By day (days since 1970-01-01, UTC).
    pub by_day: BTreeMap<i64, Figures>,
    /// By asset path (empty for the archive).
    pub by_asset: BTreeMap<String, Figures>,
    /// By region label (`missing` while unresolved).
    pub by_region: BTreeMap<RegionLabel, Figures>,
    /// By client, as `class` or `class/family` (views are not counted by client).
    #[serde(default)]
    pub by_client: BTreeMap<String, Figures>,
    /// Bytes sent by week (the day number of its Monday) and asset type.
    #[serde(default)]
    pub by_type_week: BTreeMap<i64, BTreeMap<String, u64>>,
    /// What the archive does not count through this dataset: requests of keys shared with a
    /// dataset counting them (see `grouping::Place`).
    #[serde(default, skip_serializing_if = "Part::is_empty")]
    pub not_in_archive: Part,
    /// Distinct requesters, GitHub excluded.
    pub requesters: HashSet<RequesterId>,
    /// The requesters labelled GitHub (not counted; kept to notice when one is relabelled).
    #[serde(default)]
    pub github_requesters: HashSet<RequesterId>,
    /// The distinct requesters behind each region (GitHub's too), for the region disclosure rule.
    #[serde(default)]
    pub region_requesters: BTreeMap<RegionLabel, HashSet<RequesterId>>,
    /// Everything.
    pub total: Figures,
}

/// Figures by day, region and week, and their total: a part of a [`Tally`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Part {
    /// By day.
    pub by_day: BTreeMap<i64, Figures>,
    /// By region label.
    pub by_region: BTreeMap<RegionLabel, Figures>,
    /// By client.
    #[serde(default)]
    pub by_client: BTreeMap<String, Figures>,
    /// Bytes sent by week and asset type.
    pub by_type_week: BTreeMap<i64, BTreeMap<String, u64>>,
    /// Everything.
    pub total: Figures,
}

impl Part {
    /// Whether it holds nothing.
    fn is_empty(&self) -> bool {
        *self == Part::default()
    }
}

/// Adds the bytes of each week and type of `other` to `into`.
fn add_weeks(
    into: &mut BTreeMap<i64, BTreeMap<String, u64>>,
    other: &BTreeMap<i64, BTreeMap<String, u64>>,
) -> Result<(), Overflow> {
    for (week, types) in other {
        let week = into.entry(*week).or_default();
        for (name, bytes) in types {
            let sum = week.entry(name.clone()).or_default();
            *sum = sum.checked_add(*bytes).ok_or(Overflow)?;
        }
    }
    Ok(())
}

impl Tally {
    fn merge(&mut self, other: &Tally) -> Result<(), Overflow> {
        for (day, figures) in &other.by_day {
            self.by_day.entry(*day).or_default().add(figures)?;
        }
        for (region, figures) in &other.by_region {
            self.by_region
                .entry(region.clone())
                .or_default()
                .add(figures)?;
        }
        for (client, figures) in &other.by_client {
            self.by_client
                .entry(client.clone())
                .or_default()
                .add(figures)?;
        }
        add_weeks(&mut self.by_type_week, &other.by_type_week)?;
        self.requesters.extend(&other.requesters);
        for (region, requesters) in &other.region_requesters {
            self.region_requesters
                .entry(region.clone())
                .or_default()
                .extend(requesters);
        }
        self.total.add(&other.total)
    }

    /// Takes away a part counted before (what a dataset does not bring to the archive). Every
    /// day, region and week of it is also in the dataset the archive counts it through, so no
    /// row empties.
    fn subtract(&mut self, part: &Part) {
        for (day, figures) in &part.by_day {
            if let Some(mine) = self.by_day.get_mut(day) {
                mine.subtract(figures);
            }
        }
        for (region, figures) in &part.by_region {
            if let Some(mine) = self.by_region.get_mut(region) {
                mine.subtract(figures);
            }
        }
        for (client, figures) in &part.by_client {
            if let Some(mine) = self.by_client.get_mut(client) {
                mine.subtract(figures);
            }
        }
        for (week, types) in &part.by_type_week {
            for (name, bytes) in types {
                if let Some(sum) = self
                    .by_type_week
                    .get_mut(week)
                    .and_then(|w| w.get_mut(name))
                {
                    *sum = sum.saturating_sub(*bytes);
                }
            }
        }
        self.total.subtract(&part.total);
    }
}

/// Every dataset's figures and the archive's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tallies {
    /// By dataset.
    pub datasets: BTreeMap<String, Tally>,
    /// Across the datasets summarized (requesters are a union, not a sum).
    pub archive: Tally,
    /// Object keys computed now whose dataset name cannot be a directory (counted under
    /// `undetermined`): how many, and the first few, escaped.
    pub undetermined_keys: (u64, Vec<String>),
}

/// One asset of one dataset while counting.
struct Asset {
    /// The dataset (index).
    dataset: u32,
    /// The archive counts its requests through this dataset.
    in_archive: bool,
    /// Its type (index into the asset types' names).
    kind: u16,
    /// Its figures.
    figures: Figures,
}

/// The Monday (day number) of the week of a day (day 0, 1970-01-01, was a Thursday).
pub(crate) fn week_start(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

/// Figures by (dataset, day), (dataset, region), (dataset, client) and (dataset, week, type),
/// accumulated by index during the one pass over the bins, folded into maps at the end.
#[derive(Default)]
struct Sums {
    days: FxHashMap<(u32, i64), Figures>,
    regions: FxHashMap<(u32, u32), Figures>,
    clients: FxHashMap<(u32, u32), Figures>,
    type_weeks: FxHashMap<(u32, i64, u16), u64>,
}

impl Sums {
    /// Adds one request (or, without one, one view) of `asset` on `day` from `region`.
    fn add(
        &mut self,
        asset: &Asset,
        day: i64,
        region: u32,
        request: Option<&BinRequest>,
    ) -> Result<(), Overflow> {
        let dataset = asset.dataset;
        let by_day = self.days.entry((dataset, day)).or_default();
        let by_region = self.regions.entry((dataset, region)).or_default();
        if let Some(request) = request {
            by_day.request(request)?;
            by_region.request(request)?;
            self.clients
                .entry((dataset, request.client))
                .or_default()
                .request(request)?;
            let bytes = self
                .type_weeks
                .entry((dataset, week_start(day), asset.kind))
                .or_default();
            *bytes = bytes.checked_add(request.bytes_sent).ok_or(Overflow)?;
        } else {
            by_day.views += 1;
            by_region.views += 1;
        }
        Ok(())
    }

    /// Moves the sums into each dataset's tally (`part` picks where in it).
    fn fold(
        self,
        tallies: &mut [Tally],
        (regions, clients, types): (&[RegionLabel], &[String], &[String]),
        part: fn(&mut Tally) -> PartMaps<'_>,
    ) {
        for ((dataset, day), figures) in self.days {
            part(&mut tallies[dataset as usize]).0.insert(day, figures);
        }
        for ((dataset, region), figures) in self.regions {
            part(&mut tallies[dataset as usize])
                .1
                .insert(regions[region as usize].clone(), figures);
        }
        for ((dataset, client), figures) in self.clients {
            let label = clients
                .get(client as usize)
                .map_or("unknown", String::as_str);
            // two ids of one label (a class this build does not know) add up
            let sum = part(&mut tallies[dataset as usize])
                .3
                .entry(label.to_owned())
                .or_default();
            *sum = sum.plus(&figures);
        }
        for ((dataset, week, kind), bytes) in self.type_weeks {
            part(&mut tallies[dataset as usize])
                .2
                .entry(week)
                .or_default()
                .insert(types[kind as usize].clone(), bytes);
        }
    }
}

/// The by-day, by-region, by-week and by-client maps of a tally or of its part apart from the
/// archive.
type PartMaps<'a> = (
    &'a mut BTreeMap<i64, Figures>,
    &'a mut BTreeMap<RegionLabel, Figures>,
    &'a mut BTreeMap<i64, BTreeMap<String, u64>>,
    &'a mut BTreeMap<String, Figures>,
);

/// Computes every figure from the store's bins, exactly; only those of the datasets in `only`
/// when given.
#[allow(
    clippy::too_many_lines,
    reason = "one pass over every bin, accumulating by index; split, its state would go to a struct for nothing"
)]
pub(crate) fn tally(
    store: &Store,
    grouping: &Grouping,
    only: Option<&HashSet<String>>,
) -> anyhow::Result<Tallies> {
    let mut regions: Vec<RegionLabel> = Vec::new();
    let mut region_index: HashMap<RegionLabel, u32> = HashMap::new();
    let mut requester_region: FxHashMap<u64, u32> = FxHashMap::default();
    let mut intern_region = |label: RegionLabel| -> u32 {
        let next = index(regions.len());
        *region_index.entry(label.clone()).or_insert_with(|| {
            regions.push(label);
            next
        })
    };
    let missing = intern_region(RegionLabel::missing());
    for (id, label) in store.requester_regions()? {
        let index = label.map_or(missing, &mut intern_region);
        requester_region.insert(id.0, index);
    }
    let github = region_index
        .iter()
        .find(|(label, _)| label.kind() == LabelKind::GitHub)
        .map(|(_, index)| *index);
    let counted = Counted::of(grouping, store)?;
    let clients: Vec<String> = store.clients()?.iter().map(Client::label).collect();

    // assets by (dataset, asset path, counted in the archive)
    let mut assets: Vec<Asset> = Vec::new();
    let mut asset_paths: Vec<String> = Vec::new();
    let mut asset_index: HashMap<(String, String, bool), u32> = HashMap::new();
    let mut datasets: Vec<String> = Vec::new();
    let mut dataset_index: HashMap<String, u32> = HashMap::new();
    // all requests, and those of assets the archive does not count through their dataset
    let mut sums = Sums::default();
    let mut apart = Sums::default();
    let mut requesters: FxHashMap<u32, HashSet<RequesterId>> = FxHashMap::default();
    let mut github_requesters: FxHashMap<u32, HashSet<RequesterId>> = FxHashMap::default();
    let mut region_requesters: FxHashMap<(u32, u32), HashSet<RequesterId>> = FxHashMap::default();
    // streaming request times by (asset, requester), for views
    let mut streams: FxHashMap<(u32, u64), Vec<i64>> = FxHashMap::default();

    let mut undetermined_keys: (u64, Vec<String>) = (0, Vec::new());
    let mut current_key: Vec<u8> = Vec::new();
    let mut current_assets: Vec<u32> = Vec::new();
    let mut requests: Vec<BinRequest> = Vec::new();
    store.visit_bins(None, |key, data| {
        if key != current_key.as_slice() {
            current_key = key.to_vec();
            let mut places = grouping.locate(key);
            places.retain(|place| only.is_none_or(|only| only.contains(&place.dataset)));
            if places.iter().any(|place| place.dataset == UNDETERMINED) {
                let (count, first) = &mut undetermined_keys;
                *count += 1;
                if first.len() < UNDETERMINED_SHOWN {
                    // said in the CRON log: no address, no control character
                    let key = String::from_utf8_lossy(key);
                    first.push(escape_controls(&mask_ips(&key)).into_owned());
                }
            }
            current_assets.clear();
            for place in places {
                let next_dataset = index(datasets.len());
                let dataset = *dataset_index
                    .entry(place.dataset.clone())
                    .or_insert_with(|| {
                        datasets.push(place.dataset.clone());
                        next_dataset
                    });
                let next = index(assets.len());
                let asset = *asset_index
                    .entry((place.dataset, place.asset.clone(), place.in_archive))
                    .or_insert_with(|| {
                        assets.push(Asset {
                            dataset,
                            in_archive: place.in_archive,
                            // once per asset (a Zarr store's chunks are one asset)
                            kind: grouping.asset_types.type_of(&place.asset),
                            figures: Figures::default(),
                        });
                        asset_paths.push(place.asset);
                        next
                    });
                current_assets.push(asset);
            }
        }
        if current_assets.is_empty() {
            return Ok(());
        }
        counted.decode(key, data, &mut requests)?;
        for request in &requests {
            let region = requester_region
                .get(&request.requester)
                .copied()
                .unwrap_or(missing);
            let day = request.time.div_euclid(86_400);
            for &asset in &current_assets {
                let entry = &mut assets[asset as usize];
                let dataset = entry.dataset;
                let overflow = |Overflow| Overflow::of(&datasets[dataset as usize]);
                entry.figures.request(request).map_err(overflow)?;
                let entry = &assets[asset as usize];
                sums.add(entry, day, region, Some(request))
                    .map_err(overflow)?;
                if !entry.in_archive {
                    apart
                        .add(entry, day, region, Some(request))
                        .map_err(overflow)?;
                }
                region_requesters
                    .entry((dataset, region))
                    .or_default()
                    .insert(RequesterId(request.requester));
                if Some(region) == github {
                    github_requesters
                        .entry(dataset)
                        .or_default()
                        .insert(RequesterId(request.requester));
                    continue;
                }
                requesters
                    .entry(dataset)
                    .or_default()
                    .insert(RequesterId(request.requester));
                if request.status != 200 {
                    streams
                        .entry((asset, request.requester))
                        .or_default()
                        .push(request.time);
                }
            }
        }
        Ok(())
    })?;

    for ((asset, requester), mut times) in streams {
        times.sort_unstable();
        let region = requester_region.get(&requester).copied().unwrap_or(missing);
        let mut previous = None;
        for time in times {
            let starts_view = previous.is_none_or(|p| time - p > VIEW_GAP_SECONDS);
            previous = Some(time);
            if starts_view {
                let entry = &mut assets[asset as usize];
                entry.figures.views += 1;
                let overflow = |Overflow| Overflow::of(&datasets[entry.dataset as usize]);
                let day = time.div_euclid(86_400);
                sums.add(entry, day, region, None).map_err(overflow)?;
                if !entry.in_archive {
                    apart.add(entry, day, region, None).map_err(overflow)?;
                }
            }
        }
    }

    // each dataset's tally, by the dataset's index
    let mut by_index: Vec<Tally> = vec![Tally::default(); datasets.len()];
    for (asset, path) in assets.iter().zip(asset_paths) {
        let overflow = |Overflow| Overflow::of(&datasets[asset.dataset as usize]);
        let tally = &mut by_index[asset.dataset as usize];
        tally.total.add(&asset.figures).map_err(overflow)?;
        if !asset.in_archive {
            tally
                .not_in_archive
                .total
                .add(&asset.figures)
                .map_err(overflow)?;
        }
        tally
            .by_asset
            .entry(path)
            .or_default()
            .add(&asset.figures)
            .map_err(overflow)?;
    }
    let types = grouping.asset_types.names();
    let names = (regions.as_slice(), clients.as_slice(), types);
    sums.fold(&mut by_index, names, |tally| {
        (
            &mut tally.by_day,
            &mut tally.by_region,
            &mut tally.by_type_week,
            &mut tally.by_client,
        )
    });
    apart.fold(&mut by_index, names, |tally| {
        let part = &mut tally.not_in_archive;
        (
            &mut part.by_day,
            &mut part.by_region,
            &mut part.by_type_week,
            &mut part.by_client,
        )
    });
    for ((dataset, region), set) in region_requesters {
        by_index[dataset as usize]
            .region_requesters
            .insert(regions[region as usize].clone(), set);
    }
    for (dataset, set) in requesters {
        by_index[dataset as usize].requesters = set;
    }
    for (dataset, set) in github_requesters {
        by_index[dataset as usize].github_requesters = set;
    }
    let mut tallies = Tallies {
        datasets: datasets.into_iter().zip(by_index).collect(),
        undetermined_keys,
        ..Tallies::default()
    };
    tallies.merge_archive()?;
    Ok(tallies)
}

impl Tallies {
    /// Computes the archive from the datasets.
    pub(super) fn merge_archive(&mut self) -> anyhow::Result<()> {
        let mut archive = Tally::default();
        for tally in self.datasets.values() {
            archive
                .merge(tally)
                .map_err(|Overflow| Overflow::of(super::ARCHIVE))?;
            archive.subtract(&tally.not_in_archive);
        }
        self.archive = archive;
        Ok(())
    }
}

/// A table index (tables hold far fewer than 4 billion rows).
fn index(len: usize) -> u32 {
    u32::try_from(len).expect("fewer than 4 billion datasets, assets and regions")
}
