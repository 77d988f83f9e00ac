//! `s3tally map dandi`: the dataset map of a DANDI-style archive, from its public REST API.
//!
//! It walks `GET {api}/dandisets/` (every Dandiset, paginated through `next`), each changed
//! Dandiset's `versions/`, and each version's `assets/` (with their `blob` or `zarr` id and
//! `path`), and writes one row per asset: `blobs/<3>/<3>/<blob>` or `zarr/<zarr>/` to the Dandiset
//! id and the asset's path (the draft's path first, then the newest published version's).
//!
//! Incremental: what each version held is kept beside the map (`<OUT>.state.json`). A Dandiset
//! whose listing (modified time, draft's modified time, latest published version) is unchanged
//! is not asked again; a published version never is (it cannot change); a draft is asked again
//! when its modified time changed. A Dandiset listed but answering 404 (withdrawn) or 401/403
//! (embargoed) is left out, with a warning.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::is_safe_dataset;
use crate::http::{self, Attempt, Failure, RetryPolicy};
use crate::interrupt::StopFlag;
use crate::output::write_atomically;
use crate::stage::Outcome;

/// The public DANDI Archive API.
pub(crate) const DEFAULT_API_URL: &str = "https://api.dandiarchive.org/api";

/// What the builder needs.
#[derive(Debug, Clone)]
pub(crate) struct DandiOptions {
    /// The API's base URL (`.../api`).
    pub api_url: String,
    /// The map file to write.
    pub out: PathBuf,
    /// Items asked per page.
    pub page_size: u32,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries of 429, 5xx and network failures.
    pub policy: RetryPolicy,
}

/// What a build did.
#[derive(Debug, Default)]
pub(crate) struct DandiReport {
    /// Dandisets in the map.
    pub dandisets: usize,
    /// Dandisets whose listing changed, asked again.
    pub changed: usize,
    /// Versions whose assets were fetched.
    pub versions_fetched: usize,
    /// Versions taken from the previous run.
    pub versions_reused: usize,
    /// HTTP requests made.
    pub requests: usize,
    /// Rows written.
    pub rows: usize,
    /// Dandisets left out now, and why.
    pub left_out: Vec<(String, String)>,
    /// Dandisets left out by an earlier run, unchanged since (not asked again).
    pub still_left_out: usize,
    /// Assets left out (an id or path that cannot be a row).
    pub bad_assets: usize,
    /// Dandisets that could not be fetched (kept as the previous run saw them), and why.
    pub failed: Vec<(String, String)>,
    /// A stop was asked for: what was fetched is kept, the rest is asked next time.
    pub stopped: bool,
}

impl DandiReport {
    /// The outcome: failed, stopped, else done.
    pub(crate) fn outcome(&self) -> Outcome {
        if !self.failed.is_empty() {
            Outcome::Failed
        } else if self.stopped {
            Outcome::Stopped
        } else {
            Outcome::Done
        }
    }

    /// The lines to print.
    pub(crate) fn summary(&self, out: &Path) -> Vec<String> {
        let mut lines = vec![format!(
            "map dandi: {} Dandisets ({} changed), {} versions fetched, {} reused, {} requests; {} rows written to {}",
            self.dandisets,
            self.changed,
            self.versions_fetched,
            self.versions_reused,
            self.requests,
            self.rows,
            out.display()
        )];
        for (id, why) in &self.left_out {
            lines.push(format!("warning: Dandiset {id} left out: {why}"));
        }
        if self.still_left_out > 0 {
            lines.push(format!(
                "map dandi: {} Dandisets still left out (withdrawn or not public; asked again when their listing changes)",
                self.still_left_out
            ));
        }
        if self.bad_assets > 0 {
            lines.push(format!(
                "warning: {} assets left out: a blob or zarr id that is not a UUID, or a path with a tab, line end or control character",
                self.bad_assets
            ));
        }
        for (id, why) in &self.failed {
            lines.push(format!(
                "error: Dandiset {id} could not be fetched ({why}); its previous rows are kept, run again"
            ));
        }
        if self.stopped {
            lines.push(
                "map dandi: stopped; the Dandisets fetched so far are kept, run again to finish"
                    .into(),
            );
        }
        lines
    }
}

