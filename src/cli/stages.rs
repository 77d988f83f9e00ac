//! The pipeline's commands: `run`, `extract`, `update ...`, `validate`, `publish`. Each converts
//! its arguments into the stage's options, opens the cache and runs the stage through the one
//! stage contract.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::options::{
    Environment, ExclusionArgs, ExtractTuning, GeocoderArgs, NetworkArgs, RegionsTuning,
    SummaryArgs, check_dirs, check_sources, warn_if_exact,
};
use super::{Place, Writing, print_out};
use crate::cache::Cache;
use crate::config::Settings;
use crate::coordinates::{Coordinates, Forget};
use crate::export::rows::Partition;
use crate::export::{DEFAULT_ROWS_IN_MEMORY, ExportOptions};
use crate::extract::Extract;
use crate::interrupt::StopFlag;
use crate::labels::RegionLabel;
use crate::logs::LogSource;
use crate::pipeline::{self, RunOptions};
use crate::privacy::Salt;
use crate::publish::{Publish, PublishOptions};
use crate::regions::Regions;
use crate::stage::{Context, Outcome, Report, Stage, print_summary};
use crate::store::Store;
use crate::summaries::{Summaries, Totals};
use crate::validate::{Check, Validate, ValidateOptions};

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directories holding S3 access-log files (searched recursively), or s3://BUCKET/PREFIX
    /// locations of a bucket's logs.
    #[arg(required = true, value_name = "SOURCE", value_parser = LogSource::parse)]
    pub sources: Vec<LogSource>,
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
    /// With --publish, publish even summaries written with weaker than default privacy settings.
    #[arg(long, requires = "publish")]
    pub allow_exact: bool,
    /// At the end, export every request as Parquet to DEST (a local directory or
    /// s3://BUCKET/PREFIX), with the datasets of the summaries: see `export parquet` (other export
    /// options there). Private data: never published.
    #[arg(long, value_name = "DEST", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub export_parquet: Option<String>,
    /// When another s3tally holds the cache, wait for it instead of exiting 1.
    #[arg(long)]
    pub wait: bool,
}

/// Options of `extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Directories holding S3 access-log files (searched recursively), or s3://BUCKET/PREFIX
    /// locations of a bucket's logs.
    #[arg(required = true, value_name = "SOURCE", value_parser = LogSource::parse)]
    pub sources: Vec<LogSource>,
    #[command(flatten)]
    pub tuning: ExtractTuning,
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
    /// Give every published region label a latitude and longitude and write
    /// region_codes_to_coordinates.yaml.
    ///
    /// Labels come from the by_region.tsv summaries (only regions they name: a region pooled in
    /// `other` is never placed nor published here), so run it after the summaries. The built-in table (cloud
    /// regions, labels geocoders get wrong) comes first, then earlier answers, then OpenCage
    /// (needs OPENCAGE_API_KEY), searched in the label's country; every answer is cached, so a
    /// label is geocoded once, ever. Labels without a place (bogon, unknown, missing, VPN, GitHub)
    /// get null coordinates and are never sent.
    Coordinates(CoordinatesArgs),
    /// Write the summaries: per dataset by_day.tsv, by_asset.tsv, by_region.tsv,
    /// by_asset_type_per_week.tsv and requester_count.tsv, and the same but by_asset.tsv for the
    /// archive; remove those of datasets that no longer exist.
    ///
    /// Figures come from the exact per-request data. Counts (requests, downloads, views,
    /// requesters) below --privacy-minimum are written `<50`, the others rounded to --round-to;
    /// bytes are exact. A region is named in by_region.tsv only when --region-min-requesters (5)
    /// distinct requesters stand behind it, and a named row changes only when that many new ones
    /// do; the rest is one `other` row. A file whose content did not change is not rewritten.
    Summaries(SummaryArgs),
    /// Write totals.json (by dataset) and archive_totals.json, private like the summaries.
    Totals(SummaryArgs),
    /// Download (or bring up to date) the IP database `update regions` places requesters with:
    /// from MaxMind (GeoLite2, free account: MAXMIND_ACCOUNT_ID and MAXMIND_LICENSE_KEY; the
    /// download is checked against MaxMind's SHA-256), or from --url (e.g. DB-IP Lite, free,
    /// monthly, CC BY 4.0: https://db-ip.com/db/lite.php). The file must open as a database, then
    /// replaces the old one atomically and is remembered for `update regions`. A copy younger than
    /// --max-age-days is kept without asking; a 429 (MaxMind's daily limit) stops cleanly (exit 3)
    /// with the old copy in place.
    Geoip(super::geoip::GeoipArgs),
}

/// Options of `update regions`.
#[derive(Debug, Args)]
pub struct RegionsArgs {
    #[command(flatten)]
    pub tuning: RegionsTuning,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Options of `update coordinates`.
#[derive(Debug, Args)]
pub struct CoordinatesArgs {
    /// The summaries directory, where the file is written [default: <cache>/summaries].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Forget the geocoder's earlier answer for this label, as published (repeatable), e.g. one it placed
    /// wrongly; it is asked again when OPENCAGE_API_KEY is set.
    #[arg(long, value_name = "LABEL", value_parser = RegionLabel::parse_published)]
    pub forget: Vec<RegionLabel>,
    /// Forget every earlier geocoder answer and ask again (costs one request per label).
    #[arg(long, conflicts_with = "forget")]
    pub refresh: bool,
    #[command(flatten)]
    pub geocoder: GeocoderArgs,
    #[command(flatten)]
    pub network: NetworkArgs,
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
    /// Publish even summaries written with weaker than default privacy settings (exact counts,
    /// small regions named): refused otherwise.
    #[arg(long)]
    pub allow_exact: bool,
}

/// The publish stage's options.
fn publish_options(
    repo: PathBuf,
    summaries_dir: PathBuf,
    commit: bool,
    push: bool,
    allow_exact: bool,
) -> PublishOptions {
    PublishOptions {
        repo,
        summaries_dir,
        content_dir: "content".into(),
        commit,
        push,
        allow_exact,
    }
}

/// Sets the number of parsing threads, when given.
fn configure_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(threads) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("cannot start worker threads")?;
    }
    Ok(())
}

