//! Group commit: writes that arrive while another is committing share the next transaction,
//! and a durable batch shares one fsync.
//!
//! A durable redb commit costs far more than the few rows a job writes (about 0.3 ms of
//! wall time and as much CPU here, against 0.02 ms without the fsync), and every writer
//! waits for redb's one write lock anyway. So a writer queues its write and takes the
//! commit lock; whoever holds the lock takes every queued write (up to [`MAX_BATCH`]), runs
//! them in order in one transaction and commits once, durably if any of them must be.
//! Waiters whose write went out in that batch find it done when they get the lock.
//!
//! A batch is the same as its writes one after another in queue order. When one of them
//! refuses (its error is its own: a job that exists, a state that cannot change) or the
//! commit fails, the batch is dropped and every write in it runs again alone, as it would
//! have without batching; so a write is a closure that can run twice, over owned data.
//! The queue holds at most one write per waiting thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Store;
use super::error::StoreError;

/// The most writes one transaction takes.
pub(super) const MAX_BATCH: usize = 64;

/// The writes waiting for a transaction, and the lock whose holder commits them.
#[derive(Default)]
pub(super) struct Batcher {
    queue: Mutex<Vec<Box<dyn Write>>>,
    commit: Mutex<()>,
    writes: AtomicU64,
    transactions: AtomicU64,
}

/// How well group commit does: the writes committed through it and the transactions they
/// took (see [`Store::group_commits`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommits {
    /// Writes committed (a write that refused is not counted).
    pub writes: u64,
    /// Transactions committed for them.
    pub transactions: u64,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("queued", &lock(&self.queue).len())
            .finish()
    }
}

/// A lock, even if a thread panicked while holding it: what it guards stays consistent
/// (a queue of writes; a slot written whole).
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One queued write, its output type erased.
trait Write: Send {
    fn durable(&self) -> bool;
    /// Runs the write in `tx`; false when it refused (its error is kept for its caller).
    fn run(&mut self, tx: &redb::WriteTransaction) -> bool;
    /// The transaction it last ran in is over: committed (`Ok`), or the commit failed.
    fn finish(&mut self, outcome: Result<(), StoreError>);
}

struct Slot<T> {
    result: Option<Result<T, StoreError>>,
    done: bool,
}

