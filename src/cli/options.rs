//! Option groups shared by several commands (clap `flatten`), and their conversion into each
//! stage's options. Conversion is pure: it reads neither the environment nor the disk beyond
//! checking that given directories exist; what comes from the environment arrives in
//! [`Environment`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

use crate::cache::Cache;
use crate::clients::ClientRules;
use crate::coordinates::{CoordinatesOptions, Forget, opencage};
use crate::datasets::asset_types::AssetTypes;
use crate::datasets::map::DatasetMap;
use crate::exit::UsageError;
use crate::extract::ExtractOptions;
use crate::http::RetryPolicy;
use crate::labels::LabelStyle;
use crate::logs::{Exclusion, LogSource, SourceOptions, parse_ip_or_network};
use crate::privacy::Salt;
use crate::regions::ranges::Service;
use crate::regions::{RegionsOptions, ipinfo, todays_partition};
use crate::s3::inventory::InventoryPlace;
use crate::s3::{self, S3Settings};
use crate::summaries::SummaryOptions;
use crate::summaries::disclosure::Privacy;
use crate::summaries::excluded::ExcludedRequesters;
use crate::summaries::grouping::Grouping;

/// What comes from the environment: API keys and range-list URLs, read once per command.
#[derive(Debug, Clone)]
pub(super) struct Environment {
    /// `IPINFO_API_KEY`.
    pub ipinfo_key: Option<String>,
    /// `OPENCAGE_API_KEY`.
    pub opencage_key: Option<String>,
    /// Where each range list is downloaded from, in `Service::ALL` order.
    pub range_urls: [String; 5],
}

impl Environment {
    /// Reads the environment.
    pub(super) fn from_env() -> Self {
        Self {
            ipinfo_key: std::env::var(ipinfo::KEY_ENV).ok(),
            opencage_key: std::env::var(opencage::KEY_ENV).ok(),
            range_urls: Service::ALL.map(|service| {
                std::env::var(service.url_env())
                    .unwrap_or_else(|_| service.default_url().to_owned())
            }),
        }
    }
}

