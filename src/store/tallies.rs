//! What the summaries keep between runs: each dataset's exact figures (JSON), the state each
//! stage last worked from, and the counters that say what changed since.

use super::{BatchNumber, LabelRound, Store, StoreError};

impl Store {
    /// A value a stage keeps between runs (for example what its last run saw).
    pub(crate) fn stage_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.meta(&format!("state:{key}"))
    }

    /// Keeps a value for the next run of a stage.
    pub(crate) fn set_stage_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.set_meta(&format!("state:{key}"), value)
    }

    /// A random id of this store, made on first use, kept when extraction is reset: tells its
    /// exports from another cache's.
    pub(crate) fn store_id(&self) -> Result<String, StoreError> {
        if let Some(id) = self.meta("store_id")? {
            return Ok(id);
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        self.set_meta("store_id", &id)?;
        Ok(id)
    }

    /// What the summaries depend on: the last extraction batch committed and the last labelling
    /// round.
    pub(crate) fn data_version(&self) -> Result<(BatchNumber, LabelRound), StoreError> {
        Ok((
            BatchNumber(self.counter("batches")?),
            LabelRound(self.counter("label_updates")?),
        ))
    }

    /// Every dataset's saved figures (JSON).
    pub(crate) fn saved_tallies(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.collect("SELECT dataset, data FROM dataset_tallies", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }

    /// Saves figures: replaces every dataset's (`removed` is `None`) or those given, deleting
    /// the `removed` ones; and the stage states they correspond to, in the same transaction.
    pub(crate) fn save_tallies(
        &self,
        removed: Option<&[String]>,
        tallies: &[(String, String)],
        states: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        self.in_transaction(|tx| {
            match removed {
                None => {
                    tx.execute("DELETE FROM dataset_tallies", [])?;
                }
                Some(removed) => {
                    let mut delete =
                        tx.prepare_cached("DELETE FROM dataset_tallies WHERE dataset = ?1")?;
                    for dataset in removed {
                        delete.execute([dataset])?;
                    }
                }
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO dataset_tallies(dataset, data) VALUES (?1, ?2)",
            )?;
            for (dataset, data) in tallies {
                insert.execute([dataset, data])?;
            }
            for (key, value) in states {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('state:' || ?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [key, value],
                )?;
            }
            Ok(())
        })
    }

    /// The region rows last published, by scope (a dataset, or `""` for the archive), as JSON.
    pub(crate) fn published_regions(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        self.collect("SELECT scope, data FROM published_regions", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }

    /// Replaces the region rows last published of the scopes given, in one transaction.
    pub(crate) fn save_published_regions(
        &self,
        rows: &[(String, String)],
    ) -> Result<(), StoreError> {
        self.in_transaction(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO published_regions(scope, data) VALUES (?1, ?2)",
            )?;
            for (scope, data) in rows {
                insert.execute([scope, data])?;
            }
            Ok(())
        })
    }
}
