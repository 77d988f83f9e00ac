//! Reading the list of log objects from an S3 Inventory instead of listing the bucket.
//!
//! An inventory is a `manifest.json` (checked against `manifest.checksum`, its MD5) naming CSV.gz
//! data files (each checked against its MD5) whose rows are `"bucket","key","size",...` in the
//! order of the manifest's `fileSchema`, keys URL-encoded. It is read from a local copy or from
//! S3: LOCATION is the manifest, its folder, or the inventory configuration's folder (the newest
//! `YYYY-MM-DDTHH-MMZ/` folder in it is read).

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::Deserialize;

use super::{Bucket, S3Error, S3Location};

/// The largest manifest or data file read.
const MAX_FILE_BYTES: u64 = 2 << 30;

/// Where an inventory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryPlace {
    /// A local copy.
    Local(PathBuf),
    /// In a bucket.
    Remote(S3Location),
}

impl InventoryPlace {
    /// `s3://...` or a local path.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("s3://") {
            S3Location::parse(text).map(InventoryPlace::Remote)
        } else {
            Ok(InventoryPlace::Local(PathBuf::from(text)))
        }
    }
}

/// The part of `manifest.json` read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    source_bucket: String,
    file_format: String,
    file_schema: String,
    files: Vec<DataFile>,
}

/// One data file of the manifest.
#[derive(Debug, Deserialize)]
struct DataFile {
    key: String,
    #[serde(rename = "MD5checksum")]
    md5_checksum: String,
}

/// The log objects an inventory lists.
#[derive(Debug, Default)]
pub(crate) struct Inventoried {
    /// Key and size of every object under the location's prefix.
    pub objects: Vec<(String, u64)>,
    /// What the manifest is (shown in the report).
    pub manifest: String,
    /// Caveats (a manifest without its checksum file).
    pub warnings: Vec<String>,
}

/// Errors reading an inventory.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InventoryError {
    /// Reading from S3 failed.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// Anything about the inventory itself.
    #[error("inventory {place}: {message}")]
    Bad {
        /// The manifest or data file.
        place: String,
        /// What is wrong.
        message: String,
    },
}

fn bad(place: impl std::fmt::Display, message: impl Into<String>) -> InventoryError {
    InventoryError::Bad {
        place: place.to_string(),
        message: message.into(),
    }
}

