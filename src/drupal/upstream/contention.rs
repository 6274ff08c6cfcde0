//! The gate under contention: another worker's step (or intents) lands inside one request's
//! compare-and-swap on the session slot or the login lock, deterministically, over the
//! store every worker shares. The back-off must count one step per verdict and the login
//! happen once, whatever the order.
#![allow(clippy::arithmetic_side_effects)]

use super::login::LOGIN_LOCK;
use super::tests::*;
use super::*;
use crate::config::UpstreamAuth;
use crate::http::DrupalReply;
use crate::runtime::contention::Act;
use crate::runtime::intents::SharedIntent;
use crate::runtime::session::SessionChange;
use crate::runtime::store::{MemoryStore, CAS_ATTEMPTS};
use crate::runtime::tally::{self, Event};
use std::cell::RefCell;
use std::rc::Rc;

/// Another worker's gate and what its step returned.
type Other = Rc<RefCell<(Gate, Option<Next>)>>;

/// Schedules `other`'s step (`step(gate, env)`) just before the `nth` write of the next
/// step run through `w` (1: its first write), as another worker with the cache epoch 7.
fn inside(
    w: &mut World,
    nth: usize,
    other: &Other,
    owner: &'static str,
    step: impl FnOnce(&mut Gate, &mut GateEnv) -> Next + 'static,
) {
    let (creds, now_ms, other) = (w.creds.clone(), w.now_ms, other.clone());
    w.store.before_write(
        nth,
        Act::Run(Box::new(move |store: &mut MemoryStore| {
            let mut env = GateEnv {
                credentials: &creds,
                shared: store,
                now_ms,
                owner,
                lock_ttl_ms: 6_000,
                can_pause: true,
                cache_epoch: 7,
                jsonapi: "/jsonapi",
            };
            let mut held = other.borrow_mut();
            let next = step(&mut held.0, &mut env);
            held.1 = Some(next);
        })),
    );
}

fn other(gate: Gate) -> Other {
    Rc::new(RefCell::new((gate, None)))
}

fn took(other: &Other) -> Next {
    other.borrow_mut().1.take().expect("the other step ran")
}

fn refused() -> DrupalReply {
    DrupalReply::Answer {
        status: 403,
        body: Vec::new(),
    }
}

/// Basic mode, Drupal accepted the credentials before: two requests' user lists in flight.
fn two_in_flight(w: &mut World) -> (Gate, Other) {
    basic_ok(w);
    let mut a = Gate::new();
    let mut b = Gate::new();
    for (gate, owner) in [(&mut a, "a"), (&mut b, "b")] {
        let next = gate.send(vec![get(GUARDED)], &mut w.env(owner));
        assert_eq!(sent(&next)[0].purpose, Purpose::Exchange);
    }
    (a, other(b))
}

#[test]
fn two_refusals_landing_inside_each_others_compare_and_swap_make_one_step() {
    let mut w = World::new(UpstreamAuth::Basic);
    let (mut a, b) = two_in_flight(&mut w);
    tally::drain();
    // b's refusal is recorded between a's read of the slot and a's write: a's write loses,
    // a reads again and finds the step moved on by a verdict its calls did not see.
    inside(&mut w, 1, &b, "b", |gate, env| {
        gate.receive(vec![refused_guard()], env)
    });
    let replies = delivered(a.receive(vec![refused_guard()], &mut w.env("a")));
    assert_eq!(w.store.pending(), 0, "b's step ran inside a's");
    assert_eq!(replies, vec![refused()]);
    assert_eq!(delivered(took(&b)), vec![refused()]);
    let slot = w.slot().unwrap();
    assert_eq!(
        (slot.refusals, slot.step, slot.retry_at_ms),
        (1, 1, w.now_ms + 60_000),
        "one back-off step, the first one's length"
    );
    assert_eq!(tally::drain(), vec![(Event::UpstreamRefusal, 1)]);
    assert!(a
        .take_notices()
        .iter()
        .any(|(l, m)| *l == log::Level::Debug && m.contains("counted once")));
    let b_notices = b.borrow_mut().0.take_notices();
    assert!(b_notices.iter().any(|(_, m)| m.contains("refusal 1;")));
    // The next refusal, after the back-off, is the second step: 5 minutes.
    w.now_ms += 61_000;
    let mut trial = Gate::new();
    let next = trial.send(vec![get("/u")], &mut w.env("c"));
    assert_eq!(sent(&next)[0].purpose, Purpose::StatusCheck);
    trial.receive(vec![forbidden()], &mut w.env("c"));
    let slot = w.slot().unwrap();
    assert_eq!((slot.refusals, slot.retry_at_ms), (2, w.now_ms + 300_000));
}

#[test]
fn a_refusal_that_loses_races_is_retried_and_counted_once() {
    let mut w = World::new(UpstreamAuth::Basic);
    let (mut a, _) = two_in_flight(&mut w);
    tally::drain();
    for nth in 1..=3 {
        w.store.before_write(nth, Act::Lose);
    }
    assert_eq!(
        delivered(a.receive(vec![refused_guard()], &mut w.env("a"))),
        vec![refused()]
    );
    let slot = w.slot().unwrap();
    assert_eq!((slot.refusals, slot.step), (1, 1));
    assert_eq!(tally::drain(), vec![(Event::UpstreamRefusal, 1)]);
}

