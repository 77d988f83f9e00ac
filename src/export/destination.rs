//! Where an export goes: a local directory (files written under a temporary name that does not
//! end in `.parquet`, then renamed) or `s3://BUCKET/PREFIX` (each file one PUT: an object
//! appears whole or not at all). Only s3tally's own files are ever listed or removed there.

use std::path::{Path, PathBuf};

use crate::s3::{Bucket, S3Location, S3Settings};

/// The name of a file of the export: `s3tally-<first batch>-<last batch>-<part>.parquet`.
pub(crate) fn file_name((from, to): (i64, i64), part: u32) -> String {
    format!("s3tally-{from:08}-{to:08}-{part:04}.parquet")
}

/// The batches of a file of the export, from its name (`None`: not one of ours).
pub(crate) fn batches_of(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_prefix("s3tally-")?.strip_suffix(".parquet")?;
    let mut numbers = rest.split('-');
    let from = numbers.next()?.parse().ok()?;
    let to = numbers.next()?.parse().ok()?;
    numbers.next()?.parse::<u32>().ok()?;
    numbers.next().is_none().then_some((from, to))
}

/// The suffix of a file being written locally (left behind only by a kill).
const TEMPORARY: &str = ".tmp";

/// An export's destination.
pub(crate) enum Destination {
    /// A local directory.
    Local(PathBuf),
    /// A bucket and a key prefix (empty, or ending in `/`).
    S3 {
        /// The bucket.
        bucket: Bucket,
        /// The location as given.
        location: S3Location,
    },
}

impl Destination {
    /// Opens a destination: `s3://BUCKET/PREFIX` or a local directory (created, private to its
    /// owner, when missing).
    pub(crate) fn open(text: &str, settings: &S3Settings) -> anyhow::Result<Self> {
        if text.starts_with("s3://") {
            let mut location = S3Location::parse(text).map_err(crate::exit::UsageError)?;
            if !location.prefix.is_empty() && !location.prefix.ends_with('/') {
                location.prefix.push('/');
            }
            let bucket = Bucket::connect(&location.bucket, settings)?;
            return Ok(Destination::S3 { bucket, location });
        }
        let path = PathBuf::from(text);
        refuse_git_tree(&path)?;
        if !path.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", path.display()))?;
        }
        let path = path
            .canonicalize()
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        if !path.is_dir() {
            anyhow::bail!("{} is not a directory", path.display());
        }
        Ok(Destination::Local(path))
    }

    /// The destination as written, and the key of its state in the store.
    pub(crate) fn url(&self) -> String {
        match self {
            Destination::Local(path) => path.display().to_string(),
            Destination::S3 { location, .. } => location.url(),
        }
    }

    /// s3tally's files there (relative paths), and the temporary files a kill left behind.
    pub(crate) fn own_files(&self) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let names: Vec<String> = match self {
            Destination::Local(dir) => {
                let mut names = Vec::new();
                for entry in walkdir::WalkDir::new(dir).min_depth(1) {
                    let entry = entry?;
                    if entry.file_type().is_file()
                        && let Ok(relative) = entry.path().strip_prefix(dir)
                    {
                        names.push(relative.to_string_lossy().into_owned());
                    }
                }
                names
            }
            Destination::S3 { bucket, location } => bucket
                .keys_under(&location.prefix)?
                .into_iter()
                .filter_map(|key| key.strip_prefix(&location.prefix).map(str::to_owned))
                .collect(),
        };
        let file_name = |path: &str| path.rsplit('/').next().unwrap_or(path).to_owned();
        let mut ours = Vec::new();
        let mut temporary = Vec::new();
        for name in names {
            let file = file_name(&name);
            if batches_of(&file).is_some() {
                ours.push(name);
            } else if let Some(stem) = file.strip_suffix(TEMPORARY)
                && batches_of(stem).is_some()
            {
                temporary.push(name);
            }
        }
        ours.sort();
        temporary.sort();
        Ok((ours, temporary))
    }

    /// Writes one file at `relative` (a temporary name, then a rename, locally).
    pub(crate) fn put(&self, relative: &str, data: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Destination::Local(dir) => {
                Ok(crate::output::write_atomically(&dir.join(relative), &data)?)
            }
            Destination::S3 { bucket, location } => {
                Ok(bucket.put(&format!("{}{relative}", location.prefix), data)?)
            }
        }
    }

    /// The small file at `relative` (`None` when there is none).
    pub(crate) fn read(&self, relative: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Destination::Local(dir) => match std::fs::read(dir.join(relative)) {
                Ok(data) => Ok(Some(data)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(anyhow::anyhow!("{}: {error}", dir.join(relative).display())),
            },
            Destination::S3 { bucket, location } => {
                match bucket.get_small(&format!("{}{relative}", location.prefix), 1 << 20) {
                    Ok(data) => Ok(Some(data)),
                    Err(crate::s3::S3Error::NotFound { .. }) => Ok(None),
                    Err(error) => Err(error.into()),
                }
            }
        }
    }

    /// Removes the file at `relative`, and locally the partition folders it leaves empty.
    pub(crate) fn remove(&self, relative: &str) -> anyhow::Result<()> {
        match self {
            Destination::Local(dir) => {
                let path = dir.join(relative);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => anyhow::bail!("cannot remove {}: {error}", path.display()),
                }
                let mut parent = path.parent();
                while let Some(folder) = parent
                    && folder != dir
                    && std::fs::remove_dir(folder).is_ok()
                {
                    parent = folder.parent();
                }
                Ok(())
            }
            Destination::S3 { bucket, location } => {
                Ok(bucket.delete(&format!("{}{relative}", location.prefix))?)
            }
        }
    }
}

