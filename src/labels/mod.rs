//! Region labels: where a requester is, as stored and published.
//!
//! A label is parsed and checked once, into a [`RegionLabel`], and every stage asks it what it
//! is rather than looking at its text. The forms:
//!
//! | label | kind | means |
//! |---|---|---|
//! | `unknown` | unknown | the address does not parse, or no source knows it |
//! | `bogon` | bogon | not globally routable |
//! | `GitHub` | GitHub | GitHub's published ranges (CI traffic: no views, not a requester) |
//! | `AWS/<region>` | AWS | Amazon's published ranges |
//! | `GCP/<scope>` | GCP | Google Cloud's published ranges |
//! | `Azure/<region>` | Azure | Microsoft Azure's published service tags |
//! | `VPN` | VPN | a VPN or datacenter range |
//! | `CC` or `CC-SUB` | place | ISO 3166-1 alpha-2 country, optionally its ISO 3166-2 subdivision |
//! | `missing` | missing | not resolved yet (only in summaries, never stored) |
//! | `other` | other | the pooled regions too few requesters stand behind (only in summaries) |
//!
//! A place is stored in that one canonical form and published in a [`LabelStyle`]: `US/California`
//! (names) or `USA/CA` (ISO), so the style can change without resolving anyone again.

pub(crate) mod iso;
pub(crate) mod places;

use std::fmt;

/// What kind of label it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelKind {
    /// `unknown`.
    Unknown,
    /// `bogon`.
    Bogon,
    /// `GitHub`.
    GitHub,
    /// `AWS/<region>`.
    Aws,
    /// `GCP/<scope>`.
    Gcp,
    /// `Azure/<region>`.
    Azure,
    /// `VPN`.
    Vpn,
    /// `CC` or `CC/<region>`.
    Place,
    /// `missing`: not resolved yet.
    Missing,
    /// `other`: regions pooled because too few requesters stand behind each.
    Other,
}

impl LabelKind {
    /// How reports name the kind: `unknown`, `bogon`, `GitHub`, `AWS`, `GCP`, `VPN`, `place`,
    /// `missing`.
    pub const fn name(self) -> &'static str {
        match self {
            LabelKind::Unknown => "unknown",
            LabelKind::Bogon => "bogon",
            LabelKind::GitHub => "GitHub",
            LabelKind::Aws => "AWS",
            LabelKind::Gcp => "GCP",
            LabelKind::Azure => "Azure",
            LabelKind::Vpn => "VPN",
            LabelKind::Place => "place",
            LabelKind::Missing => "missing",
            LabelKind::Other => "other",
        }
    }
}

/// A label that is none of the forms above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a region label")]
pub struct LabelError(pub String);

/// A checked region label. Labels compare and sort by their text, as they are published.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionLabel {
    text: String,
    kind: LabelKind,
}

impl RegionLabel {
    fn fixed(text: &str, kind: LabelKind) -> Self {
        Self {
            text: text.to_owned(),
            kind,
        }
    }

    /// `unknown`.
    pub fn unknown() -> Self {
        Self::fixed("unknown", LabelKind::Unknown)
    }

    /// `bogon`.
    pub fn bogon() -> Self {
        Self::fixed("bogon", LabelKind::Bogon)
    }

    /// `other`: the pooled regions of a `by_region.tsv`.
    pub fn other() -> Self {
        Self::fixed("other", LabelKind::Other)
    }

    /// `missing`: a requester not resolved yet.
    pub fn missing() -> Self {
        Self::fixed("missing", LabelKind::Missing)
    }

