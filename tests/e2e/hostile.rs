//! Hostile and odd input from real buckets: object keys that try to escape the output or break
//! its rows, files that expand without end, impossible byte counts. Nothing may be written outside
//! the output, no row may lose its shape, no file may exhaust memory, nothing may wrap around.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::mock::{MockServer, Reply};
use crate::common::{Env, fixture, stderr};
use serde_json::json;

/// One successful GET line of `key` by `ip` sending `bytes`, at second `second` of a day.
fn line(key: &str, ip: &str, bytes: u64, second: u32) -> String {
    format!(
        "owner bucket [02/Jul/2024:10:{:02}:{:02} +0000] {ip} - R{second} REST.GET.OBJECT {key} \"GET /{key} HTTP/1.1\" 200 - {bytes} {bytes} 1 1 \"-\" \"-\" -\n",
        second / 60 % 60,
        second % 60
    )
}

/// Writes a log named `name` holding `lines`.
fn write(dir: &Path, name: &str, lines: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), lines.concat()).unwrap();
}

/// Every file under `root`, as paths.
fn files_under(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Asserts that every row of every TSV file under `dir` has its header's number of fields.
fn assert_rows_keep_their_shape(dir: &Path) -> usize {
    let mut checked = 0;
    for path in files_under(dir) {
        if path.extension().is_none_or(|ext| ext != "tsv") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default().split('\t').count();
        for row in lines {
            assert_eq!(
                row.split('\t').count(),
                header,
                "{}: {row:?}",
                path.display()
            );
            checked += 1;
        }
    }
    checked
}

const HOSTILE_KEYS: [&str; 9] = [
    "../escape/a.nwb",
    "/abs/b.nwb",
    "./dot/c.nwb",
    ".git/config",
    "archive/by_day.tsv",
    "totals.json/x",
    "ta\tb/y.nwb",
    "undetermined/z.nwb",
    "a/../../../../tmp/deep.nwb",
];

#[test]
fn nothing_is_written_outside_the_output_whatever_the_key_and_depth() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    let long = format!("{}/long.nwb", "d".repeat(1000));
    let mut lines: Vec<String> = HOSTILE_KEYS
        .iter()
        .copied()
        .chain([long.as_str()])
        .enumerate()
        .map(|(i, key)| line(key, "192.0.2.1", 100, i as u32))
        .collect();
    lines.push(line("ds1/good.nwb", "192.0.2.1", 7, 50));
    write(&logs, "2024-07-02-10-00-00-AAAAAAAAAAAAAAAA", &lines);
    env.extract(&[&logs], 0);
    let sandbox = env.dir.path().join("sandbox");
    for depth in ["1", "2", "3"] {
        let out = sandbox.join(format!("depth{depth}/out"));
        let output = env.run(&[
            "update",
            "summaries",
            "--output",
            out.to_str().unwrap(),
            "--dataset-depth",
            depth,
            "--region-min-requesters",
            "1",
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stderr(&output);
        if depth == "1" {
            assert!(
                text.contains("9 object keys have no row in the dataset map or name no dataset that can be a directory"),
                "{text}"
            );
            assert!(text.contains("`../escape/a.nwb`"), "{text}");
            // the tab of a key is shown escaped, never as is
            assert!(!text.contains("ta\tb"), "{text}");
            let undetermined =
                std::fs::read_to_string(out.join("undetermined/by_asset.tsv")).unwrap();
            assert_eq!(undetermined.lines().count(), 1 + 9, "{undetermined}");
            assert!(
                undetermined.contains("\n../escape/a.nwb\t100\t"),
                "{undetermined}"
            );
            assert!(
                undetermined.contains("\nta%09b/y.nwb\t100\t"),
                "{undetermined}"
            );
            // the reserved names were not merged with the outputs of the same name
            let archive = std::fs::read_to_string(out.join("archive/by_day.tsv")).unwrap();
            assert!(archive.contains("\n2024-07-02\t1007\t"), "{archive}");
            assert!(out.join("ds1/by_asset.tsv").is_file());
            assert!(!out.join("totals.json").is_dir());
        }
        assert!(assert_rows_keep_their_shape(&out) > 0);
    }
    // nothing anywhere but under each output (and the cache, logs, config of the test)
    for path in files_under(env.dir.path()) {
        let inside = [&env.cache, &env.config, &logs]
            .iter()
            .any(|dir| path.starts_with(dir))
            || ["1", "2", "3"]
                .iter()
                .any(|d| path.starts_with(sandbox.join(format!("depth{d}/out"))));
        assert!(inside, "written outside the output: {}", path.display());
    }
    assert!(!Path::new("/tmp/deep.nwb").exists());
}

#[test]
fn every_published_row_and_dump_row_keeps_its_shape() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    write(
        &logs,
        "2024-07-02-10-00-00-AAAAAAAAAAAAAAAA",
        &[
            line("ds2/a%09b%0Ac%00.nwb", "8.8.8.8", 5, 1),
            line("ds2/raw\ttab.nwb", "8.8.8.8", 6, 2),
            line("ds2/esc%1B%5B31m.nwb", "1.1.1.1", 7, 3),
        ],
    );
    // a region name from the remote service is untrusted: tabs, line ends, NUL
    let ipinfo = MockServer::start(|request, _| {
        let ips: Vec<String> = serde_json::from_slice(&request.body).unwrap();
        let answer: serde_json::Map<String, serde_json::Value> = ips
            .iter()
            .map(|ip| {
                let region = if ip == "8.8.8.8" {
                    "Cali\tfor\nnia\u{0}"
                } else {
                    "Queens\rland"
                };
                (
                    ip.clone(),
                    json!({"ip": ip, "region": region, "country": "us"}),
                )
            })
            .collect();
        Reply::json(200, serde_json::Value::Object(answer))
    });
    let mut command = env.command(&[
        "run",
        logs.to_str().unwrap(),
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
        "--region-min-requesters",
        "1",
    ]);
    command
        .env("IPINFO_API_KEY", "token")
        .env("IPINFO_URL", &ipinfo.url);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = env.cache.join("summaries");
    assert!(assert_rows_keep_their_shape(&out) >= 6);
    let by_region = std::fs::read_to_string(out.join("ds2/by_region.tsv")).unwrap();
    assert!(by_region.contains("\nUS/California\t11\t"), "{by_region}");
    // Queensland is no US state: the country alone, the name listed in the run's output
    assert!(by_region.contains("\nUS\t7\t"), "{by_region}");
    assert!(
        stderr(&output).contains("cannot place (labelled with the country alone; add them to src/labels/region_aliases.tsv): US: Queensland"),
        "{}",
        stderr(&output)
    );
    let by_asset = std::fs::read_to_string(out.join("ds2/by_asset.tsv")).unwrap();
    assert!(by_asset.contains("\na%09b%0Ac%00.nwb\t5\t"), "{by_asset}");
    assert!(by_asset.contains("\nesc%1B[31m.nwb\t7\t"), "{by_asset}");
    // the YAML: one `"label": {latitude: .., longitude: ..}` entry per line, nothing else
    let yaml = std::fs::read_to_string(out.join("region_codes_to_coordinates.yaml")).unwrap();
    for entry in yaml.lines() {
        assert!(
            entry.starts_with('"') && entry.ends_with('}') && entry.contains("\": {latitude: "),
            "{entry:?}"
        );
    }
    assert!(yaml.contains("\"US/California\": "), "{yaml}");
    // dump: seven fields a row, the raw tab written %09
    let dump = env.dump();
    for row in dump.lines() {
        assert_eq!(row.split('\t').count(), 7, "{row:?}");
    }
    assert!(dump.contains("ds2/raw%09tab.nwb\t"), "{dump}");
}

#[test]
fn a_failed_stage_is_not_followed_by_publish() {
    let env = Env::new();
    let repo = env.dir.path().join("published");
    std::fs::create_dir_all(&repo).unwrap();
    assert!(
        std::process::Command::new("git")
            .args(["init", "--quiet"])
            .arg(&repo)
            .status()
            .unwrap()
            .success()
    );
    let refusing = MockServer::start(|_, _| Reply::json(401, json!({"error": "bad token"})));
    let mut command = env.command(&[
        "run",
        fixture("regions/logs").to_str().unwrap(),
        "--ranges-dir",
        fixture("ranges").to_str().unwrap(),
        "--publish",
        repo.to_str().unwrap(),
    ]);
    command
        .env("IPINFO_API_KEY", "token")
        .env("IPINFO_URL", &refusing.url);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("publish not started"),
        "{}",
        stderr(&output)
    );
    // summaries were written locally, nothing was published
    assert!(env.cache.join("summaries/archive/by_day.tsv").is_file());
    assert!(!repo.join("content").exists());
}

