//! `report`: reports for others than the public summaries (`report counter`).

use clap::{Args, Subcommand};

use super::Place;
use super::options::{SummaryArgs, warn_if_exact};
use crate::counter::{self, CounterOptions, Period};
use crate::stage::Outcome;
use crate::store::Store;

/// `report` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// COUNTER-style dataset metrics for one month (Code of Practice Release 5.1, research data):
    /// per dataset and for the archive, Total_Item_Requests and Unique_Item_Requests, split
    /// Regular (browsers, no user agent) and TDM (machine access: scripts and tools), and by
    /// country.
    ///
    /// Robots are left out; double clicks (the same requester, client and object within 30 s)
    /// count once; a unique item request is a session (requester, client, clock hour) that
    /// requested the dataset. Written as `<output>/<dataset>/counter_YYYY-MM.json` (shaped like
    /// the Code's item report) and `.tsv`, and the same under `archive/`; counts hidden and
    /// rounded as in the summaries, countries behind fewer than K requesters pooled in `other`.
    /// Requests extracted before clients were recorded count as Regular (re-extract to classify
    /// them: docs/clients.md).
    Counter(CounterArgs),
}

/// Options of `report counter`.
#[derive(Debug, Args)]
pub struct CounterArgs {
    /// The month, YYYY-MM.
    #[arg(long, value_name = "YYYY-MM", value_parser = Period::parse)]
    pub period: Period,
    /// Where the reports go, which datasets count, how counts are written (as for the
    /// summaries; K is --region-min-requesters).
    #[command(flatten)]
    pub summaries: SummaryArgs,
}

/// Runs a `report` command.
pub(super) fn report(place: &Place, command: ReportCommand) -> anyhow::Result<Outcome> {
    let ReportCommand::Counter(args) = command;
    let cache = place.cache()?;
    let summaries = args.summaries.load(&cache, &place.config_dir)?;
    warn_if_exact(&summaries);
    let store = Store::open_existing(&cache)?;
    let options = CounterOptions {
        period: args.period,
        grouping: summaries.grouping,
        privacy: summaries.privacy,
        output_dir: summaries.output_dir,
    };
    let metrics = counter::compute(&store, &options.grouping, options.period)?;
    let written = counter::write_reports(&metrics, &options)?;
    eprintln!(
        "COUNTER report {}: {} datasets and the archive; {} files written, {} unchanged, in {}",
        options.period.name(),
        written.datasets,
        written.changed.len(),
        written.unchanged,
        options.output_dir.display()
    );
    Ok(Outcome::Done)
}
