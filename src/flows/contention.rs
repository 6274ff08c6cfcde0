//! The flows under contention: whole requests driven through `exchange::begin`/`resume` with
//! Drupal's replies given here, their lock takes applied to one `ContendedStore` (where other
//! workers land inside a compare-and-swap, or the host refuses a write, at chosen writes),
//! and the intents each step returns applied when the test says the host gets to them.
//! Deterministic: the interleaving is the order of the lines.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use crate::config::Config;
use crate::flows::exchange::{self, Exchange};
use crate::flows::flow::testing::{config, user};
use crate::flows::membership::user_lock_key;
use crate::flows::scope::LockScope;
use crate::http::{DrupalCall, DrupalReply, Request, Step};
use crate::runtime::contention::{Act, ContendedStore};
use crate::runtime::intents::{Outcome, SharedIntent, SharedPort};
use crate::runtime::lock_table::{ensure_table, LOCK_TABLE};
use crate::runtime::store::{Failure, SharedStore, CAS_ATTEMPTS};
use crate::runtime::tally::{self, Event};
use serde_json::{json, Value};

const TTL: u64 = 1000;
const ALICE: &str = "7724f730-7aca-4819-aaee-90673a0141a4";
const ENG: &str = "32a595e5-cfd9-4ce7-945f-9b04077da756";

/// Several workers' requests over one shared store.
struct Workers {
    config: Config,
    store: ContendedStore,
}

impl Workers {
    fn new(config: Config) -> Self {
        let mut store = ContendedStore::default();
        // As the host leaves it at start-up.
        ensure_table(&mut store.inner);
        crate::runtime::totals::ensure_table(&mut store.inner);
        Workers { config, store }
    }

    fn begin(&mut self, owner: &str, now_ms: u64, req: Request) -> (Exchange, Step) {
        let mut scope = LockScope::new(&mut self.store, now_ms, owner, TTL);
        exchange::begin(&self.config, &req, &mut scope).expect("a SCIM path")
    }

    fn resume(
        &mut self,
        ex: &mut Exchange,
        owner: &str,
        now_ms: u64,
        replies: Vec<DrupalReply>,
    ) -> Step {
        let mut scope = LockScope::new(&mut self.store, now_ms, owner, TTL);
        ex.resume(&self.config, replies, &mut scope)
    }

    /// The host's turn once a step is over: the intents it returned, applied.
    fn host_applies(&mut self, ex: &mut Exchange) -> Vec<Outcome> {
        ex.take_intents()
            .into_iter()
            .map(|intent| self.store.apply(intent))
            .collect()
    }

    /// The owners of the locks in the table, expired or not.
    fn owners(&self, key: &str) -> Vec<String> {
        let (bytes, _) = self.store.inner.get(LOCK_TABLE).unwrap();
        let table: Vec<(String, String, u64)> =
            serde_json::from_slice(&bytes.unwrap_or_default()).unwrap_or_default();
        table
            .into_iter()
            .filter(|(k, _, _)| k == key)
            .map(|(_, owner, _)| owner)
            .collect()
    }
}

fn req(method: &str, path: &str, body: &str) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        headers: vec![
            (":authority".into(), "gw.example:10000".into()),
            (":scheme".into(), "http".into()),
            ("authorization".into(), "Bearer secret".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

fn create(name: &str, mail: &str) -> Request {
    let body = json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": name,
        "emails": [{"value": mail}]});
    req("POST", "/scim/v2/Users", &body.to_string())
}