#[test]
fn a_refusal_that_cannot_be_recorded_is_counted_logged_and_still_refused() {
    let mut w = World::new(UpstreamAuth::Basic);
    let (mut a, _) = two_in_flight(&mut w);
    tally::drain();
    tally::drain_failures();
    for nth in 1..=CAS_ATTEMPTS {
        w.store.before_write(nth, Act::Lose);
    }
    assert_eq!(
        delivered(a.receive(vec![refused_guard()], &mut w.env("a"))),
        vec![refused()]
    );
    assert_eq!(w.slot().unwrap().refusals, 0, "nothing written");
    assert_eq!(tally::drain(), vec![(Event::CasGaveUp, 1)]);
    assert_eq!(
        tally::drain_failures(),
        vec!["could not record a refusal: every compare-and-swap attempt lost to other workers"]
    );
    assert!(a
        .take_notices()
        .iter()
        .any(|(l, m)| *l == log::Level::Warn && m.contains("not recorded")));
}

#[test]
fn a_stale_refusal_landing_after_an_acceptance_does_not_count() {
    let mut w = World::new(UpstreamAuth::Basic);
    let (mut a, _) = two_in_flight(&mut w);
    // Another request's check, sent after a's call, finds the credentials accepted and
    // records it inside a's compare-and-swap.
    let accept = SessionChange::AcceptBasic {
        account: "tag".into(),
    };
    w.store
        .before_write(1, Act::Land(vec![SharedIntent::Session(accept)]));
    a.receive(vec![refused_guard()], &mut w.env("a"));
    let slot = w.slot().unwrap();
    assert_eq!((slot.refusals, slot.basic_ok, slot.step), (0, true, 1));
}

/// A login answer with a session cookie of its own.
fn login_as(cookie: &str) -> Arrival {
    let mut arrival = login_ok();
    arrival.set_cookie = Some(format!("{cookie}; Max-Age=2000000; path=/; HttpOnly"));
    arrival
}

fn cookie_of(out: &Outbound) -> Option<&str> {
    out.headers
        .iter()
        .find(|(n, _)| *n == "cookie")
        .map(|(_, v)| v.as_str())
}

fn logins(w: &World) -> usize {
    w.store
        .applied
        .iter()
        .filter(|i| matches!(i, SharedIntent::Session(SessionChange::OpenSession { .. })))
        .count()
}

#[test]
fn two_requests_finding_no_session_log_in_once() {
    let mut w = World::new(UpstreamAuth::Session);
    let b = other(Gate::new());
    // b takes the login lock between a's read of the lock table and a's write.
    inside(&mut w, 1, &b, "b", |gate, env| {
        gate.send(vec![get("/b")], env)
    });
    let mut a = Gate::new();
    let next = a.send(vec![get("/a")], &mut w.env("a"));
    assert_eq!(sent(&next)[0].purpose, Purpose::Pause, "a waits");
    assert_eq!(sent(&took(&b))[0].purpose, Purpose::Login, "b logs in");
    assert_eq!(
        w.store.applied,
        vec![
            SharedIntent::ReadSession,
            SharedIntent::lock(LOGIN_LOCK, "a", w.now_ms, 6_000)
        ],
        "a's step, as values"
    );
    let next = b.borrow_mut().0.receive(vec![login_ok()], &mut w.env("b"));
    assert_eq!(cookie_of(&sent(&next)[0]), Some(COOKIE));
    let next = a.receive(vec![ok("")], &mut w.env("a"));
    let out = &sent(&next)[0];
    assert_eq!(
        (out.purpose, cookie_of(out)),
        (Purpose::Exchange, Some(COOKIE))
    );
    assert_eq!(logins(&w), 1);
}

/// A logged-in slot past its age: one request (b) is replacing it.
fn aged_and_replacing(w: &mut World) -> Other {
    logged_in(w);
    w.now_ms += 3_600_000;
    let b = other(Gate::new());
    let next = b.borrow_mut().0.send(vec![get("/b")], &mut w.env("b"));
    assert_eq!(sent(&next)[0].purpose, Purpose::Login);
    b
}

/// Drupal answers as anonymous and deletes the cookie: the session died.
fn ended() -> Arrival {
    Arrival {
        reply: DrupalReply::Answer {
            status: 200,
            body: b"{}".to_vec(),
        },
        set_cookie: Some(format!(
            "{}=deleted; Max-Age=0",
            &COOKIE[..COOKIE.len() - 4]
        )),
    }
}

const NEW: &str = "SESS12ca17b49af2289436f303e0166030a2=new";

