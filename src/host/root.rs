//! The root context: the configuration, and the startup checks against Drupal that every
//! SCIM request waits for (see `Shared::admission`).

use super::shared::{lock_ttl_ms, log_notices, millis, Flight, Shared};
use super::store::HostStore;
use super::stream::ScimHttp;
use crate::config::{self, UserDelete};
use crate::drupal::jsonapi::RestResource;
use crate::drupal::probe::{self, TermAccess, Verdict};
use crate::drupal::upstream::{Gate, Next};
use crate::http::DrupalReply;
use crate::runtime::locks::{Locks, StoreLocks};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

/// How often a check is tried again until Drupal has answered it.
const MAPPING_CHECK_PERIOD: Duration = Duration::from_secs(2);

/// The first check goes out right after start: SCIM requests are refused until it passed.
const FIRST_CHECK_DELAY: Duration = Duration::from_millis(10);

/// A startup check against Drupal.
#[derive(Clone, Copy, PartialEq)]
enum StartupCheck {
    Mapping,
    /// The permissions of the roles the configuration makes writable (part of the verdict).
    Roles,
    /// The service account's uid (for account protection).
    ServiceUid,
    RestDelete,
    Vocabulary,
}

pub(super) struct ScimRoot {
    shared: Option<Rc<Shared>>,
    /// The checks of the round in flight, in the order of their calls.
    in_flight: Vec<StartupCheck>,
    /// The checks go through the upstream gate like any request.
    gate: Gate,
    flight: Flight,
}

impl ScimRoot {
    pub(super) fn new() -> Self {
        ScimRoot {
            shared: None,
            in_flight: Vec::new(),
            gate: Gate::new(),
            flight: Flight::default(),
        }
    }

    fn owner(shared: &Shared) -> String {
        format!("{}:root", shared.vm_tag)
    }

    /// Dispatches the gate's next round, or concludes the check with its reply.
    fn follow(&mut self, shared: &Shared, next: Next) {
        log_notices(&mut self.gate);
        match next {
            Next::Send(round) => {
                let mut flight = std::mem::take(&mut self.flight);
                let agent = crate::flows::audit::user_agent("-");
                let tags = [("user-agent", agent.as_str())];
                flight.launch(self, shared, &round, &tags);
                self.flight = flight;
                self.round_complete(shared);
            }
            Next::Deliver(replies) => {
                shared.report(millis(self.get_current_time()), None);
                let checks = std::mem::take(&mut self.in_flight);
                let round: Vec<(StartupCheck, DrupalReply)> =
                    checks.into_iter().zip(replies).collect();
                let reply_of =
                    |check: StartupCheck| round.iter().find(|(c, _)| *c == check).map(|(_, r)| r);
                let Some(mapping) = reply_of(StartupCheck::Mapping) else {
                    return;
                };
                let mut verdict = probe::read(mapping);
                // Only an account Drupal accepted gets answers worth reading.
                let accepted = verdict == Verdict::Ready;
                if let (true, Some(reply)) = (accepted, reply_of(StartupCheck::Roles)) {
                    verdict = probe::read_roles_check(reply, &shared.config);
                }
                if let (true, Some(reply)) = (accepted, reply_of(StartupCheck::ServiceUid)) {
                    learn_service_uid(shared, reply);
                }
                self.conclude(shared, verdict);
                for (check, reply) in &round {
                    match check {
                        StartupCheck::RestDelete if accepted => conclude_rest(shared, reply),
                        StartupCheck::Vocabulary if accepted => conclude_vocabulary(shared, reply),
                        _ => {}
                    }
                }
                self.stop_when_settled(shared);
            }
        }
    }

    fn round_complete(&mut self, shared: &Shared) {
        let Some(arrivals) = self.flight.complete() else {
            return;
        };
        let owner = Self::owner(shared);
        let now = millis(self.get_current_time());
        let (next, _) = shared.with_gate_env(now, &owner, |env| self.gate.receive(arrivals, env));
        self.follow(shared, next);
    }

    /// Records the start-up check's verdict (the mapping's, and the roles' once it passed).
    fn conclude(&mut self, shared: &Shared, verdict: Verdict) {
        let line = probe::describe(&verdict);
        // The check is repeated every 2 s until it is settled: a verdict already logged is
        // not logged again at warning level.
        let repeated = shared
            .mapping_check
            .try_borrow()
            .is_ok_and(|previous| *previous == verdict);
        match &verdict {
            Verdict::Ready => log::info!("{line}"),
            Verdict::MissingField(_) | Verdict::UnsafeRoles(_) => log::error!("{line}"),
            _ if repeated => log::debug!("{line}"),
            _ => log::warn!("{line}"),
        }
        probe::publish(&mut HostStore, &shared.startup_key, &verdict);
        if let Ok(mut slot) = shared.mapping_check.try_borrow_mut() {
            // Another worker's settled verdict (adopted meanwhile) is not undone by a blip.
            if !slot.is_final() || verdict.is_final() {
                *slot = verdict;
            }
        };
    }

