//! Exact figures from the store's bins: per dataset by day, asset and region, requester sets and
//! views; saved per dataset so that a later run computes again only what changed.

use std::collections::{BTreeMap, HashMap, HashSet};

use rustc_hash::FxHashMap;

use super::grouping::{Grouping, UNDETERMINED};
use crate::bins::{self, BinRequest};
use crate::labels::{LabelKind, RegionLabel};
use crate::output::escape_controls;
use crate::privacy::mask_ips;
use crate::store::{BatchNumber, LabelRound, RequesterId, Store};

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
        self.requesters.extend(&other.requesters);
        for (region, requesters) in &other.region_requesters {
            self.region_requesters
                .entry(region.clone())
                .or_default()
                .extend(requesters);
        }
        self.total.add(&other.total)
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

    // assets by (dataset, asset); figures accumulated by index, folded into maps at the end
    let mut assets: Vec<(String, String)> = Vec::new();
    let mut asset_index: HashMap<(String, String), u32> = HashMap::new();
    let mut by_asset: Vec<Figures> = Vec::new();
    let mut dataset_of_asset: Vec<u32> = Vec::new();
    let mut datasets: Vec<String> = Vec::new();
    let mut dataset_index: HashMap<String, u32> = HashMap::new();
    let mut by_day: FxHashMap<(u32, i64), Figures> = FxHashMap::default();
    let mut by_region: FxHashMap<(u32, u32), Figures> = FxHashMap::default();
    let mut requesters: FxHashMap<u32, HashSet<RequesterId>> = FxHashMap::default();
    let mut github_requesters: FxHashMap<u32, HashSet<RequesterId>> = FxHashMap::default();
    let mut region_requesters: FxHashMap<(u32, u32), HashSet<RequesterId>> = FxHashMap::default();
    // streaming request times by (asset, requester), for views
    let mut streams: FxHashMap<(u32, u64), Vec<i64>> = FxHashMap::default();

    let mut undetermined_keys: (u64, Vec<String>) = (0, Vec::new());
    let mut current_key: Vec<u8> = Vec::new();
    let mut current_asset: Option<u32> = None;
    let mut requests: Vec<BinRequest> = Vec::new();
    store.visit_bins(None, |key, data| {
        if key != current_key.as_slice() {
            current_key = key.to_vec();
            let located = grouping
                .locate(key)
                .filter(|(dataset, _)| only.is_none_or(|only| only.contains(dataset)));
            if let Some((dataset, _)) = &located
                && dataset == UNDETERMINED
            {
                let (count, first) = &mut undetermined_keys;
                *count += 1;
                if first.len() < UNDETERMINED_SHOWN {
                    // said in the CRON log: no address, no control character
                    let key = String::from_utf8_lossy(key);
                    first.push(escape_controls(&mask_ips(&key)).into_owned());
                }
            }
            current_asset = located.map(|(dataset, asset)| {
                let next_dataset = index(datasets.len());
                let dataset_id = *dataset_index.entry(dataset.clone()).or_insert_with(|| {
                    datasets.push(dataset.clone());
                    next_dataset
                });
                let next = index(assets.len());
                *asset_index
                    .entry((dataset.clone(), asset.clone()))
                    .or_insert_with(|| {
                        assets.push((dataset, asset));
                        by_asset.push(Figures::default());
                        dataset_of_asset.push(dataset_id);
                        next
                    })
            });
        }
        let Some(asset) = current_asset else {
            return Ok(());
        };
        let dataset = dataset_of_asset[asset as usize];
        requests.clear();
        bins::decode_into(data, &mut requests)
            .map_err(|error| anyhow::anyhow!("object {}: {error}", String::from_utf8_lossy(key)))?;
        for request in &requests {
            let region = requester_region
                .get(&request.requester)
                .copied()
                .unwrap_or(missing);
            let overflow = |Overflow| Overflow::of(&datasets[dataset as usize]);
            by_asset[asset as usize]
                .request(request)
                .map_err(overflow)?;
            by_day
                .entry((dataset, request.time.div_euclid(86_400)))
                .or_default()
                .request(request)
                .map_err(overflow)?;
            by_region
                .entry((dataset, region))
                .or_default()
                .request(request)
                .map_err(overflow)?;
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
        Ok(())
    })?;

    for ((asset, requester), mut times) in streams {
        times.sort_unstable();
        let dataset = dataset_of_asset[asset as usize];
        let region = requester_region.get(&requester).copied().unwrap_or(missing);
        let mut previous = None;
        for time in times {
            let starts_view = previous.is_none_or(|p| time - p > VIEW_GAP_SECONDS);
            previous = Some(time);
            if starts_view {
                by_asset[asset as usize].views += 1;
                by_day
                    .entry((dataset, time.div_euclid(86_400)))
                    .or_default()
                    .views += 1;
                by_region.entry((dataset, region)).or_default().views += 1;
            }
        }
    }

    // each dataset's tally, by the dataset's index
    let mut by_index: Vec<Tally> = vec![Tally::default(); datasets.len()];
    for (index, (_, asset)) in assets.into_iter().enumerate() {
        let dataset = dataset_of_asset[index] as usize;
        let overflow = |Overflow| Overflow::of(&datasets[dataset]);
        let tally = &mut by_index[dataset];
        tally.total.add(&by_asset[index]).map_err(overflow)?;
        tally
            .by_asset
            .entry(asset)
            .or_default()
            .add(&by_asset[index])
            .map_err(overflow)?;
    }
    for ((dataset, day), figures) in by_day {
        by_index[dataset as usize].by_day.insert(day, figures);
    }
    for ((dataset, region), figures) in by_region {
        by_index[dataset as usize]
            .by_region
            .insert(regions[region as usize].clone(), figures);
    }
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
    fn merge_archive(&mut self) -> anyhow::Result<()> {
        let mut archive = Tally::default();
        for tally in self.datasets.values() {
            archive
                .merge(tally)
                .map_err(|Overflow| Overflow::of(super::ARCHIVE))?;
        }
        self.archive = archive;
        Ok(())
    }
}

