//! What a request may send to Drupal, and with which credentials: the gate's view of the shared
//! session slot (`GateEnv`), the verdicts (use the session, log in, pause, refused during a
//! back-off), the cache epoch the auth guard is named after, and the checks of replies that
//! tell a refused account from a real answer.

use crate::config::Credentials;
use crate::drupal::jsonapi::AUTH_GUARD;
use crate::drupal::upstream::anon;
use crate::drupal::upstream::login::LOGIN_LOCK;
use crate::http::DrupalCall;
use crate::runtime::intents::{Outcome, SharedIntent, SharedPort};
use crate::runtime::session::{moved_epoch, SessionChange, SessionSlot};

/// What the gate needs from around it, for one step.
pub struct GateEnv<'a> {
    pub credentials: &'a Credentials,
    /// Where the step's intents on the shared state (the session slot, the login lock, the
    /// cache epoch) are applied; the gate holds no store.
    pub shared: &'a mut dyn SharedPort,
    pub now_ms: u64,
    /// Unique per request: who holds the login lock.
    pub owner: &'a str,
    pub lock_ttl_ms: u64,
    /// Envoy's wait listener is configured (`wait_cluster`): pauses need not reach Drupal.
    pub can_pause: bool,
    /// Names the auth guard's filter group in every user list sent; moved on after each
    /// refusal (Drupal's cache keeps refused answers by URL). Shared by the workers
    /// (`SessionSlot::epoch`): this is the VM's copy, and what the first worker sets it to;
    /// the step moves it on and the host keeps it for the next.
    pub cache_epoch: u64,
    /// JSON:API base path (`drupal.jsonapi_prefix`), for the basic-mode check.
    pub jsonapi: &'a str,
}

impl GateEnv<'_> {
    /// The slot, if it belongs to these credentials.
    pub(crate) fn own_slot(&mut self) -> Option<SessionSlot> {
        let account = self.credentials.account_tag.as_str();
        self.slot().filter(|s| s.account == account)
    }

    /// The slot as it is (a failed read: none).
    pub(crate) fn slot(&mut self) -> Option<SessionSlot> {
        self.shared.apply(SharedIntent::ReadSession).slot()
    }

    pub(crate) fn change(&mut self, change: SessionChange) -> Outcome {
        self.shared.apply(SharedIntent::Session(change))
    }

    /// Takes the login lock (one request at a time logs in or checks the credentials).
    pub(crate) fn lock_login(&mut self) -> bool {
        let intent = SharedIntent::lock(LOGIN_LOCK, self.owner, self.now_ms, self.lock_ttl_ms);
        self.shared.apply(intent) == Outcome::Locked(true)
    }

    pub(crate) fn unlock_login(&mut self) {
        // A failed release is counted and logged by the applier; the lock lapses at its TTL.
        self.shared
            .apply(SharedIntent::unlock(LOGIN_LOCK, self.owner));
    }
}

pub(crate) enum Access {
    /// Send now: with the shared session, or (no cookie) with Basic credentials.
    Ready {
        cookie: Option<String>,
        csrf: Option<String>,
    },
    /// Log in (session mode), or try the Basic credentials again after a back-off.
    Login,
    Pause,
    Refused(String),
}

/// Whether this request may use the shared session, must log in, or must wait.
pub(crate) fn access(env: &mut GateEnv) -> Access {
    let slot = env.own_slot();
    let now = env.now_ms;
    if let Some(s) = &slot {
        if let (Some(cookie), Some(csrf)) = (&s.cookie, &s.csrf) {
            let fresh = now.saturating_sub(s.opened_ms) < env.credentials.session_max_age_ms;
            // An aged session still works while one request replaces it.
            if fresh || !env.lock_login() {
                return Access::Ready {
                    cookie: Some(cookie.clone()),
                    csrf: Some(csrf.clone()),
                };
            }
            return Access::Login;
        }
        if let Some(refused) = backing_off(s, env) {
            return refused;
        }
    }
    if env.lock_login() {
        Access::Login
    } else {
        Access::Pause
    }
}

