//! Progress of long work: a bar (files, MB/s, ETA) on a terminal, one timestamped line per step
//! otherwise (CRON logs). Everything goes to standard error.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A line prefixed with the current UTC time, as written to CRON logs.
pub fn timestamped(message: &str) -> String {
    format!(
        "{} {message}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// Progress over a known number of files and bytes.
pub struct Progress {
    stage: &'static str,
    bar: Option<ProgressBar>,
    start: Instant,
    total_files: u64,
    total_bytes: u64,
    done_files: u64,
    done_bytes: u64,
}

impl Progress {
    /// Starts showing progress of `stage` over `total_files` files of `total_bytes` bytes.
    pub fn new(stage: &'static str, total_files: u64, total_bytes: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total_bytes),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {msg} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(stage);
            bar.set_message(format!("0/{total_files} files"));
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            stage,
            bar,
            start: Instant::now(),
            total_files,
            total_bytes,
            done_files: 0,
            done_bytes: 0,
        }
    }

    /// Records `files` more files of `bytes` bytes done; `detail` is shown on the log line.
    pub fn advance(&mut self, files: u64, bytes: u64, detail: &str) {
        self.done_files += files;
        self.done_bytes += bytes;
        let files_text = format!("{}/{} files", self.done_files, self.total_files);
        match &self.bar {
            Some(bar) => {
                bar.set_message(files_text);
                bar.set_position(self.done_bytes);
            }
            None => {
                let seconds = self.start.elapsed().as_secs_f64().max(1e-6);
                let percent = if self.total_bytes == 0 {
                    100.0
                } else {
                    100.0 * self.done_bytes as f64 / self.total_bytes as f64
                };
                eprintln!(
                    "{}",
                    timestamped(&format!(
                        "{}: {files_text}, {:.1} MB ({percent:.0}%), {:.0} MB/s, {detail}",
                        self.stage,
                        self.done_bytes as f64 / 1e6,
                        self.done_bytes as f64 / 1e6 / seconds,
                    ))
                );
            }
        }
    }

    /// Shows a message without breaking the bar.
    pub fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{}", timestamped(message)),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
