//! Operations on the state every worker shares, as values: what a step asks of the lock table,
//! the remembered totals and the upstream session slot (`SharedIntent`), and what came of it
//! (`Outcome`). The core builds intents the way it builds Drupal calls; one applier (`apply`)
//! executes them against the `SharedStore` through its compare-and-swap loop, so the same code
//! and counters serve the host and the tests, and a test can interleave two requests' intents
//! over a store that loses chosen races.

use crate::runtime::lock_table::{self as locks, LOCK_TABLE};
use crate::runtime::session::{SessionChange, SessionSlot, SlotView, SESSION_SLOT};
use crate::runtime::store::{cas_apply, Failure, SharedStore};
use crate::runtime::tally::{self, Event};
use crate::runtime::totals;

/// One operation on the shared state.
#[derive(Debug, Clone, PartialEq)]
pub enum SharedIntent {
    /// Take `key` for `owner` until `now_ms + ttl_ms`, unless another owner holds it and its
    /// time has not run out (an owner renews its own).
    TryLock {
        key: String,
        owner: String,
        now_ms: u64,
        ttl_ms: u64,
    },
    /// Take every one of `keys` for `owner`, or none of them: one write of the table, so two
    /// requests taking overlapping sets never hold part of each other's and wait.
    TryLockAll {
        keys: Vec<String>,
        owner: String,
        now_ms: u64,
        ttl_ms: u64,
    },
    /// Release `owner`'s lock on `key` (another owner's stays).
    Unlock {
        key: String,
        owner: String,
    },
    /// The list total remembered for a query (`paging`).
    LookUpTotal {
        query: String,
    },
    RememberTotal {
        query: String,
        total: usize,
    },
    /// The session slot as it is.
    ReadSession,
    /// A change of the session slot.
    Session(SessionChange),
}

/// What came of an intent.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `TryLock`: whether the owner holds the key now.
    Locked(bool),
    /// `Unlock`: the owner holds the key no longer (it may have expired before).
    Unlocked,
    Total(Option<usize>),
    Remembered,
    /// `ReadSession`, or a change: the slot as it is now, and whether the change was written
    /// (`false`: it did not apply to what the slot held).
    Session {
        slot: Option<SessionSlot>,
        changed: bool,
    },
    /// Nothing read or written: the store failed, or every compare-and-swap lost.
    Failed(Failure),
}

impl SharedIntent {
    pub fn lock(key: &str, owner: &str, now_ms: u64, ttl_ms: u64) -> Self {
        SharedIntent::TryLock {
            key: key.to_string(),
            owner: owner.to_string(),
            now_ms,
            ttl_ms,
        }
    }

    pub fn unlock(key: &str, owner: &str) -> Self {
        SharedIntent::Unlock {
            key: key.to_string(),
            owner: owner.to_string(),
        }
    }

    /// For the log: the operation and its key, never a cookie, token or query value.
    pub fn describe(&self) -> String {
        match self {
            SharedIntent::TryLock { key, .. } => format!("take the lock {key}"),
            SharedIntent::TryLockAll { keys, .. } => format!("take the locks {}", keys.join(", ")),
            SharedIntent::Unlock { key, .. } => format!("release the lock {key}"),
            SharedIntent::LookUpTotal { .. } => "read a remembered total".to_string(),
            SharedIntent::RememberTotal { .. } => "remember a total".to_string(),
            SharedIntent::ReadSession => "read the upstream session".to_string(),
            SharedIntent::Session(change) => change.name().to_string(),
        }
    }
}

impl Outcome {
    /// The slot a session intent found or left (`None` also when it failed).
    pub fn slot(self) -> Option<SessionSlot> {
        match self {
            Outcome::Session { slot, .. } => slot,
            _ => None,
        }
    }
}

