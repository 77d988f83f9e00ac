//! Zero-copy parser for one line of an S3 server access log.
//!
//! The format is not escaped: the request URI, referrer and user agent are quoted but may contain
//! quotes and spaces themselves, fields may be separated by more than one space, and new fields are
//! appended at the end of the line. The parser reads only what a request needs and finds the end of
//! the request URI by the shape of what follows it (a closing quote, a 3-digit status, the error
//! code, four numeric-or-`-` fields and the opening quote of the referrer, or a bare `-` referrer
//! when no quoted one fits), so text inside the URI such as `HTTP/1.1" 200` cannot mislead it.
//! The operation is found by its shape (`REST.GET.OBJECT`: capitals, digits and `_` between dots),
//! so a requester with spaces in it (a `CloudFront` origin access identity) does not shift it. A
//! line it cannot read is rejected with a reason, never guessed at or skipped: only well-read
//! lines of other operations or statuses are skipped.

use chrono::NaiveDate;
use memchr::{memchr, memchr_iter};

/// The operation whose successful requests are counted.
pub(crate) const GET_OBJECT: &[u8] = b"REST.GET.OBJECT";

/// How many fields the requester may span (an origin access identity holds spaces).
const MAX_REQUESTER_FIELDS: usize = 8;

/// Larger byte counts are rejected: no object is bigger than 1 EiB, and bins keep three spare bits.
pub(crate) const MAX_BYTES_SENT: u64 = 1 << 60;

/// A successful (2xx) `REST.GET.OBJECT` request, borrowing from the line it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GetRequest<'a> {
    /// Seconds since the Unix epoch, UTC.
    pub time: i64,
    /// The remote IP exactly as written in the log.
    pub remote_ip: &'a [u8],
    /// The object key exactly as written in the log.
    pub key: &'a [u8],
    /// The HTTP status (200 to 299).
    pub status: u16,
    /// Bytes sent; `-` reads as 0.
    pub bytes_sent: u64,
}

/// What one log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A request that counts.
    Get(GetRequest<'a>),
    /// A line that is read correctly but does not count: another operation, a non-2xx GET, a blank line.
    Skipped,
    /// A line that could not be read.
    Rejected(Reject),
}

/// Why a line could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Reject {
    /// The line ends before the operation field.
    #[error("line ends before the operation field")]
    TooShort,
    /// No field where the operation should be is shaped like one (`REST.GET.OBJECT`).
    #[error("no operation field (like REST.GET.OBJECT) after the requester")]
    NoOperation,
    /// The time field is not `[DD/Mon/YYYY:hh:mm:ss +zzzz]` with a real date and time.
    #[error("time field is not [DD/Mon/YYYY:hh:mm:ss +zzzz] with a real date and time")]
    BadTime,
    /// A GET line without an object key.
    #[error("GET line ends before the object key")]
    NoKey,
    /// No closing quote followed by a status, error code, byte counts and referrer was found.
    #[error("end of the request URI not found (truncated or malformed line)")]
    NoRequestEnd,
    /// Bytes sent is neither a number nor `-`.
    #[error("bytes sent is not a number")]
    BadBytesSent,
}

/// The fields of a `REST.GET.OBJECT` line as the fast parser finds them, before any is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GetFields<'a> {
    /// The time field, without its brackets.
    pub time: &'a [u8],
    /// The remote IP as written.
    pub remote_ip: &'a [u8],
    /// The object key as written.
    pub key: &'a [u8],
    /// The fields after the request URI.
    pub after_uri: AfterUri<'a>,
}