/// What one version held.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct VersionState {
    /// Its modified time as listed.
    modified: String,
    /// `(key, path)` of every asset.
    assets: Vec<(String, String)>,
}

/// What one Dandiset held.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct DandisetState {
    /// Its listing, as fetched (changes when it or its versions change).
    listing: String,
    /// Its versions by name.
    versions: BTreeMap<String, VersionState>,
    /// Why it is left out of the map (withdrawn, not public), while its listing stays the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    left_out: Option<String>,
}

/// What the previous run saw, kept beside the map.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    /// The API it was read from (another API: start afresh).
    api_url: String,
    /// By Dandiset id.
    dandisets: BTreeMap<String, DandisetState>,
}

/// Why a request got no usable answer.
#[derive(Debug)]
enum Refused {
    /// 404: not (or no longer) there.
    Gone,
    /// 401 or 403: not public.
    Private(u16),
    /// Anything else that is not worth retrying.
    Failed(String),
}

/// The file beside the map that keeps what the previous run saw.
fn state_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".state.json");
    out.with_file_name(name)
}

/// Builds (or brings up to date) the dataset map of the archive at `options.api_url`.
pub(crate) fn build(options: &DandiOptions, stop: &StopFlag) -> anyhow::Result<DandiReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(build_async(options, stop))
}

async fn build_async(options: &DandiOptions, stop: &StopFlag) -> anyhow::Result<DandiReport> {
    let state_file = state_path(&options.out);
    let api = options.api_url.trim_end_matches('/').to_owned();
    let mut previous = load_state(&state_file, &api);
    let client = Client {
        http: http::client(options.timeout, http::Redirects::HttpsOnly),
        api: api.clone(),
        policy: options.policy,
        stop,
        requests: std::cell::Cell::new(0),
    };
    let mut report = DandiReport::default();
    let mut state = State {
        api_url: api.clone(),
        dandisets: BTreeMap::new(),
    };
    let page = format!("page_size={}", options.page_size);
    let listed = client.all(&format!("{api}/dandisets/?{page}")).await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(Refused::Gone | Refused::Private(_)) => {
            anyhow::bail!(
                "{} does not list Dandisets: check --api-url",
                http::display_url(&api)
            )
        }
        Err(Refused::Failed(why)) if why == STOPPED => {
            report.stopped = true;
            return Ok(report);
        }
        Err(Refused::Failed(why)) => anyhow::bail!("cannot list Dandisets: {why}"),
    };
    for dandiset in listed {
        update_dandiset(
            &client,
            &dandiset,
            &page,
            &mut previous,
            &mut state,
            &mut report,
        )
        .await;
    }
    report.requests = client.requests.get();
    report.dandisets = state
        .dandisets
        .values()
        .filter(|dandiset| dandiset.left_out.is_none())
        .count();
    let (text, rows) = map_text(&state);
    report.rows = rows;
    write_atomically(&options.out, text.as_bytes())?;
    write_atomically(&state_file, serde_json::to_string(&state)?.as_bytes())?;
    Ok(report)
}

/// What the previous run against `api` saw (nothing when there is none, or it was another API's).
fn load_state(state_file: &Path, api: &str) -> State {
    let previous: State = match std::fs::read_to_string(state_file) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|error| {
            eprintln!(
                "warning: {} is damaged ({error}): every Dandiset is fetched again",
                state_file.display()
            );
            State::default()
        }),
        Err(_) => State::default(),
    };
    if previous.api_url == api {
        previous
    } else {
        State::default()
    }
}

