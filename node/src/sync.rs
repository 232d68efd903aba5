//! One way to take a lock. A mutex is poisoned when a thread panicked while holding it; the
//! node's locks guard tables and counters whose every state is usable, so a poisoned lock is
//! taken as it is rather than skipped. Skipping it by hand (`if let Ok(..) = m.lock()`) is how
//! a random value once came out as 32 zero bytes: use [`lock`] instead.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, poisoned or not.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_value() {
        let m = std::sync::Arc::new(Mutex::new(7u32));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 8);
    }
}
