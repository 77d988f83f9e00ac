//! The regions stage: a region label for every requester waiting for one, then its raw IP is
//! deleted.
//!
//! First match wins: `unknown` (the address does not parse), `bogon` (not globally routable), a
//! known service from its published ranges (`GitHub`, `AWS/<region>`, `GCP/<scope>`, `VPN`, in that
//! order), else ipinfo (`CC/Region`, `CC`, `bogon` or `unknown`). Labels are committed after every
//! answered batch, so a kill loses at most the batches in flight.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;

use crate::Outcome;
use crate::http::{self, RetryPolicy};
use crate::interrupt::StopFlag;
use crate::ipinfo::{Ipinfo, IpinfoError, KEY_ENV, MAX_BATCH};
use crate::progress::{Amount, Progress};
use crate::ranges::{Bogons, RangeTable, Service};
use crate::store::Store;

/// Range lists older than this are downloaded again.
pub const RANGES_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The refresh covers every kept requester once in this many days.
pub const REFRESH_DAYS: u64 = 90;
/// File in the cache where `--refresh` records the labels that changed.
pub const REFRESH_LOG: &str = "regions-refresh.log";

/// What the regions stage needs.
#[derive(Debug, Clone)]
pub struct RegionsOptions {
    /// Read the range lists from this directory instead of downloading them.
    pub ranges_dir: Option<PathBuf>,
    /// Where each list is downloaded from, in `Service::ALL` order.
    pub range_urls: [String; 4],
    /// The ipinfo base URL.
    pub ipinfo_url: String,
    /// The ipinfo token; without one, what needs ipinfo stays pending.
    pub ipinfo_key: Option<String>,
    /// Addresses per ipinfo request (at most 1000).
    pub batch_size: usize,
    /// ipinfo requests in flight.
    pub concurrency: usize,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Retries of failed requests.
    pub policy: RetryPolicy,
    /// Keep the raw IPs of resolved requesters (for `refresh`).
    pub keep_ips: bool,
    /// Ask ipinfo again for this day's share (one of 90) of the requesters whose IP is kept.
    pub refresh_partition: Option<u64>,
}

/// What the regions stage did.
#[derive(Debug, Default)]
pub struct RegionsReport {
    /// Requesters waiting for a label when the stage began.
    pub pending_before: u64,
    /// Labels given, by kind (`unknown`, `bogon`, `GitHub`, `AWS`, `GCP`, `VPN`, `ipinfo`).
    pub labelled: BTreeMap<&'static str, u64>,
    /// Requesters that need ipinfo while no key is set.
    pub need_key: u64,
    /// Addresses ipinfo left out of its answers (they stay pending).
    pub missing_from_answers: u64,
    /// Range lists that could be neither downloaded nor read from the cache, and why.
    pub unavailable: Vec<(Service, String)>,
    /// Warnings about range lists (for example a stale cache in use).
    pub warnings: Vec<String>,
    /// Requesters left pending because a range list they need is unavailable.
    pub blocked: u64,
    /// Requesters still waiting at the end.
    pub still_pending: u64,
    /// Why the stage stopped before the end (quota, retries exhausted, stop request).
    pub stopped: Option<String>,
    /// Requesters asked again by `--refresh`, and how many of their labels changed.
    pub refreshed: (u64, u64),
    /// Kept raw IPs deleted because `--keep-ips` was not given.
    pub forgotten_ips: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl RegionsReport {
    /// Done, or stopped early (resumable).
    pub fn outcome(&self) -> Outcome {
        Outcome::stopped_if(self.stopped.is_some())
    }

    /// A short human summary, one item per line.
    pub fn summary(&self) -> Vec<String> {
        let labelled: Vec<String> = self
            .labelled
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let mut lines = vec![format!(
            "regions: {} requesters were pending; labelled {} in {:.2} s; {} still pending",
            self.pending_before,
            if labelled.is_empty() {
                "none".into()
            } else {
                labelled.join(", ")
            },
            self.elapsed.as_secs_f64(),
            self.still_pending
        )];
        lines.extend(self.warnings.iter().map(|w| format!("warning: {w}")));
        for (service, why) in &self.unavailable {
            lines.push(format!(
                "warning: the {} range list is unavailable ({why}); requesters that need it stay pending",
                service.name()
            ));
        }
        if self.blocked > 0 {
            lines.push(format!(
                "regions: {} requesters wait for a range list",
                self.blocked
            ));
        }
        if self.need_key > 0 {
            lines.push(format!(
                "regions: {} requesters need ipinfo and stay pending: set {KEY_ENV} to resolve them",
                self.need_key
            ));
        }
        if self.missing_from_answers > 0 {
            lines.push(format!(
                "regions: ipinfo left {} addresses out of its answers; they stay pending",
                self.missing_from_answers
            ));
        }
        if self.refreshed.0 > 0 {
            lines.push(format!(
                "regions: refreshed {} requesters, {} labels changed (see {REFRESH_LOG} in the cache)",
                self.refreshed.0, self.refreshed.1
            ));
        }
        if let Some(why) = &self.stopped {
            lines.push(format!(
                "regions: stopped ({why}); {} requesters stay pending for the next run",
                self.still_pending
            ));
        }
        lines
    }
}

/// The kind of a label, for reports: `AWS/us-east-1` is `AWS`, a place is `place`.
pub fn label_kind(label: &str) -> &'static str {
    match label.split('/').next().unwrap_or("") {
        "unknown" => "unknown",
        "bogon" => "bogon",
        "GitHub" => "GitHub",
        "AWS" => "AWS",
        "GCP" => "GCP",
        "VPN" => "VPN",
        _ => "place",
    }
}

