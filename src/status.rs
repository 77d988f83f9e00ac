//! `s3tally status`: what the cache holds, as a table.

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::store::{Store, StoreCounts};

/// One row of the status table.
#[derive(Tabled)]
struct Row {
    #[tabled(rename = "what")]
    what: &'static str,
    #[tabled(rename = "count")]
    value: String,
}

/// What the cache holds.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// Totals of the store.
    pub counts: StoreCounts,
    /// Bytes on disk of the store.
    pub store_bytes: u64,
}

/// Reads the status of a store.
pub fn status(store: &Store) -> anyhow::Result<StatusReport> {
    Ok(StatusReport {
        counts: store.counts()?,
        store_bytes: store.size_on_disk(),
    })
}

impl StatusReport {
    /// The status as a table.
    pub fn table(&self) -> String {
        let c = &self.counts;
        let per_request = if c.requests == 0 {
            String::new()
        } else {
            format!(
                " ({:.1} bytes per request)",
                self.store_bytes as f64 / c.requests as f64
            )
        };
        let rows = vec![
            Row {
                what: "log files extracted",
                value: c.files.to_string(),
            },
            Row {
                what: "log bytes extracted",
                value: format!("{:.1} MB", c.file_bytes as f64 / 1e6),
            },
            Row {
                what: "lines read",
                value: c.lines.to_string(),
            },
            Row {
                what: "requests (GET, 2xx)",
                value: c.requests.to_string(),
            },
            Row {
                what: "requests excluded",
                value: c.excluded.to_string(),
            },
            Row {
                what: "rejected lines",
                value: c.rejected.to_string(),
            },
            Row {
                what: "objects",
                value: c.objects.to_string(),
            },
            Row {
                what: "requesters",
                value: c.requesters.to_string(),
            },
            Row {
                what: "requesters pending lookup",
                value: c.pending_lookups.to_string(),
            },
            Row {
                what: "bins",
                value: c.bins.to_string(),
            },
            Row {
                what: "store size",
                value: format!("{:.1} MB{per_request}", self.store_bytes as f64 / 1e6),
            },
        ];
        Table::new(rows).with(Style::rounded()).to_string()
    }
}
