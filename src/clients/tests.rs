//! User agents as S3 access logs show them, each with the class and family decided by hand.

use super::*;

/// (user agent, class, family): B browser, T tool, R robot, U unknown.
const AGENTS: &[(&str, char, &str)] = &[
    // browsers
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 OPR/105.0.0.0",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
        'B',
        "",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        'B',
        "",
    ),
    // the S3 and HTTP tools of science: never robots
    (
        "aws-cli/2.15.17 Python/3.11.6 Linux/6.5.0-1014-aws exe/x86_64.amzn.2 prompt/off command/s3.cp",
        'T',
        "aws-cli",
    ),
    (
        "aws-cli/1.29.85 Python/3.8.10 Linux/5.15.0-88-generic botocore/1.31.85",
        'T',
        "aws-cli",
    ),
    (
        "Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/linux#6.5.0-1014-aws md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.34",
        'T',
        "boto3",
    ),
    (
        "Boto3/1.26.0 Python/3.10.8 Linux/5.15.0 Botocore/1.29.0",
        'T',
        "boto3",
    ),
    (
        "aiobotocore/2.11.2 md/Botocore#1.34.34 ua/2.0 os/linux#5.15.0 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.34",
        'T',
        "aiobotocore",
    ),
    (
        "Botocore/1.31.85 ua/2.0 os/linux#5.15.0 md/arch#x86_64 lang/python#3.10.12 md/pyimpl#CPython",
        'T',
        "botocore",
    ),
    ("rclone/v1.65.1", 'T', "rclone"),
    ("curl/8.4.0", 'T', "curl"),
    ("curl/7.81.0", 'T', "curl"),
    ("Wget/1.21.2", 'T', "wget"),
    ("Wget/1.20.3 (linux-gnu)", 'T', "wget"),
    ("git-annex/10.20230926", 'T', "git-annex"),
    (
        "git-lfs/3.4.0 (GitHub; linux amd64; go 1.21.1)",
        'T',
        "git-lfs",
    ),
    (
        "dandi/0.58.0 requests/2.31.0 CPython/3.11.5",
        'T',
        "dandi-cli",
    ),
    ("duckdb/v1.1.3(osx_arm64) cli 19864453f7", 'T', "duckdb"),
    ("duckdb/0.9.1(linux_amd64) capi 19862840b8", 'T', "duckdb"),
    ("cpp-httplib/0.14.3", 'T', "cpp-httplib"),
    ("python-requests/2.31.0", 'T', "python-requests"),
    ("Python-urllib/3.11", 'T', "python-urllib"),
    (
        "PycURL/7.45.2 libcurl/7.88.1 OpenSSL/3.0.8 zlib/1.2.13",
        'T',
        "pycurl",
    ),
    ("aria2/1.36.0", 'T', "aria2"),
    ("HTTPie/3.2.2", 'T', "httpie"),
    (
        "aws-sdk-go/1.44.327 (go1.20.7; linux; amd64)",
        'T',
        "aws-sdk-go",
    ),
    (
        "aws-sdk-java/1.12.565 Linux/5.10.197 OpenJDK_64-Bit_Server_VM/11.0.20+8 java/11.0.20 vendor/Eclipse_Adoptium",
        'T',
        "aws-sdk-java",
    ),
    ("aws-sdk-js/2.1490.0 promise", 'T', "aws-sdk-js"),
    (
        "MinIO (linux; amd64) minio-go/v7.0.63 mc/RELEASE.2023-10-30T18-43-32Z",
        'T',
        "minio",
    ),
    (
        "Cyberduck/8.7.1.40770 (Mac OS X/14.1.1) (x86_64)",
        'T',
        "cyberduck",
    ),
    ("Go-http-client/1.1", 'T', "go-http-client"),
    ("okhttp/4.11.0", 'T', "okhttp"),
    (
        "Apache-HttpClient/4.5.13 (Java/11.0.20)",
        'T',
        "apache-httpclient",
    ),
    ("Java/1.8.0_392", 'T', "java"),
    // crawlers
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
        'R',
        "",
    ),
    ("CCBot/2.0 (https://commoncrawl.org/faq/)", 'R', ""),
    (
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (compatible; DuckDuckBot-Https/1.1; https://duckduckgo.com/duckduckbot)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
        'R',
        "",
    ),
    (
        "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
        'R',
        "",
    ),
    ("Scrapy/2.11.0 (+https://scrapy.org)", 'R', ""),
    // odd ones
    ("-", 'U', ""),
    ("", 'U', ""),
    ("   ", 'U', ""),
    ("MyPipeline/1.0 (contact: data@example.org)", 'T', "other"),
    // a bare "Mozilla/5.0" is what scrapers send: the COUNTER list calls it a robot
    ("Mozilla/5.0", 'R', ""),
];

