//! Commands that look without changing anything: `show`, `dump`, `status`, and `stop`, which
//! asks the writer to finish.

use std::time::Duration;

use clap::Args;

use super::options::S3Args;
use super::{Place, print_out};
use crate::cache::{StopOutcome, stop_writer};
use crate::inspect::{dump, show, status};
use crate::logs::LogSource;
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

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also list this source (a directory or s3://BUCKET/PREFIX; repeatable) and say how many of
    /// its log objects and bytes are extracted, the share done and the oldest day not done
    /// (lists every key, or reads --inventory).
    #[arg(long = "source", value_name = "SOURCE", value_parser = LogSource::parse)]
    pub sources: Vec<LogSource>,
    #[command(flatten)]
    pub s3: S3Args,
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
pub(super) fn status(place: &Place, args: &StatusArgs) -> anyhow::Result<Outcome> {
    let cache = place.cache()?;
    super::options::check_sources(&args.sources)?;
    let store = match Store::open_existing(&cache) {
        Ok(store) => Some(store),
        // what a source holds is worth saying before anything was extracted
        Err(_) if !args.sources.is_empty() => None,
        Err(error) => return Err(error.into()),
    };
    let table = match &store {
        Some(store) => Some(status::status(store)?.table()),
        None => None,
    };
    let sources = if args.sources.is_empty() {
        None
    } else {
        let processed = match &store {
            Some(store) => store.processed_files()?,
            None => std::collections::HashMap::new(),
        };
        Some(status::sources_table(
            &args.sources,
            &args.s3.options(),
            &processed,
        )?)
    };
    print_out(|out| {
        writeln!(out, "cache: {}", cache.dir().display())?;
        if let Some(table) = &table {
            writeln!(out, "{table}")?;
        }
        if let Some(sources) = &sources {
            writeln!(out, "{sources}")?;
        }
        Ok(())
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