/// Checks that every directory exists (bad usage otherwise).
pub(super) fn check_dirs(what: &str, dirs: &[PathBuf]) -> Result<(), UsageError> {
    match dirs.iter().find(|dir| !dir.is_dir()) {
        Some(dir) => Err(UsageError(format!(
            "{what} {} does not exist or is not a directory",
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// Checks that every directory among the sources exists (bad usage otherwise).
pub(super) fn check_sources(sources: &[LogSource]) -> Result<(), UsageError> {
    let dirs: Vec<PathBuf> = sources
        .iter()
        .filter_map(|source| match source {
            LogSource::Dir(dir) => Some(dir.clone()),
            LogSource::Bucket(_) => None,
        })
        .collect();
    check_dirs("log directory", &dirs)
}

/// Reading logs from S3 (shared by `extract`, `run` and `status`).
#[derive(Debug, Args, Clone)]
pub struct S3Args {
    /// Take the list of log objects from this S3 Inventory (a local copy or s3://...; the
    /// manifest, its folder, or the configuration's folder, whose newest inventory is read)
    /// instead of listing the bucket. CSV inventories with the Size field.
    #[arg(long, value_name = "LOCATION", value_parser = InventoryPlace::parse)]
    pub inventory: Option<InventoryPlace>,
    /// Downloads from S3 at once (`--concurrency` of `run` is ipinfo's).
    #[arg(long, default_value_t = s3::DEFAULT_CONCURRENCY as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub s3_concurrency: u64,
    /// How to reach S3.
    #[command(flatten)]
    pub connection: S3ConnectionArgs,
    /// List every key of the buckets again, instead of each log folder from its last complete
    /// day (after changing a bucket's log layout or prefix).
    #[arg(long, conflicts_with = "inventory")]
    pub full_listing: bool,
}

impl S3Args {
    /// How to read the S3 sources.
    pub(super) fn options(&self) -> SourceOptions {
        SourceOptions {
            s3: self.connection.settings(self.s3_concurrency as usize),
            inventory: self.inventory.clone(),
            full_listing: self.full_listing,
        }
    }
}

/// How to reach S3 (log sources, and the Parquet export's destination).
#[derive(Debug, Args, Clone)]
pub struct S3ConnectionArgs {
    /// An S3-compatible endpoint (MinIO, Ceph, R2...) instead of AWS.
    #[arg(long, env = s3::ENDPOINT_ENV, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The bucket's region [default: AWS_REGION, the profile's, else asked of S3].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Send no credentials: for a public bucket.
    #[arg(long)]
    pub no_sign_request: bool,
}

impl S3ConnectionArgs {
    /// The settings, with `concurrency` downloads at once.
    pub(super) fn settings(&self, concurrency: usize) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint_url.clone().filter(|url| !url.is_empty()),
            region: self.region.clone(),
            no_sign_request: self.no_sign_request,
            concurrency,
            retry: RetryPolicy::default(),
        }
    }
}

/// Requesters to leave out (shared by `extract`, `run` and `validate`).
#[derive(Debug, Args, Clone)]
pub struct ExclusionArgs {
    /// Leave out requests from this IP address or CIDR range (repeatable), e.g. the archive's own servers.
    #[arg(long, value_name = "IP|CIDR", value_parser = parse_ip_or_network)]
    pub exclude_ip: Vec<IpNet>,
    /// Leave out requests whose remote IP (as written in the log) matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub exclude_ip_regex: Option<regex::Regex>,
}

impl ExclusionArgs {
    /// The exclusion these options describe.
    pub(super) fn exclusion(&self) -> Exclusion {
        Exclusion {
            networks: self.exclude_ip.clone(),
            pattern: self.exclude_ip_regex.clone(),
        }
    }
}

/// How extraction reads and batches (shared by `extract` and `run`).
#[derive(Debug, Args, Clone)]
pub struct ExtractTuning {
    #[command(flatten)]
    pub exclusion: ExclusionArgs,
    #[command(flatten)]
    pub s3: S3Args,
    /// Commit a batch once it holds this many MB of log files.
    #[arg(long, default_value_t = 256, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_mb: u64,
    /// Commit a batch once it holds this many files.
    #[arg(long, default_value_t = 5000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_files: u32,
    /// Worker threads for parsing [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Client rules replacing the bundled ones: `pattern<TAB>class<TAB>family` lines (class
    /// tool, browser or robot), matched case-insensitively against the user agent in order,
    /// before the bundled COUNTER robot list. Applies to requests extracted from now on.
    #[arg(long, value_name = "FILE")]
    pub client_rules: Option<PathBuf>,
}

impl ExtractTuning {
    /// The extract stage's options for these sources (directories checked by the caller first);
    /// an error when the client rules cannot be read.
    pub(super) fn options(
        &self,
        sources: &[LogSource],
        salt: Salt,
    ) -> anyhow::Result<ExtractOptions> {
        Ok(ExtractOptions {
            sources: sources.to_vec(),
            finding: self.s3.options(),
            exclusion: self.exclusion.exclusion(),
            batch_bytes: self.batch_mb * 1_000_000,
            batch_files: self.batch_files as usize,
            salt,
            clients: std::sync::Arc::new(ClientRules::load(self.client_rules.as_deref())?),
        })
    }
}

/// Timeouts and retries of the external services (shared by `update regions`, `update
/// coordinates` and `run`).
#[derive(Debug, Args, Clone)]
pub struct NetworkArgs {
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    pub timeout: u64,
    /// Retries of a failed request (429, 5xx, network errors), with exponential backoff.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: u32,
    /// First retry wait in milliseconds (doubled at each retry).
    #[arg(long, default_value_t = 1000, hide = true)]
    pub retry_base_ms: u64,
}

impl NetworkArgs {
    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    pub(super) fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            base: Duration::from_millis(self.retry_base_ms),
            ..RetryPolicy::default()
        }
    }
}

/// How regions are resolved (shared by `update regions` and `run`).
#[derive(Debug, Args, Clone)]
pub struct RegionsTuning {
    /// Read the range lists from this directory (github.json, aws.json, gcp.json, vpn.txt) instead
    /// of downloading them.
    #[arg(long, value_name = "DIR")]
    pub ranges_dir: Option<PathBuf>,
    /// Base URL of ipinfo.
    #[arg(long, env = ipinfo::URL_ENV, default_value = ipinfo::DEFAULT_URL, value_name = "URL")]
    pub ipinfo_url: String,
    /// Keep the raw IPs of resolved requesters (needed by --refresh); off by default, and without
    /// it any kept IPs are deleted.
    #[arg(long)]
    pub keep_ips: bool,
    /// Also ask again for today's 1/90 of the requesters whose IP is kept (so 90 daily runs cover
    /// them all); changed labels are logged in regions-refresh.log in the cache.
    #[arg(long, requires = "keep_ips")]
    pub refresh: bool,
    /// ipinfo requests in flight.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=32))]
    pub concurrency: u16,
    /// Addresses per ipinfo request (at most 1000).
    #[arg(long, default_value_t = 1000, hide = true, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch_size: u16,
    /// Place requesters from this IP database (MMDB: MaxMind GeoLite2/GeoIP2 City or Country,
    /// DB-IP Lite, IPinfo's free country database) instead of ipinfo [default: the one `update
    /// geoip` downloaded, or `config geoip set` remembered]. Offline, no key, no quota.
    #[arg(long, value_name = "FILE")]
    pub geoip_db: Option<PathBuf>,
    /// Which of the 90 refresh shares to ask for [default: today's].
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(0..90))]
    pub refresh_partition: Option<u64>,
}

