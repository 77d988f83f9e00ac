//! `export`: the extracted requests handed to query engines (`export parquet`).

use clap::{Args, Subcommand};

use super::options::{GroupingArgs, S3ConnectionArgs};
use super::{Place, Writing};
use crate::export::rows::Partition;
use crate::export::{DEFAULT_ROWS_IN_MEMORY, Export, ExportOptions};
use crate::stage::Outcome;

/// `export` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write every extracted request as Hive-partitioned Parquet for DuckDB, Athena or Spark:
    /// DEST/year=YYYY/month=MM/day=DD/*.parquet.
    ///
    /// Columns: time (UTC, ms), dataset, asset, object_key, bytes_sent, status, download,
    /// requester (the store's pseudonymous requester number; --no-requester leaves it out),
    /// region (as the summaries write it), country (ISO 3166-1 alpha-2 of a place), in_archive
    /// (whether the archive-wide figures count the row: a key the dataset map shares between
    /// datasets is one row per dataset). Same dataset and exclusion options as the summaries,
    /// so the engines reproduce them (docs/scale.md).
    ///
    /// Incremental: a run writes what was extracted since the last one as new files (a day that
    /// got late logs gets one more file); files are never rewritten unless --full. Crash-safe:
    /// files appear whole (a temporary `.tmp` name, then a rename; one PUT on S3) and a killed
    /// or stopped run is completed by the next one, nothing missing or doubled. DEST is a local
    /// directory or s3://BUCKET/PREFIX (credentials as for extract).
    ///
    /// PRIVATE: one row per request with a pseudonymous requester. It is the archive's internal
    /// data: never publish it (`publish` refuses a repository holding Parquet files, and a DEST
    /// inside a git working tree is refused).
    Parquet(ParquetArgs),
}

/// Options of `export parquet`.
#[derive(Debug, Args)]
pub struct ParquetArgs {
    /// A local directory (created private when missing) or s3://BUCKET/PREFIX.
    #[arg(value_name = "DEST", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub destination: String,
    /// One folder per day (year=/month=/day=) or per month (year=/month=).
    #[arg(long, value_enum, default_value_t = Partition::Day, value_name = "BY")]
    pub partition: Partition,
    /// Leave out the requester column.
    #[arg(long)]
    pub no_requester: bool,
    /// Write everything again, replacing every file s3tally wrote in DEST.
    #[arg(long)]
    pub full: bool,
    /// Rows held in memory (about 30 bytes each); beyond, they wait in spill files in the cache.
    /// A partition of more rows than this is written as several files.
    #[arg(long, default_value_t = DEFAULT_ROWS_IN_MEMORY as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub rows_in_memory: u64,
    /// Which keys count where, and whose requests are left out (as for the summaries).
    #[command(flatten)]
    pub grouping: GroupingArgs,
    /// How to reach S3 when DEST is s3://.
    #[command(flatten)]
    pub s3: S3ConnectionArgs,
}

/// Runs an `export` command.
pub(super) fn export(place: &Place, command: ExportCommand) -> anyhow::Result<Outcome> {
    let ExportCommand::Parquet(args) = command;
    let cache = place.cache()?;
    let grouping = args.grouping.load(&place.config_dir)?;
    let writing = Writing::open_existing(cache)?;
    let options = ExportOptions {
        destination: args.destination,
        s3: args.s3.settings(1),
        grouping,
        label_style: args.grouping.label_style,
        partition: args.partition,
        with_requester: !args.no_requester,
        full: args.full,
        rows_in_memory: usize::try_from(args.rows_in_memory).unwrap_or(usize::MAX),
    };
    writing.run_stage::<Export>(&options)
}
