//! `s3tally bench generate`: realistic synthetic S3 access logs for benchmarks.
//!
//! One file per hour, in both the flat and the date-partitioned layout; sessions of one requester
//! on one object (downloads, streams of range requests, other operations) with skewed popularity
//! of objects and requesters; IPv4 and IPv6 documentation
//! addresses only; and about 1% of nasty lines (quotes and spaces in URIs, referrers and user
//! agents, `HTTP/1.1` in query strings, two spaces between fields, HTTP/1.0, non-UTF-8 bytes, the
//! 18-field format, CRLF, blank lines, truncated lines and the occasional 100 KB line).

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to generate.
#[derive(Debug, Clone)]
pub(crate) struct GenerateOptions {
    /// Where to write the logs.
    pub dir: PathBuf,
    /// Approximate total size in MB (10^6 bytes).
    pub size_mb: u64,
    /// Seed: the same seed gives the same logs.
    pub seed: u64,
    /// Largest size of one hourly file in bytes.
    pub file_bytes: u64,
    /// Distinct objects [default: 40 per MB, from 500 to 400,000].
    pub objects: Option<usize>,
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GenerateReport {
    /// Log files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Lines written.
    pub lines: u64,
}

/// 2024-01-01T00:00:00Z.
const START: i64 = 1_704_067_200;

struct Population {
    keys: Vec<String>,
    sizes: Vec<u64>,
    ips: Vec<String>,
    /// Each requester's usual user agent (by the index of its IP).
    agents: Vec<String>,
}

fn skewed(rng: &mut StdRng, len: usize) -> usize {
    // popularity falls off like a power law: a few objects and requesters get most requests
    let u: f64 = rng.r#gen();
    ((u.powf(3.0) * len as f64) as usize).min(len - 1)
}

fn hex(rng: &mut StdRng, digits: usize) -> String {
    (0..digits)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn uuid(rng: &mut StdRng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 12)
    )
}

fn population(rng: &mut StdRng, size_mb: u64, objects: Option<usize>) -> Population {
    let objects = objects
        .unwrap_or((size_mb * 40).clamp(500, 400_000) as usize)
        .max(1);
    let mut keys = Vec::with_capacity(objects);
    for index in 0..objects {
        let key = match rng.gen_range(0..100) {
            0..50 => format!("blobs/{}/{}/{}", hex(rng, 3), hex(rng, 3), uuid(rng)),
            50..80 => format!(
                "ds{:06}/sub-{:02}/ses-{}/anat/sub-{:02}_ses-{}_run-{}_T1w.nii.gz",
                rng.gen_range(0..2000),
                index % 60,
                rng.gen_range(1..4),
                index % 60,
                rng.gen_range(1..4),
                rng.gen_range(1..9)
            ),
            80..95 => format!(
                "zarr/{}/0/{}/{}",
                uuid(rng),
                rng.gen_range(0..40),
                rng.gen_range(0..40)
            ),
            _ => format!(
                "ds{:06}/derivatives/caf%C3%A9%20notes+{}/file%27s%20copy.json",
                rng.gen_range(0..2000),
                index
            ),
        };
        keys.push(key);
    }
    let sizes = (0..objects)
        .map(|_| 10f64.powf(rng.gen_range(3.0..10.0)) as u64)
        .collect();
    let requesters = (size_mb * 8).clamp(200, 100_000) as usize;
    let ips = (0..requesters)
        .map(|_| {
            if rng.gen_bool(0.7) {
                let net = ["192.0.2", "198.51.100", "203.0.113"][rng.gen_range(0..3)];
                format!("{net}.{}", rng.gen_range(0..256))
            } else {
                format!(
                    "2001:db8:{:x}:{:x}::{:x}",
                    rng.gen_range(0..0x10000),
                    rng.gen_range(0..0x10000),
                    rng.gen_range(1..0x10000)
                )
            }
        })
        .collect();
    let agents = (0..requesters).map(|_| user_agent(rng)).collect();
    Population {
        keys,
        sizes,
        ips,
        agents,
    }
}

