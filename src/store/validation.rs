//! Which version of which validation check ran on which log file.

use std::collections::HashMap;

use rusqlite::params;

use super::{Store, StoreError};

impl Store {
    /// The validation checks already run: log file path to check name to version.
    pub(crate) fn validated(&self) -> Result<HashMap<String, HashMap<String, u32>>, StoreError> {
        let rows: Vec<(String, String, u32)> = self.collect(
            "SELECT path, check_name, version FROM validated",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let mut done: HashMap<String, HashMap<String, u32>> = HashMap::new();
        for (path, check, version) in rows {
            done.entry(path).or_default().insert(check, version);
        }
        Ok(done)
    }

    /// Records checks run on log files (path, check, version, violations), in one transaction.
    pub(crate) fn record_validation(
        &self,
        records: &[(String, &str, u32, u64)],
    ) -> Result<(), StoreError> {
        self.in_transaction(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO validated(path, check_name, version, violations) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (file, check, version, violations) in records {
                insert.execute(params![
                    file,
                    check,
                    version,
                    i64::try_from(*violations).unwrap_or(i64::MAX)
                ])?;
            }
            Ok(())
        })
    }
}
