//! The dataset map: the archive's own word on which dataset (or datasets) and which asset path
//! each object key belongs to, read from a TSV file (`key`, `dataset_id`, `asset_path`).
//!
//! A `key` ending in `/` is a prefix: every key below it is that one asset (a Zarr-like store). A
//! key may have rows for several datasets (a blob shared by two Dandisets): it counts in each.
//! The map is held as the file's bytes plus one 24-byte row per line, sorted by key, so that a
//! map of millions of rows loads in seconds and looks keys up by binary search.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use rayon::slice::ParallelSliceMut;

use super::is_safe_dataset;

/// The header a dataset map starts with.
pub(crate) const HEADER: &str = "key\tdataset_id\tasset_path";

/// Why a dataset map cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MapError {
    /// The file cannot be read.
    #[error("cannot read the dataset map {path}")]
    Read {
        /// The map file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not a map row.
    #[error("the dataset map {path}, line {line}: {why}")]
    Line {
        /// The map file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// One row: where its key and asset path are in the file, and its dataset.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// A hash of the key: rows are ordered by it (then by key, then by place in the file), which
    /// groups each key's rows and sorts ten times faster than comparing keys.
    hash: u64,
    /// Offset of the key in the file.
    start: usize,
    /// Length of the key.
    key_len: u32,
    /// Offset of the asset path from `start`.
    asset_from: u32,
    /// Length of the asset path.
    asset_len: u32,
    /// The dataset (index into `datasets`).
    dataset: u32,
}

/// Where a key belongs according to the map.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Mapped<'a> {
    /// In these datasets (indexes into [`DatasetMap::dataset_name`]), each with its asset path;
    /// each dataset once, the first row of the file winning.
    To(Vec<(u32, &'a str)>),
    /// Under one of the map's layouts (`blobs/`, `zarr/`...) but with no row.
    Undetermined,
    /// Outside every layout of the map.
    Unassociated,
}

/// A loaded dataset map.
pub(crate) struct DatasetMap {
    text: Vec<u8>,
    rows: Vec<Row>,
    datasets: Vec<String>,
    layouts: BTreeSet<String>,
    digests: BTreeMap<String, u64>,
}

impl std::fmt::Debug for DatasetMap {
    /// Short: what the figures depend on (layouts and a digest of every row), not the rows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetMap")
            .field("layouts", &self.layouts)
            .field("digest", &format_args!("{:016x}", self.digest()))
            .finish_non_exhaustive()
    }
}

impl DatasetMap {
    /// Reads and checks a map file: the header, three fields on every line, a key, a dataset id
    /// that can be a directory of the output, an asset path.
    pub(crate) fn load(path: &Path) -> Result<Self, MapError> {
        let text = std::fs::read(path).map_err(|source| MapError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, text)
    }

    fn parse(path: &Path, text: Vec<u8>) -> Result<Self, MapError> {
        let fail = |line: usize, why: String| MapError::Line {
            path: path.to_path_buf(),
            line,
            why,
        };
        let mut rows = Vec::new();
        let mut names = Names::default();
        let mut sums: Vec<u64> = Vec::new();
        let mut layouts = BTreeSet::new();
        let mut start = 0;
        let mut number = 0;
        while start < text.len() {
            number += 1;
            let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |at| start + at);
            let mut line = &text[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line_start = start;
            start = end + 1;
            let line =
                std::str::from_utf8(line).map_err(|_| fail(number, "not UTF-8 text".into()))?;
            if number == 1 {
                if line != HEADER {
                    return Err(fail(
                        1,
                        format!("the header must be `{}`", HEADER.replace('\t', "<TAB>")),
                    ));
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split('\t');
            let (Some(key), Some(dataset), Some(asset), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(fail(
                    number,
                    "expected three tab-separated fields: key, dataset_id, asset_path".into(),
                ));
            };
            if key.is_empty() || asset.is_empty() {
                return Err(fail(number, "an empty key or asset path".into()));
            }
            let dataset_len = dataset.len();
            let dataset = names.intern(dataset).map_err(|why| fail(number, why))?;
            match key.split_once('/') {
                Some((first, _)) => {
                    if !layouts.contains(first) {
                        layouts.insert(first.to_owned());
                    }
                }
                None => {
                    return Err(fail(
                        number,
                        "a key with no `/`: a map covers keys below a top-level prefix such as blobs/ or zarr/".into(),
                    ));
                }
            }
            // each row's part of its dataset's digest, as if its key had no other row (read here,
            // where the text is read in order; keys with several rows are corrected later)
            if sums.len() <= dataset as usize {
                sums.resize(dataset as usize + 1, 0);
            }
            sums[dataset as usize] =
                sums[dataset as usize].wrapping_add(row_digest(key.as_bytes(), asset, true));
            let too_long = |_| fail(number, "a line over 4 GB".into());
            rows.push(Row {
                hash: key_hash(key.as_bytes()),
                start: line_start,
                key_len: u32::try_from(key.len()).map_err(too_long)?,
                asset_from: u32::try_from(key.len() + dataset_len + 2).map_err(too_long)?,
                asset_len: u32::try_from(asset.len()).map_err(too_long)?,
                dataset,
            });
        }
        if number == 0 {
            return Err(fail(1, "an empty file (no header)".into()));
        }
        // among rows of one key, the file's order stays (`start` grows along the file)
        rows.par_sort_unstable_by(|a, b| {
            a.hash
                .cmp(&b.hash)
                .then_with(|| key_of(&text, a).cmp(key_of(&text, b)))
                .then(a.start.cmp(&b.start))
        });
        let mut map = Self {
            text,
            rows,
            datasets: names.names,
            layouts: layouts.into_iter().map(|layout| layout + "/").collect(),
            digests: BTreeMap::new(),
        };
        map.digests = map.compute_digests(sums);
        Ok(map)
    }

    /// The top-level prefixes its keys are under (`blobs/`, `zarr/`).
    pub(crate) fn layouts(&self) -> &BTreeSet<String> {
        &self.layouts
    }

    /// What the map holds, in one line: rows, datasets, and its first layouts.
    pub(crate) fn describe(&self) -> String {
        const SHOWN: usize = 5;
        let mut layouts: Vec<&str> = self
            .layouts
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect();
        if self.layouts.len() > SHOWN {
            layouts.push("...");
        }
        format!(
            "{} rows, {} datasets, under {} top-level prefixes ({})",
            self.rows.len(),
            self.datasets.len(),
            self.layouts.len(),
            layouts.join(" ")
        )
    }

    /// The id of a dataset index given by [`DatasetMap::locate`].
    pub(crate) fn dataset_name(&self, index: u32) -> &str {
        &self.datasets[index as usize]
    }

    /// Where an object key (as the log writes it: percent-decoded first) belongs: its own row,
    /// else the row of its longest prefix, else undetermined under a layout, else unassociated.
    pub(crate) fn locate(&self, key: &[u8]) -> Mapped<'_> {
        let key: std::borrow::Cow<'_, [u8]> = percent_encoding::percent_decode(key).into();
        let found = self.rows_of(&key);
        if !found.is_empty() {
            return Mapped::To(self.places(found));
        }
        for (at, _) in key.iter().enumerate().rev().filter(|(_, b)| **b == b'/') {
            let found = self.rows_of(&key[..=at]);
            if !found.is_empty() {
                return Mapped::To(self.places(found));
            }
        }
        let under_layout = key.iter().position(|b| *b == b'/').is_some_and(|slash| {
            self.layouts
                .contains(String::from_utf8_lossy(&key[..=slash]).as_ref())
        });
        if under_layout {
            Mapped::Undetermined
        } else {
            Mapped::Unassociated
        }
    }

    /// The rows whose key is exactly `key`.
    fn rows_of(&self, key: &[u8]) -> &[Row] {
        let hash = key_hash(key);
        let first = self
            .rows
            .partition_point(|row| (row.hash, key_of(&self.text, row)) < (hash, key));
        let after = first
            + self.rows[first..]
                .partition_point(|row| row.hash == hash && key_of(&self.text, row) == key);
        &self.rows[first..after]
    }

    /// The datasets and asset paths of one key's rows, each dataset once (its first row).
    fn places(&self, rows: &[Row]) -> Vec<(u32, &str)> {
        let mut places: Vec<(u32, &str)> = Vec::with_capacity(rows.len());
        for row in rows {
            if !places.iter().any(|(dataset, _)| *dataset == row.dataset) {
                places.push((row.dataset, self.asset_of(row)));
            }
        }
        places
    }

    fn asset_of(&self, row: &Row) -> &str {
        let from = row.start + row.asset_from as usize;
        // checked as UTF-8 line by line when loaded; the fields split at ASCII tabs
        std::str::from_utf8(&self.text[from..from + row.asset_len as usize]).unwrap_or_default()
    }

    /// A digest of every row of each dataset (key, asset path, and whether the key counts in
    /// the archive through this dataset): when a dataset's digest changes, its figures must be
    /// computed again; when it does not, they stand. `sums` holds each dataset's digest as if no
    /// key had several rows; the keys that have are corrected here.
    fn compute_digests(&self, mut sums: Vec<u64>) -> BTreeMap<String, u64> {
        sums.resize(self.datasets.len(), 0);
        let mut at = 0;
        while at < self.rows.len() {
            let row = &self.rows[at];
            // rows of one key are next to each other, with the same hash: compare hashes first
            // (the text is far in memory)
            let run = self.rows[at..]
                .iter()
                .take_while(|other| other.hash == row.hash)
                .count();
            if run > 1 {
                self.correct_digests(&self.rows[at..at + run], &mut sums);
            }
            at += run;
        }
        self.datasets.iter().cloned().zip(sums).collect()
    }

    /// Corrects the digests for rows sharing a hash (one key's rows, or a rare collision).
    fn correct_digests(&self, rows: &[Row], sums: &mut [u64]) {
        let mut at = 0;
        while at < rows.len() {
            let key = key_of(&self.text, &rows[at]);
            let run = rows[at..]
                .iter()
                .take_while(|other| key_of(&self.text, other) == key)
                .count();
            let group = &rows[at..at + run];
            if run > 1 {
                for row in group {
                    let sum = &mut sums[row.dataset as usize];
                    *sum = sum.wrapping_sub(row_digest(key, self.asset_of(row), true));
                }
                let places = self.places(group);
                let primary = self.primary(&places);
                for (dataset, asset) in &places {
                    let sum = &mut sums[*dataset as usize];
                    *sum = sum.wrapping_add(row_digest(key, asset, Some(*dataset) == primary));
                }
            }
            at += run;
        }
    }

    /// The dataset through which a key shared by several counts once in the archive: the first
    /// by name (the file's order must not matter).
    pub(crate) fn primary(&self, places: &[(u32, &str)]) -> Option<u32> {
        places
            .iter()
            .map(|(dataset, _)| *dataset)
            .min_by(|a, b| self.dataset_name(*a).cmp(self.dataset_name(*b)))
    }

    /// Each dataset's digest (see [`DatasetMap::compute_digests`]).
    pub(crate) fn digests(&self) -> &BTreeMap<String, u64> {
        &self.digests
    }

    /// One digest of the whole map.
    pub(crate) fn digest(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        (&self.layouts, &self.digests).hash(&mut hasher);
        hasher.finish()
    }
}

/// The dataset ids met so far, each checked once.
#[derive(Default)]
struct Names {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    /// The index of a dataset id, checking a new one can be a directory of the output.
    fn intern(&mut self, name: &str) -> Result<u32, String> {
        if let Some(&index) = self.index.get(name) {
            return Ok(index);
        }
        if !is_safe_dataset(name) {
            return Err(format!(
                "dataset id {:?} cannot be a directory of the output (see `--help` of summaries)",
                crate::output::escape_controls(name)
            ));
        }
        let index = u32::try_from(self.names.len()).map_err(|_| "over 4 billion datasets")?;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), index);
        Ok(index)
    }
}

