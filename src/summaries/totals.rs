//! Writing `totals.json` (by dataset) and `archive_totals.json`, with the keys s3-log-extraction
//! publishes, private like the summaries.

use std::collections::BTreeSet;

use super::disclosure::{Disclosed, Privacy};
use super::tally::Tally;
use super::{ARCHIVE_TOTALS_FILE, Publication, SummaryOptions, SummaryReport, TOTALS_FILE};
use crate::labels::places::Places;

/// The totals of one dataset or of the archive, with their published keys.
/// The regions and countries counted are those named in the published `by_region.tsv`.
fn totals(
    tally: &Tally,
    regions: &Disclosed,
    privacy: &Privacy,
    places: &Places,
) -> serde_json::Value {
    let countries: BTreeSet<String> = regions
        .named()
        .filter_map(|label| places.country(label))
        .collect();
    let mut map = serde_json::Map::new();
    map.insert("total_bytes_sent".into(), tally.total.bytes_sent.into());
    map.insert(
        "number_of_unique_regions".into(),
        regions.named().count().into(),
    );
    map.insert("number_of_unique_countries".into(), countries.len().into());
    map.insert(
        "total_number_of_requests".into(),
        privacy.json(tally.total.requests),
    );
    map.insert(
        "total_number_of_downloads".into(),
        privacy.json(tally.total.downloads),
    );
    map.insert(
        "number_of_requesters".into(),
        privacy.json(tally.requesters.len() as u64),
    );
    map.insert(
        "total_number_of_views".into(),
        privacy.json(tally.total.views),
    );
    serde_json::Value::Object(map)
}

/// Writes `totals.json` (by dataset) and `archive_totals.json`: keys sorted, two-space indent.
pub(crate) fn write_totals(
    publication: &Publication<'_>,
    options: &SummaryOptions,
    report: &mut SummaryReport,
) -> anyhow::Result<()> {
    let tallies = publication.tallies;
    let places = Places::builtin();
    let by_dataset: serde_json::Map<String, serde_json::Value> = tallies
        .datasets
        .iter()
        .map(|(name, tally)| {
            let regions = &publication.regions[name];
            (
                name.clone(),
                totals(tally, regions, &options.privacy, &places),
            )
        })
        .collect();
    let json =
        |value: &serde_json::Value| serde_json::to_string_pretty(value).map(|text| text + "\n");
    report.write(
        options.output_dir.join(TOTALS_FILE),
        &json(&serde_json::Value::Object(by_dataset))?,
    )?;
    report.write(
        options.output_dir.join(ARCHIVE_TOTALS_FILE),
        &json(&totals(
            &tallies.archive,
            publication.archive_regions,
            &options.privacy,
            &places,
        ))?,
    )?;
    Ok(())
}