/// Finds the fields of a GET line: `Ok(None)` for a blank line or another operation.
pub(crate) fn get_fields(line: &[u8]) -> Result<Option<GetFields<'_>>, Reject> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut cursor = Cursor { line, pos: 0 };
    if cursor.at_end() {
        return Ok(None);
    }
    // bucket owner, bucket
    cursor.token().ok_or(Reject::TooShort)?;
    cursor.token().ok_or(Reject::TooShort)?;
    let time = cursor.bracketed().ok_or(Reject::TooShort)?;
    let remote_ip = cursor.token().ok_or(Reject::TooShort)?;
    let operation = operation(&mut cursor)?;
    let key = cursor.token();
    if operation != GET_OBJECT {
        // every operation has a key or `-` after it: a line that ends here was cut
        return key.map(|_| None).ok_or(Reject::TooShort);
    }
    let key = key.ok_or(Reject::NoKey)?;
    let after_uri = find_request_end(line, cursor.pos).ok_or(Reject::NoRequestEnd)?;
    Ok(Some(GetFields {
        time,
        remote_ip,
        key,
        after_uri,
    }))
}

/// Moves past the requester (one field, or several when it holds spaces) and the request id, and
/// returns the operation: the first field after at least two others shaped like an operation.
fn operation<'a>(cursor: &mut Cursor<'a>) -> Result<&'a [u8], Reject> {
    let mut before = 0;
    loop {
        let token = cursor.token().ok_or(Reject::TooShort)?;
        if before >= 2 && is_operation(token) {
            return Ok(token);
        }
        before += 1;
        if before > MAX_REQUESTER_FIELDS + 1 {
            return Err(Reject::NoOperation);
        }
    }
}

/// Whether a field is shaped like an operation: two or more words of capitals, digits and `_`,
/// joined by dots (`REST.GET.OBJECT`, `S3.EXPIRE.OBJECT`, `BATCH.DELETE.OBJECT`).
fn is_operation(field: &[u8]) -> bool {
    let mut words = 0;
    for word in field.split(|&b| b == b'.') {
        if word.is_empty()
            || !word
                .iter()
                .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return false;
        }
        words += 1;
    }
    words >= 2
}

/// Reads one line (without its line ending; a trailing `\r` is ignored).
pub(crate) fn parse_line(line: &[u8]) -> Line<'_> {
    let fields = match get_fields(line) {
        Ok(Some(fields)) => fields,
        Ok(None) => return Line::Skipped,
        Err(reject) => return Line::Rejected(reject),
    };
    let after_uri = fields.after_uri;
    if after_uri.status / 100 != 2 {
        return Line::Skipped;
    }
    let Some(bytes_sent) = parse_count(after_uri.bytes_sent).filter(|&n| n <= MAX_BYTES_SENT)
    else {
        return Line::Rejected(Reject::BadBytesSent);
    };
    let Some(time) = parse_time(fields.time) else {
        return Line::Rejected(Reject::BadTime);
    };
    Line::Get(GetRequest {
        time,
        remote_ip: fields.remote_ip,
        key: fields.key,
        status: after_uri.status,
        bytes_sent,
    })
}

/// A position in a line, moving over space-separated fields.
struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_spaces(&mut self) {
        while self.pos < self.line.len() && self.line[self.pos] == b' ' {
            self.pos += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_spaces();
        self.pos >= self.line.len()
    }

    /// The next run of non-space bytes.
    fn token(&mut self) -> Option<&'a [u8]> {
        if self.at_end() {
            return None;
        }
        let start = self.pos;
        let end = memchr(b' ', &self.line[start..]).map_or(self.line.len(), |i| start + i);
        self.pos = end;
        Some(&self.line[start..end])
    }

    /// The next `[...]` field, brackets excluded.
    fn bracketed(&mut self) -> Option<&'a [u8]> {
        if self.at_end() || self.line[self.pos] != b'[' {
            return None;
        }
        let start = self.pos + 1;
        let end = start + memchr(b']', &self.line[start..])?;
        self.pos = end + 1;
        Some(&self.line[start..end])
    }
}

/// The fields right after the request URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AfterUri<'a> {
    /// The HTTP status.
    pub status: u16,
    /// Bytes sent as written (a number or `-`).
    pub bytes_sent: &'a [u8],
    /// Object size as written (a number or `-`).
    pub object_size: &'a [u8],
    /// Where the referrer starts: its opening quote, or a bare `-`.
    pub referrer_start: usize,
}