struct Queued<T, F> {
    f: F,
    durable: bool,
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T, F> Write for Queued<T, F>
where
    T: Send,
    F: Fn(&redb::WriteTransaction) -> Result<T, StoreError> + Send,
{
    fn durable(&self) -> bool {
        self.durable
    }

    fn run(&mut self, tx: &redb::WriteTransaction) -> bool {
        let out = (self.f)(tx);
        let ok = out.is_ok();
        lock(&self.slot).result = Some(out);
        ok
    }

    fn finish(&mut self, outcome: Result<(), StoreError>) {
        let mut slot = lock(&self.slot);
        if let Err(e) = outcome {
            slot.result = Some(Err(e));
        }
        slot.done = true;
    }
}

impl<T, F> Drop for Queued<T, F> {
    /// A write dropped unfinished (a panic in the batch it was in) ends its caller's wait
    /// with an error rather than leaving it to wait for ever.
    fn drop(&mut self) {
        let mut slot = lock(&self.slot);
        if !slot.done {
            slot.result = Some(Err(abandoned()));
            slot.done = true;
        }
    }
}

fn abandoned() -> StoreError {
    StoreError::Invalid {
        what: "write",
        why: "the batch it was in was abandoned".into(),
    }
}

impl Store {
    /// The job writes committed since the store was opened and the transactions they took:
    /// under load, many writes per transaction.
    pub fn group_commits(&self) -> GroupCommits {
        let b = &self.inner.batcher;
        GroupCommits {
            writes: b.writes.load(Ordering::Relaxed),
            transactions: b.transactions.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` in a write transaction shared with the writes queued beside it, committed
    /// (durably when `durable`) before this returns. `f` may run more than once (see the
    /// module docs); only the run that was committed counts. Blocking, like the store's
    /// other methods.
    pub(super) fn batched<T, F>(&self, durable: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&redb::WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Slot {
            result: None,
            done: false,
        }));
        let batcher = &self.inner.batcher;
        lock(&batcher.queue).push(Box::new(Queued {
            f,
            durable,
            slot: slot.clone(),
        }));
        let _commit = lock(&batcher.commit);
        loop {
            {
                let mut s = lock(&slot);
                if s.done {
                    return s.result.take().unwrap_or_else(|| Err(abandoned()));
                }
            }
            // Unfinished and not taken by another batch (a batch ends under the lock): it is
            // still queued, so this batch is not empty.
            let mut batch: Vec<Box<dyn Write>> = {
                let mut queue = lock(&batcher.queue);
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                return Err(abandoned());
            }
            if batch.len() == 1 || !self.together(&mut batch) {
                for w in &mut batch {
                    self.alone(w.as_mut());
                }
            }
        }
    }

    /// Runs and commits `batch` in one transaction; false (nothing written, nothing
    /// finished) when any write refused or the commit failed.
    fn together(&self, batch: &mut [Box<dyn Write>]) -> bool {
        let durable = batch.iter().any(|w| w.durable());
        let Ok(tx) = self.write_tx(durable) else {
            return false;
        };
        for w in batch.iter_mut() {
            if !w.run(&tx) {
                // Dropping the transaction aborts it.
                return false;
            }
        }
        if tx.commit().is_err() {
            return false;
        }
        self.committed(batch.len());
        for w in batch.iter_mut() {
            w.finish(Ok(()));
        }
        true
    }

    fn committed(&self, writes: usize) {
        let b = &self.inner.batcher;
        b.writes.fetch_add(writes as u64, Ordering::Relaxed);
        b.transactions.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs and commits one write in its own transaction.
    fn alone(&self, w: &mut dyn Write) {
        let tx = match self.write_tx(w.durable()) {
            Ok(tx) => tx,
            Err(e) => return w.finish(Err(e)),
        };
        if w.run(&tx) {
            let outcome = tx.commit().map_err(StoreError::from);
            if outcome.is_ok() {
                self.committed(1);
            }
            w.finish(outcome);
        } else {
            drop(tx);
            w.finish(Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    use super::*;

    const T: TableDefinition<'static, u64, u64> = TableDefinition::new("batch_test");

    /// `n` threads each write key `i` (the one in `refuses` refuses after writing) while the
    /// test holds the commit lock, so that all of them are queued when it lets go. Returns
    /// what each was answered, in key order, and how many times each write ran.
    fn queued_writes(store: &Store, n: u64, refuses: Option<u64>) -> (Vec<bool>, usize) {
        let runs = Arc::new(AtomicUsize::new(0));
        let held = lock(&store.inner.batcher.commit);
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (store, runs) = (store.clone(), runs.clone());
                std::thread::spawn(move || {
                    store
                        .batched(i % 2 == 0, move |tx| {
                            runs.fetch_add(1, Ordering::Relaxed);
                            tx.open_table(T)?.insert(i, i * 10)?;
                            if Some(i) == refuses {
                                return Err(StoreError::Invalid {
                                    what: "test write",
                                    why: "refused".into(),
                                });
                            }
                            Ok(i)
                        })
                        .map(|k| assert_eq!(k, i))
                        .is_ok()
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock(&store.inner.batcher.queue).len() < n as usize {
            assert!(Instant::now() < deadline, "the writes were never queued");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        let answers = threads.into_iter().map(|t| t.join().unwrap()).collect();
        (answers, runs.load(Ordering::Relaxed))
    }

    fn stored(store: &Store) -> Vec<(u64, u64)> {
        let tx = store.db().begin_read().unwrap();
        let table = tx.open_table(T).unwrap();
        table
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (k.value(), v.value())
            })
            .collect()
    }

    #[test]
    fn writes_queued_together_share_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (answers, runs) = queued_writes(&store, 20, None);
        assert!(answers.iter().all(|ok| *ok));
        assert_eq!(runs, 20);
        assert_eq!(
            store.group_commits(),
            GroupCommits {
                writes: 20,
                transactions: 1
            }
        );
        let expected: Vec<_> = (0..20).map(|i| (i, i * 10)).collect();
        assert_eq!(stored(&store), expected);
        // Committed durably (half of them asked for it): there after a reopen.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(stored(&store), expected);
    }

    #[test]
    fn a_write_that_refuses_costs_the_others_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (answers, runs) = queued_writes(&store, 10, Some(3));
        let expected_answers: Vec<_> = (0..10).map(|i| i != 3).collect();
        assert_eq!(answers, expected_answers);
        // Every write ran in the batch that was dropped, then alone.
        assert!(runs > 10, "{runs} runs");
        assert_eq!(store.group_commits().writes, 9);
        // Nothing of the refused write, even what it wrote before refusing.
        let expected: Vec<_> = (0..10).filter(|i| *i != 3).map(|i| (i, i * 10)).collect();
        assert_eq!(stored(&store), expected);
    }

    #[test]
    fn a_write_alone_commits_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..3u64 {
            let got = store.batched(true, move |tx| {
                tx.open_table(T)?.insert(i, i)?;
                Ok(i + 1)
            });
            assert_eq!(got.unwrap(), i + 1);
        }
        assert_eq!(
            store.group_commits(),
            GroupCommits {
                writes: 3,
                transactions: 3
            }
        );
    }
}
