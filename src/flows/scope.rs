//! What one request's flow may use besides Drupal's replies: the shared state every worker
//! sees (through a port applying `SharedIntent`s), the clock, and who the request is (the
//! owner of its locks); the locks a flow holds, and the pause while another request holds one.
//!
//! A lock take decides the step's next call, so it is applied at once and its `Outcome`
//! read. An intent whose outcome nothing waits for (an unlock, the re-lock of an abandoned
//! write for its grace, a remembered total) is returned: the step leaves it in the scope,
//! the router hands it to the host, which applies it after the step through the same port.

use crate::config::Config;
use crate::flows::user_view::user_calls;
use crate::http::DrupalCall;
use crate::runtime::intents::{Outcome, SharedIntent, SharedPort};
use crate::scim::error::ScimError;

/// The shared state, clock and owner a request's steps run under.
pub struct LockScope<'a> {
    pub shared: &'a mut dyn SharedPort,
    pub now_ms: u64,
    /// Unique per request: who holds a lock.
    pub owner: &'a str,
    /// How long a lock is held at most (a crashed VM's locks run out).
    pub lock_ttl_ms: u64,
    /// The intents this step returns, applied by the host once the step is over.
    returned: Vec<SharedIntent>,
}

impl<'a> LockScope<'a> {
    pub fn new(
        shared: &'a mut dyn SharedPort,
        now_ms: u64,
        owner: &'a str,
        lock_ttl_ms: u64,
    ) -> Self {
        LockScope {
            shared,
            now_ms,
            owner,
            lock_ttl_ms,
            returned: Vec::new(),
        }
    }

    /// Takes `key` for the lock time-out; `false` while another request holds it.
    pub(crate) fn try_lock(&mut self, key: &str) -> bool {
        let intent = SharedIntent::lock(key, self.owner, self.now_ms, self.lock_ttl_ms);
        let held = self.shared.apply(intent) == Outcome::Locked(true);
        if held {
            self.keep_taken(&[key]);
        }
        held
    }

    /// Takes every key or none, in one write of the table (two creates naming each other's
    /// name and address never hold one each and wait).
    pub(crate) fn try_lock_all(&mut self, keys: &[String]) -> bool {
        let intent = SharedIntent::TryLockAll {
            keys: keys.to_vec(),
            owner: self.owner.to_string(),
            now_ms: self.now_ms,
            ttl_ms: self.lock_ttl_ms,
        };
        let held = self.shared.apply(intent) == Outcome::Locked(true);
        if held {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.keep_taken(&keys);
        }
        held
    }

    /// A key this step released and took again is held: its returned unlock, applied after
    /// the step, would otherwise let it go.
    fn keep_taken(&mut self, keys: &[&str]) {
        self.returned.retain(|intent| {
            !matches!(intent, SharedIntent::Unlock { key, .. } if keys.contains(&key.as_str()))
        });
    }

    /// The release of this owner's lock on `key` (built, not applied).
    pub(crate) fn unlock(&self, key: &str) -> SharedIntent {
        SharedIntent::unlock(key, self.owner)
    }

    /// The lock on `key` kept `grace_ms` from now, then lapsing (a write may still be in
    /// flight after the stream ended).
    pub(crate) fn keep_for(&self, key: &str, grace_ms: u64) -> SharedIntent {
        SharedIntent::lock(key, self.owner, self.now_ms, grace_ms)
    }

    /// A list total remembered for a query (`paging`): a hint, checked before it is used.
    pub(crate) fn remembered_total(&mut self, query: &str) -> Option<usize> {
        let intent = SharedIntent::LookUpTotal {
            query: query.to_string(),
        };
        match self.shared.apply(intent) {
            Outcome::Total(total) => total,
            _ => None,
        }
    }

    /// Returns `intents` with the step: the host applies them once it is over.
    pub(crate) fn later(&mut self, intents: impl IntoIterator<Item = SharedIntent>) {
        self.returned.extend(intents);
    }

    /// The intents the step returned, for the router to hand on.
    pub(crate) fn take_returned(&mut self) -> Vec<SharedIntent> {
        std::mem::take(&mut self.returned)
    }
}

/// The locks a flow holds until it answers (a user's edit lock, the name and address of a
/// user being created).
#[derive(Debug, Default)]
pub(crate) struct Held {
    keys: Vec<String>,
}

impl Held {
    /// Takes `key` for the lock time-out; `false` while another request holds it.
    pub(crate) fn take(&mut self, scope: &mut LockScope, key: String) -> bool {
        if scope.try_lock(&key) {
            self.keys.push(key);
            return true;
        }
        false
    }

    /// Takes every key or none (so two requests never wait on each other).
    pub(crate) fn take_all(&mut self, scope: &mut LockScope, keys: Vec<String>) -> bool {
        if keys.is_empty() {
            return true;
        }
        if scope.try_lock_all(&keys) {
            self.keys.extend(keys);
            return true;
        }
        false
    }

    /// A constructor's first step failed: what it took goes back with the step's intents,
    /// and the error is the answer.
    pub(crate) fn release_on_error<T>(
        &mut self,
        scope: &mut LockScope,
        result: Result<T, ScimError>,
    ) -> Result<T, ScimError> {
        if result.is_err() {
            let unlocks = self.release(scope);
            scope.later(unlocks);
        }
        result
    }

    /// The flow answered: every lock goes at once.
    pub(crate) fn release(&mut self, scope: &LockScope) -> Vec<SharedIntent> {
        self.keys.drain(..).map(|key| scope.unlock(&key)).collect()
    }

    /// The stream ended early: these locks guard writes that may still be in flight, so they
    /// are kept `write_grace_ms` more (the longest that write takes), then run out.
    pub(crate) fn keep_for(&mut self, scope: &LockScope, write_grace_ms: u64) -> Vec<SharedIntent> {
        self.keys
            .drain(..)
            .map(|key| scope.keep_for(&key, write_grace_ms))
            .collect()
    }
}

/// A pause while another request holds a lock (Envoy's wait listener, else a cheap Drupal
/// read), or the 503 once the wait outlasts any lock.
pub(crate) fn lock_pause(
    config: &Config,
    waits: u32,
    since: u64,
    scope: &LockScope,
    busy: &str,
) -> Result<DrupalCall, ScimError> {
    if scope.now_ms.saturating_sub(since) > scope.lock_ttl_ms || waits > 10_000 {
        return Err(ScimError::new(503, None, busy).with_header("retry-after", "1"));
    }
    crate::runtime::tally::note(crate::runtime::tally::Event::LockWait);
    Ok(match &config.wait_cluster {
        Some(_) => DrupalCall::wait(),
        None => user_calls(config).count_users(&[], 0, 1),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::runtime::locks::{Locks, MemoryLocks};

    #[test]
    fn a_key_released_and_taken_again_in_one_step_stays_held() {
        let mut locks = MemoryLocks::default();
        let mut scope = LockScope::new(&mut locks, 0, "me", 100);
        assert!(scope.try_lock("k"));
        let unlocks = [scope.unlock("k"), scope.unlock("j")];
        scope.later(unlocks);
        assert!(scope.try_lock("k"), "its own lock, renewed");
        let returned = scope.take_returned();
        assert_eq!(returned, vec![SharedIntent::unlock("j", "me")]);
        for intent in returned {
            locks.apply(intent);
        }
        assert!(!locks.try_lock("k", "other", 1, 100));
    }
}