/// Brings one listed Dandiset into `state`: as it was when its listing is unchanged (or a stop
/// was asked for), else fetched again (or left out, when withdrawn or not public).
async fn update_dandiset(
    client: &Client<'_>,
    dandiset: &serde_json::Value,
    page: &str,
    previous: &mut State,
    state: &mut State,
    report: &mut DandiReport,
) {
    let stop = client.stop;
    let Some(id) = dandiset["identifier"].as_str().map(str::to_owned) else {
        return;
    };
    if !is_safe_id(&id) {
        let shown = crate::output::escape_controls(&id).into_owned();
        report
            .left_out
            .push((shown, "an id that cannot be a directory".into()));
        return;
    }
    let listing = serde_json::json!([
        dandiset["modified"],
        dandiset["draft_version"]["modified"],
        dandiset["most_recent_published_version"]["version"],
    ])
    .to_string();
    let before = previous.dandisets.remove(&id).unwrap_or_default();
    if before.listing == listing || stop.is_raised() {
        report.versions_reused += before.versions.len();
        report.still_left_out += usize::from(before.left_out.is_some());
        if before.listing == listing || !before.versions.is_empty() {
            state.dandisets.insert(id, before);
        }
        report.stopped |= stop.is_raised();
        return;
    }
    report.changed += 1;
    let left_out = |why: String| DandisetState {
        listing: listing.clone(),
        versions: BTreeMap::new(),
        left_out: Some(why),
    };
    match fetch_dandiset(client, &id, page, &before, report).await {
        Ok(versions) => {
            let fetched = DandisetState {
                listing: listing.clone(),
                versions,
                left_out: None,
            };
            state.dandisets.insert(id, fetched);
        }
        Err(Refused::Gone) => {
            let why = "withdrawn (404)".to_owned();
            state.dandisets.insert(id.clone(), left_out(why.clone()));
            report.left_out.push((id, why));
        }
        Err(Refused::Private(status)) => {
            let why = format!("not public (HTTP {status})");
            state.dandisets.insert(id.clone(), left_out(why.clone()));
            report.left_out.push((id, why));
        }
        Err(Refused::Failed(why)) if why == STOPPED => {
            report.stopped = true;
            // the previous run's view of it stands until it is fetched whole
            if !before.versions.is_empty() {
                state.dandisets.insert(id, before);
            }
        }
        Err(Refused::Failed(why)) => {
            // kept as it was (and asked again next time); the others go on
            if !before.versions.is_empty() {
                state.dandisets.insert(id.clone(), before);
            }
            report.failed.push((id, why));
        }
    }
}

/// Most items one list may hold (an API paging forever is an error, not an endless loop).
const MAX_LIST_ITEMS: usize = 20_000_000;

/// Failure text of a request given up because a stop was asked for.
const STOPPED: &str = "stopped";

/// The versions of one Dandiset: those that could not change taken from `before`, the others
/// fetched.
async fn fetch_dandiset(
    client: &Client<'_>,
    id: &str,
    page: &str,
    before: &DandisetState,
    report: &mut DandiReport,
) -> Result<BTreeMap<String, VersionState>, Refused> {
    let api = &client.api;
    let listed = client
        .all(&format!("{api}/dandisets/{id}/versions/?{page}"))
        .await?;
    let mut versions = BTreeMap::new();
    for version in listed {
        let Some(name) = version["version"].as_str() else {
            continue;
        };
        let modified = version["modified"].as_str().unwrap_or_default().to_owned();
        if let Some(known) = before.versions.get(name)
            && (name != "draft" || known.modified == modified)
        {
            report.versions_reused += 1;
            versions.insert(name.to_owned(), known.clone());
            continue;
        }
        let url = format!("{api}/dandisets/{id}/versions/{name}/assets/?{page}");
        let mut assets = Vec::new();
        for asset in client.all(&url).await? {
            match asset_row(&asset) {
                Some(row) => assets.push(row),
                None => report.bad_assets += 1,
            }
        }
        report.versions_fetched += 1;
        versions.insert(name.to_owned(), VersionState { modified, assets });
    }
    Ok(versions)
}