/// A user agent as S3 logs show them: the tools of science with their many versions (boto3 and
/// the AWS CLI write Python and OS versions too, so an archive sees thousands of distinct
/// strings), browsers, crawlers, a few scripts and empty agents; weighted roughly as a public
/// data archive sees them.
fn user_agent(rng: &mut StdRng) -> String {
    let mut v = |low: u32, high: u32| rng.gen_range(low..=high);
    let python = format!("{}.{}", 3, v(8, 12));
    let linux = format!("{}.{}.0-{}-aws", v(4, 6), v(0, 15), v(1000, 1100));
    let botocore = format!("1.{}.{}", v(29, 35), v(0, 60));
    match v(0, 99) {
        0..15 => format!(
            "aws-cli/2.{}.{} Python/{python}.{} Linux/{linux} exe/x86_64.ubuntu.22 prompt/off command/s3.cp",
            v(9, 22),
            v(0, 30),
            v(0, 9)
        ),
        15..30 => format!(
            "Boto3/1.{}.{} md/Botocore#{botocore} ua/2.0 os/linux#{linux} md/arch#x86_64 lang/python#{python}.{} md/pyimpl#CPython cfg/retry-mode#legacy Botocore/{botocore}",
            v(26, 35),
            v(0, 60),
            v(0, 9)
        ),
        30..38 => format!(
            "aiobotocore/2.{}.{} Python/{python}.{} Linux/{linux} Botocore/{botocore}",
            v(4, 13),
            v(0, 5),
            v(0, 9)
        ),
        38..43 => format!("rclone/v1.{}.{}", v(55, 68), v(0, 3)),
        43..45 => format!("aws-sdk-go/1.{}.{} (go1.{}; linux; amd64) S3Manager", v(40, 55), v(0, 300), v(19, 23)),
        45..53 => format!("git-annex/10.2023{:02}{:02}-g{}", v(1, 12), v(1, 28), hex_of(v(0, u32::MAX))),
        53..56 => format!("datalad/0.{}.{}", v(17, 20), v(0, 9)),
        56..66 => format!("dandi/0.{}.{} requests/2.{}.0 CPython/{python}.{}", v(50, 66), v(0, 3), v(28, 32), v(0, 9)),
        66..69 => format!("duckdb/v1.{}.{}(linux_amd64) python {}", v(0, 4), v(0, 3), hex_of(v(0, u32::MAX))),
        69..75 => format!("curl/{}.{}.{}", v(7, 8), v(0, 88), v(0, 3)),
        75..78 => format!("Wget/1.{}.{} (linux-gnu)", v(20, 24), v(0, 3)),
        78..81 => format!("python-requests/2.{}.{}", v(25, 32), v(0, 3)),
        81..91 => match v(0, 3) {
            0 => format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{}.0.0.0 Safari/537.36", v(110, 131)),
            1 => format!("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{} Safari/605.1.15", v(0, 6)),
            2 => format!("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{0}.0) Gecko/20100101 Firefox/{0}.0", v(110, 133)),
            _ => format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{0}.0.0.0 Safari/537.36 Edg/{0}.0.0.0", v(110, 131)),
        },
        91..96 => [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            "CCBot/2.0 (https://commoncrawl.org/faq/)",
        ][v(0, 4) as usize]
            .to_owned(),
        96..98 => format!("lab-sync/{}.{} (+mailto:data@example.org)", v(0, 3), v(0, 9)),
        _ => "-".to_owned(),
    }
}

fn hex_of(value: u32) -> String {
    format!("{value:08x}")
}

const OPERATIONS: [(&str, u32); 7] = [
    ("REST.GET.OBJECT", 70),
    ("REST.HEAD.OBJECT", 12),
    ("REST.GET.BUCKET", 6),
    ("REST.PUT.OBJECT", 4),
    ("REST.OPTIONS.PREFLIGHT", 3),
    ("BATCH.DELETE.OBJECT", 2),
    ("REST.GET.BUCKETPOLICY", 3),
];
const STATUSES: [(u16, u32); 7] = [
    (200, 35),
    (206, 45),
    (304, 8),
    (404, 6),
    (403, 4),
    (500, 1),
    (503, 1),
];
fn weighted<T: Copy>(rng: &mut StdRng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for &(value, weight) in table {
        if pick < weight {
            return value;
        }
        pick -= weight;
    }
    table[0].0
}

/// One request to write as a log line.
struct Request<'a> {
    time: i64,
    ip: &'a str,
    operation: &'a str,
    key: &'a str,
    size: u64,
    status: u16,
    /// `None` is written `-`.
    bytes_sent: Option<u64>,
    agent: &'a str,
}

