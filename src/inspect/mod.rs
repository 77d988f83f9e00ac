//! Looking at what s3tally holds and wrote, without changing it: `dump` (every extracted
//! request), `show` (the written summaries as tables), `status` (what the cache holds).

pub(crate) mod dump;
pub(crate) mod show;
pub(crate) mod status;
