//! What may be published: small counts hidden and others rounded ([`Privacy`]), and the rule
//! that holds back a `by_region.tsv` whose resolved regions changed too little.

use std::collections::{BTreeMap, BTreeSet};

use crate::labels::RegionLabel;

/// How small counts are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Privacy {
    /// Counts below this are written `<minimum>`.
    pub minimum: u64,
    /// Other counts are rounded to the nearest multiple of this (halves up).
    pub round_to: u64,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            minimum: 50,
            round_to: 20,
        }
    }
}

impl Privacy {
    /// A count as published.
    pub(crate) fn count(&self, n: u64) -> String {
        if n < self.minimum {
            format!("<{}", self.minimum)
        } else {
            self.rounded(n).to_string()
        }
    }

    fn rounded(&self, n: u64) -> u64 {
        if self.round_to <= 1 {
            n
        } else {
            (n + self.round_to / 2) / self.round_to * self.round_to
        }
    }

    /// A count as published, in JSON: a number, or the string `<minimum>`.
    pub(crate) fn json(&self, n: u64) -> serde_json::Value {
        if n < self.minimum {
            serde_json::Value::String(format!("<{}", self.minimum))
        } else {
            serde_json::Value::from(self.rounded(n))
        }
    }

    /// Whether counts are published exactly (for the archive's internal use only).
    pub(crate) fn is_exact(&self) -> bool {
        self.minimum <= 1 && self.round_to <= 1
    }
}

/// How many resolved regions differ between two versions of a `by_region.tsv`.
pub(crate) fn resolved_regions_changed(old: &str, new: &str) -> usize {
    let rows = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .skip(1)
            .filter_map(|line| line.split_once('\t'))
            .filter(|(label, _)| {
                RegionLabel::parse(label).is_ok_and(|label| label.is_resolved_region())
            })
            .map(|(label, rest)| (label.to_owned(), rest.to_owned()))
            .collect()
    };
    let (old, new) = (rows(old), rows(new));
    old.keys()
        .chain(new.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|label| old.get(*label) != new.get(*label))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_hidden_and_others_rounded() {
        let privacy = Privacy::default();
        let shown: Vec<String> = [0, 1, 49, 50, 59, 60, 69, 70, 71, 1234]
            .iter()
            .map(|&n| privacy.count(n))
            .collect();
        // by hand: below 50 hidden; 50 is halfway between 40 and 60 and goes up; 70 likewise to 80
        assert_eq!(
            shown,
            [
                "<50", "<50", "<50", "60", "60", "60", "60", "80", "80", "1240"
            ]
        );
        let exact = Privacy {
            minimum: 0,
            round_to: 1,
        };
        assert_eq!(exact.count(0), "0");
        assert_eq!(exact.count(49), "49");
        assert!(exact.is_exact());
        assert_eq!(privacy.json(10), serde_json::json!("<50"));
        assert_eq!(privacy.json(61), serde_json::json!(60));
    }

    #[test]
    fn changed_resolved_regions_are_counted() {
        let old = "region\tb\tr\td\tv\nUS/California\t5\t<50\t<50\t<50\nmissing\t1\t<50\t<50\t<50\nFR/Brittany\t3\t<50\t<50\t<50\n";
        let new = "region\tb\tr\td\tv\nUS/California\t9\t<50\t<50\t<50\nmissing\t7\t<50\t<50\t<50\nDE/Berlin\t3\t<50\t<50\t<50\n";
        // California changed, Brittany gone, Berlin new; `missing` is not a resolved region
        assert_eq!(resolved_regions_changed(old, new), 3);
        assert_eq!(resolved_regions_changed("", new), 2);
        assert_eq!(resolved_regions_changed(new, new), 0);
    }
}
