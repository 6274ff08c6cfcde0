//! What a VM's contexts share: the configuration, the startup checks' verdicts, the Drupal
//! call dispatch and the round of calls in flight.

use super::store::HostStore;
use crate::config::{Config, Credentials, UpstreamAuth};
use crate::drupal::jsonapi::RestResource;
use crate::drupal::probe::{self, TermAccess, Verdict};
use crate::drupal::upstream::{Arrival, Gate, GateEnv, Outbound};
use crate::http::{DrupalReply, Response};
use crate::runtime::intents::{Applier, SharedIntent, SharedPort};
use crate::runtime::session::{SessionSlot, SlotView};
use proxy_wasm::traits::Context;
use std::cell::{Cell, RefCell};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When the back-off a request saw in the session slot ends (`None`: none runs).
pub(super) type BackoffSeen = Option<u64>;

/// What a gate step tells `report` of the shared slot.
#[derive(Clone, Copy)]
pub(super) enum SlotSeen {
    /// Nothing: what an earlier step saw still stands.
    Unread,
    Read(BackoffSeen),
    /// The step changed the slot: `report` reads it.
    Changed,
}

pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) credentials: Credentials,
    /// Identifies this VM in lock owners (with the HTTP context id).
    pub(super) vm_tag: String,
    /// The startup check of the attribute mapping against Drupal (per VM).
    pub(super) mapping_check: RefCell<Verdict>,
    /// Where the mapping check's verdict is shared with the other workers' VMs.
    pub(super) startup_key: String,
    /// With `groups`: whether the service account may create terms.
    pub(super) term_access: RefCell<TermAccess>,
    /// With `hard_delete`: what the startup check learnt of Drupal's REST user resource.
    pub(super) rest_check: Cell<RestResource>,
    /// Names the auth guard in user lists (see `upstream`): this VM's start time, moved on
    /// after every refusal.
    pub(super) cache_epoch: Cell<u64>,
}

impl Shared {
    /// The answer to a SCIM request while the startup check has not passed (on this VM or,
    /// through shared data, on another worker's); `None` once it has.
    pub(super) fn admission(&self) -> Option<Response> {
        probe::admission(&self.verdict())
    }

    /// The mapping check's verdict this VM goes by: its own, or a settled one another
    /// worker published, which it adopts (and stops asking Drupal).
    pub(super) fn verdict(&self) -> Verdict {
        let Ok(local) = self.mapping_check.try_borrow().map(|v| v.clone()) else {
            return Verdict::Pending;
        };
        if local.is_final() {
            return local;
        }
        let verdict = probe::effective(&local, &HostStore, &self.startup_key);
        if verdict.is_final() {
            self.adopt_service_uid();
            if let Ok(mut slot) = self.mapping_check.try_borrow_mut() {
                *slot = verdict.clone();
            }
        }
        verdict
    }

