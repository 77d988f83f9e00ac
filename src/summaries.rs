//! The summaries and totals stages: per dataset and archive-wide figures by day, asset and region,
//! computed from the exact per-request data, written private by default, in the format
//! s3-log-extraction publishes.
//!
//! A request is a GET-2xx; a download a request with status 200; a view a maximal run of streaming
//! requests (2xx other than 200) by one requester to one asset with no gap over 8 hours, counted
//! once, on the day and in the region of its first request. Requesters labelled `GitHub` (CI
//! traffic) make no views and are not counted as requesters; their requests, bytes and downloads
//! count.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::bins::{self, BinRequest};
use crate::coordinates::{KnownRegion, MISSING, builtin_table};
use crate::output::write_if_changed;
use crate::store::Store;

/// Longest gap between two requests of one view, in seconds.
pub const VIEW_GAP_SECONDS: i64 = 8 * 3600;
/// The dataset of keys without enough segments.
pub const UNASSOCIATED: &str = "unassociated";
/// The directory of the archive-wide summaries.
pub const ARCHIVE: &str = "archive";
/// The per-dataset totals file.
pub const TOTALS_FILE: &str = "totals.json";
/// The archive totals file.
pub const ARCHIVE_TOTALS_FILE: &str = "archive_totals.json";

/// How small counts are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privacy {
    /// Counts below this are written `<minimum>`.
    pub minimum: u64,
    /// Other counts are rounded to the nearest multiple of this (halves up).
    pub round_to: u64,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            minimum: 50,
            round_to: 20,
        }
    }
}

impl Privacy {
    /// A count as published.
    pub fn count(&self, n: u64) -> String {
        if n < self.minimum {
            format!("<{}", self.minimum)
        } else {
            self.rounded(n).to_string()
        }
    }

    fn rounded(&self, n: u64) -> u64 {
        if self.round_to <= 1 {
            n
        } else {
            (n + self.round_to / 2) / self.round_to * self.round_to
        }
    }

    /// A count as published, in JSON: a number, or the string `<minimum>`.
    pub fn json(&self, n: u64) -> serde_json::Value {
        if n < self.minimum {
            serde_json::Value::String(format!("<{}", self.minimum))
        } else {
            serde_json::Value::from(self.rounded(n))
        }
    }

    /// Whether counts are published exactly (for the archive's internal use only).
    pub fn is_exact(&self) -> bool {
        self.minimum <= 1 && self.round_to <= 1
    }
}

/// How object keys map to datasets and assets, and which datasets to summarize.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// Segments of the key that name the dataset.
    pub dataset_depth: usize,
    /// Keys below `<prefix><id>/` count as the one asset `<id>` (directory-like stores).
    pub collapse_prefixes: Vec<String>,
    /// Only these datasets (all when empty).
    pub pick: Vec<String>,
    /// Not these datasets.
    pub skip: Vec<String>,
}

impl Default for Grouping {
    fn default() -> Self {
        Self {
            dataset_depth: 1,
            collapse_prefixes: Vec::new(),
            pick: Vec::new(),
            skip: Vec::new(),
        }
    }
}

impl Grouping {
    /// The dataset and asset (percent-decoded) of an object key; `None` for a dataset not picked.
    pub fn locate(&self, key: &[u8]) -> Option<(String, String)> {
        let mut key = String::from_utf8_lossy(key).into_owned();
        for prefix in &self.collapse_prefixes {
            if let Some(rest) = key.strip_prefix(prefix.as_str())
                && let Some(slash) = rest.find('/')
            {
                key.truncate(prefix.len() + slash);
                break;
            }
        }
        let depth = self.dataset_depth.max(1);
        let segments: Vec<&str> = key.splitn(depth + 1, '/').collect();
        let (dataset, asset) = if segments.len() > depth {
            (segments[..depth].join("/"), segments[depth].to_owned())
        } else {
            (UNASSOCIATED.to_owned(), key.clone())
        };
        let picked =
            (self.pick.is_empty() || self.pick.contains(&dataset)) && !self.skip.contains(&dataset);
        picked.then(|| {
            let asset = percent_encoding::percent_decode_str(&asset)
                .decode_utf8_lossy()
                .into_owned();
            (dataset, asset)
        })
    }
}

