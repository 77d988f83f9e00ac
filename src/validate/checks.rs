//! The checks of the log format: what each checks, and how one line is checked. Each reads the
//! line independently of the fast parser where it can, so that it can catch the parser's mistakes.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::bytes::Regex;

use crate::logs::parser::{self, GET_OBJECT};

/// One check of the log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The request URI of a GET line ends at exactly one closing quote followed by a 3-digit status.
    RequestLine,
    /// The status the fast parser reads equals the one a strict parse from the end of the line finds.
    Status,
    /// The remote IP of a GET line parses as IPv4 or IPv6.
    RemoteIp,
    /// The time of a GET line parses and lies within a day of the time in the file's name.
    Timestamp,
    /// A status-200 GET sends the whole object (bytes sent not smaller than the object size).
    Downloads,
    /// The line has a number of fields the format defines (18 to 27).
    Fields,
}

impl Check {
    /// Every check, in the order reported.
    pub const ALL: [Check; 6] = [
        Check::RequestLine,
        Check::Status,
        Check::RemoteIp,
        Check::Timestamp,
        Check::Downloads,
        Check::Fields,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::RequestLine => "request-line",
            Check::Status => "status",
            Check::RemoteIp => "remote-ip",
            Check::Timestamp => "timestamp",
            Check::Downloads => "downloads",
            Check::Fields => "fields",
        }
    }

    /// Its version: raised whenever what it checks changes, so files are validated again.
    #[allow(
        clippy::unused_self,
        reason = "every check is at version 1; raising one adds a match on self"
    )]
    pub fn version(self) -> u32 {
        1
    }

    /// The check of a name (for `--check`).
    pub fn from_name(name: &str) -> Result<Check, String> {
        Check::ALL
            .into_iter()
            .find(|check| check.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
                format!("unknown check `{name}` (one of {})", names.join(", "))
            })
    }
}

/// The operation and remote IP of any line, read independently of the fast parser.
static HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)^\S+ +\S+ +\[[^\]]*\] +(?P<ip>\S+) +\S+ +\S+ +(?P<op>\S+) +\S+")
        .expect("valid regex")
});

/// A strict parse of the whole line from its end: trailing unquoted fields, the user agent and
/// referrer (quoted, with no quote followed by a space inside), four numeric-or-`-` fields, the
/// error code, the status and the quote closing the request URI. At most one place in a line can
/// start such a tail (another would put a quote and a space inside the referrer or user agent),
/// so the search need not be anchored at the start, which keeps it fast.
static STRICT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?-u)" +(?P<status>\d{3}) +\S+ +(?:\d+|-) +(?:\d+|-) +(?:\d+|-) +(?:\d+|-) +"(?:[^"]|"[^ ])*" +"(?:[^"]|"[^ ])*"(?: +[^" ]+)* *$"#,
    )
    .expect("valid regex")
});

/// A closing quote followed by a 3-digit status.
static URI_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?-u)" +\d{3} "#).expect("valid regex"));

/// The time in a log file's name.
pub(super) fn time_of_name(name: &str) -> Option<i64> {
    static NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"(\d{4})-(\d{1,2})-(\d{1,2})-(\d{1,2})-(\d{1,2})-(\d{1,2})-[0-9A-Za-z]+(\.gz)?$",
        )
        .expect("valid regex")
    });
    let caps = NAME.captures(name)?;
    let number = |i: usize| caps[i].parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(caps[1].parse().ok()?, number(2)?, number(3)?)?;
    Some(
        date.and_hms_opt(number(4)?, number(5)?, number(6)?)?
            .and_utc()
            .timestamp(),
    )
}

/// The number of fields of a line: the fast parser's fields up to the referrer, then the quoted
/// and unquoted fields after it.
fn count_fields(line: &[u8]) -> Option<usize> {
    let head = HEAD.find(line)?;
    let after = parser::find_request_end(line, head.end())?;
    let mut count = 15;
    let mut pos = after.referrer_start;
    while pos < line.len() {
        if line[pos] == b' ' {
            pos += 1;
            continue;
        }
        count += 1;
        if line[pos] == b'"' {
            // a quoted field ends at a quote followed by a space, or at the end of the line
            let mut end = pos + 1;
            while end < line.len()
                && !(line[end] == b'"' && line.get(end + 1).is_none_or(|b| *b == b' '))
            {
                end += 1;
            }
            pos = end + 1;
        } else {
            pos += memchr::memchr(b' ', &line[pos..]).unwrap_or(line.len() - pos);
        }
    }
    Some(count)
}

/// The remote IP and operation of a line, read independently of the fast parser.
pub(super) fn head(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let caps = HEAD.captures(line)?;
    Some((caps.name("ip")?.as_bytes(), caps.name("op")?.as_bytes()))
}

/// The remote IP of a `REST.GET.OBJECT` line; `None` for other lines.
pub(super) fn get_ip<'a>(head: Option<(&'a [u8], &[u8])>) -> Option<&'a [u8]> {
    head.filter(|(_, op)| *op == GET_OBJECT).map(|(ip, _)| ip)
}

