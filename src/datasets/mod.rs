//! What an archive knows and the logs do not: which dataset and asset each object key belongs to
//! ([`map`], built for DANDI-style archives by [`dandi`]), each asset's type ([`asset_types`]),
//! and which dataset names may be directories of the output ([`is_safe_dataset`]).
//!
//! Unsafe names: an empty segment (a leading `/`, `//`), `.` or `..`, a segment starting with `.`
//! (`.git`), a control character (tab, line end, NUL...), `\`, a segment over 200 bytes, or a
//! name the output itself uses (`archive`, `undetermined`, `unassociated`, `totals.json`,
//! `archive_totals.json`, `region_codes_to_coordinates.yaml`, in any case).

pub(crate) mod asset_types;
pub(crate) mod dandi;
pub(crate) mod map;

/// The dataset of keys without enough segments.
pub(crate) const UNASSOCIATED: &str = "unassociated";
/// The dataset of keys whose dataset name cannot safely be a directory.
pub(crate) const UNDETERMINED: &str = "undetermined";
/// Longest dataset name segment, in bytes (file systems allow 255).
const MAX_SEGMENT_BYTES: usize = 200;
/// Names the output uses itself, which no dataset may take.
const RESERVED: [&str; 6] = [
    "archive",
    UNDETERMINED,
    UNASSOCIATED,
    "totals.json",
    "archive_totals.json",
    "region_codes_to_coordinates.yaml",
];

/// Whether a dataset name (segments joined by `/`) can safely be a directory of the output.
pub(crate) fn is_safe_dataset(name: &str) -> bool {
    let first = name.split('/').next().unwrap_or_default();
    !RESERVED
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(first))
        && name.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment.len() <= MAX_SEGMENT_BYTES
                && !segment.chars().any(|c| c.is_control() || c == '\\')
        })
}
