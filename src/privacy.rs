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
/// Shortest accepted salt given as text through the environment: a shorter one could be guessed.
const MIN_SALT_LEN: usize = 32;
/// Rounds of PBKDF2 behind the stored fingerprint, so that checking one guessed salt against it
/// costs as much as this many hashes.
const FINGERPRINT_ROUNDS: u32 = 100_000;

/// Errors while loading or creating the salt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaltError {
    /// The environment variable is too short to be a secret.
    #[error(
        "{SALT_ENV} must be at least {MIN_SALT_LEN} characters, or 64 hex digits (recommended: `openssl rand -hex 32`)"
    )]
    TooShort,
    /// The key file does not hold 64 hex digits.
    #[error(
        "salt key file {0} is not 64 hex digits; restore it from a backup (a new salt would split every requester in two)"
    )]
    BadKeyFile(PathBuf),
    /// Reading or creating the key file failed.
    #[error("cannot read or create salt key file {path}")]
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
        f.write_str("Salt(<secret>)")
    }
}

impl Salt {
    /// A salt from its raw key bytes.
    pub(crate) fn from_key(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// The salt from `S3TALLY_SALT` if set (64 hex digits are decoded, any other text of at least
    /// 32 characters is used as it is), else from `salt.key` in `config_dir`, created on first use
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
                match Self::create_key_file(config_dir, &path).map_err(io)? {
                    Some(key) => Ok(Self::from_key(key)),
                    // another s3tally created it first: its key is the key
                    None => Self::load(config_dir),
                }
            }
            Err(error) => Err(io(error)),
        }
    }

    /// Writes a new random key to `path` atomically: whole, under a temporary name, then linked
    /// into place, which fails if another process got there first (`None`: read theirs).
    fn create_key_file(config_dir: &Path, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        let mut key = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        fs::create_dir_all(config_dir)?;
        let temporary = config_dir.join(format!(
            ".{SALT_FILE}.{}.{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        let written = writeln!(file, "{}", hex::encode(&key)).and_then(|()| file.sync_all());
        drop(file);
        let linked = written.and_then(|()| fs::hard_link(&temporary, path));
        let _ = fs::remove_file(&temporary);
        match linked {
            Ok(()) => Ok(Some(key)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The fingerprint kept in the store to notice a changed salt: an HMAC of a fixed message
    /// under a key derived from the salt by PBKDF2 (100,000 rounds), so that whoever reads the
    /// store cannot cheaply test guesses of the salt against it. Written `v2:` and 16 hex digits.
    pub(crate) fn fingerprint(&self) -> String {
        let mut derived = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            &self.key,
            b"s3tally salt fingerprint v2",
            FINGERPRINT_ROUNDS,
            &mut derived,
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&derived).expect("HMAC takes any key length");
        mac.update(b"fingerprint");
        format!("v2:{}", hex::encode(&mac.finalize().into_bytes()[..8]))
    }

    /// The fingerprint stores written before version 2 kept: a plain hash of the salt, which let
    /// a reader of the store test guesses quickly. Only to recognise (and replace) it.
    pub(crate) fn fingerprint_v1(&self) -> String {
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

/// What a remote service said, as it may be shown: every secret given (a token, a key) and
/// anything shaped like a credential (`Bearer ...`, `token=...`, `key=...`) replaced by `<secret>`,
/// then every address masked and control characters escaped, then shortened to `max_chars`.
pub(crate) fn redact(text: &str, secrets: &[&str], max_chars: usize) -> String {
    static CREDENTIAL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"(?i)(bearer\s+|(?:token|key|password|secret|authorization)[\x22']?\s*[:=]\s*[\x22']?)[^\s\x22',&;}]+",
        )
        .expect("valid regex")
    });
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, "<secret>");
    }
    let text = CREDENTIAL.replace_all(&text, "${1}<secret>");
    let masked = crate::output::escape_controls(&mask_ips(&text)).into_owned();
    masked.chars().take(max_chars).collect()
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
        // computed independently with Python's hashlib.pbkdf2_hmac and hmac
        assert_eq!(a.fingerprint(), "v2:e7c1381c35d92c5f");
        assert_ne!(a.fingerprint_v1(), a.fingerprint());
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
    fn secrets_and_credentials_are_redacted_before_shortening() {
        let said = "Unauthorized: Authorization: Bearer s3cr3t-token-123 sent from 8.8.8.8, key=abcdef, retry";
        let shown = redact(said, &["s3cr3t-token-123"], 200);
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("abcdef"),
            "{shown}"
        );
        assert!(!shown.contains("8.8.8.8"), "{shown}");
        assert!(shown.contains("key=<secret>"), "{shown}");
        assert_eq!(
            redact("use Bearer abc123xyz now", &[], 200),
            "use Bearer <secret> now"
        );
        // a secret cut by the length limit would leave its start: redaction comes first
        let long = format!("{}token abcdefgh", "x".repeat(195));
        assert!(!redact(&long, &["abcdefgh"], 200).contains("abcd"));
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
