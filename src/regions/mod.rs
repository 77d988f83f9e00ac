//! The regions stage: a region label for every requester waiting for one, then its raw IP is
//! deleted.
//!
//! First match wins: `unknown` (the address does not parse), `bogon` (not globally routable), a
//! known service from its published ranges (`GitHub`, `AWS/<region>`, `GCP/<scope>`, `VPN`, in that
//! order; [`ranges`], loaded by [`lists`]), else ipinfo (`CC/Region`, `CC`, `bogon` or `unknown`;
//! [`ipinfo`]). Labels are committed after every answered batch, so a kill loses at most the
//! batches in flight ([`lookup`]). `--refresh` labels kept requesters again ([`refresh`]).

pub(crate) mod download;
pub(crate) mod geoip;
pub(crate) mod ipinfo;
mod lists;
mod lookup;
pub(crate) mod ranges;
mod refresh;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cache::REFRESH_LOG;
use crate::http::{self, RetryPolicy};
use crate::stage::{self, Context, Outcome};
use ipinfo::{Ipinfo, KEY_ENV};
use lookup::{Services, ask_ipinfo, label_locally};
use ranges::{Bogons, Service};

pub(crate) use refresh::todays_partition;

/// What the regions stage needs.
#[derive(Debug, Clone)]
pub(crate) struct RegionsOptions {
    /// An IP database placing requesters instead of ipinfo.
    pub geoip_db: Option<PathBuf>,
    /// Read the range lists from this directory instead of downloading them.
    pub ranges_dir: Option<PathBuf>,
    /// Where each list is downloaded from, in `Service::ALL` order.
    pub range_urls: [String; 5],
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
pub(crate) struct RegionsReport {
    /// Requesters waiting for a label when the stage began.
    pub pending_before: u64,
    /// Labels given, by kind (`unknown`, `bogon`, `GitHub`, `AWS`, `GCP`, `VPN`, `ipinfo`,
    /// `geoip`).
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
    /// The IP database that placed requesters, described, when one was used.
    pub database: Option<String>,
    /// Region names ipinfo gave that the ISO 3166-2 table could not place (`CC: name`): their
    /// requesters got the country alone.
    pub unplaced_names: std::collections::BTreeSet<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl stage::Report for RegionsReport {
    fn outcome(&self) -> Outcome {
        Outcome::stopped_if(self.stopped.is_some())
    }

    fn summary(&self) -> Vec<String> {
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
        if let Some(database) = &self.database {
            lines.push(format!("regions: places from the IP database {database}"));
        }
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
        if !self.unplaced_names.is_empty() {
            const SHOWN: usize = 20;
            let mut shown: Vec<String> = self
                .unplaced_names
                .iter()
                .take(SHOWN)
                .map(|name| crate::output::escape_controls(name).into_owned())
                .collect();
            if self.unplaced_names.len() > SHOWN {
                shown.push("...".into());
            }
            lines.push(format!(
                "regions: {} region names the ISO 3166-2 table cannot place (labelled with the country alone; add them to src/labels/region_aliases.tsv): {}",
                self.unplaced_names.len(),
                shown.join(", ")
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

    fn new_work(&self) -> String {
        let count: u64 = self.labelled.values().sum();
        format!("{count} requesters labelled")
    }

    fn pending(&self) -> String {
        format!("{} requesters", self.still_pending)
    }
}

/// The regions stage.
pub(crate) struct Regions;

impl stage::Stage for Regions {
    const NAME: &'static str = "regions";
    type Options = RegionsOptions;
    type Report = RegionsReport;

    fn run(context: &Context<'_>, options: &RegionsOptions) -> anyhow::Result<RegionsReport> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let start = Instant::now();
        let mut report = runtime.block_on(update(context, options))?;
        let store = context.store;
        if !options.keep_ips {
            report.forgotten_ips = store.forget_kept_ips()?;
        }
        // the deleted IPs were zeroed in place (secure delete); the write-ahead log must be
        // emptied too before the stage may say they are gone
        store.erase()?;
        report.still_pending = store.pending_count()?;
        report.elapsed = start.elapsed();
        Ok(report)
    }
}

async fn update(context: &Context<'_>, options: &RegionsOptions) -> anyhow::Result<RegionsReport> {
    let Context { store, cache, stop } = *context;
    let mut report = RegionsReport::default();
    let pending = store.pending_lookups()?;
    report.pending_before = pending.len() as u64;

    let bogons = Bogons::default();
    let client = http::client(options.timeout, http::Redirects::HttpsOnly);
    let mut services: Services = Vec::new();
    let needs_services = !pending.is_empty() || options.refresh_partition.is_some();
    for (service, url) in Service::ALL.into_iter().zip(&options.range_urls) {
        if !needs_services {
            break;
        }
        match lists::load_ranges(service, url, options, cache, &client, &mut report.warnings).await
        {
            Ok(Some(table)) => services.push((service, Some(table))),
            // an optional list not configured: not used, nobody waits for it
            Ok(None) => {}
            Err(why) => {
                report.unavailable.push((service, why));
                services.push((service, None));
            }
        }
    }

    let for_ipinfo = label_locally(store, pending, &bogons, &services, options, &mut report)?;
    if let Some(path) = &options.geoip_db {
        if !for_ipinfo.is_empty() {
            lookup::label_from_database(store, path, &for_ipinfo, options, &mut report)?;
        }
        if options.refresh_partition.is_some() {
            report.warnings.push(
                "--refresh asks ipinfo again; with an IP database it is not needed (update the database with `s3tally update geoip`)".into(),
            );
        }
        return Ok(report);
    }

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
        let lookups = refresh::Lookups {
            ipinfo: &ipinfo,
            bogons: &bogons,
            services: &services,
            options,
            stop,
        };
        refresh::refresh(store, cache, partition, &lookups, &mut report).await?;
    }
    Ok(report)
}