/// The checks of one line that do not hold, with what is wrong; `get_ip` is the line's remote IP
/// when it is a `REST.GET.OBJECT` line.
pub(super) fn check_line(
    line: &[u8],
    get_ip: Option<&[u8]>,
    checks: &[Check],
    file_time: Option<i64>,
) -> Vec<(Check, String)> {
    let mut found = Vec::new();
    let is_get = get_ip.is_some();
    let fields = if is_get {
        parser::get_fields(line).ok().flatten()
    } else {
        None
    };
    for &check in checks {
        let problem = match check {
            Check::Fields => match count_fields(line) {
                Some(n) if (18..=27).contains(&n) => None,
                Some(n) => Some(format!("{n} fields (the format has 18 to 27)")),
                None => Some("the fields cannot be told apart".to_owned()),
            },
            _ if !is_get => None,
            Check::RequestLine => match URI_END.find_iter(line).count() {
                1 => None,
                0 => Some("no closing quote followed by a status".to_owned()),
                n => Some(format!("{n} places could end the request URI")),
            },
            Check::Status => {
                let fast = fields.map(|f| f.after_uri.status);
                let strict = STRICT.captures(line).and_then(|caps| {
                    std::str::from_utf8(&caps["status"])
                        .ok()?
                        .parse::<u16>()
                        .ok()
                });
                (fast != strict).then(|| {
                    let show = |s: Option<u16>| s.map_or("none".to_owned(), |s| s.to_string());
                    format!(
                        "the fast parser reads status {}, a strict parse {}",
                        show(fast),
                        show(strict)
                    )
                })
            }
            Check::RemoteIp => {
                let parses = std::str::from_utf8(get_ip.unwrap_or_default())
                    .ok()
                    .is_some_and(|ip| ip.parse::<IpAddr>().is_ok());
                (!parses).then(|| "the remote IP is not an IPv4 or IPv6 address".to_owned())
            }
            Check::Timestamp => match fields.map(|f| parser::parse_time(f.time)) {
                Some(None) => Some("the time does not parse".to_owned()),
                Some(Some(time)) => file_time.and_then(|name_time| {
                    let hours = (time - name_time).abs() / 3600;
                    (hours >= 24).then(|| {
                        format!("the time is {hours} hours from the time in the file's name")
                    })
                }),
                None => None,
            },
            Check::Downloads => fields.and_then(|f| {
                let a = f.after_uri;
                let sent = parser::parse_count(a.bytes_sent).filter(|_| a.bytes_sent != b"-")?;
                let size = parser::parse_count(a.object_size).filter(|_| a.object_size != b"-")?;
                (a.status == 200 && sent < size)
                    .then(|| format!("a 200 sent {sent} bytes of an object of {size}"))
            }),
        };
        if let Some(what) = problem {
            found.push((check, what));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "o b [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - ID REST.GET.OBJECT k \"GET /k HTTP/1.1\" 200 - 5 5 1 1 \"-\" \"curl\" - host= SigV4 ECDHE AuthHeader b.s3.amazonaws.com TLSv1.2 - -";

    fn problems(line: &str) -> Vec<Check> {
        check_line(
            line.as_bytes(),
            get_ip(head(line.as_bytes())),
            &Check::ALL,
            time_of_name("2020-01-01-05-00-00-ABC"),
        )
        .into_iter()
        .map(|(check, _)| check)
        .collect()
    }

    #[test]
    fn a_good_line_passes_every_check() {
        assert_eq!(count_fields(GOOD.as_bytes()), Some(26));
        assert!(problems(GOOD).is_empty(), "{:?}", problems(GOOD));
    }

    #[test]
    fn each_check_catches_its_own_problem_only() {
        let cases = [
            (
                GOOD.replace("/k HTTP", "/k?q=\" 404 x HTTP"),
                Check::RequestLine,
            ),
            (
                GOOD.replace("\"-\" \"curl\"", "\"r\" \"x\" \"curl\""),
                Check::Status,
            ),
            (GOOD.replace("192.0.2.1", "-"), Check::RemoteIp),
            (GOOD.replace("01/Jan/2020", "03/Jan/2020"), Check::Timestamp),
            (GOOD.replace("200 - 5 5", "200 - 4 5"), Check::Downloads),
            (
                GOOD.replace(
                    " - host= SigV4 ECDHE AuthHeader b.s3.amazonaws.com TLSv1.2 - -",
                    "",
                ),
                Check::Fields,
            ),
        ];
        for (line, check) in cases {
            assert_eq!(problems(&line), vec![check], "{line}");
        }
    }

    #[test]
    fn names_of_checks() {
        for check in Check::ALL {
            assert_eq!(Check::from_name(check.name()), Ok(check));
        }
        assert!(
            Check::from_name("nope")
                .unwrap_err()
                .contains("request-line")
        );
    }
}
