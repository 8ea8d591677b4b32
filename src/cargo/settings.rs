//! `[package.metadata.zeroimage]` and `[workspace.metadata.zeroimage]`: what users set once in Cargo.toml.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Settings from Cargo.toml. Every key is optional; command-line flags win over them. Unknown keys are
/// an error so that a typo does not pass silently.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Image name, `NAME[:TAG]`.
    pub tag: Option<String>,
    /// Rust target triple to build for.
    pub target: Option<String>,
    /// Archive path, relative to the directory of the Cargo.toml that sets it.
    pub output: Option<PathBuf>,
    /// Creation time: `now`, `@SECONDS` or RFC 3339.
    pub created: Option<String>,
    /// Package a dynamically linked executable anyway.
    pub allow_dynamic: Option<bool>,
}

impl Settings {
    /// Reads the `zeroimage` table of a `metadata` value from `manifest` (named in errors).
    /// `section` is `package` or `workspace`, for the message.
    pub fn from_metadata(
        metadata: &serde_json::Value,
        manifest: &Path,
        section: &str,
    ) -> Result<Settings> {
        let Some(table) = metadata.get("zeroimage") else {
            return Ok(Settings::default());
        };
        let mut settings: Settings = serde_json::from_value(table.clone()).map_err(|e| {
            Error::input(
                manifest,
                format!("[{section}.metadata.zeroimage]: {e}; fix or remove that key"),
            )
        })?;
        if let Some(output) = &settings.output {
            let base = manifest.parent().unwrap_or(Path::new("."));
            settings.output = Some(base.join(output));
        }
        Ok(settings)
    }

    /// These settings, with any key they leave unset taken from `fallback`.
    pub fn or(self, fallback: Settings) -> Settings {
        Settings {
            tag: self.tag.or(fallback.tag),
            target: self.target.or(fallback.target),
            output: self.output.or(fallback.output),
            created: self.created.or(fallback.created),
            allow_dynamic: self.allow_dynamic.or(fallback.allow_dynamic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_known_keys_and_resolves_output_against_the_manifest() {
        let metadata = json!({"zeroimage": {"tag": "app:1", "target": "aarch64-unknown-linux-musl",
            "output": "dist/app.tar", "allow-dynamic": true}});
        let s =
            Settings::from_metadata(&metadata, Path::new("/ws/app/Cargo.toml"), "package").unwrap();
        assert_eq!(s.tag.as_deref(), Some("app:1"));
        assert_eq!(s.output, Some(PathBuf::from("/ws/app/dist/app.tar")));
        assert_eq!(s.allow_dynamic, Some(true));
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let metadata = json!({"zeroimage": {"tagg": "x"}});
        let err = Settings::from_metadata(&metadata, Path::new("/ws/Cargo.toml"), "workspace")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/ws/Cargo.toml"), "{err}");
        assert!(err.contains("[workspace.metadata.zeroimage]"), "{err}");
        assert!(err.contains("unknown field `tagg`"), "{err}");
    }

    #[test]
    fn package_settings_win_over_workspace_settings() {
        let package = Settings {
            tag: Some("p".into()),
            ..Default::default()
        };
        let workspace = Settings {
            tag: Some("w".into()),
            target: Some("t".into()),
            ..Default::default()
        };
        let merged = package.or(workspace);
        assert_eq!(merged.tag.as_deref(), Some("p"));
        assert_eq!(merged.target.as_deref(), Some("t"));
    }

    #[test]
    fn missing_table_is_empty_settings() {
        let s = Settings::from_metadata(&json!(null), Path::new("Cargo.toml"), "package").unwrap();
        assert_eq!(s, Settings::default());
    }
}
