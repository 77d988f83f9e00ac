//! `update geoip`: the IP database, downloaded and remembered.

use std::path::PathBuf;

use clap::Args;

use super::Place;
use super::options::NetworkArgs;
use crate::cache::Cache;
use crate::config::Settings;
use crate::exit::UsageError;
use crate::regions::download::{self, DownloadOptions, Source};
use crate::stage::Outcome;

/// Options of `update geoip`.
#[derive(Debug, Args)]
pub struct GeoipArgs {
    /// Download from this URL (a .mmdb, .mmdb.gz, or .tar.gz holding one) instead of MaxMind.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The MaxMind edition.
    #[arg(long, default_value = "GeoLite2-City", value_name = "EDITION")]
    pub edition: String,
    /// MaxMind's download service.
    #[arg(long, env = download::URL_ENV, default_value = download::DEFAULT_MAXMIND_URL, value_name = "URL")]
    pub maxmind_url: String,
    /// Where the database goes [default: the one remembered, else <cache>/geoip/<name>.mmdb].
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Keep a local copy younger than this without asking (MaxMind limits daily downloads).
    #[arg(long, default_value_t = 7, value_name = "DAYS")]
    pub max_age_days: u64,
    /// Download even when the local copy is fresh.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// `s3tally update geoip`.
pub(super) fn update_geoip(
    place: &Place,
    cache: &Cache,
    args: GeoipArgs,
) -> anyhow::Result<Outcome> {
    let source = if let Some(url) = args.url {
        Source::Url(url)
    } else {
        let account = std::env::var(download::ACCOUNT_ENV)
            .ok()
            .filter(|v| !v.is_empty());
        let key = std::env::var(download::LICENSE_ENV)
            .ok()
            .filter(|v| !v.is_empty());
        let (Some(account), Some(key)) = (account, key) else {
            return Err(UsageError(format!(
                "MaxMind needs {} and {} (a free GeoLite2 account), or give --url of another database such as DB-IP Lite",
                download::ACCOUNT_ENV,
                download::LICENSE_ENV
            ))
            .into());
        };
        Source::MaxMind {
            url: args.maxmind_url,
            edition: args.edition.clone(),
            account,
            key,
        }
    };
    let mut settings = Settings::load(&place.config_dir)?;
    let db = if let Some(db) = args.db.or_else(|| settings.geoip_db.clone()) {
        std::path::absolute(db)?
    } else {
        cache.create()?;
        let name = match &source {
            Source::MaxMind { edition, .. } => edition.clone(),
            Source::Url(_) => "ip-database".to_owned(),
        };
        cache.dir().join("geoip").join(format!("{name}.mmdb"))
    };
    let options = DownloadOptions {
        source,
        db: db.clone(),
        max_age: if args.force {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs(args.max_age_days * 86_400)
        },
        timeout: args.network.timeout(),
        policy: args.network.policy(),
    };
    let stop = crate::interrupt::StopFlag::from_signals()?;
    let report = download::download(&options, &stop)?;
    if report.fresh {
        eprintln!(
            "geoip: {} is younger than {} days: kept (--force downloads anyway)",
            db.display(),
            args.max_age_days
        );
    }
    if let Some((kind, bytes)) = &report.written {
        eprintln!(
            "geoip: {} written ({kind}, {:.1} MB); update regions places requesters with it",
            db.display(),
            *bytes as f64 / 1e6
        );
    }
    if let Some(why) = &report.stopped {
        eprintln!("geoip: stopped: {why}");
    }
    if settings.geoip_db.as_deref() != Some(db.as_path())
        && (report.written.is_some() || report.fresh)
    {
        settings.geoip_db = Some(db);
        settings.save(&place.config_dir)?;
    }
    Ok(report.outcome())
}
