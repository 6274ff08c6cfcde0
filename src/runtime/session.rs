//! The upstream session slot (the Drupal session cookie and CSRF token, the login back-off,
//! the basic-credentials verdict) shared by every worker, stored as one JSON entry in the
//! shared store and changed through its compare-and-swap.

use crate::runtime::store::{cas_update, SharedStore};
use serde::{Deserialize, Serialize};

/// The shared-data key. It holds the session cookie, so it never leaves the wasm VMs.
pub const SESSION_SLOT: &str = "envoy-scim-drupal/session";

/// What the store shared by all workers holds (one entry for the whole Envoy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionSlot {
    /// `Credentials::account_tag` of the account this slot belongs to.
    pub account: String,
    /// `SESS…=value`, ready for a `Cookie` header.
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub opened_ms: u64,
    /// Logins refused in a row, and when the next may be tried.
    pub refusals: u32,
    pub retry_at_ms: u64,
    /// What Drupal said when it last refused the login.
    pub refusal: Option<String>,
    /// Basic mode: Drupal accepted these credentials (checked once per Envoy, by one
    /// request, so a wrong password costs one failed login, not one per worker or call).
    #[serde(default)]
    pub basic_ok: bool,
    /// Moves on with every verdict recorded (a refusal counted, credentials accepted, a
    /// session opened). A request remembers it when its calls go out; a refusal they meet
    /// counts only if no other verdict came in between, so the requests in flight when Drupal
    /// starts refusing make one back-off step, not one each.
    #[serde(default)]
    pub step: u64,
    /// The cache epoch of the whole Envoy (every worker's user lists name their auth guard
    /// after it, so Drupal's page cache sees one URL per list, not one per worker).
    #[serde(default)]
    pub epoch: u64,
}

/// The slot, shared by every worker (in Envoy: proxy-wasm shared data).
pub trait SessionStore {
    fn read(&mut self) -> Option<SessionSlot>;
    /// Replaces the slot with what `change` makes of it, atomically with respect to other
    /// workers (the change is re-applied if another worker wrote in between).
    fn update(&mut self, change: &dyn Fn(Option<SessionSlot>) -> SessionSlot);
}

/// A store for one VM and for tests.
#[derive(Debug, Default)]
pub struct MemorySession(pub Option<SessionSlot>);

impl SessionStore for MemorySession {
    fn read(&mut self) -> Option<SessionSlot> {
        self.0.clone()
    }
    fn update(&mut self, change: &dyn Fn(Option<SessionSlot>) -> SessionSlot) {
        self.0 = Some(change(self.0.take()));
    }
}

/// The slot over a shared store: what the host ships.
#[derive(Debug, Default)]
pub struct StoreSession<S>(pub S);

impl<S: SharedStore> SessionStore for StoreSession<S> {
    fn read(&mut self) -> Option<SessionSlot> {
        let (bytes, _) = self.0.get(SESSION_SLOT).ok()?;
        serde_json::from_slice(&bytes?).ok()
    }

    fn update(&mut self, change: &dyn Fn(Option<SessionSlot>) -> SessionSlot) {
        cas_update(&mut self.0, SESSION_SLOT, |bytes| {
            let current = bytes.and_then(|b| serde_json::from_slice(&b).ok());
            Some((serde_json::to_vec(&change(current)).ok()?, ()))
        });
    }
}

/// The slot read at most once between two changes: one step of a gate asks for it several
/// times (access, cache epoch, verdict step) and each host read copies and parses the JSON.
/// A step runs without yielding, so a copy taken at its start is as current as a later read
/// would be; a change re-reads the store (`update` is a compare-and-swap on the real one).
pub struct ReadOnce<'a> {
    inner: &'a mut dyn SessionStore,
    seen: Option<Option<SessionSlot>>,
    changed: bool,
}

/// What a step learnt of the slot.
#[derive(Debug, PartialEq)]
pub enum SlotView<'a> {
    /// It neither read nor changed it.
    Unread,
    /// It read it last as this.
    Read(Option<&'a SessionSlot>),
    /// It changed it after its last read: only a new read tells what it holds.
    Changed,
}

impl<'a> ReadOnce<'a> {
    pub fn new(inner: &'a mut dyn SessionStore) -> Self {
        ReadOnce {
            inner,
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
}

impl SessionStore for ReadOnce<'_> {
    fn read(&mut self) -> Option<SessionSlot> {
        if let Some(seen) = &self.seen {
            return seen.clone();
        }
        let slot = self.inner.read();
        self.seen = Some(slot.clone());
        slot
    }

    fn update(&mut self, change: &dyn Fn(Option<SessionSlot>) -> SessionSlot) {
        self.seen = None;
        self.changed = true;
        self.inner.update(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::store::MemoryStore;

    /// Counts the reads that reach the store under it.
    struct Counting(MemorySession, usize);

    impl SessionStore for Counting {
        fn read(&mut self) -> Option<SessionSlot> {
            self.1 = self.1.saturating_add(1);
            self.0.read()
        }
        fn update(&mut self, change: &dyn Fn(Option<SessionSlot>) -> SessionSlot) {
            self.0.update(change);
        }
    }

    #[test]
    fn read_once_reads_again_only_after_a_change() {
        let mut store = Counting(MemorySession::default(), 0);
        let mut once = ReadOnce::new(&mut store);
        assert_eq!(once.view(), SlotView::Unread);
        assert_eq!(once.read(), None);
        assert_eq!(once.read(), None);
        assert_eq!(once.view(), SlotView::Read(None));
        once.update(&|_| SessionSlot {
            step: 3,
            ..SessionSlot::default()
        });
        assert_eq!(once.view(), SlotView::Changed, "a change forgets the copy");
        assert_eq!(once.read().map(|s| s.step), Some(3));
        assert!(matches!(once.view(), SlotView::Read(Some(s)) if s.step == 3));
        assert_eq!(once.read().map(|s| s.step), Some(3));
        assert_eq!(store.1, 2, "one read before the change, one after");
    }

    #[test]
    fn the_slot_is_updated_from_what_another_worker_wrote() {
        let mut s = StoreSession(MemoryStore::default());
        assert_eq!(s.read(), None);
        s.update(&|_| SessionSlot {
            account: "a".into(),
            ..SessionSlot::default()
        });
        s.0.lose_next = 2;
        s.update(&|slot| SessionSlot {
            refusals: slot.map_or(0, |x| x.refusals).saturating_add(1),
            account: "a".into(),
            ..SessionSlot::default()
        });
        let slot = s.read().unwrap();
        assert_eq!((slot.account.as_str(), slot.refusals), ("a", 1));
        s.0.lose_next = crate::runtime::store::CAS_ATTEMPTS;
        s.update(&|_| SessionSlot::default());
        assert_eq!(
            s.read().unwrap().account,
            "a",
            "every attempt lost: unchanged"
        );
        // Older slots without `basic_ok` still read.
        s.0.set(SESSION_SLOT, br#"{"account":"b","cookie":null,"csrf":null,"opened_ms":1,"refusals":0,"retry_at_ms":0,"refusal":null}"#, None).unwrap();
        assert_eq!(s.read().unwrap().account, "b");
    }
}