#[test]
fn a_new_login_landing_inside_the_forgetting_of_the_old_session_is_kept() {
    let mut w = World::new(UpstreamAuth::Session);
    let b = aged_and_replacing(&mut w);
    // a keeps using the aged session while b logs in; Drupal has dropped it meanwhile.
    let mut a = Gate::new();
    let next = a.send(vec![get("/a")], &mut w.env("a"));
    assert_eq!(cookie_of(&sent(&next)[0]), Some(COOKIE));
    // a moves the epoch on (write 1), then forgets the dead cookie (write 2): b's new session
    // is stored between a's read and a's write of it.
    inside(&mut w, 2, &b, "b", |gate, env| {
        gate.receive(vec![login_as(NEW)], env)
    });
    let next = a.receive(vec![ended()], &mut w.env("a"));
    assert_eq!(w.store.pending(), 0);
    let out = &sent(&next)[0];
    assert_eq!(
        (out.purpose, cookie_of(out)),
        (Purpose::Exchange, Some(NEW)),
        "a replays with b's session: no second login, the new one not forgotten"
    );
    assert_eq!(w.slot().unwrap().cookie.as_deref(), Some(NEW));
    assert_eq!(logins(&w), 0, "only b's, applied inside a's step");
    assert_eq!(cookie_of(&sent(&took(&b))[0]), Some(NEW));
}

#[test]
fn a_dead_session_forgotten_inside_the_new_login_leaves_the_new_one() {
    let mut w = World::new(UpstreamAuth::Session);
    let b = aged_and_replacing(&mut w);
    let a = other(Gate::new());
    let next = a.borrow_mut().0.send(vec![get("/a")], &mut w.env("a"));
    assert_eq!(cookie_of(&sent(&next)[0]), Some(COOKIE));
    // a's whole step (epoch moved, old cookie forgotten, then a waits for b's login) lands
    // between b's read of the slot and b's write of the new session.
    inside(&mut w, 1, &a, "a", |gate, env| {
        gate.receive(vec![ended()], env)
    });
    let epoch_before = w.slot().unwrap().epoch;
    let next = b
        .borrow_mut()
        .0
        .receive(vec![login_as(NEW)], &mut w.env("b"));
    assert_eq!(cookie_of(&sent(&next)[0]), Some(NEW));
    assert_eq!(sent(&took(&a))[0].purpose, Purpose::Pause, "a waits for b");
    let slot = w.slot().unwrap();
    assert_eq!(slot.cookie.as_deref(), Some(NEW));
    assert!(
        slot.epoch > epoch_before,
        "a's epoch move is kept under b's write"
    );
    let next = a.borrow_mut().0.receive(vec![ok("")], &mut w.env("a"));
    assert_eq!(cookie_of(&sent(&next)[0]), Some(NEW), "then a uses it");
    assert_eq!(logins(&w), 1);
}

#[test]
fn a_login_that_never_answers_holds_the_others_until_its_lock_lapses() {
    let mut w = World::new(UpstreamAuth::Session);
    let mut a = Gate::new();
    assert_eq!(
        sent(&a.send(vec![get("/a")], &mut w.env("a")))[0].purpose,
        Purpose::Login
    );
    // a's VM dies: no answer, no abandon.
    let mut b = Gate::new();
    assert_eq!(
        sent(&b.send(vec![get("/b")], &mut w.env("b")))[0].purpose,
        Purpose::Pause
    );
    w.now_ms += 5_999;
    assert_eq!(
        sent(&b.receive(vec![ok("")], &mut w.env("b")))[0].purpose,
        Purpose::Pause
    );
    w.now_ms += 1;
    assert_eq!(
        sent(&b.receive(vec![ok("")], &mut w.env("b")))[0].purpose,
        Purpose::Login,
        "the lock lapsed: b logs in"
    );
}

#[test]
fn after_a_back_off_two_requests_racing_for_the_retry_send_one_check() {
    let mut w = World::new(UpstreamAuth::Basic);
    let (mut a, _) = two_in_flight(&mut w);
    a.receive(vec![refused_guard()], &mut w.env("a"));
    w.now_ms += 60_000;
    // The back-off just ended: b takes the trial lock between c's read of the table and c's
    // write; c finds it taken on the retry and waits for b's check instead of sending its own.
    let b = other(Gate::new());
    inside(&mut w, 1, &b, "b", |gate, env| {
        gate.send(vec![get("/b")], env)
    });
    let mut c = Gate::new();
    let next = c.send(vec![get("/c")], &mut w.env("c"));
    assert_eq!(sent(&next)[0].purpose, Purpose::Pause);
    let check = took(&b);
    assert_eq!(sent(&check)[0].purpose, Purpose::StatusCheck);
    // b's check is refused again: the second step, and c is answered by it without a call.
    let next = b.borrow_mut().0.receive(vec![forbidden()], &mut w.env("b"));
    assert_eq!(delivered(next), vec![refused()]);
    assert_eq!(
        delivered(c.receive(vec![ok("")], &mut w.env("c"))),
        vec![refused()]
    );
    let slot = w.slot().unwrap();
    assert_eq!((slot.refusals, slot.retry_at_ms), (2, w.now_ms + 300_000));
}
