//! `[keys]` in `config.toml`: where the node's EVM key lives and how it is unlocked
//! (`docs/keys.md`; the key itself is handled by [`crate::keys`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The keystore's place by default, relative to the data directory.
pub const DEFAULT_KEYSTORE: &str = "keystore/node.json";

/// `[keys]` in `config.toml`: where the node's EVM key lives and how it is unlocked.
///
/// The node's EVM key signs its tickets, results and vouchers and pays its gas; it is the
/// node's hot key. A cold owner key (stake and payouts held apart from the machine) would
/// be a setting of its own beside this one, not a change to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// The encrypted keystore (Web3 Secret Storage v3, as geth, Foundry's `cast wallet` and
    /// most wallets write it) that holds the node's EVM key; a relative path is inside the
    /// data directory.
    pub keystore: PathBuf,
    /// A file whose first line is the keystore's password (readable by the node's user
    /// only). Without it the password comes from `$SIETCH_KEYSTORE_PASSWORD`, else from a
    /// prompt on the terminal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            keystore: PathBuf::from(DEFAULT_KEYSTORE),
            password_file: None,
        }
    }
}

impl KeysConfig {
    /// What is wrong with a value ([`ConfigError::Invalid`]: the setting and why).
    pub fn check(&self) -> Result<(), ConfigError> {
        let path = |key: &'static str, p: &Path| {
            let s = p.as_os_str();
            if s.is_empty() {
                return Err(ConfigError::Invalid {
                    key,
                    why: "is empty: name a file".into(),
                });
            }
            if s.as_encoded_bytes().contains(&0) {
                return Err(ConfigError::Invalid {
                    key,
                    why: format!("{} holds a NUL byte", p.display()),
                });
            }
            if p.file_name().is_none() {
                return Err(ConfigError::Invalid {
                    key,
                    why: format!("{} names a directory, not a file", p.display()),
                });
            }
            Ok(())
        };
        path("keys.keystore", &self.keystore)?;
        if let Some(p) = &self.password_file {
            path("keys.password_file", p)?;
        }
        Ok(())
    }

    /// The keystore file of a node whose data directory is `data_dir`.
    pub fn keystore_path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.keystore)
    }

    /// Whether the keystore is somewhere other than its default place: then a missing
    /// keystore is an error even where an unencrypted key is in the store.
    pub fn keystore_is_set(&self) -> bool {
        self.keystore != Path::new(DEFAULT_KEYSTORE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_inside_the_data_directory() {
        let k = KeysConfig::default();
        assert!(k.check().is_ok());
        assert!(!k.keystore_is_set());
        assert_eq!(
            k.keystore_path(Path::new("/d")),
            Path::new("/d/keystore/node.json")
        );
        let abs = KeysConfig {
            keystore: "/etc/sietch/k.json".into(),
            ..KeysConfig::default()
        };
        assert_eq!(
            abs.keystore_path(Path::new("/d")),
            Path::new("/etc/sietch/k.json")
        );
        assert!(abs.keystore_is_set());
    }

    #[test]
    fn empty_and_directory_paths_are_refused_with_their_name() {
        for (k, key) in [
            (
                KeysConfig {
                    keystore: PathBuf::new(),
                    ..KeysConfig::default()
                },
                "keys.keystore",
            ),
            (
                KeysConfig {
                    keystore: "keys/..".into(),
                    ..KeysConfig::default()
                },
                "keys.keystore",
            ),
            (
                KeysConfig {
                    password_file: Some(PathBuf::new()),
                    ..KeysConfig::default()
                },
                "keys.password_file",
            ),
        ] {
            let e = k.check().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