    /// The checks due: none once the mapping's verdict is settled (here or, adopted, on
    /// another worker, which also ran the others); else the mapping's, with the checks that
    /// only inform the log in the same round, so that they are done when requests are served.
    fn due_checks(shared: &Shared) -> Vec<StartupCheck> {
        if shared.verdict().is_final() {
            return Vec::new();
        }
        let mut checks = vec![StartupCheck::Mapping, StartupCheck::ServiceUid];
        if !probe::named_roles(&shared.config).is_empty() {
            checks.push(StartupCheck::Roles);
        }
        if shared.config.drupal.user_delete == UserDelete::HardDelete
            && shared.rest_check.get() == RestResource::Unknown
        {
            checks.push(StartupCheck::RestDelete);
        }
        let term_unknown = shared
            .term_access
            .try_borrow()
            .is_ok_and(|a| *a == TermAccess::Unknown);
        if shared.config.groups.is_some() && term_unknown {
            checks.push(StartupCheck::Vocabulary);
        }
        checks
    }

    fn stop_when_settled(&mut self, shared: &Shared) {
        if Self::due_checks(shared).is_empty() {
            self.set_tick_period(Duration::ZERO);
        }
    }
}

/// Keeps the service account's uid for account protection, and publishes it (before the
/// verdict, so a worker that adopts the verdict finds it).
fn learn_service_uid(shared: &Shared, reply: &DrupalReply) {
    let protection = &shared.config.protection;
    match probe::read_service_uid(reply, &protection.service_username) {
        Some(uid) => {
            if protection.service_uid.get() != Some(uid) {
                log::info!(
                    "account protection: the service account {} is uid {uid}",
                    protection.service_username
                );
            }
            protection.service_uid.set(uid);
            let key = probe::service_uid_key(&shared.startup_key);
            let _ = crate::runtime::store::SharedStore::set(
                &mut HostStore,
                &key,
                uid.to_string().as_bytes(),
                None,
            );
        }
        None => log::warn!(
            "account protection: could not learn the service account's uid (no single account named {} in Drupal's answer); it is recognised by name only",
            protection.service_username
        ),
    }
}

fn conclude_rest(shared: &Shared, reply: &DrupalReply) {
    let state = crate::drupal::jsonapi::rest_resource(reply);
    if let Some((level, line)) = probe::describe_rest(state) {
        log::log!(level, "{line}");
    }
    shared.rest_check.set(state);
}

fn conclude_vocabulary(shared: &Shared, reply: &DrupalReply) {
    let access = probe::read_vocabulary(reply);
    let vocabulary = shared.config.groups.as_ref().map(|g| g.vocabulary.as_str());
    if let Some((level, line)) = vocabulary.and_then(|v| probe::describe_vocabulary(&access, v)) {
        log::log!(level, "{line}");
    }
    if let Ok(mut slot) = shared.term_access.try_borrow_mut() {
        *slot = access;
    }
}

impl Context for ScimRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let arrival = shared.arrival(self, num_headers, body_size);
        if self.flight.land(token_id, arrival) {
            self.round_complete(&shared);
        }
    }
}

impl RootContext for ScimRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match config::parse(&bytes, &|name| std::env::var(name).ok()) {
            Ok((config, credentials)) => {
                log::info!(
                    "scim gateway configured: base path {}, {} token(s), Drupal cluster {} as {} ({:?} auth)",
                    config.base_path,
                    config.tokens.len(),
                    config.drupal.cluster,
                    credentials.username,
                    credentials.mode
                );
                let now = self.get_current_time();
                let vm_tag = now
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default()
                    .to_string();
                crate::runtime::locks::ensure_table(&mut HostStore);
                crate::runtime::totals::ensure_table(&mut HostStore);
                crate::runtime::session::ensure_slot(&mut HostStore);
                super::metrics::declare();
                let startup_key = probe::shared_key(&config, &credentials.username);
                self.shared = Some(Rc::new(Shared {
                    config,
                    credentials,
                    vm_tag,
                    mapping_check: RefCell::new(Verdict::Pending),
                    startup_key,
                    term_access: RefCell::new(TermAccess::Unknown),
                    rest_check: Cell::new(RestResource::Unknown),
                    cache_epoch: Cell::new(millis(now)),
                }));
                // Check the mapping against Drupal right after start (and until it answers).
                self.set_tick_period(FIRST_CHECK_DELAY);
                true
            }
            Err(e) => {
                log::error!("{e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        super::level::sync_log_level();
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if !self.in_flight.is_empty() {
            return;
        }
        let due = Self::due_checks(&shared);
        if due.is_empty() {
            self.set_tick_period(Duration::ZERO);
            return;
        }
        self.set_tick_period(MAPPING_CHECK_PERIOD);
        let owner = Self::owner(&shared);
        let now = millis(self.get_current_time());
        // One VM asks Drupal at a time (a lease it renews while it asks); the others go by
        // the verdict it publishes, and take over if it dies. So Drupal gets one check, not
        // one per thread, and none is still in flight once the verdict is out.
        let lease = format!("{}.prober", shared.startup_key);
        if !StoreLocks(HostStore).try_lock(&lease, &owner, now, lock_ttl_ms(&shared.config)) {
            return;
        }
        let calls = due
            .iter()
            .map(|check| match (check, &shared.config.groups) {
                (StartupCheck::RestDelete, _) => probe::rest_call(),
                (StartupCheck::Roles, _) => probe::roles_call(&shared.config),
                (StartupCheck::ServiceUid, _) => probe::service_call(&shared.config),
                (StartupCheck::Vocabulary, Some(groups)) => {
                    probe::vocabulary_call(&shared.config, &groups.vocabulary)
                }
                _ => probe::call(&shared.config),
            })
            .collect();
        self.in_flight = due;
        let (next, _) = shared.with_gate_env(now, &owner, |env| self.gate.send(calls, env));
        self.follow(&shared, next);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ScimHttp::new(context_id, self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
