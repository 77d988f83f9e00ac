//! What every client of an external service shares: an HTTP client with short timeouts, and
//! retries with exponential backoff and jitter that honour `Retry-After` and a stop request.

use std::time::Duration;

use rand::Rng;

use crate::interrupt::StopFlag;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
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
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exponential = self.base.saturating_mul(1 << retry.min(20)).min(self.cap);
        exponential.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }
}

/// The largest answer read from a service; a larger one is an error, not an allocation.
pub(crate) const MAX_BODY_BYTES: usize = 64 << 20;

/// Which redirects a client follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redirects {
    /// None: the request carries addresses or a key, which must go nowhere else.
    Never,
    /// Only to `https` addresses (public documents such as range lists), at most five.
    HttpsOnly,
}

/// An HTTP client whose connection attempts give up quickly, so that an offline run does not hang.
pub(crate) fn client(timeout: Duration, redirects: Redirects) -> reqwest::Client {
    let policy = match redirects {
        Redirects::Never => reqwest::redirect::Policy::none(),
        Redirects::HttpsOnly => reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().scheme() == "https" && attempt.previous().len() <= 5 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }),
    };
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .redirect(policy)
        .user_agent(concat!("s3tally/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds with its default TLS roots")
}

/// Reads a response's body, refusing one larger than `limit` bytes; the error says why.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let too_large = || format!("answer larger than {} MB", limit >> 20);
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| describe(&error))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `Retry-After` of a response, in seconds (the HTTP-date form is not used by these services).
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// Sleeps `duration`, waking early (false) if a stop is asked for.
pub(crate) async fn sleep_unless_stopped(duration: Duration, stop: &StopFlag) -> bool {
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

/// Returns once a stop is asked for (checked every 50 ms).
async fn stop_requested(stop: &StopFlag) {
    while !stop.is_raised() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What one attempt at a request came to.
#[derive(Debug)]
pub(crate) enum Attempt<T, E> {
    /// An answer.
    Done(T),
    /// A failure worth retrying (429, 5xx, network), with the wait the server asked for, if any.
    Retry {
        /// What went wrong, for the message if every retry fails.
        why: String,
        /// `Retry-After`.
        wait: Option<Duration>,
    },
    /// A failure not worth retrying.
    Fail(E),
}

/// Why retried requests got no answer.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// An attempt failed for good.
    Fail(E),
    /// Every retry failed, or the server asked to wait longer than the policy allows.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A stop was asked for while waiting to retry.
    Stopped,
}

/// Makes `attempt` until it is done or fails for good, waiting between attempts as the policy
/// says (or as the server asked), and giving up early when a stop is asked for.
pub(crate) async fn retrying<T, E, F, Fut>(
    policy: &RetryPolicy,
    stop: &StopFlag,
    mut attempt: F,
) -> Result<T, Failure<E>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt<T, E>>,
{
    let mut last = String::new();
    for retry in 0..=policy.retries {
        // a stop request ends an attempt in flight too (a hung service must not hold a stop)
        let answer = tokio::select! {
            answer = attempt() => answer,
            () = stop_requested(stop) => return Err(Failure::Stopped),
        };
        let asked = match answer {
            Attempt::Done(answer) => return Ok(answer),
            Attempt::Fail(error) => return Err(Failure::Fail(error)),
            Attempt::Retry { why, wait } => {
                last = why;
                wait
            }
        };
        if retry == policy.retries {
            break;
        }
        let wait = match asked {
            Some(asked) if asked > policy.cap => {
                return Err(Failure::GaveUp {
                    attempts: retry + 1,
                    last: format!("{last}, asked to wait {} s", asked.as_secs()),
                });
            }
            Some(asked) => asked,
            None => policy.backoff(retry),
        };
        if !sleep_unless_stopped(wait, stop).await {
            return Err(Failure::Stopped);
        }
    }
    Err(Failure::GaveUp {
        attempts: policy.retries + 1,
        last,
    })
}

/// A response read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, if any.
    pub wait: Option<Duration>,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON; an unreadable body is worth a retry (a proxy's error page, a cut answer).
    pub(crate) fn json<T, E>(&self) -> Result<serde_json::Value, Attempt<T, E>> {
        serde_json::from_str(&self.body).map_err(|error| Attempt::Retry {
            why: format!("unreadable answer: {error}"),
            wait: None,
        })
    }

    /// The answer to a status worth retrying (429, 5xx), as an attempt.
    pub(crate) fn retry<T, E>(&self) -> Attempt<T, E> {
        Attempt::Retry {
            why: format!("HTTP {}", self.status),
            wait: self.wait,
        }
    }
}

/// Sends a request and reads the whole answer; a network failure is worth a retry.
pub(crate) async fn send<T, E>(request: reqwest::RequestBuilder) -> Result<Answer, Attempt<T, E>> {
    let response = request.send().await.map_err(|error| Attempt::Retry {
        why: describe(&error),
        wait: None,
    })?;
    let status = response.status().as_u16();
    let wait = retry_after(&response);
    let body = read_body(response, MAX_BODY_BYTES)
        .await
        .map_err(|why| Attempt::Retry { why, wait: None })?;
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok(Answer { status, wait, body })
}

/// A URL as it may be shown: without user name, password or query (which may hold a key).
pub(crate) fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            if parsed.query().is_some() {
                parsed.set_query(Some("..."));
            }
            parsed.to_string()
        }
        Err(_) => "<a URL that does not parse>".to_owned(),
    }
}

/// A short description of a network error (no URL: it may hold a key).
pub(crate) fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "cannot connect".into()
    } else {
        "network error".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            display_url("https://user:pw@example.org/ranges.json?key=abc"),
            "https://example.org/ranges.json?..."
        );
        assert_eq!(
            display_url("http://127.0.0.1:8/a.json"),
            "http://127.0.0.1:8/a.json"
        );
        assert!(!display_url("not a url with pw").contains("pw"));
    }

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

    #[test]
    fn retrying_gives_up_after_the_retries_and_stops_on_fail() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let policy = RetryPolicy {
            retries: 2,
            base: Duration::from_millis(1),
            cap: Duration::from_secs(1),
        };
        let stop = StopFlag::default();
        let mut calls = 0;
        let result: Result<(), Failure<()>> = runtime.block_on(retrying(&policy, &stop, || {
            calls += 1;
            async {
                Attempt::Retry {
                    why: "HTTP 503".into(),
                    wait: None,
                }
            }
        }));
        assert!(matches!(result, Err(Failure::GaveUp { attempts: 3, .. })));
        assert_eq!(calls, 3);
        let mut calls = 0;
        let result: Result<(), Failure<&str>> = runtime.block_on(retrying(&policy, &stop, || {
            calls += 1;
            async { Attempt::Fail("refused") }
        }));
        assert!(matches!(result, Err(Failure::Fail("refused"))));
        assert_eq!(calls, 1);
        // a server asking to wait longer than the cap: give up at once
        let result: Result<(), Failure<()>> =
            runtime.block_on(retrying(&policy, &stop, || async {
                Attempt::Retry {
                    why: "HTTP 429".into(),
                    wait: Some(Duration::from_secs(3600)),
                }
            }));
        assert!(matches!(result, Err(Failure::GaveUp { attempts: 1, .. })));
    }
}
