//! Which dataset and asset an object key belongs to (by its leading segments, or by the
//! archive's dataset map, where a key may belong to several datasets), which datasets are
//! summarized, and what else decides the figures (asset types, requesters left out).
//!
//! Object keys are chosen by whoever uploads, and a dataset's name becomes a directory of the
//! output. A name that cannot safely be one ([`is_safe_dataset`]) is never used as a path: the key
//! is counted under the reserved dataset `undetermined` (its whole key as the asset), and the run
//! names it. Asset paths are only rows, never paths; their control characters are written `%XX`.

use std::sync::Arc;

use super::excluded::ExcludedRequesters;
pub(crate) use crate::datasets::{UNASSOCIATED, UNDETERMINED, is_safe_dataset};

use crate::datasets::asset_types::AssetTypes;
use crate::datasets::map::{DatasetMap, Mapped};
use crate::output::escape_controls;

/// One place a key's requests are counted: a dataset, the asset inside it, and whether the
/// archive-wide figures count them through this dataset (a key shared by several datasets counts
/// in each, but once in the archive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// The dataset.
    pub dataset: String,
    /// The asset path inside it (control characters escaped).
    pub asset: String,
    /// The archive counts the key through this dataset.
    pub in_archive: bool,
}

/// What is counted where: how object keys map to datasets and assets (by their segments, or by
/// the archive's dataset map), which datasets to summarize, each asset's type, and which
/// requesters to leave out.
#[derive(Debug, Clone)]
pub(crate) struct Grouping {
    /// Segments of the key that name the dataset (without a map).
    pub dataset_depth: usize,
    /// Keys below `<prefix><id>/` count as the one asset `<id>` (directory-like stores, without a
    /// map).
    pub collapse_prefixes: Vec<String>,
    /// The archive's dataset map: replaces the two above.
    pub map: Option<Arc<DatasetMap>>,
    /// Only these datasets (all when empty).
    pub pick: Vec<String>,
    /// Not these datasets.
    pub skip: Vec<String>,
    /// The type of each asset, for `by_asset_type_per_week.tsv`.
    pub asset_types: AssetTypes,
    /// Requesters whose requests are not counted (`--exclude-ips-file`).
    pub excluded: ExcludedRequesters,
    /// Requests of robots are not counted (`--exclude-robots`).
    pub exclude_robots: bool,
}

impl Default for Grouping {
    fn default() -> Self {
        Self {
            dataset_depth: 1,
            collapse_prefixes: Vec::new(),
            map: None,
            pick: Vec::new(),
            skip: Vec::new(),
            asset_types: AssetTypes::default(),
            excluded: ExcludedRequesters::default(),
            exclude_robots: false,
        }
    }
}

impl Grouping {
    /// What the saved figures depend on besides the map's rows (whose changes are followed per
    /// dataset): a change here computes every dataset again.
    pub(crate) fn figures_key(&self) -> String {
        let layouts = self.map.as_ref().map(|map| map.layouts());
        format!(
            "depth {} collapse {:?} map {:?} pick {:?} skip {:?} {:?} {:?}{}",
            self.dataset_depth,
            self.collapse_prefixes,
            layouts,
            self.pick,
            self.skip,
            self.asset_types,
            self.excluded,
            // said only when set: the key of figures made before the option stays the same
            if self.exclude_robots {
                " robots out"
            } else {
                ""
            }
        )
    }

