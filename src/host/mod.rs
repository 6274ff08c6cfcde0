//! The only module that talks to proxy-wasm: it reads the request from Envoy, hands it to
//! the sans-IO `exchange`, dispatches the Drupal calls it asks for, feeds the replies back,
//! and sends the final response. No SCIM or Drupal logic lives here.

mod metrics;
mod store;

use crate::config::{self, Config, Credentials, UpstreamAuth, UserDelete};
use crate::drupal::jsonapi::RestResource;
use crate::drupal::probe::{self, Verdict};
use crate::drupal::upstream::{Arrival, Gate, GateEnv, Next, Outbound, Purpose};
use crate::flows::exchange::{self, Exchange};
use crate::flows::membership::Env;
use crate::flows::request;
use crate::http::{DrupalCall, DrupalReply, Request, Response, Step};
use crate::runtime::locks::StoreLocks;
use crate::runtime::session::StoreSession;
use crate::scim::error::ScimError;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::HostStore;

proxy_wasm::main! {{
    // Also installs a panic hook that logs the panic at critical level before the VM dies.
    // Everything goes to Envoy, whose `wasm` component level decides what is shown (debug
    // lines appear after `POST /logging?wasm=debug` on the admin port).
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(ScimRoot {
            shared: None,
            check_in_flight: None,
            gate: Gate::new(),
            flight: Flight::default(),
        })
    });
}}

struct Shared {
    config: Config,
    credentials: Credentials,
    /// Identifies this VM in lock owners (with the HTTP context id).
    vm_tag: String,
    /// The startup check of the attribute mapping against Drupal (per VM).
    mapping_check: RefCell<Verdict>,
    /// With `hard_delete`: what the startup check learnt of Drupal's REST user resource.
    rest_check: Cell<RestResource>,
    /// Names the auth guard in user lists (see `upstream`): this VM's start time, moved on
    /// after every refusal.
    cache_epoch: Cell<u64>,
}

impl Shared {
    fn dispatch(
        &self,
        ctx: &dyn Context,
        outbound: &Outbound,
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
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", call.method),
            (":path", call.path.as_str()),
            (":authority", self.config.drupal.authority.as_str()),
            ("accept", crate::drupal::jsonapi::JSONAPI_CONTENT_TYPE),
        ];
        headers.extend(outbound.headers.iter().map(|(n, v)| (*n, v.as_str())));
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

    /// Runs one step of `owner`'s upstream gate against the stores shared by all workers.
    fn with_gate_env<T>(
        &self,
        now_ms: u64,
        owner: &str,
        step: impl FnOnce(&mut GateEnv) -> T,
    ) -> T {
        let (mut locks, mut store) = (StoreLocks(HostStore), StoreSession(HostStore));
        let mut cache_epoch = self.cache_epoch.get();
        let result = step(&mut GateEnv {
            credentials: &self.credentials,
            store: &mut store,
            locks: &mut locks,
            now_ms,
            owner,
            lock_ttl_ms: lock_ttl_ms(&self.config),
            can_pause: self.config.wait_cluster.is_some(),
            cache_epoch: &mut cache_epoch,
            jsonapi: &self.config.drupal.jsonapi_prefix,
        });
        self.cache_epoch.set(cache_epoch);
        result
    }