/// The datasets whose figures changed since the saved ones: those with objects extracted in
/// later batches, and those where a requester got a new label.
fn changed_datasets(
    store: &Store,
    grouping: &Grouping,
    saved: &BTreeMap<String, Tally>,
    since: (BatchNumber, LabelRound),
) -> anyhow::Result<HashSet<String>> {
    let mut changed = HashSet::new();
    let new_objects = store.objects_extracted_since(since.0)?;
    if !new_objects.is_empty() {
        for (key, id) in store.object_keys()? {
            if new_objects.contains(&id)
                && let Some((dataset, _)) = grouping.locate(&key)
            {
                changed.insert(dataset);
            }
        }
    }
    let relabelled = store.requesters_labelled_since(since.1)?;
    if !relabelled.is_empty() {
        for (dataset, tally) in saved {
            let seen = tally.requesters.iter().chain(&tally.github_requesters);
            if seen.into_iter().any(|id| relabelled.contains(id)) {
                changed.insert(dataset.clone());
            }
        }
    }
    Ok(changed)
}

/// Every dataset's exact figures: the saved ones, with those of the datasets that changed since
/// they were saved computed again (all of them on a first run, with `full`, or when the grouping
/// changed); saves what it computed.
pub(crate) fn current_tallies(
    store: &Store,
    grouping: &Grouping,
    full: bool,
) -> anyhow::Result<(Tallies, u64)> {
    let version = store.data_version()?;
    let grouping_key = format!("{grouping:?}");
    let saved_state = store.stage_state("tallies")?;
    let since = saved_state.as_deref().and_then(|state| {
        let (key, counters) = state.rsplit_once('|')?;
        let (batches, labels) = counters.split_once(':')?;
        (key == grouping_key).then_some((
            BatchNumber(batches.parse().ok()?),
            LabelRound(labels.parse().ok()?),
        ))
    });
    let state = format!("{grouping_key}|{}:{}", version.0.0, version.1.0);
    let (Some(since), false) = (since, full) else {
        let tallies = tally(store, grouping, None)?;
        let rows = serialize(&tallies.datasets)?;
        store.save_tallies(&rows, true, &state)?;
        let computed = tallies.datasets.len() as u64;
        return Ok((tallies, computed));
    };
    let mut datasets: BTreeMap<String, Tally> = BTreeMap::new();
    for (dataset, data) in store.saved_tallies()? {
        let tally = serde_json::from_str(&data).map_err(|error| {
            anyhow::anyhow!(
                "the saved figures of dataset {dataset} (store table dataset_tallies) are damaged ({error}): run `s3tally update summaries --full` to compute them again"
            )
        })?;
        datasets.insert(dataset, tally);
    }
    let changed = changed_datasets(store, grouping, &datasets, since)?;
    let mut undetermined_keys = (0, Vec::new());
    if changed.is_empty() {
        store.save_tallies(&[], false, &state)?;
    } else {
        let fresh = tally(store, grouping, Some(&changed))?;
        undetermined_keys = fresh.undetermined_keys;
        for dataset in &changed {
            datasets.remove(dataset);
        }
        let rows = serialize(&fresh.datasets)?;
        datasets.extend(fresh.datasets);
        store.save_tallies(&rows, false, &state)?;
    }
    let mut tallies = Tallies {
        datasets,
        archive: Tally::default(),
        undetermined_keys,
    };
    tallies.merge_archive()?;
    Ok((tallies, changed.len() as u64))
}

fn serialize(datasets: &BTreeMap<String, Tally>) -> anyhow::Result<Vec<(String, String)>> {
    datasets
        .iter()
        .map(|(name, tally)| Ok((name.clone(), serde_json::to_string(tally)?)))
        .collect()
}

/// A table index (tables hold far fewer than 4 billion rows).
fn index(len: usize) -> u32 {
    u32::try_from(len).expect("fewer than 4 billion datasets, assets and regions")
}