#[test]
fn every_agent_of_the_table_gets_the_class_worked_out_by_hand() {
    let rules = ClientRules::bundled().unwrap();
    assert!(AGENTS.len() >= 60, "{}", AGENTS.len());
    let mut wrong = Vec::new();
    for (agent, class, family) in AGENTS {
        let expected = Client {
            class: match class {
                'B' => ClientClass::Browser,
                'T' => ClientClass::Tool,
                'R' => ClientClass::Robot,
                _ => ClientClass::Unknown,
            },
            family: (*family).to_owned(),
        };
        let got = rules.classify(agent);
        if got != expected {
            wrong.push(format!("{agent:?}: {got:?}, expected {expected:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_robot_list_alone_would_flag_the_tools_of_science() {
    // why the tools are matched first: the COUNTER list flags these by itself
    let rules = ClientRules::bundled().unwrap();
    for agent in [
        "Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 Botocore/1.34.34",
        "aiobotocore/2.11.2 Botocore/1.34.34",
        "python-requests/2.31.0",
        "curl/8.4.0",
        "Wget/1.21.2",
    ] {
        assert!(rules.robots.is_match(agent), "{agent}");
    }
}

#[test]
fn rules_of_a_file_replace_the_bundled_ones_and_come_before_the_robot_list() {
    let rules = "# ours\npattern\tclass\tfamily\n^curl/\trobot\tour-monitor\n^Mozilla/5\\.0$\tbrowser\tkiosk\n^lab-sync/\ttool\tlab-sync\n";
    let rules =
        ClientRules::from_texts(("mine.tsv", rules), ("counter_robots.txt", ROBOTS)).unwrap();
    let client = |agent: &str| rules.classify(agent);
    let named = |class, family: &str| Client {
        class,
        family: family.to_owned(),
    };
    assert_eq!(
        client("curl/8.4.0"),
        named(ClientClass::Robot, "our-monitor")
    );
    // a bare Mozilla/5.0, a robot by the COUNTER list, is what this file says
    assert_eq!(client("Mozilla/5.0"), named(ClientClass::Browser, "kiosk"));
    assert_eq!(client("lab-sync/1.2"), named(ClientClass::Tool, "lab-sync"));
    // the bundled tool rules are gone: boto3 is now caught by the robot list (`bot`)
    assert_eq!(
        client("Boto3/1.28.0 Python/3.11.4 Linux/5.15 Botocore/1.31.0").class,
        ClientClass::Robot
    );
}

#[test]
fn a_broken_rules_file_is_refused_naming_the_line() {
    let robots = ("counter_robots.txt", ROBOTS);
    let error = |text: &str| {
        ClientRules::from_texts(("mine.tsv", text), robots)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("^a/\ttool\ta\n^b/\tperson\tb\n"),
        "mine.tsv line 2: class \"person\" is not tool, browser or robot"
    );
    assert!(
        error("# c\n^a/\ttool\n")
            .starts_with("mine.tsv line 2: expected pattern<TAB>class<TAB>family")
    );
    assert!(error("(unclosed\ttool\tx\n").starts_with("mine.tsv line 1: regex parse error"));
    assert_eq!(
        error("^a/\ttool\tbell\u{7}\n"),
        "mine.tsv line 1: the family holds a control character"
    );
    assert!(
        ClientRules::load(Some(Path::new("/nonexistent/rules.tsv")))
            .unwrap_err()
            .to_string()
            .starts_with("client rules /nonexistent/rules.tsv: ")
    );
}
