//! The coordinates stage: a latitude and longitude for every region label, written to
//! `region_codes_to_coordinates.yaml` beside the summaries.
//!
//! Order: the built-in table ([`crate::labels::places`]: cloud regions and labels that geocoders
//! place wrongly), the cache of earlier geocoder answers, then `OpenCage` ([`opencage`]), searched in
//! the label's country. Every answer is cached at once, so a label is geocoded once, ever. Labels
//! without a place (`bogon`, `unknown`, `missing`, `VPN`, `GitHub`, ...) get null coordinates and
//! are never sent.

pub(crate) mod opencage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::RetryPolicy;
use crate::interrupt::StopFlag;
use crate::labels::RegionLabel;
use crate::labels::places::Places;
use crate::progress::{Amount, Progress};
use crate::stage::{self, Context, Outcome};
use crate::store::Store;
use opencage::{GeocodeError, OpenCage};

/// The file written beside the summaries.
pub(crate) const COORDINATES_FILE: &str = "region_codes_to_coordinates.yaml";

/// What the coordinates stage needs.
#[derive(Debug, Clone)]
pub(crate) struct CoordinatesOptions {
    /// The summaries directory: labels are also read from its `by_region.tsv` files, and the YAML
    /// file is written there.
    pub output_dir: PathBuf,
    /// The `OpenCage` base URL.
    pub opencage_url: String,
    /// The `OpenCage` key; without one, only the table and the cache are used.
    pub opencage_key: Option<String>,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Retries of failed requests.
    pub policy: RetryPolicy,
    /// Earlier geocoder answers to forget first (asked again when a key is set).
    pub forget: Forget,
}

/// Which cached geocoder answers to forget before placing labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Forget {
    /// None.
    #[default]
    Nothing,
    /// These labels' answers.
    Labels(Vec<RegionLabel>),
    /// Every answer.
    Everything,
}

/// What the coordinates stage did.
#[derive(Debug, Default)]
pub(crate) struct CoordinatesReport {
    /// Labels in the file.
    pub labels: u64,
    /// Labels placed by the built-in table, the cache, and the geocoder now.
    pub from_table: u64,
    /// Labels placed by an earlier geocoder answer.
    pub from_cache: u64,
    /// Labels geocoded now.
    pub geocoded: u64,
    /// Labels without a place (null coordinates).
    pub placeless: u64,
    /// Labels the geocoder could not place (now or before): add them to the table.
    pub unplaced: Vec<RegionLabel>,
    /// Each label as published (how the lists above are shown).
    pub shown: BTreeMap<RegionLabel, String>,
    /// Labels waiting for the geocoder because no key is set.
    pub need_key: Vec<RegionLabel>,
    /// Why the stage stopped before the end (quota, retries exhausted, stop request).
    pub stopped: Option<String>,
    /// The file, and whether its content changed.
    pub file: PathBuf,
    /// Whether the file was (re)written.
    pub written: bool,
    /// Cached answers forgotten on request.
    pub forgotten: u64,
}

/// Labels as one comma-separated list.
fn listed(labels: &[RegionLabel], shown: &BTreeMap<RegionLabel, String>) -> String {
    let mut texts: Vec<&str> = labels
        .iter()
        .map(|label| shown.get(label).map_or(label.as_str(), String::as_str))
        .collect();
    texts.sort_unstable();
    texts.join(", ")
}

impl stage::Report for CoordinatesReport {
    fn outcome(&self) -> Outcome {
        Outcome::stopped_if(self.stopped.is_some())
    }

