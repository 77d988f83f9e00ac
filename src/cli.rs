//! The command line: argument definitions (clap), their conversion into each stage's options,
//! and dispatch.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::config::{self, Settings};
use crate::coordinates::{self, CoordinatesOptions};
use crate::extract::{self, Exclusion, ExtractOptions};
use crate::http::RetryPolicy;
use crate::interrupt::StopFlag;
use crate::lock::{self, StopOutcome, WriterLock};
use crate::pipeline::{self, RunOptions};
use crate::privacy::Salt;
use crate::publish::{self, PublishOptions};
use crate::ranges::Service;
use crate::regions::{self, RegionsOptions};
use crate::store::Store;
use crate::summaries::{self, Grouping, Privacy, Stage, SummaryOptions};
use crate::validate::{self, Check, ValidateOptions};
use crate::{Outcome, bench, dump, ipinfo, opencage, show, status};

/// Turn raw AWS S3 server access logs into anonymized, publishable usage statistics.
///
/// `s3tally run LOG_DIR...` runs every stage (extract, regions, coordinates, summaries, totals);
/// each stage is also a command of its own. Exit codes: 0 done, 1 failed (the rest was done; run
/// again), 2 bad usage, 3 stopped early (run again to resume).
#[derive(Debug, Parser)]
#[command(name = "s3tally", version, about, long_about)]
pub struct Cli {
    /// Cache directory holding the store [default: remembered by `config cache set`, else the
    /// user's cache directory, e.g. ~/.cache/s3tally]
    #[arg(long, global = true, env = "S3TALLY_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every stage in order: extract, regions, coordinates, summaries, totals [, publish].
    ///
    /// The CRON entry point. Each stage is incremental; a stage that cannot finish (stopped,
    /// quota, missing key) is reported and the later stages still run on what is there, except a
    /// stopped extraction, which ends the run (exit 3). One timestamped line per stage, then a
    /// table. One run per cache at a time: a second one exits 1 naming the PID, or waits (--wait).
    Run(Box<RunArgs>),
    /// Extract successful GET requests from log files into the store (incremental, resumable).
    ///
    /// Finds S3 access-log files (`YYYY-MM-DD-hh-mm-ss-UNIQUE`, flat or in YYYY/MM/DD folders,
    /// optionally .gz) under each LOG_DIR, skips those extracted before, and commits the rest in
    /// batches: a kill loses at most the batch in flight. Requesters are kept as salted indexes
    /// (salt from S3TALLY_SALT or the salt.key file in the config directory).
    Extract(ExtractArgs),
    /// Run a later stage of the pipeline on what was extracted.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Check, on raw log files, the assumptions the fast parser makes; report each line where one
    /// does not hold as `file:line: check: what is wrong` (IPs masked), then a table.
    ///
    /// Checks: request-line (one place ends the request URI), status (the fast parser and a strict
    /// parse from the end of the line agree), remote-ip, timestamp (parses, within a day of the
    /// file name's time), downloads (a 200 sends the whole object), fields (18 to 27). Files
    /// validated before by the same version of a check are skipped. Exit 0 when no violation, 1
    /// otherwise.
    Validate(ValidateArgs),
    /// Copy the summaries, totals and coordinates into a git working tree and commit the change.
    ///
    /// Layout: content/summaries/<dataset>/*.tsv, content/summaries/archive/*.tsv,
    /// content/totals.json, content/archive_totals.json, content/region_codes_to_coordinates.yaml.
    /// Files of datasets that no longer exist are removed. Refuses (exit 1, naming file and line)
    /// when a file holds an IP address or a requester index. No change, no commit.
    Publish(PublishArgs),
    /// Print the written summaries as tables: the archive's, or one dataset's.
    Show(ShowArgs),
    /// Print every extracted request as TSV: object_key, timestamp, bytes_sent, status, requester.
    Dump(DumpArgs),
    /// Show what the cache holds.
    Status,
    /// Ask the s3tally writing to this cache to commit its current batch and exit; wait for it.
    Stop(StopArgs),
    /// Clear stored data.
    #[command(subcommand)]
    Reset(ResetCommand),
    /// Remember settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Benchmark helpers.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Requesters to leave out (shared by `extract`, `run` and `validate`).
#[derive(Debug, Args, Clone)]
pub struct ExclusionArgs {
    /// Leave out requests from this IP address or CIDR range (repeatable), e.g. the archive's own servers.
    #[arg(long, value_name = "IP|CIDR", value_parser = extract::parse_ip_or_network)]
    pub exclude_ip: Vec<IpNet>,
    /// Leave out requests whose remote IP (as written in the log) matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub exclude_ip_regex: Option<regex::Regex>,
}

impl ExclusionArgs {
    fn exclusion(&self) -> Exclusion {
        Exclusion {
            networks: self.exclude_ip.clone(),
            pattern: self.exclude_ip_regex.clone(),
        }
    }
}

/// Checks that every log directory exists.
fn check_log_dirs(log_dirs: &[PathBuf]) -> Result<(), UsageError> {
    match log_dirs.iter().find(|dir| !dir.is_dir()) {
        Some(dir) => Err(UsageError(format!(
            "log directory {} does not exist or is not a directory",
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// How extraction reads and batches (shared by `extract` and `run`).
#[derive(Debug, Args, Clone)]
pub struct ExtractTuning {
    #[command(flatten)]
    pub exclusion: ExclusionArgs,
    /// Commit a batch once it holds this many MB of log files.
    #[arg(long, default_value_t = 256, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_mb: u64,
    /// Commit a batch once it holds this many files.
    #[arg(long, default_value_t = 5000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_files: u64,
    /// Worker threads for parsing [default: one per core].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl ExtractTuning {
    /// The extract stage's options for these log directories (which must exist).
    fn options(&self, log_dirs: Vec<PathBuf>) -> anyhow::Result<ExtractOptions> {
        check_log_dirs(&log_dirs)?;
        if let Some(threads) = self.threads {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build_global()
                .context("cannot start worker threads")?;
        }
        Ok(ExtractOptions {
            log_dirs,
            exclusion: self.exclusion.exclusion(),
            batch_bytes: self.batch_mb * 1_000_000,
            batch_files: self.batch_files as usize,
        })
    }
}

/// Options of `extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Directories holding S3 access-log files (searched recursively).
    #[arg(required = true, value_name = "LOG_DIR")]
    pub log_dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub tuning: ExtractTuning,
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
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.retries,
            base: Duration::from_millis(self.retry_base_ms),
            ..RetryPolicy::default()
        }
    }
}

/// `update` subcommands.
#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Give every requester waiting for one a region label, then delete its raw IP.
    ///
    /// First match wins: `unknown` (unparsable address), `bogon` (not globally routable), a known
    /// service from its published ranges (`GitHub`, `AWS/<region>`, `GCP/<scope>`, `VPN`), else
    /// ipinfo (`CC/Region` or `CC`; needs IPINFO_API_KEY). Range lists are downloaded and cached for
    /// 7 days (URLs from S3TALLY_GITHUB_RANGES_URL, S3TALLY_AWS_RANGES_URL, S3TALLY_GCP_RANGES_URL,
    /// S3TALLY_VPN_RANGES_URL) unless --ranges-dir is given. Every answered ipinfo batch is committed
    /// at once; on an exhausted quota or after the retries the stage stops with exit 3 and the rest
    /// stays pending for the next run.
    Regions(RegionsArgs),
    /// Give every region label a latitude and longitude and write region_codes_to_coordinates.yaml.
    ///
    /// Labels come from the store and from the by_region.tsv summaries. The built-in table (cloud
    /// regions, labels geocoders get wrong) comes first, then earlier answers, then OpenCage
    /// (needs OPENCAGE_API_KEY), searched in the label's country; every answer is cached, so a
    /// label is geocoded once, ever. Labels without a place (bogon, unknown, missing, VPN, GitHub)
    /// get null coordinates and are never sent.
    Coordinates(CoordinatesArgs),
    /// Write the summaries: per dataset by_day.tsv, by_asset.tsv, by_region.tsv and
    /// requester_count.tsv, and archive/by_day.tsv, by_region.tsv, requester_count.tsv.
    ///
    /// Figures come from the exact per-request data. Counts (requests, downloads, views,
    /// requesters) below --privacy-minimum are written `<50`, the others rounded to --round-to;
    /// bytes are exact. A by_region.tsv is rewritten only when more than --region-threshold
    /// resolved regions changed. A file whose content did not change is not rewritten.
    Summaries(SummaryArgs),
    /// Write totals.json (by dataset) and archive_totals.json, private like the summaries.
    Totals(SummaryArgs),
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
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=32))]
    pub concurrency: u64,
    /// Addresses per ipinfo request (at most 1000).
    #[arg(long, default_value_t = 1000, hide = true, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch_size: u64,
    /// Which of the 90 refresh shares to ask for [default: today's].
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(0..90))]
    pub refresh_partition: Option<u64>,
}