    /// A place from a country code (any case) and a region name (from ipinfo): the subdivision
    /// the ISO 3166-2 table knows by that name, else the country alone, with the name it could
    /// not place (control characters dropped, at most 100 characters) to be reported. `None` when
    /// the code is not two letters.
    pub fn place_named(country: &str, region: Option<&str>) -> Option<(Self, Option<String>)> {
        let country = country.to_ascii_uppercase();
        if !is_country_code(&country) {
            return None;
        }
        let region = region
            .map(|r| {
                let printable: String = r
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_REGION_CHARS)
                    .collect();
                printable.trim().to_owned()
            })
            .filter(|r| !r.is_empty());
        let Some(region) = region else {
            return Some((Self::country(country), None));
        };
        Some(match iso::iso().code_of(&country, &region) {
            Some(code) => (Self::subdivision(code), None),
            None => (Self::country(country), Some(region)),
        })
    }

    /// A place from a country code and an ISO 3166-2 subdivision code without the country part
    /// (`US` and `CA`, as IP databases give them). `None` when the country is not two letters; a
    /// subdivision code that is not 1 to 3 letters or digits gives the country alone.
    pub fn place_coded(country: &str, subdivision: Option<&str>) -> Option<Self> {
        let country = country.to_ascii_uppercase();
        if !is_country_code(&country) {
            return None;
        }
        Some(match subdivision.map(str::to_ascii_uppercase) {
            Some(code) if is_subdivision_part(&code) => {
                Self::subdivision(&format!("{country}-{code}"))
            }
            _ => Self::country(country),
        })
    }

    fn country(code: String) -> Self {
        Self {
            text: code,
            kind: LabelKind::Place,
        }
    }

    fn subdivision(code: &str) -> Self {
        Self {
            text: code.to_owned(),
            kind: LabelKind::Place,
        }
    }

    /// Reads a label written before places were stored as ISO codes: `CC/<region name>` becomes
    /// its canonical form (the country alone when the table cannot place the name); any other
    /// text is read as [`RegionLabel::parse`] reads it.
    pub fn parse_legacy(text: &str) -> Result<Self, LabelError> {
        if let Some((country, region)) = text.split_once('/')
            && is_country_code(country)
        {
            return Self::place_named(country, Some(region))
                .map(|(label, _)| label)
                .ok_or_else(|| LabelError(text.to_owned()));
        }
        Self::parse(text)
    }

    /// Reads a label as published in either style (`US/California`, `USA/CA`, `USA`) or in its
    /// canonical form.
    pub fn parse_published(text: &str) -> Result<Self, LabelError> {
        if let Ok(label) = Self::parse(text) {
            return Ok(label);
        }
        let tables = iso::iso();
        let (head, rest) = match text.split_once('/') {
            Some((head, rest)) => (head, Some(rest)),
            None => (text, None),
        };
        let fail = || LabelError(text.escape_debug().to_string());
        if let Some(alpha2) = tables.alpha2(head) {
            return Self::place_coded(alpha2, rest).ok_or_else(fail);
        }
        match (is_country_code(head), rest) {
            (true, Some(name)) => match tables.code_of(head, name) {
                Some(code) => Ok(Self::subdivision(code)),
                // a name the table does not have: written as its code part by the names style
                None if is_subdivision_part(name) => {
                    Ok(Self::subdivision(&format!("{head}-{name}")))
                }
                None => Err(fail()),
            },
            _ => Err(fail()),
        }
    }

    /// The label as published in `style`: places as `US/California` or `USA/CA` (`US` or `USA`
    /// alone), every other label as it is.
    pub fn published(&self, style: LabelStyle) -> std::borrow::Cow<'_, str> {
        let Some(country) = self.place_country() else {
            return std::borrow::Cow::Borrowed(&self.text);
        };
        let tables = iso::iso();
        let head = match style {
            LabelStyle::Names => country.to_owned(),
            LabelStyle::Iso => tables
                .country(country)
                .map_or_else(|| country.to_owned(), |c| c.alpha3.clone()),
        };
        let Some(code) = self.place_subdivision() else {
            return std::borrow::Cow::Owned(head);
        };
        let part = &code[3..];
        let tail = match style {
            // the name only where it reads back as this subdivision (names shared by two
            // subdivisions of a country, or holding a `/`, would not): else the code part
            LabelStyle::Names => tables
                .subdivision(code)
                .map(|subdivision| subdivision.name.as_str())
                .filter(|name| !name.contains('/') && tables.code_of(country, name) == Some(code))
                .unwrap_or(part),
            LabelStyle::Iso => part,
        };
        std::borrow::Cow::Owned(format!("{head}/{}", tail.replace('/', "-")))
    }

    /// Reads a label's text (no control character allowed).
    pub fn parse(text: &str) -> Result<Self, LabelError> {
        if text.chars().any(char::is_control) {
            return Err(LabelError(text.escape_debug().to_string()));
        }
        let kind = match text {
            "unknown" => LabelKind::Unknown,
            "bogon" => LabelKind::Bogon,
            "GitHub" => LabelKind::GitHub,
            "VPN" => LabelKind::Vpn,
            "missing" => LabelKind::Missing,
            "other" => LabelKind::Other,
            _ => match text.split_once('/') {
                Some(("AWS", rest)) if !rest.is_empty() => LabelKind::Aws,
                Some(("GCP", rest)) if !rest.is_empty() => LabelKind::Gcp,
                Some(("Azure", rest)) if !rest.is_empty() => LabelKind::Azure,
                None if is_country_code(text) => LabelKind::Place,
                None if text.len() > 3
                    && is_country_code(&text[..2])
                    && text.as_bytes()[2] == b'-'
                    && is_subdivision_part(&text[3..]) =>
                {
                    LabelKind::Place
                }
                _ => return Err(LabelError(text.to_owned())),
            },
        };
        Ok(Self {
            text: text.to_owned(),
            kind,
        })
    }

    /// The label's text, as stored and published.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What kind of label it is.
    pub fn kind(&self) -> LabelKind {
        self.kind
    }

    /// Whether it names a region: a place with a subdivision, or a cloud region (`US-CA`,
    /// `AWS/us-east-1`, not `US` nor `bogon`).
    pub fn is_resolved_region(&self) -> bool {
        self.place_subdivision().is_some() || self.is_cloud()
    }

    /// Whether it is a cloud region (`AWS/...`, `GCP/...`, `Azure/...`).
    pub fn is_cloud(&self) -> bool {
        matches!(
            self.kind,
            LabelKind::Aws | LabelKind::Gcp | LabelKind::Azure
        )
    }

    /// Whether it can have coordinates: places and cloud regions.
    pub fn has_place(&self) -> bool {
        self.kind == LabelKind::Place || self.is_cloud()
    }

    /// The ISO 3166-1 alpha-2 country of a place label (`US` of `US-CA`).
    pub fn place_country(&self) -> Option<&str> {
        (self.kind == LabelKind::Place).then(|| &self.text[..2])
    }

    /// The ISO 3166-2 subdivision code of a place label (`US-CA`), if it has one.
    pub fn place_subdivision(&self) -> Option<&str> {
        (self.kind == LabelKind::Place && self.text.len() > 2).then_some(self.text.as_str())
    }

    /// The subdivision's name (`California` of `US-CA`), from the ISO table.
    pub fn place_region(&self) -> Option<&str> {
        let code = self.place_subdivision()?;
        iso::iso()
            .subdivision(code)
            .map(|subdivision| subdivision.name.as_str())
    }
}

