//! Reading logs straight from S3, against a real local S3 server (moto) behind a recording proxy:
//! both layouts, pagination, incremental listing, inventories, `status --source`, `run`.

use crate::common::s3::{
    self, TestBucket, bucket_holding, flat_key, gzip, listings, local_dump, logs, moto,
    object_gets, partitioned_key, proxy, spread_keys, text, write_locally,
};
use crate::common::{Env, fixture, tree};

#[test]
fn both_layouts_past_one_page_plain_and_gzip_read_as_local_files_are() {
    let bucket = TestBucket::create("s3tally-layouts");
    let mut keys = spread_keys(1050, 3);
    for n in 0..30 {
        let root = "logs/123456789012/us-east-1/archive-bucket/";
        let key = partitioned_key(root, &format!("2024-05-{:02}", 1 + n % 3), 2000 + n);
        keys.push(if n % 2 == 0 { format!("{key}.gz") } else { key });
    }
    keys[7] = format!("{}.gz", keys[7]);
    let objects = logs(&keys);
    bucket.put_all(&objects);
    bucket.put_all(&[("logs/README.txt".into(), b"not a log".to_vec())]);
    let server = proxy(moto(), |_, _| None);
    let env = Env::new();
    let output = s3::run(&env, &server.url, &["extract", &bucket.url("logs/")], 0);
    let said = text(&output);
    assert!(said.contains("1080 new log files"), "{said}");
    assert_eq!(env.dump(), local_dump(&objects));
    // past one page of 1,000 keys
    assert!(listings(&server.requests()).len() >= 2);
    // every object asked for once
    assert_eq!(object_gets(&server.requests()).len(), 1080);
}

#[test]
fn a_second_run_lists_from_the_last_complete_day_and_gets_nothing_old() {
    let bucket = TestBucket::create("s3tally-incremental");
    let root = "logs/123456789012/us-east-1/archive-bucket/";
    let mut first: Vec<String> = Vec::new();
    for (d, day) in ["2024-05-01", "2024-05-02", "2024-05-03"]
        .iter()
        .enumerate()
    {
        for n in 0..4 {
            first.push(flat_key("logs/", day, 10 * d + n));
            first.push(partitioned_key(root, day, 100 + 10 * d + n));
        }
    }
    let first = logs(&first);
    bucket.put_all(&first);
    let env = Env::new();
    let server = proxy(moto(), |_, _| None);
    s3::run(&env, &server.url, &["extract", &bucket.url("logs/")], 0);
    assert_eq!(object_gets(&server.requests()).len(), 24);

    // new logs: the next day in both layouts, a late one of the last day, a new source bucket
    // (a new partition root, with an old day), and a late one of a day long done
    let new_root = "logs/123456789012/us-west-2/other-bucket/";
    let second = logs(&[
        flat_key("logs/", "2024-05-04", 40),
        flat_key("logs/", "2024-05-03", 41),
        partitioned_key(root, "2024-05-04", 142),
        partitioned_key(new_root, "2024-05-01", 243),
    ]);
    let too_late = logs(&[flat_key("logs/", "2024-05-01", 50)]);
    bucket.put_all(&second);
    bucket.put_all(&too_late);
    let server = proxy(moto(), |_, _| None);
    s3::run(&env, &server.url, &["extract", &bucket.url("logs/")], 0);
    let requests = server.requests();
    let mut gets = object_gets(&requests);
    gets.sort();
    let mut expected: Vec<String> = second
        .iter()
        .map(|(key, _)| format!("/{}/{key}", bucket.name))
        .collect();
    expected.sort();
    assert_eq!(gets, expected, "only the new objects are asked for");
    // the flat logs and the known root listed from the day before the newest (May 3)
    let listed = listings(&requests);
    assert!(
        listed
            .iter()
            .any(|l| l.contains("prefix=logs%2F&") && l.contains("start-after=logs%2F2024-05-02")),
        "{listed:#?}"
    );
    assert!(
        listed.iter().any(|l| l.contains(
            "start-after=logs%2F123456789012%2Fus-east-1%2Farchive-bucket%2F2024%2F05%2F02"
        )),
        "{listed:#?}"
    );
    // nothing listed the old keys again: no listing of the flat folder without a delimiter
    // and from its start
    assert!(
        !listed.iter().any(|l| l.contains("prefix=logs%2F&")
            && !l.contains("start-after")
            && !l.contains("delimiter")),
        "{listed:#?}"
    );
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    assert_eq!(env.dump(), local_dump(&all));

    // the log that came a day too late is found by a full listing
    let server = proxy(moto(), |_, _| None);
    s3::run(
        &env,
        &server.url,
        &["extract", "--full-listing", &bucket.url("logs/")],
        0,
    );
    assert_eq!(
        object_gets(&server.requests()),
        [format!("/{}/{}", bucket.name, too_late[0].0)]
    );
    all.extend(too_late);
    assert_eq!(env.dump(), local_dump(&all));
}

