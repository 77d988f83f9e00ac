//! Where things live: the config directory (salt key, remembered settings) and the cache directory.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable that overrides the config directory (tests, several users on one account).
pub(crate) const CONFIG_DIR_ENV: &str = "S3TALLY_CONFIG_DIR";
/// Name of the settings file inside the config directory.
pub(crate) const CONFIG_FILE: &str = "config.toml";

/// Errors reading or writing the settings file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}")]
    Io {
        /// The settings file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The settings file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No home directory to put things in.
    #[error("cannot find the user's {0} directory; set {1}")]
    NoDirectory(&'static str, &'static str),
}

/// Remembered settings (`config.toml`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// The default cache directory, set by `s3tally config cache set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
    /// The IP database `update regions` places requesters with (`config geoip set`, or where
    /// `update geoip` downloaded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geoip_db: Option<PathBuf>,
}

/// The config directory: `$S3TALLY_CONFIG_DIR`, else `<user config dir>/s3tally`.
pub(crate) fn config_dir() -> Result<PathBuf, ConfigError> {
    if let Some(dir) = std::env::var_os(CONFIG_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|dir| dir.join("s3tally"))
        .ok_or(ConfigError::NoDirectory("config", CONFIG_DIR_ENV))
}

impl Settings {
    /// Reads the settings; a missing file is the defaults.
    pub(crate) fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        let path = config_dir.join(CONFIG_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|error| ConfigError::Parse {
                path,
                message: error.to_string(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Io { path, source }),
        }
    }

    /// Writes the settings atomically (temporary file, then rename).
    pub(crate) fn save(&self, config_dir: &Path) -> Result<(), ConfigError> {
        let path = config_dir.join(CONFIG_FILE);
        let io = |source| ConfigError::Io {
            path: path.clone(),
            source,
        };
        let text = toml::to_string(self).map_err(|error| ConfigError::Parse {
            path: path.clone(),
            message: error.to_string(),
        })?;
        crate::output::write_atomically(&path, text.as_bytes()).map_err(io)
    }
}

/// The cache directory: the one given (`--cache` or `S3TALLY_CACHE`), else the remembered one,
/// else `<user cache dir>/s3tally`.
pub(crate) fn resolve_cache(
    given: Option<PathBuf>,
    config_dir: &Path,
) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    if let Some(dir) = Settings::load(config_dir)?.cache {
        return Ok(dir);
    }
    dirs::cache_dir()
        .map(|dir| dir.join("s3tally"))
        .ok_or(ConfigError::NoDirectory("cache", "S3TALLY_CACHE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_cache_is_used_unless_one_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            cache: Some(PathBuf::from("/data/s3tally")),
            ..Settings::default()
        };
        settings.save(dir.path()).unwrap();
        assert_eq!(
            resolve_cache(None, dir.path()).unwrap(),
            PathBuf::from("/data/s3tally")
        );
        assert_eq!(
            resolve_cache(Some("/other".into()), dir.path()).unwrap(),
            PathBuf::from("/other")
        );
    }

    #[test]
    fn broken_settings_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CONFIG_FILE), "cache = [").unwrap();
        let error = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains(CONFIG_FILE), "{error}");
    }
}
