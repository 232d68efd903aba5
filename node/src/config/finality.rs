//! `[finality]` in `config.toml`: how deep a chain event must be before the node risks money on it.

use serde::{Deserialize, Serialize};

/// `[finality]` in `config.toml`: how deep a chain event must be before the node risks money on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinalityConfig {}
