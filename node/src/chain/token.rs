//! The escrow's settlement token as a person reads it: its `decimals()` and `symbol()`, read
//! once when the node connects and kept, and amounts written in its units.
//!
//! Amounts stay base units on the wire, in the store and in the API's amount fields; only what
//! a person reads (the CLI, the API's sentences, the explorer) is in the token's units. A token
//! without `decimals()` is taken to have 18 and one without a readable `symbol()` is called
//! "tokens", each said in a warning; an address that is no ERC-20 at all (no code, or no
//! `balanceOf`) is refused, so a node never starts against a market it cannot pay through.

use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider};

/// Decimals assumed when the token has no `decimals()` (the ERC-20 default).
pub const DEFAULT_DECIMALS: u8 = 18;
/// The symbol shown when the token has no readable `symbol()`.
pub const DEFAULT_SYMBOL: &str = "tokens";
/// The most decimals taken: 10^38 is the last power of ten under `u128::MAX`, and an amount
/// must keep a whole part to be useful.
pub const MAX_DECIMALS: u8 = 36;
/// The longest symbol shown; a longer one is cut.
const MAX_SYMBOL: usize = 16;

alloy::sol! {
    #[sol(rpc)]
    interface Erc20Metadata {
        function decimals() external view returns (uint8);
        function symbol() external view returns (string);
        function balanceOf(address account) external view returns (uint256);
    }
}

/// The settlement token: where it is and how its amounts read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its contract.
    pub address: Address,
    /// Its symbol, cut to printable characters (`tokens` when it has none).
    pub symbol: String,
    /// Its decimals (18 when it does not say).
    pub decimals: u8,
}

/// Why the escrow's token cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The chain could not be asked.
    #[error("reading the token {token}: {why}")]
    Rpc {
        /// The token's address.
        token: Address,
        /// The endpoint's error.
        why: String,
    },
    /// No contract at the token's address.
    #[error("the escrow's token {0} has no code: it is not a token on this chain")]
    NoCode(Address),
    /// The contract does not answer `balanceOf`: it is no ERC-20.
    #[error("the escrow's token {token} is not an ERC-20 (balanceOf fails: {why})")]
    NotErc20 {
        /// The token's address.
        token: Address,
        /// What the call answered.
        why: String,
    },
    /// The token states more decimals than an amount can carry.
    #[error(
        "the escrow's token {token} has {decimals} decimals; at most {MAX_DECIMALS} are supported"
    )]
    TooManyDecimals {
        /// The token's address.
        token: Address,
        /// What it states.
        decimals: u8,
    },
}

impl TokenInfo {
    /// A token known only by its address: 18 decimals, called "tokens".
    pub fn unknown(address: Address) -> Self {
        Self {
            address,
            symbol: DEFAULT_SYMBOL.to_owned(),
            decimals: DEFAULT_DECIMALS,
        }
    }

    /// Reads `token`'s decimals and symbol (one call each) after checking that it is an
    /// ERC-20 (`balanceOf(holder)` answers). Returns the warnings to show beside it: a token
    /// without `decimals()` or a readable `symbol()`.
    pub async fn read(
        provider: &DynProvider,
        token: Address,
        holder: Address,
    ) -> Result<(Self, Vec<String>), TokenError> {
        let rpc = |e: alloy::transports::TransportError| TokenError::Rpc {
            token,
            why: e.to_string(),
        };
        if provider.get_code_at(token).await.map_err(rpc)?.is_empty() {
            return Err(TokenError::NoCode(token));
        }
        let erc20 = Erc20Metadata::new(token, provider.clone());
        if let Err(e) = erc20.balanceOf(holder).call().await {
            return Err(match e {
                alloy::contract::Error::TransportError(t) if !t.is_error_resp() => rpc(t),
                other => TokenError::NotErc20 {
                    token,
                    why: other.to_string(),
                },
            });
        }
        let mut warnings = Vec::new();
        let decimals = match erc20.decimals().call().await {
            Ok(d) if d > MAX_DECIMALS => {
                return Err(TokenError::TooManyDecimals { token, decimals: d });
            }
            Ok(d) => d,
            Err(e) => {
                warnings.push(format!(
                    "the token {token} does not say its decimals ({e}): amounts are shown \
                     with {DEFAULT_DECIMALS}"
                ));
                DEFAULT_DECIMALS
            }
        };
        let symbol = match erc20.symbol().call().await.map(|s| clean_symbol(&s)) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) | Err(_) => {
                warnings.push(format!(
                    "the token {token} has no readable symbol: amounts are called \
                     \"{DEFAULT_SYMBOL}\""
                ));
                DEFAULT_SYMBOL.to_owned()
            }
        };
        Ok((
            Self {
                address: token,
                symbol,
                decimals,
            },
            warnings,
        ))
    }

    /// `amount` base units in the token's units, exact: `1.5`, `0.000081`.
    pub fn amount(&self, base_units: u128) -> String {
        format_units(base_units, self.decimals, None)
    }

    /// `amount` base units for a sentence: at most six decimals (`…` when more were cut),
    /// with the symbol: `1000 USDC`, `111.111111… mUSD`.
    pub fn show(&self, base_units: u128) -> String {
        format!(
            "{} {}",
            format_units(base_units, self.decimals, Some(6)),
            self.symbol
        )
    }
}

