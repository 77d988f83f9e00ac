//! What may be published: small counts hidden and others rounded ([`Privacy`]), and which region
//! rows may be named ([`disclose_regions`]): k-anonymous, and safe against comparing two
//! publications.

use std::collections::{BTreeMap, BTreeSet};

use super::tally::{Figures, Tally};
use crate::labels::{LabelKind, RegionLabel};
use crate::store::RequesterId;

/// What is published: small counts hidden, others rounded, and region rows only behind enough
/// requesters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Privacy {
    /// Counts below this are written `<minimum>`.
    pub minimum: u64,
    /// Other counts are rounded to the nearest multiple of this (halves up).
    pub round_to: u64,
    /// A region row is named only when at least this many distinct requesters stand behind it
    /// (K); the rest are pooled in `other`.
    pub region_min_requesters: usize,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            minimum: 50,
            round_to: 20,
            region_min_requesters: 5,
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

    /// The settings weaker than the defaults, as the options that set them (empty when none).
    pub(crate) fn weaknesses(&self) -> Vec<String> {
        let default = Privacy::default();
        let mut weaker = Vec::new();
        if self.minimum < default.minimum {
            weaker.push(format!(
                "--privacy-minimum {} (default {})",
                self.minimum, default.minimum
            ));
        }
        if self.round_to < default.round_to {
            weaker.push(format!(
                "--round-to {} (default {})",
                self.round_to, default.round_to
            ));
        }
        if self.region_min_requesters < default.region_min_requesters {
            weaker.push(format!(
                "--region-min-requesters {} (default {})",
                self.region_min_requesters, default.region_min_requesters
            ));
        }
        weaker
    }
}

/// A region row as last published: its figures, and the requesters behind it then.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PublishedRow {
    /// The figures published.
    pub figures: Figures,
    /// The distinct requesters behind them.
    pub requesters: BTreeSet<RequesterId>,
}

/// The region rows of one `by_region.tsv` as last published.
pub(crate) type PublishedRegions = BTreeMap<RegionLabel, PublishedRow>;

/// What a `by_region.tsv` shows now, and what to remember of it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Disclosed {
    /// The rows: named regions, then `other` for the rest.
    pub rows: BTreeMap<RegionLabel, Figures>,
    /// The named rows as published now, for the next run.
    pub published: PublishedRegions,
    /// Regions pooled in `other` (fewer than K requesters behind them).
    pub pooled: usize,
    /// Named regions kept at their last published values (fewer than K new requesters).
    pub held: usize,
}

impl Disclosed {
    /// The named regions (every row but `other`).
    pub(crate) fn named(&self) -> impl Iterator<Item = &RegionLabel> {
        self.rows
            .keys()
            .filter(|label| label.kind() != LabelKind::Other)
    }
}

/// Whether every figure of `a` is at least that of `b`.
fn covers(a: &Figures, b: &Figures) -> bool {
    a.bytes_sent >= b.bytes_sent
        && a.requests >= b.requests
        && a.downloads >= b.downloads
        && a.views >= b.views
}