/// Executes one intent against the store: the one place shared state changes. A failure is
/// counted (`CasGaveUp` by the loop, `UnlockFailed` for a lock left behind) and kept for the
/// host's log; the outcome says what the caller may rely on.
pub fn apply<S: SharedStore + ?Sized>(store: &mut S, intent: &SharedIntent) -> Outcome {
    let outcome = match intent {
        SharedIntent::TryLock {
            key,
            owner,
            now_ms,
            ttl_ms,
        } => cas_apply(store, LOCK_TABLE, |bytes| {
            let mut table = locks::parse(bytes, *now_ms);
            let held = locks::take(&mut table, key, owner, now_ms.saturating_add(*ttl_ms));
            (Some(locks::encode(&table)), held)
        })
        .map(Outcome::Locked),
        SharedIntent::TryLockAll {
            keys,
            owner,
            now_ms,
            ttl_ms,
        } => cas_apply(store, LOCK_TABLE, |bytes| {
            let mut table = locks::parse(bytes, *now_ms);
            let until = now_ms.saturating_add(*ttl_ms);
            let all = keys
                .iter()
                .all(|key| locks::take(&mut table, key, owner, until));
            // None taken unless all are: the table is written only when they are.
            (all.then(|| locks::encode(&table)), all)
        })
        .map(Outcome::Locked),
        SharedIntent::Unlock { key, owner } => cas_apply(store, LOCK_TABLE, |bytes| {
            // Time 0 expires nothing: only this lock goes.
            let mut table = locks::parse(bytes, 0);
            let before = table.len();
            table.retain(|(k, o, _)| !(k == key && o == owner));
            // Nothing to release (expired and taken, or never held): nothing to write.
            ((table.len() != before).then(|| locks::encode(&table)), ())
        })
        .map(|()| Outcome::Unlocked),
        SharedIntent::LookUpTotal { query } => Ok(Outcome::Total(totals::remembered(store, query))),
        SharedIntent::RememberTotal { query, total } => {
            totals::remember(store, query, *total).map(|()| Outcome::Remembered)
        }
        SharedIntent::ReadSession => store
            .get(SESSION_SLOT)
            .map(|(bytes, _)| Outcome::Session {
                slot: bytes.and_then(|b| serde_json::from_slice(&b).ok()),
                changed: false,
            })
            .map_err(|_| Failure::Store),
        SharedIntent::Session(change) => cas_apply(store, SESSION_SLOT, |bytes| {
            let current: Option<SessionSlot> = bytes.and_then(|b| serde_json::from_slice(&b).ok());
            match change.apply(current.clone()) {
                Some(next) => (serde_json::to_vec(&next).ok(), (Some(next), true)),
                None => (None, (current, false)),
            }
        })
        .map(|(slot, changed)| Outcome::Session { slot, changed }),
    };
    outcome.unwrap_or_else(|failure| {
        let why = match failure {
            Failure::Store => "the shared-data store refused",
            Failure::GaveUp => "every compare-and-swap attempt lost to other workers",
        };
        let line = format!("could not {}: {why}", intent.describe());
        // A give-up is counted by the loop already (`CasGaveUp`); a lock left behind has its
        // own count as well.
        if matches!(intent, SharedIntent::Unlock { .. }) {
            tally::fail(Event::UnlockFailed, line);
        } else {
            tally::keep(line);
        }
        Outcome::Failed(failure)
    })
}

/// Where a step's intents are applied, at once: a step runs without yielding, so this is the
/// synchronous form of returning the intents to the host and resuming with the outcomes.
pub trait SharedPort {
    fn apply(&mut self, intent: SharedIntent) -> Outcome;
}

/// The applier over a store, for one step: it applies every intent with `apply`, and reads
/// the session slot at most once between two changes (one gate step asks for it several
/// times and each host read copies and parses the JSON; a step runs without yielding, so a
/// copy taken at its start is as current as a later read would be).
pub struct Applier<S> {
    pub store: S,
    seen: Option<Option<SessionSlot>>,
    changed: bool,
}

impl<S: SharedStore> Applier<S> {
    pub fn new(store: S) -> Self {
        Applier {
            store,
            seen: None,
            changed: false,
        }
    }

    pub fn view(&self) -> SlotView<'_> {
        match (&self.seen, self.changed) {
            (Some(seen), _) => SlotView::Read(seen.as_ref()),
            (None, true) => SlotView::Changed,
            (None, false) => SlotView::Unread,
        }
    }

    pub fn apply_all(&mut self, intents: Vec<SharedIntent>) -> Vec<Outcome> {
        intents
            .into_iter()
            .map(|i| SharedPort::apply(self, i))
            .collect()
    }
}