/// Refuses a local destination inside a git working tree: the rows are private, and there they
/// would be one `git add` from a publication.
fn refuse_git_tree(destination: &Path) -> Result<(), crate::exit::UsageError> {
    let absolute = std::path::absolute(destination).unwrap_or_else(|_| destination.to_path_buf());
    for dir in absolute.ancestors() {
        if dir.join(".git").exists() {
            return Err(crate::exit::UsageError(format!(
                "{} is inside the git working tree {}: the export holds one row per request with a pseudonymous requester and must stay out of any repository; choose a directory outside it",
                destination.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_their_batches_and_temporary_names_are_not_parquet() {
        let name = file_name((3, 17), 2);
        assert_eq!(name, "s3tally-00000003-00000017-0002.parquet");
        assert_eq!(batches_of(&name), Some((3, 17)));
        for other in [
            "part-0.parquet",
            "s3tally-1-2.parquet",
            "s3tally-1-2-3-4.parquet",
            "s3tally-a-2-3.parquet",
            "s3tally-00000003-00000017-0002.parquet.tmp",
        ] {
            assert_eq!(batches_of(other), None, "{other}");
        }
        // what a kill can leave: `<name>.tmp`, which no `*.parquet` glob matches
        let temporary = format!("{name}{TEMPORARY}");
        assert!(!temporary.ends_with(".parquet"));
    }

    #[test]
    fn only_our_files_and_our_leftovers_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let destination =
            Destination::open(dir.path().to_str().unwrap(), &S3Settings::default()).unwrap();
        let ours = format!("year=2024/month=05/day=02/{}", file_name((1, 2), 0));
        destination.put(&ours, b"x".to_vec()).unwrap();
        let left = dir.path().join(format!(
            "year=2024/month=05/day=02/{}.tmp",
            file_name((3, 3), 0)
        ));
        std::fs::write(&left, b"half").unwrap();
        std::fs::write(dir.path().join("year=2024/notes.parquet"), b"theirs").unwrap();
        let (files, temporary) = destination.own_files().unwrap();
        assert_eq!(files, vec![ours.clone()]);
        assert_eq!(temporary.len(), 1);
        destination.remove(&ours).unwrap();
        destination.remove(&temporary[0]).unwrap();
        // the day folder went with its last file; the month folder holds someone else's file
        assert!(!dir.path().join("year=2024/month=05").exists());
        assert!(dir.path().join("year=2024/notes.parquet").exists());
    }
}