/// Appends the lines of one session (with line endings) to `out`; returns how many.
///
/// A session is one requester and one object: a download (a 200, sometimes repeated), a stream of
/// range requests (206s of one chunk size, a second or two apart, as HDF5 and Zarr readers make),
/// or a single request of another kind.
fn write_session(rng: &mut StdRng, people: &Population, time: i64, out: &mut Vec<u8>) -> u64 {
    let object = skewed(rng, people.keys.len());
    let requester = skewed(rng, people.ips.len());
    // most requesters use one client; some now and then another (a browser beside a script)
    let agent = if rng.gen_range(0..10) == 0 {
        &people.agents[rng.gen_range(0..people.agents.len())]
    } else {
        &people.agents[requester]
    };
    let mut request = Request {
        time,
        ip: &people.ips[requester],
        agent,
        operation: weighted(rng, &OPERATIONS),
        key: &people.keys[object],
        size: people.sizes[object],
        status: 200,
        bytes_sent: None,
    };
    if request.operation != "REST.GET.OBJECT" {
        request.status = [200, 200, 200, 404, 403][rng.gen_range(0..5)];
        request.bytes_sent = Some(rng.gen_range(200..400));
        write_line(rng, &request, out);
        return 1;
    }
    request.status = weighted(rng, &STATUSES);
    match request.status {
        206 => {
            let chunk = [65_536, 1 << 20, 8 << 20, 10_000_000][rng.gen_range(0..4)];
            let count = rng.gen_range(1..=40u64).min(request.size.div_ceil(chunk));
            for index in 0..count {
                request.bytes_sent = Some(chunk.min(request.size - index * chunk));
                request.time += rng.gen_range(0..3);
                write_line(rng, &request, out);
            }
            count
        }
        200 => {
            let count = [1, 1, 1, 2, 3][rng.gen_range(0..5)];
            for _ in 0..count {
                request.bytes_sent = (!rng.gen_bool(0.02)).then_some(request.size);
                request.time += rng.gen_range(0..600);
                write_line(rng, &request, out);
            }
            count
        }
        304 => {
            write_line(rng, &request, out);
            1
        }
        _ => {
            request.bytes_sent = Some(rng.gen_range(200..400));
            write_line(rng, &request, out);
            1
        }
    }
}

/// Appends one line (with its line ending) to `out`, sometimes made nasty.
fn write_line(rng: &mut StdRng, request: &Request<'_>, out: &mut Vec<u8>) {
    let Request {
        time,
        ip,
        operation,
        key,
        size,
        status,
        ..
    } = *request;
    let bytes_sent = request
        .bytes_sent
        .map_or_else(|| "-".to_owned(), |n| n.to_string());
    let error = match status {
        200..300 | 304 => "-",
        403 => "AccessDenied",
        404 => "NoSuchKey",
        _ => "InternalError",
    };
    let date = chrono::DateTime::from_timestamp(time, 0).unwrap_or_default();
    let nasty = rng.gen_range(0..100) == 0;
    let kind = if nasty { rng.gen_range(0..10) } else { 99 };
    let method = if kind == 2 { "HTTP/1.0" } else { "HTTP/1.1" };
    let uri = match kind {
        0 => format!("GET /{key}?name=\"a b\"&next=HTTP/1.1\" 200 {method}"),
        1 => format!("GET /{key}?x-id=GetObject&v={method} {method}"),
        _ => format!("GET /{key} {method}"),
    };
    let separator = if kind == 3 { "  " } else { " " };
    let referrer = if kind == 4 {
        "https://example.org/view?f=\"x\" 200 - 1 2 3 4".to_owned()
    } else {
        "-".to_owned()
    };
    let agent = request.agent;
    let start = out.len();
    let _ = write!(
        out,
        "8787a3c41bf7ce0d54359d9348ad5b08e16bd5bb8ae5aa4e1508b435773a066e dandiarchive [{}] {ip}{separator}- {} {operation} {key} \"{uri}\" {status} {error} {bytes_sent} {size} {} {} \"{referrer}\" \"",
        date.format("%d/%b/%Y:%H:%M:%S +0000"),
        hex(rng, 16).to_uppercase(),
        rng.gen_range(1..900),
        rng.gen_range(1..200),
    );
    match kind {
        5 => {
            out.extend_from_slice(agent.as_bytes());
            out.extend_from_slice(b" \xff\xfe\xc3(");
        }
        6 if rng.gen_range(0..20) == 0 => out.extend(std::iter::repeat_n(b'A', 100_000)),
        _ => out.extend_from_slice(agent.as_bytes()),
    }
    out.push(b'"');
    if kind == 7 {
        out.extend_from_slice(b" -");
    } else {
        let _ = write!(
            out,
            " - {}= SigV4 TLS_AES_128_GCM_SHA256 AuthHeader dandiarchive.s3.amazonaws.com TLSv1.3 - -",
            hex(rng, 40)
        );
    }
    if kind == 8 {
        let cut = rng.gen_range(start + 1..out.len());
        out.truncate(cut);
    }
    if kind == 9 {
        out.extend_from_slice(b"\r\n\n");
    } else {
        out.push(b'\n');
    }
}