/// Bytes, requests, downloads and views.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
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
    fn add(&mut self, other: &Figures) {
        self.bytes_sent += other.bytes_sent;
        self.requests += other.requests;
        self.downloads += other.downloads;
        self.views += other.views;
    }

    fn request(&mut self, request: &BinRequest) {
        self.bytes_sent += request.bytes_sent;
        self.requests += 1;
        self.downloads += u64::from(request.status == 200);
    }
}

/// The exact figures of one dataset, or of the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// By day (days since 1970-01-01, UTC).
    pub by_day: BTreeMap<i64, Figures>,
    /// By asset path (empty for the archive).
    pub by_asset: BTreeMap<String, Figures>,
    /// By region label (`missing` while unresolved).
    pub by_region: BTreeMap<String, Figures>,
    /// Distinct requesters (store ids), GitHub excluded.
    pub requesters: HashSet<u64>,
    /// The requesters labelled GitHub (not counted; kept to notice when one is relabelled).
    #[serde(default)]
    pub github_requesters: HashSet<u64>,
    /// Everything.
    pub total: Figures,
}

impl Tally {
    fn merge(&mut self, other: &Tally) {
        for (day, figures) in &other.by_day {
            self.by_day.entry(*day).or_default().add(figures);
        }
        for (region, figures) in &other.by_region {
            self.by_region
                .entry(region.clone())
                .or_default()
                .add(figures);
        }
        self.requesters.extend(&other.requesters);
        self.total.add(&other.total);
    }
}

/// Every dataset's figures and the archive's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tallies {
    /// By dataset.
    pub datasets: BTreeMap<String, Tally>,
    /// Across the datasets summarized (requesters are a union, not a sum).
    pub archive: Tally,
}

