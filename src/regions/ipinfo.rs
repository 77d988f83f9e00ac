//! The ipinfo client: region labels for batches of up to 1000 addresses (the batch endpoint).

use std::collections::HashMap;
use std::time::Duration;

use crate::http::{self, Attempt, Failure, RetryPolicy};
use crate::interrupt::StopFlag;
use crate::labels::RegionLabel;

/// Environment variable holding the ipinfo token.
pub(crate) const KEY_ENV: &str = "IPINFO_API_KEY";
/// Environment variable overriding the base URL.
pub(crate) const URL_ENV: &str = "IPINFO_URL";
/// The public service.
pub(crate) const DEFAULT_URL: &str = "https://ipinfo.io";
/// Most addresses in one batch request (ipinfo's limit).
pub(crate) const MAX_BATCH: usize = 1000;

/// Why a batch got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IpinfoError {
    /// The service answered with a redirect, not followed: the request carries addresses.
    #[error(
        "ipinfo answered with a redirect (HTTP {0}), not followed because the request carries addresses: check {URL_ENV} or --ipinfo-url"
    )]
    Redirected(u16),
    /// The token was refused.
    #[error("ipinfo refused the token (HTTP {0}): check {KEY_ENV}")]
    Rejected(u16),
    /// The account's quota is used up.
    #[error("ipinfo quota exhausted (HTTP {status}): {message}")]
    Quota {
        /// HTTP status.
        status: u16,
        /// What ipinfo said.
        message: String,
    },
    /// No answer after every retry.
    #[error("ipinfo did not answer after {attempts} attempts (last: {last})")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A stop was asked for while waiting to retry.
    #[error("stopped while waiting to retry ipinfo")]
    Stopped,
}

/// A client of the ipinfo batch endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Ipinfo {
    http: reqwest::Client,
    url: String,
    token: String,
    policy: RetryPolicy,
}

impl Ipinfo {
    /// A client of the service at `base_url` with `token`.
    pub(crate) fn new(base_url: &str, token: &str, timeout: Duration, policy: RetryPolicy) -> Self {
        Self {
            http: http::client(timeout, http::Redirects::Never),
            url: format!("{}/batch", base_url.trim_end_matches('/')),
            token: token.to_owned(),
            policy,
        }
    }

    /// Labels for the addresses in `ips` (at most 1000); an address missing from the answer is
    /// missing from the result.
    pub(crate) async fn lookup(
        &self,
        ips: &[String],
        stop: &StopFlag,
    ) -> Result<HashMap<String, Answered>, IpinfoError> {
        let attempt = || async {
            let request = self.http.post(&self.url).bearer_auth(&self.token).json(ips);
            let answer = match http::send(request).await {
                Ok(answer) => answer,
                Err(retry) => return retry,
            };
            let (status, body) = (answer.status, &answer.body);
            match status {
                200 => match answer.json() {
                    Ok(json) => Attempt::Done(labels(ips, &json)),
                    Err(retry) => retry,
                },
                300..=399 => Attempt::Fail(IpinfoError::Redirected(status)),
                401 | 403 => Attempt::Fail(IpinfoError::Rejected(status)),
                402 => Attempt::Fail(IpinfoError::Quota {
                    status,
                    message: message(body, &self.token),
                }),
                429 if is_quota(body) => Attempt::Fail(IpinfoError::Quota {
                    status,
                    message: message(body, &self.token),
                }),
                429 | 500..=599 => answer.retry(),
                _ => Attempt::Fail(IpinfoError::GaveUp {
                    attempts: 1,
                    last: format!("HTTP {status}: {}", message(body, &self.token)),
                }),
            }
        };
        http::retrying(&self.policy, stop, attempt)
            .await
            .map_err(|failure| match failure {
                Failure::Fail(error) => error,
                Failure::GaveUp { attempts, last } => IpinfoError::GaveUp { attempts, last },
                Failure::Stopped => IpinfoError::Stopped,
            })
    }
}