/// The region rows of a dataset (or the archive) that may be published, k-anonymous and
/// diff-safe, given the rows `previous`ly published:
///
/// - a region is named only when at least `k` distinct requesters stand behind it;
/// - a named region's row changes only when at least `k` requesters that were not behind it at its
///   last publication stand behind it now; otherwise it keeps its published values;
/// - everything not shown in a named row (pooled regions, held-back changes) is one `other` row,
///   so the rows add up to the dataset's totals.
///
/// With `k` at most 1, every region is shown with its current figures.
pub(crate) fn disclose_regions(tally: &Tally, previous: &PublishedRegions, k: usize) -> Disclosed {
    if k <= 1 {
        return Disclosed {
            rows: tally.by_region.clone(),
            ..Disclosed::default()
        };
    }
    let none = std::collections::HashSet::new();
    let mut disclosed = Disclosed::default();
    for (region, figures) in &tally.by_region {
        let behind = tally.region_requesters.get(region).unwrap_or(&none);
        let published = match previous.get(region) {
            // grown by k new requesters since: shown as it is now
            Some(last)
                if covers(figures, &last.figures)
                    && behind
                        .iter()
                        .filter(|r| !last.requesters.contains(r))
                        .count()
                        < k =>
            {
                disclosed.held += usize::from(last.figures != *figures);
                Some(last.clone())
            }
            _ if behind.len() >= k => Some(PublishedRow {
                figures: *figures,
                requesters: behind.iter().copied().collect(),
            }),
            _ => None,
        };
        match published {
            Some(row) => {
                disclosed.rows.insert(region.clone(), row.figures);
                disclosed.published.insert(region.clone(), row);
            }
            None => disclosed.pooled += 1,
        }
    }
    let mut other = tally.total;
    for figures in disclosed.rows.values() {
        other.bytes_sent -= figures.bytes_sent;
        other.requests -= figures.requests;
        other.downloads -= figures.downloads;
        other.views -= figures.views;
    }
    if other != Figures::default() {
        disclosed.rows.insert(RegionLabel::other(), other);
    }
    disclosed
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
            region_min_requesters: 1,
        };
        assert_eq!(exact.count(0), "0");
        assert_eq!(exact.count(49), "49");
        assert_eq!(exact.weaknesses().len(), 3);
        assert!(Privacy::default().weaknesses().is_empty());
        let rounded_only = Privacy {
            round_to: 1,
            ..Privacy::default()
        };
        assert_eq!(rounded_only.weaknesses(), ["--round-to 1 (default 20)"]);
        assert_eq!(privacy.json(10), serde_json::json!("<50"));
        assert_eq!(privacy.json(61), serde_json::json!(60));
    }

    fn tally(rows: &[(&str, u64, &[u64])]) -> Tally {
        let mut tally = Tally::default();
        for (label, bytes, requesters) in rows {
            let label = RegionLabel::parse(label).unwrap();
            let figures = Figures {
                bytes_sent: *bytes,
                requests: requesters.len() as u64,
                downloads: requesters.len() as u64,
                views: 0,
            };
            tally.by_region.insert(label.clone(), figures);
            tally
                .region_requesters
                .insert(label, requesters.iter().map(|r| RequesterId(*r)).collect());
            tally.total.bytes_sent += bytes;
            tally.total.requests += figures.requests;
            tally.total.downloads += figures.downloads;
        }
        tally
    }

    fn bytes(disclosed: &Disclosed) -> Vec<(String, u64)> {
        disclosed
            .rows
            .iter()
            .map(|(label, figures)| (label.to_string(), figures.bytes_sent))
            .collect()
    }

    #[test]
    fn regions_behind_fewer_than_k_requesters_are_pooled_in_other() {
        let now = tally(&[
            ("US-CA", 500, &[1, 2, 3]),
            ("DE-BE", 70, &[4]),
            ("bogon", 9, &[5, 6, 7]),
        ]);
        let disclosed = disclose_regions(&now, &PublishedRegions::new(), 3);
        // worked out by hand: California and bogon have 3 requesters each, Berlin 1
        assert_eq!(
            bytes(&disclosed),
            [
                ("US-CA".into(), 500),
                ("bogon".into(), 9),
                ("other".into(), 70)
            ]
        );
        assert_eq!((disclosed.pooled, disclosed.held), (1, 0));
        // with k = 1 everything is shown as it is, no `other`
        assert_eq!(
            bytes(&disclose_regions(&now, &PublishedRegions::new(), 1)).len(),
            3
        );
    }

    #[test]
    fn a_named_row_changes_only_when_k_new_requesters_stand_behind_it() {
        let first = disclose_regions(
            &tally(&[("US-CA", 500, &[1, 2, 3])]),
            &PublishedRegions::new(),
            3,
        );
        // one more download by a known requester and one by a new one: held at 500
        let second_tally = tally(&[("US-CA", 650, &[1, 2, 3, 9])]);
        let second = disclose_regions(&second_tally, &first.published, 3);
        assert_eq!(
            bytes(&second),
            [("US-CA".into(), 500), ("other".into(), 150)]
        );
        assert_eq!(second.held, 1);
        // a lone requester in a new region: pooled, the named row still the same
        let mut third_tally = second_tally.clone();
        let lone = tally(&[("DE-37", 42, &[10])]);
        third_tally.by_region.extend(lone.by_region);
        third_tally.region_requesters.extend(lone.region_requesters);
        third_tally.total.bytes_sent += 42;
        third_tally.total.requests += 1;
        third_tally.total.downloads += 1;
        let third = disclose_regions(&third_tally, &second.published, 3);
        assert_eq!(
            bytes(&third),
            [("US-CA".into(), 500), ("other".into(), 192)]
        );
        // three new requesters since the last publication (9, 11, 12): updated
        let fourth = disclose_regions(
            &tally(&[("US-CA", 900, &[1, 2, 3, 9, 11, 12])]),
            &third.published,
            3,
        );
        assert_eq!(bytes(&fourth), [("US-CA".into(), 900)]);
        assert_eq!(
            fourth.published[&RegionLabel::parse("US-CA").unwrap()]
                .requesters
                .len(),
            6
        );
    }
}