/// The service lists available this run (`None` where unavailable).
type Services = Vec<(Service, Option<RangeTable>)>;

/// Where a requester's label comes from.
enum Decision {
    Label(String),
    /// A range list it needs is unavailable.
    Blocked,
    NeedsIpinfo,
}

fn decide(ip: &str, bogons: &Bogons, services: &Services) -> Decision {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return Decision::Label("unknown".into());
    };
    let ip = ip.to_canonical();
    if bogons.contains(ip) {
        return Decision::Label("bogon".into());
    }
    for (_, table) in services {
        let Some(table) = table else {
            return Decision::Blocked;
        };
        if let Some(label) = table.lookup(ip) {
            return Decision::Label(label.to_owned());
        }
    }
    Decision::NeedsIpinfo
}

/// Loads one range list: from `--ranges-dir`, else the cache if fresh, else downloads it (and
/// caches it), else the stale cache with a warning.
async fn load_ranges(
    service: Service,
    url: &str,
    options: &RegionsOptions,
    cache_dir: &Path,
    client: &reqwest::Client,
    warnings: &mut Vec<String>,
) -> Result<RangeTable, String> {
    if let Some(dir) = &options.ranges_dir {
        let path = dir.join(service.file_name());
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        return service
            .parse(&data)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let cached_path = cache_dir.join("ranges").join(service.file_name());
    let cached = std::fs::read(&cached_path)
        .ok()
        .and_then(|data| Some((service.parse(&data).ok()?, modified(&cached_path)?)));
    if let Some((table, fetched)) = &cached
        && fetched.elapsed().unwrap_or_default() < RANGES_MAX_AGE
    {
        return Ok(table.clone());
    }
    match download(service, url, client).await {
        Ok((table, data)) => {
            if let Err(error) = crate::output::write_atomically(&cached_path, &data) {
                warnings.push(format!(
                    "cannot cache the {} range list in {}: {error}",
                    service.name(),
                    cached_path.display()
                ));
            }
            Ok(table)
        }
        Err(why) => match cached {
            Some((table, fetched)) => {
                let date = chrono::DateTime::<chrono::Utc>::from(fetched).format("%Y-%m-%d");
                warnings.push(format!(
                    "cannot refresh the {} range list ({why}); using the copy cached on {date}",
                    service.name()
                ));
                Ok(table)
            }
            None => Err(why),
        },
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

async fn download(
    service: Service,
    url: &str,
    client: &reqwest::Client,
) -> Result<(RangeTable, Vec<u8>), String> {
    let response = client.get(url).send().await.map_err(|e| {
        format!(
            "{url}: {}",
            if e.is_timeout() {
                "timed out".into()
            } else {
                e.to_string()
            }
        )
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url}: HTTP {}", status.as_u16()));
    }
    let data = response
        .bytes()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_vec();
    let table = service.parse(&data).map_err(|e| format!("{url}: {e}"))?;
    Ok((table, data))
}

/// The share (0 to 89) of the refresh cycle a requester belongs to: stable, from its salted index.
pub fn refresh_partition(requester_index: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    let n = requester_index.len().min(8);
    first[..n].copy_from_slice(&requester_index[..n]);
    u64::from_be_bytes(first) % REFRESH_DAYS
}

/// Today's share of the refresh cycle.
pub fn todays_partition() -> u64 {
    (chrono::Utc::now().timestamp() / 86_400) as u64 % REFRESH_DAYS
}

/// Runs the regions stage on an open store (the caller holds the writer lock).
pub fn update_regions(
    store: &mut Store,
    cache_dir: &Path,
    options: &RegionsOptions,
    stop: &StopFlag,
) -> anyhow::Result<RegionsReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let mut report = runtime.block_on(run(store, cache_dir, options, stop))?;
    if !options.keep_ips {
        report.forgotten_ips = store.forget_kept_ips()?;
    }
    // the deleted IPs were zeroed in place (secure delete); empty the write-ahead log too
    store.checkpoint()?;
    report.still_pending = store.pending_count()?;
    report.elapsed = start.elapsed();
    Ok(report)
}

async fn run(
    store: &mut Store,
    cache_dir: &Path,
    options: &RegionsOptions,
    stop: &StopFlag,
) -> anyhow::Result<RegionsReport> {
    let mut report = RegionsReport::default();
    let pending = store.pending_lookups()?;
    report.pending_before = pending.len() as u64;

    let bogons = Bogons::default();
    let client = http::client(options.timeout);
    let mut services: Services = Vec::new();
    let needs_services = !pending.is_empty() || options.refresh_partition.is_some();
    for (service, url) in Service::ALL.into_iter().zip(&options.range_urls) {
        if !needs_services {
            break;
        }
        match load_ranges(
            service,
            url,
            options,
            cache_dir,
            &client,
            &mut report.warnings,
        )
        .await
        {
            Ok(table) => services.push((service, Some(table))),
            Err(why) => {
                report.unavailable.push((service, why));
                services.push((service, None));
            }
        }
    }

    let for_ipinfo = label_locally(store, pending, &bogons, &services, options, &mut report)?;

    let Some(key) = options.ipinfo_key.as_deref().filter(|k| !k.is_empty()) else {
        report.need_key = for_ipinfo.len() as u64;
        return Ok(report);
    };
    let ipinfo = Ipinfo::new(&options.ipinfo_url, key, options.timeout, options.policy);
    let (asked, labelled) =
        ask_ipinfo(store, &ipinfo, &for_ipinfo, options, stop, &mut report).await?;
    report.missing_from_answers += asked - labelled;

    if let Some(partition) = options.refresh_partition
        && report.stopped.is_none()
    {
        let context = Lookups {
            ipinfo: &ipinfo,
            bogons: &bogons,
            services: &services,
            options,
            stop,
        };
        refresh(store, cache_dir, partition, &context, &mut report).await?;
    }
    Ok(report)
}

/// Labels the requesters that bogons and the range lists decide; returns those that need ipinfo.
fn label_locally(
    store: &mut Store,
    requesters: Vec<(i64, String)>,
    bogons: &Bogons,
    services: &Services,
    options: &RegionsOptions,
    report: &mut RegionsReport,
) -> anyhow::Result<Vec<(i64, String)>> {
    let mut local = Vec::new();
    let mut for_ipinfo = Vec::new();
    for (id, ip) in requesters {
        match decide(&ip, bogons, services) {
            Decision::Label(label) => local.push((id, label)),
            Decision::Blocked => report.blocked += 1,
            Decision::NeedsIpinfo => for_ipinfo.push((id, ip)),
        }
    }
    for chunk in local.chunks(10_000) {
        store.label_requesters(chunk, options.keep_ips)?;
    }
    for (_, label) in &local {
        *report.labelled.entry(label_kind(label)).or_default() += 1;
    }
    Ok(for_ipinfo)
}

/// What a refresh needs to label requesters again.
struct Lookups<'a> {
    ipinfo: &'a Ipinfo,
    bogons: &'a Bogons,
    services: &'a Services,
    options: &'a RegionsOptions,
    stop: &'a StopFlag,
}

/// Asks ipinfo for `requesters` in batches, a few in flight, committing each answer at once.
/// Returns how many addresses were in answered batches and how many got a label.
async fn ask_ipinfo(
    store: &mut Store,
    ipinfo: &Ipinfo,
    requesters: &[(i64, String)],
    options: &RegionsOptions,
    stop: &StopFlag,
    report: &mut RegionsReport,
) -> anyhow::Result<(u64, u64)> {
    let batch_size = options.batch_size.clamp(1, MAX_BATCH);
    let batches: Vec<&[(i64, String)]> = requesters.chunks(batch_size).collect();
    let mut progress = Progress::counting(
        "regions",
        "ipinfo batches",
        batches.len() as u64,
        Amount::Items("addresses"),
        requesters.len() as u64,
    );
    let halt = stop.scoped();
    let halt = &halt;
    let mut answers = futures_util::stream::iter(batches.iter().copied().map(|batch| async move {
        if halt.is_raised() {
            return (batch, Err(IpinfoError::Stopped));
        }
        let ips: Vec<String> = batch.iter().map(|(_, ip)| ip.clone()).collect();
        (batch, ipinfo.lookup(&ips, halt).await)
    }))
    .buffer_unordered(options.concurrency.max(1));
    let (mut asked, mut labelled) = (0u64, 0u64);
    // a failure stops the other batches of this stage, not the stages after it
    let mut failure: Option<IpinfoError> = None;
    while let Some((batch, answer)) = answers.next().await {
        match answer {
            Ok(labels) => {
                let ids: HashMap<&str, i64> =
                    batch.iter().map(|(id, ip)| (ip.as_str(), *id)).collect();
                let found: Vec<(i64, String)> = labels
                    .into_iter()
                    .filter_map(|(ip, label)| Some((*ids.get(ip.as_str())?, label)))
                    .collect();
                store.label_requesters(&found, options.keep_ips)?;
                asked += batch.len() as u64;
                labelled += found.len() as u64;
                *report.labelled.entry("ipinfo").or_default() += found.len() as u64;
                progress.advance(1, batch.len() as u64, &format!("{} labelled", found.len()));
            }
            Err(error) => {
                // keep the first failure; answers already in flight are still committed
                halt.raise();
                if failure.is_none() || matches!(failure, Some(IpinfoError::Stopped)) {
                    failure = Some(error);
                }
            }
        }
    }
    progress.finish();
    match failure {
        None => {}
        Some(IpinfoError::Rejected(status)) => {
            anyhow::bail!("ipinfo refused the token (HTTP {status}): check {KEY_ENV}")
        }
        Some(IpinfoError::Stopped) => report.stopped = Some("stop requested".into()),
        Some(other) => report.stopped = Some(other.to_string()),
    }
    Ok((asked, labelled))
}

/// Labels again the requesters of `partition` whose IP is kept (the range lists first, then
/// ipinfo for the rest), and logs the labels that changed.
async fn refresh(
    store: &mut Store,
    cache_dir: &Path,
    partition: u64,
    lookups: &Lookups<'_>,
    report: &mut RegionsReport,
) -> anyhow::Result<()> {
    let due: Vec<(i64, Vec<u8>, String)> = store
        .kept_ips()?
        .into_iter()
        .filter(|(_, index, _)| refresh_partition(index) == partition)
        .collect();
    let ids: Vec<i64> = due.iter().map(|(id, _, _)| *id).collect();
    let before = store.regions_of(&ids)?;
    let requesters: Vec<(i64, String)> = due.iter().map(|(id, _, ip)| (*id, ip.clone())).collect();
    let opaque: HashMap<i64, String> = due
        .iter()
        .map(|(id, index, _)| (*id, crate::dump::requester_id(index)))
        .collect();
    let for_ipinfo = label_locally(
        store,
        requesters,
        lookups.bogons,
        lookups.services,
        lookups.options,
        report,
    )?;
    ask_ipinfo(
        store,
        lookups.ipinfo,
        &for_ipinfo,
        lookups.options,
        lookups.stop,
        report,
    )
    .await?;
    let after = store.regions_of(&ids)?;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut log = String::new();
    let mut changed = 0;
    for id in &ids {
        let (old, new) = (&before[id], &after[id]);
        if old != new {
            changed += 1;
            log.push_str(&format!(
                "{now}\t{}\t{}\t{}\n",
                opaque[id],
                old.as_deref().unwrap_or("-"),
                new.as_deref().unwrap_or("-")
            ));
        }
    }
    if !log.is_empty() {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cache_dir.join(REFRESH_LOG))?;
        file.write_all(log.as_bytes())?;
    }
    report.refreshed = (ids.len() as u64, changed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_and_unavailable_lists_block() {
        let bogons = Bogons::default();
        let table = |prefix: &str, label: &str| {
            let mut t = RangeTable::default();
            t.insert(prefix.parse().unwrap(), label);
            Some(t)
        };
        let services: Services = vec![
            (Service::GitHub, table("140.82.112.0/20", "GitHub")),
            (Service::Aws, table("140.82.0.0/16", "AWS/us-east-1")),
            (Service::Gcp, table("34.80.0.0/15", "GCP/asia-east1")),
            (Service::Vpn, table("34.0.0.0/8", "VPN")),
        ];
        let label = |ip: &str| match decide(ip, &bogons, &services) {
            Decision::Label(l) => l,
            Decision::Blocked => "blocked".into(),
            Decision::NeedsIpinfo => "ipinfo".into(),
        };
        assert_eq!(label("not-an-ip"), "unknown");
        assert_eq!(label("-"), "unknown");
        assert_eq!(label("10.0.0.1"), "bogon");
        assert_eq!(label("140.82.112.3"), "GitHub");
        assert_eq!(label("140.82.1.1"), "AWS/us-east-1");
        assert_eq!(label("34.80.0.1"), "GCP/asia-east1");
        assert_eq!(label("34.1.0.1"), "VPN");
        assert_eq!(label("8.8.8.8"), "ipinfo");
        assert_eq!(label("::ffff:10.0.0.1"), "bogon");
        let mut without_aws = services.clone();
        without_aws[1].1 = None;
        assert!(matches!(
            decide("8.8.8.8", &bogons, &without_aws),
            Decision::Blocked
        ));
        assert!(matches!(
            decide("140.82.112.3", &bogons, &without_aws),
            Decision::Label(_)
        ));
    }

    #[test]
    fn refresh_partitions_are_stable_and_cover_all_days() {
        assert_eq!(refresh_partition(&[0, 0, 0, 0, 0, 0, 0, 91, 7]), 1);
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000u64 {
            seen.insert(refresh_partition(&i.to_be_bytes()));
        }
        assert_eq!(seen.len(), REFRESH_DAYS as usize);
    }

    #[test]
    fn label_kinds() {
        assert_eq!(label_kind("AWS/us-east-1"), "AWS");
        assert_eq!(label_kind("US/California"), "place");
        assert_eq!(label_kind("CH"), "place");
        assert_eq!(label_kind("bogon"), "bogon");
    }
}
