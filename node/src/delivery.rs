//! Delivery as part of what a dispute decides (`docs/disputes.md`, attack 3).
//!
//! A provider that computes the right result, never sends it and claims the ticket would be
//! paid if verifiers judged only the output hash. So: a provider keeps the results it has
//! not been paid for ([`Results`], bounded), and when one of its tickets is disputed it hands
//! the result to the drawn verifiers with the job. A verifier votes "agree" only with a result
//! in hand whose outputs hash to the claimed output hash ([`is_the_claimed`]); without one it
//! votes [`NOT_DELIVERED`]. It hands the result to the buyer when asked, so the buyer ends
//! with the output or its money back. A buyer that never received a result disputes with
//! `disputeUndelivered`: if the provider turns out right, it pays the verifiers from the
//! ticket and the buyer's bond comes back.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use alloy::primitives::B256;

use crate::net::JobResult;

/// The output hash a verifier signs when it holds no result matching the claimed one: it
/// differs from every real output hash, so on chain it counts against the provider.
pub const NOT_DELIVERED: B256 = B256::ZERO;

/// Whether `result` is the one a ticket claims: same job, same output hash and fuel as the
/// claim, and outputs that really hash to it.
pub fn is_the_claimed(result: &JobResult, job_id: B256, output_hash: B256, fuel_used: u64) -> bool {
    result.job_id == job_id
        && result.commitment.output_hash == output_hash
        && result.commitment.fuel_used == fuel_used
        && result.output_hash() == Some(output_hash)
}

/// Results kept by key (a job id, or a ticket id), the oldest dropped first beyond
/// `max_entries` or `max_bytes` of outputs.
#[derive(Debug)]
pub struct Results {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<B256, JobResult>,
    /// Keys oldest first; a removed key stays until it comes up or the queue is compacted
    /// (at twice the entries), so that a removal (every paid job) costs O(1).
    order: VecDeque<B256>,
    bytes: usize,
}

fn size(r: &JobResult) -> usize {
    r.stdout.len()
        + r.files
            .iter()
            .map(|(n, b)| n.len() + b.len())
            .sum::<usize>()
}

impl Results {
    /// An empty store of at most `max_entries` results and `max_bytes` of outputs.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_entries,
            max_bytes,
        }
    }

    /// Keeps `result` under `key` (replacing what was there); returns false when it alone is
    /// larger than the whole budget, and then keeps nothing.
    pub fn put(&self, key: B256, result: JobResult) -> bool {
        let n = size(&result);
        if n > self.max_bytes || self.max_entries == 0 {
            return false;
        }
        let Ok(mut i) = self.inner.lock() else {
            return false;
        };
        if let Some(old) = i.by_key.remove(&key) {
            i.bytes -= size(&old);
            i.order.retain(|k| *k != key);
        }
        while i.by_key.len() >= self.max_entries || i.bytes + n > self.max_bytes {
            let Some(oldest) = i.order.pop_front() else {
                break;
            };
            if let Some(old) = i.by_key.remove(&oldest) {
                i.bytes -= size(&old);
            }
        }
        if i.order.len() >= 2 * self.max_entries {
            let Inner { by_key, order, .. } = &mut *i;
            order.retain(|k| by_key.contains_key(k));
        }
        i.bytes += n;
        i.order.push_back(key);
        i.by_key.insert(key, result);
        true
    }

    /// The result kept under `key`.
    pub fn get(&self, key: &B256) -> Option<JobResult> {
        self.inner.lock().ok()?.by_key.get(key).cloned()
    }

    /// Forgets the result under `key`.
    pub fn remove(&self, key: &B256) {
        if let Ok(mut i) = self.inner.lock()
            && let Some(old) = i.by_key.remove(key)
        {
            i.bytes -= size(&old);
        }
    }

    /// How many results are kept.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.by_key.len()).unwrap_or(0)
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sietch_market::{ResultCommitment, U256};

    fn result(job: u8, stdout: &[u8]) -> JobResult {
        let outcome = sietch_market::Outcome::Exited { code: 0 };
        let output_hash = B256::from(sietch_market::output_hash(
            outcome,
            stdout,
            &sietch_market::OutputFiles::new(),
        ));
        JobResult {
            job_id: B256::repeat_byte(job),
            outcome,
            stdout: stdout.to_vec(),
            files: Default::default(),
            commitment: ResultCommitment {
                job_id: B256::repeat_byte(job),
                spec_hash: B256::repeat_byte(9),
                channel_id: B256::repeat_byte(3),
                output_hash,
                fuel_used: 10,
                gpu_millis: 0,
                amount: U256::from(1),
            },
            signature: [0; 65],
        }
    }

    #[test]
    fn a_result_is_the_claimed_one_only_if_its_outputs_hash_to_the_claim() {
        let r = result(1, b"hello");
        let h = r.commitment.output_hash;
        assert!(is_the_claimed(&r, B256::repeat_byte(1), h, 10));
        assert!(
            !is_the_claimed(&r, B256::repeat_byte(2), h, 10),
            "another job"
        );
        assert!(
            !is_the_claimed(&r, B256::repeat_byte(1), h, 11),
            "other fuel"
        );
        assert!(!is_the_claimed(&r, B256::repeat_byte(1), NOT_DELIVERED, 10));
        // Outputs swapped behind the same commitment: not the claimed result.
        let mut forged = r.clone();
        forged.stdout = b"other".to_vec();
        assert!(!is_the_claimed(&forged, B256::repeat_byte(1), h, 10));
    }

    #[test]
    fn results_are_bounded_by_count_and_bytes_oldest_first() {
        let kept = Results::new(2, 12);
        assert!(kept.put(B256::repeat_byte(1), result(1, b"aaaa")));
        assert!(kept.put(B256::repeat_byte(2), result(2, b"bbbb")));
        assert!(kept.put(B256::repeat_byte(3), result(3, b"cccc")));
        assert_eq!(kept.len(), 2);
        assert!(kept.get(&B256::repeat_byte(1)).is_none(), "the oldest went");
        // Count: one goes for the newcomer; bytes: 4 + 9 > 12, so the other goes too.
        assert!(kept.put(B256::repeat_byte(4), result(4, b"ddddddddd")));
        assert_eq!(kept.len(), 1);
        assert!(kept.get(&B256::repeat_byte(4)).is_some());
        // Larger than the whole budget: refused, nothing evicted.
        assert!(!kept.put(B256::repeat_byte(5), result(5, &[0; 13])));
        assert!(kept.get(&B256::repeat_byte(4)).is_some());
        kept.remove(&B256::repeat_byte(4));
        assert!(kept.is_empty());
        // Put and removed again and again (every paid job): the queue stays bounded, and
        // a key put again after its removal is kept once.
        for round in 0..100u8 {
            assert!(kept.put(B256::repeat_byte(round), result(round, b"x")));
            kept.remove(&B256::repeat_byte(round));
        }
        assert!(kept.inner.lock().unwrap().order.len() <= 4);
        assert!(kept.put(B256::repeat_byte(7), result(7, b"x")));
        assert!(kept.put(B256::repeat_byte(8), result(8, b"y")));
        assert_eq!(kept.len(), 2);
    }
}
