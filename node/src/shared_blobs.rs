//! Blobs held in memory once and shared by the jobs that read them: concurrent jobs on one
//! provider that use the same model (a 100 MB input) share one read-only copy rather than
//! holding one each, and a blob read again soon is not read and hashed from disk again.
//!
//! Two bounds: blobs in use are found through weak references (a job holds its inputs as
//! `Arc<[u8]>`, and a second job gets the same `Arc` while any job holds it), at most
//! [`MAX_TRACKED`] of them; and blobs no job holds stay in memory while they fit in the byte
//! budget, least recently used first out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use sietch_market::B256;

use crate::sync::lock;

/// Most blobs tracked by weak reference (dead entries are pruned before this is reached).
pub const MAX_TRACKED: usize = 4096;

/// Bytes of blobs no job holds that stay in memory by default: 1 GiB.
pub const DEFAULT_KEPT_BYTES: u64 = 1 << 30;

/// The shared copies. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct SharedBlobs {
    budget: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashMap<B256, Weak<[u8]>>,
    kept: VecDeque<(B256, Arc<[u8]>)>,
    kept_bytes: u64,
}

impl SharedBlobs {
    /// Shares blobs, keeping up to `kept_bytes` of them in memory when no job holds them.
    pub fn new(kept_bytes: u64) -> Self {
        Self {
            budget: kept_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The shared copy of blob `hash`, if one is in memory.
    pub fn get(&self, hash: &B256) -> Option<Arc<[u8]>> {
        let mut i = lock(&self.inner);
        let found = i.live.get(hash)?.upgrade()?;
        i.touch(hash);
        Some(found)
    }

    /// Shares `bytes`, the content of blob `hash`: returns the copy every job uses (the one
    /// already in memory, if another job brought it in meanwhile).
    pub fn insert(&self, hash: B256, bytes: Vec<u8>) -> Arc<[u8]> {
        let mut i = lock(&self.inner);
        if let Some(found) = i.live.get(&hash).and_then(Weak::upgrade) {
            i.touch(&hash);
            return found;
        }
        let shared: Arc<[u8]> = bytes.into();
        if i.live.len() >= MAX_TRACKED {
            i.live.retain(|_, w| w.strong_count() > 0);
        }
        if i.live.len() < MAX_TRACKED {
            i.live.insert(hash, Arc::downgrade(&shared));
        }
        let len = shared.len() as u64;
        if len <= self.budget {
            i.kept.push_back((hash, shared.clone()));
            i.kept_bytes = i.kept_bytes.saturating_add(len);
            while i.kept_bytes > self.budget {
                let Some((_, old)) = i.kept.pop_front() else {
                    break;
                };
                i.kept_bytes = i.kept_bytes.saturating_sub(old.len() as u64);
            }
        }
        shared
    }

    /// Blobs in memory (held by a job or kept) and the bytes kept for no job.
    pub fn stats(&self) -> (usize, u64) {
        let i = lock(&self.inner);
        let live = i.live.values().filter(|w| w.strong_count() > 0).count();
        (live, i.kept_bytes)
    }
}

impl Inner {
    /// Moves a kept blob to the back of the queue (the most recently used).
    fn touch(&mut self, hash: &B256) {
        if let Some(pos) = self.kept.iter().position(|(h, _)| h == hash)
            && let Some(entry) = self.kept.remove(pos)
        {
            self.kept.push_back(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    #[test]
    fn two_jobs_share_one_copy() {
        let s = SharedBlobs::new(0);
        let a = s.insert(h(1), vec![7; 1000]);
        // A second job asks while the first holds it: the same bytes, not a copy.
        let b = s
            .get(&h(1))
            .unwrap_or_else(|| s.insert(h(1), vec![7; 1000]));
        assert!(Arc::ptr_eq(&a, &b));
        let c = s.insert(h(1), vec![7; 1000]);
        assert!(
            Arc::ptr_eq(&a, &c),
            "an insert racing a holder gets the holder's copy"
        );
        drop((a, b, c));
        // Nothing kept (budget 0), nothing held: gone.
        assert!(s.get(&h(1)).is_none());
    }

    #[test]
    fn blobs_no_job_holds_are_kept_within_the_budget_oldest_out() {
        let s = SharedBlobs::new(250);
        drop(s.insert(h(1), vec![1; 100]));
        drop(s.insert(h(2), vec![2; 100]));
        assert!(s.get(&h(1)).is_some(), "kept, and now the most recent");
        drop(s.insert(h(3), vec![3; 100]));
        assert!(s.get(&h(2)).is_none(), "the least recently used went");
        assert!(s.get(&h(1)).is_some() && s.get(&h(3)).is_some());
        assert_eq!(s.stats(), (2, 200));
        // Larger than the budget: shared while held, never kept.
        let big = s.insert(h(4), vec![4; 300]);
        assert_eq!(s.get(&h(4)).map(|b| b.len()), Some(300));
        drop(big);
        assert!(s.get(&h(4)).is_none());
    }

    #[test]
    fn tracking_stays_bounded() {
        let s = SharedBlobs::new(0);
        let held: Vec<_> = (0..MAX_TRACKED + 10)
            .map(|n| {
                let mut k = [0u8; 32];
                k[..8].copy_from_slice(&(n as u64).to_le_bytes());
                s.insert(B256::from(k), vec![1])
            })
            .collect();
        assert!(lock(&s.inner).live.len() <= MAX_TRACKED);
        drop(held);
        drop(s.insert(h(9), vec![1]));
        assert!(lock(&s.inner).live.len() <= MAX_TRACKED);
    }
}