/// Computes every figure from the store's bins, exactly; only those of the datasets in `only`
/// when given.
pub fn tally(
    store: &Store,
    grouping: &Grouping,
    only: Option<&HashSet<String>>,
) -> anyhow::Result<Tallies> {
    let mut regions: Vec<String> = Vec::new();
    let mut region_index: HashMap<String, u32> = HashMap::new();
    let mut requester_region: FxHashMap<u64, u32> = FxHashMap::default();
    let mut intern_region = |label: String| -> u32 {
        let next = regions.len() as u32;
        *region_index.entry(label.clone()).or_insert_with(|| {
            regions.push(label);
            next
        })
    };
    let missing = intern_region(MISSING.to_owned());
    for (id, label) in store.requester_regions()? {
        let index = label.map_or(missing, &mut intern_region);
        requester_region.insert(id, index);
    }
    let github = region_index.get("GitHub").copied();

    // assets by (dataset, asset); figures accumulated by index, folded into maps at the end
    let mut assets: Vec<(String, String)> = Vec::new();
    let mut asset_index: HashMap<(String, String), u32> = HashMap::new();
    let mut by_asset: Vec<Figures> = Vec::new();
    let mut dataset_of_asset: Vec<u32> = Vec::new();
    let mut datasets: Vec<String> = Vec::new();
    let mut dataset_index: HashMap<String, u32> = HashMap::new();
    let mut by_day: FxHashMap<(u32, i64), Figures> = FxHashMap::default();
    let mut by_region: FxHashMap<(u32, u32), Figures> = FxHashMap::default();
    let mut requesters: FxHashMap<u32, HashSet<u64>> = FxHashMap::default();
    let mut github_requesters: FxHashMap<u32, HashSet<u64>> = FxHashMap::default();
    // streaming request times by (asset, requester), for views
    let mut streams: FxHashMap<(u32, u64), Vec<i64>> = FxHashMap::default();

    let mut current_key: Vec<u8> = Vec::new();
    let mut current_asset: Option<u32> = None;
    let mut requests: Vec<BinRequest> = Vec::new();
    store.visit_bins(None, |key, data| {
        if key != current_key.as_slice() {
            current_key = key.to_vec();
            let located = grouping
                .locate(key)
                .filter(|(dataset, _)| only.is_none_or(|only| only.contains(dataset)));
            current_asset = located.map(|(dataset, asset)| {
                let next_dataset = datasets.len() as u32;
                let dataset_id = *dataset_index.entry(dataset.clone()).or_insert_with(|| {
                    datasets.push(dataset.clone());
                    next_dataset
                });
                let next = assets.len() as u32;
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
            by_asset[asset as usize].request(request);
            by_day
                .entry((dataset, request.time.div_euclid(86_400)))
                .or_default()
                .request(request);
            by_region
                .entry((dataset, region))
                .or_default()
                .request(request);
            if Some(region) == github {
                github_requesters
                    .entry(dataset)
                    .or_default()
                    .insert(request.requester);
                continue;
            }
            requesters
                .entry(dataset)
                .or_default()
                .insert(request.requester);
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

    let mut tallies = Tallies::default();
    for (index, (dataset, asset)) in assets.into_iter().enumerate() {
        let tally = tallies.datasets.entry(dataset).or_default();
        tally.total.add(&by_asset[index]);
        tally
            .by_asset
            .entry(asset)
            .or_default()
            .add(&by_asset[index]);
    }
    for ((dataset, day), figures) in by_day {
        tallies
            .datasets
            .entry(datasets[dataset as usize].clone())
            .or_default()
            .by_day
            .insert(day, figures);
    }
    for ((dataset, region), figures) in by_region {
        tallies
            .datasets
            .entry(datasets[dataset as usize].clone())
            .or_default()
            .by_region
            .insert(regions[region as usize].clone(), figures);
    }
    for (dataset, set) in requesters {
        tallies
            .datasets
            .entry(datasets[dataset as usize].clone())
            .or_default()
            .requesters = set;
    }
    for (dataset, set) in github_requesters {
        tallies
            .datasets
            .entry(datasets[dataset as usize].clone())
            .or_default()
            .github_requesters = set;
    }
    tallies.merge_archive();
    Ok(tallies)
}

impl Tallies {
    /// Computes the archive from the datasets.
    fn merge_archive(&mut self) {
        let mut archive = Tally::default();
        for tally in self.datasets.values() {
            archive.merge(tally);
        }
        self.archive = archive;
    }
}

/// The datasets whose figures changed since the saved ones: those with objects extracted in
/// later batches, and those where a requester got a new label.
fn changed_datasets(
    store: &Store,
    grouping: &Grouping,
    saved: &BTreeMap<String, Tally>,
    since: (i64, i64),
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
pub fn current_tallies(
    store: &mut Store,
    grouping: &Grouping,
    full: bool,
) -> anyhow::Result<(Tallies, u64)> {
    let version = store.data_version()?;
    let grouping_key = format!("{grouping:?}");
    let saved_state = store.stage_state("tallies")?;
    let since = saved_state.as_deref().and_then(|state| {
        let (key, counters) = state.rsplit_once('|')?;
        let (batches, labels) = counters.split_once(':')?;
        (key == grouping_key).then_some((batches.parse().ok()?, labels.parse().ok()?))
    });
    let state = format!("{grouping_key}|{}:{}", version.0, version.1);
    let (Some(since), false) = (since, full) else {
        let tallies = tally(store, grouping, None)?;
        let rows = serialize(&tallies.datasets)?;
        store.save_tallies(&rows, true, &state)?;
        let computed = tallies.datasets.len() as u64;
        return Ok((tallies, computed));
    };
    let mut datasets: BTreeMap<String, Tally> = BTreeMap::new();
    for (dataset, data) in store.saved_tallies()? {
        datasets.insert(dataset, serde_json::from_str(&data)?);
    }
    let changed = changed_datasets(store, grouping, &datasets, since)?;
    if !changed.is_empty() {
        let fresh = tally(store, grouping, Some(&changed))?;
        for dataset in &changed {
            datasets.remove(dataset);
        }
        let rows = serialize(&fresh.datasets)?;
        datasets.extend(fresh.datasets);
        store.save_tallies(&rows, false, &state)?;
    } else {
        store.save_tallies(&[], false, &state)?;
    }
    let mut tallies = Tallies {
        datasets,
        archive: Tally::default(),
    };
    tallies.merge_archive();
    Ok((tallies, changed.len() as u64))
}

fn serialize(datasets: &BTreeMap<String, Tally>) -> anyhow::Result<Vec<(String, String)>> {
    datasets
        .iter()
        .map(|(name, tally)| Ok((name.clone(), serde_json::to_string(tally)?)))
        .collect()
}

/// What the summaries and totals need besides the grouping.
#[derive(Debug, Clone)]
pub struct SummaryOptions {
    /// Where the files go.
    pub output_dir: PathBuf,
    /// Which keys go where.
    pub grouping: Grouping,
    /// How counts are published.
    pub privacy: Privacy,
    /// A `by_region.tsv` is rewritten only when more than this many resolved regions change
    /// (0: always rewritten).
    pub region_threshold: usize,
}

/// What a summaries or totals run wrote.
#[derive(Debug, Default)]
pub struct SummaryReport {
    /// Nothing was extracted or labelled since the last run with the same options: nothing done.
    pub nothing_new: bool,
    /// Datasets summarized.
    pub datasets: u64,
    /// Datasets whose figures were computed again (the others were unchanged since last run).
    pub recomputed: u64,
    /// Files written (content changed).
    pub written: Vec<PathBuf>,
    /// Files whose content did not change.
    pub unchanged: u64,
    /// `by_region.tsv` files held back by the region threshold: path and regions changed.
    pub held_back: Vec<(PathBuf, usize)>,
}

impl SummaryReport {
    /// A short human summary, one item per line.
    pub fn summary(&self, stage: &str) -> Vec<String> {
        if self.nothing_new {
            return vec![format!(
                "{stage}: nothing new since the last run (--full recomputes anyway)"
            )];
        }
        let mut lines = vec![format!(
            "{stage}: {} datasets ({} computed again), {} files written, {} unchanged",
            self.datasets,
            self.recomputed,
            self.written.len(),
            self.unchanged
        )];
        const LISTED: usize = 5;
        for (path, changed) in self.held_back.iter().take(LISTED) {
            lines.push(format!(
                "{stage}: {} not updated: only {changed} resolved regions changed (see --region-threshold)",
                path.display()
            ));
        }
        if self.held_back.len() > LISTED {
            lines.push(format!(
                "{stage}: {} more by_region.tsv files not updated for the same reason",
                self.held_back.len() - LISTED
            ));
        }
        lines
    }

    fn write(&mut self, path: PathBuf, content: &str) -> std::io::Result<()> {
        if write_if_changed(&path, content)? {
            self.written.push(path);
        } else {
            self.unchanged += 1;
        }
        Ok(())
    }
}

/// The header and rows of one summary table.
fn table<K>(
    key_name: &str,
    rows: &BTreeMap<K, Figures>,
    privacy: &Privacy,
    key: impl Fn(&K) -> String,
) -> String {
    let mut text = format!(
        "{key_name}\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\tnumber_of_views\n"
    );
    for (k, figures) in rows {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            key(k),
            figures.bytes_sent,
            privacy.count(figures.requests),
            privacy.count(figures.downloads),
            privacy.count(figures.views)
        ));
    }
    text
}

/// A day number as `YYYY-MM-DD`.
fn date(day: &i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Whether a region label names a resolved region (`CC/Region`, `AWS/<region>`, `GCP/<scope>`).
fn is_resolved(label: &str) -> bool {
    label.contains('/')
}

/// How many resolved regions differ between two versions of a `by_region.tsv`.
pub fn resolved_regions_changed(old: &str, new: &str) -> usize {
    let rows = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .skip(1)
            .filter_map(|line| line.split_once('\t'))
            .filter(|(label, _)| is_resolved(label))
            .map(|(label, rest)| (label.to_owned(), rest.to_owned()))
            .collect()
    };
    let (old, new) = (rows(old), rows(new));
    old.keys()
        .chain(new.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|label| old.get(*label) != new.get(*label))
        .count()
}

/// Writes a `by_region.tsv` unless too few resolved regions changed since the file there.
fn write_by_region(
    report: &mut SummaryReport,
    path: PathBuf,
    content: &str,
    threshold: usize,
) -> std::io::Result<()> {
    if threshold > 0 {
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != content {
            let changed = resolved_regions_changed(&old, content);
            if changed <= threshold {
                report.held_back.push((path, changed));
                return Ok(());
            }
        }
    }
    report.write(path, content)
}

/// Writes the summaries of every dataset and of the archive.
pub fn write_summaries(
    tallies: &Tallies,
    options: &SummaryOptions,
) -> anyhow::Result<SummaryReport> {
    let mut report = SummaryReport {
        datasets: tallies.datasets.len() as u64,
        ..SummaryReport::default()
    };
    for (name, tally) in &tallies.datasets {
        write_tables(
            &mut report,
            &options.output_dir.join(name),
            tally,
            true,
            options,
        )?;
    }
    let archive = options.output_dir.join(ARCHIVE);
    write_tables(&mut report, &archive, &tallies.archive, false, options)?;
    Ok(report)
}

/// Writes the tables of one dataset (with `by_asset.tsv`) or of the archive (without) in `base`.
fn write_tables(
    report: &mut SummaryReport,
    base: &Path,
    tally: &Tally,
    with_assets: bool,
    options: &SummaryOptions,
) -> std::io::Result<()> {
    let privacy = &options.privacy;
    report.write(
        base.join("by_day.tsv"),
        &table("date", &tally.by_day, privacy, date),
    )?;
    if with_assets {
        let by_asset = table("asset_path", &tally.by_asset, privacy, String::clone);
        report.write(base.join("by_asset.tsv"), &by_asset)?;
    }
    let by_region = table("region", &tally.by_region, privacy, String::clone);
    write_by_region(
        report,
        base.join("by_region.tsv"),
        &by_region,
        options.region_threshold,
    )?;
    let requesters = privacy.count(tally.requesters.len() as u64);
    report.write(base.join("requester_count.tsv"), &format!("{requesters}\n"))
}

/// The country of a region label: the country part of a place label, the data centre's country
/// for a cloud region; none for service and place-less labels.
fn country(label: &str, known: &HashMap<String, KnownRegion>) -> Option<String> {
    if let Some(region) = known.get(label) {
        return Some(region.country.clone());
    }
    let code = label.split('/').next()?;
    (code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase())).then(|| code.to_owned())
}

/// The totals of one dataset or of the archive, with their published keys.
fn totals(
    tally: &Tally,
    privacy: &Privacy,
    known: &HashMap<String, KnownRegion>,
) -> serde_json::Value {
    let countries: BTreeSet<String> = tally
        .by_region
        .keys()
        .filter_map(|label| country(label, known))
        .collect();
    let mut map = serde_json::Map::new();
    map.insert("total_bytes_sent".into(), tally.total.bytes_sent.into());
    map.insert(
        "number_of_unique_regions".into(),
        tally.by_region.len().into(),
    );
    map.insert("number_of_unique_countries".into(), countries.len().into());
    map.insert(
        "total_number_of_requests".into(),
        privacy.json(tally.total.requests),
    );
    map.insert(
        "total_number_of_downloads".into(),
        privacy.json(tally.total.downloads),
    );
    map.insert(
        "number_of_requesters".into(),
        privacy.json(tally.requesters.len() as u64),
    );
    map.insert(
        "total_number_of_views".into(),
        privacy.json(tally.total.views),
    );
    serde_json::Value::Object(map)
}

/// Writes `totals.json` (by dataset) and `archive_totals.json`: keys sorted, two-space indent.
pub fn write_totals(tallies: &Tallies, options: &SummaryOptions) -> anyhow::Result<SummaryReport> {
    let known = builtin_table();
    let mut report = SummaryReport {
        datasets: tallies.datasets.len() as u64,
        ..SummaryReport::default()
    };
    let by_dataset: serde_json::Map<String, serde_json::Value> = tallies
        .datasets
        .iter()
        .map(|(name, tally)| (name.clone(), totals(tally, &options.privacy, &known)))
        .collect();
    let json =
        |value: &serde_json::Value| serde_json::to_string_pretty(value).map(|text| text + "\n");
    report.write(
        options.output_dir.join(TOTALS_FILE),
        &json(&serde_json::Value::Object(by_dataset))?,
    )?;
    report.write(
        options.output_dir.join(ARCHIVE_TOTALS_FILE),
        &json(&totals(&tallies.archive, &options.privacy, &known))?,
    )?;
    Ok(report)
}

/// Which files a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The TSV summaries.
    Summaries,
    /// The JSON totals.
    Totals,
}

impl Stage {
    /// Its name in messages and in the store.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Summaries => "summaries",
            Stage::Totals => "totals",
        }
    }
}

