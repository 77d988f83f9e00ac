//! Requesters left out at summary time (`--exclude-ips-file`): an archive drops its own servers
//! from figures already extracted. The addresses are read, turned into their salted indexes at
//! once, and only those are kept: no raw IP reaches the store, the state or a message.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::bins::{self, BinRequest};
use crate::clients::ClientClass;
use crate::privacy::Salt;
use crate::store::{RequesterId, Store};

/// The salted indexes of the addresses to leave out.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct ExcludedRequesters {
    indexes: Vec<[u8; 32]>,
    /// The salt's fingerprints (current and legacy), to check it is the store's.
    salt: (String, String),
}

impl std::fmt::Debug for ExcludedRequesters {
    /// How many, and a digest (what the figures depend on), never the indexes themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.indexes.is_empty() {
            return f.write_str("no exclusion");
        }
        let mut digest = Sha256::new();
        for index in &self.indexes {
            digest.update(index);
        }
        write!(
            f,
            "{} excluded ({})",
            self.indexes.len(),
            hex::encode(&digest.finalize()[..8])
        )
    }
}

impl ExcludedRequesters {
    /// Reads a file of addresses, one per line (`#` starts a comment, blank lines are skipped),
    /// and keeps their salted indexes. A line that is not an address is an error naming the line
    /// number only (it may be an address mistyped).
    pub(crate) fn from_file(path: &Path, salt: &Salt) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
        let mut indexes = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let address = line.split('#').next().unwrap_or_default().trim();
            if address.is_empty() {
                continue;
            }
            let ip: IpAddr = address.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{}, line {}: not an IP address (list single addresses: ranges cannot be matched after extraction, use --exclude-ip when extracting)",
                    path.display(),
                    number + 1
                )
            })?;
            // the canonical text, as extraction hashed it
            indexes.push(salt.requester_index(ip.to_string().as_bytes()));
        }
        indexes.sort_unstable();
        indexes.dedup();
        Ok(Self {
            indexes,
            salt: (salt.fingerprint(), salt.fingerprint_v1()),
        })
    }

    /// The store's ids of the excluded requesters it has seen. The salt must be the store's: with
    /// another, no address would match and nothing would be left out.
    pub(crate) fn resolve(&self, store: &Store) -> anyhow::Result<HashSet<RequesterId>> {
        if self.indexes.is_empty() {
            return Ok(HashSet::new());
        }
        store.check_salt(&self.salt.0, &self.salt.1)?;
        Ok(store.requesters_with_indexes(&self.indexes)?)
    }

    /// [`Self::resolve`] as the numbers bins hold.
    pub(crate) fn resolve_numbers(&self, store: &Store) -> anyhow::Result<HashSet<u64>> {
        Ok(self.resolve(store)?.into_iter().map(|id| id.0).collect())
    }
}

/// Which extracted requests count: not those of excluded requesters, nor with
/// `--exclude-robots` those of robots.
pub(crate) struct Counted {
    requesters: HashSet<u64>,
    /// By client id: a robot left out.
    robots: Vec<bool>,
}

impl Counted {
    /// The filter of a grouping's exclusions, resolved in the store.
    pub(crate) fn of(grouping: &super::grouping::Grouping, store: &Store) -> anyhow::Result<Self> {
        let robots = if grouping.exclude_robots {
            let clients = store.clients()?;
            clients
                .iter()
                .map(|client| client.class == ClientClass::Robot)
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            requesters: grouping.excluded.resolve_numbers(store)?,
            robots,
        })
    }

    /// Decodes a bin of the object `key` into `out` (emptied first), keeping the requests that
    /// count.
    pub(crate) fn decode(
        &self,
        key: &[u8],
        data: &[u8],
        out: &mut Vec<BinRequest>,
    ) -> anyhow::Result<()> {
        out.clear();
        bins::decode_object(key, data, out)?;
        out.retain(|request| self.counts(request));
        Ok(())
    }

    /// Whether a request counts.
    fn counts(&self, request: &BinRequest) -> bool {
        !self.requesters.contains(&request.requester)
            && !self
                .robots
                .get(request.client as usize)
                .copied()
                .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kept_as_salted_indexes_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("servers.txt");
        std::fs::write(
            &path,
            "# our mirrors\n8.8.8.8\n\n2001:4860:4860:0:0:0:0:8888  # written long\n8.8.8.8\n",
        )
        .unwrap();
        let salt = Salt::from_key(vec![7; 32]);
        let excluded = ExcludedRequesters::from_file(&path, &salt).unwrap();
        // the duplicate counted once; the long IPv6 form hashed as its canonical text
        let mut expected = vec![
            salt.requester_index(b"8.8.8.8"),
            salt.requester_index(b"2001:4860:4860::8888"),
        ];
        expected.sort_unstable();
        assert_eq!(excluded.indexes, expected);
        let shown = format!("{excluded:?}");
        assert!(shown.starts_with("2 excluded"), "{shown}");
        assert!(!shown.contains("8.8.8.8"));
        std::fs::write(&path, "8.8.8.8\n10.0.0.0/8\n").unwrap();
        let error = ExcludedRequesters::from_file(&path, &salt)
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("10.0.0.0"), "{error}");
    }
}