/// The map key and path of an asset, `None` when it cannot be a row.
fn asset_row(asset: &serde_json::Value) -> Option<(String, String)> {
    let path = asset["path"].as_str()?;
    if path.is_empty() || path.chars().any(char::is_control) {
        return None;
    }
    let is_uuid = |id: &str| id.len() >= 6 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let key = match (asset["blob"].as_str(), asset["zarr"].as_str()) {
        (Some(blob), _) if is_uuid(blob) => {
            format!("blobs/{}/{}/{blob}", &blob[..3], &blob[3..6])
        }
        (_, Some(zarr)) if is_uuid(zarr) => format!("zarr/{zarr}/"),
        _ => return None,
    };
    Some((key, path.to_owned()))
}

/// Whether a Dandiset id can be a dataset: a directory name of letters, digits, `.`, `_`, `-`.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && is_safe_dataset(id)
}

/// The map's text: the header, then each Dandiset's assets, the draft's first and then the
/// published versions newest first, each (key, Dandiset) once. Returns the text and its rows.
fn map_text(state: &State) -> (String, usize) {
    let mut text = format!("{}\n", super::map::HEADER);
    let mut rows = 0;
    for (id, dandiset) in &state.dandisets {
        let mut order: Vec<&String> = dandiset.versions.keys().collect();
        // "draft" first, then published versions (YYMMDD.HHMM-like, so newest sorts last)
        order.sort_by(|a, b| {
            (a.as_str() != "draft")
                .cmp(&(b.as_str() != "draft"))
                .then_with(|| b.cmp(a))
        });
        let mut seen = HashSet::new();
        for name in order {
            for (key, path) in &dandiset.versions[name].assets {
                if seen.insert(key.as_str()) {
                    text.push_str(&format!("{key}\t{id}\t{path}\n"));
                    rows += 1;
                }
            }
        }
    }
    (text, rows)
}

/// The API client: requests with retries, pages followed.
struct Client<'a> {
    http: reqwest::Client,
    api: String,
    policy: RetryPolicy,
    stop: &'a StopFlag,
    requests: std::cell::Cell<usize>,
}

