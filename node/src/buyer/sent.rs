//! The providers each recent job was sent to, in order, kept in memory for the API
//! (`sent_to` of `GET /api/v1/jobs/{id}`): a client that submits a job again because its
//! provider is slow or failed names them in the new job's `avoid` list. Bounded: the last
//! [`MAX_JOBS`] jobs, [`MAX_PER_JOB`] providers each.

use std::collections::{HashMap, VecDeque};

use sietch_market::{Address, B256};

/// Jobs remembered.
const MAX_JOBS: usize = 10_000;
/// Providers remembered per job (the buyer tries at most a few).
const MAX_PER_JOB: usize = 16;

/// The providers of the last jobs, in the order they were sent to.
#[derive(Debug, Default)]
pub(super) struct SentTo {
    by_job: HashMap<B256, Vec<Address>>,
    order: VecDeque<B256>,
}

impl SentTo {
    /// Notes that `job` was sent to `provider`.
    pub(super) fn record(&mut self, job: B256, provider: Address) {
        if !self.by_job.contains_key(&job) {
            if self.order.len() >= MAX_JOBS
                && let Some(old) = self.order.pop_front()
            {
                self.by_job.remove(&old);
            }
            self.order.push_back(job);
        }
        let list = self.by_job.entry(job).or_default();
        if list.len() < MAX_PER_JOB && !list.contains(&provider) {
            list.push(provider);
        }
    }

    /// The providers `job` was sent to, in order.
    pub(super) fn of(&self, job: &B256) -> Vec<Address> {
        self.by_job.get(job).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_kept_in_order_once_each_and_old_jobs_forgotten() {
        let mut s = SentTo::default();
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let job = B256::repeat_byte(7);
        s.record(job, a);
        s.record(job, b);
        s.record(job, a);
        assert_eq!(s.of(&job), [a, b]);
        assert!(s.of(&B256::ZERO).is_empty());
        for i in 0..MAX_PER_JOB as u8 + 4 {
            s.record(job, Address::repeat_byte(10 + i));
        }
        assert_eq!(s.of(&job).len(), MAX_PER_JOB);
        for i in 0..MAX_JOBS as u64 {
            s.record(B256::from(sietch_market::U256::from(i + 1)), a);
        }
        assert!(s.of(&job).is_empty(), "the oldest job forgotten");
        assert_eq!(s.order.len(), MAX_JOBS);
        assert_eq!(s.by_job.len(), MAX_JOBS);
    }
}
