//! Test fixtures for races on the shared state: a store where other workers act at chosen
//! moments inside a compare-and-swap (`ContendedStore`), and a driver that applies several
//! requests' intents in a chosen order (`interleave`). Deterministic: no threads, no timing.

use crate::runtime::intents::{apply, Outcome, SharedIntent, SharedPort};
use crate::runtime::store::{MemoryStore, SharedStore, StoreError};

/// What happens just before one write reaches the store.
pub enum Act {
    /// Another worker's intents land first (the write then loses its compare-and-swap if
    /// they wrote its key, as on the real store).
    Land(Vec<SharedIntent>),
    /// Another worker runs a whole step on the store first (a request's gate step, say).
    Run(Box<dyn FnOnce(&mut MemoryStore)>),
    /// The write loses the race without anything landing (the version moves on).
    Lose,
    /// The host refuses the write.
    Fail,
}

/// The shared store of several workers, with the moments another one acts scheduled by the
/// number of the write they come before (1 = the next write).
#[derive(Default)]
pub struct ContendedStore {
    pub inner: MemoryStore,
    writes: usize,
    schedule: Vec<(usize, Act)>,
    /// Every intent applied through this store as a port, in order.
    pub applied: Vec<SharedIntent>,
}

impl ContendedStore {
    /// `act` happens before the `nth` write from now (1: the next).
    pub fn before_write(&mut self, nth: usize, act: Act) {
        self.schedule.push((self.writes.saturating_add(nth), act));
    }

    /// Acts scheduled but not reached yet.
    pub fn pending(&self) -> usize {
        self.schedule.len()
    }
}

impl SharedStore for ContendedStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        self.inner.get(key)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.writes = self.writes.saturating_add(1);
        let due: Vec<Act> = {
            let (due, later) = std::mem::take(&mut self.schedule)
                .into_iter()
                .partition::<Vec<_>, _>(|(at, _)| *at == self.writes);
            self.schedule = later;
            due.into_iter().map(|(_, act)| act).collect()
        };
        for act in due {
            match act {
                Act::Land(intents) => {
                    for intent in &intents {
                        apply(&mut self.inner, intent);
                    }
                }
                Act::Run(step) => step(&mut self.inner),
                Act::Lose => self.inner.lose_next = self.inner.lose_next.saturating_add(1),
                Act::Fail => {
                    self.inner.fail_all = true;
                    let result = self.inner.set(key, value, cas);
                    self.inner.fail_all = false;
                    return result;
                }
            }
        }
        self.inner.set(key, value, cas)
    }
}

impl SharedPort for ContendedStore {
    fn apply(&mut self, intent: SharedIntent) -> Outcome {
        self.applied.push(intent.clone());
        apply(self, &intent)
    }
}

/// A worker acting inside another's step applies its intents straight to the store.
impl SharedPort for MemoryStore {
    fn apply(&mut self, intent: SharedIntent) -> Outcome {
        apply(self, &intent)
    }
}

/// Applies the requests' intents in `order` (each entry: whose next intent goes now) and
/// returns each request's outcomes, in its own order.
pub fn interleave<S: SharedStore>(
    store: &mut S,
    requests: &[Vec<SharedIntent>],
    order: &[usize],
) -> Vec<Vec<Outcome>> {
    let mut outcomes: Vec<Vec<Outcome>> = requests.iter().map(|_| Vec::new()).collect();
    for &who in order {
        let done = outcomes[who].len();
        let intent = &requests[who][done];
        outcomes[who].push(apply(store, intent));
    }
    outcomes
}

#[cfg(test)]
mod tests {
    //! The lock table and the totals under contention: two requests' intents interleaved,
    //! and other workers landing inside a compare-and-swap.
    use super::*;
    use crate::runtime::lock_table::LOCK_TABLE;
    use crate::runtime::store::{Failure, CAS_ATTEMPTS};
    use crate::runtime::tally::{self, Event};

    fn lock(owner: &str, now_ms: u64) -> SharedIntent {
        SharedIntent::lock("u1", owner, now_ms, 100)
    }

    /// The store as the host leaves it at start-up: the lock table exists.
    fn started() -> ContendedStore {
        let mut s = ContendedStore::default();
        crate::runtime::lock_table::ensure_table(&mut s.inner);
        s
    }

    fn held(store: &ContendedStore) -> Vec<(String, String, u64)> {
        let (bytes, _) = store.inner.get(LOCK_TABLE).unwrap();
        serde_json::from_slice(&bytes.unwrap_or_else(|| b"[]".to_vec())).unwrap()
    }

