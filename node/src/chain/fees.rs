//! The EIP-1559 fee policy (`docs/transactions.md`): a first offer over the next block's base
//! fee with headroom, replacements that raise both fees by the configured bump, never above
//! the cap. Pure arithmetic; the chain supplies the base fee.

use crate::config::TxConfig;

/// What a transaction offers per gas, in wei.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fees {
    /// `maxFeePerGas`.
    pub(super) max_fee: u128,
    /// `maxPriorityFeePerGas`.
    pub(super) priority_fee: u128,
}

/// The first offer: `base × (100 + margin) / 100 + tip`, at most the cap (and the tip never
/// above the max fee).
pub(super) fn first_offer(next_base_fee: u128, cfg: &TxConfig) -> Fees {
    let cap = u128::from(cfg.max_fee_per_gas_wei);
    let tip = u128::from(cfg.priority_fee_wei).min(cap);
    let headroom =
        next_base_fee.saturating_mul(100 + u128::from(cfg.base_fee_margin_percent)) / 100;
    let max_fee = headroom.saturating_add(tip).min(cap).max(tip);
    Fees {
        max_fee,
        priority_fee: tip,
    }
}

/// `v` raised by `percent`, rounded up, and by at least 1 wei.
fn raise(v: u128, percent: u32) -> u128 {
    let up = v.saturating_mul(u128::from(percent)).div_ceil(100).max(1);
    v.saturating_add(up)
}

/// The replacement of a transaction offering `prev`: both fees raised by the bump, or to a
/// fresh first offer where the base fee rose more than that, at most the cap. `None` when
/// `prev` is at the cap already: there is nothing higher to offer.
pub(super) fn bumped(prev: Fees, next_base_fee: u128, cfg: &TxConfig) -> Option<Fees> {
    let cap = u128::from(cfg.max_fee_per_gas_wei);
    if prev.max_fee >= cap {
        return None;
    }
    let fresh = first_offer(next_base_fee, cfg);
    let max_fee = raise(prev.max_fee, cfg.bump_percent)
        .max(fresh.max_fee)
        .min(cap);
    let priority_fee = raise(prev.priority_fee, cfg.bump_percent)
        .max(fresh.priority_fee)
        .min(max_fee);
    Some(Fees {
        max_fee,
        priority_fee,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TxConfig {
        TxConfig {
            max_fee_per_gas_wei: 1_000,
            priority_fee_wei: 10,
            base_fee_margin_percent: 100,
            bump_percent: 25,
            ..TxConfig::default()
        }
    }

    #[test]
    fn first_offer_is_twice_the_base_fee_plus_tip_under_the_cap() {
        assert_eq!(
            first_offer(100, &cfg()),
            Fees {
                max_fee: 210,
                priority_fee: 10
            }
        );
        assert_eq!(first_offer(10_000, &cfg()).max_fee, 1_000);
        assert_eq!(first_offer(0, &cfg()).max_fee, 10);
    }

    #[test]
    fn a_replacement_raises_both_fees_enough_for_the_pool_and_stops_at_the_cap() {
        let c = cfg();
        let prev = first_offer(100, &c);
        let next = bumped(prev, 100, &c).unwrap_or(prev);
        // At least +10 % on both, what geth requires of a replacement.
        assert!(next.max_fee * 10 >= prev.max_fee * 11);
        assert!(next.priority_fee * 10 >= prev.priority_fee * 11);
        assert_eq!(next.max_fee, 263);
        // A base fee that jumped: the fresh offer wins.
        assert_eq!(bumped(prev, 400, &c).map(|f| f.max_fee), Some(810));
        // Up to the cap, then nothing.
        let near = Fees {
            max_fee: 950,
            priority_fee: 10,
        };
        assert_eq!(bumped(near, 100, &c).map(|f| f.max_fee), Some(1_000));
        assert_eq!(
            bumped(
                Fees {
                    max_fee: 1_000,
                    priority_fee: 10
                },
                100,
                &c
            ),
            None
        );
        // A tip of 0 still moves (pools compare both).
        let zero = Fees {
            max_fee: 100,
            priority_fee: 0,
        };
        assert_eq!(
            bumped(
                zero,
                0,
                &TxConfig {
                    priority_fee_wei: 0,
                    ..c
                }
            )
            .map(|f| f.priority_fee),
            Some(1)
        );
    }
}
