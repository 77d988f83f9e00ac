//! s3tally turns raw AWS S3 server access logs into anonymized, publishable usage statistics.
//!
//! The pipeline is a series of stages, each a module with the same shape (options in, a report
//! out): [`extract`] reads log files into per-object [`bins`] in the [`store`]. See
//! `docs/` and the project's DESIGN for the later stages.

pub mod bench;
pub mod bins;
pub mod cli;
pub mod config;
pub mod coordinates;
pub mod dump;
pub mod extract;
pub mod http;
pub mod interrupt;
pub mod ipinfo;
pub mod lock;
pub mod logfiles;
pub mod opencage;
pub mod output;
pub mod parser;
pub mod pipeline;
pub mod privacy;
pub mod progress;
pub mod publish;
pub mod ranges;
pub mod regions;
pub mod show;
pub mod status;
pub mod store;
pub mod summaries;
pub mod validate;

/// How a command ended, and so the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was done (exit 0).
    Done,
    /// Something failed; the rest was done (exit 1).
    Failed,
    /// Stopped early on request; running again resumes (exit 3).
    Stopped,
}

impl Outcome {
    /// How reports say it: `done`, `failed`, `stopped`.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
        }
    }

    /// Stopped early when `stopped`, else done.
    pub fn stopped_if(stopped: bool) -> Outcome {
        if stopped {
            Outcome::Stopped
        } else {
            Outcome::Done
        }
    }

    /// The exit code: 0 done, 1 failed, 3 stopped early (2 is bad usage, decided by the CLI parser).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Failed => 1,
            Outcome::Stopped => 3,
        }
    }
}
