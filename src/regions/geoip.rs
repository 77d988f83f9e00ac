//! Places from an offline IP database (MMDB): `MaxMind` `GeoLite2`/`GeoIP2` City or Country,
//! DB-IP City/Country Lite, `IPinfo`'s free country database. Read with the `maxminddb` crate; only the
//! country and the first subdivision are used.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::PathElement;

use crate::labels::RegionLabel;

/// An open IP database.
pub(crate) struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

/// What the database says of one address: a label, and a subdivision name the ISO table could
/// not place (`CC: name`), if any.
pub(crate) type Located = (RegionLabel, Option<String>);

/// The attribution a database's license asks of whoever publishes data derived from it, by its
/// type (`None` when its license asks none, or the type is not known).
pub(crate) fn attribution(database_type: &str) -> Option<&'static str> {
    let kind = database_type.to_ascii_lowercase();
    if kind.starts_with("geolite2") {
        Some(
            "This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com.",
        )
    } else if kind.starts_with("dbip") || kind.starts_with("db-ip") {
        Some(
            "IP geolocation by DB-IP (https://db-ip.com), licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).",
        )
    } else if kind.starts_with("ipinfo") {
        Some(
            "IP address data powered by IPinfo (https://ipinfo.io), licensed under CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/).",
        )
    } else {
        None
    }
}

/// The stage state key holding the type of the database that placed requesters.
pub(crate) const DATABASE_STATE: &str = "geoip_database";

impl GeoIp {
    /// Opens a database file; a missing or damaged file is an error saying how to get one.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|error| {
            anyhow::anyhow!(
                "cannot open the IP database {} ({error}): download one with `s3tally update geoip`, or give another with --geoip-db",
                path.display()
            )
        })?;
        Ok(Self { reader })
    }

    /// The database's type (`GeoLite2-City`, `DBIP-City-Lite`...) and build time (Unix seconds).
    pub(crate) fn describe(&self) -> (String, u64) {
        let metadata = self.reader.metadata();
        (metadata.database_type.clone(), metadata.build_epoch)
    }

    /// The place of an address: its country and first subdivision (by ISO code, else by English
    /// name through the ISO table), its country alone, or `unknown` when the database does not
    /// know it.
    pub(crate) fn locate(&self, ip: IpAddr) -> Located {
        let Ok(found) = self.reader.lookup(ip) else {
            // an IPv6 address in an IPv4-only database, a damaged record
            return (RegionLabel::unknown(), None);
        };
        let text = |path: &[PathElement<'_>]| -> Option<&str> {
            found.decode_path::<&str>(path).ok().flatten()
        };
        let country = text(&[PathElement::Key("country"), PathElement::Key("iso_code")])
            // IPinfo's free database: `country` is the code itself
            .or_else(|| text(&[PathElement::Key("country")]));
        let Some(country) = country else {
            return (RegionLabel::unknown(), None);
        };
        let subdivisions = || PathElement::Key("subdivisions");
        let code = text(&[
            subdivisions(),
            PathElement::Index(0),
            PathElement::Key("iso_code"),
        ]);
        if code.is_some() {
            return RegionLabel::place_coded(country, code)
                .map_or_else(|| (RegionLabel::unknown(), None), |label| (label, None));
        }
        let name = text(&[
            subdivisions(),
            PathElement::Index(0),
            PathElement::Key("names"),
            PathElement::Key("en"),
        ]);
        match RegionLabel::place_named(country, name) {
            Some((label, unplaced)) => {
                let unplaced = unplaced.map(|name| format!("{}: {name}", label.as_str()));
                (label, unplaced)
            }
            None => (RegionLabel::unknown(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(name: &str) -> GeoIp {
        GeoIp::open(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/geoip")
                .join(name),
        )
        .unwrap()
    }

    fn locate(db: &GeoIp, ip: &str) -> (String, Option<String>) {
        let (label, unplaced) = db.locate(ip.parse().unwrap());
        (label.as_str().to_owned(), unplaced)
    }

    #[test]
    fn city_country_and_ipinfo_shapes_give_labels() {
        // expected values: the records written by fixtures/geoip/make_test_databases.py
        let city = database("s3tally-test-city.mmdb");
        assert_eq!(city.describe().0, "GeoLite2-City");
        assert_eq!(locate(&city, "8.8.8.8"), ("US-CA".into(), None));
        assert_eq!(
            locate(&city, "2001:4860:4860::8888"),
            ("US-CA".into(), None)
        );
        assert_eq!(locate(&city, "1.1.1.1"), ("AU-QLD".into(), None));
        assert_eq!(locate(&city, "9.9.9.9"), ("CH".into(), None));
        // a subdivision named only: placed through the ISO table's English names
        assert_eq!(locate(&city, "149.112.112.112"), ("DE-BY".into(), None));
        // no country, and an address the database does not have
        assert_eq!(locate(&city, "9.9.9.10"), ("unknown".into(), None));
        assert_eq!(locate(&city, "208.67.222.222"), ("unknown".into(), None));
        let country = database("s3tally-test-country.mmdb");
        assert_eq!(locate(&country, "8.8.8.8"), ("US".into(), None));
        assert_eq!(
            locate(&country, "2001:4860:4860::8844"),
            ("US".into(), None)
        );
        assert_eq!(locate(&country, "1.1.1.1"), ("unknown".into(), None));
        let ipinfo = database("s3tally-test-ipinfo-country.mmdb");
        assert_eq!(locate(&ipinfo, "8.8.8.8"), ("US".into(), None));
    }

    #[test]
    fn a_missing_or_damaged_database_is_an_error_saying_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = GeoIp::open(&dir.path().join("none.mmdb")).err().unwrap();
        assert!(
            missing.to_string().contains("s3tally update geoip"),
            "{missing}"
        );
        let damaged = dir.path().join("damaged.mmdb");
        std::fs::write(&damaged, b"not a database at all").unwrap();
        assert!(GeoIp::open(&damaged).is_err());
        // a truncated real database
        let real = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/geoip/s3tally-test-city.mmdb"),
        )
        .unwrap();
        std::fs::write(&damaged, &real[..real.len() / 2]).unwrap();
        assert!(GeoIp::open(&damaged).is_err());
    }
}