/// Writes an S3 Inventory of `objects` of `source_bucket` as S3 lays it out under
/// `config` (`config/data/*.csv.gz`, `config/DATE/manifest.json` and its checksum): (key, bytes)
/// pairs to store or write.
fn inventory(
    source_bucket: &str,
    config: &str,
    objects: &[(String, Vec<u8>)],
) -> Vec<(String, Vec<u8>)> {
    use md5::{Digest, Md5};
    let mut rows = String::new();
    for (key, body) in objects {
        rows.push_str(&format!(
            "\"{source_bucket}\",\"{}\",\"{}\",\"2024-05-04T00:00:00.000Z\"\n",
            key.replace('/', "%2F"),
            body.len()
        ));
    }
    let data = gzip(rows.as_bytes());
    let data_key = format!("{config}data/0b7c-part.csv.gz");
    let manifest = serde_json::json!({
        "sourceBucket": source_bucket,
        "destinationBucket": "arn:aws:s3:::s3tally-inventories",
        "version": "2016-11-30",
        "creationTimestamp": "1714780800000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": data_key, "size": data.len(),
                   "MD5checksum": hex::encode(Md5::digest(&data))}],
    })
    .to_string();
    let checksum = hex::encode(Md5::digest(manifest.as_bytes()));
    vec![
        (data_key, data),
        (
            format!("{config}2024-05-04T01-00Z/manifest.json"),
            manifest.into_bytes(),
        ),
        (
            format!("{config}2024-05-04T01-00Z/manifest.checksum"),
            checksum.into_bytes(),
        ),
    ]
}

