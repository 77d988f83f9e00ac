//! s3tally turns raw AWS S3 server access logs into anonymized, publishable usage statistics.
//!
//! The tree reads like the pipeline (see `docs/architecture.md`):
//!
//! - [`logs`]: raw log files, the line parser, exclusions;
//! - the stages, one folder each, all following the one contract of [`stage`]:
//!   [`extract`], [`regions`], [`coordinates`], [`summaries`] (and totals), [`publish`], and
//!   [`validate`] beside them, [`export`] (Parquet for query engines) after them; [`pipeline`] drives them in order for `s3tally run`;
//! - shared concepts: [`cache`] (the cache directory and its writer lock), [`store`] (the `SQLite`
//!   store), [`labels`] (region labels and the built-in places), [`bins`] (the compact request
//!   records), [`privacy`] (salt, requester ids, IP masking);
//! - [`inspect`]: `dump`, `show`, `status`; [`cli`]: the command line; [`exit`]: exit codes.

pub mod cli;
pub mod exit;

mod bench;
mod bins;
mod cache;
pub(crate) mod clients;
mod config;
mod coordinates;
pub(crate) mod counter;
mod datasets;
mod export;
mod extract;
mod http;
mod inspect;
mod interrupt;
mod labels;
mod logs;
mod output;
mod pipeline;
mod privacy;
mod progress;
mod publish;
mod regions;
mod s3;
mod stage;
mod store;
mod summaries;
mod validate;
