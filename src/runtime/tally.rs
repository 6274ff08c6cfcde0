//! Counts of events deep inside the core (a pager round, a lost compare-and-swap race, a
//! protected account refused…) that the host turns into Envoy counters. The core stays
//! sans-IO: it only adds to a per-VM tally; the host drains it after each request.

use std::cell::{Cell, RefCell};

/// What is counted; each is one Envoy counter (`Event::metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Drupal refused the service account's credentials (one back-off step).
    UpstreamRefusal,
    /// A request paused because another one held a lock it needs.
    LockWait,
    /// A round of reads of the exact pager (counting a list that Drupal cannot count).
    PagerRound,
    /// The pager gave up: the list kept changing (the request answered 503).
    PagerGaveUp,
    /// A shared-data update lost every compare-and-swap attempt to other workers.
    CasGaveUp,
    /// SCIM was refused a protected account (uid 1, the service account, unmanaged roles).
    ProtectedRefusal,
    /// A lock could not be released (the store failed or every compare-and-swap lost): it
    /// stays until its time runs out.
    UnlockFailed,
}

pub const EVENTS: [Event; 7] = [
    Event::UpstreamRefusal,
    Event::LockWait,
    Event::PagerRound,
    Event::PagerGaveUp,
    Event::CasGaveUp,
    Event::ProtectedRefusal,
    Event::UnlockFailed,
];

impl Event {
    /// The Envoy stat name (`wasmcustom.` is Envoy's prefix; Prometheus: dots become `_`).
    pub fn metric(self) -> &'static str {
        match self {
            Event::UpstreamRefusal => "scim.upstream_refusals",
            Event::LockWait => "scim.lock_waits",
            Event::PagerRound => "scim.pager_rounds",
            Event::PagerGaveUp => "scim.pager_give_ups",
            Event::CasGaveUp => "scim.cas_give_ups",
            Event::ProtectedRefusal => "scim.protected_refusals",
            Event::UnlockFailed => "scim.unlock_failures",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Failure lines kept for the host's log at most between two drains.
const MAX_FAILURES: usize = 16;

thread_local! {
    static COUNTS: [Cell<u32>; 7] = Default::default();
    static FAILURES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Counts `event` and keeps `line` for the host's log (warning level): a failure on the
/// shared state is never silent. The line never holds a secret.
pub fn fail(event: Event, line: String) {
    note(event);
    keep(line);
}

/// Keeps `line` for the host's log (warning level), for a failure counted elsewhere.
pub fn keep(line: String) {
    FAILURES.with(|f| {
        if let Ok(mut f) = f.try_borrow_mut() {
            if f.len() < MAX_FAILURES {
                f.push(line);
            }
        }
    });
}

/// The failure lines kept since the last drain.
pub fn drain_failures() -> Vec<String> {
    FAILURES.with(|f| {
        f.try_borrow_mut()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    })
}

/// Adds one `event` to this VM's tally.
pub fn note(event: Event) {
    COUNTS.with(|c| {
        if let Some(cell) = c.get(event.slot()) {
            cell.set(cell.get().saturating_add(1));
        }
    });
}

/// The events counted since the last drain (zero counts left out), and a fresh tally.
pub fn drain() -> Vec<(Event, u32)> {
    COUNTS.with(|c| {
        EVENTS
            .iter()
            .filter_map(|e| {
                let n = c.get(e.slot())?.replace(0);
                (n > 0).then_some((*e, n))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_returns_what_was_noted_once() {
        drain();
        note(Event::PagerRound);
        note(Event::PagerRound);
        note(Event::CasGaveUp);
        assert_eq!(drain(), vec![(Event::PagerRound, 2), (Event::CasGaveUp, 1)]);
        assert!(drain().is_empty());
    }

    #[test]
    fn every_event_has_its_own_slot_and_name() {
        for (i, e) in EVENTS.iter().enumerate() {
            assert_eq!(e.slot(), i);
            assert!(e.metric().starts_with("scim."));
        }
    }
}
