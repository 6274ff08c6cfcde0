//! Per-key locks shared by every worker (a user's memberships, the upstream login), kept in
//! one store entry and changed only by the lock intents (`runtime::intents`) through the
//! store's compare-and-swap.

use crate::runtime::intents::{apply, Outcome, SharedIntent, SharedPort};
use crate::runtime::store::{MemoryStore, SharedStore};

/// Per-key locks shared by all requests (in Envoy: proxy-wasm shared data), as the host's lease
/// and the tests use them: calls on top of the lock intents (`SharedIntent`), so every port that
/// applies intents is one, and the same applier and counters serve the flows and the gate.
pub trait Locks: SharedPort {
    /// Takes `key` for `owner` until `now_ms + ttl_ms`, unless another owner holds it and
    /// its time has not run out. True when `owner` holds it afterwards.
    fn try_lock(&mut self, key: &str, owner: &str, now_ms: u64, ttl_ms: u64) -> bool {
        self.apply(SharedIntent::lock(key, owner, now_ms, ttl_ms)) == Outcome::Locked(true)
    }
    fn unlock(&mut self, key: &str, owner: &str) {
        // A failure is counted and logged by the applier; the lock then lapses at its TTL.
        self.apply(SharedIntent::unlock(key, owner));
    }
}

impl<P: SharedPort + ?Sized> Locks for P {}

pub use crate::runtime::lock_table::{ensure_table, LOCK_TABLE};

/// The locks (and remembered totals) over a shared store: what the host ships to the flows.
/// It only applies intents: the same applier, the same counters as the gate's.
#[derive(Debug, Default)]
pub struct StoreLocks<S>(pub S);

/// The same locks in memory, for one VM and for tests.
pub type MemoryLocks = StoreLocks<MemoryStore>;

impl<S: SharedStore> StoreLocks<S> {
    /// The locks in the table, expired or not (for tests and diagnostics).
    pub fn held(&self) -> Vec<(String, String, u64)> {
        self.0
            .get(LOCK_TABLE)
            .ok()
            .and_then(|(bytes, _)| serde_json::from_slice(&bytes?).ok())
            .unwrap_or_default()
    }
}

impl<S: SharedStore> SharedPort for StoreLocks<S> {
    fn apply(&mut self, intent: SharedIntent) -> Outcome {
        apply(&mut self.0, &intent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_has_one_owner_until_it_expires_or_is_released() {
        let mut l = MemoryLocks::default();
        ensure_table(&mut l.0);
        assert!(l.try_lock("u1", "a", 0, 100));
        assert!(!l.try_lock("u1", "b", 50, 100));
        assert!(l.try_lock("u1", "a", 50, 100), "the owner renews");
        assert!(!l.try_lock("u1", "b", 149, 100));
        assert!(l.try_lock("u1", "b", 150, 100), "expired");
        l.unlock("u1", "a");
        assert!(!l.try_lock("u1", "a", 151, 100), "only the owner unlocks");
        l.unlock("u1", "b");
        assert!(l.try_lock("u1", "a", 151, 100));
        assert!(l.try_lock("u2", "b", 151, 100), "keys are separate");
    }

    #[test]
    fn lost_races_are_retried_and_failures_hold_nothing() {
        let mut l = MemoryLocks::default();
        l.0.lose_next = 5;
        assert!(l.try_lock("u1", "a", 0, 100));
        assert!(!l.try_lock("u1", "b", 0, 100));
        l.0.lose_next = crate::runtime::store::CAS_ATTEMPTS;
        assert!(!l.try_lock("u2", "a", 0, 100), "every attempt lost");
        l.0.fail_all = true;
        assert!(!l.try_lock("u3", "a", 0, 100));
        l.0.fail_all = false;
        // The wire format: a JSON list of [key, owner, until] triples.
        let (bytes, _) = l.0.get(LOCK_TABLE).unwrap();
        assert_eq!(bytes.unwrap(), br#"[["u1","a",100]]"#.to_vec());
    }

    #[test]
    fn the_table_is_created_once() {
        let mut s = MemoryStore::default();
        ensure_table(&mut s);
        assert_eq!(s.get(LOCK_TABLE).unwrap().0, Some(b"[]".to_vec()));
        let mut l = StoreLocks(s);
        assert!(l.try_lock("k", "o", 0, 1));
        ensure_table(&mut l.0);
        assert_ne!(l.0.get(LOCK_TABLE).unwrap().0, Some(b"[]".to_vec()));
    }
}
