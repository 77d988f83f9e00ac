//! Graceful interruption: SIGTERM, SIGINT and `s3tally stop` (a request file in the cache) ask the
//! running stage to finish its current batch, commit and exit; a second SIGINT aborts at once
//! (uncommitted work is simply lost).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Set when the process has been asked to stop after its current batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopFlag {
    flag: Arc<AtomicBool>,
    /// A scoped flag is also raised when its parent is.
    parent: Option<Arc<AtomicBool>>,
}

impl StopFlag {
    /// A flag raised by SIGTERM and SIGINT; a SIGINT while it is raised exits at once.
    pub(crate) fn from_signals() -> std::io::Result<Self> {
        let flag = Self::default();
        // order matters: the conditional exit sees the flag before the first SIGINT raises it
        signal_hook::flag::register_conditional_shutdown(
            SIGINT,
            i32::from(crate::exit::ABORTED),
            flag.flag.clone(),
        )?;
        signal_hook::flag::register(SIGINT, flag.flag.clone())?;
        signal_hook::flag::register(SIGTERM, flag.flag.clone())?;
        Ok(flag)
    }

    /// Also raises the flag when `request` appears (`s3tally stop` writes it), checked every
    /// 100 ms by a watching thread that ends once the flag is raised.
    pub(crate) fn watch_request(&self, request: std::path::PathBuf) {
        let flag = self.flag.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if request.exists() {
                    flag.store(true, Ordering::Relaxed);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
    }

    /// A flag for one stage: raised when this one is, and also raisable alone (a stage that must
    /// stop itself, on an exhausted quota say, without stopping the stages after it).
    pub(crate) fn scoped(&self) -> Self {
        Self {
            flag: Arc::default(),
            parent: Some(self.flag.clone()),
        }
    }

    /// Whether a stop was asked for.
    pub(crate) fn is_raised(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
            || self
                .parent
                .as_ref()
                .is_some_and(|parent| parent.load(Ordering::Relaxed))
    }

    /// Asks for a stop (tests, and stages stopping themselves).
    pub(crate) fn raise(&self) {
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