    #[test]
    fn two_requests_taking_one_key_in_either_order_make_one_owner() {
        for (order, winner) in [([0, 1], "a"), ([1, 0], "b")] {
            let mut s = ContendedStore::default();
            let requests = [vec![lock("a", 0)], vec![lock("b", 0)]];
            let out = interleave(&mut s, &requests, &order);
            let won: Vec<bool> = out.iter().map(|o| o[0] == Outcome::Locked(true)).collect();
            assert_eq!(won.iter().filter(|w| **w).count(), 1, "{order:?}");
            assert_eq!(held(&s), vec![("u1".into(), winner.into(), 100)]);
        }
        // The loser gets it once the winner lets go, not before.
        let mut s = ContendedStore::default();
        let requests = [
            vec![lock("a", 0), SharedIntent::unlock("u1", "a")],
            vec![lock("b", 1), lock("b", 2)],
        ];
        let out = interleave(&mut s, &requests, &[0, 1, 0, 1]);
        assert_eq!(out[1], vec![Outcome::Locked(false), Outcome::Locked(true)]);
    }

    #[test]
    fn the_first_writers_of_a_missing_key_both_win_so_the_table_is_created_first() {
        // proxy-wasm's compare-and-swap does not protect a key's creation: b's take lands
        // inside a's, yet a's write goes through over it.
        let mut s = ContendedStore::default();
        s.before_write(1, Act::Land(vec![lock("b", 0)]));
        assert_eq!(
            SharedPort::apply(&mut s, lock("a", 0)),
            Outcome::Locked(true)
        );
        assert_eq!(
            held(&s),
            vec![("u1".into(), "a".into(), 100)],
            "b was told it holds it too"
        );
        // With the table created at start-up (`ensure_table`), the race is seen.
        let mut s = started();
        s.before_write(1, Act::Land(vec![lock("b", 0)]));
        assert_eq!(
            SharedPort::apply(&mut s, lock("a", 0)),
            Outcome::Locked(false)
        );
    }

