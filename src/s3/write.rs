//! Writing to a bucket (the Parquet export's destination): whole objects put at once (an object
//! appears complete or not at all), deleted, and every key under a prefix listed.

use object_store::ObjectStore as _;
use object_store::path::Path as ObjectPath;

use super::{Bucket, PAGE_KEYS, S3Error};

impl Bucket {
    /// The object's path, or the error naming it.
    fn object_path(&self, key: &str) -> Result<ObjectPath, S3Error> {
        ObjectPath::parse(key).map_err(|error| S3Error::Failed {
            url: format!("s3://{}/{key}", self.name),
            message: error.to_string(),
        })
    }

    /// Puts `data` as the object `key` in one request.
    pub(crate) fn put(&self, key: &str, data: Vec<u8>) -> Result<(), S3Error> {
        let path = self.object_path(key)?;
        self.runtime
            .block_on(self.store.put(&path, data.into()))
            .map(drop)
            .map_err(|error| S3Error::from_store(format!("s3://{}/{key}", self.name), &error))
    }

    /// Deletes the object `key` (none is not an error).
    pub(crate) fn delete(&self, key: &str) -> Result<(), S3Error> {
        let path = self.object_path(key)?;
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(S3Error::from_store(
                format!("s3://{}/{key}", self.name),
                &error,
            )),
        }
    }

    /// Every key that starts with `prefix`, page by page.
    pub(crate) fn keys_under(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self.list_page(prefix, false, None, token, PAGE_KEYS)?;
            keys.extend(page.objects.into_iter().map(|(key, _)| key));
            token = page.next;
            if token.is_none() {
                return Ok(keys);
            }
        }
    }
}
