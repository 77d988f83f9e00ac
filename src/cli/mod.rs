//! The command line: argument definitions (clap), their conversion into each stage's options
//! ([`options`]), and dispatch, one file per command group: the pipeline's stages
//! ([`stages`]), looking at what is there ([`inspect`]), and housekeeping ([`admin`]).

#![allow(
    clippy::doc_markdown,
    reason = "doc comments of commands and arguments are the --help text, where backticks would show"
)]
mod admin;
mod export;
mod geoip;
mod inspect;
mod map;
mod options;
mod report;
mod stages;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::cache::{Cache, WriterLock};
use crate::config;
use crate::interrupt::StopFlag;
use crate::stage::{self, Context, Outcome, Report, Stage};
use crate::store::Store;

/// Turn raw AWS S3 server access logs into anonymized, publishable usage statistics.
///
/// `s3tally run SOURCE...` runs every stage (extract, regions, summaries, totals, coordinates);
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
    /// Run every stage in order: extract, regions, summaries, totals, coordinates [, publish].
    ///
    /// The CRON entry point. Each stage is incremental; a stage that cannot finish by itself
    /// (quota, missing key, a failure) is reported and the later stages still run on what is
    /// there. A stop request (`s3tally stop`, SIGINT, SIGTERM) ends the run after the current
    /// stage (exit 3), and --publish happens only when no stage failed. One timestamped line per
    /// stage, then a table. One run per cache at a time: a second one exits 1 naming the PID, or
    /// waits (--wait).
    Run(Box<stages::RunArgs>),
    /// Extract successful GET requests from log files into the store (incremental, resumable).
    ///
    /// Finds S3 access-log files (`YYYY-MM-DD-hh-mm-ss-UNIQUE`, flat or in YYYY/MM/DD folders,
    /// optionally .gz) under each SOURCE, skips those extracted before (a log is known by its
    /// name, wherever it is read from), and commits the rest in batches: a kill loses at most
    /// the batch in flight. Requesters are kept as salted indexes (salt from S3TALLY_SALT or the
    /// salt.key file in the config directory).
    ///
    /// A SOURCE `s3://BUCKET/PREFIX` is read straight from S3 (--s3-concurrency downloads at once).
    /// The first run lists every key under PREFIX; later runs list each log folder from its last
    /// complete day, and look for new date-partitioned folders (--full-listing lists everything
    /// again), or take the list from an S3 Inventory (--inventory). Credentials as the AWS tools
    /// find them: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared
    /// files, web identity, container or instance role; none with --no-sign-request.
    /// AWS_ENDPOINT_URL (or --endpoint-url) for S3-compatible stores. An object that cannot be
    /// read (403) is named, the others extracted, and the exit is 1.
    Extract(stages::ExtractArgs),
    /// Run a later stage of the pipeline on what was extracted.
    #[command(subcommand)]
    Update(stages::UpdateCommand),
    /// Check, on raw log files, the assumptions the fast parser makes; report each line where one
    /// does not hold as `file:line: check: what is wrong` (IPs masked), then a table.
    ///
    /// Checks: request-line (one place ends the request URI), status (the fast parser and a strict
    /// parse from the end of the line agree), remote-ip, timestamp (parses, within a day of the
    /// file name's time), downloads (a 200 sends the whole object), fields (18 to 27). Files
    /// validated before by the same version of a check are skipped. Exit 0 when no violation, 1
    /// otherwise.
    Validate(stages::ValidateArgs),
    /// Copy the summaries, totals and coordinates into a git working tree and commit the change.
    ///
    /// Layout: content/summaries/<dataset>/*.tsv, content/summaries/archive/*.tsv,
    /// content/totals.json, content/archive_totals.json, content/region_codes_to_coordinates.yaml.
    /// It changes only the files it wrote (listed in content/.s3tally-manifest): those of
    /// datasets that no longer exist are removed; anything else in the repository is left alone.
    /// Refuses (exit 1, naming file and line) when a file or path holds an IP address or a
    /// requester index, or when the summaries were written with weaker privacy settings than the
    /// defaults (unless --allow-exact). No change, no commit.
    Publish(stages::PublishArgs),
    /// Print the written summaries as tables: the archive's, or one dataset's.
    Show(inspect::ShowArgs),
    /// Print every extracted request as TSV: object_key, timestamp, bytes_sent, status, requester,
    /// client_class, client_family.
    Dump(inspect::DumpArgs),
    /// Hand the extracted requests to query engines (private data: never published).
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Reports for others: COUNTER-style dataset metrics (`report counter --period YYYY-MM`).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Show what the cache holds; with --source, how much of each source is extracted.
    Status(inspect::StatusArgs),
    /// Ask the s3tally writing to this cache to commit its current batch and exit; wait for it.
    Stop(inspect::StopArgs),
    /// Clear stored data.
    #[command(subcommand)]
    Reset(admin::ResetCommand),
    /// Remember settings.
    #[command(subcommand)]
    Config(admin::ConfigCommand),
    /// Benchmark helpers.
    #[command(subcommand)]
    Bench(admin::BenchCommand),
    /// Dataset maps (which dataset and asset each object key belongs to, for --dataset-map):
    /// build one from a DANDI-style archive's API, or check one.
    #[command(subcommand)]
    Map(map::MapCommand),
}

