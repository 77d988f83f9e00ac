//! Tests of the line parser: every shape of line seen in real logs, and mutated lines.
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

#[test]
fn the_user_agent_is_read_whole() {
    let agent = |text: &str| String::from_utf8_lossy(get(text).user_agent).into_owned();
    let with_tail = |tail: &str| {
        format!(
            "owner bucket [01/Jan/2020:05:06:35 +0000] 192.0.2.1 - ID REST.GET.OBJECT k \"GET /k HTTP/1.1\" 200 - 9 9 1 1 {tail}"
        )
    };
    let plain = line("REST.GET.OBJECT", "k", "\"GET /k HTTP/1.1\"", "200", "5");
    assert_eq!(agent(&plain), "curl/8.0");
    // spaces and parentheses, then the fields AWS adds after it
    let boto = with_tail(
        "\"-\" \"Boto3/1.28.0 md/Botocore#1.31.0 ua/2.0 os/linux#5.15 lang/python#3.11.4 cfg/retry-mode#legacy Botocore/1.31.0\" - abc= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader b.s3.amazonaws.com TLSv1.2 - -",
    );
    assert!(agent(&boto).starts_with("Boto3/1.28.0 md/"));
    assert!(agent(&boto).ends_with(" Botocore/1.31.0"));
    // a referrer with a URL, a CRLF line ending
    let referred = with_tail(
        "\"https://dandiarchive.org/dandiset/000003\" \"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/121.0\" -\r",
    );
    assert_eq!(
        agent(&referred),
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/121.0"
    );
    // quotes inside the agent do not cut it
    let quoted = with_tail("\"-\" \"say \"hi\" 1.0\" - host");
    assert_eq!(agent(&quoted), "say \"hi\" 1.0");
    // a bare dash referrer, an unquoted agent, an empty one, none at all
    assert_eq!(agent(&with_tail("- \"curl/8\" -")), "curl/8");
    assert_eq!(agent(&with_tail("\"-\" - -")), "-");
    assert_eq!(agent(&with_tail("\"-\" \"\" -")), "");
    assert_eq!(agent(&with_tail("\"-\"")), "");
    // the old format ending at the agent
    assert_eq!(
        agent(
            "owner bucket [06/Feb/2019:00:00:38 +0000] 192.0.2.3 - ID REST.GET.OBJECT k \"GET /k HTTP/1.1\" 200 - 3 3 1 1 \"-\" \"ua\" -"
        ),
        "ua"
    );
}
