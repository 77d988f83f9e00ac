//! `s3tally status`: what the cache holds, as a table; with sources, how much of each is
//! extracted.

use std::collections::HashMap;

use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::labels::LabelKind;
use crate::logs::{LogIdentity, LogSource, SourceOptions};
use crate::s3::listing::classify;
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
pub(crate) struct StatusReport {
    /// Totals of the store.
    pub counts: StoreCounts,
    /// Bytes on disk of the store.
    pub store_bytes: u64,
    /// Requesters by kind of region label (`pending` when not resolved yet).
    pub labels: Vec<(&'static str, u64)>,
}

/// The kinds of label, in the order shown, then requesters not labelled yet.
const LABEL_KINDS: [&str; 9] = [
    LabelKind::Bogon.name(),
    LabelKind::GitHub.name(),
    LabelKind::Aws.name(),
    LabelKind::Gcp.name(),
    LabelKind::Azure.name(),
    LabelKind::Vpn.name(),
    LabelKind::Place.name(),
    LabelKind::Unknown.name(),
    "pending",
];

/// Reads the status of a store.
pub(crate) fn status(store: &Store) -> anyhow::Result<StatusReport> {
    let mut labels: Vec<(&'static str, u64)> = LABEL_KINDS.iter().map(|k| (*k, 0)).collect();
    for (region, count) in store.region_counts()? {
        let kind = region
            .as_ref()
            .map_or("pending", |label| label.kind().name());
        if let Some(entry) = labels.iter_mut().find(|(k, _)| *k == kind) {
            entry.1 += count;
        }
    }
    Ok(StatusReport {
        counts: store.counts()?,
        store_bytes: store.size_on_disk(),
        labels,
    })
}

impl StatusReport {
    /// The status as a table.
    pub(crate) fn table(&self) -> String {
        const LABEL_ROWS: [&str; 9] = [
            "requesters labelled bogon",
            "requesters labelled GitHub",
            "requesters labelled AWS/...",
            "requesters labelled GCP/...",
            "requesters labelled Azure/...",
            "requesters labelled VPN",
            "requesters labelled with a place",
            "requesters labelled unknown",
            "requesters not labelled yet",
        ];
        let c = &self.counts;
        let per_request = if c.requests == 0 {
            String::new()
        } else {
            format!(
                " ({:.1} bytes per request)",
                self.store_bytes as f64 / c.requests as f64
            )
        };
        let mut rows = vec![
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
        for ((_, count), what) in self.labels.iter().zip(LABEL_ROWS) {
            rows.push(Row {
                what,
                value: count.to_string(),
            });
        }
        Table::new(rows).with(Style::rounded()).to_string()
    }
}

/// One row of the sources table.
#[derive(Tabled)]
struct SourceRow {
    #[tabled(rename = "source")]
    source: String,
    #[tabled(rename = "log objects")]
    objects: u64,
    #[tabled(rename = "MB")]
    megabytes: String,
    #[tabled(rename = "extracted")]
    extracted: u64,
    #[tabled(rename = "MB extracted")]
    megabytes_extracted: String,
    #[tabled(rename = "done")]
    share: String,
    #[tabled(rename = "oldest day not done")]
    oldest_pending: String,
}

/// How much of each source is extracted: log objects and bytes it holds, those extracted (by
/// identity, wherever they were read from), the share of bytes done, and the oldest day (by
/// name) with a log not extracted yet. Every key of a bucket is listed (or the inventory read).
pub(crate) fn sources_table(
    sources: &[LogSource],
    options: &SourceOptions,
    processed: &HashMap<LogIdentity, (u64, bool)>,
) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    for source in sources {
        let options = SourceOptions {
            full_listing: true,
            inventory: match source {
                LogSource::Bucket(_) => options.inventory.clone(),
                LogSource::Dir(_) => None,
            },
            ..options.clone()
        };
        let stop = crate::interrupt::StopFlag::default();
        let found =
            crate::logs::sources::find(std::slice::from_ref(source), &options, None, &stop)?;
        let mut row = SourceRow {
            source: source.to_string(),
            objects: found.files.len() as u64,
            megabytes: String::new(),
            extracted: 0,
            megabytes_extracted: String::new(),
            share: String::new(),
            oldest_pending: String::new(),
        };
        let (mut bytes, mut done_bytes) = (0u64, 0u64);
        let mut oldest = None;
        for file in &found.files {
            bytes += file.size;
            if processed.contains_key(&file.identity()) {
                row.extracted += 1;
                done_bytes += file.size;
            } else if let Some((_, _, day)) = classify(&file.relative) {
                oldest = Some(oldest.map_or(day, |o: chrono::NaiveDate| o.min(day)));
            }
        }
        row.megabytes = format!("{:.1}", bytes as f64 / 1e6);
        row.megabytes_extracted = format!("{:.1}", done_bytes as f64 / 1e6);
        row.share = if bytes == 0 {
            "-".into()
        } else {
            format!("{:.1} %", 100.0 * done_bytes as f64 / bytes as f64)
        };
        row.oldest_pending = oldest.map_or_else(|| "-".into(), |day| day.to_string());
        rows.push(row);
    }
    Ok(Table::new(rows).with(Style::rounded()).to_string())
}
