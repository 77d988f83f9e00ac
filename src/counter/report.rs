//! Writing the COUNTER reports: per dataset and for the archive, `counter_YYYY-MM.json` shaped
//! like the Code of Practice's item report (Release 5.1) and `counter_YYYY-MM.tsv`, counts
//! written as in the summaries (small ones hidden, others rounded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Access, CounterMetrics, CounterOptions, ItemMetrics, Metrics};
use crate::output::write_if_changed;
use crate::summaries::ARCHIVE;
use crate::summaries::disclosure::Privacy;

/// The country rows of one item: countries behind fewer than `k` requesters pooled in `other`.
fn pooled(metrics: &ItemMetrics, k: usize) -> BTreeMap<(Access, String), Metrics> {
    let mut rows: BTreeMap<(Access, String), Metrics> = BTreeMap::new();
    for ((access, country), cell) in &metrics.cells {
        let behind = metrics
            .requesters
            .get(country)
            .map_or(0, std::collections::HashSet::len);
        let country = if behind < k { "other" } else { country };
        let row = rows.entry((*access, country.to_owned())).or_default();
        row.total += cell.total;
        row.unique += cell.unique;
    }
    rows
}

/// The totals of each access method.
fn by_access(rows: &BTreeMap<(Access, String), Metrics>) -> BTreeMap<Access, Metrics> {
    let mut totals: BTreeMap<Access, Metrics> = BTreeMap::new();
    for ((access, _), row) in rows {
        let total = totals.entry(*access).or_default();
        total.total += row.total;
        total.unique += row.unique;
    }
    totals
}

/// The report of one item as JSON.
fn json_report(
    item: &str,
    rows: &BTreeMap<(Access, String), Metrics>,
    options: &CounterOptions,
    created: &str,
) -> Value {
    let privacy = &options.privacy;
    let month = options.period.name();
    let performance: Vec<Value> = by_access(rows)
        .into_iter()
        .map(|(access, total)| {
            let countries: serde_json::Map<String, Value> = rows
                .iter()
                .filter(|((a, _), _)| *a == access)
                .map(|((_, country), row)| {
                    let figures = json!({
                        "Total_Item_Requests": privacy.json(row.total),
                        "Unique_Item_Requests": privacy.json(row.unique),
                    });
                    (country.clone(), figures)
                })
                .collect();
            json!({
                "Data_Type": "Dataset",
                "Access_Method": access.name(),
                "Performance": {
                    "Total_Item_Requests": { month.clone(): privacy.json(total.total) },
                    "Unique_Item_Requests": { month.clone(): privacy.json(total.unique) },
                },
                "s3tally:By_Country": countries,
            })
        })
        .collect();
    json!({
        "Report_Header": {
            "Release": "5.1",
            "Report_Name": "Item Report",
            "Report_ID": "IR",
            "Institution_Name": "The World",
            "Created": created,
            "Created_By": concat!("s3tally ", env!("CARGO_PKG_VERSION")),
            "Report_Filters": {
                "Begin_Date": options.period.first.to_string(),
                "End_Date": options.period.last().to_string(),
                "Data_Type": ["Dataset"],
                "Metric_Type": ["Total_Item_Requests", "Unique_Item_Requests"],
            },
            "Report_Attributes": { "Attributes_To_Show": ["Data_Type", "Access_Method"] },
            "Notes": "Robots excluded; double clicks (30 s, same requester, client and object) filtered; sessions are requester, client and clock hour; TDM is machine access (scripts and tools). s3tally:By_Country splits each figure by the requester's country (ISO 3166-1 alpha-2; unknown: not placed; other: countries behind too few requesters).",
        },
        "Report_Items": [{
            "Item": item,
            "Item_ID": { "Proprietary": format!("s3tally:{item}") },
            "Attribute_Performance": performance,
        }],
    })
}

/// The report of one item as TSV: per access method a row for all countries, then one per
/// country.
fn tsv_report(rows: &BTreeMap<(Access, String), Metrics>, privacy: &Privacy) -> String {
    let mut text =
        String::from("access_method\tcountry\ttotal_item_requests\tunique_item_requests\n");
    let line = |access: Access, country: &str, row: &Metrics| {
        format!(
            "{}\t{country}\t{}\t{}\n",
            access.name(),
            privacy.count(row.total),
            privacy.count(row.unique)
        )
    };
    for (access, total) in by_access(rows) {
        text.push_str(&line(access, "all", &total));
        for ((_, country), row) in rows.iter().filter(|((a, _), _)| *a == access) {
            text.push_str(&line(access, country, row));
        }
    }
    text
}

/// What writing the reports did.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Files whose content changed.
    pub changed: Vec<PathBuf>,
    /// Files already as they are.
    pub unchanged: u64,
    /// Datasets reported.
    pub datasets: usize,
}

/// Writes the reports of every dataset with requests in the month, and of the archive.
pub(crate) fn write_reports(
    metrics: &CounterMetrics,
    options: &CounterOptions,
) -> anyhow::Result<Written> {
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut written = Written {
        datasets: metrics.datasets.len(),
        ..Written::default()
    };
    let items = metrics
        .datasets
        .iter()
        .map(|(name, item)| (name.as_str(), item, name.as_str()))
        .chain(std::iter::once((ARCHIVE, &metrics.archive, "archive")));
    for (directory, item, name) in items {
        let rows = pooled(item, options.privacy.region_min_requesters);
        let base = options.output_dir.join(directory);
        let stem = format!("counter_{}", options.period.name());
        let json = json_report(name, &rows, options, &created);
        // the creation time alone changing is no change
        let json_path = base.join(format!("{stem}.json"));
        if same_but_created(&json_path, &json) {
            written.unchanged += 1;
        } else {
            write(
                &mut written,
                json_path,
                &(serde_json::to_string_pretty(&json)? + "\n"),
            )?;
        }
        let tsv = tsv_report(&rows, &options.privacy);
        write(&mut written, base.join(format!("{stem}.tsv")), &tsv)?;
    }
    Ok(written)
}

/// Whether the report at `path` says the same as `report`, but for its creation time.
fn same_but_created(path: &Path, report: &Value) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(mut old) = serde_json::from_str::<Value>(&text) else {
        return false;
    };
    old["Report_Header"]["Created"] = report["Report_Header"]["Created"].clone();
    old == *report
}

fn write(written: &mut Written, path: PathBuf, content: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| anyhow::anyhow!("{}: {error}", parent.display()))?;
    }
    if write_if_changed(&path, content)
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?
    {
        written.changed.push(path);
    } else {
        written.unchanged += 1;
    }
    Ok(())
}
