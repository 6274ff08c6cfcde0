//! The upstream session slot (the Drupal session cookie and CSRF token, the login back-off,
//! the basic-credentials verdict, the cache epoch) shared by every worker, stored as one JSON
//! entry in the shared store. It changes only by the named `SessionChange`s, each a pure
//! function of the slot, applied through the store's compare-and-swap (`runtime::intents`).

use crate::runtime::store::SharedStore;
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

/// Creates an empty slot (no account's) before any request can race to create it: proxy-wasm's
/// compare-and-swap does not protect a key's creation, so two first changes could both win.
pub fn ensure_slot<S: SharedStore + ?Sized>(store: &mut S) {
    if let Ok((None, _)) = store.get(SESSION_SLOT) {
        let empty = serde_json::to_vec(&SessionSlot::default()).unwrap_or_default();
        let _ = store.set(SESSION_SLOT, &empty, None);
    }
}

/// Seconds to wait before another login after the 1st, 2nd, 3rd and later refusals.
pub const LOGIN_BACKOFF_S: [u64; 4] = [60, 300, 1_800, 21_600];

/// The back-off after `refusals` refusals in a row.
pub fn backoff_s(refusals: u32) -> u64 {
    let index = usize::try_from(refusals.saturating_sub(1)).unwrap_or(usize::MAX);
    LOGIN_BACKOFF_S
        .get(index)
        .or(LOGIN_BACKOFF_S.last())
        .copied()
        .unwrap_or(21_600)
}

/// The cache epoch after a move at `now_ms`: never back, always on.
pub fn moved_epoch(epoch: u64, now_ms: u64) -> u64 {
    now_ms.max(epoch.saturating_add(1))
}

/// Every way the slot changes, as a value: what the gate asks the host to apply. `apply` is
/// pure, so the host re-applies it to what another worker wrote when it loses a race, and a
/// test can apply two workers' changes in any order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionChange {
    /// Drupal refused these credentials: one back-off step, the cache epoch moves on. Only
    /// if no verdict came in since the refused calls went out (`sent_step`): the requests in
    /// flight when Drupal starts refusing make one step between them.
    RecordRefusal {
        account: String,
        reason: String,
        now_ms: u64,
        sent_step: u64,
        /// The VM's own epoch, in case the slot's is behind it.
        local_epoch: u64,
    },
    /// A login opened this session: it replaces whatever the slot held but the epoch.
    OpenSession {
        account: String,
        cookie: String,
        csrf: String,
        now_ms: u64,
    },
    /// Drupal no longer honours this cookie: forget it, unless another login replaced it.
    ForgetCookie { dead: String },
    /// Basic mode: Drupal accepts these credentials (again); their back-off ends.
    AcceptBasic { account: String },
    /// Moves the cache epoch on for the whole Envoy.
    MoveEpoch {
        account: String,
        local_epoch: u64,
        now_ms: u64,
    },
    /// The first worker to ask sets the Envoy's epoch (to its own start time).
    SeedEpoch { account: String, local_epoch: u64 },
}

impl SessionChange {
    /// The slot after the change; `None`: the change does not apply, nothing is written.
    pub fn apply(&self, slot: Option<SessionSlot>) -> Option<SessionSlot> {
        let fresh = |account: &str| SessionSlot {
            account: account.to_string(),
            ..SessionSlot::default()
        };
        match self {
            SessionChange::RecordRefusal {
                account,
                reason,
                now_ms,
                sent_step,
                local_epoch,
            } => {
                let slot = slot.unwrap_or_default();
                let ours = slot.account == *account;
                let step = if ours { slot.step } else { 0 };
                if step != *sent_step {
                    return None;
                }
                let refusals = if ours { slot.refusals } else { 0 }.saturating_add(1);
                Some(SessionSlot {
                    account: account.clone(),
                    refusals,
                    retry_at_ms: now_ms.saturating_add(backoff_s(refusals).saturating_mul(1000)),
                    refusal: Some(reason.clone()),
                    step: step.saturating_add(1),
                    epoch: moved_epoch(slot.epoch.max(*local_epoch), *now_ms),
                    ..SessionSlot::default()
                })
            }
            SessionChange::OpenSession {
                account,
                cookie,
                csrf,
                now_ms,
            } => {
                let slot = slot.unwrap_or_default();
                Some(SessionSlot {
                    account: account.clone(),
                    cookie: Some(cookie.clone()),
                    csrf: Some(csrf.clone()),
                    opened_ms: *now_ms,
                    step: slot.step.saturating_add(1),
                    epoch: slot.epoch,
                    ..SessionSlot::default()
                })
            }
            SessionChange::ForgetCookie { dead } => {
                let slot = slot.filter(|s| s.cookie.as_deref() == Some(dead.as_str()))?;
                Some(SessionSlot {
                    cookie: None,
                    csrf: None,
                    ..slot
                })
            }
            SessionChange::AcceptBasic { account } => {
                // Another account's slot is replaced, but not the Envoy's cache epoch: going
                // back to an older one could ask URLs Drupal cached refused.
                let slot = match slot {
                    Some(s) if s.account == *account => s,
                    other => SessionSlot {
                        epoch: other.map_or(0, |s| s.epoch),
                        ..fresh(account)
                    },
                };
                Some(SessionSlot {
                    refusals: 0,
                    retry_at_ms: 0,
                    refusal: None,
                    basic_ok: true,
                    step: slot.step.saturating_add(1),
                    ..slot
                })
            }
            SessionChange::MoveEpoch {
                account,
                local_epoch,
                now_ms,
            } => {
                let slot = slot.unwrap_or_else(|| fresh(account));
                Some(SessionSlot {
                    epoch: moved_epoch(slot.epoch.max(*local_epoch), *now_ms),
                    ..slot
                })
            }
            SessionChange::SeedEpoch {
                account,
                local_epoch,
            } => {
                let slot = slot.unwrap_or_else(|| fresh(account));
                (slot.epoch == 0).then_some(SessionSlot {
                    epoch: *local_epoch,
                    ..slot
                })
            }
        }
    }