/// Reads the objects under `location` that the inventory at `place` lists (`inventory_bucket` is
/// the connection to the inventory's bucket when it is in S3).
pub(crate) fn read(
    place: &InventoryPlace,
    inventory_bucket: Option<&Bucket>,
    location: &S3Location,
) -> Result<Inventoried, InventoryError> {
    let mut source: Box<dyn Source + '_> = match (place, inventory_bucket) {
        (InventoryPlace::Local(path), _) => Box::new(LocalSource::find(path)?),
        (InventoryPlace::Remote(at), Some(bucket)) => Box::new(RemoteSource::find(bucket, at)?),
        (InventoryPlace::Remote(at), None) => {
            return Err(bad(at, "no connection to its bucket"));
        }
    };
    let mut inventoried = Inventoried {
        manifest: source.manifest_name(),
        ..Inventoried::default()
    };
    let manifest_bytes = source.manifest()?;
    match source.checksum()? {
        Some(expected) => {
            let actual = hex::encode(Md5::digest(&manifest_bytes));
            if !expected.trim().eq_ignore_ascii_case(&actual) {
                return Err(bad(
                    &inventoried.manifest,
                    format!(
                        "manifest.checksum says {}, the manifest's MD5 is {actual}",
                        expected.trim()
                    ),
                ));
            }
        }
        None => inventoried.warnings.push(format!(
            "{}: no manifest.checksum beside it; the manifest is read unchecked",
            inventoried.manifest
        )),
    }
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|error| {
        bad(
            &inventoried.manifest,
            format!("not an S3 Inventory manifest: {error}"),
        )
    })?;
    if !manifest.file_format.eq_ignore_ascii_case("CSV") {
        return Err(bad(
            &inventoried.manifest,
            format!(
                "its data files are {}; s3tally reads CSV inventories (choose CSV in the inventory configuration)",
                manifest.file_format
            ),
        ));
    }
    if manifest.source_bucket != location.bucket {
        return Err(bad(
            &inventoried.manifest,
            format!(
                "it lists bucket {}, not {}",
                manifest.source_bucket, location.bucket
            ),
        ));
    }
    let columns: Vec<String> = manifest
        .file_schema
        .split(',')
        .map(|column| column.trim().to_ascii_lowercase())
        .collect();
    let column = |name: &str| columns.iter().position(|c| c == name);
    let (Some(key_column), Some(size_column)) = (column("key"), column("size")) else {
        return Err(bad(
            &inventoried.manifest,
            "its schema has no Key or no Size field (add Size to the inventory's optional fields)",
        ));
    };
    for file in &manifest.files {
        let bytes = source.data_file(&file.key)?;
        let actual = hex::encode(Md5::digest(&bytes));
        if !file.md5_checksum.eq_ignore_ascii_case(&actual) {
            return Err(bad(
                &file.key,
                format!(
                    "the manifest says MD5 {}, the file's is {actual}",
                    file.md5_checksum
                ),
            ));
        }
        read_rows(
            &bytes,
            &file.key,
            key_column,
            size_column,
            location,
            &mut inventoried,
        )?;
    }
    inventoried.objects.sort();
    inventoried.objects.dedup();
    Ok(inventoried)
}

/// Adds the rows of one data file (gzip CSV) under the location's prefix.
fn read_rows(
    gzip: &[u8],
    name: &str,
    key_column: usize,
    size_column: usize,
    location: &S3Location,
    inventoried: &mut Inventoried,
) -> Result<(), InventoryError> {
    let text = flate2::read::GzDecoder::new(gzip).take(8 * MAX_FILE_BYTES);
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    for (number, row) in rows.records().enumerate() {
        let row = row.map_err(|error| bad(name, format!("row {}: {error}", number + 1)))?;
        let (Some(key), Some(size)) = (row.get(key_column), row.get(size_column)) else {
            return Err(bad(name, format!("row {} has too few fields", number + 1)));
        };
        let key = percent_encoding::percent_decode_str(&key.replace('+', " "))
            .decode_utf8()
            .map_err(|_| bad(name, format!("row {}: the key is not UTF-8", number + 1)))?
            .into_owned();
        if !key.starts_with(&location.prefix) {
            continue;
        }
        // a delete marker or a row without a size is no object to read
        let Ok(size) = size.parse::<u64>() else {
            continue;
        };
        inventoried.objects.push((key, size));
    }
    Ok(())
}

/// Where the manifest and its files are read from.
trait Source {
    fn manifest_name(&self) -> String;
    fn manifest(&mut self) -> Result<Vec<u8>, InventoryError>;
    fn checksum(&mut self) -> Result<Option<String>, InventoryError>;
    fn data_file(&mut self, key: &str) -> Result<Vec<u8>, InventoryError>;
}

/// A local copy of an inventory.
struct LocalSource {
    manifest: PathBuf,
}

impl LocalSource {
    /// The manifest at `path`: the file, a folder holding it, or the configuration's folder
    /// (its newest dated folder with a manifest).
    fn find(path: &Path) -> Result<Self, InventoryError> {
        if path.is_file() {
            return Ok(Self {
                manifest: path.to_path_buf(),
            });
        }
        if path.join("manifest.json").is_file() {
            return Ok(Self {
                manifest: path.join("manifest.json"),
            });
        }
        let newest = std::fs::read_dir(path)
            .map_err(|error| bad(path.display(), error.to_string()))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|folder| folder.join("manifest.json").is_file())
            .filter(|folder| {
                folder
                    .file_name()
                    .is_some_and(|n| is_dated(&n.to_string_lossy()))
            })
            .max();
        match newest {
            Some(folder) => Ok(Self {
                manifest: folder.join("manifest.json"),
            }),
            None => Err(bad(
                path.display(),
                "no manifest.json in it nor in a dated folder (YYYY-MM-DDTHH-MMZ) of it",
            )),
        }
    }
}