impl RegionsTuning {
    /// The regions stage's options.
    /// The regions stage's options; `remembered_geoip` is the database remembered in the config
    /// (used when --geoip-db is not given).
    pub(super) fn options(
        &self,
        network: &NetworkArgs,
        environment: &Environment,
        remembered_geoip: Option<PathBuf>,
    ) -> Result<RegionsOptions, UsageError> {
        if let Some(dir) = &self.ranges_dir {
            check_dirs("ranges directory", std::slice::from_ref(dir))?;
        }
        Ok(RegionsOptions {
            geoip_db: self.geoip_db.clone().or(remembered_geoip),
            ranges_dir: self.ranges_dir.clone(),
            range_urls: environment.range_urls.clone(),
            ipinfo_url: self.ipinfo_url.clone(),
            ipinfo_key: environment.ipinfo_key.clone(),
            batch_size: usize::from(self.batch_size),
            concurrency: usize::from(self.concurrency),
            timeout: network.timeout(),
            policy: network.policy(),
            keep_ips: self.keep_ips,
            refresh_partition: self
                .refresh
                .then(|| self.refresh_partition.unwrap_or_else(todays_partition)),
        })
    }
}

/// The geocoder (shared by `update coordinates` and `run`).
#[derive(Debug, Args, Clone)]
pub struct GeocoderArgs {
    /// Base URL of OpenCage.
    #[arg(long, env = opencage::URL_ENV, default_value = opencage::DEFAULT_URL, value_name = "URL")]
    pub opencage_url: String,
}

impl GeocoderArgs {
    /// The coordinates stage's options, writing into `output_dir`.
    pub(super) fn options(
        &self,
        output_dir: PathBuf,
        network: &NetworkArgs,
        environment: &Environment,
    ) -> CoordinatesOptions {
        CoordinatesOptions {
            output_dir,
            opencage_url: self.opencage_url.clone(),
            opencage_key: environment.opencage_key.clone(),
            timeout: network.timeout(),
            policy: network.policy(),
            forget: Forget::Nothing,
        }
    }
}

/// Which object keys count in which dataset and asset, and whose requests are left out (the
/// summaries, totals and the Parquet export).
#[derive(Debug, Args, Clone)]
pub struct GroupingArgs {
    /// How many leading segments of an object key name its dataset.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub dataset_depth: u16,
    /// Count every key below PREFIX<id>/ as the one asset <id> (repeatable), e.g. zarr/.
    #[arg(long, value_name = "PREFIX")]
    pub collapse_prefix: Vec<String>,
    /// The archive's map of object keys to datasets and asset paths: a TSV with the header
    /// `key<TAB>dataset_id<TAB>asset_path`, a key ending in `/` covering every key below it
    /// (`s3tally map dandi` writes one; see docs/dandi.md). Replaces --dataset-depth and
    /// --collapse-prefix: keys under the map's top-level prefixes without a row are counted under
    /// `undetermined`, others under `unassociated`; a key with rows for several datasets counts
    /// in each (and once in the archive).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dataset_depth", "collapse_prefix"])]
    pub dataset_map: Option<PathBuf>,
    /// Asset type rules for by_asset_type_per_week.tsv, replacing DANDI's (Neurophysiology,
    /// Microscopy, Video, Miscellaneous): `suffix<TAB>type` per line, first match wins, `*` for the
    /// rest (see docs/dandi.md).
    #[arg(long, value_name = "FILE")]
    pub asset_types: Option<PathBuf>,
    /// Leave out, at summary time, the requests of the addresses in FILE (one IP per line, `#`
    /// comments), e.g. the archive's own servers, from figures already extracted. Matched through
    /// the salted requester indexes: no raw IP is kept.
    #[arg(long, value_name = "FILE")]
    pub exclude_ips_file: Option<PathBuf>,
    /// How places are written in by_region.tsv and the coordinates file: `names` (US/California,
    /// as s3-log-extraction before 1.11) or `iso` (USA/CA: ISO 3166-1 alpha-3 and the ISO 3166-2
    /// subdivision code, as 1.11 and the DANDI page's newer versions). Changing it rewrites the
    /// files without resolving anyone again.
    #[arg(long, value_enum, default_value_t = LabelStyle::Names, value_name = "STYLE")]
    pub label_style: LabelStyle,
    /// Only these datasets (repeatable).
    #[arg(long, value_name = "DATASET")]
    pub pick: Vec<String>,
    /// Not these datasets (repeatable).
    #[arg(long, value_name = "DATASET")]
    pub skip: Vec<String>,
    /// Leave out the requests of clients classified as robots (crawlers, by the COUNTER robot
    /// list) from every figure. Off by default, so the figures stay those s3-log-extraction
    /// publishes. Requests extracted before clients were recorded are `unknown` and stay.
    #[arg(long)]
    pub exclude_robots: bool,
}