impl RegionsTuning {
    fn options(&self, network: &NetworkArgs) -> anyhow::Result<RegionsOptions> {
        if let Some(dir) = &self.ranges_dir
            && !dir.is_dir()
        {
            return Err(UsageError(format!(
                "ranges directory {} does not exist or is not a directory",
                dir.display()
            ))
            .into());
        }
        Ok(RegionsOptions {
            ranges_dir: self.ranges_dir.clone(),
            range_urls: Service::ALL.map(|service| {
                std::env::var(service.url_env())
                    .unwrap_or_else(|_| service.default_url().to_owned())
            }),
            ipinfo_url: self.ipinfo_url.clone(),
            ipinfo_key: std::env::var(ipinfo::KEY_ENV).ok(),
            batch_size: self.batch_size as usize,
            concurrency: self.concurrency as usize,
            timeout: network.timeout(),
            policy: network.policy(),
            keep_ips: self.keep_ips,
            refresh_partition: self.refresh.then(|| {
                self.refresh_partition
                    .unwrap_or_else(regions::todays_partition)
            }),
        })
    }
}

/// Options of `update regions`.
#[derive(Debug, Args)]
pub struct RegionsArgs {
    #[command(flatten)]
    pub tuning: RegionsTuning,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// The geocoder (shared by `update coordinates` and `run`).
#[derive(Debug, Args, Clone)]
pub struct GeocoderArgs {
    /// Base URL of OpenCage.
    #[arg(long, env = opencage::URL_ENV, default_value = opencage::DEFAULT_URL, value_name = "URL")]
    pub opencage_url: String,
}

impl GeocoderArgs {
    fn options(&self, output_dir: PathBuf, network: &NetworkArgs) -> CoordinatesOptions {
        CoordinatesOptions {
            output_dir,
            opencage_url: self.opencage_url.clone(),
            opencage_key: std::env::var(opencage::KEY_ENV).ok(),
            timeout: network.timeout(),
            policy: network.policy(),
        }
    }
}

/// Options of `update coordinates`.
#[derive(Debug, Args)]
pub struct CoordinatesArgs {
    /// The summaries directory, where the file is written [default: <cache>/summaries].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub geocoder: GeocoderArgs,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Options of `update summaries`, `update totals` and the same stages in `run`.
#[derive(Debug, Args, Clone)]
pub struct SummaryArgs {
    /// Where the summaries go [default: <cache>/summaries].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// How many leading segments of an object key name its dataset.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub dataset_depth: u64,
    /// Count every key below PREFIX<id>/ as the one asset <id> (repeatable), e.g. zarr/.
    #[arg(long, value_name = "PREFIX")]
    pub collapse_prefix: Vec<String>,
    /// Counts below this are written `<N>`.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub privacy_minimum: u64,
    /// Other counts are rounded to the nearest multiple of this.
    #[arg(long, default_value_t = 20, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub round_to: u64,
    /// Rewrite a by_region.tsv only when more than N resolved regions changed (0: always).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub region_threshold: usize,
    /// Only these datasets (repeatable).
    #[arg(long, value_name = "DATASET")]
    pub pick: Vec<String>,
    /// Not these datasets (repeatable).
    #[arg(long, value_name = "DATASET")]
    pub skip: Vec<String>,
    /// Recompute even when nothing was extracted or labelled since the last run.
    #[arg(long)]
    pub full: bool,
}

impl SummaryArgs {
    fn options(&self, cache: &Path) -> SummaryOptions {
        let options = SummaryOptions {
            output_dir: pipeline::summaries_dir(cache, self.output.clone()),
            grouping: Grouping {
                dataset_depth: self.dataset_depth as usize,
                collapse_prefixes: self.collapse_prefix.clone(),
                pick: self.pick.clone(),
                skip: self.skip.clone(),
            },
            privacy: Privacy {
                minimum: self.privacy_minimum,
                round_to: self.round_to,
            },
            region_threshold: self.region_threshold,
        };
        if options.privacy.is_exact() {
            eprintln!(
                "warning: --privacy-minimum {} --round-to {} writes exact counts: for internal use, do not publish",
                options.privacy.minimum, options.privacy.round_to
            );
        }
        options
    }
}

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directories holding S3 access-log files (searched recursively).
    #[arg(required = true, value_name = "LOG_DIR")]
    pub log_dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub extract: ExtractTuning,
    #[command(flatten)]
    pub regions: RegionsTuning,
    #[command(flatten)]
    pub geocoder: GeocoderArgs,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub summaries: SummaryArgs,
    /// At the end, publish into this git working tree (see `publish`).
    #[arg(long, value_name = "REPO_DIR")]
    pub publish: Option<PathBuf>,
    /// With --publish, push the commit to the configured remote.
    #[arg(long, requires = "publish")]
    pub push: bool,
    /// When another s3tally holds the cache, wait for it instead of exiting 1.
    #[arg(long)]
    pub wait: bool,
}

/// Options of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Directories holding S3 access-log files (searched recursively).
    #[arg(required = true, value_name = "LOG_DIR")]
    pub log_dirs: Vec<PathBuf>,
    /// Run only this check (repeatable) [default: all].
    #[arg(long = "check", value_name = "NAME", value_parser = Check::from_name)]
    pub checks: Vec<Check>,
    /// Validate a random sample of N files not validated yet.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub exclusion: ExclusionArgs,
}

