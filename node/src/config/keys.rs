//! `[keys]` in `config.toml`: where the node's EVM key lives and how it is unlocked.

use serde::{Deserialize, Serialize};

/// `[keys]` in `config.toml`: where the node's EVM key lives and how it is unlocked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {}
