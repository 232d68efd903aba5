//! `[transactions]` in `config.toml`: fees, replacement, retries and fallback RPC endpoints of
//! the node's transactions (`docs/transactions.md`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// One gwei, in wei.
pub(crate) const GWEI: u64 = 1_000_000_000;

/// The least fee bump a replacement may have, in percent: geth and reth refuse a replacement
/// that raises either fee by less than 10 %, some pools by less than 12.5 %; 13 clears both
/// after integer rounding.
pub(crate) const MIN_BUMP_PERCENT: u32 = 13;

/// `[transactions]` in `config.toml`: fees, replacement, retries and fallback RPC endpoints of
/// the node's transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TxConfig {
    /// RPC endpoints of the same chain tried, in order, after `rpc_url` when it fails (a
    /// refused connection, a timeout, an HTTP error): for reads and sends alike.
    pub fallback_rpc_urls: Vec<String>,
    /// The most the node pays per gas, in wei (the EIP-1559 `maxFeePerGas` cap): no offer and
    /// no replacement goes above it.
    pub max_fee_per_gas_wei: u64,
    /// The tip offered to the block producer, in wei (`maxPriorityFeePerGas`).
    pub priority_fee_wei: u64,
    /// Headroom over the next block's base fee, in percent: the first offer is
    /// `base fee × (100 + margin) / 100 + tip`, so that it survives the base fee rising for a
    /// few blocks (100: twice the base fee, what wallets offer).
    pub base_fee_margin_percent: u32,
    /// Seconds without a receipt before a transaction is sent again with the same nonce and
    /// higher fees.
    pub replace_after_secs: u64,
    /// How much a replacement raises both fees, in percent (at least 13).
    pub bump_percent: u32,
    /// Milliseconds between two looks for a pending transaction's receipt.
    pub receipt_poll_ms: u64,
    /// Seconds one JSON-RPC request may take on one endpoint before it counts as failed.
    pub rpc_timeout_secs: u64,
    /// Rounds over every endpoint a failing request is tried, after the first.
    pub rpc_retries: u32,
    /// Milliseconds waited after the first failed round; doubled after each round.
    pub rpc_backoff_ms: u64,
}

impl Default for TxConfig {
    fn default() -> Self {
        Self {
            fallback_rpc_urls: Vec::new(),
            max_fee_per_gas_wei: 500 * GWEI,
            priority_fee_wei: GWEI,
            base_fee_margin_percent: 100,
            replace_after_secs: 60,
            bump_percent: 25,
            receipt_poll_ms: 1_000,
            rpc_timeout_secs: 10,
            rpc_retries: 3,
            rpc_backoff_ms: 500,
        }
    }
}

/// Most fallback endpoints.
pub(crate) const MAX_FALLBACKS: usize = 8;

impl TxConfig {
    /// What is wrong with a value ([`ConfigError::Invalid`]: the setting and why).
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, why: String| Err(ConfigError::Invalid { key, why });
        if self.fallback_rpc_urls.len() > MAX_FALLBACKS {
            return invalid(
                "transactions.fallback_rpc_urls",
                format!(
                    "{} endpoints, at most {MAX_FALLBACKS}",
                    self.fallback_rpc_urls.len()
                ),
            );
        }
        if let Some(u) = self
            .fallback_rpc_urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return invalid(
                "transactions.fallback_rpc_urls",
                format!("{u:?} is not an http:// or https:// URL"),
            );
        }
        if self.max_fee_per_gas_wei == 0 {
            return invalid(
                "transactions.max_fee_per_gas_wei",
                "must be at least 1".into(),
            );
        }
        if self.priority_fee_wei > self.max_fee_per_gas_wei {
            return invalid(
                "transactions.priority_fee_wei",
                format!(
                    "{} is over max_fee_per_gas_wei ({})",
                    self.priority_fee_wei, self.max_fee_per_gas_wei
                ),
            );
        }
        if self.base_fee_margin_percent > 1_000 {
            return invalid(
                "transactions.base_fee_margin_percent",
                format!("{} is over 1000", self.base_fee_margin_percent),
            );
        }
        if !(MIN_BUMP_PERCENT..=1_000).contains(&self.bump_percent) {
            return invalid(
                "transactions.bump_percent",
                format!(
                    "{} is not between {MIN_BUMP_PERCENT} (what nodes require of a replacement) \
                     and 1000",
                    self.bump_percent
                ),
            );
        }
        let positive = [
            ("transactions.replace_after_secs", self.replace_after_secs),
            ("transactions.receipt_poll_ms", self.receipt_poll_ms),
            ("transactions.rpc_timeout_secs", self.rpc_timeout_secs),
            ("transactions.rpc_backoff_ms", self.rpc_backoff_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(key, "must be at least 1".into());
        }
        if self.replace_after_secs > 24 * 3600 || self.rpc_timeout_secs > 3600 {
            return invalid(
                "transactions.replace_after_secs",
                "replace_after_secs over a day or rpc_timeout_secs over an hour".into(),
            );
        }
        if self.receipt_poll_ms > 60_000 || self.rpc_backoff_ms > 60_000 {
            return invalid(
                "transactions.receipt_poll_ms",
                "receipt_poll_ms or rpc_backoff_ms over a minute".into(),
            );
        }
        if self.rpc_retries > 20 {
            return invalid(
                "transactions.rpc_retries",
                format!("{} is over 20", self.rpc_retries),
            );
        }
        Ok(())
    }

    /// [`Self::replace_after_secs`], at least a second.
    pub fn replace_after(&self) -> Duration {
        Duration::from_secs(self.replace_after_secs.max(1))
    }

    /// [`Self::receipt_poll_ms`], at least a millisecond.
    pub fn receipt_poll(&self) -> Duration {
        Duration::from_millis(self.receipt_poll_ms.max(1))
    }

    /// [`Self::rpc_timeout_secs`], at least a second.
    pub fn rpc_timeout(&self) -> Duration {
        Duration::from_secs(self.rpc_timeout_secs.max(1))
    }

    /// [`Self::rpc_backoff_ms`], at least a millisecond.
    pub fn rpc_backoff(&self) -> Duration {
        Duration::from_millis(self.rpc_backoff_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_values_are_named() {
        assert!(TxConfig::default().check().is_ok());
        let bad = |f: fn(&mut TxConfig), key: &str| {
            let mut c = TxConfig::default();
            f(&mut c);
            match c.check() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        };
        bad(|c| c.bump_percent = 10, "transactions.bump_percent");
        bad(
            |c| c.max_fee_per_gas_wei = 0,
            "transactions.max_fee_per_gas_wei",
        );
        bad(
            |c| c.priority_fee_wei = u64::MAX,
            "transactions.priority_fee_wei",
        );
        bad(
            |c| c.replace_after_secs = 0,
            "transactions.replace_after_secs",
        );
        bad(
            |c| c.fallback_rpc_urls = vec!["ws://x".into()],
            "transactions.fallback_rpc_urls",
        );
    }

    #[test]
    fn an_empty_section_is_the_defaults() {
        let c: TxConfig = toml::from_str("").unwrap_or_default();
        assert_eq!(c, TxConfig::default());
        let c: TxConfig = toml::from_str("bump_percent = 50\nfallback_rpc_urls = [\"http://b\"]")
            .unwrap_or_default();
        assert_eq!(c.bump_percent, 50);
        assert_eq!(c.fallback_rpc_urls, vec!["http://b".to_owned()]);
    }
}
