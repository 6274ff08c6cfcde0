//! One request's gate (`Gate`, its `Phase`) and its steps: what each outbound call needs
//! (credentials, the session, a login first or a pause), and what each of Drupal's replies
//! means for the session and the back-off.

use crate::config::UpstreamAuth;
use crate::drupal::delivery::retry_once;
use crate::drupal::query::DrupalQuery;
use crate::drupal::upstream::access::{
    access, backing_off, basic_access, current_epoch, current_step, has_guard, next_epoch,
    reads_as_anonymous, refuses_guard, stamped, Access, GateEnv,
};
use crate::drupal::upstream::login::{
    deletes_session, is_safe, login_call, mentions_csrf, pause, read_login, LoginResult,
    LOGIN_LOCK, LOGIN_STATUS_PATH, MAX_WAITS,
};
use crate::drupal::upstream::messages::{Arrival, Next, Outbound, Purpose};
use crate::http::{DrupalCall, DrupalReply};
use crate::runtime::intents::{Outcome, SharedIntent};
use crate::runtime::session::{backoff_s, SessionChange};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    /// The exchange's pending calls are out.
    Calls,
    LoggingIn,
    Pausing,
    /// A status check is out after a 401/403.
    Checking,
    /// Basic mode: one guarded read tells whether Drupal accepts the credentials; the
    /// pending calls go out after it (a retry after a back-off) or were answered already.
    Verifying {
        then_send: bool,
    },
}

