//! The HTTP context: one SCIM request, from Envoy to the exchange and back.

use super::metrics;
use super::shared::{lock_ttl_ms, log_notices, millis, BackoffSeen, Flight, Shared, SlotSeen};
use super::store::HostStore;
use crate::drupal::upstream::{Gate, Next, Purpose};
use crate::flows::audit::{self, Outcome, Trace};
use crate::flows::exchange::{self, Exchange};
use crate::flows::request;
use crate::flows::scope::LockScope;
use crate::http::{DrupalCall, DrupalReply, Request, Response, Step};
use crate::runtime::intents::{SharedIntent, SharedPort};
use crate::runtime::locks::StoreLocks;
use crate::scim::error::ScimError;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) struct ScimHttp {
    context_id: u32,
    /// When the request arrived (ms), for the log line.
    started_ms: u64,
    /// When each call in flight was sent, by token (ms), for the latency histogram.
    sent_ms: Vec<(u32, u64, &'static str)>,
    shared: Option<Rc<Shared>>,
    request: Request,
    exchange: Option<Exchange>,
    /// Authenticates the exchange's calls to Drupal (Basic, or the shared session).
    gate: Gate,
    flight: Flight,
    scim: bool,
    answered: bool,
    drupal_calls: usize,
    /// The trace context this request's Drupal calls carry (also on the log line).
    trace: Option<Trace>,
    /// Who holds this request's locks (VM tag and context id), made once.
    owner: String,
    /// What this request's gate steps last read of the shared session slot
    /// (`Shared::report`); `None` once a step changed it, or before any read it.
    slot_seen: Option<BackoffSeen>,
    /// The `User-Agent` of this request's Drupal calls (names the token), made once.
    user_agent: String,
    /// Envoy's clock (ms) when the current callback began: one host call per callback
    /// instead of one per use (a callback lasts microseconds).
    clock_ms: u64,
}

impl ScimHttp {
    pub(super) fn new(context_id: u32, shared: Option<Rc<Shared>>) -> Self {
        let owner = shared
            .as_ref()
            .map(|s| format!("{}:{}", s.vm_tag, context_id))
            .unwrap_or_default();
        ScimHttp {
            owner,
            slot_seen: None,
            user_agent: String::new(),
            clock_ms: 0,
            context_id,
            started_ms: 0,
            sent_ms: Vec::new(),
            shared,
            request: Request::default(),
            exchange: None,
            gate: Gate::new(),
            flight: Flight::default(),
            scim: false,
            answered: false,
            drupal_calls: 0,
            trace: None,
        }
    }

    /// What every Drupal call of this request carries so that Drupal's logs and Envoy's
    /// tracing tie to the IdP event: the request id the log line shows (only a checked one),
    /// the trace context, and who calls. Nothing else of the client's headers goes out.
    fn call_tags(&self) -> Vec<(&'static str, &str)> {
        let mut tags = Vec::with_capacity(3);
        let request_id = self.request.log_request_id();
        if request_id != "-" {
            tags.push(("x-request-id", request_id));
        }
        if let Some(trace) = &self.trace {
            tags.push(("traceparent", trace.traceparent.as_str()));
        }
        tags.push(("user-agent", self.user_agent.as_str()));
        tags
    }

    /// Reads Envoy's clock for the callback that begins.
    fn tick(&mut self) -> SystemTime {
        let now = self.get_current_time();
        self.clock_ms = millis(now);
        now
    }

    fn respond(&mut self, response: Response) {
        if self.answered {
            return;
        }
        self.answered = true;
        let label = self
            .exchange
            .as_ref()
            .map(|e| e.token_label.as_str())
            .filter(|l| !l.is_empty())
            .unwrap_or("-")
            .to_string();
        if let Some(shared) = self.shared.clone() {
            let (resource, op) =
                request::classify(&shared.config, &self.request.method, &self.request.path);
            let scim_type = if response.status >= 400 {
                crate::scim::error::scim_type_in(&response.body)
            } else {
                None
            };
            metrics::count_request(&label, resource, op, response.status);
            if response.status == 401 {
                metrics::count("scim.auth_failures");
            }
            if let Some(t) = &scim_type {
                metrics::count(&format!(
                    "scim.validation_failures.scim_type.{}",
                    metrics::safe(t)
                ));
            }
            let duration = self.clock_ms.saturating_sub(self.started_ms);
            let request_id = self.request.log_request_id().to_string();
            if let Some(left_out) = self.exchange.as_ref().and_then(|e| e.left_out.as_ref()) {
                for _ in &left_out.changes {
                    metrics::count("scim.groups.protected_member_changes_left_out");
                }
                log::warn!(
                    "scim request_id={request_id} token={label} groups: membership changes to accounts SCIM may not change were left out, the rest applied: {}",
                    left_out.describe()
                );
            }
            let mut outcome = match &self.exchange {
                Some(e) => e.outcome.clone(),
                None => Outcome::for_path(&shared.config.base_path, &self.request.path),
            };
            if let Some(a) = self.exchange.as_ref().and_then(|e| e.adopted) {
                outcome.adopted_account(a.uid);
                metrics::count(a.on.metric());
            }
            shared.report(self.clock_ms, self.slot_seen);
            // One line a request; nothing secret (no query string: filters can hold addresses).
            let line = audit::RequestLine {
                request_id: self.request.log_request_id(),
                trace_id: self.trace.as_ref().map_or("-", |t| t.trace_id.as_str()),
                token: &label,
                method: &self.request.method,
                resource,
                op,
                outcome: &outcome,
                status: response.status,
                scim_type,
                drupal_calls: self.drupal_calls,
                duration_ms: duration,
            };
            log::info!("{}", line.render(shared.config.log_format));
        }
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let body = if response.body.is_empty() {
            None
        } else {
            Some(response.body.as_slice())
        };
        self.send_http_response(u32::from(response.status), headers, body);
    }

    /// Token budgets (`rate_limits`): a bucket per label in shared data.
    fn over_budget(&self, shared: &Shared) -> Option<Response> {
        // Without budgets there is nothing to look up (and the token is hashed only once,
        // by the exchange).
        if shared.config.rate_limits.is_empty() {
            return None;
        }
        let label = crate::flows::auth::authenticate(
            self.request.header("authorization"),
            &shared.config.tokens,
        )
        .ok()?;
        let limit = shared
            .config
            .rate_limits
            .iter()
            .find(|l| l.label == label)?;
        match crate::runtime::rate::draw(&mut HostStore, limit, self.clock_ms)? {
            Ok(()) => None,
            Err(retry_after) => {
                metrics::count(&format!("scim.rate_limited.token.{label}"));
                Some(crate::runtime::rate::too_many_requests(retry_after))
            }
        }
    }

    fn env_parts(&self, shared: &Shared) -> (u64, u64) {
        (self.clock_ms, lock_ttl_ms(&shared.config))
    }

    fn begin(&mut self, shared: &Shared) {
        if let Some(response) = self.over_budget(shared) {
            self.respond(response);
            return;
        }
        let (now_ms, lock_ttl_ms) = self.env_parts(shared);
        let mut locks = StoreLocks(HostStore);
        let mut env = LockScope::new(&mut locks, now_ms, &self.owner, lock_ttl_ms);
        match exchange::begin(&shared.config, &self.request, &mut env) {
            // The route sends nothing upstream for SCIM paths; this is unreachable in
            // practice, but answering is safer than letting the request through.
            None => self.respond(ScimError::not_found("Not a SCIM path.").into_response()),
            Some((mut exchange, step)) => {
                apply_returned(env.shared, exchange.take_intents());
                self.user_agent = audit::user_agent(&exchange.token_label);
                self.exchange = Some(exchange);
                self.act(shared, step);
            }
        }
    }

    fn act(&mut self, shared: &Shared, step: Step) {
        match step {
            Step::Respond(response) => self.respond(response),
            Step::Call(calls) => self.dispatch(shared, calls),
        }
    }

    /// The exchange's calls go through the gate, which may first log in.
    fn dispatch(&mut self, shared: &Shared, calls: Vec<DrupalCall>) {
        let (now_ms, _) = self.env_parts(shared);
        let (next, seen) =
            shared.with_gate_env(now_ms, &self.owner, |env| self.gate.send(calls, env));
        self.saw_slot(seen);
        self.follow(shared, next);
    }

    fn follow(&mut self, shared: &Shared, next: Next) {
        log_notices(&mut self.gate);
        match next {
            Next::Deliver(replies) => self.resume(shared, replies),
            Next::Send(round) => {
                let mut flight = std::mem::take(&mut self.flight);
                let tags = self.call_tags();
                let tokens = flight.launch(self, shared, &round, &tags);
                self.flight = flight;
                let now = self.clock_ms;
                for (outbound, token) in round.iter().zip(tokens) {
                    if outbound.purpose == Purpose::Pause {
                        continue;
                    }
                    self.drupal_calls = self.drupal_calls.saturating_add(1);
                    if let Some(token) = token {
                        self.sent_ms.push((token, now, outbound.call.method));
                    }
                    log::debug!(
                        "scim drupal call {} {}",
                        outbound.call.method,
                        crate::flows::request::split_path(&outbound.call.path).0
                    );
                }
                self.gate_round_complete(shared);
            }
        }
    }

    fn saw_slot(&mut self, seen: SlotSeen) {
        match seen {
            SlotSeen::Unread => {}
            SlotSeen::Read(until) => self.slot_seen = Some(until),
            SlotSeen::Changed => self.slot_seen = None,
        }
    }

    fn gate_round_complete(&mut self, shared: &Shared) {
        let Some(arrivals) = self.flight.complete() else {
            return;
        };
        let (now_ms, _) = self.env_parts(shared);
        let (next, seen) =
            shared.with_gate_env(now_ms, &self.owner, |env| self.gate.receive(arrivals, env));
        self.saw_slot(seen);
        self.follow(shared, next);
    }

    /// The stream ended before the answer (the client went away, or Envoy's stream timeout):
    /// Envoy cancels the calls in flight, so the exchange would never resume and its locks
    /// would stay until they time out. It gives them up now instead.
    fn abandon_unanswered(&mut self) {
        if self.answered {
            return;
        }
        self.answered = true;
        let (Some(shared), Some(mut exchange)) = (self.shared.clone(), self.exchange.take()) else {
            return;
        };
        self.tick();
        let (now_ms, lock_ttl_ms) = self.env_parts(&shared);
        let mut locks = StoreLocks(HostStore);
        let env = LockScope::new(&mut locks, now_ms, &self.owner, lock_ttl_ms);
        let releases = exchange.abandon(&env, shared.config.drupal.timeout_ms);
        drop(env);
        apply_returned(&mut locks, releases);
        shared.apply(self.gate.abandon(&self.owner));
        let request_id = self.request.log_request_id();
        log::info!(
            "scim request_id={request_id} method={} abandoned: the stream ended before the answer (client gone or stream timeout) after {} Drupal call(s); its locks were released",
            self.request.method,
            self.drupal_calls
        );
    }

    fn resume(&mut self, shared: &Shared, replies: Vec<DrupalReply>) {
        let (now_ms, lock_ttl_ms) = self.env_parts(shared);
        let mut locks = StoreLocks(HostStore);
        let mut env = LockScope::new(&mut locks, now_ms, &self.owner, lock_ttl_ms);
        let step = match self.exchange.as_mut() {
            Some(exchange) => {
                let step = exchange.resume(&shared.config, replies, &mut env);
                apply_returned(env.shared, exchange.take_intents());
                step
            }
            None => {
                Step::Respond(ScimError::internal("Lost track of the request.").into_response())
            }
        };
        self.act(shared, step);
    }
}

/// The intents a step returned, applied once it is over through the port its locks were taken
/// with: a failure is counted and logged by the applier (an unlock left behind lapses at its
/// time-out).
fn apply_returned(port: &mut dyn SharedPort, intents: Vec<SharedIntent>) {
    for intent in intents {
        port.apply(intent);
    }
}

impl Context for ScimHttp {
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
        self.tick();
        let arrival = shared.arrival(self, num_headers, body_size);
        if let Some(sent) = self.sent_ms.iter().position(|(t, _, _)| *t == token_id) {
            let (_, at, method) = self.sent_ms.swap_remove(sent);
            let ms = self.clock_ms.saturating_sub(at);
            let status = match &arrival.reply {
                DrupalReply::Answer { status, .. } => *status,
                DrupalReply::Failed => 0,
            };
            metrics::count_call(method, status);
            metrics::record("scim.drupal_latency_ms", ms);
            log::debug!("scim drupal answer {status} after {ms} ms");
        }
        if self.flight.land(token_id, arrival) {
            self.gate_round_complete(&shared);
        }
    }

    fn on_done(&mut self) -> bool {
        self.abandon_unanswered();
        true
    }
}

