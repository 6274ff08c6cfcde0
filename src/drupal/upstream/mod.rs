//! How calls to Drupal are authenticated: the gate between a request's exchange and the host.
//!
//! In `basic` mode every call carries the service account's Basic credentials. In `session`
//! mode the gateway logs in once with core's JSON login (`POST /user/login?_format=json`),
//! keeps the session cookie and CSRF token in a store shared by every worker (proxy-wasm
//! shared data), and sends the cookie instead, with `X-CSRF-Token` on writes. Drupal then
//! skips the password-hash check it does on every Basic call.
//!
//! A session ends without notice (Drupal's garbage collection, a password change, an admin
//! ending it). Drupal then treats the cookie as anonymous: writes answer 403, reads answer
//! what anonymous may see, and the response deletes the cookie. The gate notices either,
//! confirms a bare 403 with `/user/login_status`, logs in again and replays the affected calls
//! once, so the exchange never sees an anonymous answer caused by a dead session.
//!
//! Failed logins count towards Drupal's flood control (5 per account and IP in 6 hours lock
//! the account). After a refused login the gate does not try again for a growing back-off
//! (1 min, 5 min, 30 min, then 6 h) with the same credentials; meanwhile calls are answered
//! as refused without reaching Drupal. Only one request per Envoy logs in at a time (a
//! shared lock); the others pause and then use its session.
//!
//! In `basic` mode there is no login, but every call with a wrong password is a failed login
//! in Drupal's flood table (and 50 of them from one IP in an hour lock Basic auth out for
//! every account from that IP). A refusal (a user list refused its guard filter, or another
//! 401/403 or anonymous-looking read confirmed by one guarded read) gets the same back-off:
//! meanwhile calls are refused without reaching Drupal, and after it one request tries again
//! with a single guarded read before anything else is sent.
//!
//! Under concurrency the requests in flight when Drupal starts refusing make one back-off
//! step between them (`SessionSlot::step`: a refusal counts only if no verdict came in since
//! the calls went out), and only one of them, never during a back-off, sends the check.
//!
//! Drupal's Dynamic Page Cache keeps the 403 an anonymous request got for a user list that
//! filters on `status` and serves it for that URL to everyone afterwards. So the guard's
//! filter group is named after a cache epoch (`scim_auth_<epoch>`), which moves on after every
//! refusal: a URL that was answered while Drupal refused the account is never asked again.
//!
//! Sans-IO like the rest of the core: the host hands in replies and does what `Next` says.

mod access;
mod anon;
#[cfg(test)]
mod contention;
mod gate;
mod login;
mod messages;

pub use access::GateEnv;
pub use gate::Gate;
pub use messages::{Arrival, Next, Outbound, Purpose};

#[cfg(test)]
mod tests {
    use super::access::{reads_as_anonymous, GUARD_KEY};
    use super::login::{deletes_session, session_cookie, LOGIN_LOCK};
    use super::*;
    use crate::config::{Credentials, UpstreamAuth};
    use crate::drupal::jsonapi::AUTH_GUARD;
    use crate::http::{DrupalCall, DrupalReply};
    use crate::runtime::contention::ContendedStore;
    use crate::runtime::intents::{apply, Outcome, SharedIntent, SharedPort};
    use crate::runtime::session::{backoff_s, SessionSlot, SESSION_SLOT};
    use crate::runtime::store::SharedStore;
    use serde_json::Value;

