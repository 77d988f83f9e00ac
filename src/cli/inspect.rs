//! Commands that look without changing anything: `show`, `dump`, `status`, and `stop`, which
//! asks the writer to finish.

use std::time::Duration;

use clap::Args;

use super::{Place, print_out};
use crate::cache::{StopOutcome, stop_writer};
use crate::inspect::{dump, show, status};
use crate::stage::Outcome;
use crate::store::Store;

/// Options of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The dataset [default: the archive].
    pub dataset: Option<String>,
    /// The summaries directory [default: <cache>/summaries].
    #[arg(long, value_name = "DIR")]
    pub output: Option<std::path::PathBuf>,
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

/// `s3tally show`.
pub(super) fn show(place: &Place, args: ShowArgs) -> anyhow::Result<Outcome> {
    let dir = match args.output {
        Some(dir) => dir,
        None => place.cache()?.summaries_dir(None),
    };
    let text = show::show(&dir, args.dataset.as_deref())?;
    print_out(|out| write!(out, "{text}"))?;
    Ok(Outcome::Done)
}

/// `s3tally dump`.
pub(super) fn dump(place: &Place, args: &DumpArgs) -> anyhow::Result<Outcome> {
    let store = Store::open_existing(&place.cache()?)?;
    let mut result = Ok(0);
    print_out(|out| {
        result = dump::dump(&store, args.object.as_deref().map(str::as_bytes), out);
        Ok(())
    })?;
    result?;
    Ok(Outcome::Done)
}

/// `s3tally status`.
pub(super) fn status(place: &Place) -> anyhow::Result<Outcome> {
    let cache = place.cache()?;
    let store = Store::open_existing(&cache)?;
    let table = status::status(&store)?.table();
    print_out(|out| {
        writeln!(out, "cache: {}", cache.dir().display())?;
        writeln!(out, "{table}")
    })?;
    Ok(Outcome::Done)
}

/// `s3tally stop`.
pub(super) fn stop(place: &Place, args: &StopArgs) -> anyhow::Result<Outcome> {
    let cache = place.cache()?;
    let message = match stop_writer(&cache, Duration::from_secs(args.timeout))? {
        StopOutcome::NotRunning => format!("no s3tally is writing to {}", cache.dir().display()),
        StopOutcome::Stopped(pid) => format!("s3tally PID {pid} committed its batch and stopped"),
    };
    print_out(|out| writeln!(out, "{message}"))?;
    Ok(Outcome::Done)
}
