//! `update regions --refresh`: every day, one share of the requesters whose raw IP is kept is
//! labelled again (range lists first, then ipinfo), so that 90 daily runs cover them all; labels
//! that changed are logged without any IP.

use std::collections::HashMap;

use super::RegionsOptions;
use super::RegionsReport;
use super::ipinfo::Ipinfo;
use super::lookup::{Services, ask_ipinfo, label_locally};
use super::ranges::Bogons;
use crate::cache::Cache;
use crate::interrupt::StopFlag;
use crate::privacy::requester_id;
use crate::store::{RequesterId, Store};

/// The refresh covers every kept requester once in this many days.
pub(super) const REFRESH_DAYS: u64 = 90;

/// The share (0 to 89) of the refresh cycle a requester belongs to: stable, from its salted index.
pub(super) fn refresh_partition(requester_index: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    let n = requester_index.len().min(8);
    first[..n].copy_from_slice(&requester_index[..n]);
    u64::from_be_bytes(first) % REFRESH_DAYS
}

/// Today's share of the refresh cycle.
pub(crate) fn todays_partition() -> u64 {
    (chrono::Utc::now().timestamp() / 86_400).cast_unsigned() % REFRESH_DAYS
}

/// What a refresh needs to label requesters again.
pub(super) struct Lookups<'a> {
    pub ipinfo: &'a Ipinfo,
    pub bogons: &'a Bogons,
    pub services: &'a Services,
    pub options: &'a RegionsOptions,
    pub stop: &'a StopFlag,
}

/// Labels again the requesters of `partition` whose IP is kept, and logs the labels that changed.
pub(super) async fn refresh(
    store: &Store,
    cache: &Cache,
    partition: u64,
    lookups: &Lookups<'_>,
    report: &mut RegionsReport,
) -> anyhow::Result<()> {
    let due: Vec<(RequesterId, Vec<u8>, String)> = store
        .kept_ips()?
        .into_iter()
        .filter(|(_, index, _)| refresh_partition(index) == partition)
        .collect();
    let ids: Vec<RequesterId> = due.iter().map(|(id, _, _)| *id).collect();
    let before = store.regions_of(&ids)?;
    let requesters: Vec<(RequesterId, String)> =
        due.iter().map(|(id, _, ip)| (*id, ip.clone())).collect();
    let opaque: HashMap<RequesterId, String> = due
        .iter()
        .map(|(id, index, _)| (*id, requester_id(index)))
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
    let text = |label: &Option<crate::labels::RegionLabel>| {
        label
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string)
    };
    for id in &ids {
        let (old, new) = (&before[id], &after[id]);
        if old != new {
            changed += 1;
            log.push_str(&format!(
                "{now}\t{}\t{}\t{}\n",
                opaque[id],
                text(old),
                text(new)
            ));
        }
    }
    if !log.is_empty() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(cache.refresh_log())?;
        file.write_all(log.as_bytes())?;
    }
    report.refreshed = (ids.len() as u64, changed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_partitions_are_stable_and_cover_all_days() {
        assert_eq!(refresh_partition(&[0, 0, 0, 0, 0, 0, 0, 91, 7]), 1);
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000u64 {
            seen.insert(refresh_partition(&i.to_be_bytes()));
        }
        assert_eq!(seen.len(), REFRESH_DAYS as usize);
    }
}