/// Only what reads safely on a terminal and in a page: ASCII letters, digits and `.-_$`,
/// at most [`MAX_SYMBOL`] of them (a token's symbol is anybody's text).
fn clean_symbol(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '$'))
        .take(MAX_SYMBOL)
        .collect()
}

/// `base_units` with `decimals` decimals, trailing zeros cut; with `keep`, at most that many
/// decimals and `…` when more were cut.
pub fn format_units(base_units: u128, decimals: u8, keep: Option<usize>) -> String {
    let decimals = decimals.min(MAX_DECIMALS);
    let unit = 10u128.pow(u32::from(decimals));
    let all = format!(
        "{:0width$}",
        base_units % unit,
        width = usize::from(decimals)
    );
    let frac = if decimals == 0 {
        ""
    } else {
        all.trim_end_matches('0')
    };
    let (kept, cut) = match keep {
        Some(k) if frac.len() > k => (frac.get(..k).unwrap_or(frac), "…"),
        _ => (frac, ""),
    };
    if kept.is_empty() {
        format!("{}{cut}", base_units / unit)
    } else {
        format!("{}.{kept}{cut}", base_units / unit)
    }
}

/// Why a written amount is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// Not a decimal number.
    #[error("{0:?} is not an amount of tokens: write it like 2.5")]
    NotANumber(String),
    /// More decimals than the token has.
    #[error("{text:?} has more than the token's {decimals} decimals")]
    TooPrecise {
        /// What was written.
        text: String,
        /// The token's decimals.
        decimals: u8,
    },
    /// More than the chain can hold.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// A decimal amount in the token's units (`2.5`) as base units.
pub fn parse_units(text: &str, decimals: u8) -> Result<u128, AmountError> {
    let not = || AmountError::NotANumber(text.to_owned());
    let decimals = decimals.min(MAX_DECIMALS);
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(not());
    }
    if frac.len() > usize::from(decimals) {
        return Err(AmountError::TooPrecise {
            text: text.to_owned(),
            decimals,
        });
    }
    let too_large = || AmountError::TooLarge(text.to_owned());
    let w: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let f: u128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<width$}", width = usize::from(decimals))
            .parse()
            .map_err(|_| not())?
    };
    w.checked_mul(10u128.pow(u32::from(decimals)))
        .and_then(|x| x.checked_add(f))
        .ok_or_else(too_large)
}

/// `amount`, an amount at 18 decimals (the defaults of the node's configuration are written
/// for an 18-decimal token), at `decimals`: the same number of tokens, rounded down, and never
/// below one base unit when `amount` was not zero (a price must stay a price).
pub fn rescale_from_18(amount: u128, decimals: u8) -> u128 {
    let decimals = decimals.min(MAX_DECIMALS);
    let scaled = if decimals >= DEFAULT_DECIMALS {
        amount.saturating_mul(10u128.pow(u32::from(decimals - DEFAULT_DECIMALS)))
    } else {
        amount / 10u128.pow(u32::from(DEFAULT_DECIMALS - decimals))
    };
    if amount > 0 { scaled.max(1) } else { 0 }
}

/// Rescales the amount settings of `config` still at their defaults (written for an
/// 18-decimal token: a 5-token channel deposit, a 1-token claim threshold, prices per 10^9
/// fuel and per GPU-second) to a token of `decimals`, with [`rescale_from_18`]. A setting
/// given another value is the operator's, in base units, and kept. Returns the names of the
/// settings rescaled.
pub fn rescale_defaults(config: &mut crate::config::NodeConfig, decimals: u8) -> Vec<&'static str> {
    let mut scaled = Vec::new();
    if decimals == DEFAULT_DECIMALS {
        return scaled;
    }
    let d = crate::config::NodeConfig::default();
    let fields: [(&'static str, &mut u128, u128); 5] = [
        (
            "price_per_gfuel",
            &mut config.price_per_gfuel,
            d.price_per_gfuel,
        ),
        (
            "price_per_gpu_second",
            &mut config.price_per_gpu_second,
            d.price_per_gpu_second,
        ),
        ("min_job_price", &mut config.min_job_price, d.min_job_price),
        (
            "claim_threshold",
            &mut config.claim_threshold,
            d.claim_threshold,
        ),
        (
            "channel_deposit",
            &mut config.channel_deposit,
            d.channel_deposit,
        ),
    ];
    for (name, value, default) in fields {
        if *value == default && default != 0 {
            *value = rescale_from_18(default, decimals);
            scaled.push(name);
        }
    }
    scaled
}

