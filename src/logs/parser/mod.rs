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
use memchr::{memchr, memchr_iter, memmem, memrchr};

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
    /// The user agent without its quotes (empty when the line has none).
    pub user_agent: &'a [u8],
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
        // the usual operation first: no need to look at its shape
        if before >= 2 && (token == GET_OBJECT || is_operation(token)) {
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
        user_agent: user_agent(line, after_uri.referrer_start),
    })
}

/// The user agent: the field after the referrer that starts at `referrer_start`. A quoted
/// referrer ends at the first `" "` (its closing quote, then the agent's opening one); the agent
/// ends at the line's last quote, since no later field is quoted, so quotes inside it do not
/// cut it. An unquoted agent (`-`) is one field; a line that ends first has none.
pub(crate) fn user_agent(line: &[u8], referrer_start: usize) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(rest) = line.get(referrer_start..).filter(|rest| !rest.is_empty()) else {
        return b"";
    };
    let after_referrer = if rest.starts_with(b"\"-\" ") {
        // the usual referrer, found without a search
        3
    } else if rest[0] == b'"' {
        let closing =
            memmem::find(&rest[1..], b"\" \"").or_else(|| memmem::find(&rest[1..], b"\" "));
        match closing {
            Some(offset) => offset + 2,
            None => return b"",
        }
    } else {
        1
    };
    let mut cursor = Cursor {
        line: rest,
        pos: after_referrer,
    };
    if cursor.at_end() {
        return b"";
    }
    if rest[cursor.pos] != b'"' {
        return cursor.token().unwrap_or_default();
    }
    let start = cursor.pos + 1;
    let end = memrchr(b'"', &rest[start..]).map_or(rest.len(), |offset| start + offset);
    &rest[start..end]
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
mod tests;
