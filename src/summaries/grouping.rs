//! Which dataset and asset an object key belongs to, and which datasets are summarized.

/// The dataset of keys without enough segments.
pub(crate) const UNASSOCIATED: &str = "unassociated";

/// How object keys map to datasets and assets, and which datasets to summarize.
#[derive(Debug, Clone)]
pub(crate) struct Grouping {
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
    pub(crate) fn locate(&self, key: &[u8]) -> Option<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