    fn summary(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "coordinates: {} labels: {} from the built-in table, {} from earlier answers, {} geocoded now, {} without a place; {} {}",
            self.labels,
            self.from_table,
            self.from_cache,
            self.geocoded,
            self.placeless,
            self.file.display(),
            if self.written { "written" } else { "unchanged" }
        )];
        if self.forgotten > 0 {
            lines.push(format!(
                "coordinates: {} earlier answers forgotten",
                self.forgotten
            ));
        }
        if !self.need_key.is_empty() {
            lines.push(format!(
                "coordinates: {} labels need the geocoder ({} is not set): {}",
                self.need_key.len(),
                opencage::KEY_ENV,
                listed(&self.need_key, &self.shown)
            ));
        }
        if let Some(why) = &self.stopped {
            lines.push(format!(
                "coordinates: stopped ({why}); the rest is geocoded next run"
            ));
        }
        if !self.unplaced.is_empty() {
            lines.push(format!(
                "coordinates: the geocoder could not place {} labels (add cloud regions to src/labels/region_coordinates.tsv, names to src/labels/region_aliases.tsv): {}",
                self.unplaced.len(),
                listed(&self.unplaced, &self.shown)
            ));
        }
        lines
    }

    fn new_work(&self) -> String {
        format!("{} labels geocoded", self.geocoded)
    }

    fn pending(&self) -> String {
        let pending = self.need_key.len() + self.unplaced.len();
        if pending > 0 {
            format!("{pending} labels without coordinates")
        } else {
            String::new()
        }
    }
}

/// Every region label to place: those named in the `by_region.tsv` files under `output_dir`
/// (published), never the store's own labels, which include regions too few requesters stand
/// behind to be published (a lone requester's region in the YAML would say where they are).
/// Each label with its text as published (the YAML uses that text: `US/California` or `USA/CA`).
fn labels_to_place(output_dir: &Path) -> anyhow::Result<BTreeMap<RegionLabel, String>> {
    let mut labels = BTreeMap::new();
    if output_dir.is_dir() {
        for entry in walkdir::WalkDir::new(output_dir)
            .into_iter()
            .filter_map(Result::ok)
        {
            if entry.file_name() != "by_region.tsv" {
                continue;
            }
            let text = std::fs::read_to_string(entry.path())?;
            labels.extend(
                text.lines()
                    .skip(1)
                    .filter_map(|line| line.split('\t').next())
                    .filter_map(|text| {
                        let label = RegionLabel::parse_published(text).ok()?;
                        Some((label, text.to_owned()))
                    }),
            );
        }
    }
    Ok(labels)
}

/// The coordinates stage.
pub(crate) struct Coordinates;

impl stage::Stage for Coordinates {
    const NAME: &'static str = "coordinates";
    type Options = CoordinatesOptions;
    type Report = CoordinatesReport;

    fn run(context: &Context<'_>, options: &CoordinatesOptions) -> anyhow::Result<Self::Report> {
        update(context.store, options, context.stop)
    }
}

fn update(
    store: &Store,
    options: &CoordinatesOptions,
    stop: &StopFlag,
) -> anyhow::Result<CoordinatesReport> {
    let mut report = CoordinatesReport {
        file: options.output_dir.join(COORDINATES_FILE),
        ..CoordinatesReport::default()
    };
    report.forgotten = match &options.forget {
        Forget::Nothing => 0,
        Forget::Labels(labels) => store.forget_coordinates(Some(labels))?,
        Forget::Everything => store.forget_coordinates(None)?,
    };
    let published = labels_to_place(&options.output_dir)?;
    let labels: Vec<RegionLabel> = published.keys().cloned().collect();
    let places = Places::builtin();
    let cached = store.cached_coordinates()?;
    let mut placed: BTreeMap<RegionLabel, Option<(f64, f64)>> = BTreeMap::new();
    let mut to_geocode = Vec::new();
    for label in labels {
        let place = if !label.has_place() {
            report.placeless += 1;
            None
        } else if let Some(known) = places.get(&label) {
            report.from_table += 1;
            Some((known.latitude, known.longitude))
        } else if let Some(answer) = cached.get(label.as_str()) {
            if answer.is_some() {
                report.from_cache += 1;
            } else {
                report.unplaced.push(label.clone());
            }
            *answer
        } else if opencage::query(&label).is_some() {
            to_geocode.push(label.clone());
            None
        } else {
            // a service label the table does not know (`AWS/new-region`): no country to search in
            report.unplaced.push(label.clone());
            None
        };
        placed.insert(label, place);
    }

    match options.opencage_key.as_deref().filter(|k| !k.is_empty()) {
        None => report.need_key = to_geocode,
        Some(key) => {
            let client = OpenCage::new(&options.opencage_url, key, options.timeout, options.policy);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(geocode_all(
                store,
                &client,
                &to_geocode,
                &mut placed,
                &mut report,
                stop,
            ))?;
        }
    }
    report.unplaced.sort();
    report.labels = placed.len() as u64;
    report.shown.clone_from(&published);
    let by_text: BTreeMap<&str, Option<(f64, f64)>> = placed
        .iter()
        .map(|(label, place)| (published[label].as_str(), *place))
        .collect();
    report.written = crate::output::write_if_changed(&report.file, &to_yaml(&by_text))?;
    Ok(report)
}

