//! Logs where they live: S3 buckets (and S3-compatible stores) read with `object_store`.
//!
//! A [`Bucket`] is one bucket with its credentials ([`credentials`]), its own small tokio
//! runtime and synchronous calls for the stages: one page of a listing, one small object, and
//! concurrent downloads handed to the parsing threads as readers ([`fetch`]). What to list and
//! what to skip is [`listing`]'s; [`inventory`] reads the list of log objects from an S3
//! Inventory instead.

pub(crate) mod credentials;
pub(crate) mod fetch;
pub(crate) mod inventory;
pub(crate) mod listing;
pub(crate) mod write;

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::http::RetryPolicy;
use credentials::ProfileError;

/// The environment variable (and flag) naming an S3-compatible endpoint.
pub(crate) const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";
/// Downloads at once, by default: enough to hide a round trip per small log object, few enough
/// for one machine and one bucket's request rate.
pub(crate) const DEFAULT_CONCURRENCY: usize = 32;
/// Keys asked per listing page (S3's maximum).
pub(crate) const PAGE_KEYS: usize = 1000;

/// An `s3://BUCKET/PREFIX` location.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S3Location {
    /// The bucket's name.
    pub bucket: String,
    /// The key prefix (may be empty), as given.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{text} is not an s3://BUCKET/PREFIX location"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !valid_bucket {
            return Err(format!(
                "{text}: {bucket:?} is not an S3 bucket name (3 to 63 lowercase letters, digits, '-', '.')"
            ));
        }
        if prefix.chars().any(char::is_control) {
            return Err(format!("{text}: the prefix has control characters"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The location as written: `s3://BUCKET/PREFIX`.
    pub(crate) fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

/// How to reach S3.
#[derive(Debug, Clone)]
pub(crate) struct S3Settings {
    /// An S3-compatible endpoint (`--endpoint-url`, `AWS_ENDPOINT_URL`); AWS when `None`.
    pub endpoint: Option<String>,
    /// The bucket's region (`--region`, `AWS_REGION`); asked of S3 when `None`.
    pub region: Option<String>,
    /// Send no credentials (a public bucket).
    pub no_sign_request: bool,
    /// Downloads at once.
    pub concurrency: usize,
    /// Retries of 5xx and 503 `SlowDown` answers, like the other services'.
    pub retry: RetryPolicy,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            no_sign_request: false,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
        }
    }
}

/// Errors reaching a bucket, each said once and clearly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    /// No credential anywhere in the chain.
    #[error(
        "no AWS credentials for s3://{bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile of ~/.aws/credentials), or run where an instance or container role is available; a public bucket needs --no-sign-request"
    )]
    NoCredentials {
        /// The bucket.
        bucket: String,
    },
    /// The shared files could not give the credentials.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// S3 refused the credentials or the access.
    #[error(
        "S3 refused access to {url} ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may list and read it; a public bucket needs --no-sign-request"
    )]
    Refused {
        /// What was asked.
        url: String,
        /// S3's error code (`InvalidAccessKeyId`, `AccessDenied`...).
        code: String,
    },
    /// The bucket or object does not exist.
    #[error("{url} does not exist ({code})")]
    NotFound {
        /// What was asked.
        url: String,
        /// S3's error code.
        code: String,
    },
    /// Anything else, after the retries.
    #[error("{url}: {message}")]
    Failed {
        /// What was asked.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl S3Error {
    /// The key a listing could not take (`object_store` cannot address a key with an empty
    /// segment, `.` or `..`): such a key fails its whole page.
    pub(crate) fn unaddressable_key(&self) -> Option<String> {
        let S3Error::Failed { message, .. } = self else {
            return None;
        };
        // `Error parsing Path "KEY": ...` or `Path "KEY" contained empty path segment`
        let start = message.find("Path \"")? + "Path \"".len();
        let rest = &message[start..];
        let end = rest.find("\" contained").or_else(|| rest.find("\": "))?;
        Some(rest[..end].to_owned())
    }

    /// The error for a failed call about `url`.
    pub(crate) fn from_store(url: String, error: &object_store::Error) -> Self {
        let text = error.to_string();
        let code = error_code(&text);
        let refused_code = code.as_deref().is_some_and(|code| {
            REFUSED_CODES
                .iter()
                .any(|refused| code.starts_with(refused))
        });
        match error {
            _ if refused_code => S3Error::Refused {
                url,
                code: code.unwrap_or_default(),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => S3Error::Refused {
                url,
                code: code.unwrap_or_else(|| "403 Forbidden".into()),
            },
            object_store::Error::NotFound { .. } => S3Error::NotFound {
                url,
                code: code.unwrap_or_else(|| "404 Not Found".into()),
            },
            _ => S3Error::Failed {
                url,
                message: code.unwrap_or(text),
            },
        }
    }
}

/// S3's error codes that mean the credentials or the access were refused (however the client
/// classed the answer).
const REFUSED_CODES: [&str; 7] = [
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
];

/// S3's `<Code>` in an error answer, with its `<Message>` when there is one.
fn error_code(text: &str) -> Option<String> {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(
            text[start..end]
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>(),
        )
    };
    let code = between("<Code>", "</Code>")?;
    Some(match between("<Message>", "</Message>") {
        Some(message) => format!("{code}: {message}"),
        None => code,
    })
}

