//! The `OpenCage` geocoder client: latitude and longitude of a region label, searched within the
//! label's country.

use std::time::Duration;

use crate::http::{self, Attempt, Failure, RetryPolicy};
use crate::interrupt::StopFlag;
use crate::labels::RegionLabel;

/// Environment variable holding the `OpenCage` key.
pub(crate) const KEY_ENV: &str = "OPENCAGE_API_KEY";
/// Environment variable overriding the base URL.
pub(crate) const URL_ENV: &str = "OPENCAGE_URL";
/// The public service.
pub(crate) const DEFAULT_URL: &str = "https://api.opencagedata.com";

/// Why a label got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GeocodeError {
    /// The service answered with a redirect, not followed: the request carries the key.
    #[error(
        "OpenCage answered with a redirect (HTTP {0}), not followed because the request carries the key: check {URL_ENV} or --opencage-url"
    )]
    Redirected(u16),
    /// The key was refused.
    #[error("OpenCage refused the key (HTTP {0}): check {KEY_ENV}")]
    Rejected(u16),
    /// The day's quota is used up.
    #[error("OpenCage quota exhausted (HTTP 402)")]
    Quota,
    /// No answer after every retry.
    #[error("OpenCage did not answer after {attempts} attempts (last: {last})")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A stop was asked for while waiting to retry.
    #[error("stopped while waiting to retry OpenCage")]
    Stopped,
}

/// A client of the `OpenCage` forward geocoding API.
#[derive(Debug, Clone)]
pub(crate) struct OpenCage {
    http: reqwest::Client,
    url: String,
    key: String,
    policy: RetryPolicy,
}

/// What to ask the geocoder for a place label: the query text (the region, else the country
/// code) and the country to search in (lowercase). `None` for labels that are not places.
pub(crate) fn query(label: &RegionLabel) -> Option<(String, String)> {
    let country = label.place_country()?;
    // the subdivision's name, else its code (one the ISO table does not know), else the country
    let text = label
        .place_region()
        .or_else(|| label.place_subdivision().map(|code| &code[3..]))
        .unwrap_or(country);
    Some((text.to_owned(), country.to_ascii_lowercase()))
}

impl OpenCage {
    /// A client of the service at `base_url` with `key`.
    pub(crate) fn new(base_url: &str, key: &str, timeout: Duration, policy: RetryPolicy) -> Self {
        Self {
            http: http::client(timeout, http::Redirects::Never),
            url: format!("{}/geocode/v1/json", base_url.trim_end_matches('/')),
            key: key.to_owned(),
            policy,
        }
    }

    /// The best place for `text` in `country` (lowercase ISO code), or `None` when the geocoder
    /// has no result.
    pub(crate) async fn geocode(
        &self,
        text: &str,
        country: &str,
        stop: &StopFlag,
    ) -> Result<Option<(f64, f64)>, GeocodeError> {
        let attempt = || async {
            let request = self.http.get(&self.url).query(&[
                ("q", text),
                ("countrycode", country),
                ("key", self.key.as_str()),
                ("limit", "1"),
                ("no_annotations", "1"),
            ]);
            let answer = match http::send(request).await {
                Ok(answer) => answer,
                Err(retry) => return retry,
            };
            let status = answer.status;
            match status {
                200 => match answer.json() {
                    Ok(json) => match best_place(&json) {
                        Ok(place) => Attempt::Done(place),
                        // not the documented shape: an error, never a cached "not found"
                        Err(why) => Attempt::Retry { why, wait: None },
                    },
                    Err(retry) => retry,
                },
                300..=399 => Attempt::Fail(GeocodeError::Redirected(status)),
                401 | 403 => Attempt::Fail(GeocodeError::Rejected(status)),
                402 => Attempt::Fail(GeocodeError::Quota),
                408 | 429 | 500..=599 => answer.retry(),
                _ => Attempt::Fail(GeocodeError::GaveUp {
                    attempts: 1,
                    last: format!("HTTP {status}"),
                }),
            }
        };
        http::retrying(&self.policy, stop, attempt)
            .await
            .map_err(|failure| match failure {
                Failure::Fail(error) => error,
                Failure::GaveUp { attempts, last } => GeocodeError::GaveUp { attempts, last },
                Failure::Stopped => GeocodeError::Stopped,
            })
    }
}

/// The geometry of the first (best) result; `None` when there is no result. An answer without a
/// `results` list, results without a geometry, or a latitude or longitude out of range are not
/// the documented shape: an error saying what is wrong.
fn best_place(answer: &serde_json::Value) -> Result<Option<(f64, f64)>, String> {
    let results = answer["results"]
        .as_array()
        .ok_or("unreadable answer: no results list")?;
    if results.is_empty() {
        return Ok(None);
    }
    let (latitude, longitude) = results
        .iter()
        .find_map(|result| {
            let geometry = &result["geometry"];
            Some((geometry["lat"].as_f64()?, geometry["lng"].as_f64()?))
        })
        .ok_or("unreadable answer: no result has a geometry")?;
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(format!(
            "unreadable answer: latitude {latitude}, longitude {longitude} out of range"
        ));
    }
    Ok(Some((latitude, longitude)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_are_searched_in_the_label_country() {
        let query = |text: &str| query(&RegionLabel::parse(text).unwrap());
        assert_eq!(query("US-CA"), Some(("California".into(), "us".into())));
        assert_eq!(query("US-ZZ"), Some(("ZZ".into(), "us".into())));
        assert_eq!(query("CH"), Some(("CH".into(), "ch".into())));
        for placeless in [
            "bogon",
            "unknown",
            "missing",
            "VPN",
            "GitHub",
            "AWS/us-east-1",
        ] {
            assert_eq!(query(placeless), None, "{placeless}");
        }
    }

    #[test]
    fn the_best_result_is_the_first_with_a_geometry() {
        let answer = json!({"results": [
            {"formatted": "California, United States", "geometry": {"lat": 36.7014631, "lng": -118.755997}},
            {"formatted": "California, Maryland", "geometry": {"lat": 38.3, "lng": -76.5}}],
            "status": {"code": 200, "message": "OK"}, "total_results": 2});
        assert_eq!(best_place(&answer), Ok(Some((36.7014631, -118.755997))));
        assert_eq!(
            best_place(&json!({"results": [], "total_results": 0})),
            Ok(None)
        );
        // not the documented shape: errors, never "not found"
        for broken in [
            json!({"status": {"code": 200}}),
            json!({"results": "none"}),
            json!({"results": [{"formatted": "x"}]}),
            json!({"results": [{"geometry": {"lat": 91.0, "lng": 0.0}}]}),
            json!({"results": [{"geometry": {"lat": 0.0, "lng": -180.5}}]}),
        ] {
            assert!(best_place(&broken).is_err(), "{broken}");
        }
    }
}