/// Options of `publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The git working tree to publish into.
    #[arg(value_name = "REPO_DIR")]
    pub repo: PathBuf,
    /// The summaries directory to publish [default: <cache>/summaries].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Copy the files but do not commit.
    #[arg(long)]
    pub no_commit: bool,
    /// Push the commit to the configured remote.
    #[arg(long, conflicts_with = "no_commit")]
    pub push: bool,
}

impl PublishArgs {
    fn options(&self, summaries_dir: PathBuf) -> PublishOptions {
        PublishOptions {
            repo: self.repo.clone(),
            summaries_dir,
            content_dir: "content".into(),
            commit: !self.no_commit,
            push: self.push,
        }
    }
}

/// `reset` subcommands.
#[derive(Debug, Subcommand)]
pub enum ResetCommand {
    /// Delete every extracted request and processed-file record (the logs must then be extracted
    /// again); requesters, their labels and coordinates stay.
    Extraction {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Options of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The dataset [default: the archive].
    pub dataset: Option<String>,
    /// The summaries directory [default: <cache>/summaries].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Options of `dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Only this object key (exactly as in the log).
    #[arg(long, value_name = "KEY")]
    pub object: Option<String>,
}

/// Options of `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The default cache directory.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `config cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remember DIR as the default cache directory.
    Set {
        /// The cache directory.
        dir: PathBuf,
    },
    /// Print the cache directory in use.
    Show,
}