/// One page of a listing.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// Objects: key and size.
    pub objects: Vec<(String, u64)>,
    /// Folders (with `delimiter`): key prefixes ending in `/`.
    pub folders: Vec<String>,
    /// The token of the next page, if any.
    pub next: Option<String>,
}

/// One bucket, reachable.
pub(crate) struct Bucket {
    store: Arc<AmazonS3>,
    runtime: Arc<tokio::runtime::Runtime>,
    name: String,
    concurrency: usize,
}

impl Bucket {
    /// Connects to `bucket` with the credential chain (nothing is asked of S3 yet but, when no
    /// region is set and the endpoint is AWS, the bucket's region).
    pub(crate) fn connect(bucket: &str, settings: &S3Settings) -> Result<Self, S3Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3tally-s3")
            .enable_all()
            .build()
            .map_err(|error| S3Error::Failed {
                url: format!("s3://{bucket}"),
                message: format!("cannot start the S3 client: {error}"),
            })?;
        let mut builder = builder_from_env(settings.no_sign_request).with_bucket_name(bucket);
        let (credentials, config) = credentials::shared_files();
        let profile_name = std::env::var("AWS_PROFILE").ok();
        let profile_name_or_default = profile_name.as_deref().unwrap_or("default");
        let profile = credentials::read_profile(
            profile_name_or_default,
            profile_name.is_some(),
            &credentials,
            &config,
        )?;
        let endpoint = settings
            .endpoint
            .clone()
            .or_else(|| profile.endpoint_url.clone());
        if let Some(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let region = settings
            .region
            .clone()
            .or_else(|| env_value("AWS_REGION"))
            .or_else(|| env_value("AWS_DEFAULT_REGION"))
            .or_else(|| profile.region.clone());
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(300))
            .with_allow_http(
                endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
            );
        let region = match region {
            Some(region) => region,
            None if endpoint.is_none() => runtime
                .block_on(object_store::aws::resolve_bucket_region(bucket, &options))
                .unwrap_or_else(|_| "us-east-1".into()),
            None => "us-east-1".into(),
        };
        builder = builder
            .with_region(region)
            .with_client_options(options)
            .with_retry(retry_config(&settings.retry));
        if settings.no_sign_request {
            builder = builder.with_skip_signature(true);
        } else if env_value("AWS_ACCESS_KEY_ID").is_none() {
            if let Some(keys) = profile.keys(profile_name_or_default)? {
                builder = builder
                    .with_access_key_id(keys.access_key_id)
                    .with_secret_access_key(keys.secret_access_key);
                if let Some(token) = keys.session_token {
                    builder = builder.with_token(token);
                }
            } else if !role_configured() && !runtime.block_on(instance_role_reachable()) {
                return Err(S3Error::NoCredentials {
                    bucket: bucket.to_owned(),
                });
            }
        }
        let store = builder.build().map_err(|error| S3Error::Failed {
            url: format!("s3://{bucket}"),
            message: error.to_string(),
        })?;
        Ok(Self {
            store: Arc::new(store),
            runtime: Arc::new(runtime),
            name: bucket.to_owned(),
            concurrency: settings.concurrency.max(1),
        })
    }

    /// The bucket's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// One page of at most `keys` keys that start with `prefix`, after `offset` (S3's
    /// `start-after`), grouped into folders at `/` when `folders`.
    pub(crate) fn list_page(
        &self,
        prefix: &str,
        folders: bool,
        offset: Option<&str>,
        token: Option<String>,
        keys: usize,
    ) -> Result<Page, S3Error> {
        let options = PaginatedListOptions {
            offset: offset.map(str::to_owned),
            delimiter: folders.then_some("/".into()),
            max_keys: Some(keys),
            page_token: token,
            ..PaginatedListOptions::default()
        };
        let prefix = (!prefix.is_empty()).then_some(prefix);
        let answer = self
            .runtime
            .block_on(self.store.list_paginated(prefix, options))
            .map_err(|error| {
                S3Error::from_store(
                    format!("s3://{}/{}", self.name, prefix.unwrap_or("")),
                    &error,
                )
            })?;
        Ok(Page {
            objects: answer
                .result
                .objects
                .into_iter()
                .map(|object| (object.location.to_string(), object.size))
                .collect(),
            folders: answer
                .result
                .common_prefixes
                .into_iter()
                .map(|folder| format!("{folder}/"))
                .collect(),
            next: answer.page_token,
        })
    }

    /// The whole of one small object (an inventory's manifest or list), at most `limit` bytes.
    pub(crate) fn get_small(&self, key: &str, limit: u64) -> Result<Vec<u8>, S3Error> {
        let url = format!("s3://{}/{key}", self.name);
        let path = ObjectPath::parse(key).map_err(|error| S3Error::Failed {
            url: url.clone(),
            message: error.to_string(),
        })?;
        self.runtime.block_on(async {
            let answer = self
                .store
                .get(&path)
                .await
                .map_err(|error| S3Error::from_store(url.clone(), &error))?;
            if answer.meta.size > limit {
                return Err(S3Error::Failed {
                    url: url.clone(),
                    message: format!("{} bytes, more than the {limit} expected", answer.meta.size),
                });
            }
            let bytes = answer
                .bytes()
                .await
                .map_err(|error| S3Error::from_store(url.clone(), &error))?;
            Ok(bytes.to_vec())
        })
    }
}