/// How place labels are published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
pub enum LabelStyle {
    /// `US/California`: alpha-2 country and subdivision name (s3-log-extraction before 1.11).
    #[default]
    Names,
    /// `USA/CA`: alpha-3 country and ISO 3166-2 subdivision code (s3-log-extraction 1.11).
    Iso,
}

/// Whether `text` is the part of an ISO 3166-2 code after the country: 1 to 3 capital letters
/// or digits.
fn is_subdivision_part(text: &str) -> bool {
    (1..=3).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Longest region name kept, in characters.
const MAX_REGION_CHARS: usize = 100;

/// Whether `text` is two ASCII capital letters.
fn is_country_code(text: &str) -> bool {
    text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase())
}

impl fmt::Display for RegionLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for RegionLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionLabel({})", self.text)
    }
}

impl TryFrom<String> for RegionLabel {
    type Error = LabelError;

    fn try_from(text: String) -> Result<Self, LabelError> {
        Self::parse(&text)
    }
}

impl From<RegionLabel> for String {
    fn from(label: RegionLabel) -> String {
        label.text
    }
}

impl std::str::FromStr for RegionLabel {
    type Err = LabelError;

    fn from_str(text: &str) -> Result<Self, LabelError> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<LabelKind> {
        RegionLabel::parse(text).ok().map(|l| l.kind())
    }