/// Whether a 429's body says the quota (not the rate) is exhausted.
fn is_quota(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    body.contains("quota") || body.contains("exhausted") || body.contains("monthly")
}

/// The error message in an ipinfo error body, as it may be shown: no token, no address, short.
fn message(body: &str, token: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let text = json
        .as_ref()
        .and_then(|j| {
            j["error"]["message"]
                .as_str()
                .or(j["error"]["title"].as_str())
                .or(j["error"].as_str())
        })
        .unwrap_or(body);
    // what a remote service says is shown to the user (CRON mail): never with the token (a
    // server may echo the request's headers) nor an address in it
    crate::privacy::redact(text, &[token], 200)
}

/// A label from ipinfo, and the region name it gave that the ISO table could not place.
pub(crate) type Answered = (RegionLabel, Option<String>);

/// Labels from a batch answer, for the addresses asked.
fn labels(ips: &[String], answer: &serde_json::Value) -> HashMap<String, Answered> {
    ips.iter()
        .filter_map(|ip| Some((ip.clone(), label(&answer[ip.as_str()])?)))
        .collect()
}

/// The label of one address's details: `bogon`, `CC-SUB` (the region name placed by the ISO
/// table), `CC` (with the name it could not place), or `unknown`; `None` when the entry is absent
/// or not details (it then stays pending).
pub(crate) fn label(details: &serde_json::Value) -> Option<Answered> {
    let details = details.as_object()?;
    if details.get("bogon").and_then(serde_json::Value::as_bool) == Some(true) {
        return Some((RegionLabel::bogon(), None));
    }
    if details.contains_key("error") {
        return None;
    }
    let country = details
        .get("country")
        .or(details.get("country_code"))
        .and_then(|c| c.as_str());
    let region = details.get("region").and_then(|r| r.as_str());
    Some(
        country
            .and_then(|country| RegionLabel::place_named(country, region))
            .map_or_else(
                || (RegionLabel::unknown(), None),
                |(label, unplaced)| {
                    let unplaced = unplaced.map(|name| format!("{}: {name}", label.as_str()));
                    (label, unplaced)
                },
            ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_from_details() {
        let google = json!({"ip": "8.8.8.8", "hostname": "dns.google", "city": "Mountain View",
            "region": "California", "country": "US", "loc": "37.4056,-122.0775"});
        let text = |details| label(&details).map(|(l, _)| l.to_string());
        assert_eq!(text(google).as_deref(), Some("US-CA"));
        // a region name the ISO table cannot place: the country, and the name to report
        assert_eq!(
            label(&json!({"ip": "1.1.1.1", "country": "AU", "region": "Nowhere Land"})),
            Some((
                RegionLabel::parse("AU").unwrap(),
                Some("AU: Nowhere Land".into())
            ))
        );
        assert_eq!(
            text(json!({"ip": "9.9.9.9", "country": "CH"})).as_deref(),
            Some("CH")
        );
        assert_eq!(
            text(json!({"ip": "10.0.0.1", "bogon": true})).as_deref(),
            Some("bogon")
        );
        assert_eq!(text(json!({"ip": "1.2.3.4"})).as_deref(), Some("unknown"));
        assert_eq!(label(&json!({"error": {"title": "Wrong ip"}})), None);
        assert_eq!(label(&json!(null)), None);
    }

    #[test]
    fn error_messages_never_show_an_address() {
        let body = r#"{"error": {"title": "Wrong ip", "message": "Please provide a valid IP address: 8.8.8.8"}}"#;
        assert_eq!(
            message(body, "tok3n"),
            "Please provide a valid IP address: <ip>"
        );
    }

    #[test]
    fn quota_is_told_from_rate() {
        assert!(is_quota(
            r#"{"error": {"title": "Quota exceeded", "message": "Monthly quota exhausted"}}"#
        ));
        assert!(!is_quota(r#"{"error": {"title": "Rate limit exceeded"}}"#));
    }
}
