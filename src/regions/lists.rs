//! Loading the range lists of the known services: from `--ranges-dir`, else the cache when
//! fresh, else a download (cached), else the stale cache with a warning.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::RegionsOptions;
use super::ranges::{RangeTable, Service};
use crate::cache::Cache;

/// Range lists older than this are downloaded again.
pub(super) const RANGES_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Loads one range list; the error says why it is unavailable.
pub(super) async fn load_ranges(
    service: Service,
    url: &str,
    options: &RegionsOptions,
    cache: &Cache,
    client: &reqwest::Client,
    warnings: &mut Vec<String>,
) -> Result<Option<RangeTable>, String> {
    let configured = options.ranges_dir.as_ref().map_or(!url.is_empty(), |dir| {
        dir.join(service.file_name()).exists()
    });
    if service.is_optional() && !configured {
        return Ok(None);
    }
    load_configured(service, url, options, cache, client, warnings)
        .await
        .map(Some)
}

/// A list that is configured: from `--ranges-dir`, the fresh cache, a download, or the stale cache.
async fn load_configured(
    service: Service,
    url: &str,
    options: &RegionsOptions,
    cache: &Cache,
    client: &reqwest::Client,
    warnings: &mut Vec<String>,
) -> Result<RangeTable, String> {
    if let Some(dir) = &options.ranges_dir {
        let path = dir.join(service.file_name());
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        return service
            .parse(&data)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let cached_path = cache.range_list(service.file_name());
    let cached = std::fs::read(&cached_path)
        .ok()
        .and_then(|data| Some((service.parse(&data).ok()?, modified(&cached_path)?)));
    if let Some((table, fetched)) = &cached
        && fetched.elapsed().unwrap_or_default() < RANGES_MAX_AGE
    {
        return Ok(table.clone());
    }
    match download(service, url, client).await {
        Ok((table, data)) => {
            if let Err(error) = crate::output::write_private(&cached_path, &data) {
                warnings.push(format!(
                    "cannot cache the {} range list in {}: {error}",
                    service.name(),
                    cached_path.display()
                ));
            }
            Ok(table)
        }
        Err(why) => match cached {
            Some((table, fetched)) => {
                let date = chrono::DateTime::<chrono::Utc>::from(fetched).format("%Y-%m-%d");
                warnings.push(format!(
                    "cannot refresh the {} range list ({why}); using the copy cached on {date}",
                    service.name()
                ));
                Ok(table)
            }
            None => Err(why),
        },
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

async fn download(
    service: Service,
    url: &str,
    client: &reqwest::Client,
) -> Result<(RangeTable, Vec<u8>), String> {
    // shown without credentials
    let shown = crate::http::display_url(url);
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{shown}: {}", crate::http::describe(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{shown}: HTTP {}", status.as_u16()));
    }
    let data = crate::http::read_body(response, crate::http::MAX_BODY_BYTES)
        .await
        .map_err(|why| format!("{shown}: {why}"))?;
    let table = service.parse(&data).map_err(|e| format!("{shown}: {e}"))?;
    Ok((table, data))
}
