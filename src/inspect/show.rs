//! `s3tally show`: the written summaries as tables in the terminal.

use std::path::Path;

use tabled::builder::Builder;
use tabled::settings::Style;

use crate::summaries::ARCHIVE;
use crate::summaries::tables::read_table;

/// The tables of one dataset's summaries (or the archive's) under `dir`.
pub(crate) fn show(dir: &Path, dataset: Option<&str>) -> anyhow::Result<String> {
    let name = dataset.unwrap_or(ARCHIVE);
    let base = dir.join(name);
    if !base.is_dir() {
        anyhow::bail!(
            "no summaries for {name} in {}: run `s3tally update summaries` first",
            dir.display()
        );
    }
    let mut out = String::new();
    for file in [
        "by_day.tsv",
        "by_region.tsv",
        "by_client.tsv",
        "by_asset.tsv",
    ] {
        let path = base.join(file);
        if !path.exists() {
            continue;
        }
        let rows = read_table(&path)?;
        let mut builder = Builder::default();
        for row in rows {
            builder.push_record(row);
        }
        out.push_str(&format!(
            "{name}/{file}\n{}\n\n",
            builder.build().with(Style::rounded())
        ));
    }
    if let Ok(count) = std::fs::read_to_string(base.join("requester_count.tsv")) {
        out.push_str(&format!("{name}: requesters {count}"));
    }
    Ok(out)
}
