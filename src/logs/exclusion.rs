//! Requesters to leave out at extraction (the archive's own machines): addresses, ranges, or a
//! pattern matched against the address as written in the log.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;

/// Requesters to leave out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exclusion {
    /// Addresses and ranges.
    pub networks: Vec<IpNet>,
    /// A pattern matched against the IP as written in the log.
    pub pattern: Option<Regex>,
}

impl Exclusion {
    /// Whether a requester (its IP as written, and parsed) is left out.
    pub(crate) fn excludes(&self, raw: &str, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.networks.iter().any(|net| net.contains(&ip)))
            || self.pattern.as_ref().is_some_and(|re| re.is_match(raw))
    }
}

/// Parses an `--exclude-ip` value: an address (`192.0.2.7`, `2001:db8::1`) or a range (`192.0.2.0/24`).
pub(crate) fn parse_ip_or_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is neither an IP address nor a CIDR range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusion_by_network_and_pattern() {
        let exclusion = Exclusion {
            networks: vec![
                parse_ip_or_network("192.0.2.0/24").unwrap(),
                parse_ip_or_network("2001:db8::1").unwrap(),
            ],
            pattern: Some(Regex::new(r"^198\.51\.100\.").unwrap()),
        };
        let check = |text: &str| exclusion.excludes(text, text.parse().ok());
        assert!(check("192.0.2.200"));
        assert!(check("2001:db8::1"));
        assert!(!check("2001:db8::2"));
        assert!(check("198.51.100.9"));
        assert!(!check("203.0.113.1"));
        assert!(parse_ip_or_network("not-an-ip").is_err());
    }
}