#[test]
fn an_inventory_replaces_the_listing_in_s3_or_local() {
    let keys = spread_keys(12, 3);
    let (bucket, objects) = bucket_holding("s3tally-inventoried", &keys);
    let config = "inventories/s3tally-inventoried/daily/";
    let files = inventory(&bucket.name, config, &objects);
    let store = TestBucket::create("s3tally-inventories");
    store.put_all(&files);

    let env = Env::new();
    let server = proxy(moto(), |_, _| None);
    let place = store.url(config);
    s3::run(
        &env,
        &server.url,
        &["extract", "--inventory", &place, &bucket.url("logs/")],
        0,
    );
    // the log bucket is never listed
    let listed = listings(&server.requests());
    assert!(
        listed.iter().all(|l| l.starts_with("/s3tally-inventories")),
        "{listed:#?}"
    );
    assert_eq!(env.dump(), local_dump(&objects));

    // the same inventory copied down: the same logs, all extracted already
    let local = Env::new();
    let dir = local.dir.path().join("inventory");
    for (key, body) in &files {
        let path = dir.join(&key[config.len()..]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let from_copy = |env: &Env, code: i32| {
        let place = dir.display().to_string();
        let args = ["extract", "--inventory", &place, &bucket.url("logs/")];
        text(&s3::run(env, &server.url, &args, code))
    };
    let said = from_copy(&local, 0);
    assert!(said.contains("12 new log files"), "{said}");
    assert_eq!(local.dump(), env.dump());
    // a tampered manifest is refused
    let checksum = dir.join("2024-05-04T01-00Z/manifest.checksum");
    std::fs::write(checksum, "0".repeat(32)).unwrap();
    let said = from_copy(&Env::new(), 1);
    assert!(said.contains("manifest.checksum says"), "{said}");
}

#[test]
fn a_log_read_locally_first_is_not_counted_again_from_the_bucket() {
    let keys = spread_keys(6, 1);
    let (bucket, objects) = bucket_holding("s3tally-seen-locally", &keys);
    let env = Env::new();
    // half of them copied down earlier, one of those compressed since
    let dir = env.dir.path().join("copy");
    write_locally(&dir, &objects[..3]);
    let name = keys[0].rsplit('/').next().unwrap();
    std::fs::write(
        dir.join(format!("{name}.gz")),
        gzip(&std::fs::read(dir.join(name)).unwrap()),
    )
    .unwrap();
    std::fs::remove_file(dir.join(name)).unwrap();
    env.extract(&[&dir], 0);
    let server = proxy(moto(), |_, _| None);
    let output = s3::run(&env, &server.url, &["extract", &bucket.url("logs/")], 0);
    assert!(
        text(&output).contains("3 already extracted"),
        "{}",
        text(&output)
    );
    assert_eq!(object_gets(&server.requests()).len(), 3);
    assert_eq!(env.dump(), local_dump(&objects));
}

#[test]
fn status_says_how_much_of_a_source_is_extracted() {
    let bucket = TestBucket::create("s3tally-status");
    let keys: Vec<String> = (0..6)
        .map(|n| flat_key("logs/", &format!("2024-05-0{}", 1 + n / 2), n))
        .collect();
    let objects = logs(&keys);
    bucket.put_all(&objects);
    let env = Env::new();
    // the first day copied down and extracted
    let dir = env.dir.path().join("copy");
    write_locally(&dir, &objects[..2]);
    env.extract(&[&dir], 0);
    let server = proxy(moto(), |_, _| None);
    let output = s3::run(
        &env,
        &server.url,
        &["status", "--source", &bucket.url("logs/")],
        0,
    );
    let said = text(&output);
    let bytes: usize = objects.iter().map(|(_, b)| b.len()).sum();
    let done: usize = objects[..2].iter().map(|(_, b)| b.len()).sum();
    let row = said
        .lines()
        .find(|line| line.contains("s3://s3tally-status/logs/"))
        .unwrap_or_else(|| panic!("{said}"));
    let cells: Vec<&str> = row
        .split('│')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            "s3://s3tally-status/logs/",
            "6",
            &format!("{:.1}", bytes as f64 / 1e6),
            "2",
            &format!("{:.1}", done as f64 / 1e6),
            &format!("{:.1} %", 100.0 * done as f64 / bytes as f64),
            "2024-05-02",
        ]
    );
}

#[test]
fn run_from_a_bucket_writes_the_summaries_a_local_run_writes() {
    let keys = spread_keys(9, 3);
    let (bucket, objects) = bucket_holding("s3tally-run", &keys);
    let stages = |source: &str| {
        vec![
            "run".to_owned(),
            source.to_owned(),
            "--ranges-dir".into(),
            fixture("ranges").display().to_string(),
            "--geoip-db".into(),
            fixture("geoip/s3tally-test-city.mmdb")
                .display()
                .to_string(),
        ]
    };
    let server = proxy(moto(), |_, _| None);
    let remote = Env::new();
    let args = stages(&bucket.url("logs/"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s3::run(&remote, &server.url, &args, 0);
    let local = Env::new();
    let dir = local.dir.path().join("logs");
    write_locally(&dir, &objects);
    let args = stages(&dir.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = local.run(&args);
    assert!(output.status.success(), "{}", text(&output));
    let written = tree(&remote.cache.join("summaries"));
    assert!(
        written.contains_key("data/by_day.tsv"),
        "{:?}",
        written.keys()
    );
    assert_eq!(written, tree(&local.cache.join("summaries")));
}
