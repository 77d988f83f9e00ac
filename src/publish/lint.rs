//! The last check before anything is published: no file, path or commit message may hold an IP
//! address or a requester's id.
//!
//! An address is a standalone run of digits, hex, dots and colons that parses as an IPv4 or IPv6
//! address: one glued to a letter, digit or `_` (`model_v2.0.1.2.zip`, `file::1`) is part of a
//! name, not an address.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::LazyLock;

use super::PublishError;

/// The first standalone IP address in `text`, if any.
pub(super) fn find_address(text: &str) -> Option<&str> {
    static RUN: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"[0-9A-Fa-f:.]+").expect("valid regex"));
    let bytes = text.as_bytes();
    let glued = |i: usize| bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_';
    RUN.find_iter(text).find_map(|found| {
        // a sentence may end an address with a dot or a colon: those do not count
        let run = found.as_str().trim_end_matches(['.', ':']);
        let end = found.start() + run.len();
        let standalone = (found.start() == 0 || !glued(found.start() - 1))
            && (end == bytes.len() || !glued(end));
        (standalone && run.contains(['.', ':']) && run.parse::<IpAddr>().is_ok()).then_some(run)
    })
}

/// Refuses content that holds an IPv4 or IPv6 address or a requester index.
pub(super) fn check_private(
    file: &str,
    content: &str,
    requester_ids: &HashSet<String>,
) -> Result<(), PublishError> {
    for (index, line) in content.lines().enumerate() {
        let private = |what| PublishError::Private {
            file: file.to_owned(),
            line: index + 1,
            what,
        };
        if find_address(line).is_some() {
            return Err(private("an IP address"));
        }
        if holds_requester_id(line, requester_ids) {
            return Err(private("a requester index"));
        }
    }
    Ok(())
}

/// Whether a run of hex digits in `line` contains one of the requesters' ids (the first 16 hex
/// digits of their salted index, as `dump` shows them).
fn holds_requester_id(line: &str, requester_ids: &HashSet<String>) -> bool {
    line.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|run| run.len() >= 16)
        .any(|run| {
            let run = run.to_ascii_lowercase();
            (0..=run.len() - 16).any(|start| requester_ids.contains(&run[start..start + 16]))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_standalone_and_valid() {
        for address in [
            "8.8.8.8",
            "x 2001:db8::1 y",
            "from 192.0.2.4.",
            "ds/9.9.9.9/a",
            "::ffff:1.2.3.4\t",
        ] {
            assert!(find_address(address).is_some(), "{address}");
        }
        for harmless in [
            "model_v2.0.1.2.zip",
            "file::1",
            "v1.2.3",
            "10:00:00",
            "2024-03-01",
            "1.5\t2.25",
            "999.1.1.1",
            "a1.2.3.4",
            "1.2.3.4b",
        ] {
            assert_eq!(find_address(harmless), None, "{harmless}");
        }
    }

    #[test]
    fn addresses_and_requester_ids_are_refused_with_file_and_line() {
        let ids: HashSet<String> = ["93214cc95e4f6a8e".to_owned()].into();
        let ok = "region\tbytes_sent\nUS/California\t5\nAWS/us-east-1\t7\nblobs/0c9c5c57-4f1e-4a3a-9ad2-0f3b0d1e2a3b\t1\n";
        check_private("a.tsv", ok, &ids).unwrap();
        let cases = [
            ("x\t1\n192.0.2.4\t5\n", 2, "an IP address"),
            ("x\nregion 2001:db8::1 here\n", 2, "an IP address"),
            ("x\ny\nid93214CC95E4F6A8Eff\t3\n", 3, "a requester index"),
        ];
        for (content, line, what) in cases {
            match check_private("a.tsv", content, &ids) {
                Err(PublishError::Private {
                    file,
                    line: l,
                    what: w,
                }) => {
                    assert_eq!((file.as_str(), l, w), ("a.tsv", line, what));
                }
                other => panic!("{content}: {other:?}"),
            }
        }
    }
}