impl HttpContext for ScimHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            self.respond(
                ScimError::internal("The SCIM gateway is not configured.").into_response(),
            );
            return Action::Pause;
        };
        let path = self.get_http_request_header(":path").unwrap_or_default();
        if !request::is_scim_path(&shared.config, &path) {
            return Action::Continue;
        }
        self.scim = true;
        super::level::sync_log_level();
        let now = self.tick();
        self.started_ms = self.clock_ms;
        #[cfg(feature = "test-panic")]
        if self.get_http_request_header("x-scim-test-panic").is_some() {
            #[allow(clippy::panic)]
            {
                panic!("x-scim-test-panic: crashing the VM on purpose");
            }
        }
        // The whole map holds `:method` too: one host call for both.
        let headers = self.get_http_request_headers();
        let method = headers
            .iter()
            .find(|(n, _)| n == ":method")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        self.request = Request {
            method,
            path,
            headers,
            body: Vec::new(),
        };
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = format!(
            "{}:{}:{nanos}:{}",
            shared.vm_tag,
            self.context_id,
            self.request.log_request_id()
        );
        self.trace = Some(Trace::for_request(&self.request, seed.as_bytes()));
        // Nothing is served before the startup check has passed. A client without a valid
        // token learns nothing about the gateway's state.
        if let Some(refusal) = shared.admission() {
            let answer = match crate::flows::auth::authenticate(
                self.request.header("authorization"),
                &shared.config.tokens,
            ) {
                Ok(_) => refusal,
                Err(e) => e.into_response(),
            };
            self.respond(answer);
            return Action::Pause;
        }
        if end_of_stream {
            self.begin(&shared);
            return Action::Pause;
        }
        if let Some(response) = request::check_headers(&shared.config, &self.request) {
            self.respond(response);
            return Action::Pause;
        }
        // Returning Pause here would stop the body callbacks (Envoy converts it to
        // StopAllIteration); the buffer filter behind us holds the request back instead.
        Action::Continue
    }

    fn on_log(&mut self) {
        self.abandon_unanswered();
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.scim || self.answered {
            return Action::Pause;
        }
        let Some(shared) = self.shared.clone() else {
            return Action::Pause;
        };
        if u64::try_from(body_size).unwrap_or(u64::MAX) > shared.config.max_body_bytes {
            self.respond(request::too_large(&shared.config).into_response());
            return Action::Pause;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.tick();
        self.request.body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.begin(&shared);
        Action::Pause
    }
}