/// The highest resident memory of a running child, in KB, polled until it exits.
fn peak_memory_kb(mut child: std::process::Child) -> (u64, std::process::ExitStatus) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (peak, status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A gzip log of `lines` repeated until it expands to `bytes`.
fn gzip_log(path: &Path, line_text: &str, bytes: usize) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let block = line_text.repeat(4096);
    let mut written = 0;
    while written < bytes {
        encoder.write_all(block.as_bytes()).unwrap();
        written += block.len();
    }
    encoder.finish().unwrap();
}

#[test]
fn a_gzip_that_expands_far_is_read_in_bounded_memory() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let one = line("ds/bomb.nwb", "192.0.2.1", 10, 1);
    // 400 MB of text in a few MB of gzip
    gzip_log(
        &logs.join("2024-07-02-10-00-00-AAAAAAAAAAAAAAAA.gz"),
        &one,
        400 << 20,
    );
    let child = env.spawn(&["extract", logs.to_str().unwrap()], &[]);
    let (peak, status) = peak_memory_kb(child);
    assert!(status.success());
    assert!(peak > 0 && peak < 200_000, "peak memory {peak} KB");
    let expected = (400u64 << 20).div_ceil(4096 * one.len() as u64) * 4096;
    let dump_rows = env.dump().lines().count() as u64 - 1;
    assert_eq!(dump_rows, expected);
}