/// What the node does with its chain's token at start: says the warnings of its read, and
/// rescales the amount settings left at their 18-decimal defaults ([`rescale_defaults`]).
pub(crate) fn adopt(
    chain: &super::Chain,
    config: &mut crate::config::NodeConfig,
    events: &crate::events::Events,
) {
    for message in chain.token_warnings().iter().cloned() {
        tracing::warn!("{message}");
        events.emit(crate::events::NodeEvent::Warning { message });
    }
    let token = chain.token_info();
    let scaled = rescale_defaults(config, token.decimals);
    if !scaled.is_empty() {
        tracing::info!(
            "{} has {} decimals: {} rescaled from their 18-decimal defaults",
            token.symbol,
            token.decimals,
            scaled.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_in_the_tokens_own_decimals() {
        assert_eq!(format_units(1_500_000, 6, None), "1.5");
        assert_eq!(format_units(81, 6, None), "0.000081");
        assert_eq!(format_units(1_500_000_000_000_000_000, 18, None), "1.5");
        assert_eq!(format_units(7, 0, None), "7");
        assert_eq!(format_units(111_111_111_111, 6, Some(6)), "111111.111111");
        assert_eq!(format_units(1_111_111_111, 9, Some(6)), "1.111111…");
        let usdc = TokenInfo {
            address: Address::ZERO,
            symbol: "USDC".into(),
            decimals: 6,
        };
        assert_eq!(usdc.show(100_000_000), "100 USDC");
        assert_eq!(usdc.amount(250_000), "0.25");
        assert_eq!(
            TokenInfo::unknown(Address::ZERO).show(10u128.pow(18)),
            "1 tokens"
        );
    }

    #[test]
    fn written_amounts_take_the_tokens_decimals() {
        assert_eq!(parse_units("2.5", 6), Ok(2_500_000));
        assert_eq!(parse_units(".5", 6), Ok(500_000));
        assert_eq!(parse_units("1", 18), Ok(10u128.pow(18)));
        assert!(matches!(
            parse_units("0.0000001", 6),
            Err(AmountError::TooPrecise { decimals: 6, .. })
        ));
        for bad in ["", ".", "1e6", "-1", "1.2.3", "٣"] {
            assert!(
                matches!(parse_units(bad, 6), Err(AmountError::NotANumber(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_units("999999999999999999999999999999999", 18),
            Err(AmountError::TooLarge(_))
        ));
    }

    #[test]
    fn defaults_keep_their_value_and_never_round_to_nothing() {
        let e18 = 10u128.pow(18);
        assert_eq!(rescale_from_18(5 * e18, 6), 5_000_000);
        assert_eq!(rescale_from_18(e18 / 10, 6), 100_000);
        // 1000 base units at 18 decimals is less than one at 6: one, not zero.
        assert_eq!(rescale_from_18(1_000, 6), 1);
        assert_eq!(rescale_from_18(0, 6), 0);
        assert_eq!(rescale_from_18(7, 18), 7);
        assert_eq!(rescale_from_18(7, 20), 700);
    }

    #[test]
    fn only_defaults_are_rescaled() {
        let mut c = crate::config::NodeConfig {
            channel_deposit: 42,
            ..Default::default()
        };
        let scaled = rescale_defaults(&mut c, 6);
        assert_eq!(
            scaled,
            ["price_per_gfuel", "price_per_gpu_second", "claim_threshold"]
        );
        assert_eq!(c.channel_deposit, 42, "the operator's value is kept");
        assert_eq!(c.claim_threshold, 1_000_000, "one token at 6 decimals");
        assert_eq!((c.price_per_gfuel, c.price_per_gpu_second), (1, 1));
        let mut c18 = crate::config::NodeConfig::default();
        assert!(rescale_defaults(&mut c18, 18).is_empty());
        assert_eq!(c18.channel_deposit, 5_000_000_000_000_000_000);
    }

    #[test]
    fn symbols_are_cut_to_what_reads_safely() {
        assert_eq!(clean_symbol("USDC"), "USDC");
        assert_eq!(clean_symbol("\x1b]0;pwned\x07"), "0pwned");
        assert_eq!(clean_symbol("ÜSD₮"), "SD");
        assert_eq!(clean_symbol(&"A".repeat(40)).len(), MAX_SYMBOL);
    }
}
