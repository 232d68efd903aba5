//! `[finality]` in `config.toml`: how deep a chain event must be before the node risks money on it.
//! The design, and the depths to choose per chain, are in `docs/finality.md`.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The most confirmations a node waits for: deeper than any chain's advice (Ethereum
/// finalizes in 64 to 96 blocks), and what bounds the block hashes the watcher keeps.
pub(super) const MAX_CONFIRMATIONS: u64 = 1_024;

/// `[finality]` in `config.toml`: how deep a chain event must be before the node risks money on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinalityConfig {
    /// Blocks on top of an event's block before the node acts on it: the roles see an escrow
    /// event (a claim to dispute, a settlement, a draw), and the account index (the stakes
    /// gossip is checked against) takes it, only this deep; a provider counts a channel's
    /// deposit only this deep. 0 acts on the head itself (a chain that cannot reorganize,
    /// or a devnet). A reorganization deeper than this is reported as an error.
    pub confirmations: u64,
    /// The most a provider serves against a channel's deposit that is not `confirmations`
    /// deep yet, per channel, in token units: the money it risks if the deposit is
    /// reorganized out. 0 serves only against confirmed deposits. Written as a string of
    /// digits, like the other amounts.
    #[serde(with = "super::amount")]
    pub unconfirmed_risk: u128,
}

impl Default for FinalityConfig {
    /// Ethereum mainnet's advice short of finality: 12 blocks (about 2.4 minutes), nothing
    /// served on an unconfirmed deposit.
    fn default() -> Self {
        Self {
            confirmations: 12,
            unconfirmed_risk: 0,
        }
    }
}

impl FinalityConfig {
    /// What is wrong with a value ([`ConfigError::Invalid`]: the setting and why).
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.confirmations > MAX_CONFIRMATIONS {
            return Err(ConfigError::Invalid {
                key: "finality.confirmations",
                why: format!(
                    "{} is over {MAX_CONFIRMATIONS} blocks (Ethereum finalizes in 64 to 96)",
                    self.confirmations
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_waits_twelve_blocks_and_risks_nothing() {
        let d = FinalityConfig::default();
        assert_eq!(d.confirmations, 12);
        assert_eq!(d.unconfirmed_risk, 0);
        assert!(d.check().is_ok());
    }

    #[test]
    fn confirmations_past_the_bound_are_refused() {
        let ok = FinalityConfig {
            confirmations: MAX_CONFIRMATIONS,
            ..FinalityConfig::default()
        };
        assert!(ok.check().is_ok());
        let deep = FinalityConfig {
            confirmations: MAX_CONFIRMATIONS + 1,
            ..FinalityConfig::default()
        };
        let err = deep
            .check()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("finality.confirmations"), "{err}");
    }

    #[test]
    fn a_section_reads_from_toml_and_refuses_unknown_keys() {
        let c: FinalityConfig =
            toml::from_str("confirmations = 3\nunconfirmed_risk = \"1000\"").unwrap_or_default();
        assert_eq!(
            c,
            FinalityConfig {
                confirmations: 3,
                unconfirmed_risk: 1_000
            }
        );
        assert!(toml::from_str::<FinalityConfig>("depth = 3").is_err());
    }
}