/// `object_store`'s retries set like every other service's (`http::RetryPolicy`).
fn retry_config(policy: &RetryPolicy) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: policy.base,
            max_backoff: policy.cap,
            base: 2.0,
        },
        max_retries: policy.retries as usize,
        retry_timeout: Duration::from_secs(600),
    }
}

/// `object_store`'s builder with the `AWS_*` variables it knows, but the keys when nothing is to
/// be signed.
fn builder_from_env(unsigned: bool) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::new();
    for (name, value) in std::env::vars() {
        let keys = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ];
        if !name.starts_with("AWS_") || (unsigned && keys.contains(&name.as_str())) {
            continue;
        }
        if let Ok(key) = name.to_ascii_lowercase().parse() {
            builder = builder.with_config(key, value);
        }
    }
    builder
}

/// A variable's value when it is set and not empty.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Whether a web identity or a container role is configured (`object_store` follows them).
fn role_configured() -> bool {
    (env_value("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env_value("AWS_ROLE_ARN").is_some())
        || env_value("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || env_value("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
}

/// Whether an instance metadata service answers (one quick try): off an instance, a missing
/// credential is said at once instead of after `object_store`'s retries.
async fn instance_role_reachable() -> bool {
    let endpoint = env_value("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .or_else(|| env_value("AWS_METADATA_ENDPOINT"))
        .unwrap_or_else(|| "http://169.254.169.254".into());
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
    else {
        return false;
    };
    client
        .put(format!(
            "{}/latest/api/token",
            endpoint.trim_end_matches('/')
        ))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .is_ok_and(|answer| answer.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_bad_ones_say_why() {
        let location = S3Location::parse("s3://my-logs/logs/2024").unwrap();
        assert_eq!(location.bucket, "my-logs");
        assert_eq!(location.prefix, "logs/2024");
        assert_eq!(location.url(), "s3://my-logs/logs/2024");
        assert_eq!(S3Location::parse("s3://my-logs").unwrap().prefix, "");
        for bad in [
            "my-logs/x",
            "s3://",
            "s3://A_B/x",
            "s3://ab",
            "s3://ok-bucket/a\nb",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_error_code_is_read_from_the_answer() {
        let text = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>";
        assert_eq!(
            error_code(text).unwrap(),
            "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records."
        );
        assert_eq!(error_code("connection refused"), None);
        let failed = |message: &str| S3Error::Failed {
            url: "s3://b/".into(),
            message: message.into(),
        };
        let dots = failed(
            "Encountered object with invalid path: Error parsing Path \"logs/../2024\": Encountered illegal character sequence \"..\" whilst parsing path segment \"..\"",
        );
        assert_eq!(dots.unaddressable_key().as_deref(), Some("logs/../2024"));
        let empty = failed(
            "Encountered object with invalid path: Path \"logs/x//2024\" contained empty path segment",
        );
        assert_eq!(empty.unaddressable_key().as_deref(), Some("logs/x//2024"));
        assert_eq!(failed("503 Slow Down").unaddressable_key(), None);
    }
}