/// One row's part of its dataset's digest.
fn row_digest(key: &[u8], asset: &str, in_archive: bool) -> u64 {
    let mut hasher = DefaultHasher::new();
    (key, asset, in_archive).hash(&mut hasher);
    hasher.finish()
}

/// The hash rows are ordered by.
fn key_hash(key: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(key);
    hasher.finish()
}

fn key_of<'a>(text: &'a [u8], row: &Row) -> &'a [u8] {
    &text[row.start..row.start + row.key_len as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rows: &str) -> DatasetMap {
        DatasetMap::parse(
            Path::new("map.tsv"),
            format!("{HEADER}\n{rows}").into_bytes(),
        )
        .unwrap()
    }

    fn names(map: &DatasetMap, key: &str) -> Vec<(String, String)> {
        match map.locate(key.as_bytes()) {
            Mapped::To(places) => places
                .into_iter()
                .map(|(d, a)| (map.dataset_name(d).to_owned(), a.to_owned()))
                .collect(),
            other => vec![(format!("{other:?}"), String::new())],
        }
    }

    #[test]
    fn keys_prefixes_and_shared_keys_are_found() {
        let map = map("blobs/abc/def/abcdef-1\t000002\tsub-1/a.nwb\n\
             zarr/z-1/\t000001\tsub-2/b.ome.zarr\n\
             blobs/abc/def/abcdef-1\t000001\tsub-9/same-blob.nwb\n\
             blobs/abc/def/abcdef-1\t000002\tolder/name.nwb\n\
             zarr/z-1/0/\t000003\tinner.zarr\n");
        // a shared blob counts in both, each dataset once with its first row's path
        assert_eq!(
            names(&map, "blobs/abc/def/abcdef-1"),
            [
                ("000002".into(), "sub-1/a.nwb".into()),
                ("000001".into(), "sub-9/same-blob.nwb".into())
            ]
        );
        // the longest prefix wins
        assert_eq!(
            names(&map, "zarr/z-1/1/2/3"),
            [("000001".into(), "sub-2/b.ome.zarr".into())]
        );
        assert_eq!(
            names(&map, "zarr/z-1/0/0"),
            [("000003".into(), "inner.zarr".into())]
        );
        // keys as logs write them are percent-decoded
        assert_eq!(names(&map, "zarr/z-1/%2E/x").len(), 1);
        assert_eq!(map.locate(b"blobs/abc/def/other"), Mapped::Undetermined);
        assert_eq!(map.locate(b"zarr/z-2/0"), Mapped::Undetermined);
        assert_eq!(
            map.locate(b"dandisets/000001/draft/dandiset.yaml"),
            Mapped::Unassociated
        );
        assert_eq!(map.locate(b"README"), Mapped::Unassociated);
        // the key exactly as a prefix row without the slash is not below it
        assert_eq!(map.locate(b"zarr/z-1"), Mapped::Undetermined);
        assert_eq!(map.rows.len(), 5);
        assert_eq!(map.datasets.len(), 3);
        assert_eq!(
            map.describe(),
            "5 rows, 3 datasets, under 2 top-level prefixes (blobs/ zarr/)"
        );
        let layouts: Vec<&str> = map.layouts().iter().map(String::as_str).collect();
        assert_eq!(layouts, ["blobs/", "zarr/"]);
    }

    #[test]
    fn broken_maps_say_which_line() {
        let error = |text: &str| {
            DatasetMap::parse(Path::new("m.tsv"), text.as_bytes().to_vec())
                .unwrap_err()
                .to_string()
        };
        assert!(error("").contains("line 1"));
        assert!(error("key\tdataset\tasset_path\n").contains("header"));
        let with_header = |row: &str| error(&format!("{HEADER}\n{row}\n"));
        assert!(with_header("a/b\t1").contains("line 2: expected three"));
        assert!(with_header("a/b\t1\tx\ty").contains("expected three"));
        assert!(with_header("a/b\t../up\tx").contains("cannot be a directory"));
        assert!(with_header("a/b\tarchive\tx").contains("cannot be a directory"));
        assert!(with_header("a/b\t1\t").contains("empty"));
        assert!(with_header("toplevel\t1\tx").contains("no `/`"));
        let not_utf8 = [HEADER.as_bytes(), b"\na/\xff\t1\tx\n"].concat();
        assert!(
            DatasetMap::parse(Path::new("m"), not_utf8)
                .unwrap_err()
                .to_string()
                .contains("line 2: not UTF-8")
        );
        // CRLF line ends and blank lines are fine
        let crlf = DatasetMap::parse(
            Path::new("m"),
            format!("{HEADER}\r\na/b\t1\tx\r\n\r\n").into_bytes(),
        )
        .unwrap();
        assert_eq!(crlf.locate(b"a/b"), Mapped::To(vec![(0, "x")]));
    }

    #[test]
    fn digests_change_only_for_the_datasets_a_change_touches() {
        let before = map("b/1\tA\tx\nb/2\tB\ty\nb/3\tC\tz\n");
        // same rows in another order: nothing changes
        let reordered = map("b/3\tC\tz\nb/1\tA\tx\nb/2\tB\ty\n");
        assert_eq!(before.digests(), reordered.digests());
        // B's asset renamed: only B
        let renamed = map("b/1\tA\tx\nb/2\tB\ty2\nb/3\tC\tz\n");
        let changed = |a: &DatasetMap, b: &DatasetMap| -> Vec<String> {
            let names: BTreeSet<&String> = a.digests().keys().chain(b.digests().keys()).collect();
            names
                .into_iter()
                .filter(|name| a.digests().get(*name) != b.digests().get(*name))
                .cloned()
                .collect()
        };
        assert_eq!(changed(&before, &renamed), ["B"]);
        // b/3 now shared with A: A gets it and C stops counting it in the archive (A < C)
        let shared = map("b/1\tA\tx\nb/2\tB\ty\nb/3\tC\tz\nb/3\tA\tz\n");
        assert_eq!(changed(&before, &shared), ["A", "C"]);
        assert_eq!(shared.primary(&[(2, "z"), (0, "z")]), Some(0));
    }
}
