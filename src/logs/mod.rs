//! Raw S3 access logs: finding the files (in directories and buckets), reading one line, choosing whose requests to leave out,
//! and showing a line that could not be read without the addresses in it.

pub(crate) mod excerpt;
pub(crate) mod exclusion;
pub(crate) mod files;
pub(crate) mod gzip;
pub(crate) mod parser;
pub(crate) mod reader;
pub(crate) mod sources;

pub(crate) use excerpt::excerpt;
pub(crate) use exclusion::{Exclusion, parse_ip_or_network};
pub(crate) use files::{FailedFile, LogFile, LogIdentity, LogPlace, discover_all};
pub(crate) use sources::{Found, LogSource, SourceOptions};
