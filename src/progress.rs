//! Progress of long work: a bar (steps, rate, ETA) on a terminal, one timestamped line per step
//! otherwise (CRON logs). Everything goes to standard error.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A line prefixed with the current UTC time, as written to CRON logs.
pub(crate) fn timestamped(message: &str) -> String {
    format!(
        "{} {message}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// What the amount of work is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Amount {
    /// Bytes (shown in MB and MB/s).
    Bytes,
    /// Items with this name (for example `addresses`).
    Items(&'static str),
}

/// Progress over a known number of steps (files, batches) and amount of work.
pub(crate) struct Progress {
    stage: &'static str,
    steps_name: &'static str,
    amount: Amount,
    bar: Option<ProgressBar>,
    start: Instant,
    total_steps: u64,
    total: u64,
    done_steps: u64,
    done: u64,
}

impl Progress {
    /// Progress of `stage` over `total_steps` files of `total_bytes` bytes.
    pub(crate) fn new(stage: &'static str, total_steps: u64, total_bytes: u64) -> Self {
        Self::counting(stage, "files", total_steps, Amount::Bytes, total_bytes)
    }

    /// Progress of `stage` over `total_steps` steps named `steps_name` and `total` of `amount`.
    pub(crate) fn counting(
        stage: &'static str,
        steps_name: &'static str,
        total_steps: u64,
        amount: Amount,
        total: u64,
    ) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
            let counts = match amount {
                Amount::Bytes => {
                    "{binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}".to_owned()
                }
                Amount::Items(name) => format!("{{pos}}/{{len}} {name} {{per_sec}}"),
            };
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{prefix}} [{{bar:30}}] {{msg}} {counts} ETA {{eta}}"
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(stage);
            bar.set_message(format!("0/{total_steps} {steps_name}"));
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            stage,
            steps_name,
            amount,
            bar,
            start: Instant::now(),
            total_steps,
            total,
            done_steps: 0,
            done: 0,
        }
    }

    /// Records `steps` more steps holding `amount` more work; `detail` is shown on the log line.
    pub(crate) fn advance(&mut self, steps: u64, amount: u64, detail: &str) {
        self.done_steps += steps;
        self.done += amount;
        let steps_text = format!(
            "{}/{} {}",
            self.done_steps, self.total_steps, self.steps_name
        );
        if let Some(bar) = &self.bar {
            bar.set_message(steps_text);
            bar.set_position(self.done);
        } else {
            let seconds = self.start.elapsed().as_secs_f64().max(1e-6);
            let percent = if self.total == 0 {
                100.0
            } else {
                100.0 * self.done as f64 / self.total as f64
            };
            let amount = match self.amount {
                Amount::Bytes => format!(
                    "{:.1} MB ({percent:.0}%), {:.0} MB/s",
                    self.done as f64 / 1e6,
                    self.done as f64 / 1e6 / seconds
                ),
                Amount::Items(name) => format!(
                    "{} {name} ({percent:.0}%), {:.0}/s",
                    self.done,
                    self.done as f64 / seconds
                ),
            };
            eprintln!(
                "{}",
                timestamped(&format!("{}: {steps_text}, {amount}, {detail}", self.stage))
            );
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