/// Finds the end of the request URI starting at `from` (just after the key) and reads the status
/// and bytes sent. The URI is normally quoted; an unquoted URI (`-`) is one token.
pub(crate) fn find_request_end(line: &[u8], from: usize) -> Option<AfterUri<'_>> {
    let mut cursor = Cursor { line, pos: from };
    if cursor.at_end() {
        return None;
    }
    if line[cursor.pos] != b'"' {
        cursor.token()?;
        return fields_after_uri(line, cursor.pos, Referrer::Quoted)
            .or_else(|| fields_after_uri(line, cursor.pos, Referrer::BareDash));
    }
    let open = cursor.pos;
    let ends = || memchr_iter(b'"', &line[open + 1..]).map(|offset| open + 1 + offset + 1);
    // a quoted referrer first, so that a bare `-` never wins over the usual shape
    ends()
        .find_map(|end| fields_after_uri(line, end, Referrer::Quoted))
        .or_else(|| ends().find_map(|end| fields_after_uri(line, end, Referrer::BareDash)))
}

/// How the referrer after the numeric fields may be written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Referrer {
    /// `"..."`, as AWS writes it.
    Quoted,
    /// `-` alone, as some writers do.
    BareDash,
}

/// Reads `status error-code bytes-sent object-size total-time turn-around` and the referrer's
/// start from `pos`; `None` unless every piece has the right shape.
fn fields_after_uri(line: &[u8], pos: usize, referrer: Referrer) -> Option<AfterUri<'_>> {
    let mut cursor = Cursor { line, pos };
    // at least one space must separate the closing quote from the status
    if line.get(pos) != Some(&b' ') {
        return None;
    }
    let status = cursor.token()?;
    if status.len() != 3 || !status.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let _error_code = cursor.token()?;
    let bytes_sent = cursor.token()?;
    let object_size = cursor.token()?;
    for field in [bytes_sent, object_size, cursor.token()?, cursor.token()?] {
        if field != b"-" && !field.iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    if cursor.at_end() {
        return None;
    }
    let starts_referrer = match referrer {
        Referrer::Quoted => line[cursor.pos] == b'"',
        Referrer::BareDash => {
            line[cursor.pos] == b'-' && line.get(cursor.pos + 1).is_none_or(|&b| b == b' ')
        }
    };
    if !starts_referrer {
        return None;
    }
    let status = status
        .iter()
        .fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0'));
    Some(AfterUri {
        status,
        bytes_sent,
        object_size,
        referrer_start: cursor.pos,
    })
}

/// `-` is 0; otherwise a decimal number that fits in a u64.
pub(crate) fn parse_count(field: &[u8]) -> Option<u64> {
    if field == b"-" {
        return Some(0);
    }
    parse_digits(field)
}

fn parse_digits(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 19 {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &digit| {
        digit
            .is_ascii_digit()
            .then(|| acc * 10 + u64::from(digit - b'0'))
    })
}

/// Parses `DD/Mon/YYYY:hh:mm:ss +zzzz` into Unix seconds. The date and the time of day must be
/// real (`30:58:50` is rejected, not rolled into the next day; a leap second `:60` is too); the
/// offset's hours and minutes are two digits each.
pub(crate) fn parse_time(field: &[u8]) -> Option<i64> {
    if field.len() != 26
        || field[2] != b'/'
        || field[6] != b'/'
        || field[11] != b':'
        || field[14] != b':'
        || field[17] != b':'
        || field[20] != b' '
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| parse_digits(&field[range]).map(|n| n as i64);
    let day = number(0..2)?;
    let month = month_number(&field[3..6])?;
    let year = number(7..11)?;
    let (hour, minute, second) = (number(12..14)?, number(15..17)?, number(18..20)?);
    let sign = match field[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset = sign * (number(22..24)? * 3600 + number(24..26)? * 60);
    if hour > 23 || minute > 59 || second > 59 || offset.abs() > 18 * 3600 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day as u32)?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(midnight + hour * 3600 + minute * 60 + second - offset)
}

