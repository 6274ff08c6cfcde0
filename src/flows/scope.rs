//! What one request's flow may use besides Drupal's replies: the lock table shared by every
//! worker, the clock, and who the request is (the owner of its locks); the locks a flow holds,
//! and the pause while another request holds one.

use crate::config::Config;
use crate::flows::user_view::user_calls;
use crate::http::DrupalCall;
use crate::runtime::locks::Locks;
use crate::scim::error::ScimError;

/// The lock table, clock and owner a request's steps run under.
pub struct LockScope<'a> {
    pub locks: &'a mut dyn Locks,
    pub now_ms: u64,
    /// Unique per request: who holds a lock.
    pub owner: &'a str,
    /// How long a lock is held at most (a crashed VM's locks run out).
    pub lock_ttl_ms: u64,
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
        if scope
            .locks
            .try_lock(&key, scope.owner, scope.now_ms, scope.lock_ttl_ms)
        {
            self.keys.push(key);
            return true;
        }
        false
    }

    /// Takes every key, in order, or none (so two requests never wait on each other).
    pub(crate) fn take_all(&mut self, scope: &mut LockScope, keys: Vec<String>) -> bool {
        let mut taken = Vec::new();
        for key in keys {
            if scope
                .locks
                .try_lock(&key, scope.owner, scope.now_ms, scope.lock_ttl_ms)
            {
                taken.push(key);
            } else {
                for k in taken {
                    scope.locks.unlock(&k, scope.owner);
                }
                return false;
            }
        }
        self.keys.extend(taken);
        true
    }

    /// The flow answered: every lock goes at once.
    pub(crate) fn release(&mut self, scope: &mut LockScope) {
        for key in self.keys.drain(..) {
            scope.locks.unlock(&key, scope.owner);
        }
    }

    /// The stream ended early: these locks guard writes that may still be in flight, so they
    /// are kept `write_grace_ms` more (the longest that write takes), then run out.
    pub(crate) fn keep_for(&mut self, scope: &mut LockScope, write_grace_ms: u64) {
        for key in self.keys.drain(..) {
            scope
                .locks
                .try_lock(&key, scope.owner, scope.now_ms, write_grace_ms);
        }
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
