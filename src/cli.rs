//! The command line: argument definitions (clap) and dispatch to the stages.

use std::io::Write;
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
use crate::privacy::Salt;
use crate::ranges::Service;
use crate::regions::{self, RegionsOptions};
use crate::store::Store;
use crate::summaries::{self, Grouping, Privacy, SummaryOptions};
use crate::{Outcome, bench, dump, ipinfo, opencage, show, status};

/// Turn raw AWS S3 server access logs into anonymized, publishable usage statistics.
///
/// Exit codes: 0 done, 1 failed (the rest was done; run again), 2 bad usage, 3 stopped early
/// (run again to resume).
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
    /// Extract successful GET requests from log files into the store (incremental, resumable).
    ///
    /// Finds S3 access-log files (`YYYY-MM-DD-hh-mm-ss-UNIQUE`, flat or in YYYY/MM/DD folders,
    /// optionally .gz) under each LOG_DIR, skips those extracted before, and commits the rest in
    /// batches: a kill loses at most the batch in flight. Requesters are kept as salted indexes
    /// (salt from S3TALLY_SALT or the salt.key file in the config directory).
    Extract(ExtractArgs),
    /// Print every extracted request as TSV: object_key, timestamp, bytes_sent, status, requester.
    Dump(DumpArgs),
    /// Show what the cache holds.
    Status,
    /// Ask the s3tally writing to this cache to commit its current batch and exit; wait for it.
    Stop(StopArgs),
    /// Run a later stage of the pipeline on what was extracted.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Print the written summaries as tables: the archive's, or one dataset's.
    Show(ShowArgs),
    /// Remember settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Benchmark helpers.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Options of `extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Directories holding S3 access-log files (searched recursively).
    #[arg(required = true, value_name = "LOG_DIR")]
    pub log_dirs: Vec<PathBuf>,
    /// Leave out requests from this IP address or CIDR range (repeatable), e.g. the archive's own servers.
    #[arg(long, value_name = "IP|CIDR", value_parser = extract::parse_ip_or_network)]
    pub exclude_ip: Vec<IpNet>,
    /// Leave out requests whose remote IP (as written in the log) matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub exclude_ip_regex: Option<regex::Regex>,
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

/// Options of `update summaries` and `update totals`.
#[derive(Debug, Args, Clone)]
pub struct SummaryArgs {
    /// Where the files go [default: <cache>/summaries].
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

/// Options of `update coordinates`.
#[derive(Debug, Args)]
pub struct CoordinatesArgs {
    /// The summaries directory, where the file is written [default: <cache>/summaries].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Base URL of OpenCage.
    #[arg(long, env = opencage::URL_ENV, default_value = opencage::DEFAULT_URL, value_name = "URL")]
    pub opencage_url: String,
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

/// Options of `update regions`.
#[derive(Debug, Args)]
pub struct RegionsArgs {
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
    /// Also ask ipinfo again for today's 1/90 of the requesters whose IP is kept (so 90 daily runs
    /// cover them all); changed labels are logged in regions-refresh.log in the cache.
    #[arg(long, requires = "keep_ips")]
    pub refresh: bool,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    pub timeout: u64,
    /// Retries of a failed request (429, 5xx, network errors), with exponential backoff.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub retries: u32,
    /// ipinfo requests in flight.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=32))]
    pub concurrency: u64,
    /// Addresses per ipinfo request (at most 1000).
    #[arg(long, default_value_t = 1000, hide = true, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch_size: u64,
    /// First retry wait in milliseconds (doubled at each retry).
    #[arg(long, default_value_t = 1000, hide = true)]
    pub retry_base_ms: u64,
    /// Which of the 90 refresh shares to ask for [default: today's].
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(0..90))]
    pub refresh_partition: Option<u64>,
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
        Command::Extract(args) => run_extract(&cache()?, &config_dir, args),
        Command::Update(UpdateCommand::Regions(args)) => run_regions(&cache()?, args),
        Command::Update(UpdateCommand::Coordinates(args)) => run_coordinates(&cache()?, args),
        Command::Update(UpdateCommand::Summaries(args)) => run_summaries(&cache()?, args, false),
        Command::Update(UpdateCommand::Totals(args)) => run_summaries(&cache()?, args, true),
        Command::Show(args) => {
            let dir = args
                .output
                .unwrap_or_else(|| cache().map(|c| c.join("summaries")).unwrap_or_default());
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
    }
}

fn run_extract(cache: &Path, config_dir: &Path, args: ExtractArgs) -> anyhow::Result<Outcome> {
    for dir in &args.log_dirs {
        if !dir.is_dir() {
            return Err(UsageError(format!(
                "log directory {} does not exist or is not a directory",
                dir.display()
            ))
            .into());
        }
    }
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot start worker threads")?;
    }
    let salt = Salt::load(config_dir)?;
    let (_lock, stop, mut store) = open_for_writing(cache)?;
    let options = ExtractOptions {
        log_dirs: args.log_dirs,
        exclusion: Exclusion {
            networks: args.exclude_ip,
            pattern: args.exclude_ip_regex,
        },
        batch_bytes: args.batch_mb * 1_000_000,
        batch_files: args.batch_files as usize,
    };
    let report = extract::extract(&mut store, cache, &salt, &options, &stop)?;
    for line in report.summary() {
        eprintln!("{line}");
    }
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