    /// Where an object key's requests are counted: one place, or one per dataset of a key the map
    /// shares between datasets; none for datasets not picked. A dataset name that cannot be a
    /// directory, or a key under the map's layouts without a row, gives [`UNDETERMINED`] with the
    /// whole key as the asset.
    pub(crate) fn locate(&self, key: &[u8]) -> Vec<Place> {
        let picked = |dataset: &str| {
            (self.pick.is_empty() || self.pick.iter().any(|p| p == dataset))
                && !self.skip.iter().any(|s| s == dataset)
        };
        let whole_key = |dataset: &str| {
            let key = String::from_utf8_lossy(key);
            let asset = percent_encoding::percent_decode_str(&key).decode_utf8_lossy();
            Place {
                dataset: dataset.to_owned(),
                asset: escape_controls(&asset).into_owned(),
                in_archive: true,
            }
        };
        let mut places = match &self.map {
            Some(map) => match map.locate(key) {
                Mapped::To(found) => {
                    let found: Vec<(u32, &str)> = found
                        .into_iter()
                        .filter(|(dataset, _)| picked(map.dataset_name(*dataset)))
                        .collect();
                    let primary = map.primary(&found);
                    return found
                        .into_iter()
                        .map(|(dataset, asset)| Place {
                            dataset: map.dataset_name(dataset).to_owned(),
                            asset: escape_controls(asset).into_owned(),
                            in_archive: Some(dataset) == primary,
                        })
                        .collect();
                }
                Mapped::Undetermined => vec![whole_key(UNDETERMINED)],
                Mapped::Unassociated => vec![whole_key(UNASSOCIATED)],
            },
            None => vec![self.by_segments(key)],
        };
        places.retain(|place| picked(&place.dataset));
        places
    }

    /// The dataset and asset of a key by its leading segments (no map).
    fn by_segments(&self, key: &[u8]) -> Place {
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
        let (dataset, asset) = if segments.len() <= depth {
            (UNASSOCIATED.to_owned(), key.clone())
        } else if is_safe_dataset(&segments[..depth].join("/")) {
            (segments[..depth].join("/"), segments[depth].to_owned())
        } else {
            (UNDETERMINED.to_owned(), key.clone())
        };
        let asset = percent_encoding::percent_decode_str(&asset).decode_utf8_lossy();
        Place {
            dataset,
            asset: escape_controls(&asset).into_owned(),
            in_archive: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_datasets_and_assets() {
        let mut grouping = Grouping::default();
        let locate = |g: &Grouping, key: &str| {
            g.locate(key.as_bytes())
                .pop()
                .map(|place| (place.dataset, place.asset))
        };
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
    fn names_that_cannot_be_a_directory_go_to_undetermined() {
        let grouping = Grouping::default();
        let locate = |key: &str| {
            let place = grouping.locate(key.as_bytes()).pop().unwrap();
            (place.dataset, place.asset)
        };
        let long = format!("{}/a", "d".repeat(201));
        for key in [
            "../etc/passwd",
            "./x",
            "/abs/path",
            ".git/config",
            "ar\tchive/x",
            "a\u{0}b/x",
            "back\\slash/x",
            "archive/by_day.tsv",
            "Archive/x",
            "totals.json/x",
            "undetermined/x",
            "unassociated/x",
            long.as_str(),
        ] {
            let (dataset, asset) = locate(key);
            assert_eq!(dataset, UNDETERMINED, "{key:?}");
            assert!(!asset.contains(['\t', '\0']), "{asset:?}");
        }
        assert_eq!(locate("../etc/passwd").1, "../etc/passwd");
        assert_eq!(locate(&"d".repeat(200)).0, UNASSOCIATED);
        assert_eq!(locate(&format!("{}/a", "d".repeat(200))).0, "d".repeat(200));
        // depth 2: every segment is checked
        let deep = Grouping {
            dataset_depth: 2,
            ..Grouping::default()
        };
        assert_eq!(deep.locate(b"dandisets/../x")[0].dataset, UNDETERMINED);
        assert_eq!(
            deep.locate(b"dandisets/000001/a")[0].dataset,
            "dandisets/000001"
        );
        // assets are rows: their control characters are escaped once decoded
        assert_eq!(locate("ds/a%09b%0Ac%00.nwb").1, "a%09b%0Ac%00.nwb");
        assert_eq!(locate("ds/a%20b").1, "a b");
    }
}
