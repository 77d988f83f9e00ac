//! Client classes and COUNTER reports on `fixtures/clients`, every figure worked out by hand in
//! that fixture's README; and a cache written before client classes (schema 4) opening and
//! working.

use std::path::{Path, PathBuf};

use crate::common::{EXACT, Env, copy_dir, fixture, stderr};

/// Runs s3tally, expecting exit 0; its standard output.
fn ok(env: &Env, args: &[&str]) -> String {
    let output = env.run(args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        stderr(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Extracts the fixture's logs and labels the requesters from the test IP database.
fn extracted() -> Env {
    let env = Env::new();
    env.extract(&[&fixture("clients/logs")], 0);
    label(&env);
    env
}

fn label(env: &Env) {
    let ranges = fixture("ranges");
    let geoip = fixture("geoip/s3tally-test-city.mmdb");
    ok(
        env,
        &[
            "update",
            "regions",
            "--ranges-dir",
            ranges.to_str().unwrap(),
            "--geoip-db",
            geoip.to_str().unwrap(),
        ],
    );
}

/// `update summaries` with exact counts into `<dir>/<name>`, plus `extra` options.
fn summaries(env: &Env, name: &str, extra: &[&str]) -> PathBuf {
    let out = env.dir.path().join(name);
    let mut args = vec!["update", "summaries", "--output", out.to_str().unwrap()];
    args.extend(EXACT);
    args.extend(extra);
    ok(env, &args);
    out
}

/// `report counter` for `period` into `<dir>/<name>`, exact counts, K as given.
fn counter(env: &Env, name: &str, period: &str, k: &str) -> PathBuf {
    let out = env.dir.path().join(name);
    ok(
        env,
        &[
            "report",
            "counter",
            "--period",
            period,
            "--output",
            out.to_str().unwrap(),
            "--privacy-minimum",
            "0",
            "--round-to",
            "1",
            "--region-min-requesters",
            k,
        ],
    );
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

const CLIENT_HEADER: &str =
    "client_class\tclient_family\tbytes_sent\tnumber_of_requests\tnumber_of_downloads\n";
const COUNTER_HEADER: &str = "access_method\tcountry\ttotal_item_requests\tunique_item_requests\n";

#[test]
fn each_request_gets_its_client_class_in_the_dump_and_by_client() {
    let env = extracted();
    let dump = env.dump();
    // by hand: the fixture's agents in the dump's order (key, then time)
    let a = |time: &str, class: &str| (time.to_owned(), class.to_owned());
    let expected = [
        a("2024-03-05T10:00:00Z", "tool/boto3"),
        a("2024-03-05T10:00:10Z", "tool/curl"),
        a("2024-03-05T10:00:20Z", "tool/boto3"),
        a("2024-03-05T10:10:00Z", "tool/boto3"),
        a("2024-03-05T10:10:31Z", "tool/boto3"),
        a("2024-03-05T10:20:00Z", "tool/boto3"),
        a("2024-03-05T10:20:25Z", "tool/boto3"),
        a("2024-03-05T10:20:50Z", "tool/boto3"),
        a("2024-03-05T12:00:00Z", "robot/-"),
        a("2024-03-05T10:59:50Z", "browser/-"),
        a("2024-03-05T11:00:30Z", "browser/-"),
        a("2024-03-05T12:00:01Z", "robot/-"),
        a("2024-03-05T10:59:55Z", "browser/-"),
        a("2024-03-05T11:00:05Z", "browser/-"),
        a("2024-03-05T13:00:00Z", "browser/-"),
        a("2024-03-05T13:00:30Z", "browser/-"),
        a("2024-03-31T23:59:50Z", "tool/aws-cli"),
        a("2024-04-01T00:00:10Z", "tool/aws-cli"),
        a("2024-03-03T08:00:00Z", "unknown/-"),
    ];
    let got: Vec<(String, String)> = dump
        .lines()
        .skip(1)
        .map(|row| {
            let f: Vec<&str> = row.split('\t').collect();
            (f[1].to_owned(), format!("{}/{}", f[5], f[6]))
        })
        .collect();
    assert_eq!(got, expected, "{dump}");
    assert_eq!(got.len(), 19);
    // the raw user agents are not kept: not in the store, not in the dump
    let store = std::fs::read(env.cache.join("s3tally.sqlite")).unwrap();
    for agent in ["Boto3/1.34.14", "Googlebot", "Firefox/121.0", "curl/8.4.0"] {
        let found = store.windows(agent.len()).any(|w| w == agent.as_bytes());
        assert!(!found, "{agent} in the store");
        assert!(!dump.contains(agent), "{agent} in the dump");
    }

    let out = summaries(&env, "all", &[]);
    assert_eq!(
        read(&out.join("ds1/by_client.tsv")),
        format!(
            "{CLIENT_HEADER}browser\t-\t2000\t6\t6\ntool\tboto3\t2500\t7\t2\ntool\tcurl\t1000\t1\t1\nrobot\t-\t1500\t2\t2\n"
        )
    );
    assert_eq!(
        read(&out.join("ds2/by_client.tsv")),
        format!("{CLIENT_HEADER}tool\taws-cli\t100\t2\t2\nunknown\t-\t70\t1\t1\n")
    );
    assert_eq!(
        read(&out.join("archive/by_client.tsv")),
        format!(
            "{CLIENT_HEADER}browser\t-\t2000\t6\t6\ntool\taws-cli\t100\t2\t2\ntool\tboto3\t2500\t7\t2\ntool\tcurl\t1000\t1\t1\nrobot\t-\t1500\t2\t2\nunknown\t-\t70\t1\t1\n"
        )
    );
    let total_requests = |out: &Path| -> u64 {
        read(&out.join("ds1/by_day.tsv"))
            .lines()
            .skip(1)
            .map(|line| line.split('\t').nth(2).unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(total_requests(&out), 16);
    let shown = ok(&env, &["show", "ds1", "--output", out.to_str().unwrap()]);
    assert!(shown.contains("ds1/by_client.tsv"), "{shown}");
    assert!(shown.contains("│ boto3 "), "{shown}");

    // without robots: their row and their requests are gone from every summary
    let human = summaries(&env, "no-robots", &["--exclude-robots"]);
    let by_client = read(&human.join("ds1/by_client.tsv"));
    assert!(!by_client.contains("robot"), "{by_client}");
    assert_eq!(total_requests(&human), 14);
    let by_region = read(&human.join("ds1/by_region.tsv"));
    assert!(!by_region.contains("CH"), "{by_region}");
    assert!(read(&out.join("ds1/by_region.tsv")).contains("CH"));
}

#[test]
fn counter_reports_follow_the_codes_rules_worked_out_by_hand() {
    let env = extracted();
    let march = counter(&env, "k1", "2024-03", "1");
    assert_eq!(
        read(&march.join("ds1/counter_2024-03.tsv")),
        format!(
            "{COUNTER_HEADER}Regular\tall\t4\t4\nRegular\tAU\t2\t2\nRegular\tUS\t2\t2\nTDM\tall\t5\t2\nTDM\tUS\t5\t2\n"
        )
    );
    assert_eq!(
        read(&march.join("ds2/counter_2024-03.tsv")),
        format!("{COUNTER_HEADER}Regular\tall\t1\t1\nRegular\tDE\t1\t1\n")
    );
    assert_eq!(
        read(&march.join("archive/counter_2024-03.tsv")),
        format!(
            "{COUNTER_HEADER}Regular\tall\t5\t5\nRegular\tAU\t2\t2\nRegular\tDE\t1\t1\nRegular\tUS\t2\t2\nTDM\tall\t5\t2\nTDM\tUS\t5\t2\n"
        )
    );
    // the JSON says the same in the Code's shape
    let json: serde_json::Value =
        serde_json::from_str(&read(&march.join("ds1/counter_2024-03.json"))).unwrap();
    let header = &json["Report_Header"];
    assert_eq!(header["Release"], "5.1");
    assert_eq!(header["Report_ID"], "IR");
    assert_eq!(header["Report_Filters"]["Begin_Date"], "2024-03-01");
    assert_eq!(header["Report_Filters"]["End_Date"], "2024-03-31");
    let items = json["Report_Items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["Item"], "ds1");
    let performance = items[0]["Attribute_Performance"].as_array().unwrap();
    let of = |method: &str| {
        performance
            .iter()
            .find(|p| p["Access_Method"] == method)
            .unwrap_or_else(|| panic!("no {method}"))
    };
    assert_eq!(of("TDM")["Data_Type"], "Dataset");
    assert_eq!(
        of("TDM")["Performance"]["Total_Item_Requests"]["2024-03"],
        5
    );
    assert_eq!(
        of("TDM")["Performance"]["Unique_Item_Requests"]["2024-03"],
        2
    );
    assert_eq!(
        of("Regular")["Performance"]["Total_Item_Requests"]["2024-03"],
        4
    );
    assert_eq!(
        of("Regular")["Performance"]["Unique_Item_Requests"]["2024-03"],
        4
    );
    assert_eq!(
        of("Regular")["s3tally:By_Country"]["AU"],
        serde_json::json!({"Total_Item_Requests": 2, "Unique_Item_Requests": 2})
    );
    assert_eq!(performance.len(), 2);

    // countries behind fewer than K requesters are pooled
    let pooled = counter(&env, "k2", "2024-03", "2");
    assert_eq!(
        read(&pooled.join("ds1/counter_2024-03.tsv")),
        format!(
            "{COUNTER_HEADER}Regular\tall\t4\t4\nRegular\tUS\t2\t2\nRegular\tother\t2\t2\nTDM\tall\t5\t2\nTDM\tUS\t5\t2\n"
        )
    );
    assert_eq!(
        read(&pooled.join("archive/counter_2024-03.tsv")),
        format!(
            "{COUNTER_HEADER}Regular\tall\t5\t5\nRegular\tUS\t2\t2\nRegular\tother\t3\t3\nTDM\tall\t5\t2\nTDM\tUS\t5\t2\n"
        )
    );

    // April: the request kept of the double click across the months, and no ds1
    let april = counter(&env, "april", "2024-04", "1");
    assert_eq!(
        read(&april.join("ds2/counter_2024-04.tsv")),
        format!("{COUNTER_HEADER}TDM\tall\t1\t1\nTDM\tUS\t1\t1\n")
    );
    assert!(!april.join("ds1").exists());
    assert_eq!(
        read(&april.join("archive/counter_2024-04.tsv")),
        format!("{COUNTER_HEADER}TDM\tall\t1\t1\nTDM\tUS\t1\t1\n")
    );

    // a bad period is a usage error
    let output = env.run(&["report", "counter", "--period", "2024-13"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("YYYY-MM"), "{}", stderr(&output));
}

#[test]
fn a_cache_from_before_client_classes_opens_and_works() {
    let env = Env::new();
    copy_dir(&fixture("clients/cache-v4"), &env.cache);
    // read as it is: every request unknown
    let dump = env.dump();
    assert_eq!(dump.lines().count(), 20, "{dump}");
    assert!(
        dump.lines()
            .skip(1)
            .all(|row| row.ends_with("\tunknown\t-")),
        "{dump}"
    );
    // written to: brought up to schema 5, summaries computed from the old bins
    let out = summaries(&env, "old", &[]);
    let version: String = rusqlite::Connection::open(env.cache.join("s3tally.sqlite"))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, "5");
    assert_eq!(
        read(&out.join("ds1/by_client.tsv")),
        format!("{CLIENT_HEADER}unknown\t-\t7000\t16\t11\n")
    );
    // COUNTER: unknown agents count as Regular, robots cannot be told apart yet: the robot's two
    // requests (G, CH) are in, and A's boto3 and curl requests are one client
    let march = counter(&env, "old-counter", "2024-03", "1");
    let ds1 = read(&march.join("ds1/counter_2024-03.tsv"));
    assert!(
        ds1.starts_with(&format!("{COUNTER_HEADER}Regular\tall\t")),
        "{ds1}"
    );
    assert!(ds1.contains("Regular\tCH\t2\t1\n"), "{ds1}");
    assert!(!ds1.contains("TDM"), "{ds1}");
    // new logs extracted into it get classes beside the old requests
    let late = env.dir.path().join("late");
    std::fs::create_dir_all(&late).unwrap();
    std::fs::write(
        late.join("2024-03-06-00-00-00-7777777777777777"),
        "8787a3c41bf7ce0d54359d9348ad5b08e16bd5bb8ae5aa4e1508b435773a066e bucket [06/Mar/2024:09:00:00 +0000] 8.8.8.10 - REQX REST.GET.OBJECT ds1/e.nwb \"GET /ds1/e.nwb HTTP/1.1\" 200 - 9 9 3 2 \"-\" \"rclone/v1.65.1\" - HOSTID= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader bucket.s3.amazonaws.com TLSv1.2 - -\n",
    )
    .unwrap();
    env.extract(&[&late], 0);
    let by_client = read(&summaries(&env, "mixed", &[]).join("ds1/by_client.tsv"));
    assert_eq!(
        by_client,
        format!("{CLIENT_HEADER}tool\trclone\t9\t1\t1\nunknown\t-\t7000\t16\t11\n")
    );
    // re-extracting (docs/clients.md) classifies the old ones too
    // the region rows last published (K = 2: US-CA has three requesters) stay: the diff-safe rule goes on
    // across the re-extraction
    ok(
        &env,
        &["update", "summaries", "--region-min-requesters", "2"],
    );
    let published = || -> String {
        rusqlite::Connection::open(env.cache.join("s3tally.sqlite"))
            .unwrap()
            .query_row(
                "SELECT group_concat(scope || ':' || data, '|') FROM published_regions",
                [],
                |row| row.get(0),
            )
            .unwrap()
    };
    let before = published();
    assert!(before.contains("US-CA"), "{before}");
    ok(&env, &["reset", "extraction", "--yes"]);
    assert_eq!(published(), before);
    env.extract(&[&fixture("clients/logs"), &late], 0);
    let by_client = read(&summaries(&env, "again", &[]).join("ds1/by_client.tsv"));
    assert_eq!(
        by_client,
        format!(
            "{CLIENT_HEADER}browser\t-\t2000\t6\t6\ntool\tboto3\t2500\t7\t2\ntool\tcurl\t1000\t1\t1\ntool\trclone\t9\t1\t1\nrobot\t-\t1500\t2\t2\n"
        )
    );
}