impl Source for LocalSource {
    fn manifest_name(&self) -> String {
        self.manifest.display().to_string()
    }

    fn manifest(&mut self) -> Result<Vec<u8>, InventoryError> {
        read_local(&self.manifest)
    }

    fn checksum(&mut self) -> Result<Option<String>, InventoryError> {
        let path = self.manifest.with_file_name("manifest.checksum");
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(&read_local(&path)?).into_owned(),
        ))
    }

    /// The data file, found beside the manifest as S3 lays it out (`../data/NAME`) or copied
    /// next to it.
    fn data_file(&mut self, key: &str) -> Result<Vec<u8>, InventoryError> {
        let name = key.rsplit('/').next().unwrap_or(key);
        let here = self.manifest.parent().unwrap_or(Path::new("."));
        let candidates = [
            here.join("..").join("data").join(name),
            here.join("data").join(name),
            here.join(name),
        ];
        match candidates.iter().find(|candidate| candidate.is_file()) {
            Some(found) => read_local(found),
            None => Err(bad(
                key,
                format!(
                    "not found locally (looked for {})",
                    candidates
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

fn read_local(path: &Path) -> Result<Vec<u8>, InventoryError> {
    let file = std::fs::File::open(path).map_err(|error| bad(path.display(), error.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|error| bad(path.display(), error.to_string()))?;
    Ok(bytes)
}

/// Whether a folder name is an inventory's date, `YYYY-MM-DDTHH-MMZ`.
fn is_dated(name: &str) -> bool {
    let name = name.trim_end_matches('/').as_bytes();
    name.len() == 17
        && name.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 | 13 => b == b'-',
            10 => b == b'T',
            16 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// An inventory in a bucket.
struct RemoteSource<'a> {
    bucket: &'a Bucket,
    manifest_key: String,
}

impl<'a> RemoteSource<'a> {
    fn find(bucket: &'a Bucket, at: &S3Location) -> Result<Self, InventoryError> {
        if at.prefix.ends_with("manifest.json") {
            return Ok(Self {
                bucket,
                manifest_key: at.prefix.clone(),
            });
        }
        let folder = if at.prefix.is_empty() || at.prefix.ends_with('/') {
            at.prefix.clone()
        } else {
            format!("{}/", at.prefix)
        };
        let name = |f: &str| f[folder.len()..].trim_end_matches('/').to_owned();
        let mut dated = Vec::new();
        let mut token = None;
        loop {
            let page = bucket.list_page(&folder, true, None, token, super::PAGE_KEYS)?;
            let manifest_key = format!("{folder}manifest.json");
            if page.objects.iter().any(|(key, _)| *key == manifest_key) {
                return Ok(Self {
                    bucket,
                    manifest_key,
                });
            }
            dated.extend(page.folders.iter().filter(|f| is_dated(&name(f))).cloned());
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        dated.sort();
        match dated.pop() {
            Some(newest) => Ok(Self {
                bucket,
                manifest_key: format!("{newest}manifest.json"),
            }),
            None => Err(bad(
                at,
                "no manifest.json in it nor in a dated folder (YYYY-MM-DDTHH-MMZ) of it",
            )),
        }
    }
}

impl Source for RemoteSource<'_> {
    fn manifest_name(&self) -> String {
        format!("s3://{}/{}", self.bucket.name(), self.manifest_key)
    }

    fn manifest(&mut self) -> Result<Vec<u8>, InventoryError> {
        Ok(self.bucket.get_small(&self.manifest_key, MAX_FILE_BYTES)?)
    }

    fn checksum(&mut self) -> Result<Option<String>, InventoryError> {
        let key = self
            .manifest_key
            .replace("manifest.json", "manifest.checksum");
        match self.bucket.get_small(&key, 1024) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(S3Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn data_file(&mut self, key: &str) -> Result<Vec<u8>, InventoryError> {
        Ok(self.bucket.get_small(key, MAX_FILE_BYTES)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::gzip::gzip;

    /// An inventory laid out as S3 writes it: `config/data/*.csv.gz` and
    /// `config/2024-05-02T01-00Z/manifest.json` with its checksum.
    fn inventory(dir: &Path, rows: &str, tamper: bool) {
        let data = gzip(rows);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/part-1.csv.gz"), &data).unwrap();
        let manifest = serde_json::json!({
            "sourceBucket": "logs-bucket",
            "destinationBucket": "arn:aws:s3:::inventories",
            "version": "2016-11-30",
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, Size, LastModifiedDate",
            "files": [{"key": "inv/logs-bucket/daily/data/part-1.csv.gz", "size": data.len(),
                       "MD5checksum": hex::encode(Md5::digest(&data))}],
        })
        .to_string();
        let dated = dir.join("2024-05-02T01-00Z");
        std::fs::create_dir_all(&dated).unwrap();
        std::fs::write(dated.join("manifest.json"), &manifest).unwrap();
        let checksum = if tamper {
            "0".repeat(32)
        } else {
            hex::encode(Md5::digest(manifest.as_bytes()))
        };
        std::fs::write(dated.join("manifest.checksum"), checksum).unwrap();
        // an older inventory beside it, not read
        std::fs::create_dir_all(dir.join("2024-05-01T01-00Z")).unwrap();
    }

    #[test]
    fn a_local_inventory_lists_the_objects_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        inventory(
            dir.path(),
            "\"logs-bucket\",\"logs/2024-05-01-10-00-00-0123456789ABCDEF\",\"120\",\"2024-05-01T10:00:00.000Z\"\n\
             \"logs-bucket\",\"logs/with+space%2Bplus\",\"7\",\"2024-05-01T10:00:00.000Z\"\n\
             \"logs-bucket\",\"other/2024-05-01-10-00-00-0123456789ABCDEF\",\"5\",\"2024-05-01T10:00:00.000Z\"\n",
            false,
        );
        let location = S3Location::parse("s3://logs-bucket/logs/").unwrap();
        let place = InventoryPlace::parse(&dir.path().display().to_string()).unwrap();
        let found = read(&place, None, &location).unwrap();
        assert_eq!(
            found.objects,
            [
                ("logs/2024-05-01-10-00-00-0123456789ABCDEF".to_owned(), 120),
                ("logs/with space+plus".to_owned(), 7),
            ]
        );
        assert!(found.manifest.ends_with("2024-05-02T01-00Z/manifest.json"));
        assert!(found.warnings.is_empty());
        // another bucket's inventory is refused
        let other = S3Location::parse("s3://another/logs/").unwrap();
        let error = read(&place, None, &other).unwrap_err().to_string();
        assert!(
            error.contains("lists bucket logs-bucket, not another"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_checksum_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        inventory(dir.path(), "\"logs-bucket\",\"a\",\"1\",\"x\"\n", true);
        let location = S3Location::parse("s3://logs-bucket/").unwrap();
        let place = InventoryPlace::Local(dir.path().to_path_buf());
        let error = read(&place, None, &location).unwrap_err().to_string();
        assert!(error.contains("manifest.checksum says 000"), "{error}");
        assert!(is_dated("2024-05-02T01-00Z"));
        assert!(!is_dated("data"));
        assert!(!is_dated("2024-05-02T01-00"));
    }
}