    /// For the log: what the change is, without the cookie, token or Drupal's words.
    pub fn name(&self) -> &'static str {
        match self {
            SessionChange::RecordRefusal { .. } => "record a refusal",
            SessionChange::OpenSession { .. } => "store a new session",
            SessionChange::ForgetCookie { .. } => "forget a dead session",
            SessionChange::AcceptBasic { .. } => "record accepted credentials",
            SessionChange::MoveEpoch { .. } => "move the cache epoch on",
            SessionChange::SeedEpoch { .. } => "set the cache epoch",
        }
    }
}

/// What one gate step learnt of the slot (the host reports the back-off gauge from it).
#[derive(Debug, PartialEq)]
pub enum SlotView<'a> {
    /// It neither read nor changed it.
    Unread,
    /// It read it last as this.
    Read(Option<&'a SessionSlot>),
    /// It changed it after its last read: only a new read tells what it holds.
    Changed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(sent_step: u64, now_ms: u64) -> SessionChange {
        SessionChange::RecordRefusal {
            account: "a".into(),
            reason: "no".into(),
            now_ms,
            sent_step,
            local_epoch: 5,
        }
    }

    #[test]
    fn concurrent_first_changes_of_the_slot_are_both_kept_once_it_exists() {
        use crate::runtime::contention::{Act, ContendedStore};
        use crate::runtime::intents::{SharedIntent, SharedPort};
        let seed = |local| {
            SharedIntent::Session(SessionChange::SeedEpoch {
                account: "a".into(),
                local_epoch: local,
            })
        };
        let accept = SharedIntent::Session(SessionChange::AcceptBasic {
            account: "a".into(),
        });
        for created in [false, true] {
            let mut s = ContendedStore::default();
            if created {
                ensure_slot(&mut s.inner);
            }
            // Another worker seeds the epoch inside this one's acceptance.
            s.before_write(1, Act::Land(vec![seed(7)]));
            let slot = s.apply(accept.clone()).slot().unwrap();
            let kept = (slot.basic_ok, slot.epoch);
            if created {
                assert_eq!(kept, (true, 7), "both changes kept");
            } else {
                assert_eq!(kept, (true, 0), "the creation race lost the seed");
            }
        }
    }

    #[test]
    fn a_refusal_counts_once_per_step() {
        let first = refusal(0, 1_000).apply(None).unwrap();
        assert_eq!(
            (first.refusals, first.step, first.retry_at_ms),
            (1, 1, 61_000)
        );
        assert_eq!(first.epoch, 1_000);
        assert_eq!(
            refusal(0, 2_000).apply(Some(first.clone())),
            None,
            "stale step"
        );
        let second = refusal(1, 70_000).apply(Some(first)).unwrap();
        assert_eq!((second.refusals, second.retry_at_ms), (2, 370_000));
        // Another account's slot starts over.
        let other = SessionSlot {
            account: "b".into(),
            refusals: 3,
            step: 9,
            ..SessionSlot::default()
        };
        assert_eq!(refusal(0, 1).apply(Some(other)).unwrap().refusals, 1);
    }

    #[test]
    fn session_changes_keep_what_they_do_not_own() {
        let open = SessionChange::OpenSession {
            account: "a".into(),
            cookie: "SESSx=1".into(),
            csrf: "t".into(),
            now_ms: 9,
        };
        let mut slot = SessionSlot {
            epoch: 4,
            refusals: 2,
            step: 6,
            ..SessionSlot::default()
        };
        slot = open.apply(Some(slot)).unwrap();
        assert_eq!((slot.epoch, slot.refusals, slot.step), (4, 0, 7));
        let forget = |dead: &str| SessionChange::ForgetCookie { dead: dead.into() };
        assert_eq!(
            forget("SESSy=2").apply(Some(slot.clone())),
            None,
            "replaced meanwhile"
        );
        let forgotten = forget("SESSx=1").apply(Some(slot)).unwrap();
        assert_eq!(
            (forgotten.cookie, forgotten.csrf, forgotten.epoch),
            (None, None, 4)
        );
        let seed = |local| SessionChange::SeedEpoch {
            account: "a".into(),
            local_epoch: local,
        };
        let seeded = seed(7).apply(None).unwrap();
        assert_eq!(seeded.epoch, 7);
        assert_eq!(
            seed(9).apply(Some(seeded)),
            None,
            "the first worker's stays"
        );
        let moved = SessionChange::MoveEpoch {
            account: "a".into(),
            local_epoch: 3,
            now_ms: 2,
        };
        assert_eq!(moved.apply(None).unwrap().epoch, 4, "never back");
    }
}
