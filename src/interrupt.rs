//! Graceful interruption: SIGTERM, SIGINT and `s3tally stop` ask the running stage to finish its
//! current batch, commit and exit; a second SIGINT aborts at once (uncommitted work is simply lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Exit code of an immediate abort on a second SIGINT (128 + SIGINT).
pub const ABORT_EXIT_CODE: i32 = 130;

/// Set when the process has been asked to stop after its current batch.
#[derive(Debug, Clone, Default)]
pub struct StopFlag {
    flag: Arc<AtomicBool>,
    /// A scoped flag is also raised when its parent is.
    parent: Option<Arc<AtomicBool>>,
}

impl StopFlag {
    /// A flag raised by SIGTERM and SIGINT; a SIGINT while it is raised exits at once.
    pub fn from_signals() -> std::io::Result<Self> {
        let flag = Self::default();
        // order matters: the conditional exit sees the flag before the first SIGINT raises it
        signal_hook::flag::register_conditional_shutdown(
            SIGINT,
            ABORT_EXIT_CODE,
            flag.flag.clone(),
        )?;
        signal_hook::flag::register(SIGINT, flag.flag.clone())?;
        signal_hook::flag::register(SIGTERM, flag.flag.clone())?;
        Ok(flag)
    }

    /// A flag for one stage: raised when this one is, and also raisable alone (a stage that must
    /// stop itself, on an exhausted quota say, without stopping the stages after it).
    pub fn scoped(&self) -> Self {
        Self {
            flag: Arc::default(),
            parent: Some(self.flag.clone()),
        }
    }

    /// Whether a stop was asked for.
    pub fn is_raised(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
            || self
                .parent
                .as_ref()
                .is_some_and(|parent| parent.load(Ordering::Relaxed))
    }

    /// Asks for a stop (tests, and stages stopping themselves).
    pub fn raise(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_flag_follows_its_parent_but_not_the_other_way() {
        let parent = StopFlag::default();
        let scoped = parent.scoped();
        scoped.raise();
        assert!(scoped.is_raised() && !parent.is_raised());
        let other = parent.scoped();
        parent.raise();
        assert!(other.is_raised());
    }
}
