//! Asset types (Neurophysiology, Microscopy, Video...) from an asset's file name, by ordered suffix
//! rules: DANDI's by default (`dandi_asset_types.tsv`), or the archive's own (`--asset-types`).

use std::path::Path;

/// The rules DANDI's own producer applies.
const DANDI_RULES: &str = include_str!("dandi_asset_types.tsv");

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pattern {
    /// The name has this suffix among its suffixes (lowercase, with its dot).
    Among(String),
    /// The name's one suffix is this.
    Only(String),
    /// Every name.
    Any,
}

/// Ordered suffix rules giving each asset a type, and the types in column order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AssetTypes {
    rules: Vec<(Pattern, u16)>,
    names: Vec<String>,
}

impl Default for AssetTypes {
    fn default() -> Self {
        Self::parse(DANDI_RULES).expect("the built-in asset type rules parse")
    }
}

impl AssetTypes {
    /// Reads rules from a file (format: `src/datasets/dandi_asset_types.tsv`).
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
        Self::parse(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
    }

    /// Parses rules: `suffix<TAB>type` per line, `#` comments and blank lines skipped.
    fn parse(text: &str) -> Result<Self, String> {
        let mut types = Self {
            rules: Vec::new(),
            names: Vec::new(),
        };
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", number + 1);
            let (pattern, name) = line
                .split_once('\t')
                .ok_or_else(|| bad("expected `suffix<TAB>type`"))?;
            let name = name.trim();
            if name.is_empty() || name.contains(['\t', '\n']) || name.chars().any(char::is_control)
            {
                return Err(bad("an empty type name or one with control characters"));
            }
            let suffix = |s: &str| -> Result<String, String> {
                if s.len() > 1 && s.starts_with('.') && !s[1..].contains('.') {
                    Ok(s.to_lowercase())
                } else {
                    Err(bad("a suffix is a dot and a name, e.g. `.nwb`"))
                }
            };
            let pattern = match pattern.trim() {
                "*" => Pattern::Any,
                only if only.starts_with("only:") => Pattern::Only(suffix(&only[5..])?),
                among => Pattern::Among(suffix(among)?),
            };
            let index = if let Some(index) = types.names.iter().position(|n| n == name) {
                index
            } else {
                types.names.push(name.to_owned());
                types.names.len() - 1
            };
            let index = u16::try_from(index).map_err(|_| bad("more than 65,535 types"))?;
            types.rules.push((pattern, index));
        }
        if !types
            .rules
            .iter()
            .any(|(pattern, _)| *pattern == Pattern::Any)
        {
            return Err(
                "no `*` rule: every asset needs a type (add `*<TAB>Miscellaneous` last)".into(),
            );
        }
        Ok(types)
    }

    /// The type names, in column order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The type (index into [`AssetTypes::names`]) of an asset path.
    pub(crate) fn type_of(&self, asset_path: &str) -> u16 {
        let suffixes = suffixes(asset_path.rsplit('/').next().unwrap_or_default());
        self.rules
            .iter()
            .find(|(pattern, _)| match pattern {
                Pattern::Any => true,
                Pattern::Among(suffix) => suffixes.contains(suffix),
                Pattern::Only(suffix) => suffixes.len() == 1 && suffixes[0] == *suffix,
            })
            .map_or(0, |(_, index)| *index)
    }
}

/// A file name's suffixes, lowercase, as Python's `pathlib.PurePath.suffixes` gives them:
/// none for a name ending in `.`, leading dots ignored.
fn suffixes(name: &str) -> Vec<String> {
    if name.ends_with('.') {
        return Vec::new();
    }
    name.trim_start_matches('.')
        .split('.')
        .skip(1)
        .map(|suffix| format!(".{}", suffix.to_lowercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dandi_types_follow_its_producer() {
        let types = AssetTypes::default();
        assert_eq!(
            types.names(),
            ["Neurophysiology", "Microscopy", "Video", "Miscellaneous"]
        );
        let type_of = |path: &str| types.names()[types.type_of(path) as usize].as_str();
        // each expected type worked out by hand from the producer's rules
        for (path, expected) in [
            ("sub-1/sub-1_ecephys.nwb", "Neurophysiology"),
            ("sub-1/x.NWB", "Neurophysiology"),
            ("sub-1/x.nwb.zarr", "Neurophysiology"),
            ("micr/x.ome.zarr", "Microscopy"),
            ("micr/x.zarr", "Microscopy"),
            ("micr/x.ome.tif", "Microscopy"),
            ("anat/x.nii.gz", "Microscopy"),
            ("dwi/x.bvecs", "Microscopy"),
            ("video/x.MP4", "Video"),
            ("video/x.mkv", "Video"),
            ("x.foo.zarr", "Miscellaneous"),
            ("dataset_description.json", "Miscellaneous"),
            ("README", "Miscellaneous"),
            (".zarr", "Miscellaneous"),
            ("x.nwb.", "Miscellaneous"),
            ("dir.nwb/readme.txt", "Miscellaneous"),
        ] {
            assert_eq!(type_of(path), expected, "{path}");
        }
    }

    #[test]
    fn own_rules_replace_dandi_s_and_are_checked() {
        let types = AssetTypes::parse("# mine\n.csv\tTables\n*\tOther\n.nwb\tNever\n").unwrap();
        assert_eq!(types.names(), ["Tables", "Other", "Never"]);
        assert_eq!(types.type_of("a/b.csv"), 0);
        assert_eq!(types.type_of("a/b.nwb"), 1);
        assert!(
            AssetTypes::parse(".csv\tTables\n")
                .unwrap_err()
                .contains("no `*`")
        );
        assert!(
            AssetTypes::parse("csv\tTables\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(AssetTypes::parse(".a.b\tX\n*\tY\n").is_err());
        assert!(
            AssetTypes::parse(".a\n")
                .unwrap_err()
                .contains("suffix<TAB>type")
        );
    }
}
