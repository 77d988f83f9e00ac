//! A rejected or suspicious log line as it may be shown to a user: valid UTF-8, shortened, with
//! every IP address masked and control characters written `%XX` (no terminal escape, no tab).

use crate::output::escape_controls;
use crate::privacy;

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
    let mut masked = escape_controls(&privacy::mask_ips(&short)).into_owned();
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
        let long = vec![b'x'; 500];
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }
}
