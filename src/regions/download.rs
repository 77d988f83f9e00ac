//! `s3tally update geoip`: downloads the IP database, from `MaxMind` (with an account ID and
//! license key, checked against the SHA-256 `MaxMind` publishes beside it) or from any URL (DB-IP
//! Lite is free, monthly, CC BY 4.0). The download must open as a database; it then replaces the
//! old file atomically. A local copy younger than `max_age` is kept without asking (`MaxMind`
//! limits daily downloads); a 429 is a clean stop with the old copy in place.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::http::{self, Attempt, Failure, RetryPolicy};
use crate::interrupt::StopFlag;
use crate::output::write_atomically;
use crate::stage::Outcome;

/// Environment variable holding the `MaxMind` account ID.
pub(crate) const ACCOUNT_ENV: &str = "MAXMIND_ACCOUNT_ID";
/// Environment variable holding the `MaxMind` license key.
pub(crate) const LICENSE_ENV: &str = "MAXMIND_LICENSE_KEY";
/// Environment variable overriding `MaxMind`'s download base URL.
pub(crate) const URL_ENV: &str = "MAXMIND_URL";
/// `MaxMind`'s download service.
pub(crate) const DEFAULT_MAXMIND_URL: &str = "https://download.maxmind.com";
/// Largest database accepted once decompressed (`GeoIP2` City is about 130 MB).
const MAX_DATABASE_BYTES: u64 = 1 << 30;

/// Where the database comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// `MaxMind`'s download service: base URL, edition (`GeoLite2-City`), account ID, key.
    MaxMind {
        /// Base URL.
        url: String,
        /// Edition ID.
        edition: String,
        /// Account ID.
        account: String,
        /// License key.
        key: String,
    },
    /// Any URL of a `.mmdb`, `.mmdb.gz` or `.tar.gz` holding one.
    Url(String),
}

/// What the download needs.
#[derive(Debug, Clone)]
pub(crate) struct DownloadOptions {
    /// Where from.
    pub source: Source,
    /// The database file to write.
    pub db: PathBuf,
    /// A local copy younger than this is kept without asking.
    pub max_age: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries of 5xx and network failures.
    pub policy: RetryPolicy,
}

/// What a download did.
#[derive(Debug, Default)]
pub(crate) struct DownloadReport {
    /// The local copy was fresh: nothing asked.
    pub fresh: bool,
    /// The database's type and size when one was written.
    pub written: Option<(String, u64)>,
    /// Why it stopped early (the old copy stays).
    pub stopped: Option<String>,
}

impl DownloadReport {
    /// The outcome.
    pub(crate) fn outcome(&self) -> Outcome {
        Outcome::stopped_if(self.stopped.is_some())
    }
}

/// Why a download failed for good.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    /// The credentials were refused.
    #[error(
        "MaxMind refused the account or license key (HTTP {0}): check {ACCOUNT_ENV} and {LICENSE_ENV}"
    )]
    Rejected(u16),
    /// The daily download limit is reached (429): asking again would only count against it.
    #[error("the download limit is reached (HTTP 429)")]
    Limited,
    /// Any other answer that is not worth retrying.
    #[error("{0}")]
    Failed(String),
}

/// Downloads the database unless the local copy is fresh.
pub(crate) fn download(
    options: &DownloadOptions,
    stop: &StopFlag,
) -> anyhow::Result<DownloadReport> {
    let mut report = DownloadReport::default();
    let fresh = std::fs::metadata(&options.db)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age < options.max_age);
    if fresh {
        report.fresh = true;
        return Ok(report);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = http::client(options.timeout, http::Redirects::HttpsOnly);
    let fetched = runtime.block_on(async {
        match &options.source {
            Source::MaxMind {
                url,
                edition,
                account,
                key,
            } => {
                let base = format!(
                    "{}/geoip/databases/{edition}/download",
                    url.trim_end_matches('/')
                );
                let auth = Some((account.as_str(), key.as_str()));
                let sums = get(&client, &format!("{base}?suffix=tar.gz.sha256"), auth, options, stop)
                    .await?;
                let archive =
                    get(&client, &format!("{base}?suffix=tar.gz"), auth, options, stop).await?;
                let expected = String::from_utf8_lossy(&sums)
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let actual = hex::encode(Sha256::digest(&archive));
                if expected != actual {
                    return Err(Failure::Fail(DownloadError::Failed(format!(
                        "the download's SHA-256 ({actual}) is not the one MaxMind publishes ({expected}): not used, the old database stays"
                    ))));
                }
                Ok((archive, "download.tar.gz".to_owned()))
            }
            Source::Url(url) => {
                let body = get(&client, url, None, options, stop).await?;
                let name = url.split('?').next().unwrap_or(url).to_owned();
                Ok((body, name))
            }
        }
    });
    let (body, name) = match fetched {
        Ok(fetched) => fetched,
        Err(Failure::Stopped) => {
            report.stopped = Some("stop requested".into());
            return Ok(report);
        }
        Err(Failure::Fail(DownloadError::Limited)) => {
            report.stopped = Some(
                "the download limit is reached (HTTP 429); the current database stays, run again tomorrow".into(),
            );
            return Ok(report);
        }
        Err(Failure::GaveUp { attempts, last }) => {
            anyhow::bail!(
                "no database after {attempts} attempts (last: {last}); the current one stays"
            )
        }
        Err(Failure::Fail(error)) => return Err(error.into()),
    };
    let database = unpack(&body, &name)?;
    let reader = maxminddb::Reader::from_source(database.as_slice()).map_err(|error| {
        anyhow::anyhow!(
            "the download is not an IP database ({error}): not used, the current one stays"
        )
    })?;
    let kind = reader.metadata().database_type.clone();
    if let Some(dir) = options.db.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomically(&options.db, &database)?;
    report.written = Some((kind, database.len() as u64));
    Ok(report)
}