/// Geocodes the labels one after the other (the free tier allows one request a second), caching
/// every answer at once.
async fn geocode_all(
    store: &Store,
    client: &OpenCage,
    labels: &[RegionLabel],
    placed: &mut BTreeMap<RegionLabel, Option<(f64, f64)>>,
    report: &mut CoordinatesReport,
    stop: &StopFlag,
) -> anyhow::Result<()> {
    let mut progress = Progress::counting(
        "coordinates",
        "labels",
        labels.len() as u64,
        Amount::Items("labels"),
        labels.len() as u64,
    );
    for label in labels {
        if stop.is_raised() {
            report.stopped = Some("stop requested".into());
            break;
        }
        let (text, country) = opencage::query(label).expect("only place labels are geocoded");
        match client.geocode(&text, &country, stop).await {
            Ok(place) => {
                store.cache_coordinates(label, place)?;
                placed.insert(label.clone(), place);
                match place {
                    Some(_) => report.geocoded += 1,
                    None => report.unplaced.push(label.clone()),
                }
                progress.advance(1, 1, label.as_str());
            }
            Err(GeocodeError::Rejected(status)) => {
                progress.finish();
                anyhow::bail!(
                    "OpenCage refused the key (HTTP {status}): check {}",
                    opencage::KEY_ENV
                );
            }
            Err(error @ GeocodeError::Redirected(_)) => {
                progress.finish();
                return Err(error.into());
            }
            Err(GeocodeError::Stopped) => {
                report.stopped = Some("stop requested".into());
                break;
            }
            Err(other) => {
                report.stopped = Some(other.to_string());
                break;
            }
        }
    }
    progress.finish();
    Ok(())
}

/// The YAML file: one line per label, sorted, in the flow style s3-log-extraction publishes
/// (`"US/California": {latitude: 36.7, longitude: -119.4}`), null where there is no place.
pub(crate) fn to_yaml(placed: &BTreeMap<&str, Option<(f64, f64)>>) -> String {
    placed
        .iter()
        .map(|(label, place)| {
            let key = label.replace('\\', "\\\\").replace('"', "\\\"");
            match place {
                Some((latitude, longitude)) => {
                    format!("\"{key}\": {{latitude: {latitude}, longitude: {longitude}}}\n")
                }
                None => format!("\"{key}\": {{latitude: null, longitude: null}}\n"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_lines_are_sorted_quoted_and_null_without_a_place() {
        let mut placed = BTreeMap::new();
        placed.insert("US/California", Some((36.7014631, -118.755997)));
        placed.insert("bogon", None);
        placed.insert("AWS/us-east-1", Some((39.0438, -77.4874)));
        placed.insert("XY/say \"hi\"", None);
        assert_eq!(
            to_yaml(&placed),
            "\"AWS/us-east-1\": {latitude: 39.0438, longitude: -77.4874}\n\
             \"US/California\": {latitude: 36.7014631, longitude: -118.755997}\n\
             \"XY/say \\\"hi\\\"\": {latitude: null, longitude: null}\n\
             \"bogon\": {latitude: null, longitude: null}\n"
        );
    }
}