impl GroupingArgs {
    /// The grouping with the files it names read: the dataset map, the asset type rules, the
    /// excluded addresses (as salted indexes, with the salt from `config_dir`).
    pub(super) fn load(&self, config_dir: &std::path::Path) -> anyhow::Result<Grouping> {
        let mut grouping = Grouping {
            dataset_depth: usize::from(self.dataset_depth),
            collapse_prefixes: self.collapse_prefix.clone(),
            pick: self.pick.clone(),
            skip: self.skip.clone(),
            exclude_robots: self.exclude_robots,
            ..Grouping::default()
        };
        if let Some(path) = &self.dataset_map {
            let started = std::time::Instant::now();
            let map = DatasetMap::load(path)?;
            eprintln!(
                "dataset map: {} (read in {:.1} s)",
                map.describe(),
                started.elapsed().as_secs_f64()
            );
            grouping.map = Some(std::sync::Arc::new(map));
        }
        if let Some(path) = &self.asset_types {
            grouping.asset_types = AssetTypes::load(path)?;
        }
        if let Some(path) = &self.exclude_ips_file {
            grouping.excluded = ExcludedRequesters::from_file(path, &Salt::load(config_dir)?)?;
        }
        Ok(grouping)
    }
}

/// Options of `update summaries`, `update totals` and the same stages in `run`.
#[derive(Debug, Args, Clone)]
pub struct SummaryArgs {
    /// Where the summaries go [default: <cache>/summaries].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Which keys count where, and whose requests are left out.
    #[command(flatten)]
    pub grouping: GroupingArgs,
    /// Counts below this are written `<N>`.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub privacy_minimum: u64,
    /// Other counts are rounded to the nearest multiple of this.
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub round_to: u64,
    /// Name a region in by_region.tsv only when at least K distinct requesters stand behind it,
    /// and change a named row only when K new requesters stand behind it since it was last
    /// written; the rest is pooled in one `other` row (1: every region, as it is).
    #[arg(long, default_value_t = 5, value_name = "K", value_parser = clap::value_parser!(u16).range(1..))]
    pub region_min_requesters: u16,
    /// Replaced by --region-min-requesters (rows behind fewer than K requesters are pooled).
    #[arg(long, hide = true, value_name = "N")]
    pub region_threshold: Option<String>,
    /// Recompute even when nothing was extracted or labelled since the last run.
    #[arg(long)]
    pub full: bool,
}

impl SummaryArgs {
    /// The summaries and totals stages' options, writing under the cache unless `--output`, with
    /// the files the grouping names read (see [`GroupingArgs::load`]).
    pub(super) fn load(
        &self,
        cache: &Cache,
        config_dir: &std::path::Path,
    ) -> anyhow::Result<SummaryOptions> {
        if self.region_threshold.is_some() {
            return Err(UsageError(
                "--region-threshold is replaced by --region-min-requesters K (default 5): a region row is named only when K requesters stand behind it, and by_region.tsv is always written".into(),
            )
            .into());
        }
        Ok(SummaryOptions {
            output_dir: cache.summaries_dir(self.output.as_deref()),
            grouping: self.grouping.load(config_dir)?,
            label_style: self.grouping.label_style,
            privacy: Privacy {
                minimum: self.privacy_minimum,
                round_to: self.round_to,
                region_min_requesters: usize::from(self.region_min_requesters),
            },
            full: self.full,
        })
    }
}

/// Warns, once, when counts or regions are published with less protection than the defaults.
pub(super) fn warn_if_exact(options: &SummaryOptions) {
    let weaker = options.privacy.weaknesses();
    if !weaker.is_empty() {
        eprintln!(
            "warning: {} publish more exactly than the defaults: for internal use; `publish` refuses these summaries without --allow-exact",
            weaker.join(", ")
        );
    }
}
