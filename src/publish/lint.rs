//! The last check before anything is published: no file may hold an IP address or a
//! requester's id.

use std::collections::HashSet;

use super::PublishError;
use crate::privacy::mask_ips;

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
        if mask_ips(line) != line {
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
