//! The end-to-end tests: every test runs the s3tally binary on fixtures, with its own cache and
//! config directories and local mock services. One test binary, one module per command or
//! concern; shared helpers in [`common`].

mod common;

mod clients;
mod coordinates;
mod dandi;
mod dandi_map;
mod errors;
mod export;
mod export_runs;
mod extract;
mod geoip;
mod hostile;
mod identity;
mod interrupt;
mod privacy;
mod publish;
mod ranges;
mod regions;
mod run;
mod s3;
mod s3_faults;
mod summaries;
mod validate;
mod validation;