/// One request's gate: it carries the exchange's batches of calls to Drupal.
#[derive(Debug)]
pub struct Gate {
    pub(crate) phase: Phase,
    pub(crate) batch: Vec<DrupalCall>,
    /// Final replies so far, by position in `batch`.
    pub(crate) kept: Vec<Option<DrupalReply>>,
    /// Positions in `batch` that are (to be) sent in the current round.
    pub(crate) pending: Vec<usize>,
    /// The session cookie the current round was sent with.
    pub(crate) cookie_used: Option<String>,
    /// This batch was already replayed after a dead session: never twice.
    pub(crate) renewed: bool,
    /// This batch's calls that a reset or a refused connection spoiled were sent again
    /// (`delivery::retry_once`): never twice.
    pub(crate) retried: bool,
    pub(crate) pauses: u32,
    /// Basic mode: this request holds the login lock to try the credentials again.
    pub(crate) trial: bool,
    /// `SessionSlot::step` when the calls (or the login, or the check) in flight went out.
    pub(crate) sent_step: u64,
    /// Basic mode: this round's answers look anonymous while another request checks the
    /// credentials; this one waits for its verdict instead of checking again.
    pub(crate) awaiting: bool,
    /// For the host's log: what happened to the login (never holds a secret).
    pub(crate) notices: Vec<(log::Level, String)>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Gate {
            phase: Phase::Idle,
            batch: Vec::new(),
            kept: Vec::new(),
            pending: Vec::new(),
            cookie_used: None,
            renewed: false,
            retried: false,
            pauses: 0,
            trial: false,
            sent_step: 0,
            awaiting: false,
            notices: Vec::new(),
        }
    }

    /// The stream ended before its answer: a login or credentials check this request was
    /// making on behalf of all is given up, so the others need not wait for the lock's TTL.
    /// Returns what the host applies (no answer is needed).
    pub fn abandon(&mut self, owner: &str) -> Vec<SharedIntent> {
        let checking = matches!(self.phase, Phase::LoggingIn) || self.trial;
        self.trial = false;
        self.awaiting = false;
        self.phase = Phase::Idle;
        if checking {
            vec![SharedIntent::unlock(LOGIN_LOCK, owner)]
        } else {
            Vec::new()
        }
    }

    /// Lines for the host's log since the last call.
    pub fn take_notices(&mut self) -> Vec<(log::Level, String)> {
        std::mem::take(&mut self.notices)
    }

    pub(crate) fn warn(&mut self, line: &str) {
        self.notices.push((log::Level::Warn, line.to_string()));
    }

    /// The exchange asks for these calls.
    pub fn send(&mut self, calls: Vec<DrupalCall>, env: &mut GateEnv) -> Next {
        self.kept = vec![None; calls.len()];
        self.pending = (0..calls.len()).collect();
        self.batch = calls;
        self.renewed = false;
        self.retried = false;
        self.pauses = 0;
        self.proceed(env)
    }

    /// Every reply to the last `Send`, in order.
    pub fn receive(&mut self, arrivals: Vec<Arrival>, env: &mut GateEnv) -> Next {
        match self.phase {
            Phase::Calls => self.calls_answered(arrivals, env),
            Phase::LoggingIn => {
                let arrival = arrivals
                    .into_iter()
                    .next()
                    .unwrap_or(Arrival::plain(DrupalReply::Failed));
                self.login_answered(arrival, env)
            }
            Phase::Pausing => {
                self.pauses = self.pauses.saturating_add(1);
                if self.awaiting {
                    return self.settle_suspect(env);
                }
                self.proceed(env)
            }
            Phase::Checking => {
                let logged_in = match arrivals.first().map(|a| &a.reply) {
                    Some(DrupalReply::Answer { status: 200, body }) => {
                        String::from_utf8_lossy(body).trim() != "0"
                    }
                    // No clear answer: keep Drupal's 403 as it was.
                    _ => true,
                };
                if logged_in {
                    self.finish()
                } else {
                    self.warn("Drupal no longer honours the gateway's session: logging in again");
                    let replay = self.replayable();
                    self.renew(replay, env)
                }
            }
            Phase::Verifying { then_send } => {
                let reply = arrivals
                    .into_iter()
                    .next()
                    .map(|a| a.reply)
                    .unwrap_or(DrupalReply::Failed);
                self.verified(reply, then_send, env)
            }
            Phase::Idle => self.finish(),
        }
    }

    pub(crate) fn proceed(&mut self, env: &mut GateEnv) -> Next {
        let needs_auth = self
            .pending
            .iter()
            .filter_map(|i| self.batch.get(*i))
            .any(|c| !c.is_wait());
        if !needs_auth {
            return self.send_pending(Vec::new(), None, None, env);
        }
        if env.credentials.mode == UpstreamAuth::Basic {
            return match basic_access(env) {
                Access::Login => {
                    self.trial = true;
                    self.verify(true, env)
                }
                access => self.follow_access(access, env),
            };
        }
        let access = access(env);
        self.follow_access(access, env)
    }

    pub(crate) fn follow_access(&mut self, access: Access, env: &mut GateEnv) -> Next {
        match access {
            Access::Ready { cookie: None, .. } => {
                let auth = vec![("authorization", env.credentials.authorization.clone())];
                self.send_pending(auth, None, None, env)
            }
            Access::Ready {
                cookie: Some(cookie),
                csrf,
            } => self.send_pending(vec![("cookie", cookie.clone())], Some(cookie), csrf, env),
            Access::Login => {
                self.phase = Phase::LoggingIn;
                self.sent_step = current_step(env);
                Next::Send(vec![login_call(env.credentials)])
            }
            Access::Pause if self.pauses < MAX_WAITS => {
                self.phase = Phase::Pausing;
                Next::Send(vec![pause(env.can_pause)])
            }
            Access::Pause => {
                self.warn("Timed out waiting for another request's Drupal login.");
                self.refuse_pending()
            }
            Access::Refused(reason) => {
                // Logged at warning level once, when the login was refused; every request
                // answered during the back-off only at debug level.
                self.notices.push((log::Level::Debug, reason));
                self.refuse_pending()
            }
        }
    }

    /// Sends the pending calls with `auth` (pauses go bare; writes get the CSRF token).
    pub(crate) fn send_pending(
        &mut self,
        auth: Vec<(&'static str, String)>,
        cookie: Option<String>,
        csrf: Option<String>,
        env: &mut GateEnv,
    ) -> Next {
        // Only user lists carry the guard; a call without one needs no epoch (nor its read).
        let guarded = self
            .pending
            .iter()
            .filter_map(|i| self.batch.get(*i))
            .any(has_guard);
        let epoch = if guarded { current_epoch(env) } else { 0 };
        self.sent_step = current_step(env);
        self.phase = Phase::Calls;
        self.cookie_used = cookie;
        let outbound = self
            .pending
            .iter()
            .filter_map(|i| self.batch.get(*i))
            .map(|call| {
                if call.is_wait() {
                    return Outbound {
                        call: call.clone(),
                        headers: Vec::new(),
                        purpose: Purpose::Pause,
                    };
                }
                let mut headers = auth.clone();
                if let (Some(token), false) = (&csrf, is_safe(call.method)) {
                    headers.push(("x-csrf-token", token.clone()));
                }
                Outbound {
                    call: stamped(call, epoch),
                    headers,
                    purpose: Purpose::Exchange,
                }
            })
            .collect();
        Next::Send(outbound)
    }

    pub(crate) fn calls_answered(&mut self, arrivals: Vec<Arrival>, env: &mut GateEnv) -> Next {
        let mut session_ended = false;
        let mut refused = false;
        for (i, arrival) in self.pending.iter().zip(arrivals) {
            let is_wait = self.batch.get(*i).map(DrupalCall::is_wait).unwrap_or(true);
            if !is_wait && self.cookie_used.is_some() {
                session_ended |= deletes_session(arrival.set_cookie.as_deref());
                match &arrival.reply {
                    DrupalReply::Answer { status: 403, body } if mentions_csrf(body) => {
                        session_ended = true
                    }
                    DrupalReply::Answer {
                        status: 401 | 403, ..
                    } => refused = true,
                    _ => {}
                }
            }
            if let Some(slot) = self.kept.get_mut(*i) {
                *slot = Some(arrival.reply);
            }
        }
        if self.cookie_used.is_none() && env.credentials.mode == UpstreamAuth::Basic {
            return self.basic_answered(env);
        }
        if self.renewed || self.cookie_used.is_none() {
            return self.retry_or_finish(env);
        }
        if session_ended {
            self.warn("Drupal ended the gateway's session: logging in again");
            let replay = self.replayable();
            return self.renew(replay, env);
        }
        if refused {
            if let Some(cookie) = self.cookie_used.clone() {
                self.phase = Phase::Checking;
                return Next::Send(vec![Outbound {
                    call: DrupalCall {
                        method: "GET",
                        path: LOGIN_STATUS_PATH.to_string(),
                        content_type: None,
                        body: None,
                    },
                    headers: vec![("cookie", cookie)],
                    purpose: Purpose::StatusCheck,
                }]);
            }
        }
        self.retry_or_finish(env)
    }

    /// Sends once more, at once, the calls of this round that a reset or a refused
    /// connection spoiled (`delivery::retry_once`: what Drupal never saw, and reads), once
    /// per batch; then delivers.
    pub(crate) fn retry_or_finish(&mut self, env: &mut GateEnv) -> Next {
        let again: Vec<usize> = self
            .pending
            .iter()
            .copied()
            .filter(|i| match (self.batch.get(*i), self.kept.get(*i)) {
                (Some(call), Some(Some(reply))) => !call.is_wait() && retry_once(call, reply),
                _ => false,
            })
            .collect();
        if self.retried || again.is_empty() {
            return self.finish();
        }
        self.retried = true;
        self.notices.push((
            log::Level::Info,
            format!(
                "{} Drupal call(s) failed before an answer (refused connection, or a reset read): sent once more",
                again.len()
            ),
        ));
        for i in &again {
            if let Some(slot) = self.kept.get_mut(*i) {
                *slot = None;
            }
        }
        self.pending = again;
        self.proceed(env)
    }

    /// Calls of this round that a dead session spoiled: reads (answered as anonymous) and
    /// refused writes. Writes Drupal accepted are kept.
    pub(crate) fn replayable(&self) -> Vec<usize> {
        self.pending
            .iter()
            .copied()
            .filter(|i| {
                let read = self
                    .batch
                    .get(*i)
                    .map(|c| is_safe(c.method) && !c.is_wait());
                let refused = matches!(
                    self.kept.get(*i),
                    Some(Some(DrupalReply::Answer {
                        status: 401 | 403,
                        ..
                    }))
                );
                read == Some(true) || refused
            })
            .collect()
    }

    pub(crate) fn renew(&mut self, replay: Vec<usize>, env: &mut GateEnv) -> Next {
        self.renewed = true;
        // The spoiled reads may have been cached by URL as they were answered: replay them
        // under new URLs.
        next_epoch(env);
        if let Some(dead) = self.cookie_used.take() {
            env.change(SessionChange::ForgetCookie { dead });
        }
        for i in &replay {
            if let Some(slot) = self.kept.get_mut(*i) {
                *slot = None;
            }
        }
        self.pending = replay;
        if self.pending.is_empty() {
            return self.finish();
        }
        self.proceed(env)
    }

    pub(crate) fn login_answered(&mut self, arrival: Arrival, env: &mut GateEnv) -> Next {
        // The lock is released only once the verdict is stored: a request that takes it
        // between the two would log in again.
        match read_login(&arrival) {
            LoginResult::Opened { cookie, csrf } => {
                env.change(SessionChange::OpenSession {
                    account: env.credentials.account_tag.clone(),
                    cookie: cookie.clone(),
                    csrf: csrf.clone(),
                    now_ms: env.now_ms,
                });
                env.unlock_login();
                self.notices.push((
                    log::Level::Info,
                    format!(
                        "logged in to Drupal as {}: session shared by all workers",
                        env.credentials.username
                    ),
                ));
                self.send_pending(
                    vec![("cookie", cookie.clone())],
                    Some(cookie),
                    Some(csrf),
                    env,
                )
            }
            LoginResult::Refused(reason) => {
                self.record_refusal(&reason, "login", env);
                env.unlock_login();
                self.refuse_pending()
            }
            LoginResult::Unavailable(reply) => {
                env.unlock_login();
                self.warn("the Drupal login did not succeed: Drupal did not answer it");
                self.answer_pending_with(reply)
            }
        }
    }

    /// Records that Drupal refused the credentials: the back-off grows, the cache epoch
    /// moves on, the log says when the next attempt is due. Counted once per step: a refusal
    /// met by calls sent before another request's verdict came in is that verdict's, not a
    /// new one (the requests in flight when Drupal starts refusing make one step).
    pub(crate) fn record_refusal(&mut self, reason: &str, what: &str, env: &mut GateEnv) {
        let outcome = env.change(SessionChange::RecordRefusal {
            account: env.credentials.account_tag.clone(),
            reason: reason.to_string(),
            now_ms: env.now_ms,
            sent_step: self.sent_step,
            local_epoch: env.cache_epoch,
        });
        if std::mem::take(&mut self.trial) {
            env.unlock_login();
        }
        let (refusals, epoch) = match outcome {
            Outcome::Session {
                slot: Some(slot),
                changed: true,
            } => (slot.refusals, slot.epoch),
            Outcome::Failed(_) => {
                // The shared state could not be written (the applier counted and logged
                // why): this refusal starts no back-off, the next call meets Drupal again.
                self.warn(&format!(
                    "Drupal refused the gateway's {what} as {}: {reason} (not recorded: the shared state could not be written)",
                    env.credentials.username
                ));
                return;
            }
            _ => {
                self.notices.push((
                    log::Level::Debug,
                    format!("Drupal refused the gateway's {what} too; counted once, with the refusal recorded meanwhile"),
                ));
                return;
            }
        };
        env.cache_epoch = epoch;
        crate::runtime::tally::note(crate::runtime::tally::Event::UpstreamRefusal);
        let backoff = backoff_s(refusals);
        let line = format!(
            "Drupal refused the gateway's {what} as {}: {reason} (refusal {refusals}; next attempt in {backoff} s, to stay within Drupal's flood control)",
            env.credentials.username
        );
        self.warn(&line);
    }

    /// Basic mode: the credentials work (again); a back-off recorded for them ends.
    pub(crate) fn basic_accepted(&mut self, env: &mut GateEnv) {
        if !std::mem::take(&mut self.trial) {
            return;
        }
        env.change(SessionChange::AcceptBasic {
            account: env.credentials.account_tag.clone(),
        });
        env.unlock_login();
        self.notices.push((
            log::Level::Info,
            format!(
                "Drupal accepts the gateway's Basic credentials for {}: checked once for all workers",
                env.credentials.username
            ),
        ));
    }

    /// Basic mode: reads the round's replies for signs that Drupal served it as anonymous.
    pub(crate) fn basic_answered(&mut self, env: &mut GateEnv) -> Next {
        let mut suspect = false;
        for i in &self.pending {
            let (Some(call), Some(Some(reply))) = (self.batch.get(*i), self.kept.get(*i)) else {
                continue;
            };
            if call.is_wait() {
                continue;
            }
            match reply {
                DrupalReply::Answer {
                    status: 401 | 403,
                    body,
                } if refuses_guard(body) => {
                    self.record_refusal(
                        "Drupal served the gateway as anonymous (wrong password, blocked account or flood control)",
                        "Basic credentials",
                        env,
                    );
                    return self.refuse_spoiled();
                }
                DrupalReply::Answer {
                    status: 401 | 403, ..
                } => suspect = true,
                DrupalReply::Answer { status: 200, body } if is_safe(call.method) => {
                    suspect |= reads_as_anonymous(body)
                }
                _ => {}
            }
        }
        if suspect {
            return self.settle_suspect(env);
        }
        self.basic_accepted(env);
        self.retry_or_finish(env)
    }

    /// Basic mode: answers that look anonymous are confirmed by one guarded read, sent by one
    /// request at a time and never during a back-off; the others wait for its verdict.
    pub(crate) fn settle_suspect(&mut self, env: &mut GateEnv) -> Next {
        self.awaiting = false;
        if let Some(slot) = env.own_slot() {
            if backing_off(&slot, env).is_some() {
                return self.refuse_spoiled();
            }
            if slot.step != self.sent_step && slot.basic_ok && slot.refusals == 0 {
                // Another request's check, sent after these calls, found the credentials
                // accepted: these are Drupal's real answers.
                return self.finish();
            }
        }
        if env.lock_login() {
            self.trial = true;
            return self.verify(false, env);
        }
        if self.pauses < MAX_WAITS {
            self.awaiting = true;
            self.phase = Phase::Pausing;
            return Next::Send(vec![pause(env.can_pause)]);
        }
        self.finish()
    }

    /// Basic mode: sends the one guarded read that tells whether Drupal accepts the account.
    pub(crate) fn verify(&mut self, then_send: bool, env: &mut GateEnv) -> Next {
        self.phase = Phase::Verifying { then_send };
        let epoch = current_epoch(env);
        self.sent_step = current_step(env);
        let mut q = DrupalQuery::new();
        crate::drupal::jsonapi::push_auth_guard(&mut q);
        q.push("fields[user--user]", "drupal_internal__uid")
            .push("page[limit]", "1");
        let call = DrupalCall {
            method: "GET",
            path: format!("{}/user/user{}", env.jsonapi, q.build()),
            content_type: None,
            body: None,
        };
        Next::Send(vec![Outbound {
            call: stamped(&call, epoch),
            headers: vec![("authorization", env.credentials.authorization.clone())],
            purpose: Purpose::StatusCheck,
        }])
    }

    pub(crate) fn verified(
        &mut self,
        reply: DrupalReply,
        then_send: bool,
        env: &mut GateEnv,
    ) -> Next {
        match reply {
            DrupalReply::Answer { status: 200, .. } => {
                self.basic_accepted(env);
                if then_send {
                    let auth = vec![("authorization", env.credentials.authorization.clone())];
                    return self.send_pending(auth, None, None, env);
                }
                self.finish()
            }
            DrupalReply::Answer {
                status: 401 | 403, ..
            } => {
                self.record_refusal(
                    "Drupal served the gateway as anonymous (wrong password, blocked account or flood control)",
                    "Basic credentials",
                    env,
                );
                if then_send {
                    self.refuse_pending()
                } else {
                    self.refuse_spoiled()
                }
            }
            // No clear answer (Drupal down): nothing learnt, no back-off.
            other => {
                if std::mem::take(&mut self.trial) {
                    env.unlock_login();
                }
                if then_send {
                    self.answer_pending_with(other)
                } else {
                    self.finish()
                }
            }
        }
    }

    /// The round's answers that an anonymous view spoiled become the refusal they stand for.
    pub(crate) fn refuse_spoiled(&mut self) -> Next {
        for i in self.replayable() {
            if let Some(slot) = self.kept.get_mut(i) {
                *slot = Some(DrupalReply::Answer {
                    status: 403,
                    body: Vec::new(),
                });
            }
        }
        self.finish()
    }

    /// The pending calls fail as Drupal's refusal of the account would (a 403): the exchange
    /// reports it (and releases what it holds) as it does any refused call.
    pub(crate) fn refuse_pending(&mut self) -> Next {
        self.answer_pending_with(DrupalReply::Answer {
            status: 403,
            body: Vec::new(),
        })
    }

    pub(crate) fn answer_pending_with(&mut self, reply: DrupalReply) -> Next {
        for i in std::mem::take(&mut self.pending) {
            if let Some(slot) = self.kept.get_mut(i) {
                *slot = Some(reply.clone());
            }
        }
        self.finish()
    }

    pub(crate) fn finish(&mut self) -> Next {
        self.phase = Phase::Idle;
        self.pending.clear();
        Next::Deliver(
            std::mem::take(&mut self.kept)
                .into_iter()
                .map(|r| r.unwrap_or(DrupalReply::Failed))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    //! Several requests in flight when Drupal starts refusing: their steps interleaved by hand
    //! over the stores every worker shares.
    use super::super::tests::*;
    use super::*;
    use crate::http::DrupalReply;
    use crate::runtime::session::SessionSlot;

    const OWNERS: [&str; 4] = ["a", "b", "c", "d"];

    /// Every gate sends its call while Drupal still accepts the account.
    fn in_flight(w: &mut World, n: usize) -> Vec<Gate> {
        (0..n)
            .map(|i| {
                let mut gate = Gate::new();
                let next = gate.send(vec![get(GUARDED)], &mut w.env(OWNERS[i]));
                assert_eq!(sent(&next)[0].purpose, Purpose::Exchange);
                gate
            })
            .collect()
    }

    fn slot(w: &World) -> SessionSlot {
        w.slot().unwrap()
    }

    fn refused() -> DrupalReply {
        DrupalReply::Answer {
            status: 403,
            body: Vec::new(),
        }
    }

    #[test]
    fn guard_refusals_in_flight_together_make_one_back_off_step() {
        for n in [2, 4] {
            let mut w = World::new(UpstreamAuth::Basic);
            basic_ok(&mut w);
            let mut gates = in_flight(&mut w, n);
            for (i, gate) in gates.iter_mut().enumerate() {
                let next = gate.receive(vec![refused_guard()], &mut w.env(OWNERS[i]));
                assert_eq!(delivered(next), vec![refused()], "no further call");
            }
            let s = slot(&w);
            assert_eq!(s.refusals, 1, "{n} in flight: one step");
            assert_eq!(s.retry_at_ms, w.now_ms + 60_000);
        }
    }

    #[test]
    fn suspect_answers_in_flight_together_send_one_check() {
        for (n, verdict) in [(2, forbidden()), (4, forbidden()), (4, ok("{}"))] {
            let mut w = World::new(UpstreamAuth::Basic);
            basic_ok(&mut w);
            let mut gates = in_flight(&mut w, n);
            let mut checks = 0;
            let mut waiting = Vec::new();
            for (i, gate) in gates.iter_mut().enumerate() {
                let next = gate.receive(vec![forbidden()], &mut w.env(OWNERS[i]));
                match sent(&next)[0].purpose {
                    Purpose::StatusCheck => checks += 1,
                    Purpose::Pause => waiting.push(i),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(
                (checks, waiting.len()),
                (1, n - 1),
                "one check, the rest wait"
            );
            let next = gates[0].receive(vec![verdict.clone()], &mut w.env("a"));
            let accepted = verdict.reply != forbidden().reply;
            let expected = if accepted {
                forbidden().reply
            } else {
                refused()
            };
            assert_eq!(delivered(next), vec![expected.clone()]);
            for i in waiting {
                let next = gates[i].receive(vec![ok("")], &mut w.env(OWNERS[i]));
                assert_eq!(delivered(next), vec![expected.clone()], "by its verdict");
            }
            assert_eq!(slot(&w).refusals, if accepted { 0 } else { 1 });
        }
    }

    #[test]
    fn a_straggler_refused_after_the_next_step_does_not_count_again() {
        let mut w = World::new(UpstreamAuth::Basic);
        basic_ok(&mut w);
        let mut gates = in_flight(&mut w, 2);
        gates[0].receive(vec![refused_guard()], &mut w.env("a"));
        // During the back-off: refused at once, and no check.
        let mut during = Gate::new();
        let next = during.send(vec![get("/u")], &mut w.env("c"));
        assert_eq!(delivered(next), vec![refused()]);
        // After it, one request checks again and is refused: the second step.
        w.now_ms += 61_000;
        let mut trial = Gate::new();
        let next = trial.send(vec![get("/u")], &mut w.env("c"));
        assert_eq!(sent(&next)[0].purpose, Purpose::StatusCheck);
        trial.receive(vec![refused_guard()], &mut w.env("c"));
        assert_eq!(slot(&w).refusals, 2);
        // The call sent before the first refusal lands now: still the second step.
        let next = gates[1].receive(vec![refused_guard()], &mut w.env("b"));
        assert_eq!(delivered(next), vec![refused()]);
        let s = slot(&w);
        assert_eq!((s.refusals, s.retry_at_ms), (2, w.now_ms + 300_000));
    }

    #[test]
    fn sessions_ended_in_flight_together_make_one_login() {
        for n in [2, 4] {
            let mut w = World::new(UpstreamAuth::Session);
            logged_in(&mut w);
            let mut gates: Vec<Gate> = (0..n)
                .map(|i| {
                    let mut gate = Gate::new();
                    gate.send(vec![get("/u")], &mut w.env(OWNERS[i]));
                    gate
                })
                .collect();
            let ended = Arrival {
                reply: DrupalReply::Answer {
                    status: 200,
                    body: b"{}".to_vec(),
                },
                set_cookie: Some(format!(
                    "{}=deleted; Max-Age=0",
                    &COOKIE[..COOKIE.len() - 4]
                )),
            };
            let mut logins = 0;
            let mut waiting = Vec::new();
            for (i, gate) in gates.iter_mut().enumerate() {
                let next = gate.receive(vec![ended.clone()], &mut w.env(OWNERS[i]));
                match sent(&next)[0].purpose {
                    Purpose::Login => logins += 1,
                    Purpose::Pause => waiting.push(i),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(logins, 1);
            let wrong = Arrival::plain(DrupalReply::Answer {
                status: 400,
                body: br#"{"message":"Sorry, unrecognized username or password."}"#.to_vec(),
            });
            let next = gates[0].receive(vec![wrong], &mut w.env("a"));
            assert_eq!(delivered(next), vec![refused()]);
            for i in waiting {
                let next = gates[i].receive(vec![ok("")], &mut w.env(OWNERS[i]));
                assert_eq!(delivered(next), vec![refused()], "no second login");
            }
            assert_eq!(slot(&w).refusals, 1);
        }
    }

    #[test]
    fn the_cache_epoch_is_one_for_all_workers() {
        let mut w = World::new(UpstreamAuth::Basic);
        basic_ok(&mut w);
        let path = |next: &Next| sent(next)[0].call.path.clone();
        let first = path(&Gate::new().send(vec![get(GUARDED)], &mut w.env("a")));
        assert!(first.contains("scim_auth_7]"));
        // Another worker, started later: the same URL.
        w.epoch = 9;
        assert_eq!(
            path(&Gate::new().send(vec![get(GUARDED)], &mut w.env("b"))),
            first
        );
        // A refusal seen by one worker moves every worker on.
        let mut gate = Gate::new();
        gate.send(vec![get(GUARDED)], &mut w.env("a"));
        gate.receive(vec![refused_guard()], &mut w.env("a"));
        w.epoch = 9;
        w.now_ms += 61_000;
        let next = Gate::new().send(vec![get(GUARDED)], &mut w.env("b"));
        assert!(
            path(&next).contains("scim_auth_1000000]"),
            "{}",
            path(&next)
        );
    }
}
