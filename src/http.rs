//! What every client of an external service shares: an HTTP client with short timeouts, and
//! retries with exponential backoff and jitter that honour `Retry-After` and a stop request.

use std::time::Duration;

use rand::Rng;

use crate::interrupt::StopFlag;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Wait before the first retry; doubled at each retry.
    pub base: Duration,
    /// Longest wait between two attempts; a `Retry-After` longer than this gives up instead.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (from 0): `base * 2^retry`, at most `cap`, times a
    /// random factor between 0.5 and 1.5 so that clients do not retry in step.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponential = self.base.saturating_mul(1 << retry.min(20)).min(self.cap);
        exponential.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }
}

/// An HTTP client whose connection attempts give up quickly, so that an offline run does not hang.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("s3tally/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds with its default TLS roots")
}

/// The `Retry-After` of a response, in seconds (the HTTP-date form is not used by these services).
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// Sleeps `duration`, waking early (false) if a stop is asked for.
pub async fn sleep_unless_stopped(duration: Duration, stop: &StopFlag) -> bool {
    let step = Duration::from_millis(50);
    let mut left = duration;
    while !left.is_zero() {
        if stop.is_raised() {
            return false;
        }
        let nap = left.min(step);
        tokio::time::sleep(nap).await;
        left -= nap;
    }
    !stop.is_raised()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            retries: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        for retry in 0..4 {
            let wait = policy.backoff(retry);
            let nominal = 100.0 * f64::from(1u32 << retry);
            let ms = wait.as_secs_f64() * 1000.0;
            assert!(ms >= nominal * 0.5 && ms <= nominal * 1.5, "{retry}: {ms}");
        }
        assert!(policy.backoff(30) <= Duration::from_millis(1500));
    }
}
