//! The geocoder's answers, found or not, so that a label is geocoded once, ever.

use std::collections::HashMap;

use rusqlite::params;

use super::{Store, StoreError};
use crate::labels::RegionLabel;

impl Store {
    /// The geocoder's earlier answers: label to coordinates (`None`: asked, not found).
    pub(crate) fn cached_coordinates(
        &self,
    ) -> Result<HashMap<String, Option<(f64, f64)>>, StoreError> {
        self.collect(
            "SELECT label, latitude, longitude FROM coordinates",
            [],
            |row| {
                let latitude: Option<f64> = row.get(1)?;
                let longitude: Option<f64> = row.get(2)?;
                Ok((row.get(0)?, latitude.zip(longitude)))
            },
        )
    }

    /// Keeps a geocoder answer at once (its own transaction).
    pub(crate) fn cache_coordinates(
        &self,
        label: &RegionLabel,
        place: Option<(f64, f64)>,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO coordinates(label, latitude, longitude, asked_at) VALUES (?1, ?2, ?3, ?4)",
                params![label, place.map(|p| p.0), place.map(|p| p.1), chrono::Utc::now().timestamp()],
            )
            .map(drop)
        })
    }

    /// Forgets the geocoder's answers for these labels (every answer when `None`); how many.
    pub(crate) fn forget_coordinates(
        &self,
        labels: Option<&[RegionLabel]>,
    ) -> Result<u64, StoreError> {
        self.in_transaction(|tx| match labels {
            None => tx.execute("DELETE FROM coordinates", []).map(|n| n as u64),
            Some(labels) => {
                let mut forget = tx.prepare_cached("DELETE FROM coordinates WHERE label = ?1")?;
                let mut count = 0;
                for label in labels {
                    count += forget.execute([label])? as u64;
                }
                Ok(count)
            }
        })
    }
}