fn month_number(name: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS
        .iter()
        .position(|month| month.as_slice() == name)
        .map(|index| index as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAIL: &str = "\"-\" \"curl/8.0\" - hostid= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader bucket.s3.amazonaws.com TLSv1.2 - -";

    fn line(op: &str, key: &str, uri: &str, status: &str, bytes: &str) -> String {
        format!(
            "owner bucket [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - REQID {op} {key} {uri} {status} - {bytes} 1000 5 4 {TAIL}"
        )
    }

    fn get(text: &str) -> GetRequest<'_> {
        match parse_line(text.as_bytes()) {
            Line::Get(request) => request,
            other => panic!("expected a GET, got {other:?} for {text}"),
        }
    }

    // 2020-01-01T05:06:35Z, computed independently: 18262 days * 86400 + 5*3600 + 6*60 + 35
    const T0: i64 = 18262 * 86400 + 5 * 3600 + 6 * 60 + 35;

    #[test]
    fn plain_get() {
        let text = line(
            "REST.GET.OBJECT",
            "ds/a.nii",
            "\"GET /ds/a.nii HTTP/1.1\"",
            "200",
            "512",
        );
        let request = get(&text);
        assert_eq!(request.time, T0);
        assert_eq!(request.remote_ip, b"192.0.2.1");
        assert_eq!(request.key, b"ds/a.nii");
        assert_eq!(request.status, 200);
        assert_eq!(request.bytes_sent, 512);
    }

    #[test]
    fn other_operations_and_statuses_are_skipped() {
        let head = line("REST.HEAD.OBJECT", "k", "\"HEAD /k HTTP/1.1\"", "200", "5");
        assert_eq!(parse_line(head.as_bytes()), Line::Skipped);
        for status in ["304", "403", "404", "500", "199"] {
            let text = line("REST.GET.OBJECT", "k", "\"GET /k HTTP/1.1\"", status, "5");
            assert_eq!(parse_line(text.as_bytes()), Line::Skipped, "{status}");
        }
        for status in ["201", "206", "299"] {
            let text = line("REST.GET.OBJECT", "k", "\"GET /k HTTP/1.1\"", status, "5");
            assert_eq!(get(&text).status.to_string(), status);
        }
        assert_eq!(parse_line(b""), Line::Skipped);
        assert_eq!(parse_line(b"   \r"), Line::Skipped);
    }

    #[test]
    fn dash_bytes_sent_is_zero() {
        let text = line("REST.GET.OBJECT", "k", "\"GET /k HTTP/1.1\"", "200", "-");
        assert_eq!(get(&text).bytes_sent, 0);
    }

    #[test]
    fn quotes_spaces_and_http_version_inside_the_uri() {
        let uri = "\"GET /k?x=\"a b\" HTTP/1.1\" 404 &y=HTTP/1.1\" 200 - 5 HTTP/1.0\"";
        let text = line("REST.GET.OBJECT", "k", uri, "206", "77");
        let request = get(&text);
        assert_eq!(request.status, 206);
        assert_eq!(request.bytes_sent, 77);
    }

    #[test]
    fn quotes_in_referrer_and_user_agent_do_not_matter() {
        let text = "owner bucket [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - ID REST.GET.OBJECT k \"GET /k HTTP/1.0\" 200 - 9 9 1 1 \"http://x/\"q\" 404 - 1 1 1 1 \"\" \"\"Mozilla \"quoted\" 5.0\" - host";
        let request = get(text);
        assert_eq!((request.status, request.bytes_sent), (200, 9));
    }

    #[test]
    fn double_spaces_crlf_and_ipv6() {
        let text = "owner bucket [01/Jan/2020:05:06:35 +0000] 2001:db8::7  arn:aws:iam::1:user/x  ID  REST.GET.OBJECT  k  \"GET /k HTTP/1.1\"  200  -  10  10  1  1  \"-\" \"-\" -\r";
        let request = get(text);
        assert_eq!(request.remote_ip, b"2001:db8::7");
        assert_eq!(request.key, b"k");
        assert_eq!(request.bytes_sent, 10);
    }

    #[test]
    fn truncated_lines_are_rejected() {
        let full = line(
            "REST.GET.OBJECT",
            "ds/k",
            "\"GET /ds/k HTTP/1.1\"",
            "200",
            "512",
        );
        // every cut before the referrer's opening quote must be rejected, never read as a request
        // nor skipped as another operation (a cut inside `REST.GET.OBJECT` still looks like one)
        let referrer = full.find("\"-\"").unwrap();
        for cut in 1..=referrer {
            let text = &full.as_bytes()[..cut];
            match parse_line(text) {
                Line::Rejected(_) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_line(&full.as_bytes()[..=referrer]),
            Line::Get(_)
        ));
    }

    #[test]
    fn non_utf8_bytes_are_fine() {
        let mut text = line(
            "REST.GET.OBJECT",
            "k\u{e9}",
            "\"GET /k HTTP/1.1\"",
            "200",
            "3",
        )
        .into_bytes();
        text.extend_from_slice(b" \xff\xfe");
        let Line::Get(request) = parse_line(&text) else {
            panic!()
        };
        assert_eq!(request.key, "k\u{e9}".as_bytes());
    }

    #[test]
    fn unquoted_dash_request_uri() {
        let text = line("REST.GET.OBJECT", "k", "-", "200", "8");
        assert_eq!(get(&text).bytes_sent, 8);
    }

    #[test]
    fn old_format_with_eighteen_fields() {
        let text = "owner bucket [06/Feb/2019:00:00:38 +0000] 192.0.2.3 - ID REST.GET.OBJECT k \"GET /k HTTP/1.1\" 200 - 3 3 1 1 \"-\" \"ua\" -";
        assert_eq!(get(text).bytes_sent, 3);
    }

    #[test]
    fn bad_fields_are_rejected() {
        let text = line("REST.GET.OBJECT", "k", "\"GET /k HTTP/1.1\"", "200", "12x");
        assert_eq!(
            parse_line(text.as_bytes()),
            Line::Rejected(Reject::NoRequestEnd)
        );
        let text = text
            .replace(
                "[01/Jan/2020:05:06:35 +0000]",
                "[01/Foo/2020:05:06:35 +0000]",
            )
            .replace("12x", "12");
        assert_eq!(parse_line(text.as_bytes()), Line::Rejected(Reject::BadTime));
        assert_eq!(parse_line(b"garbage"), Line::Rejected(Reject::TooShort));
        let huge = line(
            "REST.GET.OBJECT",
            "k",
            "\"GET /k HTTP/1.1\"",
            "200",
            "99999999999999999999",
        );
        assert_eq!(
            parse_line(huge.as_bytes()),
            Line::Rejected(Reject::BadBytesSent)
        );
    }

    #[test]
    fn mutated_lines_never_panic_and_never_yield_impossible_values() {
        // deterministic pseudo-random mutations of a valid line: cuts, byte flips, inserted
        // quotes, spaces and digits
        let base = line(
            "REST.GET.OBJECT",
            "ds/k",
            "\"GET /ds/k?a=\"b c\" HTTP/1.1\"",
            "206",
            "512",
        );
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..20_000 {
            let mut bytes = base.clone().into_bytes();
            for _ in 0..=next(4) {
                let at = next(bytes.len());
                match next(5) {
                    0 => bytes.truncate(at),
                    1 => bytes[at] = next(256) as u8,
                    2 => bytes.insert(at, b'"'),
                    3 => bytes.insert(at, b' '),
                    _ => bytes.insert(at, b'0' + next(10) as u8),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            if let Line::Get(request) = parse_line(&bytes) {
                assert!((200..300).contains(&request.status));
                assert!(request.bytes_sent <= MAX_BYTES_SENT);
            }
        }
    }

    #[test]
    fn a_requester_with_spaces_does_not_shift_the_operation() {
        let oai = "owner bucket [01/Jan/2020:05:06:35 +0000] 192.0.2.1 \
            arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2EXAMPLE 3E57427F3EXAMPLE \
            REST.GET.OBJECT ds/a.nii \"GET /ds/a.nii HTTP/1.1\" 200 - 512 1000 5 4 \"-\" \"Amazon CloudFront\" -";
        let request = get(oai);
        assert_eq!(
            (request.key, request.bytes_sent, request.time),
            (&b"ds/a.nii"[..], 512, T0)
        );
        assert_eq!(request.remote_ip, b"192.0.2.1");
        // the same with another operation is a well-read line: skipped
        let head = oai.replace("REST.GET.OBJECT", "REST.HEAD.OBJECT");
        assert_eq!(parse_line(head.as_bytes()), Line::Skipped);
    }

    #[test]
    fn a_field_where_the_operation_should_be_that_is_no_operation_is_rejected() {
        let text = "owner bucket [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - REQID rest.get.object k \"GET /k HTTP/1.1\" 200 - 5 5 1 1 \"-\" \"-\" -";
        assert_eq!(
            parse_line(text.as_bytes()),
            Line::Rejected(Reject::NoOperation)
        );
        // a lone operation with nothing after it was cut
        let cut = "owner bucket [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - REQID REST.HEAD.OBJECT";
        assert_eq!(parse_line(cut.as_bytes()), Line::Rejected(Reject::TooShort));
        for operation in [
            "REST.GET.OBJECT",
            "S3.EXPIRE.OBJECT",
            "BATCH.DELETE.OBJECT",
            "A.B",
        ] {
            assert!(is_operation(operation.as_bytes()), "{operation}");
        }
        for not in [
            "REST",
            "REST..GET",
            ".GET",
            "GET.",
            "rest.get",
            "3E57427F3EXAMPLE",
            "-",
        ] {
            assert!(!is_operation(not.as_bytes()), "{not}");
        }
    }

    #[test]
    fn a_bare_dash_referrer_is_read_but_never_wins_over_a_quoted_one() {
        let bare = "owner bucket [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - REQID REST.GET.OBJECT k \"GET /k HTTP/1.1\" 206 - 77 1000 5 4 - \"curl/8\" -";
        let request = get(bare);
        assert_eq!((request.status, request.bytes_sent), (206, 77));
        // a URI holding a fake end with a bare dash: the real, quoted end wins
        let tricky = "owner bucket [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - REQID REST.GET.OBJECT k \"GET /k?x=\" 404 - 1 1 1 1 - HTTP/1.1\" 200 - 9 9 1 1 \"-\" \"-\" -";
        assert_eq!((get(tricky).status, get(tricky).bytes_sent), (200, 9));
        // the bare dash must be a whole field
        let glued = bare.replace(" 4 - \"curl", " 4 -x \"curl");
        assert_eq!(
            parse_line(glued.as_bytes()),
            Line::Rejected(Reject::NoRequestEnd)
        );
    }

    #[test]
    fn time_parsing() {
        assert_eq!(parse_time(b"01/Jan/2020:05:06:35 +0000"), Some(T0));
        assert_eq!(parse_time(b"01/Jan/2020:06:06:35 +0100"), Some(T0));
        assert_eq!(parse_time(b"31/Dec/1969:23:59:59 +0000"), Some(-1));
        // 2024-02-29 exists, 2023-02-29 does not
        assert!(parse_time(b"29/Feb/2024:00:00:00 +0000").is_some());
        assert_eq!(parse_time(b"29/Feb/2023:00:00:00 +0000"), None);
        // out-of-range clock values are rejected, not rolled into a later day
        for bad in [
            "01/Jan/2020:50:30:10 +0000",
            "01/Jan/2020:30:58:50 +0000",
            "01/Jan/2020:23:60:00 +0000",
            "01/Jan/2020:23:59:60 +0000",
            "01/Jan/2020:23:59:59 +9900",
        ] {
            assert_eq!(parse_time(bad.as_bytes()), None, "{bad}");
        }
        assert!(parse_time(b"01/Jan/2020:23:59:59 -1200").is_some());
        assert_eq!(parse_time(b"1/Jan/2020:05:06:35 +0000"), None);
    }
}
