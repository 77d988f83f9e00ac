//! The command line: argument definitions (clap) and dispatch to the stages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::config::{self, Settings};
use crate::extract::{self, Exclusion, ExtractOptions};
use crate::interrupt::StopFlag;
use crate::lock::{self, StopOutcome, WriterLock};
use crate::privacy::Salt;
use crate::store::Store;
use crate::{Outcome, bench, dump, status};

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
        }) => {
            let report = bench::generate(&bench::GenerateOptions {
                dir: dir.clone(),
                size_mb,
                seed,
                file_bytes: (file_mb * 1e6) as u64,
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
    std::fs::create_dir_all(cache).with_context(|| {
        format!(
            "cannot create cache directory {} (choose another with --cache or S3TALLY_CACHE)",
            cache.display()
        )
    })?;
    let _lock = WriterLock::acquire(cache)?;
    let stop = StopFlag::from_signals().context("cannot install signal handlers")?;
    let mut store = Store::open(cache)?;
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
