//! `[transactions]` in `config.toml`: fees, replacement, retries and fallback RPC endpoints of the node's transactions.

use serde::{Deserialize, Serialize};

/// `[transactions]` in `config.toml`: fees, replacement, retries and fallback RPC endpoints of the node's transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TxConfig {}
