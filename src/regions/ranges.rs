//! Address ranges that give a requester its label without asking ipinfo: bogons (addresses that
//! are not globally routable) and the published ranges of known services (GitHub, AWS, GCP, VPN
//! and datacenter lists), with a longest-prefix-match table (a prefix trie, not a linear scan).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use crate::labels::RegionLabel;

/// A set of prefixes with a label each; a lookup returns the label of the most specific prefix
/// that contains the address.
#[derive(Clone, Default)]
pub(crate) struct RangeTable {
    v4: PrefixMap<Ipv4Net, u32>,
    v6: PrefixMap<Ipv6Net, u32>,
    labels: Vec<RegionLabel>,
}

impl std::fmt::Debug for RangeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RangeTable({} prefixes)", self.len())
    }
}

impl RangeTable {
    /// Adds a prefix; when the same prefix is already there, the first label is kept.
    pub(crate) fn insert(&mut self, prefix: IpNet, label: &RegionLabel) {
        let index = if let Some(index) = self.labels.iter().rposition(|l| l == label) {
            index
        } else {
            self.labels.push(label.clone());
            self.labels.len() - 1
        };
        let index = u32::try_from(index).expect("fewer than 4 billion labels");
        match prefix.trunc() {
            IpNet::V4(net) => {
                if self.v4.get(&net).is_none() {
                    self.v4.insert(net, index);
                }
            }
            IpNet::V6(net) => {
                if self.v6.get(&net).is_none() {
                    self.v6.insert(net, index);
                }
            }
        }
    }

    /// The label of the most specific prefix containing `ip`.
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<&RegionLabel> {
        let index = match ip {
            IpAddr::V4(ip) => self.v4.get_lpm(&Ipv4Net::from(ip)).map(|(_, i)| *i),
            IpAddr::V6(ip) => self.v6.get_lpm(&Ipv6Net::from(ip)).map(|(_, i)| *i),
        }?;
        self.labels.get(index as usize)
    }

    /// Number of prefixes.
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether there are no prefixes.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Special-purpose ranges (IANA registries, RFC 6890 and successors) that are not globally routable.
const BOGONS: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Whether an address is a bogon: private, loopback, link-local, CGNAT, documentation, multicast,
/// reserved, unique-local, or IPv6 outside global unicast (`2000::/3`). IPv4-mapped and NAT64
/// addresses are judged by the IPv4 address inside.
#[derive(Debug, Clone)]
pub(crate) struct Bogons(RangeTable);

impl Default for Bogons {
    fn default() -> Self {
        let mut table = RangeTable::default();
        for prefix in BOGONS {
            table.insert(
                prefix.parse().expect("valid bogon prefix"),
                &RegionLabel::bogon(),
            );
        }
        Self(table)
    }
}

impl Bogons {
    /// Whether `ip` is not globally routable.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.0.lookup(IpAddr::V4(v4)).is_some(),
            IpAddr::V6(v6) => {
                let [a, b, c, d, e, f, ..] = v6.segments();
                // NAT64 well-known prefix 64:ff9b::/96: the IPv4 address inside decides
                if [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0] {
                    let octets = v6.octets();
                    let inner =
                        std::net::Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
                    return self.contains(IpAddr::V4(inner));
                }
                a & 0xe000 != 0x2000 || self.0.lookup(IpAddr::V6(v6)).is_some()
            }
        }
    }
}

/// Errors reading a range list.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RangeListError {
    /// The document is not JSON of the expected shape.
    #[error("not a valid {service} range list: {message}")]
    Format {
        /// The service.
        service: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A service with published address ranges, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// GitHub (api.github.com/meta): label `GitHub`.
    GitHub,
    /// Amazon Web Services (ip-ranges.json): label `AWS/<region>`.
    Aws,
    /// Google Cloud (cloud.json): label `GCP/<scope>`.
    Gcp,
    /// Microsoft Azure (the weekly Service Tags JSON): label `Azure/<region>`. Optional: Microsoft
    /// publishes it under a new address each week, so it is used only when configured.
    Azure,
    /// VPN and datacenter ranges (one CIDR a line): label `VPN`.
    Vpn,
}

impl Service {
    /// Every service, in the order they are checked: the first that matches labels the requester.
    pub(crate) const ALL: [Service; 5] = [
        Service::GitHub,
        Service::Aws,
        Service::Gcp,
        Service::Azure,
        Service::Vpn,
    ];

    /// Whether the list is used only when configured (a URL, or its file in `--ranges-dir`).
    pub(crate) fn is_optional(self) -> bool {
        self == Service::Azure
    }