    /// The service account's uid the worker that checked published before its verdict.
    fn adopt_service_uid(&self) {
        use crate::runtime::store::SharedStore;
        let key = probe::service_uid_key(&self.startup_key);
        let uid = HostStore
            .get(&key)
            .ok()
            .and_then(|(bytes, _)| bytes)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.parse::<u64>().ok());
        if let Some(uid) = uid {
            self.config.protection.service_uid.set(uid);
        }
    }

    /// `tags` (request id, trace context, user agent) go on every call to Drupal.
    pub(super) fn dispatch(
        &self,
        ctx: &dyn Context,
        outbound: &Outbound,
        tags: &[(&'static str, &str)],
    ) -> Result<u32, proxy_wasm::types::Status> {
        let call = &outbound.call;
        if let (true, Some(cluster)) = (call.is_wait(), &self.config.wait_cluster) {
            // A pause: Envoy's own wait listener answers after a short delay; Drupal is not
            // involved and no credentials go out.
            return ctx.dispatch_http_call(
                cluster,
                vec![
                    (":method", "GET"),
                    (":path", call.path.as_str()),
                    (":authority", "scim-wait"),
                ],
                None,
                vec![],
                Duration::from_secs(5),
            );
        }
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(
            outbound
                .headers
                .len()
                .saturating_add(tags.len())
                .saturating_add(5),
        );
        headers.extend([
            (":method", call.method),
            (":path", call.path.as_str()),
            (":authority", self.config.drupal.authority.as_str()),
            ("accept", crate::drupal::jsonapi::JSONAPI_CONTENT_TYPE),
        ]);
        headers.extend(outbound.headers.iter().map(|(n, v)| (*n, v.as_str())));
        headers.extend(tags.iter().copied());
        if let Some(ct) = call.content_type {
            headers.push(("content-type", ct));
        }
        ctx.dispatch_http_call(
            &self.config.drupal.cluster,
            headers,
            call.body.as_deref(),
            vec![],
            Duration::from_millis(self.config.drupal.timeout_ms),
        )
    }

    /// Brings the VM's counters into Envoy's stats: the events the core counted, and whether
    /// Drupal's refusal of the service account holds calls back now. `seen`: what this
    /// request's last gate step read of the shared slot (`with_gate_env`), if it did.
    pub(super) fn report(&self, now_ms: u64, seen: Option<BackoffSeen>) {
        super::metrics::drain_tally();
        let until = match seen {
            Some(seen) => seen,
            None => {
                let slot = Applier::new(HostStore).apply(SharedIntent::ReadSession);
                self.backoff_until(slot.slot().as_ref())
            }
        };
        let backoff = until.is_some_and(|t| now_ms < t);
        super::metrics::gauge(super::metrics::BACKOFF_ACTIVE, u64::from(backoff));
    }

    /// When a refusal's back-off recorded in `slot` for these credentials ends.
    fn backoff_until(&self, slot: Option<&SessionSlot>) -> Option<u64> {
        slot.filter(|s| s.account == self.credentials.account_tag && s.refusals > 0)
            .map(|s| s.retry_at_ms)
    }

    /// Runs one step of `owner`'s upstream gate, applying its intents on the state shared by
    /// all workers as it makes them (`runtime::intents`). Also returns what the step last read
    /// of the session slot, for `report`.
    pub(super) fn with_gate_env<T>(
        &self,
        now_ms: u64,
        owner: &str,
        step: impl FnOnce(&mut GateEnv) -> T,
    ) -> (T, SlotSeen) {
        let mut applier = Applier::new(HostStore);
        let mut env = GateEnv {
            credentials: &self.credentials,
            shared: &mut applier,
            now_ms,
            owner,
            lock_ttl_ms: lock_ttl_ms(&self.config),
            can_pause: self.config.wait_cluster.is_some(),
            cache_epoch: self.cache_epoch.get(),
            jsonapi: &self.config.drupal.jsonapi_prefix,
        };
        let result = step(&mut env);
        self.cache_epoch.set(env.cache_epoch);
        let seen = match applier.view() {
            SlotView::Unread => SlotSeen::Unread,
            SlotView::Read(slot) => SlotSeen::Read(self.backoff_until(slot)),
            SlotView::Changed => SlotSeen::Changed,
        };
        (result, seen)
    }

    /// Applies intents that need no answer (a lock given up with its stream); a failure is
    /// counted and logged like any other.
    pub(super) fn apply(&self, intents: Vec<SharedIntent>) {
        Applier::new(HostStore).apply_all(intents);
    }

    /// Reads a reply; in session mode with its `Set-Cookie` headers (one per line).
    pub(super) fn arrival(
        &self,
        ctx: &dyn Context,
        num_headers: usize,
        body_size: usize,
    ) -> Arrival {
        let reply = read_reply(ctx, num_headers, body_size);
        let set_cookie = match (&reply, self.credentials.mode) {
            (DrupalReply::Answer { .. }, UpstreamAuth::Session) => {
                let lines: Vec<String> = ctx
                    .get_http_call_response_headers()
                    .into_iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
                    .map(|(_, v)| v)
                    .collect();
                (!lines.is_empty()).then(|| lines.join("\n"))
            }
            _ => None,
        };
        Arrival { reply, set_cookie }
    }
}

/// A lock outlives the longest request it can guard, unless its VM died.
pub(super) fn lock_ttl_ms(config: &Config) -> u64 {
    config
        .drupal
        .timeout_ms
        .saturating_mul(4)
        .saturating_add(1000)
}

/// The calls of one gate round in flight, and their replies as they land.
#[derive(Default)]
pub(super) struct Flight {
    /// Token and position of each call still out.
    out: Vec<(u32, usize)>,
    arrivals: Vec<Option<Arrival>>,
}

impl Flight {
    /// Dispatches a round; a call Envoy refuses to send lands at once as `Failed`.
    /// Returns each call's token (`None`: not sent).
    pub(super) fn launch(
        &mut self,
        ctx: &dyn Context,
        shared: &Shared,
        round: &[Outbound],
        tags: &[(&'static str, &str)],
    ) -> Vec<Option<u32>> {
        self.out.clear();
        self.arrivals = vec![None; round.len()];
        let mut tokens = Vec::new();
        for (index, outbound) in round.iter().enumerate() {
            match shared.dispatch(ctx, outbound, tags) {
                Ok(token) => {
                    self.out.push((token, index));
                    tokens.push(Some(token));
                }
                Err(status) => {
                    log::warn!(
                        "dispatch to cluster {} failed: {status:?}",
                        shared.config.drupal.cluster
                    );
                    if let Some(slot) = self.arrivals.get_mut(index) {
                        *slot = Some(Arrival::plain(DrupalReply::Failed));
                    }
                    tokens.push(None);
                }
            }
        }
        tokens
    }

    /// Records a reply; false when the token is not one of this round's.
    pub(super) fn land(&mut self, token: u32, arrival: Arrival) -> bool {
        let Some(pos) = self.out.iter().position(|(t, _)| *t == token) else {
            return false;
        };
        let (_, index) = self.out.swap_remove(pos);
        if let Some(slot) = self.arrivals.get_mut(index) {
            *slot = Some(arrival);
        }
        true
    }

    /// Every reply of the round, once all have landed.
    pub(super) fn complete(&mut self) -> Option<Vec<Arrival>> {
        if !self.out.is_empty() || self.arrivals.iter().any(Option::is_none) {
            return None;
        }
        Some(
            std::mem::take(&mut self.arrivals)
                .into_iter()
                .map(|a| a.unwrap_or(Arrival::plain(DrupalReply::Failed)))
                .collect(),
        )
    }
}

/// Reads a Drupal call's answer. A failed call arrives without headers; reading them would
/// make the SDK panic, so it becomes `Failed`.
pub(super) fn read_reply(ctx: &dyn Context, num_headers: usize, body_size: usize) -> DrupalReply {
    if num_headers == 0 {
        return DrupalReply::Failed;
    }
    let status = ctx
        .get_http_call_response_header(":status")
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    let body = if body_size > 0 {
        ctx.get_http_call_response_body(0, body_size)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    DrupalReply::Answer { status, body }
}

/// The gate's account of logins and dead sessions (never secrets) at warning level.
pub(super) fn log_notices(gate: &mut Gate) {
    for (level, line) in gate.take_notices() {
        log::log!(level, "scim upstream: {line}");
    }
}

pub(super) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