fn file_path(dir: &Path, hour: i64, rng: &mut StdRng) -> PathBuf {
    let time = chrono::DateTime::from_timestamp(START + hour * 3600, 0).unwrap_or_default();
    let name = format!(
        "{}-{}",
        time.format("%Y-%m-%d-%H-%M-%S"),
        hex(rng, 16).to_uppercase()
    );
    if hour % 2 == 0 {
        dir.join(name)
    } else {
        dir.join(time.format("%Y/%m/%d").to_string()).join(name)
    }
}

/// Writes about `size_mb` MB of logs under `dir`, one file per hour.
pub(crate) fn generate(options: &GenerateOptions) -> std::io::Result<GenerateReport> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let people = population(&mut rng, options.size_mb, options.objects);
    let total = options.size_mb.max(1) * 1_000_000;
    let files = total.div_ceil(options.file_bytes.max(1000));
    let per_file = total / files;
    let mut report = GenerateReport::default();
    let mut out = Vec::with_capacity(per_file as usize + 200_000);
    for hour in 0..files as i64 {
        out.clear();
        while (out.len() as u64) < per_file {
            let time = START + hour * 3600 + rng.gen_range(0..3600);
            report.lines += write_session(&mut rng, &people, time, &mut out);
        }
        let path = file_path(&options.dir, hour, &mut rng);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &out)?;
        report.files += 1;
        report.bytes += out.len() as u64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_aws_list_reads_and_lookups_match() {
        let report = ranges_benchmark(2000, 4000, 3);
        assert!(report.prefixes > 1500, "{report:?}");
        // half the addresses are network addresses of listed ranges: they must all match
        assert!(report.matched >= 2000, "{report:?}");
    }

    #[test]
    fn same_seed_same_logs_and_every_line_reads() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let options = |dir: &Path| GenerateOptions {
            dir: dir.to_path_buf(),
            size_mb: 1,
            seed: 7,
            file_bytes: 300_000,
            objects: None,
        };
        let report = generate(&options(a.path())).unwrap();
        assert_eq!(generate(&options(b.path())).unwrap(), report);
        let found = crate::logs::files::discover(a.path()).unwrap();
        assert_eq!(found.files.len() as u64, report.files);
        let mut requests = 0;
        for file in &found.files {
            let (mut chunks, _) = file.open().unwrap();
            let mut data = Vec::new();
            while let Some(chunk) = chunks.next_chunk().unwrap() {
                data.extend(chunk.data);
            }
            assert_eq!(data, std::fs::read(b.path().join(&file.relative)).unwrap());
            requests += crate::extract::parse::parse_lines(&data, 1).requests.len();
        }
        assert!(
            requests as u64 > report.lines / 4,
            "{requests} of {}",
            report.lines
        );
    }
}

/// What the range matcher benchmark measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RangesBenchReport {
    /// Prefixes in the generated AWS list (IPv4 and IPv6).
    pub prefixes: usize,
    /// Lookups made.
    pub lookups: usize,
    /// Lookups that found a range.
    pub matched: usize,
    /// Seconds the lookups took.
    pub seconds: f64,
}