/// Basic mode: send at once once Drupal has accepted these credentials. Before that (a new
/// Envoy, new credentials) and after a refusal's back-off, one request checks them first
/// while the others wait for it; during a back-off every call is refused without Drupal.
pub(crate) fn basic_access(env: &mut GateEnv) -> Access {
    if let Some(s) = env.own_slot() {
        if s.basic_ok && s.refusals == 0 {
            return Access::Ready {
                cookie: None,
                csrf: None,
            };
        }
        if let Some(refused) = backing_off(&s, env) {
            return refused;
        }
    }
    if env.lock_login() {
        Access::Login
    } else {
        Access::Pause
    }
}

/// `Refused` while a refusal's back-off runs.
pub(crate) fn backing_off(s: &SessionSlot, env: &GateEnv) -> Option<Access> {
    if s.refusals == 0 || env.now_ms >= s.retry_at_ms {
        return None;
    }
    let wait_s = s.retry_at_ms.saturating_sub(env.now_ms).div_ceil(1000);
    Some(Access::Refused(format!(
        "Drupal refused the gateway's service account {}{}; no new attempt for {wait_s} s (Drupal's flood control)",
        env.credentials.username,
        s.refusal
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )))
}

/// Moves the cache epoch on for the whole Envoy: later user lists get URLs Drupal has never
/// answered. If the slot cannot be written, this VM moves on alone.
pub(crate) fn next_epoch(env: &mut GateEnv) {
    let (local, now) = (env.cache_epoch, env.now_ms);
    let moved = env.change(SessionChange::MoveEpoch {
        account: env.credentials.account_tag.clone(),
        local_epoch: local,
        now_ms: now,
    });
    env.cache_epoch = moved
        .slot()
        .map_or_else(|| moved_epoch(local, now), |s| s.epoch);
}

/// The Envoy's cache epoch: the first worker to ask sets it (to its own start time).
pub(crate) fn current_epoch(env: &mut GateEnv) -> u64 {
    let mut shared = env.slot().map_or(0, |s| s.epoch);
    if shared == 0 {
        let seeded = env.change(SessionChange::SeedEpoch {
            account: env.credentials.account_tag.clone(),
            local_epoch: env.cache_epoch,
        });
        shared = seeded.slot().map_or(0, |s| s.epoch);
    }
    if shared != 0 {
        env.cache_epoch = shared;
    }
    env.cache_epoch
}

/// The verdict step of these credentials (`SessionSlot::step`).
pub(crate) fn current_step(env: &mut GateEnv) -> u64 {
    env.own_slot().map_or(0, |s| s.step)
}

/// The call with its auth guard named after the cache epoch.
pub(crate) fn stamped(call: &DrupalCall, epoch: u64) -> DrupalCall {
    if !has_guard(call) {
        return call.clone();
    }
    DrupalCall {
        method: call.method,
        path: call
            .path
            .replace(GUARD_KEY, &format!("filter[{AUTH_GUARD}_{epoch}]")),
        content_type: call.content_type,
        body: call.body.clone(),
    }
}

/// `filter[{AUTH_GUARD}]`, the group `stamped` renames.
pub(super) const GUARD_KEY: &str = "filter[scim_auth]";

/// The call carries the auth guard (a user list): it needs the cache epoch.
pub(crate) fn has_guard(call: &DrupalCall) -> bool {
    call.path.contains(GUARD_KEY)
}

/// Drupal refused a `status` condition: only an account without `administer users` (the
/// anonymous view of a refused service account) is refused it.
pub(crate) fn refuses_guard(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("not authorized to filter by the `status` field")
}

/// A read answered with Drupal's anonymous view: label-only users.
/// Scanned, not parsed: the exchange parses the same body right after.
pub(crate) fn reads_as_anonymous(body: &[u8]) -> bool {
    anon::label_only_in(body)
}