#[test]
fn a_file_that_fails_midway_is_named_and_counted_nowhere_while_the_others_are_extracted() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let broken = logs.join("2024-07-02-10-00-00-BBBBBBBBBBBBBBBB.gz");
    // 40 MB of text: several chunks are written before the cut is reached
    gzip_log(
        &broken,
        &line("ds/broken.nwb", "192.0.2.1", 10, 1),
        40 << 20,
    );
    let data = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &data[..data.len() * 3 / 4]).unwrap();
    write(
        &logs,
        "2024-07-02-11-00-00-CCCCCCCCCCCCCCCC",
        &[line("ds/fine.nwb", "192.0.2.2", 5, 2)],
    );
    let output = env.run(&["extract", logs.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("BBBBBBBBBBBBBBBB.gz"), "{text}");
    let dump = env.dump();
    assert!(dump.contains("ds/fine.nwb\t"), "{dump}");
    assert!(!dump.contains("ds/broken.nwb"), "half a file was counted");
    // tried again next time, still not counted
    let again = env.run(&["extract", logs.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(env.dump(), dump);
}

#[test]
fn impossible_byte_totals_are_an_error_naming_the_dataset() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    // 2^60 bytes each (the largest a line may say): 17 of them exceed 2^64
    let lines: Vec<String> = (0..17)
        .map(|i| line("huge/a.nwb", "192.0.2.1", 1 << 60, i))
        .chain([line("small/b.nwb", "192.0.2.1", 3, 30)])
        .collect();
    write(&logs, "2024-07-02-10-00-00-AAAAAAAAAAAAAAAA", &lines);
    env.extract(&[&logs], 0);
    let output = env.run(&["update", "summaries"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("bytes sent of huge add up to more than 2^64"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn a_dataset_that_cannot_be_written_does_not_stop_the_others() {
    let env = Env::new();
    let logs = env.dir.path().join("logs");
    write(
        &logs,
        "2024-07-02-10-00-00-AAAAAAAAAAAAAAAA",
        &[
            line("aaa/x.nwb", "192.0.2.1", 3, 1),
            line("zzz/y.nwb", "192.0.2.1", 4, 2),
        ],
    );
    env.extract(&[&logs], 0);
    let out = env.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // a file where the first dataset's directory must go
    std::fs::write(out.join("aaa"), "in the way").unwrap();
    let output = env.run(&["update", "summaries", "--output", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot write the files of aaa"),
        "{}",
        stderr(&output)
    );
    assert!(out.join("zzz/by_day.tsv").is_file());
    assert!(out.join("archive/by_day.tsv").is_file());
    // once the obstacle is gone, the next run writes it (nothing is "up to date" after a failure)
    std::fs::remove_file(out.join("aaa")).unwrap();
    let output = env.run(&["update", "summaries", "--output", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(out.join("aaa/by_day.tsv").is_file());
}