/// Writes an AWS `ip-ranges.json` of `prefixes` prefixes (three quarters IPv4), nested as the real
/// one is (regional blocks holding service subnets).
pub(crate) fn aws_ranges_document(prefixes: usize, seed: u64) -> String {
    const REGIONS: [&str; 8] = [
        "us-east-1",
        "us-west-2",
        "eu-west-1",
        "eu-central-1",
        "ap-northeast-1",
        "ap-southeast-2",
        "sa-east-1",
        "GLOBAL",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut parents4: Vec<(u32, u8)> = Vec::new();
    for i in 0..prefixes {
        let region = REGIONS[rng.gen_range(0..REGIONS.len())];
        if i % 4 == 3 {
            let length = rng.gen_range(24..=64u32);
            let network =
                (0x2600u128 << 112 | rng.r#gen::<u128>() >> 16) & (u128::MAX << (128 - length));
            v6.push(format!(
                r#"{{"ipv6_prefix": "{}/{length}", "region": "{region}", "service": "AMAZON", "network_border_group": "{region}"}}"#,
                std::net::Ipv6Addr::from(network)
            ));
        } else {
            // half are subnets of an earlier block
            let (address, length) = match parents4.get(rng.gen_range(0..parents4.len().max(1))) {
                Some(&(parent, parent_length)) if rng.gen_bool(0.5) && parent_length < 28 => {
                    let length = rng.gen_range(parent_length + 1..=28);
                    let inside = rng.r#gen::<u32>() >> parent_length;
                    (parent | inside, length)
                }
                _ => (rng.r#gen::<u32>(), rng.gen_range(11..=24)),
            };
            let network = address & (u32::MAX << (32 - u32::from(length)));
            parents4.push((network, length));
            v4.push(format!(
                r#"{{"ip_prefix": "{}/{length}", "region": "{region}", "service": "AMAZON", "network_border_group": "{region}"}}"#,
                std::net::Ipv4Addr::from(network)
            ));
        }
    }
    format!(
        "{{\"syncToken\": \"0\", \"createDate\": \"2026-11-23-00-00-00\", \"prefixes\": [{}], \"ipv6_prefixes\": [{}]}}",
        v4.join(", "),
        v6.join(", ")
    )
}

/// Times `lookups` lookups of random addresses (half inside a listed range) in an AWS list of
/// `prefixes` prefixes, parsed from the published format.
pub(crate) fn ranges_benchmark(prefixes: usize, lookups: usize, seed: u64) -> RangesBenchReport {
    let document = aws_ranges_document(prefixes, seed);
    let table = crate::regions::ranges::Service::Aws
        .parse(document.as_bytes())
        .expect("the generated list is valid");
    let json: serde_json::Value = serde_json::from_str(&document).expect("valid JSON");
    let inside: Vec<std::net::Ipv4Addr> = json["prefixes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["ip_prefix"].as_str()?.parse::<ipnet::Ipv4Net>().ok())
        .map(|net| net.network())
        .collect();
    let mut rng = StdRng::seed_from_u64(seed + 1);
    let addresses: Vec<std::net::IpAddr> = (0..lookups)
        .map(|i| match i % 4 {
            0 | 1 => std::net::IpAddr::V4(inside[rng.gen_range(0..inside.len())]),
            2 => std::net::IpAddr::V4(rng.r#gen::<u32>().into()),
            _ => std::net::IpAddr::V6((0x2600u128 << 112 | rng.r#gen::<u128>() >> 16).into()),
        })
        .collect();
    let start = std::time::Instant::now();
    let matched = addresses
        .iter()
        .filter(|ip| table.lookup(**ip).is_some())
        .count();
    RangesBenchReport {
        prefixes: table.len(),
        lookups,
        matched,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// What the IP database benchmark measured.
#[derive(Debug)]
pub(crate) struct GeoipBenchReport {
    /// Lookups made.
    pub lookups: usize,
    /// Lookups that gave a place (not `unknown`).
    pub placed: usize,
    /// Seconds they took, on one thread.
    pub seconds: f64,
}

/// Times `lookups` label lookups of random public IPv4 addresses (and one in eight IPv6) in the
/// database at `db`, on one thread: the work `update regions` does per requester.
pub(crate) fn geoip_benchmark(
    db: &std::path::Path,
    lookups: usize,
    seed: u64,
) -> anyhow::Result<GeoipBenchReport> {
    let database = crate::regions::geoip::GeoIp::open(db)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let addresses: Vec<std::net::IpAddr> = (0..lookups)
        .map(|i| {
            if i % 8 == 7 {
                std::net::IpAddr::V6((0x2000u128 << 112 | rng.r#gen::<u128>() >> 16).into())
            } else {
                std::net::IpAddr::V4(rng.gen_range(0x0100_0000u32..0xdf00_0000).into())
            }
        })
        .collect();
    let start = std::time::Instant::now();
    let placed = addresses
        .iter()
        .filter(|ip| database.locate(**ip).0.kind() != crate::labels::LabelKind::Unknown)
        .count();
    Ok(GeoipBenchReport {
        lookups,
        placed,
        seconds: start.elapsed().as_secs_f64(),
    })
}
