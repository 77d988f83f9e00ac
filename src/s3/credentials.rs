//! Where S3 credentials come from, in the order the AWS tools use: the environment
//! (`AWS_ACCESS_KEY_ID`...), then the shared credentials and config files for `AWS_PROFILE` (or
//! `default`), then web identity, container and instance roles (left to `object_store`, which
//! follows them). A profile that only names a role, SSO or a credential process is refused with
//! the command that exports its keys: following those is the AWS CLI's job.

use std::path::{Path, PathBuf};

use ini::Ini;

/// Keys found in a profile of the shared files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticKeys {
    /// `aws_access_key_id`.
    pub access_key_id: String,
    /// `aws_secret_access_key`.
    pub secret_access_key: String,
    /// `aws_session_token`, when the keys are temporary.
    pub session_token: Option<String>,
}

/// What the shared files say for one profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    /// Static keys, when the profile has them.
    pub keys: Option<StaticKeys>,
    /// `region`.
    pub region: Option<String>,
    /// `endpoint_url` (S3-compatible stores).
    pub endpoint_url: Option<String>,
    /// How the profile gets keys it does not hold (a role, SSO, a credential process), when
    /// it has no static keys: refused only when its keys are needed.
    pub indirect: Option<&'static str>,
}

impl Profile {
    /// The profile's static keys, or why it has none to give.
    pub(crate) fn keys(&self, name: &str) -> Result<Option<StaticKeys>, ProfileError> {
        match (&self.keys, self.indirect) {
            (None, Some(how)) => Err(ProfileError::Indirect {
                name: name.to_owned(),
                how,
            }),
            (keys, _) => Ok(keys.clone()),
        }
    }
}

/// Errors reading a profile.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProfileError {
    /// `AWS_PROFILE` names a profile neither file has.
    #[error(
        "AWS_PROFILE is {name} but neither {credentials} nor {config} has that profile: set AWS_PROFILE to one of them, or unset it"
    )]
    Missing {
        name: String,
        credentials: String,
        config: String,
    },
    /// The profile gets its keys in a way s3tally does not follow.
    #[error(
        "AWS profile {name} gets its keys through {how}, which s3tally does not follow: export them first, e.g. `eval \"$(aws configure export-credentials --profile {name} --format env)\"`"
    )]
    Indirect { name: String, how: &'static str },
    /// A file that exists cannot be read.
    #[error("cannot read {path}: {error}")]
    Unreadable { path: String, error: String },
}

/// The shared files' places: `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`, else
/// `~/.aws/credentials` and `~/.aws/config`.
pub(crate) fn shared_files() -> (PathBuf, PathBuf) {
    let home = dirs::home_dir().unwrap_or_default().join(".aws");
    let from = |variable: &str, default: &str| {
        std::env::var_os(variable).map_or_else(|| home.join(default), PathBuf::from)
    };
    (
        from("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        from("AWS_CONFIG_FILE", "config"),
    )
}

/// Reads profile `name` (`explicit` when the user named it with `AWS_PROFILE`: then it must
/// exist). Files that do not exist are empty.
pub(crate) fn read_profile(
    name: &str,
    explicit: bool,
    credentials: &Path,
    config: &Path,
) -> Result<Profile, ProfileError> {
    let credentials_file = load(credentials)?;
    let config_file = load(config)?;
    // the credentials file names sections plainly, the config file `profile NAME` (but `default`)
    let in_credentials = credentials_file
        .as_ref()
        .and_then(|file| file.section(Some(name)));
    let config_section = if name == "default" {
        name.to_owned()
    } else {
        format!("profile {name}")
    };
    let in_config = config_file
        .as_ref()
        .and_then(|file| file.section(Some(config_section.as_str())));
    if in_credentials.is_none() && in_config.is_none() {
        if explicit {
            return Err(ProfileError::Missing {
                name: name.to_owned(),
                credentials: credentials.display().to_string(),
                config: config.display().to_string(),
            });
        }
        return Ok(Profile::default());
    }
    let get = |key: &str| {
        in_credentials
            .and_then(|section| section.get(key))
            .or_else(|| in_config.and_then(|section| section.get(key)))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let keys = match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(access_key_id), Some(secret_access_key)) => Some(StaticKeys {
            access_key_id,
            secret_access_key,
            session_token: get("aws_session_token"),
        }),
        _ => None,
    };
    let indirect = [
        ("role_arn", "an assumed role (role_arn)"),
        ("sso_session", "AWS SSO (sso_session)"),
        ("sso_start_url", "AWS SSO (sso_start_url)"),
        ("credential_process", "a credential_process"),
    ]
    .into_iter()
    .find(|(key, _)| keys.is_none() && get(key).is_some())
    .map(|(_, how)| how);
    Ok(Profile {
        keys,
        region: get("region"),
        endpoint_url: get("endpoint_url"),
        indirect,
    })
}

/// The file parsed, or `None` when there is no such file.
fn load(path: &Path) -> Result<Option<Ini>, ProfileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ini::load_from_str(&text)
            .map(Some)
            .map_err(|error| ProfileError::Unreadable {
                path: path.display().to_string(),
                error: error.to_string(),
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ProfileError::Unreadable {
            path: path.display().to_string(),
            error: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(credentials: &str, config: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("credentials"), dir.path().join("config"));
        std::fs::write(&a, credentials).unwrap();
        std::fs::write(&b, config).unwrap();
        (dir, a, b)
    }

    #[test]
    fn keys_come_from_credentials_and_region_from_config() {
        let (_dir, credentials, config) = files(
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[archive]\naws_access_key_id=AKIDARCHIVE\naws_secret_access_key=s2\naws_session_token=t2\n",
            "[default]\nregion = us-east-2\n\n[profile archive]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:9000\n",
        );
        let archive = read_profile("archive", true, &credentials, &config).unwrap();
        assert_eq!(
            archive.keys,
            Some(StaticKeys {
                access_key_id: "AKIDARCHIVE".into(),
                secret_access_key: "s2".into(),
                session_token: Some("t2".into()),
            })
        );
        assert_eq!(archive.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            archive.endpoint_url.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        let default = read_profile("default", false, &credentials, &config).unwrap();
        assert_eq!(default.keys.unwrap().access_key_id, "AKIDDEFAULT");
        assert_eq!(default.region.as_deref(), Some("us-east-2"));
    }

    #[test]
    fn a_missing_or_indirect_profile_says_what_to_do() {
        let (_dir, credentials, config) = files(
            "",
            "[profile sso]\nsso_session = corp\nregion = us-east-1\n[profile role]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = default\n",
        );
        let missing = read_profile("nope", true, &credentials, &config)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("AWS_PROFILE is nope"), "{missing}");
        // the default profile need not exist
        assert_eq!(
            read_profile("default", false, &credentials, &config).unwrap(),
            Profile::default()
        );
        for name in ["sso", "role"] {
            let profile = read_profile(name, true, &credentials, &config).unwrap();
            // its region is still read (the keys may come from the environment)
            assert_eq!(
                profile.region.as_deref(),
                (name == "sso").then_some("us-east-1")
            );
            let error = profile.keys(name).unwrap_err().to_string();
            assert!(
                error.contains(&format!("export-credentials --profile {name}")),
                "{error}"
            );
        }
        // no files at all: nothing, no error
        let none = Path::new("/nonexistent/s3tally/credentials");
        assert_eq!(
            read_profile("default", false, none, none).unwrap(),
            Profile::default()
        );
    }
}