/// `bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Write realistic synthetic logs (one file per hour, documentation IPs, some nasty lines).
    Generate {
        /// Where to write the logs.
        dir: PathBuf,
        /// Total size in MB.
        #[arg(long, default_value_t = 100)]
        size_mb: u64,
        /// Random seed: the same seed gives the same logs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Largest size of one hourly file in MB.
        #[arg(long, default_value_t = 8.0)]
        file_mb: f64,
        /// Distinct objects [default: 40 per MB, from 500 to 400,000].
        #[arg(long)]
        objects: Option<usize>,
    },
    /// Time the range matcher: lookups in a generated AWS ip-ranges.json of the real size.
    Ranges {
        /// Prefixes in the generated list (the real one has about 10,000).
        #[arg(long, default_value_t = 12_000)]
        prefixes: usize,
        /// Lookups to time.
        #[arg(long, default_value_t = 5_000_000)]
        lookups: usize,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// A mistake in how s3tally was called (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let config_dir = config::config_dir()?;
    let cache = || config::resolve_cache(cli.cache.clone(), &config_dir);
    match cli.command {
        Command::Run(args) => run_pipeline(&cache()?, &config_dir, *args),
        Command::Extract(args) => {
            let cache = cache()?;
            let options = args.tuning.options(args.log_dirs)?;
            let salt = Salt::load(&config_dir)?;
            let (_lock, stop, mut store) = open_for_writing(&cache, false)?;
            let report = extract::extract(&mut store, &cache, &salt, &options, &stop)?;
            print_lines(report.summary());
            if report.found == 0 {
                eprintln!(
                    "extract: no S3 access-log files (named YYYY-MM-DD-hh-mm-ss-UNIQUE) in {}",
                    options
                        .log_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(report.outcome())
        }
        Command::Update(UpdateCommand::Regions(args)) => {
            let cache = cache()?;
            let options = args.tuning.options(&args.network)?;
            let (_lock, stop, mut store) = open_existing_for_writing(&cache)?;
            let report = regions::update_regions(&mut store, &cache, &options, &stop)?;
            print_lines(report.summary());
            Ok(report.outcome())
        }
        Command::Update(UpdateCommand::Coordinates(args)) => {
            let cache = cache()?;
            let output = pipeline::summaries_dir(&cache, args.output.clone());
            let options = args.geocoder.options(output, &args.network);
            let (_lock, stop, mut store) = open_existing_for_writing(&cache)?;
            let report = coordinates::update_coordinates(&mut store, &options, &stop)?;
            print_lines(report.summary());
            Ok(report.outcome())
        }
        Command::Update(UpdateCommand::Summaries(args)) => {
            run_summaries(&cache()?, &args, Stage::Summaries)
        }
        Command::Update(UpdateCommand::Totals(args)) => {
            run_summaries(&cache()?, &args, Stage::Totals)
        }
        Command::Validate(args) => {
            let cache = cache()?;
            check_log_dirs(&args.log_dirs)?;
            let options = ValidateOptions {
                log_dirs: args.log_dirs,
                checks: args.checks,
                exclusion: args.exclusion.exclusion(),
                limit: args.limit,
            };
            let (_lock, stop, mut store) = open_for_writing(&cache, false)?;
            let report = validate::validate(&mut store, &options, &stop)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for violation in &report.violations {
                writeln!(out, "{violation}").or_else(ignore_broken_pipe)?;
            }
            writeln!(out, "{}", report.table()).or_else(ignore_broken_pipe)?;
            writeln!(
                out,
                "validate: {} files validated, {} already validated, {} violations",
                report.validated,
                report.skipped,
                report.violations.len()
            )
            .or_else(ignore_broken_pipe)?;
            for failed in &report.failed {
                eprintln!(
                    "error: cannot read {}: {}",
                    failed.path.display(),
                    failed.error
                );
            }
            Ok(report.outcome())
        }
        Command::Publish(args) => {
            let cache = cache()?;
            let store = Store::open_existing(&cache)?;
            let options = args.options(pipeline::summaries_dir(&cache, args.output.clone()));
            let report = publish::publish(&options, &pipeline::requester_ids(&store)?)?;
            print_lines(report.summary());
            Ok(Outcome::Done)
        }
        Command::Show(args) => {
            let dir = match args.output {
                Some(dir) => dir,
                None => pipeline::summaries_dir(&cache()?, None),
            };
            print!("{}", show::show(&dir, args.dataset.as_deref())?);
            Ok(Outcome::Done)
        }
        Command::Dump(args) => {
            let store = Store::open_existing(&cache()?)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match dump::dump(&store, args.object.as_deref().map(str::as_bytes), &mut out) {
                Err(error) if is_broken_pipe(&error) => return Ok(Outcome::Done),
                result => result?,
            };
            out.flush().or_else(ignore_broken_pipe)?;
            Ok(Outcome::Done)
        }
        Command::Status => {
            let dir = cache()?;
            let store = Store::open_existing(&dir)?;
            println!("cache: {}", dir.display());
            println!("{}", status::status(&store)?.table());
            Ok(Outcome::Done)
        }
        Command::Stop(args) => {
            let dir = cache()?;
            match lock::stop_writer(&dir, Duration::from_secs(args.timeout))? {
                StopOutcome::NotRunning => println!("no s3tally is writing to {}", dir.display()),
                StopOutcome::Stopped(pid) => {
                    println!("s3tally PID {pid} committed its batch and stopped")
                }
            }
            Ok(Outcome::Done)
        }
        Command::Reset(ResetCommand::Extraction { yes }) => reset_extraction(&cache()?, yes),
        Command::Config(ConfigCommand::Cache(CacheCommand::Set { dir })) => {
            let dir = std::path::absolute(&dir)?;
            let mut settings = Settings::load(&config_dir)?;
            settings.cache = Some(dir.clone());
            settings.save(&config_dir)?;
            println!("default cache directory: {}", dir.display());
            Ok(Outcome::Done)
        }
        Command::Config(ConfigCommand::Cache(CacheCommand::Show)) => {
            println!("{}", cache()?.display());
            Ok(Outcome::Done)
        }
        Command::Bench(BenchCommand::Generate {
            dir,
            size_mb,
            seed,
            file_mb,
            objects,
        }) => {
            let report = bench::generate(&bench::GenerateOptions {
                dir: dir.clone(),
                size_mb,
                seed,
                file_bytes: (file_mb * 1e6) as u64,
                objects,
            })
            .with_context(|| format!("cannot write logs into {}", dir.display()))?;
            eprintln!(
                "wrote {} log files, {} lines, {:.1} MB into {}",
                report.files,
                report.lines,
                report.bytes as f64 / 1e6,
                dir.display()
            );
            Ok(Outcome::Done)
        }
        Command::Bench(BenchCommand::Ranges {
            prefixes,
            lookups,
            seed,
        }) => {
            let report = bench::ranges_benchmark(prefixes, lookups, seed);
            println!(
                "{} lookups in {} prefixes: {:.3} s, {:.2} million lookups per second ({} matched)",
                report.lookups,
                report.prefixes,
                report.seconds,
                report.lookups as f64 / report.seconds / 1e6,
                report.matched
            );
            Ok(Outcome::Done)
        }
    }
}

fn print_lines(lines: Vec<String>) {
    for line in lines {
        eprintln!("{line}");
    }
}

fn run_pipeline(cache: &Path, config_dir: &Path, args: RunArgs) -> anyhow::Result<Outcome> {
    let summaries = args.summaries.options(cache);
    let options = RunOptions {
        extract: args.extract.options(args.log_dirs.clone())?,
        regions: args.regions.options(&args.network)?,
        coordinates: args
            .geocoder
            .options(summaries.output_dir.clone(), &args.network),
        publish: args.publish.as_ref().map(|repo| PublishOptions {
            repo: repo.clone(),
            summaries_dir: summaries.output_dir.clone(),
            content_dir: "content".into(),
            commit: true,
            push: args.push,
        }),
        summaries,
        full: args.summaries.full,
    };
    let salt = Salt::load(config_dir)?;
    let (_lock, stop, mut store) = open_for_writing(cache, args.wait)?;
    let report = pipeline::run(&mut store, cache, &salt, &options, &stop)?;
    println!("{}", report.table());
    Ok(report.outcome())
}

fn run_summaries(cache: &Path, args: &SummaryArgs, stage: Stage) -> anyhow::Result<Outcome> {
    let options = args.options(cache);
    let (_lock, _stop, mut store) = open_existing_for_writing(cache)?;
    let report = summaries::update(&mut store, &options, stage, args.full)?;
    print_lines(report.summary(stage.name()));
    Ok(Outcome::Done)
}

fn reset_extraction(cache: &Path, yes: bool) -> anyhow::Result<Outcome> {
    let (_lock, _stop, store) = open_existing_for_writing(cache)?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(UsageError(
                "reset extraction asks for confirmation: run it from a terminal, or add --yes"
                    .into(),
            )
            .into());
        }
        let counts = store.counts()?;
        eprint!(
            "This deletes the {} requests extracted from {} log files in {}; the logs must then be extracted again. Type yes to go on: ",
            counts.requests,
            counts.files,
            cache.display()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("reset: nothing deleted");
            return Ok(Outcome::Done);
        }
    }
    store.reset_extraction()?;
    eprintln!(
        "reset: every extracted request and file record deleted from {}",
        cache.display()
    );
    Ok(Outcome::Done)
}

