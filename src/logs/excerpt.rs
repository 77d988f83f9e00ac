//! A rejected or suspicious log line as it may be shown to a user: valid UTF-8, shortened, with
//! every IP address masked and control characters written `%XX` (no terminal escape, no tab).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use crate::output::escape_controls;
use crate::privacy;

/// Masks what may be a piece of an address whose separators were damaged (`203.0.1"13.77`):
/// every run of hex digits, dots and colons holding a separator and at least four digits, but
/// a log time (`2020:05:06:35`, `05:06:35`).
fn mask_damaged(text: &str) -> Cow<'_, str> {
    static RUN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[0-9A-Fa-f.:]*[.:][0-9A-Fa-f.:]*").expect("valid regex"));
    static TIME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(\d{4}:)?\d\d:\d\d:\d\d$").expect("valid regex"));
    RUN.replace_all(text, |caps: &regex::Captures<'_>| {
        let run = &caps[0];
        let digits = run.bytes().filter(u8::is_ascii_digit).count();
        if digits >= 4 && !TIME.is_match(run) {
            "<ip>".to_owned()
        } else {
            run.to_owned()
        }
    })
}

/// Longest excerpt of a line kept, in characters.
const EXCERPT_CHARS: usize = 400;

/// A line as it may be shown: valid UTF-8, IPs masked, shortened. The remote IP field (the one
/// after the time) is masked whatever it holds, even a truncated address.
pub(crate) fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let short: String = text.chars().take(EXCERPT_CHARS).collect();
    let short = match short.split_once("] ") {
        Some((head, rest)) => {
            let rest = rest.trim_start_matches(' ');
            let field_end = rest.find(' ').unwrap_or(rest.len());
            format!("{head}] <ip>{}", &rest[field_end..])
        }
        None => short,
    };
    let masked = privacy::mask_ips(&short);
    let mut masked = escape_controls(&mask_damaged(&masked)).into_owned();
    if text.chars().count() > EXCERPT_CHARS {
        masked.push('…');
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_ip_field_is_masked_even_truncated() {
        assert_eq!(excerpt(b"garbage 192.0.2.9"), "garbage <ip>");
        assert_eq!(
            excerpt(b"o b [01/Jan/2020:00:00:00 +0000] 2001:db8:18f4"),
            "o b [01/Jan/2020:00:00:00 +0000] <ip>"
        );
        // addresses whose separators were damaged are masked too; times stay readable
        let damaged = excerpt(
            b"o b [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - R REST.GET.OBJECT k \"GET /k?from=203.0.1\"13.77 HTTP/1.1\"",
        );
        assert!(
            !damaged.contains("203.0.1") && !damaged.contains("13.77"),
            "{damaged}"
        );
        assert!(
            damaged.contains("2020:05:06:35") && damaged.contains("REST.GET.OBJECT"),
            "{damaged}"
        );
        let long = vec![b'x'; 500];
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }
}