/// `s3tally run`.
pub(super) fn run(place: &Place, args: RunArgs) -> anyhow::Result<Outcome> {
    let cache = place.cache()?;
    let environment = Environment::from_env();
    let summaries = args.summaries.load(&cache, &place.config_dir)?;
    warn_if_exact(&summaries);
    check_sources(&args.sources)?;
    let extract = args
        .extract
        .options(&args.sources, Salt::load(&place.config_dir)?)?;
    let options = RunOptions {
        extract,
        regions: args.regions.options(
            &args.network,
            &environment,
            Settings::load(&place.config_dir)?.geoip_db,
        )?,
        coordinates: args.geocoder.options(
            summaries.output_dir.clone(),
            &args.network,
            &environment,
        ),
        export: args.export_parquet.map(|destination| ExportOptions {
            destination,
            s3: args.extract.s3.connection.settings(1),
            grouping: summaries.grouping.clone(),
            label_style: summaries.label_style,
            partition: Partition::Day,
            with_requester: true,
            full: false,
            rows_in_memory: DEFAULT_ROWS_IN_MEMORY,
        }),
        publish: args.publish.map(|repo| {
            publish_options(
                repo,
                summaries.output_dir.clone(),
                true,
                args.push,
                args.allow_exact,
            )
        }),
        summaries,
    };
    configure_threads(args.extract.threads)?;
    let writing = Writing::open(cache, args.wait)?;
    let report = pipeline::run(&writing.context(), &options)?;
    print_out(|out| writeln!(out, "{}", report.table()))?;
    Ok(report.outcome())
}

/// `s3tally extract`.
pub(super) fn extract(place: &Place, args: &ExtractArgs) -> anyhow::Result<Outcome> {
    let cache = place.cache()?;
    check_sources(&args.sources)?;
    let options = args
        .tuning
        .options(&args.sources, Salt::load(&place.config_dir)?)?;
    configure_threads(args.tuning.threads)?;
    Writing::open(cache, false)?.run_stage::<Extract>(&options)
}

/// `s3tally update ...`.
pub(super) fn update(place: &Place, command: UpdateCommand) -> anyhow::Result<Outcome> {
    let cache = place.cache()?;
    let environment = Environment::from_env();
    match command {
        UpdateCommand::Geoip(args) => super::geoip::update_geoip(place, &cache, args),
        UpdateCommand::Regions(args) => {
            let remembered = Settings::load(&place.config_dir)?.geoip_db;
            let options = args
                .tuning
                .options(&args.network, &environment, remembered)?;
            Writing::open_existing(cache)?.run_stage::<Regions>(&options)
        }
        UpdateCommand::Coordinates(args) => {
            let output = cache.summaries_dir(args.output.as_deref());
            let mut options = args.geocoder.options(output, &args.network, &environment);
            options.forget = if args.refresh {
                Forget::Everything
            } else if args.forget.is_empty() {
                Forget::Nothing
            } else {
                Forget::Labels(args.forget)
            };
            Writing::open_existing(cache)?.run_stage::<Coordinates>(&options)
        }
        UpdateCommand::Summaries(args) => {
            let options = args.load(&cache, &place.config_dir)?;
            warn_if_exact(&options);
            Writing::open_existing(cache)?.run_stage::<Summaries>(&options)
        }
        UpdateCommand::Totals(args) => {
            let options = args.load(&cache, &place.config_dir)?;
            warn_if_exact(&options);
            Writing::open_existing(cache)?.run_stage::<Totals>(&options)
        }
    }
}

/// `s3tally validate`: violations and the table on standard output.
pub(super) fn validate(place: &Place, args: ValidateArgs) -> anyhow::Result<Outcome> {
    let cache = place.cache()?;
    check_dirs("log directory", &args.log_dirs)?;
    let options = ValidateOptions {
        log_dirs: args.log_dirs,
        checks: args.checks,
        exclusion: args.exclusion.exclusion(),
        limit: args.limit,
    };
    let writing = Writing::open(cache, false)?;
    let report = Validate::run(&writing.context(), &options)?;
    print_out(|out| report.write_to(out))?;
    print_summary(&report);
    Ok(report.outcome())
}

/// `s3tally publish`: reads the store (for the requester ids to refuse) without the writer lock.
pub(super) fn publish(place: &Place, args: &PublishArgs) -> anyhow::Result<Outcome> {
    let cache: Cache = place.cache()?;
    let store = Store::open_existing(&cache)?;
    let options = publish_options(
        args.repo.clone(),
        cache.summaries_dir(args.output.as_deref()),
        !args.no_commit,
        args.push,
        args.allow_exact,
    );
    let stop = StopFlag::default();
    let context = Context {
        store: &store,
        cache: &cache,
        stop: &stop,
    };
    let report = Publish::run(&context, &options)?;
    print_summary(&report);
    Ok(report.outcome())
}
