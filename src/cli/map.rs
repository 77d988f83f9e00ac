//! `map`: dataset maps, built from an archive's API (`map dandi`) or checked (`map check`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::options::NetworkArgs;
use super::print_out;
use crate::datasets::dandi::{self, DandiOptions};
use crate::datasets::map::DatasetMap;
use crate::interrupt::StopFlag;
use crate::stage::Outcome;

/// `map` subcommands.
#[derive(Debug, Subcommand)]
pub enum MapCommand {
    /// Write (or bring up to date) the dataset map of a DANDI-style archive from its public REST
    /// API: one row per asset of every Dandiset version, `blobs/<3>/<3>/<blob>` or
    /// `zarr/<zarr>/` to the Dandiset id and the asset's path (the draft's, else the newest
    /// published version's).
    ///
    /// Incremental: what each version held is kept in OUT.state.json, and a rerun asks only for
    /// the Dandisets whose listing changed, and of those only drafts that changed and versions
    /// not seen before. Withdrawn (404) and embargoed (401/403) Dandisets are left out with a
    /// warning. A stop (SIGINT, SIGTERM) keeps what was fetched (exit 3).
    Dandi(DandiArgs),
    /// Read a dataset map as summaries would, and say what it holds (or the first line that is
    /// wrong).
    Check {
        /// The map file.
        file: PathBuf,
    },
}

/// Options of `map dandi`.
#[derive(Debug, Args)]
pub struct DandiArgs {
    /// The archive API's base URL.
    #[arg(long, value_name = "URL", default_value = dandi::DEFAULT_API_URL)]
    pub api_url: String,
    /// Items asked per page.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
    #[command(flatten)]
    pub network: NetworkArgs,
    /// The map file to write.
    pub out: PathBuf,
}

/// Runs a `map` command.
pub(super) fn map(command: MapCommand) -> anyhow::Result<Outcome> {
    match command {
        MapCommand::Dandi(args) => {
            let options = DandiOptions {
                api_url: args.api_url,
                out: args.out,
                page_size: args.page_size,
                timeout: args.network.timeout(),
                policy: args.network.policy(),
            };
            let stop = StopFlag::from_signals().context("cannot install signal handlers")?;
            let report = dandi::build(&options, &stop)?;
            for line in report.summary(&options.out) {
                eprintln!("{line}");
            }
            Ok(report.outcome())
        }
        MapCommand::Check { file } => {
            let started = std::time::Instant::now();
            let map = DatasetMap::load(&file)?;
            let seconds = started.elapsed().as_secs_f64();
            print_out(|out| {
                writeln!(
                    out,
                    "{}: {}; read in {seconds:.2} s",
                    file.display(),
                    map.describe()
                )
            })?;
            Ok(Outcome::Done)
        }
    }
}