fn deactivate(id: &str) -> Request {
    let body = json!({"schemas": [crate::scim::patch::PATCH_OP_SCHEMA],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    req("PATCH", &format!("/scim/v2/Users/{id}"), &body.to_string())
}

fn calls(step: &Step) -> &[DrupalCall] {
    match step {
        Step::Call(c) => c,
        Step::Respond(r) => panic!(
            "expected calls, got {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ),
    }
}

fn status(step: &Step) -> u16 {
    match step {
        Step::Respond(r) => r.status,
        Step::Call(c) => panic!("expected an answer, got calls {c:?}"),
    }
}

/// The pause of a request waiting for a lock (no wait listener: a one-id count read).
fn is_pause(step: &Step) -> bool {
    matches!(step, Step::Call(c) if c.len() == 1
        && c[0].path.ends_with("page[offset]=0&page[limit]=1"))
}

fn answer(status: u16, body: Value) -> DrupalReply {
    DrupalReply::json(status, body)
}

fn page(rows: Vec<Value>) -> DrupalReply {
    answer(200, json!({"data": rows, "links": {"self": {"href": "x"}}}))
}

fn alice() -> Value {
    user(ALICE, 3, "alice")
}

#[test]
fn two_creates_of_one_name_one_takes_both_locks_the_other_waits_then_finds_it_taken() {
    let mut w = Workers::new(config());
    let (mut one, step) = w.begin("one", 1, create("racer", "r@x.org"));
    assert!(!is_pause(&step), "the first holds name and address");
    assert_eq!(w.owners("scim/user-name/racer"), ["one"]);
    assert_eq!(w.owners("scim/user-mail/r@x.org"), ["one"]);

    // Same name (other case), another address: all or none, so it holds neither.
    let (mut two, step) = w.begin("two", 2, create("Racer", "other@x.org"));
    assert!(is_pause(&step), "the second waits");
    assert!(w.owners("scim/user-mail/other@x.org").is_empty());

    // The first goes on and creates the user.
    let mut step = w.resume(&mut one, "one", 3, vec![page(vec![])]);
    let mut now = 3;
    while !matches!(step, Step::Respond(_)) {
        assert_eq!(calls(&step)[0].method, "POST");
        now += 1;
        let created = json!({"data": user(ALICE, 3, "racer")["data"].clone()});
        step = w.resume(&mut one, "one", now, vec![answer(201, created)]);
    }
    assert_eq!(status(&step), 201);
    // Its unlocks are returned with the answer: until the host applies them, the second
    // still waits.
    let step = w.resume(&mut two, "two", now + 1, vec![page(vec![])]);
    assert!(is_pause(&step));
    assert_eq!(
        w.host_applies(&mut one),
        [Outcome::Unlocked, Outcome::Unlocked]
    );
    // Then the second takes both and reads what its name could clash with (the same read
    // the first began with), and answers 409 from what Drupal holds now.
    let step = w.resume(&mut two, "two", now + 2, vec![page(vec![])]);
    assert!(!is_pause(&step) && calls(&step)[0].method == "GET");
    assert_eq!(w.owners("scim/user-mail/other@x.org"), ["two"]);
    let taken = user(ALICE, 3, "racer")["data"].clone();
    let step = w.resume(&mut two, "two", now + 3, vec![page(vec![taken])]);
    assert_eq!(status(&step), 409);
    w.host_applies(&mut two);
    assert!(w.owners("scim/user-name/racer").is_empty());
    assert!(w.owners("scim/user-mail/other@x.org").is_empty());
}

#[test]
fn a_create_whose_lock_write_races_anothers_sees_it_on_the_retry() {
    let mut w = Workers::new(config());
    // Just before the first's write of the table, the second's take lands: the first loses
    // its compare-and-swap, reads the table again, finds the name held, and waits.
    let theirs = SharedIntent::TryLockAll {
        keys: vec!["scim/user-name/racer".into()],
        owner: "two".into(),
        now_ms: 1,
        ttl_ms: TTL,
    };
    w.store.before_write(1, Act::Land(vec![theirs]));
    let (_one, step) = w.begin("one", 1, create("racer", "r@x.org"));
    assert!(is_pause(&step));
    assert_eq!(w.store.pending(), 0);
    assert_eq!(w.owners("scim/user-name/racer"), ["two"]);
    assert!(
        w.owners("scim/user-mail/r@x.org").is_empty(),
        "none of its locks held"
    );
}

#[test]
fn two_edits_of_one_user_go_one_after_the_other() {
    let mut w = Workers::new(config());
    let key = user_lock_key(ALICE);
    let (mut one, step) = w.begin("one", 1, deactivate(ALICE));
    assert_eq!(calls(&step)[0].method, "GET", "reads, holding the user");
    let (mut two, step) = w.begin("two", 2, deactivate(ALICE));
    assert!(is_pause(&step));
    let step = w.resume(&mut one, "one", 3, vec![answer(200, alice())]);
    assert_eq!(calls(&step)[0].method, "PATCH");
    let step = w.resume(&mut two, "two", 4, vec![page(vec![])]);
    assert!(is_pause(&step), "still waits while the write is out");
    let step = w.resume(&mut one, "one", 5, vec![answer(200, alice())]);
    assert_eq!(status(&step), 200);
    assert_eq!(w.owners(&key), ["one"], "released after the step");
    assert_eq!(w.host_applies(&mut one), [Outcome::Unlocked]);
    let step = w.resume(&mut two, "two", 6, vec![page(vec![])]);
    assert_eq!(calls(&step)[0].method, "GET");
    assert_eq!(w.owners(&key), ["two"]);
}

#[test]
fn an_edit_whose_lock_write_loses_its_races_retries_and_waits_only_when_all_are_lost() {
    tally::drain();
    tally::drain_failures();
    let mut w = Workers::new(config());
    let key = user_lock_key(ALICE);
    // Two writes lost (other workers moved the table on): the retries take the lock.
    w.store.before_write(1, Act::Lose);
    w.store.before_write(2, Act::Lose);
    let (mut one, step) = w.begin("one", 1, deactivate(ALICE));
    assert_eq!(calls(&step)[0].method, "GET");
    assert_eq!(w.owners(&key), ["one"]);
    let step = w.resume(&mut one, "one", 2, vec![answer(200, alice())]);
    let step = w.resume(&mut one, "one", 3, calls_answered(&step, alice()));
    assert_eq!(status(&step), 200);
    w.host_applies(&mut one);
    assert!(
        tally::drain().is_empty(),
        "a lost race retried is no failure"
    );

    // Every attempt lost: it holds nothing, so it does not read or write; it waits a round
    // and the give-up is counted.
    for nth in 1..=CAS_ATTEMPTS {
        w.store.before_write(nth, Act::Lose);
    }
    let (mut two, step) = w.begin("two", 10, deactivate(ALICE));
    assert!(is_pause(&step));
    assert!(w.owners(&key).is_empty());
    assert_eq!(
        tally::drain(),
        vec![(Event::LockWait, 1), (Event::CasGaveUp, 1)]
    );
    assert!(tally::drain_failures()[0].contains("every compare-and-swap attempt lost"));
    let step = w.resume(&mut two, "two", 11, vec![page(vec![])]);
    assert_eq!(calls(&step)[0].method, "GET", "the next round takes it");
    assert_eq!(w.owners(&key), ["two"]);
}

fn calls_answered(step: &Step, doc: Value) -> Vec<DrupalReply> {
    calls(step)
        .iter()
        .map(|_| answer(200, doc.clone()))
        .collect()
}

#[test]
fn a_release_that_fails_is_counted_and_the_lock_lapses_at_its_time_out() {
    let mut w = Workers::new(config());
    let key = user_lock_key(ALICE);
    let (mut one, _) = w.begin("one", 0, deactivate(ALICE));
    let step = w.resume(&mut one, "one", 1, vec![answer(200, alice())]);
    let step = w.resume(&mut one, "one", 2, calls_answered(&step, alice()));
    assert_eq!(status(&step), 200);
    tally::drain();
    tally::drain_failures();
    // The host's write of the unlock is refused.
    w.store.before_write(1, Act::Fail);
    assert_eq!(w.host_applies(&mut one), [Outcome::Failed(Failure::Store)]);
    assert_eq!(tally::drain(), vec![(Event::UnlockFailed, 1)]);
    let line = &tally::drain_failures()[0];
    assert!(line.contains(&format!("release the lock {key}")) && line.contains("refused"));
    // Left behind: another edit waits until the lock's time runs out (taken at 0), no longer.
    let (mut two, step) = w.begin("two", 3, deactivate(ALICE));
    assert!(is_pause(&step));
    let step = w.resume(&mut two, "two", TTL - 1, vec![page(vec![])]);
    assert!(is_pause(&step));
    let step = w.resume(&mut two, "two", TTL, vec![page(vec![])]);
    assert_eq!(calls(&step)[0].method, "GET");
    assert_eq!(w.owners(&key), ["two"]);
}

fn group_config() -> Config {
    let mut c = config();
    c.groups =
        crate::config::groups::GroupsConfig::from_config(Some(&json!({"concurrency": 4}))).unwrap();
    c
}

fn add_alice_to_eng() -> Request {
    let body = json!({"schemas": [crate::scim::patch::PATCH_OP_SCHEMA],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": ALICE}]}]});
    req(
        "PATCH",
        &format!("/scim/v2/Groups/{ENG}"),
        &body.to_string(),
    )
}

fn term() -> DrupalReply {
    answer(
        200,
        json!({"data": {"type": "taxonomy_term--scim_groups", "id": ENG,
        "attributes": {"name": "Engineering", "changed": "2026-11-28T11:51:50+00:00",
            "revision_created": "2026-11-28T11:51:50+00:00"},
        "relationships": {"vid": {"data": {"meta": {"drupal_internal__target_id": "scim_groups"}}}}}}),
    )
}

/// Alice's memberships as her confirming read returns them.
fn alice_in(terms: &[&str]) -> DrupalReply {
    let groups: Vec<Value> = terms.iter().map(|t| json!({"id": t})).collect();
    answer(
        200,
        json!({"data": {"id": ALICE, "relationships": {"field_scim_groups": {"data": groups},
            "roles": {"data": []}}}}),
    )
}

#[test]
fn a_membership_change_and_a_user_edit_share_the_user_lock() {
    let mut w = Workers::new(group_config());
    let key = user_lock_key(ALICE);
    // The edit holds Alice.
    let (mut edit, step) = w.begin("edit", 1, deactivate(ALICE));
    assert_eq!(calls(&step)[0].method, "GET");
    // The group change reads its group and checks its member, then waits for Alice.
    let (mut group, _) = w.begin("group", 2, add_alice_to_eng());
    let step = w.resume(&mut group, "group", 3, vec![term()]);
    assert!(calls(&step)[0].path.contains("[operator]=IN"));
    let step = w.resume(
        &mut group,
        "group",
        4,
        vec![page(vec![alice()["data"].clone()])],
    );
    // Alice is being edited: the job waits a round (its pause: a read of her memberships).
    let pause = &calls(&step)[0];
    assert_eq!(pause.method, "GET");
    assert!(pause
        .path
        .starts_with(&format!("/jsonapi/user/user/{ALICE}?")));
    assert_eq!(w.owners(&key), ["edit"]);
    // The edit answers; once the host releases its lock, the group change writes.
    let step = w.resume(&mut edit, "edit", 5, vec![answer(200, alice())]);
    let step = w.resume(&mut edit, "edit", 6, calls_answered(&step, alice()));
    assert_eq!(status(&step), 200);
    w.host_applies(&mut edit);
    let step = w.resume(&mut group, "group", 7, vec![answer(200, alice())]);
    let write = &calls(&step)[0];
    assert_eq!(write.method, "POST");
    assert!(write
        .path
        .ends_with(&format!("{ALICE}/relationships/field_scim_groups")));
    assert_eq!(w.owners(&key), ["group"]);
    // Now the edit of Alice waits for the group change, until its job is done and released.
    let (mut again, step) = w.begin("again", 8, deactivate(ALICE));
    assert!(is_pause(&step));
    let step = w.resume(&mut group, "group", 9, vec![answer(204, Value::Null)]);
    assert_eq!(calls(&step)[0].method, "GET", "the confirming read");
    let step = w.resume(&mut group, "group", 10, vec![alice_in(&[ENG])]);
    assert_eq!(status(&step), 204);
    let step = w.resume(&mut again, "again", 11, vec![page(vec![])]);
    assert!(
        is_pause(&step),
        "the job's unlock is returned with the step"
    );
    assert_eq!(w.host_applies(&mut group), [Outcome::Unlocked]);
    let step = w.resume(&mut again, "again", 12, vec![page(vec![])]);
    assert_eq!(calls(&step)[0].method, "GET");
}

/// A directory of `n` users answering every list read by its `page[offset]` and `page[limit]`.
fn directory(n: usize, step: &Step) -> Vec<DrupalReply> {
    calls(step)
        .iter()
        .map(|call| {
            let param = |name: &str| -> usize {
                let at = call.path.find(name).unwrap() + name.len();
                let rest = &call.path[at..];
                let end = rest.find('&').unwrap_or(rest.len());
                rest[..end].parse().unwrap()
            };
            let (offset, limit) = (param("page[offset]="), param("page[limit]="));
            let end = (offset + limit).min(n);
            let rows: Vec<Value> = (offset..end.max(offset))
                .map(|i| user(&format!("u{i}"), i as u64 + 10, &format!("user{i}"))["data"].clone())
                .collect();
            let mut links = json!({"self": {"href": "x"}});
            if end < n {
                links["next"] = json!({"href": "x"});
            }
            answer(200, json!({"data": rows, "links": links}))
        })
        .collect()
}

/// Runs a list to its answer over a directory of `n`: the intents it returned, and the
/// number of Drupal reads it took.
fn list(w: &mut Workers, owner: &str, path: &str, n: usize) -> (Exchange, usize) {
    let (mut ex, mut step) = w.begin(owner, 1, req("GET", path, ""));
    let mut reads = 0;
    while let Step::Call(c) = &step {
        reads += c.len();
        let replies = directory(n, &step);
        step = w.resume(&mut ex, owner, 2, replies);
    }
    assert_eq!(status(&step), 200);
    (ex, reads)
}

#[test]
fn totals_remembered_by_two_lists_at_once_are_both_kept_and_used() {
    let mut w = Workers::new(config());
    let all = "/scim/v2/Users?startIndex=101&count=10";
    let active = "/scim/v2/Users?startIndex=101&count=10&filter=active+eq+true";
    let (mut one, cold) = list(&mut w, "one", all, 1000);
    let (mut two, _) = list(&mut w, "two", active, 1000);
    let remembers = |ex: &mut Exchange| {
        let intents = ex.take_intents();
        assert!(
            matches!(
                intents.as_slice(),
                [SharedIntent::RememberTotal { total: 1000, .. }]
            ),
            "{intents:?}"
        );
        intents
    };
    let (mine, theirs) = (remembers(&mut one), remembers(&mut two));
    let queries: Vec<String> = [&mine[0], &theirs[0]]
        .iter()
        .map(|i| match i {
            SharedIntent::RememberTotal { query, .. } => query.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_ne!(queries[0], queries[1]);
    // Nothing is remembered until the host applies what the lists returned.
    assert!(!w
        .store
        .applied
        .iter()
        .any(|i| matches!(i, SharedIntent::RememberTotal { .. })));
    // The second's total lands inside the first's compare-and-swap: both are kept.
    w.store.before_write(1, Act::Land(theirs));
    assert_eq!(w.store.apply(mine[0].clone()), Outcome::Remembered);
    for query in queries {
        let look = SharedIntent::LookUpTotal {
            query: query.clone(),
        };
        assert_eq!(w.store.apply(look), Outcome::Total(Some(1000)), "{query}");
    }
    // The next page of either list checks the remembered total instead of probing for it.
    let (_, warm) = list(&mut w, "three", all, 1000);
    assert!(
        warm < cold,
        "{warm} reads with the total remembered, {cold} without"
    );
}
