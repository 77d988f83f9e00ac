//! Housekeeping commands: `reset`, `config`, `bench`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::{Place, Writing, print_out};
use crate::bench;
use crate::config::Settings;
use crate::exit::UsageError;
use crate::stage::Outcome;

/// `reset` subcommands.
#[derive(Debug, Subcommand)]
pub enum ResetCommand {
    /// Delete every extracted request and processed-file record (the logs must then be extracted
    /// again, for example to classify the clients of requests extracted before client classes);
    /// requesters, their labels, coordinates and the region rows last published stay.
    Extraction {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The default cache directory.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// The IP database `update regions` places requesters with (`update geoip` sets it too).
    #[command(subcommand)]
    Geoip(GeoipCommand),
}

/// `config geoip` subcommands.
#[derive(Debug, Subcommand)]
pub enum GeoipCommand {
    /// Remember FILE (an MMDB database) for `update regions` and `run`.
    Set {
        /// The database file.
        file: PathBuf,
    },
    /// Forget the remembered database: places come from ipinfo again (with a key).
    Unset,
    /// Print the remembered database.
    Show,
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
    /// Time label lookups in an IP database (MMDB) on one thread: random public addresses.
    Geoip {
        /// The database.
        db: PathBuf,
        /// Lookups to time.
        #[arg(long, default_value_t = 2_000_000)]
        lookups: usize,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// `s3tally reset ...`.
pub(super) fn reset(place: &Place, command: &ResetCommand) -> anyhow::Result<Outcome> {
    let &ResetCommand::Extraction { yes } = command;
    let writing = Writing::open_existing(place.cache()?)?;
    let dir = writing.cache.dir().display();
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(UsageError(
                "reset extraction asks for confirmation: run it from a terminal, or add --yes"
                    .into(),
            )
            .into());
        }
        let counts = writing.store.counts()?;
        eprint!(
            "This deletes the {} requests extracted from {} log files in {dir}; the logs must then be extracted again. Type yes to go on: ",
            counts.requests, counts.files,
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("reset: nothing deleted");
            return Ok(Outcome::Done);
        }
    }
    writing.store.reset_extraction()?;
    eprintln!("reset: every extracted request and file record deleted from {dir}");
    Ok(Outcome::Done)
}

/// `s3tally config ...`.
pub(super) fn config(place: &Place, command: ConfigCommand) -> anyhow::Result<Outcome> {
    let message = match command {
        ConfigCommand::Cache(CacheCommand::Set { dir }) => {
            let dir = std::path::absolute(&dir)?;
            let mut settings = Settings::load(&place.config_dir)?;
            settings.cache = Some(dir.clone());
            settings.save(&place.config_dir)?;
            format!("default cache directory: {}", dir.display())
        }
        ConfigCommand::Cache(CacheCommand::Show) => place.cache()?.dir().display().to_string(),
        ConfigCommand::Geoip(command) => {
            let mut settings = Settings::load(&place.config_dir)?;
            let message = match command {
                GeoipCommand::Set { file } => {
                    let file = std::path::absolute(&file)?;
                    // refuse now what `update regions` would refuse later
                    crate::regions::geoip::GeoIp::open(&file)?;
                    settings.geoip_db = Some(file.clone());
                    format!("IP database: {}", file.display())
                }
                GeoipCommand::Unset => {
                    settings.geoip_db = None;
                    "no IP database: places come from ipinfo (with IPINFO_API_KEY)".to_owned()
                }
                GeoipCommand::Show => {
                    return print_out(|out| {
                        writeln!(
                            out,
                            "{}",
                            settings
                                .geoip_db
                                .as_ref()
                                .map_or_else(|| "none".to_owned(), |db| db.display().to_string())
                        )
                    })
                    .map(|()| Outcome::Done);
                }
            };
            settings.save(&place.config_dir)?;
            message
        }
    };
    print_out(|out| writeln!(out, "{message}"))?;
    Ok(Outcome::Done)
}

/// `s3tally bench ...`.
pub(super) fn bench(command: BenchCommand) -> anyhow::Result<Outcome> {
    match command {
        BenchCommand::Generate {
            dir,
            size_mb,
            seed,
            file_mb,
            objects,
        } => {
            let report = bench::generate(&bench::GenerateOptions {
                dir: dir.clone(),
                size_mb,
                seed,
                file_bytes: megabytes(file_mb),
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
        }
        BenchCommand::Geoip { db, lookups, seed } => {
            let report = bench::geoip_benchmark(&db, lookups, seed)?;
            let line = format!(
                "{} lookups in {}: {:.3} s on one thread, {:.2} million lookups per second ({} placed)",
                report.lookups,
                db.display(),
                report.seconds,
                report.lookups as f64 / report.seconds / 1e6,
                report.placed
            );
            print_out(|out| writeln!(out, "{line}"))?;
        }
        BenchCommand::Ranges {
            prefixes,
            lookups,
            seed,
        } => {
            let report = bench::ranges_benchmark(prefixes, lookups, seed);
            let line = format!(
                "{} lookups in {} prefixes: {:.3} s, {:.2} million lookups per second ({} matched)",
                report.lookups,
                report.prefixes,
                report.seconds,
                report.lookups as f64 / report.seconds / 1e6,
                report.matched
            );
            print_out(|out| writeln!(out, "{line}"))?;
        }
    }
    Ok(Outcome::Done)
}

/// Bytes in `mb` megabytes (fractions allowed; negative is none).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a file size in MB given on the command line, far below u64::MAX bytes"
)]
fn megabytes(mb: f64) -> u64 {
    (mb * 1e6).max(0.0) as u64
}
