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
//! | `VPN` | VPN | a VPN or datacenter range |
//! | `CC` or `CC/<region>` | place | ISO 3166-1 alpha-2 country, optionally a region name |
//! | `missing` | missing | not resolved yet (only in summaries, never stored) |
//! | `other` | other | the pooled regions too few requesters stand behind (only in summaries) |

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

    /// A place: an ISO 3166-1 alpha-2 country code (any case) and an optional region name, whose
    /// `/` become `-`, whose control characters are dropped (it comes from a remote service: a tab
    /// or line end would break a published row), shortened to 100 characters, without surrounding
    /// spaces. `None` when the code is not two letters.
    pub fn place(country: &str, region: Option<&str>) -> Option<Self> {
        if !is_country_code(&country.to_ascii_uppercase()) {
            return None;
        }
        let country = country.to_ascii_uppercase();
        let region = region
            .map(|r| {
                let printable: String = r
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_REGION_CHARS)
                    .collect();
                printable.trim().replace('/', "-")
            })
            .filter(|r| !r.is_empty());
        let text = match region {
            Some(region) => format!("{country}/{region}"),
            None => country,
        };
        Some(Self {
            text,
            kind: LabelKind::Place,
        })
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
                Some((country, rest)) if is_country_code(country) && !rest.is_empty() => {
                    LabelKind::Place
                }
                None if is_country_code(text) => LabelKind::Place,
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

    /// Whether it names a region: a place with a region, or a cloud region (`US/California`,
    /// `AWS/us-east-1`, not `US` nor `bogon`).
    pub fn is_resolved_region(&self) -> bool {
        self.text.contains('/')
    }

    /// Whether it can have coordinates: places and cloud regions.
    pub fn has_place(&self) -> bool {
        matches!(
            self.kind,
            LabelKind::Place | LabelKind::Aws | LabelKind::Gcp
        )
    }

    /// The country code of a place label (`US` of `US/California`).
    pub fn place_country(&self) -> Option<&str> {
        (self.kind == LabelKind::Place).then(|| self.text.split('/').next().unwrap_or_default())
    }

    /// The region name of a place label (`California` of `US/California`).
    pub fn place_region(&self) -> Option<&str> {
        if self.kind != LabelKind::Place {
            return None;
        }
        self.text.split_once('/').map(|(_, region)| region)
    }
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
        assert_eq!(kind("US/California"), Some(LabelKind::Place));
        assert_eq!(kind("CH"), Some(LabelKind::Place));
        assert_eq!(kind("FR/Île-de-France"), Some(LabelKind::Place));
        for bad in [
            "",
            "AWS",
            "AWS/",
            "us/California",
            "USA/CA",
            "C",
            "US/",
            "github",
        ] {
            assert_eq!(kind(bad), None, "{bad}");
        }
    }

    #[test]
    fn places_are_built_from_ipinfo_answers() {
        let place = |c, r| RegionLabel::place(c, r).map(|l| l.to_string());
        assert_eq!(
            place("us", Some(" California ")).as_deref(),
            Some("US/California")
        );
        assert_eq!(place("US", Some("A/B")).as_deref(), Some("US/A-B"));
        assert_eq!(place("CH", Some("  ")).as_deref(), Some("CH"));
        assert_eq!(place("CH", None).as_deref(), Some("CH"));
        assert_eq!(place("C1", None), None);
        // untrusted text: control characters dropped, length bounded
        assert_eq!(
            place("US", Some("Cali\tfor\nnia\u{0}")).as_deref(),
            Some("US/California")
        );
        let long = "x".repeat(500);
        assert_eq!(place("US", Some(&long)).unwrap().len(), 3 + 100);
        assert!(RegionLabel::parse("US/Cali\tfornia").is_err());
        assert_eq!(place("USA", None), None);
    }

    #[test]
    fn parts_resolution_and_order_follow_the_text() {
        let ca = RegionLabel::parse("US/California").unwrap();
        assert_eq!(ca.place_country(), Some("US"));
        assert_eq!(ca.place_region(), Some("California"));
        assert!(ca.is_resolved_region() && ca.has_place());
        let ch = RegionLabel::parse("CH").unwrap();
        assert_eq!((ch.place_country(), ch.place_region()), (Some("CH"), None));
        assert!(!ch.is_resolved_region() && ch.has_place());
        let aws = RegionLabel::parse("AWS/eu-west-1").unwrap();
        assert_eq!(aws.place_country(), None);
        assert!(aws.is_resolved_region() && aws.has_place());
        assert!(!RegionLabel::bogon().has_place());
        // sorted as text: capitals before lower case, as the published files are
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
