//! Graceful interruption: SIGTERM, SIGINT and `s3tally stop` ask the running stage to finish its
//! current batch, commit and exit; a second SIGINT aborts at once (uncommitted work is simply lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Exit code of an immediate abort on a second SIGINT (128 + SIGINT).
pub const ABORT_EXIT_CODE: i32 = 130;

/// Set when the process has been asked to stop after its current batch.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag raised by SIGTERM and SIGINT; a SIGINT while it is raised exits at once.
    pub fn from_signals() -> std::io::Result<Self> {
        let flag = Self::default();
        // order matters: the conditional exit sees the flag before the first SIGINT raises it
        signal_hook::flag::register_conditional_shutdown(SIGINT, ABORT_EXIT_CODE, flag.0.clone())?;
        signal_hook::flag::register(SIGINT, flag.0.clone())?;
        signal_hook::flag::register(SIGTERM, flag.0.clone())?;
        Ok(flag)
    }

    /// Whether a stop was asked for.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Asks for a stop (tests, and stages stopping themselves).
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
