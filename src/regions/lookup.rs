//! Labelling requesters: locally first (an unparsable address, bogons, the range lists in order),
//! then by ipinfo in batches, a few in flight, each answer committed at once.

use std::collections::HashMap;
use std::net::IpAddr;

use futures_util::StreamExt;

use super::RegionsOptions;
use super::RegionsReport;
use super::geoip::GeoIp;
use super::ipinfo::{Ipinfo, IpinfoError, KEY_ENV, MAX_BATCH};
use super::ranges::{Bogons, RangeTable, Service};
use crate::interrupt::StopFlag;
use crate::labels::RegionLabel;
use crate::progress::{Amount, Progress};
use crate::store::{RequesterId, Store};

/// The service lists available this run (`None` where unavailable), in the order checked.
pub(super) type Services = Vec<(Service, Option<RangeTable>)>;

/// Where a requester's label comes from.
pub(super) enum Decision {
    /// Decided locally.
    Label(RegionLabel),
    /// A range list it needs is unavailable.
    Blocked,
    /// Only ipinfo can tell.
    NeedsIpinfo,
}

/// Decides a requester's label from its address alone, first match wins.
pub(super) fn decide(ip: &str, bogons: &Bogons, services: &Services) -> Decision {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return Decision::Label(RegionLabel::unknown());
    };
    let ip = ip.to_canonical();
    if bogons.contains(ip) {
        return Decision::Label(RegionLabel::bogon());
    }
    for (_, table) in services {
        let Some(table) = table else {
            return Decision::Blocked;
        };
        if let Some(label) = table.lookup(ip) {
            return Decision::Label(label.clone());
        }
    }
    Decision::NeedsIpinfo
}

/// Labels the requesters that bogons and the range lists decide; returns those that need ipinfo.
pub(super) fn label_locally(
    store: &Store,
    requesters: Vec<(RequesterId, String)>,
    bogons: &Bogons,
    services: &Services,
    options: &RegionsOptions,
    report: &mut RegionsReport,
) -> anyhow::Result<Vec<(RequesterId, String)>> {
    let mut local = Vec::new();
    let mut for_ipinfo = Vec::new();
    for (id, ip) in requesters {
        match decide(&ip, bogons, services) {
            Decision::Label(label) => local.push((id, label)),
            Decision::Blocked => report.blocked += 1,
            Decision::NeedsIpinfo => for_ipinfo.push((id, ip)),
        }
    }
    commit_labels(store, &local, options)?;
    for (_, label) in &local {
        *report.labelled.entry(label.kind().name()).or_default() += 1;
    }
    Ok(for_ipinfo)
}

/// An IP database older than this is worth replacing (`MaxMind` and DB-IP publish weekly to
/// monthly).
const STALE_DATABASE_DAYS: i64 = 60;

/// Labels `requesters` from the IP database at `path`: a place, or `unknown` for an address it
/// does not know; records which database it was (publish credits it).
pub(super) fn label_from_database(
    store: &Store,
    path: &std::path::Path,
    requesters: &[(RequesterId, String)],
    options: &RegionsOptions,
    report: &mut RegionsReport,
) -> anyhow::Result<()> {
    let database = GeoIp::open(path)?;
    let (kind, built) = database.describe();
    let built_day = chrono::DateTime::from_timestamp(built.cast_signed(), 0)
        .map(|time| time.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    report.database = Some(format!("{} ({kind}, built {built_day})", path.display()));
    let age_days = (chrono::Utc::now().timestamp() - built.cast_signed()) / 86_400;
    if age_days > STALE_DATABASE_DAYS {
        report.warnings.push(format!(
            "the IP database was built {age_days} days ago: `s3tally update geoip` gets a newer one"
        ));
    }
    let mut labels = Vec::with_capacity(requesters.len());
    for (id, ip) in requesters {
        // only parsable addresses get here (`decide` labels the others `unknown`)
        let label = match ip.parse::<IpAddr>() {
            Ok(ip) => {
                let (label, unplaced) = database.locate(ip.to_canonical());
                report.unplaced_names.extend(unplaced);
                label
            }
            Err(_) => RegionLabel::unknown(),
        };
        labels.push((*id, label));
    }
    commit_labels(store, &labels, options)?;
    *report.labelled.entry("geoip").or_default() += labels.len() as u64;
    store.set_stage_state(super::geoip::DATABASE_STATE, &kind)?;
    Ok(())
}

/// Stores labels (and deletes the raw IPs) in transactions of a bounded size.
fn commit_labels(
    store: &Store,
    labels: &[(RequesterId, RegionLabel)],
    options: &RegionsOptions,
) -> anyhow::Result<()> {
    for chunk in labels.chunks(10_000) {
        store.label_requesters(chunk, options.keep_ips)?;
    }
    Ok(())
}

/// Asks ipinfo for `requesters` in batches, a few in flight, committing each answer at once.
/// Returns how many addresses were in answered batches and how many got a label.
pub(super) async fn ask_ipinfo(
    store: &Store,
    ipinfo: &Ipinfo,
    requesters: &[(RequesterId, String)],
    options: &RegionsOptions,
    stop: &StopFlag,
    report: &mut RegionsReport,
) -> anyhow::Result<(u64, u64)> {
    let batch_size = options.batch_size.clamp(1, MAX_BATCH);
    let batches: Vec<&[(RequesterId, String)]> = requesters.chunks(batch_size).collect();
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
                let ids: HashMap<&str, RequesterId> =
                    batch.iter().map(|(id, ip)| (ip.as_str(), *id)).collect();
                let mut found: Vec<(RequesterId, RegionLabel)> = Vec::new();
                for (ip, (label, unplaced)) in labels {
                    if let Some(&id) = ids.get(ip.as_str()) {
                        found.push((id, label));
                        report.unplaced_names.extend(unplaced);
                    }
                }
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
        Some(error @ IpinfoError::Redirected(_)) => return Err(error.into()),
        Some(IpinfoError::Stopped) => report.stopped = Some("stop requested".into()),
        Some(other) => report.stopped = Some(other.to_string()),
    }
    Ok((asked, labelled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_and_unavailable_lists_block() {
        let bogons = Bogons::default();
        let table = |prefix: &str, label: &str| {
            let mut t = RangeTable::default();
            t.insert(prefix.parse().unwrap(), &RegionLabel::parse(label).unwrap());
            Some(t)
        };
        let services: Services = vec![
            (Service::GitHub, table("140.82.112.0/20", "GitHub")),
            (Service::Aws, table("140.82.0.0/16", "AWS/us-east-1")),
            (Service::Gcp, table("34.80.0.0/15", "GCP/asia-east1")),
            (Service::Vpn, table("34.0.0.0/8", "VPN")),
        ];
        let label = |ip: &str| match decide(ip, &bogons, &services) {
            Decision::Label(l) => l.to_string(),
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
}