    #[test]
    fn every_form_parses_to_its_kind_and_nothing_else_does() {
        assert_eq!(kind("unknown"), Some(LabelKind::Unknown));
        assert_eq!(kind("bogon"), Some(LabelKind::Bogon));
        assert_eq!(kind("GitHub"), Some(LabelKind::GitHub));
        assert_eq!(kind("VPN"), Some(LabelKind::Vpn));
        assert_eq!(kind("missing"), Some(LabelKind::Missing));
        assert_eq!(kind("AWS/us-east-1"), Some(LabelKind::Aws));
        assert_eq!(kind("GCP/asia-east1"), Some(LabelKind::Gcp));
        assert_eq!(kind("Azure/westeurope"), Some(LabelKind::Azure));
        assert_eq!(kind("US-CA"), Some(LabelKind::Place));
        assert_eq!(kind("FR-75C"), Some(LabelKind::Place));
        assert_eq!(kind("CH"), Some(LabelKind::Place));
        for bad in [
            "",
            "AWS",
            "AWS/",
            "us-CA",
            "US-",
            "US-CALI",
            "US/California",
            "USA/CA",
            "C",
            "github",
        ] {
            assert_eq!(kind(bad), None, "{bad}");
        }
    }

    #[test]
    fn places_are_built_from_ipinfo_answers_and_ip_databases() {
        let named = |c, r| {
            RegionLabel::place_named(c, r).map(|(label, unplaced)| (label.to_string(), unplaced))
        };
        assert_eq!(
            named("us", Some(" California ")),
            Some(("US-CA".into(), None))
        );
        assert_eq!(named("CN", Some("Beijing")), Some(("CN-BJ".into(), None)));
        assert_eq!(named("CH", Some("  ")), Some(("CH".into(), None)));
        assert_eq!(named("CH", None), Some(("CH".into(), None)));
        assert_eq!(named("C1", None), None);
        // a name the table cannot place: the country, and the name to report (cleaned)
        assert_eq!(
            named("US", Some("Atlan\ttis\u{0}")),
            Some(("US".into(), Some("Atlantis".into())))
        );
        let long = "x".repeat(500);
        assert_eq!(named("US", Some(&long)).unwrap().1.unwrap().len(), 100);
        let coded = |c, s| RegionLabel::place_coded(c, s).map(|l| l.to_string());
        assert_eq!(coded("us", Some("ca")).as_deref(), Some("US-CA"));
        assert_eq!(coded("GB", Some("ENG")).as_deref(), Some("GB-ENG"));
        assert_eq!(coded("US", Some("../x")).as_deref(), Some("US"));
        assert_eq!(coded("US", None).as_deref(), Some("US"));
        assert_eq!(coded("USA", None), None);
    }