impl Client<'_> {
    /// Every result of a paginated list, following `next` (on the API's own host only).
    async fn all(&self, first: &str) -> Result<Vec<serde_json::Value>, Refused> {
        let origin = |url: &str| {
            reqwest::Url::parse(url)
                .ok()
                .map(|url| url.origin().ascii_serialization())
        };
        let mut results = Vec::new();
        let mut url = first.to_owned();
        let mut asked = HashSet::new();
        loop {
            if !asked.insert(url.clone()) {
                return Err(Refused::Failed(format!(
                    "the API's next page {} was asked before",
                    http::display_url(&url)
                )));
            }
            let page = self.get(&url).await?;
            let Some(items) = page["results"].as_array() else {
                return Err(Refused::Failed(format!(
                    "{}: not a page of results",
                    http::display_url(&url)
                )));
            };
            results.extend(items.iter().cloned());
            if results.len() > MAX_LIST_ITEMS {
                return Err(Refused::Failed(format!(
                    "{}: more than {MAX_LIST_ITEMS} results, not a list of this archive's",
                    http::display_url(first)
                )));
            }
            match page["next"].as_str() {
                Some(next) if origin(next).is_some() && origin(next) == origin(&self.api) => {
                    next.clone_into(&mut url);
                }
                Some(next) => {
                    return Err(Refused::Failed(format!(
                        "the API's next page is on another host ({}): not followed",
                        http::display_url(next)
                    )));
                }
                None => return Ok(results),
            }
        }
    }

    /// One JSON answer, retried on 429, 5xx and network failures.
    async fn get(&self, url: &str) -> Result<serde_json::Value, Refused> {
        let attempt = || async {
            self.requests.set(self.requests.get() + 1);
            let request = self.http.get(url).header("Accept", "application/json");
            let answer = match http::send(request).await {
                Ok(answer) => answer,
                Err(retry) => return retry,
            };
            match answer.status {
                200 => match answer.json() {
                    Ok(json) => Attempt::Done(json),
                    Err(retry) => retry,
                },
                404 => Attempt::Fail(Refused::Gone),
                401 | 403 => Attempt::Fail(Refused::Private(answer.status)),
                408 | 429 | 500..=599 => answer.retry(),
                status => Attempt::Fail(Refused::Failed(format!(
                    "HTTP {status} from {}",
                    http::display_url(url)
                ))),
            }
        };
        http::retrying(&self.policy, self.stop, attempt)
            .await
            .map_err(|failure| match failure {
                Failure::Fail(refused) => refused,
                Failure::GaveUp { attempts, last } => Refused::Failed(format!(
                    "{} did not answer after {attempts} attempts (last: {last})",
                    http::display_url(url)
                )),
                Failure::Stopped => Refused::Failed(STOPPED.into()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assets_become_keys_as_dandi_stores_them() {
        let blob = json!({"asset_id": "x", "blob": "1a2b3c00-0000-4000-8000-00000000000a", "zarr": null, "path": "sub-1/a.nwb"});
        assert_eq!(
            asset_row(&blob),
            Some((
                "blobs/1a2/b3c/1a2b3c00-0000-4000-8000-00000000000a".into(),
                "sub-1/a.nwb".into()
            ))
        );
        let zarr = json!({"blob": null, "zarr": "2c3d0000-0000-4000-8000-0000000000f1", "path": "micr/x.ome.zarr"});
        assert_eq!(
            asset_row(&zarr).unwrap().0,
            "zarr/2c3d0000-0000-4000-8000-0000000000f1/"
        );
        for broken in [
            json!({"blob": "../../etc", "path": "a"}),
            json!({"blob": "1a2b3c00", "path": "a\tb"}),
            json!({"blob": "1a2b3c00", "path": "a\nb"}),
            json!({"blob": null, "zarr": null, "path": "a"}),
        ] {
            assert_eq!(asset_row(&broken), None, "{broken}");
        }
        assert!(is_safe_id("000123"));
        assert!(!is_safe_id("../1"));
        assert!(!is_safe_id("archive"));
        assert!(!is_safe_id("a b"));
    }

    #[test]
    fn the_draft_path_wins_then_the_newest_published() {
        let version = |assets: &[(&str, &str)]| VersionState {
            modified: String::new(),
            assets: assets
                .iter()
                .map(|(k, p)| ((*k).to_owned(), (*p).to_owned()))
                .collect(),
        };
        let mut state = State::default();
        state.dandisets.insert(
            "000001".into(),
            DandisetState {
                listing: String::new(),
                left_out: None,
                versions: BTreeMap::from([
                    (
                        "0.230101.1200".into(),
                        version(&[("blobs/k1", "old.nwb"), ("blobs/k2", "gone.nwb")]),
                    ),
                    (
                        "0.240101.1200".into(),
                        version(&[("blobs/k2", "newer.nwb")]),
                    ),
                    ("draft".into(), version(&[("blobs/k1", "current.nwb")])),
                ]),
            },
        );
        let (text, rows) = map_text(&state);
        assert_eq!(
            text,
            "key\tdataset_id\tasset_path\nblobs/k1\t000001\tcurrent.nwb\nblobs/k2\t000001\tnewer.nwb\n"
        );
        assert_eq!(rows, 2);
        assert_eq!(
            state_path(Path::new("/x/map.tsv")),
            Path::new("/x/map.tsv.state.json")
        );
    }
}