/// Where a command works: the config directory and the cache it chose.
pub(crate) struct Place {
    /// The config directory (salt key, remembered settings).
    pub config_dir: PathBuf,
    /// The `--cache` given, if any.
    pub given_cache: Option<PathBuf>,
}

impl Place {
    /// The cache to use: the one given, else the remembered one, else the user's cache directory.
    pub(crate) fn cache(&self) -> anyhow::Result<Cache> {
        Ok(Cache::at(config::resolve_cache(
            self.given_cache.clone(),
            &self.config_dir,
        )?))
    }
}

/// Runs a parsed command line; `main` turns the result into the exit code.
///
/// # Errors
///
/// Whatever stopped the command: bad usage ([`crate::exit::UsageError`]), a cache or store that
/// cannot be used, a stage that failed as a whole.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let place = Place {
        config_dir: config::config_dir()?,
        given_cache: cli.cache,
    };
    match cli.command {
        Command::Run(args) => stages::run(&place, *args),
        Command::Extract(args) => stages::extract(&place, &args),
        Command::Update(command) => stages::update(&place, command),
        Command::Validate(args) => stages::validate(&place, args),
        Command::Publish(args) => stages::publish(&place, &args),
        Command::Export(command) => export::export(&place, command),
        Command::Report(command) => report::report(&place, command),
        Command::Show(args) => inspect::show(&place, args),
        Command::Dump(args) => inspect::dump(&place, &args),
        Command::Status(args) => inspect::status(&place, &args),
        Command::Stop(args) => inspect::stop(&place, &args),
        Command::Reset(command) => admin::reset(&place, &command),
        Command::Config(command) => admin::config(&place, command),
        Command::Bench(command) => admin::bench(command),
        Command::Map(command) => map::map(command),
    }
}

/// A cache held for writing: the directory created, the lock taken, signals caught, the store
/// open.
pub(crate) struct Writing {
    /// The cache.
    pub cache: Cache,
    /// Raised by SIGINT, SIGTERM and `s3tally stop`.
    pub stop: StopFlag,
    /// The open store.
    pub store: Store,
    _lock: WriterLock,
}

impl Writing {
    /// Creates the cache directory, takes the writer lock (waiting for it when asked), installs
    /// the signal handlers and opens the store.
    pub(crate) fn open(cache: Cache, wait: bool) -> anyhow::Result<Self> {
        cache.create()?;
        let lock = if wait {
            WriterLock::acquire_waiting(&cache, |pid| {
                eprintln!(
                    "waiting for s3tally PID {pid}, which holds {}",
                    cache.dir().display()
                );
            })?
        } else {
            WriterLock::acquire(&cache)?
        };
        // a request left for an earlier writer (which ended first) is not for this one
        let request = cache.stop_request();
        if request.exists() {
            std::fs::remove_file(&request)
                .with_context(|| format!("cannot remove {}", request.display()))?;
        }
        let stop = StopFlag::from_signals().context("cannot install signal handlers")?;
        stop.watch_request(request);
        let store = Store::open(&cache)?;
        Ok(Self {
            cache,
            stop,
            store,
            _lock: lock,
        })
    }

    /// Like `open`, for stages that work on what was extracted: no store is an error.
    pub(crate) fn open_existing(cache: Cache) -> anyhow::Result<Self> {
        if !cache.has_store() {
            return Err(crate::store::StoreError::Missing(cache.dir().to_path_buf()).into());
        }
        Self::open(cache, false)
    }

    /// The context stages run in.
    pub(crate) fn context(&self) -> Context<'_> {
        Context {
            store: &self.store,
            cache: &self.cache,
            stop: &self.stop,
        }
    }

    /// Runs one stage and prints its summary; its outcome.
    pub(crate) fn run_stage<S: Stage>(&self, options: &S::Options) -> anyhow::Result<Outcome> {
        let report = S::run(&self.context(), options)?;
        stage::print_summary(&report);
        Ok(report.outcome())
    }
}

/// Writes to standard output; a closed pipe ends the command quietly (see [`crate::exit`]).
pub(crate) fn print_out(
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write(&mut out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command's arguments are consistent (unique names, valid defaults): clap checks
    /// them only when a command is used, so check them all here.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