    /// Reads a reply; in session mode with its `Set-Cookie` headers (one per line).
    fn arrival(&self, ctx: &dyn Context, num_headers: usize, body_size: usize) -> Arrival {
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
fn lock_ttl_ms(config: &Config) -> u64 {
    config
        .drupal
        .timeout_ms
        .saturating_mul(4)
        .saturating_add(1000)
}

/// The calls of one gate round in flight, and their replies as they land.
#[derive(Default)]
struct Flight {
    /// Token and position of each call still out.
    out: Vec<(u32, usize)>,
    arrivals: Vec<Option<Arrival>>,
}

impl Flight {
    /// Dispatches a round; a call Envoy refuses to send lands at once as `Failed`.
    /// Returns each call's token (`None`: not sent).
    fn launch(
        &mut self,
        ctx: &dyn Context,
        shared: &Shared,
        round: &[Outbound],
    ) -> Vec<Option<u32>> {
        self.out.clear();
        self.arrivals = vec![None; round.len()];
        let mut tokens = Vec::new();
        for (index, outbound) in round.iter().enumerate() {
            match shared.dispatch(ctx, outbound) {
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
    fn land(&mut self, token: u32, arrival: Arrival) -> bool {
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
    fn complete(&mut self) -> Option<Vec<Arrival>> {
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

/// How often the mapping check is tried until Drupal has answered it.
const MAPPING_CHECK_PERIOD: Duration = Duration::from_secs(2);

/// A startup check against Drupal.
#[derive(Clone, Copy, PartialEq)]
enum StartupCheck {
    Mapping,
    RestDelete,
}

struct ScimRoot {
    shared: Option<Rc<Shared>>,
    check_in_flight: Option<StartupCheck>,
    /// The mapping check goes through the upstream gate like any request.
    gate: Gate,
    flight: Flight,
}

impl ScimRoot {
    fn owner(shared: &Shared) -> String {
        format!("{}:root", shared.vm_tag)
    }

    /// Dispatches the gate's next round, or concludes the check with its reply.
    fn follow(&mut self, shared: &Shared, next: Next) {
        log_notices(&mut self.gate);
        match next {
            Next::Send(round) => {
                let mut flight = std::mem::take(&mut self.flight);
                flight.launch(self, shared, &round);
                self.flight = flight;
                self.round_complete(shared);
            }
            Next::Deliver(replies) => {
                let reply = replies.into_iter().next().unwrap_or(DrupalReply::Failed);
                match self.check_in_flight.take() {
                    Some(StartupCheck::RestDelete) => self.conclude_rest(shared, &reply),
                    _ => self.conclude(shared, &reply),
                }
            }
        }
    }

    fn round_complete(&mut self, shared: &Shared) {
        let Some(arrivals) = self.flight.complete() else {
            return;
        };
        let owner = Self::owner(shared);
        let now = millis(self.get_current_time());
        let next = shared.with_gate_env(now, &owner, |env| self.gate.receive(arrivals, env));
        self.follow(shared, next);
    }

    fn conclude(&mut self, shared: &Shared, reply: &DrupalReply) {
        let verdict = probe::read(reply);
        let line = probe::describe(&verdict, reply);
        // The check is repeated every 2 s until it is settled: a verdict already logged is
        // not logged again at warning level.
        let repeated = shared
            .mapping_check
            .try_borrow()
            .is_ok_and(|previous| *previous == verdict);
        match &verdict {
            Verdict::Ready => log::info!("{line}"),
            Verdict::MissingField(_) => log::error!("{line}"),
            Verdict::Refused | Verdict::Unknown if repeated => log::debug!("{line}"),
            Verdict::Refused | Verdict::Unknown => log::warn!("{line}"),
        }
        if let Ok(mut slot) = shared.mapping_check.try_borrow_mut() {
            *slot = verdict;
        };
        self.stop_when_settled(shared);
    }

    fn conclude_rest(&mut self, shared: &Shared, reply: &DrupalReply) {
        let state = crate::drupal::jsonapi::rest_resource(reply);
        if let Some((level, line)) = probe::describe_rest(state) {
            log::log!(level, "{line}");
        }
        shared.rest_check.set(state);
        self.stop_when_settled(shared);
    }

    /// The next startup check due, if any.
    fn due_check(shared: &Shared) -> Option<StartupCheck> {
        match shared.mapping_check.try_borrow().as_deref() {
            Ok(Verdict::Ready) => {}
            Ok(v) if v.is_final() => return None,
            _ => return Some(StartupCheck::Mapping),
        }
        (shared.config.drupal.user_delete == UserDelete::HardDelete
            && shared.rest_check.get() == RestResource::Unknown)
            .then_some(StartupCheck::RestDelete)
    }

    fn stop_when_settled(&mut self, shared: &Shared) {
        if Self::due_check(shared).is_none() {
            self.set_tick_period(Duration::ZERO);
        }
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
                self.shared = Some(Rc::new(Shared {
                    config,
                    credentials,
                    vm_tag,
                    mapping_check: RefCell::new(Verdict::Unknown),
                    rest_check: Cell::new(RestResource::Unknown),
                    cache_epoch: Cell::new(millis(now)),
                }));
                // Check the mapping against Drupal right after start (and until it answers).
                self.set_tick_period(MAPPING_CHECK_PERIOD);
                true
            }
            Err(e) => {
                log::error!("{e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if self.check_in_flight.is_some() {
            return;
        }
        let Some(due) = Self::due_check(&shared) else {
            return;
        };
        self.check_in_flight = Some(due);
        let owner = Self::owner(&shared);
        let now = millis(self.get_current_time());
        let check = match due {
            StartupCheck::Mapping => probe::call(&shared.config),
            StartupCheck::RestDelete => probe::rest_call(),
        };
        let next = shared.with_gate_env(now, &owner, |env| self.gate.send(vec![check], env));
        self.follow(&shared, next);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ScimHttp {
            context_id,
            started_ms: 0,
            sent_ms: Vec::new(),
            shared: self.shared.clone(),
            request: Request::default(),
            exchange: None,
            gate: Gate::new(),
            flight: Flight::default(),
            scim: false,
            answered: false,
            drupal_calls: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ScimHttp {
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
}

impl ScimHttp {
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
                serde_json::from_slice::<serde_json::Value>(&response.body)
                    .ok()
                    .and_then(|v| {
                        v.get("scimType")
                            .and_then(|t| t.as_str())
                            .map(str::to_string)
                    })
            } else {
                None
            };
            metrics::count(&format!(
                "scim.requests.token.{label}.resource.{resource}.op.{op}.status.{}",
                response.status
            ));
            if response.status == 401 {
                metrics::count("scim.auth_failures");
            }
            if let Some(t) = &scim_type {
                metrics::count(&format!(
                    "scim.validation_failures.scim_type.{}",
                    metrics::safe(t)
                ));
            }
            let duration = millis(self.get_current_time()).saturating_sub(self.started_ms);
            let request_id = self
                .request
                .header("x-request-id")
                .unwrap_or("-")
                .to_string();
            // One line a request; nothing secret (no query string: filters can hold addresses).
            log::info!(
                "scim request_id={request_id} token={label} method={} resource={resource} op={op} status={} scim_type={} drupal_calls={} duration_ms={duration}",
                self.request.method,
                response.status,
                scim_type.as_deref().unwrap_or("-"),
                self.drupal_calls
            );
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
        let now = millis(self.get_current_time());
        match crate::runtime::rate::draw(&mut HostStore, limit, now)? {
            Ok(()) => None,
            Err(retry_after) => {
                metrics::count(&format!("scim.rate_limited.token.{label}"));
                Some(crate::runtime::rate::too_many_requests(retry_after))
            }
        }
    }

    fn env_parts(&self, shared: &Shared) -> (String, u64, u64) {
        let owner = format!("{}:{}", shared.vm_tag, self.context_id);
        let now_ms = millis(self.get_current_time());
        (owner, now_ms, lock_ttl_ms(&shared.config))
    }

    fn begin(&mut self, shared: &Shared) {
        if let Some(response) = self.over_budget(shared) {
            self.respond(response);
            return;
        }
        let (owner, now_ms, lock_ttl_ms) = self.env_parts(shared);
        let mut locks = StoreLocks(HostStore);
        let mut env = Env {
            locks: &mut locks,
            now_ms,
            owner: &owner,
            lock_ttl_ms,
        };
        match exchange::begin(&shared.config, &self.request, &mut env) {
            // The route sends nothing upstream for SCIM paths; this is unreachable in
            // practice, but answering is safer than letting the request through.
            None => self.respond(ScimError::not_found("Not a SCIM path.").into_response()),
            Some((exchange, step)) => {
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
        let (owner, now_ms, _) = self.env_parts(shared);
        let next = shared.with_gate_env(now_ms, &owner, |env| self.gate.send(calls, env));
        self.follow(shared, next);
    }

    fn follow(&mut self, shared: &Shared, next: Next) {
        log_notices(&mut self.gate);
        match next {
            Next::Deliver(replies) => self.resume(shared, replies),
            Next::Send(round) => {
                let mut flight = std::mem::take(&mut self.flight);
                let tokens = flight.launch(self, shared, &round);
                self.flight = flight;
                let now = millis(self.get_current_time());
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
                        crate::drupal::query::split_path(&outbound.call.path).0
                    );
                }
                self.gate_round_complete(shared);
            }
        }
    }

    fn gate_round_complete(&mut self, shared: &Shared) {
        let Some(arrivals) = self.flight.complete() else {
            return;
        };
        let (owner, now_ms, _) = self.env_parts(shared);
        let next = shared.with_gate_env(now_ms, &owner, |env| self.gate.receive(arrivals, env));
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
        let (owner, now_ms, lock_ttl_ms) = self.env_parts(&shared);
        let mut locks = StoreLocks(HostStore);
        let mut env = Env {
            locks: &mut locks,
            now_ms,
            owner: &owner,
            lock_ttl_ms,
        };
        exchange.abandon(&mut env, shared.config.drupal.timeout_ms);
        self.gate.abandon(env.locks, &owner);
        let request_id = self.request.header("x-request-id").unwrap_or("-");
        log::info!(
            "scim request_id={request_id} method={} abandoned: the stream ended before the answer (client gone or stream timeout) after {} Drupal call(s); its locks were released",
            self.request.method,
            self.drupal_calls
        );
    }

    fn resume(&mut self, shared: &Shared, replies: Vec<DrupalReply>) {
        let (owner, now_ms, lock_ttl_ms) = self.env_parts(shared);
        let mut locks = StoreLocks(HostStore);
        let mut env = Env {
            locks: &mut locks,
            now_ms,
            owner: &owner,
            lock_ttl_ms,
        };
        let step = match self.exchange.as_mut() {
            Some(exchange) => exchange.resume(&shared.config, replies, &mut env),
            None => {
                Step::Respond(ScimError::internal("Lost track of the request.").into_response())
            }
        };
        self.act(shared, step);
    }
}

/// Reads a Drupal call's answer. A failed call arrives without headers; reading them would
/// make the SDK panic, so it becomes `Failed`.
fn read_reply(ctx: &dyn Context, num_headers: usize, body_size: usize) -> DrupalReply {
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
        let arrival = shared.arrival(self, num_headers, body_size);
        if let Some(sent) = self.sent_ms.iter().position(|(t, _, _)| *t == token_id) {
            let (_, at, method) = self.sent_ms.swap_remove(sent);
            let ms = millis(self.get_current_time()).saturating_sub(at);
            let status = match &arrival.reply {
                DrupalReply::Answer { status, .. } => *status,
                DrupalReply::Failed => 0,
            };
            metrics::count(&format!(
                "scim.drupal_calls.method.{method}.status.{status}"
            ));
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
        let missing_field = match shared.mapping_check.try_borrow().as_deref() {
            Ok(Verdict::MissingField(f)) => Some(f.clone()),
            _ => None,
        };
        if let Some(field) = missing_field {
            self.scim = true;
            self.respond(probe::refusal(&field));
            return Action::Pause;
        }
        self.scim = true;
        self.started_ms = millis(self.get_current_time());
        #[cfg(feature = "test-panic")]
        if self.get_http_request_header("x-scim-test-panic").is_some() {
            #[allow(clippy::panic)]
            {
                panic!("x-scim-test-panic: crashing the VM on purpose");
            }
        }
        self.request = Request {
            method: self.get_http_request_header(":method").unwrap_or_default(),
            path,
            headers: self.get_http_request_headers(),
            body: Vec::new(),
        };
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
        self.request.body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.begin(&shared);
        Action::Pause
    }
}

/// The gate's account of logins and dead sessions (never secrets) at warning level.
fn log_notices(gate: &mut Gate) {
    for (level, line) in gate.take_notices() {
        log::log!(level, "scim upstream: {line}");
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