impl<S: SharedStore> SharedPort for Applier<S> {
    fn apply(&mut self, intent: SharedIntent) -> Outcome {
        match &intent {
            SharedIntent::ReadSession => {
                if let Some(seen) = &self.seen {
                    return Outcome::Session {
                        slot: seen.clone(),
                        changed: false,
                    };
                }
                let outcome = apply(&mut self.store, &intent);
                if let Outcome::Session { slot, .. } = &outcome {
                    self.seen = Some(slot.clone());
                }
                outcome
            }
            SharedIntent::Session(_) => {
                self.seen = None;
                self.changed = true;
                apply(&mut self.store, &intent)
            }
            _ => apply(&mut self.store, &intent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::store::MemoryStore;

    /// Counts the reads that reach the store under it.
    #[derive(Default)]
    struct Counting(MemoryStore, std::cell::Cell<usize>);

    impl SharedStore for Counting {
        fn get(
            &self,
            key: &str,
        ) -> Result<(Option<Vec<u8>>, Option<u32>), crate::runtime::store::StoreError> {
            self.1.set(self.1.get().saturating_add(1));
            self.0.get(key)
        }
        fn set(
            &mut self,
            key: &str,
            value: &[u8],
            cas: Option<u32>,
        ) -> Result<(), crate::runtime::store::StoreError> {
            self.0.set(key, value, cas)
        }
    }

    #[test]
    fn the_applier_reads_the_slot_again_only_after_a_change() {
        let mut a = Applier::new(Counting::default());
        assert_eq!(a.view(), SlotView::Unread);
        assert_eq!(a.apply(SharedIntent::ReadSession).slot(), None);
        assert_eq!(a.apply(SharedIntent::ReadSession).slot(), None);
        assert_eq!(a.view(), SlotView::Read(None));
        let seed = SessionChange::SeedEpoch {
            account: "a".into(),
            local_epoch: 3,
        };
        let out = a.apply(SharedIntent::Session(seed));
        assert!(matches!(&out, Outcome::Session { slot: Some(s), changed: true } if s.epoch == 3));
        assert_eq!(a.view(), SlotView::Changed, "a change forgets the copy");
        assert_eq!(
            a.apply(SharedIntent::ReadSession).slot().map(|s| s.epoch),
            Some(3)
        );
        assert!(matches!(a.view(), SlotView::Read(Some(s)) if s.epoch == 3));
        // One read before the change, one for the change, one after it.
        assert_eq!(a.store.1.get(), 3);
    }

    #[test]
    fn older_slots_still_read() {
        let mut s = MemoryStore::default();
        s.set(SESSION_SLOT, br#"{"account":"b","cookie":null,"csrf":null,"opened_ms":1,"refusals":0,"retry_at_ms":0,"refusal":null}"#, None).unwrap();
        let slot = apply(&mut s, &SharedIntent::ReadSession).slot().unwrap();
        assert_eq!(
            (slot.account.as_str(), slot.basic_ok, slot.step),
            ("b", false, 0)
        );
    }

    #[test]
    fn failures_are_outcomes_counted_and_kept_for_the_log() {
        tally::drain();
        tally::drain_failures();
        let mut s = MemoryStore::default();
        assert_eq!(
            apply(&mut s, &SharedIntent::lock("k", "a", 0, 10)),
            Outcome::Locked(true)
        );
        s.fail_all = true;
        assert_eq!(
            apply(&mut s, &SharedIntent::unlock("k", "a")),
            Outcome::Failed(Failure::Store)
        );
        s.fail_all = false;
        s.lose_next = crate::runtime::store::CAS_ATTEMPTS;
        assert_eq!(
            apply(&mut s, &SharedIntent::unlock("k", "a")),
            Outcome::Failed(Failure::GaveUp)
        );
        assert_eq!(
            tally::drain(),
            vec![(Event::CasGaveUp, 1), (Event::UnlockFailed, 2)]
        );
        let lines = tally::drain_failures();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("release the lock k") && lines[0].contains("refused"));
        assert!(lines[1].contains("every compare-and-swap attempt lost"));
        // The lock is still there: it goes when its time runs out.
        assert_eq!(
            apply(&mut s, &SharedIntent::lock("k", "b", 9, 10)),
            Outcome::Locked(false)
        );
        assert_eq!(
            apply(&mut s, &SharedIntent::lock("k", "b", 10, 10)),
            Outcome::Locked(true)
        );
    }
}