    /// Its name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::GitHub => "GitHub",
            Service::Aws => "AWS",
            Service::Gcp => "GCP",
            Service::Azure => "Azure",
            Service::Vpn => "VPN",
        }
    }

    /// Its file name in `--ranges-dir` and in the cache.
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Service::GitHub => "github.json",
            Service::Aws => "aws.json",
            Service::Gcp => "gcp.json",
            Service::Azure => "azure.json",
            Service::Vpn => "vpn.txt",
        }
    }

    /// Where the list is published.
    pub(crate) fn default_url(self) -> &'static str {
        match self {
            Service::GitHub => "https://api.github.com/meta",
            Service::Aws => "https://ip-ranges.amazonaws.com/ip-ranges.json",
            Service::Gcp => "https://www.gstatic.com/ipranges/cloud.json",
            // no stable address: https://www.microsoft.com/download/details.aspx?id=56519 links
            // this week's ServiceTags_Public_YYYYMMDD.json
            Service::Azure => "",
            Service::Vpn => {
                "https://raw.githubusercontent.com/josephrocca/is-vpn/main/vpn-or-datacenter-ipv4-ranges.txt"
            }
        }
    }

    /// The environment variable that overrides the URL.
    pub(crate) fn url_env(self) -> &'static str {
        match self {
            Service::GitHub => "S3TALLY_GITHUB_RANGES_URL",
            Service::Aws => "S3TALLY_AWS_RANGES_URL",
            Service::Gcp => "S3TALLY_GCP_RANGES_URL",
            Service::Azure => "S3TALLY_AZURE_RANGES_URL",
            Service::Vpn => "S3TALLY_VPN_RANGES_URL",
        }
    }

    /// Reads the published document into a table.
    pub(crate) fn parse(self, document: &[u8]) -> Result<RangeTable, RangeListError> {
        let format = |message: String| RangeListError::Format {
            service: self.name(),
            message,
        };
        let mut table = RangeTable::default();
        let label = |text: String| {
            RegionLabel::parse(&text).map_err(|_| format(format!("`{text}` is not a label")))
        };
        if self == Service::Vpn {
            let vpn = label("VPN".to_owned())?;
            let text = String::from_utf8_lossy(document);
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let prefix = line
                    .parse::<IpNet>()
                    .map_err(|_| format(format!("`{line}` is not a CIDR range")))?;
                table.insert(prefix, &vpn);
            }
            return non_empty(table, format);
        }
        let json: serde_json::Value =
            serde_json::from_slice(document).map_err(|e| format(e.to_string()))?;
        match self {
            Service::GitHub => {
                // ranges are listed per product under keys GitHub adds to over time, beside other
                // metadata: take every string in a list that reads as a CIDR range
                let object = json
                    .as_object()
                    .ok_or_else(|| format("not a JSON object".into()))?;
                let github = label("GitHub".to_owned())?;
                for value in object.values().filter_map(|v| v.as_array()) {
                    for prefix in value
                        .iter()
                        .filter_map(|v| v.as_str()?.parse::<IpNet>().ok())
                    {
                        table.insert(prefix, &github);
                    }
                }
            }
            Service::Aws => {
                for (list, field) in [("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")] {
                    for entry in json[list].as_array().into_iter().flatten() {
                        let (Some(prefix), Some(region)) =
                            (entry[field].as_str(), entry["region"].as_str())
                        else {
                            continue;
                        };
                        let prefix = prefix
                            .parse::<IpNet>()
                            .map_err(|_| format(format!("`{prefix}` is not a CIDR range")))?;
                        // a region name that makes no label (empty) is left out
                        if let Ok(label) = RegionLabel::parse(&format!("AWS/{region}")) {
                            table.insert(prefix, &label);
                        }
                    }
                }
            }
            Service::Gcp => {
                for entry in json["prefixes"].as_array().into_iter().flatten() {
                    let prefix = entry["ipv4Prefix"]
                        .as_str()
                        .or(entry["ipv6Prefix"].as_str());
                    let (Some(prefix), Some(scope)) = (prefix, entry["scope"].as_str()) else {
                        continue;
                    };
                    let prefix = prefix
                        .parse::<IpNet>()
                        .map_err(|_| format(format!("`{prefix}` is not a CIDR range")))?;
                    if let Ok(label) = RegionLabel::parse(&format!("GCP/{scope}")) {
                        table.insert(prefix, &label);
                    }
                }
            }
            Service::Azure => {
                // regional tags (`AzureCloud.eastus`, `Storage.WestEurope`...) carry the region;
                // the global ones (region "") are left out
                for entry in json["values"].as_array().into_iter().flatten() {
                    let properties = &entry["properties"];
                    let Some(region) = properties["region"].as_str().filter(|r| !r.is_empty())
                    else {
                        continue;
                    };
                    let Ok(label) = RegionLabel::parse(&format!("Azure/{region}")) else {
                        continue;
                    };
                    for prefix in properties["addressPrefixes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let Some(prefix) = prefix.as_str() else {
                            continue;
                        };
                        let prefix = prefix
                            .parse::<IpNet>()
                            .map_err(|_| format(format!("`{prefix}` is not a CIDR range")))?;
                        table.insert(prefix, &label);
                    }
                }
            }
            Service::Vpn => unreachable!("handled above"),
        }
        non_empty(table, format)
    }
}

