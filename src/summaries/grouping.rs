//! Which dataset and asset an object key belongs to, and which datasets are summarized.
//!
//! Object keys are chosen by whoever uploads, and a dataset's name becomes a directory of the
//! output. A name that cannot safely be one is never used as a path: the key is counted under the
//! reserved dataset `undetermined` (its whole key as the asset), and the run names it. Unsafe
//! means: an empty segment (a leading `/`, `//`), `.` or `..`, a segment starting with `.`
//! (`.git`), a control character (tab, line end, NUL...), `\`, a segment over 200 bytes, or a name
//! the output itself uses (`archive`, `undetermined`, `unassociated`, `totals.json`,
//! `archive_totals.json`, `region_codes_to_coordinates.yaml`, in any case). Asset paths are only
//! rows, never paths; their control characters are written `%XX`.

use crate::output::escape_controls;

/// The dataset of keys without enough segments.
pub(crate) const UNASSOCIATED: &str = "unassociated";
/// The dataset of keys whose dataset name cannot safely be a directory.
pub(crate) const UNDETERMINED: &str = "undetermined";
/// Longest dataset name segment, in bytes (file systems allow 255).
const MAX_SEGMENT_BYTES: usize = 200;
/// Names the output uses itself, which no dataset may take.
const RESERVED: [&str; 6] = [
    "archive",
    UNDETERMINED,
    UNASSOCIATED,
    "totals.json",
    "archive_totals.json",
    "region_codes_to_coordinates.yaml",
];

/// Whether a dataset name (segments joined by `/`) can safely be a directory of the output.
pub(crate) fn is_safe_dataset(name: &str) -> bool {
    let first = name.split('/').next().unwrap_or_default();
    !RESERVED
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(first))
        && name.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment.len() <= MAX_SEGMENT_BYTES
                && !segment.chars().any(|c| c.is_control() || c == '\\')
        })
}

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
    /// The dataset and asset (percent-decoded, control characters escaped) of an object key;
    /// `None` for a dataset not picked. A dataset name that cannot be a directory gives
    /// [`UNDETERMINED`], with the whole key as the asset.
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
        let (dataset, asset) = if segments.len() <= depth {
            (UNASSOCIATED.to_owned(), key.clone())
        } else if is_safe_dataset(&segments[..depth].join("/")) {
            (segments[..depth].join("/"), segments[depth].to_owned())
        } else {
            (UNDETERMINED.to_owned(), key.clone())
        };
        let picked =
            (self.pick.is_empty() || self.pick.contains(&dataset)) && !self.skip.contains(&dataset);
        picked.then(|| {
            let asset = percent_encoding::percent_decode_str(&asset).decode_utf8_lossy();
            (dataset, escape_controls(&asset).into_owned())
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

    #[test]
    fn names_that_cannot_be_a_directory_go_to_undetermined() {
        let grouping = Grouping::default();
        let locate = |key: &str| grouping.locate(key.as_bytes()).unwrap();
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
        assert_eq!(deep.locate(b"dandisets/../x").unwrap().0, UNDETERMINED);
        assert_eq!(
            deep.locate(b"dandisets/000001/a").unwrap().0,
            "dandisets/000001"
        );
        // assets are rows: their control characters are escaped once decoded
        assert_eq!(locate("ds/a%09b%0Ac%00.nwb").1, "a%09b%0Ac%00.nwb");
        assert_eq!(locate("ds/a%20b").1, "a b");
    }
}
