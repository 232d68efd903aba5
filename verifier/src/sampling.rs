//! Commit-reveal sampling (`docs/protocol.md` §2.6).
//!
//! The buyer draws a 32-byte secret per job and puts `keccak256(secret)` in the ticket
//! ([`sietch_market::check_commit`]). The provider signs its result commitment knowing only
//! the commit; then the buyer reveals the secret, and the job is checked iff
//! `uint256(keccak256(secret ‖ jobId)) < q · 2^256` ([`sietch_market::is_checked`]). As long
//! as the secret is unpredictable (drawn from a cryptographic RNG) and keccak256 hides its
//! preimage, the provider learns nothing before it commits about which jobs will be checked,
//! and the buyer cannot choose after the fact either: the commit binds it to one secret.

use rand::{CryptoRng, RngCore};
use sietch_market::{B256, Ticket, check_commit, is_checked};

use crate::error::RevealError;

/// A fresh secret and the commit a ticket carries for it.
///
/// The RNG must be cryptographic: anyone who can predict the secret knows which jobs will be
/// checked. A node seeds a ChaCha RNG from the operating system; tests pass a seeded one so
/// that a run can be reproduced.
pub fn new_secret<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> (B256, B256) {
    let mut secret = B256::ZERO;
    rng.fill_bytes(secret.as_mut_slice());
    (secret, check_commit(&secret))
}

/// Opens a ticket's check commit with the revealed `secret` and says whether the job is
/// checked at `sampling_ppm` (q in parts per million). Refuses a secret that does not open
/// the commit.
pub fn reveal(ticket: &Ticket, secret: &B256, sampling_ppm: u32) -> Result<bool, RevealError> {
    if check_commit(secret) != ticket.check_commit {
        return Err(RevealError::WrongSecret);
    }
    Ok(is_checked(secret, &ticket.job_id, sampling_ppm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use sietch_market::U256;

    fn ticket(job: u8, commit: B256) -> Ticket {
        Ticket {
            job_id: B256::repeat_byte(job),
            spec_hash: B256::ZERO,
            channel_id: B256::ZERO,
            cumulative_before: U256::ZERO,
            max_amount: U256::ZERO,
            deadline: 0,
            check_commit: commit,
            per_gfuel: 0,
            per_gpu_second: 0,
        }
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (_, commit) = new_secret(&mut rng);
        let (other, _) = new_secret(&mut rng);
        assert_eq!(
            reveal(&ticket(1, commit), &other, 100_000),
            Err(RevealError::WrongSecret)
        );
    }

    #[test]
    fn sampled_fraction_is_q() {
        // 20,000 jobs at q = 10%: the count is Binomial(20000, 0.1), mean 2000, sd 42.4;
        // 5 sd either side.
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut checked = 0u32;
        for i in 0..20_000u32 {
            let (secret, commit) = new_secret(&mut rng);
            let mut t = ticket(0, commit);
            t.job_id = B256::from(U256::from(i));
            if reveal(&t, &secret, 100_000) == Ok(true) {
                checked += 1;
            }
        }
        assert!((1788..=2212).contains(&checked), "checked {checked}");
    }

    #[test]
    fn every_job_at_full_rate_and_none_at_zero() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for i in 0..100u8 {
            let (secret, commit) = new_secret(&mut rng);
            assert_eq!(reveal(&ticket(i, commit), &secret, 1_000_000), Ok(true));
            assert_eq!(reveal(&ticket(i, commit), &secret, 0), Ok(false));
        }
    }
}
