//! Who signs for a provider's account (`docs/keys.md` "A cold owner", `Operators.sol`): the
//! account itself, or the operator it named in the escrow while it keeps it named. Buyers and
//! verifiers hold a result commitment to its offer's account through [`Chain::may_sign_for`]:
//! one `operatorOf` read per account, kept in a bounded table for the refresh interval
//! ([`OPERATOR_REFRESH`] by default) and dropped at once when the chain watcher hands on an
//! `OperatorSet` event of the account ([`Chain::operator_changed`]). An owner's revocation
//! therefore takes effect within the refresh interval, or sooner once its event is confirmed;
//! and since only the owner sets `operatorOf[owner]`, an operator speaks for its own owner
//! and nobody else.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::*;
use crate::sync::lock;

/// How long an account's operator, once read, is taken as it is.
pub const OPERATOR_REFRESH: Duration = Duration::from_secs(10);
/// Accounts whose operator is kept, at most (the least recently read go first).
pub const MAX_OPERATORS: usize = 4096;

/// Accounts' operators as last read from the escrow, bounded.
#[derive(Debug)]
pub(super) struct Operators(std::sync::Mutex<Table>);

impl Default for Operators {
    fn default() -> Self {
        Self(std::sync::Mutex::new(Table::new(
            OPERATOR_REFRESH,
            MAX_OPERATORS,
        )))
    }
}

/// The table behind [`Operators`]; pure (time is passed in), so tested alone.
#[derive(Debug)]
struct Table {
    refresh: Duration,
    max: usize,
    /// Operator (`None`: none named) and when it was read, by account.
    by_account: HashMap<Address, (Option<Address>, Instant)>,
}

impl Table {
    fn new(refresh: Duration, max: usize) -> Self {
        Self {
            refresh,
            max: max.max(1),
            by_account: HashMap::new(),
        }
    }

    /// The operator of `account` if it was read less than `refresh` before `now`.
    fn fresh(&self, account: &Address, now: Instant) -> Option<Option<Address>> {
        self.by_account
            .get(account)
            .filter(|(_, read)| now.saturating_duration_since(*read) < self.refresh)
            .map(|(op, _)| *op)
    }

    /// Keeps `operator` as `account`'s, read at `now`; when full, the stale entries go,
    /// then the one read longest ago.
    fn put(&mut self, account: Address, operator: Option<Address>, now: Instant) {
        if !self.by_account.contains_key(&account) && self.by_account.len() >= self.max {
            let refresh = self.refresh;
            self.by_account
                .retain(|_, (_, read)| now.saturating_duration_since(*read) < refresh);
            if self.by_account.len() >= self.max
                && let Some(oldest) = self
                    .by_account
                    .iter()
                    .min_by_key(|(_, (_, read))| *read)
                    .map(|(a, _)| *a)
            {
                self.by_account.remove(&oldest);
            }
        }
        self.by_account.insert(account, (operator, now));
    }

    fn forget(&mut self, account: &Address) {
        self.by_account.remove(account);
    }
}

impl Chain {
    /// Whether `signer` may sign result commitments for `account` now: the account itself,
    /// or the operator the escrow says it named (read at most once per refresh interval per
    /// account; see the module's documentation). An error when the escrow cannot be read:
    /// the caller refuses what it cannot confirm.
    pub async fn may_sign_for(
        &self,
        signer: Address,
        account: Address,
    ) -> Result<bool, ChainError> {
        if signer == account {
            return Ok(true);
        }
        if signer == Address::ZERO {
            return Ok(false);
        }
        let now = Instant::now();
        if let Some(op) = lock(&self.inner.operators.0).fresh(&account, now) {
            return Ok(op == Some(signer));
        }
        let op = self.operator_of(account).await?;
        lock(&self.inner.operators.0).put(account, op, Instant::now());
        Ok(op == Some(signer))
    }

    /// `owner` named another operator or revoked it (an `OperatorSet` event): its operator
    /// is read again at the next result it signs.
    pub fn operator_changed(&self, owner: Address) {
        lock(&self.inner.operators.0).forget(&owner);
    }

    /// How long an account's operator is taken as read ([`OPERATOR_REFRESH`] by default;
    /// shorter in tests, zero to read it for every result).
    pub fn set_operator_refresh(&self, every: Duration) {
        lock(&self.inner.operators.0).refresh = every;
    }
}

/// The verifier's re-run and evidence checks ask the escrow through the same table.
#[async_trait]
impl sietch_verifier::evidence::Signers for Chain {
    async fn signs_for(&self, signer: Address, account: Address) -> bool {
        match self.may_sign_for(signer, account).await {
            Ok(yes) => yes,
            Err(e) => {
                tracing::warn!(
                    %signer,
                    %account,
                    "cannot read whether the signer is the account's operator, so its result is refused: {e}"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    #[test]
    fn an_operator_is_taken_as_read_for_the_refresh_interval_then_read_again() {
        let t0 = Instant::now();
        let mut t = Table::new(Duration::from_secs(10), 8);
        assert_eq!(t.fresh(&a(1), t0), None, "never read");
        t.put(a(1), Some(a(2)), t0);
        t.put(a(3), None, t0);
        assert_eq!(
            t.fresh(&a(1), t0 + Duration::from_secs(9)),
            Some(Some(a(2)))
        );
        assert_eq!(
            t.fresh(&a(3), t0),
            Some(None),
            "no operator is an answer too"
        );
        assert_eq!(
            t.fresh(&a(1), t0 + Duration::from_secs(10)),
            None,
            "stale: read again"
        );
        // An OperatorSet event of the account: read again at once.
        t.forget(&a(1));
        assert_eq!(t.fresh(&a(1), t0), None);
        // A refresh of zero reads for every result.
        let mut z = Table::new(Duration::ZERO, 8);
        z.put(a(1), Some(a(2)), t0);
        assert_eq!(z.fresh(&a(1), t0), None);
    }

    #[test]
    fn the_table_is_bounded_stale_entries_first_then_the_oldest() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = Table::new(Duration::from_secs(10), 3);
        t.put(a(1), None, t0);
        t.put(a(2), None, t0 + s);
        t.put(a(3), None, t0 + 2 * s);
        // Full, nothing stale: the oldest (1) goes.
        t.put(a(4), None, t0 + 3 * s);
        assert_eq!(t.by_account.len(), 3);
        assert!(!t.by_account.contains_key(&a(1)));
        // Later, 2 and 3 are stale (read over 10 s ago) and go together.
        t.put(a(5), Some(a(6)), t0 + 12 * s + Duration::from_millis(500));
        assert_eq!(t.by_account.len(), 2);
        assert!(t.by_account.contains_key(&a(4)) && t.by_account.contains_key(&a(5)));
        // Refreshing a present account evicts nothing.
        t.put(a(4), Some(a(7)), t0 + 13 * s);
        assert_eq!(t.by_account.len(), 2);
        for n in 10..100 {
            t.put(a(n), None, t0 + 14 * s);
        }
        assert_eq!(t.by_account.len(), 3, "never over its bound");
    }
}