    #[test]
    fn styles_write_and_read_back_every_place() {
        let ca = RegionLabel::parse("US-CA").unwrap();
        assert_eq!(ca.published(LabelStyle::Names), "US/California");
        assert_eq!(ca.published(LabelStyle::Iso), "USA/CA");
        let ch = RegionLabel::parse("CH").unwrap();
        assert_eq!(ch.published(LabelStyle::Names), "CH");
        assert_eq!(ch.published(LabelStyle::Iso), "CHE");
        let aws = RegionLabel::parse("AWS/eu-west-1").unwrap();
        assert_eq!(aws.published(LabelStyle::Iso), "AWS/eu-west-1");
        for label in [&ca, &ch, &aws, &RegionLabel::other()] {
            for style in [LabelStyle::Names, LabelStyle::Iso] {
                let text = label.published(style);
                assert_eq!(
                    &RegionLabel::parse_published(&text).unwrap(),
                    label,
                    "{text}"
                );
            }
        }
        // a code the table lacks is written as its code in both styles, and read back
        let unknown = RegionLabel::parse("US-ZZ").unwrap();
        assert_eq!(unknown.published(LabelStyle::Names), "US/ZZ");
        assert_eq!(RegionLabel::parse_published("US/ZZ").unwrap(), unknown);
        assert!(RegionLabel::parse_published("US/Atlantis").is_err());
        // labels stored before ISO codes
        assert_eq!(
            RegionLabel::parse_legacy("US/California").unwrap().as_str(),
            "US-CA"
        );
        assert_eq!(
            RegionLabel::parse_legacy("US/Atlantis").unwrap().as_str(),
            "US"
        );
        assert_eq!(
            RegionLabel::parse_legacy("AWS/us-east-1").unwrap().as_str(),
            "AWS/us-east-1"
        );
    }

    #[test]
    fn every_subdivision_of_the_table_reads_back_in_both_styles_and_no_two_share_a_text() {
        for style in [LabelStyle::Names, LabelStyle::Iso] {
            let mut seen = std::collections::HashMap::new();
            for code in iso::iso().codes() {
                let label = RegionLabel::parse(code).unwrap();
                let text = label.published(style).into_owned();
                assert_eq!(
                    RegionLabel::parse_published(&text).as_ref(),
                    Ok(&label),
                    "{code} as {text:?}"
                );
                if let Some(other) = seen.insert(text.clone(), code) {
                    panic!("{code} and {other} both written {text:?}");
                }
            }
        }
        // a name two subdivisions share: the first by code keeps it, the other its code
        assert_eq!(
            RegionLabel::parse("BD-13")
                .unwrap()
                .published(LabelStyle::Names),
            "BD/Dhaka"
        );
        assert_eq!(
            RegionLabel::parse("BD-C")
                .unwrap()
                .published(LabelStyle::Names),
            "BD/C"
        );
    }

    #[test]
    fn parts_resolution_and_order_follow_the_text() {
        let ca = RegionLabel::parse("US-CA").unwrap();
        assert_eq!(ca.place_country(), Some("US"));
        assert_eq!(ca.place_subdivision(), Some("US-CA"));
        assert_eq!(ca.place_region(), Some("California"));
        assert!(ca.is_resolved_region() && ca.has_place());
        let ch = RegionLabel::parse("CH").unwrap();
        assert_eq!((ch.place_country(), ch.place_region()), (Some("CH"), None));
        assert!(!ch.is_resolved_region() && ch.has_place());
        let aws = RegionLabel::parse("AWS/eu-west-1").unwrap();
        assert_eq!(aws.place_country(), None);
        assert!(aws.is_resolved_region() && aws.has_place());
        assert!(!RegionLabel::bogon().has_place());
        let mut labels = vec![RegionLabel::missing(), ca.clone(), aws.clone()];
        labels.sort();
        assert_eq!(labels, vec![aws, ca, RegionLabel::missing()]);
    }

    #[test]
    fn serde_goes_through_the_text() {
        let label = RegionLabel::parse("AWS/us-east-1").unwrap();
        let json = serde_json::to_string(&label).unwrap();
        assert_eq!(json, "\"AWS/us-east-1\"");
        assert_eq!(serde_json::from_str::<RegionLabel>(&json).unwrap(), label);
        assert!(serde_json::from_str::<RegionLabel>("\"nowhere\"").is_err());
    }
}