fn non_empty(
    table: RangeTable,
    format: impl Fn(String) -> RangeListError,
) -> Result<RangeTable, RangeListError> {
    if table.is_empty() {
        Err(format("no ranges in it".into()))
    } else {
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// What a table says of an address, as text.
    fn label_of(table: &RangeTable, text: &str) -> Option<String> {
        table.lookup(ip(text)).map(ToString::to_string)
    }

    #[test]
    fn azure_service_tags_give_regions_and_leave_global_tags_out() {
        let document = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ranges/azure.json"),
        )
        .unwrap();
        let table = Service::Azure.parse(&document).unwrap();
        // by hand from fixtures/ranges/azure.json
        assert_eq!(
            label_of(&table, "20.41.1.1").as_deref(),
            Some("Azure/westeurope")
        );
        assert_eq!(
            label_of(&table, "20.42.0.9").as_deref(),
            Some("Azure/eastus")
        );
        assert_eq!(
            label_of(&table, "2603:1020:200::1").as_deref(),
            Some("Azure/westeurope")
        );
        assert_eq!(label_of(&table, "20.43.0.1"), None);
        assert!(Service::Azure.is_optional() && !Service::Aws.is_optional());
    }

    #[test]
    fn bogons_v4_and_v6() {
        let bogons = Bogons::default();
        for text in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "0.1.2.3",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "64:ff9b::10.0.0.1",
            "3fff::1",
            "2002::1",
        ] {
            assert!(bogons.contains(ip(text)), "{text} is a bogon");
        }
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "9.9.9.9",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2606:4700:4700::1111",
        ] {
            assert!(!bogons.contains(ip(text)), "{text} is routable");
        }
    }

    #[test]
    fn most_specific_prefix_wins_and_first_label_of_a_prefix_stays() {
        let mut table = RangeTable::default();
        let mut insert = |prefix: &str, label: &str| {
            table.insert(prefix.parse().unwrap(), &RegionLabel::parse(label).unwrap());
        };
        insert("52.0.0.0/10", "AWS/us-east-1");
        insert("52.95.0.0/16", "AWS/eu-west-1");
        insert("52.95.0.0/16", "AWS/other");
        insert("2600:1f00::/24", "AWS/us-east-1");
        insert("2600:1f18::/33", "AWS/us-west-2");
        let table = table;
        assert_eq!(
            label_of(&table, "52.1.1.1").as_deref(),
            Some("AWS/us-east-1")
        );
        assert_eq!(
            label_of(&table, "52.95.1.1").as_deref(),
            Some("AWS/eu-west-1")
        );
        assert_eq!(label_of(&table, "52.128.0.1").as_deref(), None);
        assert_eq!(
            label_of(&table, "2600:1f18::1").as_deref(),
            Some("AWS/us-west-2")
        );
        assert_eq!(
            label_of(&table, "2600:1f01::1").as_deref(),
            Some("AWS/us-east-1")
        );
        assert_eq!(label_of(&table, "2600:2000::1").as_deref(), None);
    }

    #[test]
    fn published_formats_are_read() {
        let github = br#"{"verifiable_password_authentication": false, "ssh_keys": ["ssh-ed25519 AAAA"],
            "hooks": ["140.82.112.0/20", "2606:50c0::/32"], "domains": {"website": ["*.github.com"]}}"#;
        let table = Service::GitHub.parse(github).unwrap();
        assert_eq!(label_of(&table, "140.82.112.3").as_deref(), Some("GitHub"));
        assert_eq!(label_of(&table, "2606:50c0::1").as_deref(), Some("GitHub"));

        let aws = br#"{"syncToken": "1", "prefixes": [{"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2",
            "service": "AMAZON", "network_border_group": "ap-northeast-2"}],
            "ipv6_prefixes": [{"ipv6_prefix": "2600:1f18::/33", "region": "us-west-2", "service": "EC2"}]}"#;
        let table = Service::Aws.parse(aws).unwrap();
        assert_eq!(
            label_of(&table, "3.5.140.2").as_deref(),
            Some("AWS/ap-northeast-2")
        );
        assert_eq!(
            label_of(&table, "2600:1f18::5").as_deref(),
            Some("AWS/us-west-2")
        );

        let gcp = br#"{"syncToken": "1", "prefixes": [{"ipv4Prefix": "34.80.0.0/15", "service": "Google Cloud",
            "scope": "asia-east1"}, {"ipv6Prefix": "2600:1900:4000::/44", "service": "Google Cloud", "scope": "us-central1"}]}"#;
        let table = Service::Gcp.parse(gcp).unwrap();
        assert_eq!(
            label_of(&table, "34.81.0.1").as_deref(),
            Some("GCP/asia-east1")
        );
        assert_eq!(
            label_of(&table, "2600:1900:4000::1").as_deref(),
            Some("GCP/us-central1")
        );

        let vpn = b"# datacenters\n104.131.0.0/16\n\n";
        assert_eq!(
            label_of(&Service::Vpn.parse(vpn).unwrap(), "104.131.0.1").as_deref(),
            Some("VPN")
        );
    }

    #[test]
    fn broken_lists_are_errors() {
        assert!(Service::Aws.parse(b"<html>rate limited</html>").is_err());
        assert!(Service::Gcp.parse(b"{}").is_err());
        assert!(Service::Vpn.parse(b"not a range\n").is_err());
        assert!(Service::GitHub.parse(b"[]").is_err());
    }
}
