//! The built-in table of places (`region_coordinates.tsv` beside this file): coordinates and
//! country of cloud regions and of the labels geocoders place wrongly. It wins over the geocoder.

use std::collections::HashMap;

use super::RegionLabel;

/// A place of the built-in table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KnownPlace {
    /// Latitude (for a cloud region, its data centre's city).
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// The built-in table, by label text.
#[derive(Debug, Clone)]
pub(crate) struct Places(HashMap<String, KnownPlace>);

impl Places {
    /// Reads the table shipped with s3tally.
    pub(crate) fn builtin() -> Self {
        let table = include_str!("region_coordinates.tsv")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.starts_with("label\t"))
            .filter_map(|line| {
                let mut fields = line.split('\t');
                let label = fields.next()?;
                let place = KnownPlace {
                    latitude: fields.next()?.parse().ok()?,
                    longitude: fields.next()?.parse().ok()?,
                    country: fields.next()?.to_owned(),
                };
                Some((label.to_owned(), place))
            })
            .collect();
        Self(table)
    }

    /// The place of a label, if the table has it.
    pub(crate) fn get(&self, label: &RegionLabel) -> Option<&KnownPlace> {
        self.0.get(label.as_str())
    }

    /// The country of a label: the data centre's country for a cloud region in the table, the
    /// country part of a place label; none for service and place-less labels.
    pub(crate) fn country<'a>(&'a self, label: &'a RegionLabel) -> Option<&'a str> {
        self.get(label)
            .map(|place| place.country.as_str())
            .or_else(|| label.place_country())
    }

    /// Every label and place of the table.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &KnownPlace)> {
        self.0.iter().map(|(label, place)| (label.as_str(), place))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str) -> RegionLabel {
        RegionLabel::parse(text).unwrap()
    }

    #[test]
    fn the_builtin_table_reads_and_knows_the_tricky_labels() {
        let places = Places::builtin();
        assert!(places.iter().count() > 90);
        // Saransk, not Missouri
        let mordoviya = places.get(&label("RU/Mordoviya Republic")).unwrap();
        assert!((54.0..55.0).contains(&mordoviya.latitude));
        assert!((45.0..46.0).contains(&mordoviya.longitude));
        assert_eq!(places.get(&label("GCP/asia-east1")).unwrap().country, "TW");
        for known in [
            "AWS/us-east-1",
            "GCP/us-central1",
            "PL/Lesser Poland",
            "NZ/Taranaki Region",
        ] {
            assert!(places.get(&label(known)).is_some(), "{known}");
        }
        for (text, place) in places.iter() {
            assert!(RegionLabel::parse(text).is_ok(), "{text}");
            assert!((-90.0..=90.0).contains(&place.latitude), "{text}");
            assert!((-180.0..=180.0).contains(&place.longitude), "{text}");
            assert_eq!(place.country.len(), 2, "{text}");
        }
    }

    #[test]
    fn countries_of_labels() {
        let places = Places::builtin();
        let country = |text: &str| places.country(&label(text)).map(str::to_owned);
        assert_eq!(country("US/California").as_deref(), Some("US"));
        assert_eq!(country("CH").as_deref(), Some("CH"));
        assert_eq!(country("AWS/eu-west-1").as_deref(), Some("IE"));
        assert_eq!(country("GCP/asia-east1").as_deref(), Some("TW"));
        for none in ["VPN", "GitHub", "bogon", "unknown", "missing", "AWS/GLOBAL"] {
            assert_eq!(country(none), None, "{none}");
        }
    }
}
