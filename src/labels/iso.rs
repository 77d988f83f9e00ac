//! The bundled ISO 3166 tables (`iso3166-1.tsv`, `iso3166-2.tsv` beside this file, written by
//! `make_iso_tables.py` from MIT-licensed sources, and `region_aliases.tsv`, names ipinfo gives
//! that the table lacks): countries (alpha-2, alpha-3, name, reference
//! point) and subdivisions (code, names, reference point). They turn a region name into its
//! ISO 3166-2 code, a code into the name or alpha-3 form a label style publishes, and place every
//! country and subdivision without a geocoder.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A country of ISO 3166-1.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Country {
    /// Alpha-3 code (`USA`).
    pub alpha3: String,
    /// English short name.
    pub name: String,
    /// Reference point: latitude.
    pub latitude: f64,
    /// Reference point: longitude.
    pub longitude: f64,
}

/// A subdivision of ISO 3166-2.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subdivision {
    /// Its name.
    pub name: String,
    /// Reference point: latitude.
    pub latitude: f64,
    /// Reference point: longitude.
    pub longitude: f64,
}

/// The tables.
#[derive(Debug)]
pub(crate) struct Iso {
    countries: HashMap<String, Country>,
    alpha2_of: HashMap<String, String>,
    subdivisions: HashMap<String, Subdivision>,
    /// (alpha-2, lowercase name or other English name) -> subdivision code; the first by code
    /// wins when two share a name.
    by_name: HashMap<(String, String), String>,
}

/// The tables, read once.
pub(crate) fn iso() -> &'static Iso {
    static TABLES: OnceLock<Iso> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut iso = Iso::parse(include_str!("iso3166-1.tsv"), include_str!("iso3166-2.tsv"));
        for fields in rows(include_str!("region_aliases.tsv")) {
            if let [country, name, code] = fields[..] {
                iso.by_name
                    .insert((country.to_owned(), name.to_lowercase()), code.to_owned());
            }
        }
        iso
    })
}

/// The data rows of a bundled table (comments and the header skipped), split at tabs.
fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .skip(1)
        .map(|line| line.split('\t').collect())
}

impl Iso {
    fn parse(countries_text: &str, subdivisions_text: &str) -> Self {
        let mut iso = Self {
            countries: HashMap::new(),
            alpha2_of: HashMap::new(),
            subdivisions: HashMap::new(),
            by_name: HashMap::new(),
        };
        for fields in rows(countries_text) {
            let [alpha2, alpha3, name, latitude, longitude] = fields[..] else {
                continue;
            };
            let (Ok(latitude), Ok(longitude)) = (latitude.parse(), longitude.parse()) else {
                continue;
            };
            iso.alpha2_of.insert(alpha3.to_owned(), alpha2.to_owned());
            iso.countries.insert(
                alpha2.to_owned(),
                Country {
                    alpha3: alpha3.to_owned(),
                    name: name.to_owned(),
                    latitude,
                    longitude,
                },
            );
        }
        for fields in rows(subdivisions_text) {
            let [code, name, others, latitude, longitude] = fields[..] else {
                continue;
            };
            let (Ok(latitude), Ok(longitude)) = (latitude.parse(), longitude.parse()) else {
                continue;
            };
            let country = &code[..2];
            for known in std::iter::once(name).chain(others.split(';').filter(|o| !o.is_empty())) {
                iso.by_name
                    .entry((country.to_owned(), known.to_lowercase()))
                    .or_insert_with(|| code.to_owned());
            }
            iso.subdivisions.insert(
                code.to_owned(),
                Subdivision {
                    name: name.to_owned(),
                    latitude,
                    longitude,
                },
            );
        }
        iso
    }

    /// A country by its alpha-2 code.
    pub(crate) fn country(&self, alpha2: &str) -> Option<&Country> {
        self.countries.get(alpha2)
    }

    /// The alpha-2 code of an alpha-3 code.
    pub(crate) fn alpha2(&self, alpha3: &str) -> Option<&str> {
        self.alpha2_of.get(alpha3).map(String::as_str)
    }

    /// A subdivision by its code (`US-CA`).
    pub(crate) fn subdivision(&self, code: &str) -> Option<&Subdivision> {
        self.subdivisions.get(code)
    }

    /// The code of a subdivision of `alpha2` by its name or another English name, any case
    /// (`California`, `Beijing`); a trailing ` Region`, ` Province` or ` State` is also tried
    /// without.
    pub(crate) fn code_of(&self, alpha2: &str, name: &str) -> Option<&str> {
        let name = name.trim().to_lowercase();
        let find = |name: &str| {
            self.by_name
                .get(&(alpha2.to_owned(), name.to_owned()))
                .map(String::as_str)
        };
        find(&name).or_else(|| {
            [
                " region",
                " province",
                " state",
                " county",
                " oblast",
                " voivodeship",
            ]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).and_then(find))
        })
    }

    /// Every subdivision code.
    #[cfg(test)]
    pub(crate) fn codes(&self) -> impl Iterator<Item = &str> {
        self.subdivisions.keys().map(String::as_str)
    }

    /// How many countries and subdivisions the tables hold.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.countries.len(), self.subdivisions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_tables_name_code_and_place() {
        let iso = iso();
        let (countries, subdivisions) = iso.sizes();
        assert!(countries > 230, "{countries}");
        assert!(subdivisions > 5000, "{subdivisions}");
        assert_eq!(iso.country("US").unwrap().alpha3, "USA");
        assert_eq!(iso.alpha2("DEU"), Some("DE"));
        let california = iso.subdivision("US-CA").unwrap();
        assert_eq!(california.name, "California");
        // California's reference point lies inside the state
        assert!((32.5..42.0).contains(&california.latitude));
        assert!((-124.5..-114.0).contains(&california.longitude));
        assert_eq!(iso.code_of("US", "california"), Some("US-CA"));
        // ipinfo's English name, where ISO's name differs
        assert_eq!(iso.code_of("CN", "Beijing"), Some("CN-BJ"));
        assert_eq!(iso.code_of("GB", "England"), Some("GB-ENG"));
        assert_eq!(iso.code_of("US", "Atlantis"), None);
        // suffixes ipinfo adds, and the aliases
        assert_eq!(iso.code_of("NZ", "Taranaki Region"), Some("NZ-TKI"));
        assert_eq!(iso.code_of("PL", "Lesser Poland"), Some("PL-12"));
        assert_eq!(iso.code_of("RU", "Mordoviya Republic"), Some("RU-MO"));
        let mordoviya = iso.subdivision("RU-MO").unwrap();
        // Saransk's region, not Missouri
        assert!((53.0..55.5).contains(&mordoviya.latitude));
        assert!((42.0..47.0).contains(&mordoviya.longitude));
        // a name of another country's subdivision is not this country's
        assert_eq!(iso.code_of("DE", "California"), None);
    }
}