/// The database inside a download: a `.tar.gz` holding a `.mmdb`, a gzipped `.mmdb`, or the file
/// itself; at most 1 GB once decompressed.
fn unpack(body: &[u8], name: &str) -> anyhow::Result<Vec<u8>> {
    let gzipped = body.starts_with(&[0x1f, 0x8b]);
    if !gzipped {
        return Ok(body.to_vec());
    }
    let too_large = || anyhow::anyhow!("the download expands beyond 1 GB: not an IP database");
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_DATABASE_BYTES + 1)
        .read_to_end(&mut plain)?;
    if plain.len() as u64 > MAX_DATABASE_BYTES {
        return Err(too_large());
    }
    let is_tar = name.contains(".tar") || plain.get(257..262) == Some(b"ustar".as_slice());
    if !is_tar {
        return Ok(plain);
    }
    let mut archive = tar::Archive::new(plain.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let is_database = entry
            .path()
            .ok()
            .and_then(|path| path.extension().map(|ext| ext == "mmdb"))
            .unwrap_or(false);
        if is_database {
            let mut database = Vec::new();
            entry.read_to_end(&mut database)?;
            return Ok(database);
        }
    }
    anyhow::bail!("the downloaded archive holds no .mmdb file")
}

/// One download, retried on 5xx and network failures; 429 (the daily limit) is not retried,
/// 401/403 are refused credentials.
async fn get(
    client: &reqwest::Client,
    url: &str,
    auth: Option<(&str, &str)>,
    options: &DownloadOptions,
    stop: &StopFlag,
) -> Result<Vec<u8>, Failure<DownloadError>> {
    let attempt = || async {
        let mut request = client.get(url);
        if let Some((user, key)) = auth {
            request = request.basic_auth(user, Some(key));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry {
                    why: http::describe(&error),
                    wait: None,
                };
            }
        };
        let status = response.status().as_u16();
        match status {
            200 => match http::read_body(response, MAX_DATABASE_BYTES as usize).await {
                Ok(body) => Attempt::Done(body),
                Err(why) => Attempt::Retry { why, wait: None },
            },
            401 | 403 if auth.is_some() => Attempt::Fail(DownloadError::Rejected(status)),
            // MaxMind's daily limit: every retry would count against it; a clean stop at once
            429 => Attempt::Fail(DownloadError::Limited),
            408 | 500..=599 => Attempt::Retry {
                why: format!("HTTP {status}"),
                wait: http::retry_after(&response),
            },
            _ => Attempt::Fail(DownloadError::Failed(format!(
                "HTTP {status} from {}",
                http::display_url(url)
            ))),
        }
    };
    http::retrying(&options.policy, stop, attempt).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_found_in_every_packaging() {
        let database = b"pretend database bytes".to_vec();
        assert_eq!(unpack(&database, "x.mmdb").unwrap(), database);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &database).unwrap();
        let gzipped = gz.finish().unwrap();
        assert_eq!(unpack(&gzipped, "dbip.mmdb.gz").unwrap(), database);
        let mut tarball = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        tarball
            .append_data(&mut header, "GeoLite2-City_20261124/LICENSE.txt", &b""[..])
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(database.len() as u64);
        tarball
            .append_data(
                &mut header,
                "GeoLite2-City_20261124/GeoLite2-City.mmdb",
                database.as_slice(),
            )
            .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tarball.into_inner().unwrap()).unwrap();
        assert_eq!(unpack(&gz.finish().unwrap(), "x.tar.gz").unwrap(), database);
    }
}
