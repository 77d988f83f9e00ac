//! Built-in places: every country and ISO 3166-2 subdivision from the ISO tables ([`super::iso`]),
//! and cloud regions from `region_coordinates.tsv` beside this file (the data centre's city and
//! country). They win over the geocoder.

use std::collections::HashMap;

use super::RegionLabel;
use super::iso::iso;

/// A place of the built-in tables.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KnownPlace {
    /// Latitude (for a cloud region, its data centre's city).
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// The built-in places.
#[derive(Debug, Clone)]
pub(crate) struct Places {
    /// Cloud regions, by label text.
    clouds: HashMap<String, KnownPlace>,
}

impl Places {
    /// Reads the tables shipped with s3tally.
    pub(crate) fn builtin() -> Self {
        let clouds = include_str!("region_coordinates.tsv")
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
        Self { clouds }
    }

    /// The place of a label, if the tables have it: a subdivision's or a country's reference
    /// point, a cloud region's city.
    pub(crate) fn get(&self, label: &RegionLabel) -> Option<KnownPlace> {
        if let Some(country) = label.place_country() {
            let tables = iso();
            let (latitude, longitude) = match label.place_subdivision() {
                Some(code) => tables
                    .subdivision(code)
                    .map(|s| (s.latitude, s.longitude))?,
                None => tables.country(country).map(|c| (c.latitude, c.longitude))?,
            };
            return Some(KnownPlace {
                latitude,
                longitude,
                country: country.to_owned(),
            });
        }
        self.clouds.get(label.as_str()).cloned()
    }

    /// The country of a label: the country part of a place label, the data centre's country for a
    /// cloud region in the table; none for service and place-less labels.
    pub(crate) fn country(&self, label: &RegionLabel) -> Option<String> {
        label
            .place_country()
            .map(str::to_owned)
            .or_else(|| self.clouds.get(label.as_str()).map(|p| p.country.clone()))
    }

    /// Every cloud label and place of the table.
    #[cfg(test)]
    pub(crate) fn clouds(&self) -> impl Iterator<Item = (&str, &KnownPlace)> {
        self.clouds
            .iter()
            .map(|(label, place)| (label.as_str(), place))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str) -> RegionLabel {
        RegionLabel::parse(text).unwrap()
    }

    #[test]
    fn the_builtin_tables_place_countries_subdivisions_and_clouds() {
        let places = Places::builtin();
        assert!(places.clouds().count() > 90);
        // Saransk's region, not Missouri
        let mordoviya = places.get(&label("RU-MO")).unwrap();
        assert!((53.0..55.5).contains(&mordoviya.latitude));
        assert!((42.0..47.0).contains(&mordoviya.longitude));
        assert_eq!(places.get(&label("GCP/asia-east1")).unwrap().country, "TW");
        assert_eq!(
            places.get(&label("Azure/westeurope")).unwrap().country,
            "NL"
        );
        let switzerland = places.get(&label("CH")).unwrap();
        assert!((45.8..47.9).contains(&switzerland.latitude));
        for known in ["AWS/us-east-1", "GCP/us-central1", "PL-12", "NZ-TKI", "US"] {
            assert!(places.get(&label(known)).is_some(), "{known}");
        }
        assert_eq!(places.get(&label("US-ZZ")), None);
        for (text, place) in places.clouds() {
            assert!(RegionLabel::parse(text).is_ok(), "{text}");
            assert!((-90.0..=90.0).contains(&place.latitude), "{text}");
            assert!((-180.0..=180.0).contains(&place.longitude), "{text}");
            assert_eq!(place.country.len(), 2, "{text}");
        }
    }

    #[test]
    fn countries_of_labels() {
        let places = Places::builtin();
        let country = |text: &str| places.country(&label(text));
        assert_eq!(country("US-CA").as_deref(), Some("US"));
        assert_eq!(country("CH").as_deref(), Some("CH"));
        assert_eq!(country("AWS/eu-west-1").as_deref(), Some("IE"));
        assert_eq!(country("GCP/asia-east1").as_deref(), Some("TW"));
        for none in ["VPN", "GitHub", "bogon", "unknown", "missing", "AWS/GLOBAL"] {
            assert_eq!(country(none), None, "{none}");
        }
    }
}
