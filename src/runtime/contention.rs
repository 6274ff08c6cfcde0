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