    /// What `reads_as_anonymous` says, from the parsed document.
    fn parsed_as_anonymous(body: &[u8]) -> bool {
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return false;
        };
        match doc.get("data") {
            Some(Value::Array(items)) => items.iter().any(crate::drupal::jsonapi::is_label_only),
            Some(item) => crate::drupal::jsonapi::is_label_only(item),
            None => false,
        }
    }

    #[test]
    fn the_scan_for_anonymous_reads_agrees_with_the_parsed_document() {
        let label = r#"{"type":"user--user","id":"u","attributes":{"display_name":"bob"}}"#;
        let anon = r#"{"type":"user--user","id":"u","attributes":{"display_name":"Anonymous"}}"#;
        let full = r#"{"type":"user--user","id":"u","attributes":{"display_name":"bob","name":"bob","mail":"b@x","n":[1,2.5,{"name":1}]}}"#;
        let cases = [
            format!(r#"{{"data":{label}}}"#),
            format!(r#"{{"data":{anon}}}"#),
            format!(r#"{{"data":{full}}}"#),
            format!(
                r#"{{"jsonapi":{{"version":"1.0"}},"data":[{full},{anon},{label}],"links":{{}}}}"#
            ),
            format!(r#"{{"data":[{full},{anon}]}}"#),
            r#"{"data":[]}"#.to_string(),
            r#"{"data":null}"#.to_string(),
            r#"{"data":"x"}"#.to_string(),
            format!(r#"{{"meta":{label}}}"#),
            format!(r#"[{label}]"#),
            format!(r#"{{"data":{label}}} trailing"#),
            format!(r#"{{"data":{label}"#),
            r#"{"data":{"attributes":{"display_name":null}}}"#.to_string(),
            r#"{"data":{"attributes":{"display_name":1}}}"#.to_string(),
            r#"{"data":{"attributes":{"display_name":"bob","name":null}}}"#.to_string(),
            r#"{"data":{"attributes":"x"}}"#.to_string(),
            r#"{"data":{"attributes":{"display_name":"Anonymous","display_name":"bob"}}}"#
                .to_string(),
            r#"{"data":{"attributes":{"display_name":"bob"}},"data":[]}"#.to_string(),
            r#"{"data":{"attributes":{"display_name":"Anonymous"}}}"#.to_string(),
            r#"{"data":{"attributes":{"display_name":"bob"}}}"#.to_string(),
            String::new(),
        ];
        for body in &cases {
            assert_eq!(
                reads_as_anonymous(body.as_bytes()),
                parsed_as_anonymous(body.as_bytes()),
                "{body}"
            );
        }
        assert!(reads_as_anonymous(cases[0].as_bytes()));
        assert!(reads_as_anonymous(cases[3].as_bytes()));
        assert!(!reads_as_anonymous(cases[4].as_bytes()));
    }

    #[test]
    fn the_guard_key_names_the_auth_guard() {
        assert_eq!(GUARD_KEY, format!("filter[{AUTH_GUARD}]"));
    }

    pub(super) const COOKIE: &str = "SESS12ca17b49af2289436f303e0166030a2=abc";

    pub(super) fn creds(mode: UpstreamAuth) -> Credentials {
        Credentials {
            username: "svc".into(),
            password: "pw".into(),
            authorization: "Basic c3ZjOnB3".into(),
            mode,
            session_max_age_ms: 3_600_000,
            account_tag: "tag".into(),
        }
    }

    /// What the workers share (one store, every intent applied to it) and one VM's clock
    /// and cache epoch.
    pub(super) struct World {
        pub(super) creds: Credentials,
        pub(super) store: ContendedStore,
        pub(super) now_ms: u64,
        pub(super) epoch: u64,
    }

    /// One step's env; the VM keeps the cache epoch the step leaves (as the host does).
    pub(super) struct StepEnv<'a> {
        env: GateEnv<'a>,
        epoch: &'a mut u64,
    }

    impl<'a> std::ops::Deref for StepEnv<'a> {
        type Target = GateEnv<'a>;
        fn deref(&self) -> &GateEnv<'a> {
            &self.env
        }
    }

    impl std::ops::DerefMut for StepEnv<'_> {
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut self.env
        }
    }

    impl Drop for StepEnv<'_> {
        fn drop(&mut self) {
            *self.epoch = self.env.cache_epoch;
        }
    }

    impl World {
        pub(super) fn new(mode: UpstreamAuth) -> Self {
            let mut store = ContendedStore::default();
            // As the host does at start-up: a lock's first take is then a compare-and-swap.
            crate::runtime::lock_table::ensure_table(&mut store.inner);
            World {
                creds: creds(mode),
                store,
                now_ms: 1_000_000,
                epoch: 7,
            }
        }
        pub(super) fn env(&mut self, owner: &'static str) -> StepEnv<'_> {
            let World {
                creds,
                store,
                now_ms,
                epoch,
            } = self;
            StepEnv {
                env: GateEnv {
                    credentials: creds,
                    shared: store,
                    now_ms: *now_ms,
                    owner,
                    lock_ttl_ms: 6_000,
                    can_pause: true,
                    cache_epoch: *epoch,
                    jsonapi: "/jsonapi",
                },
                epoch,
            }
        }
        /// The session slot every worker shares.
        pub(super) fn slot(&self) -> Option<SessionSlot> {
            let (bytes, _) = self.store.inner.get(SESSION_SLOT).unwrap();
            serde_json::from_slice(&bytes?).ok()
        }
        pub(super) fn set_slot(&mut self, slot: SessionSlot) {
            let bytes = serde_json::to_vec(&slot).unwrap();
            self.store.inner.set(SESSION_SLOT, &bytes, None).unwrap();
        }
        pub(super) fn try_lock(&mut self, owner: &str, now_ms: u64, ttl_ms: u64) -> bool {
            let intent = SharedIntent::lock(LOGIN_LOCK, owner, now_ms, ttl_ms);
            apply(&mut self.store.inner, &intent) == Outcome::Locked(true)
        }
    }

    pub(super) fn get(path: &str) -> DrupalCall {
        DrupalCall {
            method: "GET",
            path: path.into(),
            content_type: None,
            body: None,
        }
    }

    pub(super) fn patch(path: &str) -> DrupalCall {
        DrupalCall {
            method: "PATCH",
            path: path.into(),
            content_type: Some("application/vnd.api+json"),
            body: Some(b"{}".to_vec()),
        }
    }

    pub(super) fn ok(body: &str) -> Arrival {
        Arrival::plain(DrupalReply::Answer {
            status: 200,
            body: body.as_bytes().to_vec(),
        })
    }

    pub(super) fn sent(next: &Next) -> &Vec<Outbound> {
        match next {
            Next::Send(out) => out,
            other => panic!("expected calls, got {other:?}"),
        }
    }

    pub(super) fn login_ok() -> Arrival {
        Arrival {
            reply: DrupalReply::Answer {
                status: 200,
                body: br#"{"current_user":{"uid":"1","name":"svc"},"csrf_token":"tok","logout_token":"x"}"#.to_vec(),
            },
            set_cookie: Some(format!("{COOKIE}; expires=Mon, 21 Dec 2026 15:17:57 GMT; Max-Age=2000000; path=/; HttpOnly; SameSite=Lax")),
        }
    }

    fn header<'a>(out: &'a Outbound, name: &str) -> Option<&'a str> {
        out.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Drupal has accepted the Basic credentials before.
    pub(super) fn basic_ok(w: &mut World) {
        w.set_slot(SessionSlot {
            account: "tag".into(),
            basic_ok: true,
            ..SessionSlot::default()
        });
    }

    #[test]
    fn basic_credentials_are_checked_once_by_one_request_before_anything_else() {
        let mut w = World::new(UpstreamAuth::Basic);
        let mut first = Gate::new();
        let next = first.send(vec![patch("/jsonapi/user/user/u")], &mut w.env("a"));
        let check = &sent(&next)[0];
        assert_eq!(check.purpose, Purpose::StatusCheck);
        assert!(check.call.path.contains("filter[scim_auth_7]"));
        let mut other = Gate::new();
        let next = other.send(vec![get("/u")], &mut w.env("b"));
        assert_eq!(
            sent(&next)[0].purpose,
            Purpose::Pause,
            "the others wait for it"
        );
        let next = first.receive(vec![ok("{}")], &mut w.env("a"));
        assert_eq!(sent(&next)[0].call.method, "PATCH");
        assert!(w.slot().unwrap().basic_ok);
        let next = other.receive(vec![ok("")], &mut w.env("b"));
        assert_eq!(
            sent(&next)[0].call.path,
            "/u",
            "then everyone sends at once"
        );
    }

    #[test]
    fn reset_reads_and_unsent_writes_go_once_more_and_unknown_writes_do_not() {
        let reset = |reason: &str| {
            Arrival::plain(DrupalReply::Answer {
                status: 503,
                body: format!("upstream connect error or disconnect/reset before headers. reset reason: {reason}").into_bytes(),
            })
        };
        let mut w = World::new(UpstreamAuth::Basic);
        basic_ok(&mut w);
        let mut gate = Gate::new();
        let calls = vec![get("/a"), patch("/b"), patch("/c"), get("/d")];
        gate.send(calls, &mut w.env("a"));
        let next = gate.receive(
            vec![
                reset("connection termination"),
                reset("connection failure"),
                reset("connection termination"),
                ok("{}"),
            ],
            &mut w.env("a"),
        );
        let again: Vec<&str> = sent(&next).iter().map(|o| o.call.path.as_str()).collect();
        assert_eq!(
            again,
            ["/a", "/b"],
            "the read, and the write Drupal never saw"
        );
        assert!(sent(&next).iter().all(|o| o.headers.len() == 1));
        // Once per batch: a second reset is delivered as it is.
        let next = gate.receive(
            vec![reset("connection termination"), ok("{}")],
            &mut w.env("a"),
        );
        let Next::Deliver(replies) = next else {
            panic!("expected the replies, got {next:?}");
        };
        assert_eq!(replies.len(), 4);
        assert!(crate::drupal::delivery::outcome_unknown(&replies[0]));
        assert_eq!(replies[1], ok("{}").reply);
        assert!(
            crate::drupal::delivery::outcome_unknown(&replies[2]),
            "a write that may have landed is the exchange's to resolve"
        );
    }

    #[test]
    fn a_login_abandoned_with_its_stream_frees_the_lock_at_once() {
        let mut w = World::new(UpstreamAuth::Session);
        let mut gate = Gate::new();
        let next = gate.send(vec![get("/u")], &mut w.env("a"));
        assert_eq!(sent(&next)[0].purpose, Purpose::Login);
        let intents = gate.abandon("a");
        assert_eq!(intents, vec![SharedIntent::unlock(LOGIN_LOCK, "a")]);
        for intent in intents {
            w.store.apply(intent);
        }
        let mut other = Gate::new();
        let next = other.send(vec![get("/u")], &mut w.env("b"));
        assert_eq!(
            sent(&next)[0].purpose,
            Purpose::Login,
            "no wait for a dead login"
        );
    }

    #[test]
    fn basic_mode_adds_the_authorization_header_and_passes_replies_through() {
        let mut w = World::new(UpstreamAuth::Basic);
        basic_ok(&mut w);
        let mut gate = Gate::new();
        let next = gate.send(
            vec![get("/jsonapi/user/user"), DrupalCall::wait()],
            &mut w.env("a"),
        );
        let out = sent(&next);
        assert_eq!(header(&out[0], "authorization"), Some("Basic c3ZjOnB3"));
        assert!(out[1].headers.is_empty(), "pauses carry no credentials");
        let next = gate.receive(vec![ok("{}"), ok("")], &mut w.env("a"));
        assert!(matches!(next, Next::Deliver(r) if r.len() == 2));
    }

    pub(super) const GUARDED: &str = "/jsonapi/user/user?filter[scim_auth][condition][path]=status&filter[scim_auth][condition][operator]=IS%20NOT%20NULL";

    pub(super) fn refused_guard() -> Arrival {
        Arrival::plain(DrupalReply::Answer {
            status: 403,
            body: br#"{"errors":[{"status":"403","detail":"The current user is not authorized to filter by the `status` field, given in the path `status`."}]}"#.to_vec(),
        })
    }

    pub(super) fn forbidden() -> Arrival {
        Arrival::plain(DrupalReply::Answer {
            status: 403,
            body: b"{}".to_vec(),
        })
    }

    pub(super) fn delivered(next: Next) -> Vec<DrupalReply> {
        match next {
            Next::Deliver(replies) => replies,
            other => panic!("expected replies, got {other:?}"),
        }
    }

    #[test]
    fn user_lists_name_their_guard_after_the_cache_epoch() {
        let mut w = World::new(UpstreamAuth::Basic);
        basic_ok(&mut w);
        let mut gate = Gate::new();
        let next = gate.send(
            vec![get(GUARDED), get("/jsonapi/user/user/u")],
            &mut w.env("a"),
        );
        let out = sent(&next);
        assert!(out[0]
            .call
            .path
            .contains("filter[scim_auth_7][condition][path]=status"));
        assert!(out[0]
            .call
            .path
            .contains("filter[scim_auth_7][condition][operator]"));
        assert!(!out[0].call.path.contains("filter[scim_auth]"));
        assert_eq!(out[1].call.path, "/jsonapi/user/user/u");
    }

    #[test]
    fn a_refused_guard_in_basic_mode_backs_off_without_calling_drupal() {
        let mut w = World::new(UpstreamAuth::Basic);
        basic_ok(&mut w);
        let mut gate = Gate::new();
        gate.send(vec![get(GUARDED)], &mut w.env("a"));
        let replies = delivered(gate.receive(vec![refused_guard()], &mut w.env("a")));
        assert!(matches!(
            replies[0],
            DrupalReply::Answer { status: 403, .. }
        ));
        let slot = w.slot().unwrap();
        assert_eq!((slot.refusals, slot.retry_at_ms), (1, 1_000_000 + 60_000));
        assert_eq!(
            w.epoch, 1_000_000,
            "the epoch moved on: no cached 403 is asked again"
        );
        assert!(gate
            .take_notices()
            .iter()
            .any(|(l, m)| *l == log::Level::Warn && m.contains("next attempt in 60 s")));

        // During the back-off: refused at once, nothing sent.
        w.now_ms += 59_000;
        let mut next = Gate::new();
        let replies = delivered(next.send(vec![get(GUARDED), get("/u")], &mut w.env("b")));
        assert!(replies
            .iter()
            .all(|r| matches!(r, DrupalReply::Answer { status: 403, .. })));

        // After it: one request tries with one guarded read first; the others wait for it.
        w.now_ms += 2_000;
        let mut trial = Gate::new();
        let next = trial.send(vec![get(GUARDED), get("/u")], &mut w.env("c"));
        let out = sent(&next);
        assert_eq!((out.len(), out[0].purpose), (1, Purpose::StatusCheck));
        assert!(out[0].call.path.contains("filter[scim_auth_1000000]"));
        let mut waiting = Gate::new();
        let next = waiting.send(vec![get("/u")], &mut w.env("d"));
        assert_eq!(sent(&next)[0].purpose, Purpose::Pause);
        // Refused again: the next back-off is 5 minutes.
        let replies = delivered(trial.receive(vec![forbidden()], &mut w.env("c")));
        assert_eq!(replies.len(), 2);
        let slot = w.slot().unwrap();
        assert_eq!(slot.refusals, 2);
        assert_eq!(slot.retry_at_ms, w.now_ms + 300_000);

        // Fixed: after the back-off the check passes, the calls go out, the back-off ends.
        w.now_ms += 300_000;
        let mut trial = Gate::new();
        trial.send(vec![get("/u")], &mut w.env("e"));
        let next = trial.receive(vec![ok("{}")], &mut w.env("e"));
        assert_eq!(sent(&next)[0].call.path, "/u");
        assert_eq!(w.slot().unwrap().refusals, 0);
        assert!(w.try_lock("z", w.now_ms, 1), "the trial lock is released");
    }

    #[test]
    fn other_refusals_in_basic_mode_are_confirmed_by_one_guarded_read() {
        // A real 403 (the account may not do this): passed on, no back-off.
        let mut w = World::new(UpstreamAuth::Basic);
        basic_ok(&mut w);
        let mut gate = Gate::new();
        gate.send(vec![patch("/jsonapi/user/user/u")], &mut w.env("a"));
        let next = gate.receive(vec![forbidden()], &mut w.env("a"));
        let check = &sent(&next)[0];
        assert_eq!(check.purpose, Purpose::StatusCheck);
        assert_eq!(header(check, "authorization"), Some("Basic c3ZjOnB3"));
        let replies = delivered(gate.receive(vec![ok("{}")], &mut w.env("a")));
        assert_eq!(replies[0], forbidden().reply);
        assert_eq!(w.slot().unwrap().refusals, 0);

        // A label-only read is Drupal's anonymous view: confirmed, it becomes a refusal.
        let mut gate = Gate::new();
        gate.send(vec![get("/jsonapi/user/user/u")], &mut w.env("a"));
        let label_only =
            ok(r#"{"data":{"type":"user--user","id":"u","attributes":{"display_name":"alice"}}}"#);
        let next = gate.receive(vec![label_only], &mut w.env("a"));
        assert_eq!(sent(&next)[0].purpose, Purpose::StatusCheck);
        let replies = delivered(gate.receive(vec![forbidden()], &mut w.env("a")));
        assert!(matches!(
            replies[0],
            DrupalReply::Answer { status: 403, .. }
        ));
        assert_eq!(w.slot().unwrap().refusals, 1);
    }

    #[test]
    fn session_mode_logs_in_once_and_shares_the_session() {
        let mut w = World::new(UpstreamAuth::Session);
        let mut gate = Gate::new();
        let next = gate.send(vec![patch("/jsonapi/user/user/u")], &mut w.env("a"));
        let login = &sent(&next)[0];
        assert_eq!(login.purpose, Purpose::Login);
        assert_eq!(login.call.path, "/user/login?_format=json");
        assert!(
            login.headers.is_empty(),
            "no credentials in headers: they are in the body"
        );
        let body: Value = serde_json::from_slice(login.call.body.as_ref().unwrap()).unwrap();
        assert_eq!(body, serde_json::json!({"name": "svc", "pass": "pw"}));
        // A second request meanwhile waits for that login instead of starting its own.
        let mut other = Gate::new();
        let waiting = other.send(vec![get("/jsonapi/user/user")], &mut w.env("b"));
        assert_eq!(sent(&waiting)[0].purpose, Purpose::Pause);

        let next = gate.receive(vec![login_ok()], &mut w.env("a"));
        let call = &sent(&next)[0];
        assert_eq!(header(call, "cookie"), Some(COOKIE));
        assert_eq!(header(call, "x-csrf-token"), Some("tok"));
        assert_eq!(header(call, "authorization"), None);

        let next = other.receive(vec![ok("")], &mut w.env("b"));
        let call = &sent(&next)[0];
        assert_eq!(header(call, "cookie"), Some(COOKIE));
        assert_eq!(
            header(call, "x-csrf-token"),
            None,
            "reads need no CSRF token"
        );
    }

    pub(super) fn logged_in(w: &mut World) {
        let now_ms = w.now_ms;
        w.set_slot(SessionSlot {
            account: "tag".into(),
            cookie: Some(COOKIE.into()),
            csrf: Some("tok".into()),
            opened_ms: now_ms,
            ..SessionSlot::default()
        });
    }

    #[test]
    fn a_dead_session_is_noticed_renewed_and_the_reads_replayed() {
        let mut w = World::new(UpstreamAuth::Session);
        logged_in(&mut w);
        let mut gate = Gate::new();
        gate.send(vec![get("/a"), get("/b")], &mut w.env("a"));
        let anonymous = Arrival {
            reply: DrupalReply::Answer {
                status: 200,
                body: b"{}".to_vec(),
            },
            set_cookie: Some("SESS12ca17b49af2289436f303e0166030a2=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; path=/".into()),
        };
        let next = gate.receive(vec![anonymous.clone(), anonymous], &mut w.env("a"));
        assert_eq!(sent(&next)[0].purpose, Purpose::Login);
        assert_eq!(w.slot().unwrap().cookie, None);
        let next = gate.receive(vec![login_ok()], &mut w.env("a"));
        assert_eq!(sent(&next).len(), 2, "both reads are replayed");
        assert_eq!(w.epoch, 1_000_000, "under new URLs");
        let next = gate.receive(vec![ok("\"a\""), ok("\"b\"")], &mut w.env("a"));
        let Next::Deliver(replies) = next else {
            panic!()
        };
        assert_eq!(replies[1], ok("\"b\"").reply);
    }

    #[test]
    fn a_403_is_checked_and_only_a_logged_out_session_is_renewed() {
        let mut w = World::new(UpstreamAuth::Session);
        logged_in(&mut w);
        let forbidden = Arrival::plain(DrupalReply::Answer {
            status: 403,
            body: b"{}".to_vec(),
        });
        // Still logged in: the 403 is Drupal's real answer.
        let mut gate = Gate::new();
        gate.send(vec![patch("/x")], &mut w.env("a"));
        let next = gate.receive(vec![forbidden.clone()], &mut w.env("a"));
        let check = &sent(&next)[0];
        assert_eq!(check.purpose, Purpose::StatusCheck);
        assert_eq!(header(check, "cookie"), Some(COOKIE));
        let next = gate.receive(vec![ok("1")], &mut w.env("a"));
        assert_eq!(next, Next::Deliver(vec![forbidden.reply.clone()]));
        // Logged out: log in again and replay the write, once.
        let mut gate = Gate::new();
        gate.send(vec![patch("/x")], &mut w.env("a"));
        gate.receive(vec![forbidden.clone()], &mut w.env("a"));
        let next = gate.receive(vec![ok("0")], &mut w.env("a"));
        assert_eq!(sent(&next)[0].purpose, Purpose::Login);
        let next = gate.receive(vec![login_ok()], &mut w.env("a"));
        assert_eq!(sent(&next)[0].call.path, "/x");
        let next = gate.receive(vec![forbidden.clone()], &mut w.env("a"));
        assert_eq!(next, Next::Deliver(vec![forbidden.reply]), "never twice");
    }

    #[test]
    fn accepted_writes_are_not_replayed() {
        let mut w = World::new(UpstreamAuth::Session);
        logged_in(&mut w);
        let mut gate = Gate::new();
        gate.send(vec![patch("/done"), patch("/refused")], &mut w.env("a"));
        let csrf = Arrival::plain(DrupalReply::Answer {
            status: 403,
            body: br#"{"message":"X-CSRF-Token request header is invalid"}"#.to_vec(),
        });
        let next = gate.receive(vec![ok("{}"), csrf], &mut w.env("a"));
        assert_eq!(sent(&next)[0].purpose, Purpose::Login);
        let next = gate.receive(vec![login_ok()], &mut w.env("a"));
        let out = sent(&next);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].call.path, "/refused");
    }

    #[test]
    fn refused_logins_back_off_to_respect_flood_control() {
        let mut w = World::new(UpstreamAuth::Session);
        let mut gate = Gate::new();
        gate.send(vec![get("/a")], &mut w.env("a"));
        let refusal = Arrival::plain(DrupalReply::Answer {
            status: 400,
            body: br#"{"message":"Sorry, unrecognized username or password."}"#.to_vec(),
        });
        let next = gate.receive(vec![refusal], &mut w.env("a"));
        let Next::Deliver(replies) = next else {
            panic!()
        };
        assert!(matches!(
            replies[0],
            DrupalReply::Answer { status: 403, .. }
        ));
        assert!(gate.take_notices()[0].1.contains("unrecognized username"));
        let slot = w.slot().unwrap();
        assert_eq!((slot.refusals, slot.retry_at_ms), (1, w.now_ms + 60_000));
        // Within the back-off no login is tried: the answer comes without a Drupal call.
        w.now_ms += 59_000;
        let next = Gate::new().send(vec![get("/a")], &mut w.env("b"));
        assert!(matches!(next, Next::Deliver(_)));
        // After it, one login again; a second refusal doubles down.
        w.now_ms += 2_000;
        let next = Gate::new().send(vec![get("/a")], &mut w.env("c"));
        assert_eq!(sent(&next)[0].purpose, Purpose::Login);
        assert_eq!(backoff_s(2), 300);
        assert_eq!(backoff_s(9), 21_600);
        // New credentials (a config change) are not held back by the old ones' refusals.
        let mut w2 = World::new(UpstreamAuth::Session);
        w2.set_slot(SessionSlot {
            account: "other".into(),
            refusals: 3,
            retry_at_ms: u64::MAX,
            ..SessionSlot::default()
        });
        let next = Gate::new().send(vec![get("/a")], &mut w2.env("a"));
        assert_eq!(sent(&next)[0].purpose, Purpose::Login);
    }

    #[test]
    fn an_aged_session_is_replaced_by_one_request_while_others_keep_using_it() {
        let mut w = World::new(UpstreamAuth::Session);
        logged_in(&mut w);
        w.now_ms += 3_600_000;
        let next = Gate::new().send(vec![get("/a")], &mut w.env("a"));
        assert_eq!(sent(&next)[0].purpose, Purpose::Login);
        let next = Gate::new().send(vec![get("/a")], &mut w.env("b"));
        assert_eq!(header(&sent(&next)[0], "cookie"), Some(COOKIE));
    }

    #[test]
    fn a_login_drupal_does_not_answer_fails_the_calls_without_back_off() {
        let mut w = World::new(UpstreamAuth::Session);
        let mut gate = Gate::new();
        gate.send(vec![get("/a")], &mut w.env("a"));
        let next = gate.receive(vec![Arrival::plain(DrupalReply::Failed)], &mut w.env("a"));
        assert_eq!(next, Next::Deliver(vec![DrupalReply::Failed]));
        assert!(w.slot().is_none());
        assert!(w.try_lock("b", w.now_ms, 1), "the lock is released");
    }

    #[test]
    fn session_cookies_are_read_from_set_cookie() {
        assert_eq!(
            session_cookie("SESSab=xyz; path=/; HttpOnly").as_deref(),
            Some("SESSab=xyz")
        );
        assert_eq!(session_cookie("other=1"), None);
        assert!(deletes_session(Some(
            "SESSab=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"
        )));
        assert!(!deletes_session(Some("SESSab=xyz; Max-Age=2000000")));
        assert!(!deletes_session(None));
    }
}