/// Creates the cache directory, takes the writer lock (waiting for it when asked), installs the
/// signal handlers and opens the store.
fn open_for_writing(cache: &Path, wait: bool) -> anyhow::Result<(WriterLock, StopFlag, Store)> {
    std::fs::create_dir_all(cache).with_context(|| {
        format!(
            "cannot create cache directory {} (choose another with --cache or S3TALLY_CACHE)",
            cache.display()
        )
    })?;
    let lock = if wait {
        WriterLock::acquire_waiting(cache, |pid| {
            eprintln!(
                "waiting for s3tally PID {pid}, which holds {}",
                cache.display()
            )
        })?
    } else {
        WriterLock::acquire(cache)?
    };
    let stop = StopFlag::from_signals().context("cannot install signal handlers")?;
    let store = Store::open(cache)?;
    Ok((lock, stop, store))
}

/// Like `open_for_writing`, for stages that work on what was extracted: no store is an error.
fn open_existing_for_writing(cache: &Path) -> anyhow::Result<(WriterLock, StopFlag, Store)> {
    if !cache.join(crate::store::DB_FILE).exists() {
        return Err(crate::store::StoreError::Missing(cache.to_path_buf()).into());
    }
    open_for_writing(cache, false)
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn ignore_broken_pipe(error: std::io::Error) -> std::io::Result<()> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error)
    }
}