/// Takes the writer lock, installs the signal handlers and opens the store of a cache.
fn open_for_writing(cache: &Path) -> anyhow::Result<(WriterLock, StopFlag, Store)> {
    std::fs::create_dir_all(cache).with_context(|| {
        format!(
            "cannot create cache directory {} (choose another with --cache or S3TALLY_CACHE)",
            cache.display()
        )
    })?;
    let lock = WriterLock::acquire(cache)?;
    let stop = StopFlag::from_signals().context("cannot install signal handlers")?;
    let store = Store::open(cache)?;
    Ok((lock, stop, store))
}

/// Like `open_for_writing`, for stages that work on what was extracted: no store is an error.
fn open_existing_for_writing(cache: &Path) -> anyhow::Result<(WriterLock, StopFlag, Store)> {
    if !cache.join(crate::store::DB_FILE).exists() {
        return Err(crate::store::StoreError::Missing(cache.to_path_buf()).into());
    }
    open_for_writing(cache)
}

fn run_summaries(cache: &Path, args: SummaryArgs, totals: bool) -> anyhow::Result<Outcome> {
    let (_lock, _stop, store) = open_existing_for_writing(cache)?;
    let options = SummaryOptions {
        output_dir: args.output.unwrap_or_else(|| cache.join("summaries")),
        grouping: Grouping {
            dataset_depth: args.dataset_depth as usize,
            collapse_prefixes: args.collapse_prefix,
            pick: args.pick,
            skip: args.skip,
        },
        privacy: Privacy {
            minimum: args.privacy_minimum,
            round_to: args.round_to,
        },
        region_threshold: args.region_threshold,
    };
    let stage = if totals { "totals" } else { "summaries" };
    if options.privacy.is_exact() {
        eprintln!(
            "warning: {stage}: --privacy-minimum {} --round-to {} writes exact counts: for internal use, do not publish",
            options.privacy.minimum, options.privacy.round_to
        );
    }
    // nothing extracted or labelled since the last run with the same options: nothing to do
    let state = format!("{}|{options:?}", store.data_version()?);
    if !args.full
        && options.output_dir.is_dir()
        && store.stage_state(stage)?.as_deref() == Some(state.as_str())
    {
        eprintln!("{stage}: nothing new since the last run (--full recomputes anyway)");
        return Ok(Outcome::Done);
    }
    let tallies = summaries::tally(&store, &options.grouping)?;
    let report = if totals {
        summaries::write_totals(&tallies, &options)?
    } else {
        summaries::write_summaries(&tallies, &options)?
    };
    store.set_stage_state(stage, &state)?;
    for line in report.summary(stage) {
        eprintln!("{line}");
    }
    Ok(Outcome::Done)
}

fn run_coordinates(cache: &Path, args: CoordinatesArgs) -> anyhow::Result<Outcome> {
    let (_lock, stop, mut store) = open_existing_for_writing(cache)?;
    let options = CoordinatesOptions {
        output_dir: args.output.unwrap_or_else(|| cache.join("summaries")),
        opencage_url: args.opencage_url,
        opencage_key: std::env::var(opencage::KEY_ENV).ok(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        policy: RetryPolicy {
            retries: args.retries,
            base: Duration::from_millis(args.retry_base_ms),
            ..RetryPolicy::default()
        },
    };
    let report = coordinates::update_coordinates(&mut store, &options, &stop)?;
    for line in report.summary() {
        eprintln!("{line}");
    }
    Ok(report.outcome())
}

fn run_regions(cache: &Path, args: RegionsArgs) -> anyhow::Result<Outcome> {
    if let Some(dir) = &args.ranges_dir
        && !dir.is_dir()
    {
        return Err(UsageError(format!(
            "ranges directory {} does not exist or is not a directory",
            dir.display()
        ))
        .into());
    }
    let (_lock, stop, mut store) = open_existing_for_writing(cache)?;
    let options = RegionsOptions {
        ranges_dir: args.ranges_dir,
        range_urls: Service::ALL.map(|service| {
            std::env::var(service.url_env()).unwrap_or_else(|_| service.default_url().to_owned())
        }),
        ipinfo_url: args.ipinfo_url,
        ipinfo_key: std::env::var(ipinfo::KEY_ENV).ok(),
        batch_size: args.batch_size as usize,
        concurrency: args.concurrency as usize,
        timeout: Duration::from_secs(args.timeout.max(1)),
        policy: RetryPolicy {
            retries: args.retries,
            base: Duration::from_millis(args.retry_base_ms),
            ..RetryPolicy::default()
        },
        keep_ips: args.keep_ips,
        refresh_partition: args.refresh.then(|| {
            args.refresh_partition
                .unwrap_or_else(regions::todays_partition)
        }),
    };
    let report = regions::update_regions(&mut store, cache, &options, &stop)?;
    for line in report.summary() {
        eprintln!("{line}");
    }
    Ok(report.outcome())
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
