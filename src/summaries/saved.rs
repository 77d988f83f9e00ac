//! Each dataset's exact figures kept in the store between runs, so that a run computes again
//! only the datasets that changed: new requests, relabelled requesters, or changed rows of the
//! dataset map.

use std::collections::{BTreeMap, HashSet};

use super::grouping::{Grouping, UNDETERMINED};
use super::tally::{Tallies, Tally, tally};
use crate::store::{BatchNumber, LabelRound, Store};

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
            if new_objects.contains(&id) {
                changed.extend(grouping.locate(&key).into_iter().map(|place| place.dataset));
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

/// The state key of the dataset map's per-dataset digests the saved figures were computed with.
const MAP_STATE: &str = "dataset_map";

/// The datasets whose rows in the dataset map changed since the figures were saved (and
/// `undetermined`, which gains or loses the keys concerned).
fn remapped_datasets(store: &Store, grouping: &Grouping) -> anyhow::Result<HashSet<String>> {
    let Some(map) = &grouping.map else {
        return Ok(HashSet::new());
    };
    let saved: BTreeMap<String, u64> = store
        .stage_state(MAP_STATE)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let now = map.digests();
    let mut changed: HashSet<String> = now
        .keys()
        .chain(saved.keys())
        .filter(|name| now.get(*name) != saved.get(*name))
        .cloned()
        .collect();
    if !changed.is_empty() {
        changed.insert(UNDETERMINED.to_owned());
    }
    Ok(changed)
}

/// Every dataset's exact figures: the saved ones, with those of the datasets that changed since
/// they were saved computed again (all of them on a first run, with `full`, or when what is
/// counted where changed beyond the map's rows); saves what it computed.
pub(crate) fn current_tallies(
    store: &Store,
    grouping: &Grouping,
    full: bool,
) -> anyhow::Result<(Tallies, u64)> {
    let version = store.data_version()?;
    let grouping_key = grouping.figures_key();
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
    let map_state = match &grouping.map {
        Some(map) => serde_json::to_string(map.digests())?,
        None => String::new(),
    };
    let states = [("tallies", state.as_str()), (MAP_STATE, map_state.as_str())];
    let (Some(since), false) = (since, full) else {
        let tallies = tally(store, grouping, None)?;
        let rows = serialize(&tallies.datasets)?;
        store.save_tallies(None, &rows, &states)?;
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
    let mut changed = changed_datasets(store, grouping, &datasets, since)?;
    changed.extend(remapped_datasets(store, grouping)?);
    let mut undetermined_keys = (0, Vec::new());
    if changed.is_empty() {
        store.save_tallies(Some(&[]), &[], &states)?;
    } else {
        let fresh = tally(store, grouping, Some(&changed))?;
        undetermined_keys = fresh.undetermined_keys;
        for dataset in &changed {
            datasets.remove(dataset);
        }
        let rows = serialize(&fresh.datasets)?;
        datasets.extend(fresh.datasets);
        // a changed dataset with no figures now (its keys mapped elsewhere) is gone
        let gone: Vec<String> = changed
            .iter()
            .filter(|name| !datasets.contains_key(*name))
            .cloned()
            .collect();
        store.save_tallies(Some(&gone), &rows, &states)?;
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