/// Runs the summaries or the totals stage: nothing when nothing was extracted or labelled since
/// the last run with the same options (unless `full`), else every figure recomputed exactly and
/// the files whose content changed rewritten.
pub fn update(
    store: &mut Store,
    options: &SummaryOptions,
    stage: Stage,
    full: bool,
) -> anyhow::Result<SummaryReport> {
    let state = format!("{:?}|{options:?}", store.data_version()?);
    if !full
        && options.output_dir.is_dir()
        && store.stage_state(stage.name())?.as_deref() == Some(state.as_str())
    {
        return Ok(SummaryReport {
            nothing_new: true,
            ..SummaryReport::default()
        });
    }
    let (tallies, recomputed) = current_tallies(store, &options.grouping, full)?;
    let mut report = match stage {
        Stage::Summaries => write_summaries(&tallies, options)?,
        Stage::Totals => write_totals(&tallies, options)?,
    };
    report.recomputed = recomputed;
    store.set_stage_state(stage.name(), &state)?;
    Ok(report)
}

/// Reads a written summary table back (for `show`): header and rows.
pub fn read_table(path: &Path) -> std::io::Result<Vec<Vec<String>>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_hidden_and_others_rounded() {
        let privacy = Privacy::default();
        let shown: Vec<String> = [0, 1, 49, 50, 59, 60, 69, 70, 71, 1234]
            .iter()
            .map(|&n| privacy.count(n))
            .collect();
        // by hand: below 50 hidden; 50 is halfway between 40 and 60 and goes up; 70 likewise to 80
        assert_eq!(
            shown,
            [
                "<50", "<50", "<50", "60", "60", "60", "60", "80", "80", "1240"
            ]
        );
        let exact = Privacy {
            minimum: 0,
            round_to: 1,
        };
        assert_eq!(exact.count(0), "0");
        assert_eq!(exact.count(49), "49");
        assert!(exact.is_exact());
        assert_eq!(privacy.json(10), serde_json::json!("<50"));
        assert_eq!(privacy.json(61), serde_json::json!(60));
    }

    #[test]
    fn keys_map_to_datasets_and_assets() {
        let mut grouping = Grouping::default();
        let locate = |g: &Grouping, key: &str| g.locate(key.as_bytes());
        assert_eq!(
            locate(&grouping, "ds1/sub-1/a%20b.nii"),
            Some(("ds1".into(), "sub-1/a b.nii".into()))
        );
        assert_eq!(
            locate(&grouping, "README"),
            Some((UNASSOCIATED.into(), "README".into()))
        );
        grouping.collapse_prefixes = vec!["zarr/".into()];
        assert_eq!(
            locate(&grouping, "zarr/abc-123/0/1/2"),
            Some(("zarr".into(), "abc-123".into()))
        );
        assert_eq!(
            locate(&grouping, "zarr/abc-123"),
            Some(("zarr".into(), "abc-123".into()))
        );
        grouping.dataset_depth = 2;
        grouping.collapse_prefixes.clear();
        assert_eq!(
            locate(&grouping, "dandisets/000001/draft/a.nwb"),
            Some(("dandisets/000001".into(), "draft/a.nwb".into()))
        );
        assert_eq!(
            locate(&grouping, "dandisets/x"),
            Some((UNASSOCIATED.into(), "dandisets/x".into()))
        );
        grouping.dataset_depth = 1;
        grouping.skip = vec!["ds2".into()];
        assert_eq!(locate(&grouping, "ds2/a"), None);
        grouping.pick = vec!["ds3".into()];
        assert_eq!(locate(&grouping, "ds1/a"), None);
        assert!(locate(&grouping, "ds3/a").is_some());
    }

    #[test]
    fn changed_resolved_regions_are_counted() {
        let old = "region\tb\tr\td\tv\nUS/California\t5\t<50\t<50\t<50\nmissing\t1\t<50\t<50\t<50\nFR/Brittany\t3\t<50\t<50\t<50\n";
        let new = "region\tb\tr\td\tv\nUS/California\t9\t<50\t<50\t<50\nmissing\t7\t<50\t<50\t<50\nDE/Berlin\t3\t<50\t<50\t<50\n";
        // California changed, Brittany gone, Berlin new; `missing` is not a resolved region
        assert_eq!(resolved_regions_changed(old, new), 3);
        assert_eq!(resolved_regions_changed("", new), 2);
        assert_eq!(resolved_regions_changed(new, new), 0);
    }

    #[test]
    fn countries_of_labels() {
        let known = builtin_table();
        assert_eq!(country("US/California", &known).as_deref(), Some("US"));
        assert_eq!(country("CH", &known).as_deref(), Some("CH"));
        assert_eq!(country("AWS/eu-west-1", &known).as_deref(), Some("IE"));
        assert_eq!(country("GCP/asia-east1", &known).as_deref(), Some("TW"));
        for none in ["VPN", "GitHub", "bogon", "unknown", "missing", "AWS/GLOBAL"] {
            assert_eq!(country(none, &known), None, "{none}");
        }
    }
}
