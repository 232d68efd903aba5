//! `[chain]` in `config.toml`: whose account the node's chain calls serve. Absent, the node's
//! own EVM key is the account (it stakes, is paid and signs). With `owner`, the account is that
//! cold owner and the node's key is the owner's *operator* (`setOperator` in the escrow,
//! `docs/keys.md` "A cold owner"): the node signs and claims for the owner, the owner's cold
//! wallet stakes, unstakes and withdraws.

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[chain]` in `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// The cold owner this node operates for (`0x…`), which named the node's EVM address its
    /// operator in the escrow; absent, the node's own account is the owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl ChainConfig {
    /// The owner's address, if one is set.
    pub fn owner_address(&self) -> Result<Option<Address>, ConfigError> {
        let Some(o) = &self.owner else {
            return Ok(None);
        };
        let a: Address = o.parse().map_err(|e| ConfigError::Invalid {
            key: "chain.owner",
            why: format!("{o:?} is not a 20-byte hex address: {e}"),
        })?;
        if a == Address::ZERO {
            return Err(ConfigError::Invalid {
                key: "chain.owner",
                why: "the zero address owns nothing: leave chain.owner out for the node's own account".into(),
            });
        }
        Ok(Some(a))
    }

    /// What is wrong with a value ([`ConfigError::Invalid`]: the setting and why).
    pub fn check(&self) -> Result<(), ConfigError> {
        self.owner_address().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_reads_from_toml_and_bad_ones_are_refused() {
        let c: ChainConfig =
            toml::from_str("owner = \"0x00000000000000000000000000000000000000aa\"")
                .unwrap_or_default();
        assert_eq!(
            c.owner_address().ok().flatten(),
            Some(Address::with_last_byte(0xaa))
        );
        assert_eq!(ChainConfig::default().owner_address().ok(), Some(None));
        for bad in [
            "0x12",
            "not an address",
            "0x0000000000000000000000000000000000000000",
        ] {
            let c = ChainConfig {
                owner: Some(bad.into()),
            };
            let err = c.check().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("chain.owner"), "{bad}: {err}");
        }
        assert!(toml::from_str::<ChainConfig>("operator = \"0x00\"").is_err());
    }
}
