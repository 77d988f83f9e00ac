//! The one contract every stage of the pipeline follows.
//!
//! A stage is a type implementing [`Stage`]: `run(&Context, &Options) -> Result<Report>`. The
//! context carries what every stage shares (the open store, the cache directory, the stop flag);
//! the options are the stage's own; the report says through [`Report`] how the stage ended, what
//! it prints, and its row in `run`'s final table. `s3tally run` drives the stages through this
//! contract only (see [`crate::pipeline`]), and each stage's own command prints the same report.

use crate::cache::Cache;
use crate::interrupt::StopFlag;
use crate::store::Store;

/// How a command or a stage ended, and so the process's exit code.
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

    /// The worse of two outcomes: failed over stopped over done.
    #[must_use]
    pub fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Failed, _) | (_, Outcome::Failed) => Outcome::Failed,
            (Outcome::Stopped, _) | (_, Outcome::Stopped) => Outcome::Stopped,
            _ => Outcome::Done,
        }
    }
}

/// What every stage works in: the open store (whose writer lock the caller holds), the cache
/// directory's layout, and the flag raised by `s3tally stop`, SIGINT and SIGTERM.
pub(crate) struct Context<'a> {
    /// The open store.
    pub store: &'a Store,
    /// The cache directory.
    pub cache: &'a Cache,
    /// Raised when the stage should commit what it has and return.
    pub stop: &'a StopFlag,
}

/// What a stage reports, the same way for every stage.
pub(crate) trait Report {
    /// How the stage ended.
    fn outcome(&self) -> Outcome;
    /// A short human summary, one item per line (printed to standard error).
    fn summary(&self) -> Vec<String>;
    /// What was new, for the `new` column of `run`'s table.
    fn new_work(&self) -> String;
    /// What is left for the next run, for the `pending` column (empty when nothing is).
    fn pending(&self) -> String {
        String::new()
    }
}

/// One stage of the pipeline.
pub(crate) trait Stage {
    /// Its name in messages and in `run`'s table.
    const NAME: &'static str;
    /// When this stage stops early or cannot run at all, the later stages do not run either
    /// (they would work on an incomplete extraction).
    const ENDS_RUN_WHEN_STOPPED: bool = false;
    /// The stage's own options.
    type Options;
    /// What it reports.
    type Report: Report;
    /// Runs the stage.
    fn run(context: &Context<'_>, options: &Self::Options) -> anyhow::Result<Self::Report>;
}

/// Prints a report's summary lines to standard error.
pub(crate) fn print_summary(report: &impl Report) {
    for line in report.summary() {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_wins_over_stopped_over_done() {
        use Outcome::{Done, Failed, Stopped};
        assert_eq!(Done.and(Done), Done);
        assert_eq!(Done.and(Stopped), Stopped);
        assert_eq!(Stopped.and(Failed), Failed);
        assert_eq!(Failed.and(Done), Failed);
    }
}
