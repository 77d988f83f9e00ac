//! Requester anonymization: the secret salt, salted requester indexes and their opaque ids, and
//! masking of IP addresses in anything a user may read (rejected-line excerpts).

use std::borrow::Cow;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Environment variable that holds the salt instead of the key file.
pub(crate) const SALT_ENV: &str = "S3TALLY_SALT";
/// File name of the salt key inside the config directory.
pub(crate) const SALT_FILE: &str = "salt.key";
/// Shortest accepted salt given through the environment.
const MIN_SALT_LEN: usize = 16;

/// Errors while loading or creating the salt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaltError {
    /// The environment variable is too short to be a secret.
    #[error("{SALT_ENV} must be at least {MIN_SALT_LEN} characters (64 hex digits recommended)")]
    TooShort,
    /// The key file does not hold 64 hex digits.
    #[error(
        "salt key file {0} is not 64 hex digits; restore it from a backup (a new salt would split every requester in two)"
    )]
    BadKeyFile(PathBuf),
    /// Reading or creating the key file failed.
    #[error("cannot read or create salt key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The secret key under which requester IPs are hashed.
#[derive(Clone)]
pub(crate) struct Salt {
    key: Vec<u8>,
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Salt({})", self.fingerprint())
    }
}

impl Salt {
    /// A salt from its raw key bytes.
    pub(crate) fn from_key(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// The salt from `S3TALLY_SALT` if set (64 hex digits are decoded, any other text of at least
    /// 16 characters is used as it is), else from `salt.key` in `config_dir`, created on first use
    /// with 32 random bytes and mode 0600.
    pub(crate) fn load(config_dir: &Path) -> Result<Self, SaltError> {
        if let Some(value) = std::env::var_os(SALT_ENV) {
            let value = value.to_string_lossy().trim().to_owned();
            return match hex::decode(&value) {
                Ok(key) if key.len() == 32 => Ok(Self::from_key(key)),
                _ if value.len() >= MIN_SALT_LEN => Ok(Self::from_key(value.into_bytes())),
                _ => Err(SaltError::TooShort),
            };
        }
        let path = config_dir.join(SALT_FILE);
        let io = |source| SaltError::Io {
            path: path.clone(),
            source,
        };
        match fs::read_to_string(&path) {
            Ok(text) => match hex::decode(text.trim()) {
                Ok(key) if key.len() == 32 => Ok(Self::from_key(key)),
                _ => Err(SaltError::BadKeyFile(path)),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                fs::create_dir_all(config_dir).map_err(io)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                writeln!(file, "{}", hex::encode(&key)).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Self::from_key(key))
            }
            Err(error) => Err(io(error)),
        }
    }

    /// A short public fingerprint of the salt, kept in the store to detect a changed salt.
    pub(crate) fn fingerprint(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(b"s3tally salt fingerprint v1\0");
        digest.update(&self.key);
        hex::encode(&digest.finalize()[..8])
    }

    /// The salted index of a requester: HMAC-SHA256 of its IP (canonical text) under the salt.
    pub(crate) fn requester_index(&self, ip: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(ip);
        mac.finalize().into_bytes().into()
    }
}

/// Number of hex digits of the salted index shown as the requester's opaque id.
const REQUESTER_ID_DIGITS: usize = 16;

/// A requester's opaque id, as `dump` shows it: the first 16 hex digits of its salted index.
pub(crate) fn requester_id(index: &[u8]) -> String {
    let mut text = hex::encode(index);
    text.truncate(REQUESTER_ID_DIGITS);
    text
}

/// Replaces every IPv4 or IPv6 address in `text` with `<ip>`.
pub(crate) fn mask_ips(text: &str) -> Cow<'_, str> {
    static CANDIDATE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*").expect("valid regex")
    });
    CANDIDATE.replace_all(text, |caps: &regex::Captures| {
        let found = &caps[0];
        mask_candidate(found)
    })
}

/// Masks the addresses inside one run of hex digits, dots and colons.
fn mask_candidate(run: &str) -> String {
    static V4: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}").expect("valid regex")
    });
    let trimmed = run.trim_matches(|c| c == '.' || c == ':');
    if trimmed.parse::<std::net::IpAddr>().is_ok() {
        return run.replace(trimmed, "<ip>");
    }
    // dotted quads inside a longer run (for example `x:192.0.2.1.`)
    V4.replace_all(run, "<ip>").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requester_index_is_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        let salt = Salt::from_key(b"Jefe".to_vec());
        assert_eq!(
            hex::encode(salt.requester_index(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn different_salts_have_different_fingerprints() {
        let a = Salt::from_key(vec![1; 32]);
        let b = Salt::from_key(vec![2; 32]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), Salt::from_key(vec![1; 32]).fingerprint());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // SAFETY of the test: no other test in this module reads S3TALLY_SALT concurrently
        if std::env::var_os(SALT_ENV).is_some() {
            return;
        }
        let first = Salt::load(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(SALT_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = Salt::load(dir.path()).unwrap();
        assert_eq!(first.fingerprint(), second.fingerprint());
        fs::write(dir.path().join(SALT_FILE), "short").unwrap();
        assert!(matches!(
            Salt::load(dir.path()),
            Err(SaltError::BadKeyFile(_))
        ));
    }

    #[test]
    fn masks_ipv4_and_ipv6_but_not_times() {
        let line = "o b [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - ID REST.GET.OBJECT k \"GET /k?ip=2001:db8::1 HTTP/1.1\" 200 - 5 5 1 1 \"http://198.51.100.7:8080/\" \"ua 1.2.3\" ::ffff:203.0.113.9";
        let masked = mask_ips(line);
        for ip in ["192.0.2.1", "2001:db8::1", "198.51.100.7", "203.0.113.9"] {
            assert!(!masked.contains(ip), "{ip} left in {masked}");
        }
        assert!(masked.contains("05:06:35"), "{masked}");
        assert!(masked.contains("ua 1.2.3"), "{masked}");
        assert!(masked.contains(" <ip> - ID"), "{masked}");
    }
}
