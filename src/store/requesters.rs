//! Requesters: their salted index, their region label once known, and their raw IP only while a
//! lookup is pending (or kept on request for refreshes).

use std::collections::{HashMap, HashSet};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};

use super::{LabelRound, RequesterId, Store, StoreError};
use crate::labels::RegionLabel;

impl ToSql for RegionLabel {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for RegionLabel {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        RegionLabel::parse(value.as_str()?).map_err(|error| FromSqlError::Other(Box::new(error)))
    }
}

impl Store {
    /// The requesters waiting for a region lookup: id and raw IP.
    pub(crate) fn pending_lookups(&self) -> Result<Vec<(RequesterId, String)>, StoreError> {
        self.collect(
            "SELECT requester_id, ip FROM pending_lookups ORDER BY requester_id",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    /// How many requesters wait for a region lookup.
    pub(crate) fn pending_count(&self) -> Result<u64, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT count(*) FROM pending_lookups", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .map(i64::cast_unsigned)
    }

    /// The resolved requesters whose raw IP is kept: id, salted index and IP.
    pub(crate) fn kept_ips(&self) -> Result<Vec<(RequesterId, Vec<u8>, String)>, StoreError> {
        self.collect(
            "SELECT k.requester_id, r.requester_index, k.ip FROM kept_ips k
                 JOIN requesters r ON r.id = k.requester_id ORDER BY k.requester_id",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
    }

    /// The region label of each requester given (`None`: not resolved).
    pub(crate) fn regions_of(
        &self,
        ids: &[RequesterId],
    ) -> Result<HashMap<RequesterId, Option<RegionLabel>>, StoreError> {
        self.with(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT region FROM requesters WHERE id = ?1")?;
            ids.iter()
                .map(|&id| Ok((id, statement.query_row([id], |row| row.get(0))?)))
                .collect()
        })
    }

    /// Gives requesters their region label in one transaction (one labelling round) and deletes
    /// their raw IP from the pending list (moving it to the kept IPs when `keep_ips`).
    pub(crate) fn label_requesters(
        &self,
        labels: &[(RequesterId, RegionLabel)],
        keep_ips: bool,
    ) -> Result<(), StoreError> {
        if labels.is_empty() {
            // nothing labelled: no new round
            return Ok(());
        }
        self.in_transaction(|tx| {
            // this labelling round's number, recorded with each label it gives
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('label_updates', '1')
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                [],
            )?;
            let round = LabelRound(tx.query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'label_updates'",
                [],
                |row| row.get(0),
            )?);
            let mut label = tx.prepare_cached(
                "UPDATE requesters SET region = ?2, labelled_in = ?3 WHERE id = ?1",
            )?;
            let mut keep = tx.prepare_cached(
                "INSERT OR REPLACE INTO kept_ips(requester_id, ip)
                 SELECT requester_id, ip FROM pending_lookups WHERE requester_id = ?1",
            )?;
            let mut forget =
                tx.prepare_cached("DELETE FROM pending_lookups WHERE requester_id = ?1")?;
            for (id, region) in labels {
                label.execute(params![id, region, round])?;
                if keep_ips {
                    keep.execute([id])?;
                }
                forget.execute([id])?;
            }
            Ok(())
        })
    }

    /// Deletes every kept raw IP of resolved requesters; returns how many.
    pub(crate) fn forget_kept_ips(&self) -> Result<u64, StoreError> {
        self.with(|conn| conn.execute("DELETE FROM kept_ips", []))
            .map(|n| n as u64)
    }

    /// The requesters labelled in labelling rounds after `round`.
    pub(crate) fn requesters_labelled_since(
        &self,
        round: LabelRound,
    ) -> Result<HashSet<RequesterId>, StoreError> {
        self.collect(
            "SELECT id FROM requesters WHERE labelled_in > ?1",
            [round],
            |row| row.get(0),
        )
    }

    /// Every requester and its region label (`None`: not resolved yet).
    pub(crate) fn requester_regions(
        &self,
    ) -> Result<Vec<(RequesterId, Option<RegionLabel>)>, StoreError> {
        self.collect("SELECT id, region FROM requesters", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }

    /// Requesters by region label (`None`: not resolved yet), sorted by label.
    pub(crate) fn region_counts(&self) -> Result<Vec<(Option<RegionLabel>, u64)>, StoreError> {
        self.collect(
            "SELECT region, count(*) FROM requesters GROUP BY region ORDER BY region",
            [],
            |row| Ok((row.get(0)?, row.get::<_, i64>(1)?.cast_unsigned())),
        )
    }

    /// The ids of the requesters with these salted indexes (those the store has seen).
    pub(crate) fn requesters_with_indexes(
        &self,
        indexes: &[[u8; 32]],
    ) -> Result<HashSet<RequesterId>, StoreError> {
        self.with(|conn| {
            let mut query =
                conn.prepare_cached("SELECT id FROM requesters WHERE requester_index = ?1")?;
            let mut found = HashSet::new();
            for index in indexes {
                if let Some(id) = query
                    .query_row([index.as_slice()], |row| row.get(0))
                    .optional()?
                {
                    found.insert(id);
                }
            }
            Ok(found)
        })
    }

    /// Every requester's salted index.
    pub(crate) fn requester_indexes(&self) -> Result<HashMap<RequesterId, Vec<u8>>, StoreError> {
        self.collect("SELECT id, requester_index FROM requesters", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;

    #[test]
    fn labelling_deletes_the_raw_ip_and_records_the_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Cache::at(dir.path())).unwrap();
        let batch = store.begin_batch().unwrap();
        let a = batch.requester_id(&[1; 32], "192.0.2.1").unwrap();
        let b = batch.requester_id(&[2; 32], "192.0.2.2").unwrap();
        batch.commit().unwrap();
        assert_eq!(store.pending_count().unwrap(), 2);
        store
            .label_requesters(&[(a, RegionLabel::bogon())], false)
            .unwrap();
        assert_eq!(
            store.pending_lookups().unwrap(),
            vec![(b, "192.0.2.2".to_owned())]
        );
        assert_eq!(
            store.regions_of(&[a, b]).unwrap(),
            HashMap::from([(a, Some(RegionLabel::bogon())), (b, None)])
        );
        assert_eq!(
            store.requesters_labelled_since(LabelRound(0)).unwrap(),
            HashSet::from([a])
        );
        store
            .label_requesters(&[(b, RegionLabel::unknown())], true)
            .unwrap();
        assert!(store.requesters_labelled_since(LabelRound(1)).unwrap() == HashSet::from([b]));
        assert_eq!(store.kept_ips().unwrap().len(), 1);
        assert_eq!(store.forget_kept_ips().unwrap(), 1);
    }
}