    #[test]
    fn a_lock_taken_inside_anothers_compare_and_swap_is_seen_on_the_retry() {
        let mut s = started();
        // b's take lands between a's read of the table and a's write: a's write loses the
        // compare-and-swap, a reads again and finds b holding the key.
        s.before_write(1, Act::Land(vec![lock("b", 0)]));
        assert_eq!(
            SharedPort::apply(&mut s, lock("a", 0)),
            Outcome::Locked(false)
        );
        assert_eq!(held(&s), vec![("u1".into(), "b".into(), 100)]);
        assert_eq!(
            s.inner.writes, 4,
            "the table, b's write, a's lost one, a's retry"
        );
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn locks_on_other_keys_taken_or_released_meanwhile_are_kept() {
        let mut s = started();
        s.before_write(1, Act::Land(vec![SharedIntent::lock("u2", "b", 0, 100)]));
        assert_eq!(
            SharedPort::apply(&mut s, lock("a", 0)),
            Outcome::Locked(true)
        );
        assert_eq!(
            held(&s).len(),
            2,
            "no lost update: both locks are in the table"
        );
        // a releases u1 while b takes u3: only u1 goes.
        s.before_write(1, Act::Land(vec![SharedIntent::lock("u3", "b", 0, 100)]));
        assert_eq!(
            SharedPort::apply(&mut s, SharedIntent::unlock("u1", "a")),
            Outcome::Unlocked
        );
        let keys: Vec<String> = held(&s).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(keys, ["u2", "u3"]);
    }

    #[test]
    fn overlapping_sets_taken_all_or_none_never_hold_part_of_each_other() {
        let all = |owner: &str, keys: &[&str]| SharedIntent::TryLockAll {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            owner: owner.into(),
            now_ms: 0,
            ttl_ms: 100,
        };
        let mut s = started();
        // b's set lands inside a's: a's write loses, a reads again and takes nothing.
        s.before_write(1, Act::Land(vec![all("b", &["name/x", "mail/y"])]));
        let out = SharedPort::apply(&mut s, all("a", &["mail/y", "name/z"]));
        assert_eq!(out, Outcome::Locked(false));
        let owners: Vec<String> = held(&s).into_iter().map(|(_, o, _)| o).collect();
        assert_eq!(owners, ["b", "b"], "nothing of a's: no half-held set");
        // Disjoint sets both go through, in either order.
        let requests = [vec![all("a", &["k1", "k2"])], vec![all("b", &["k3"])]];
        for order in [[0, 1], [1, 0]] {
            let mut s = started();
            let out = interleave(&mut s, &requests, &order);
            assert_eq!(out, vec![vec![Outcome::Locked(true)]; 2]);
            assert_eq!(held(&s).len(), 3);
        }
    }

    #[test]
    fn a_take_that_loses_every_race_holds_nothing_and_is_counted() {
        tally::drain();
        tally::drain_failures();
        let mut s = ContendedStore::default();
        for nth in 1..=CAS_ATTEMPTS {
            s.before_write(nth, Act::Lose);
        }
        assert_eq!(
            SharedPort::apply(&mut s, lock("a", 0)),
            Outcome::Failed(Failure::GaveUp)
        );
        assert!(held(&s).is_empty());
        assert_eq!(tally::drain(), vec![(Event::CasGaveUp, 1)]);
        assert_eq!(tally::drain_failures().len(), 1);
        // Losing fewer than every attempt is no failure.
        for nth in 1..CAS_ATTEMPTS {
            s.before_write(nth, Act::Lose);
        }
        assert_eq!(
            SharedPort::apply(&mut s, lock("a", 0)),
            Outcome::Locked(true)
        );
        assert!(tally::drain().is_empty());
    }

    #[test]
    fn an_unlock_that_fails_is_counted_logged_and_lapses_at_the_ttl() {
        tally::drain();
        tally::drain_failures();
        let mut s = ContendedStore::default();
        assert_eq!(
            SharedPort::apply(&mut s, lock("a", 0)),
            Outcome::Locked(true)
        );
        s.before_write(1, Act::Fail);
        assert_eq!(
            SharedPort::apply(&mut s, SharedIntent::unlock("u1", "a")),
            Outcome::Failed(Failure::Store)
        );
        for nth in 1..=CAS_ATTEMPTS {
            s.before_write(nth, Act::Lose);
        }
        assert_eq!(
            SharedPort::apply(&mut s, SharedIntent::unlock("u1", "a")),
            Outcome::Failed(Failure::GaveUp)
        );
        assert_eq!(
            tally::drain(),
            vec![(Event::CasGaveUp, 1), (Event::UnlockFailed, 2)]
        );
        let lines = tally::drain_failures();
        assert_eq!(lines.len(), 2);
        assert!(lines
            .iter()
            .all(|l| l.starts_with("could not release the lock u1")));
        // The lock left behind holds until its time runs out, then the next owner takes it.
        assert_eq!(
            SharedPort::apply(&mut s, lock("b", 99)),
            Outcome::Locked(false)
        );
        assert_eq!(
            SharedPort::apply(&mut s, lock("b", 100)),
            Outcome::Locked(true)
        );
    }

    #[test]
    fn an_expired_lock_is_taken_over_and_its_first_owner_can_no_longer_touch_it() {
        let mut s = ContendedStore::default();
        let requests = [
            // a takes the key, stalls past its TTL, then tries to renew and to release it.
            vec![
                lock("a", 0),
                lock("a", 150),
                SharedIntent::unlock("u1", "a"),
            ],
            vec![lock("b", 50), lock("b", 100)],
        ];
        let out = interleave(&mut s, &requests, &[0, 1, 1, 0, 0]);
        assert_eq!(out[1], vec![Outcome::Locked(false), Outcome::Locked(true)]);
        assert_eq!(out[0][1], Outcome::Locked(false), "b holds it now");
        assert_eq!(out[0][2], Outcome::Unlocked, "nothing of a's to release");
        assert_eq!(held(&s), vec![("u1".into(), "b".into(), 200)]);
    }

    #[test]
    fn totals_remembered_concurrently_are_all_kept() {
        let mut s = ContendedStore::default();
        let remember = |query: &str, total| SharedIntent::RememberTotal {
            query: query.into(),
            total,
        };
        // The first total creates the entry (a lost creation would cost only a hint).
        SharedPort::apply(&mut s, remember("q0", 0));
        s.before_write(1, Act::Land(vec![remember("q2", 2)]));
        assert_eq!(
            SharedPort::apply(&mut s, remember("q1", 1)),
            Outcome::Remembered
        );
        let look = |s: &mut ContendedStore, query: &str| {
            SharedPort::apply(
                s,
                SharedIntent::LookUpTotal {
                    query: query.into(),
                },
            )
        };
        assert_eq!(look(&mut s, "q1"), Outcome::Total(Some(1)));
        assert_eq!(look(&mut s, "q2"), Outcome::Total(Some(2)));
    }
}
