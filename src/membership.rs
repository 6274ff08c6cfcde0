//! Changing group memberships, one user at a time, without ever losing one. Drupal stores a
//! user's memberships as one list that every relationship write loads and saves whole, so
//! concurrent writes to one user silently overwrite each other. Each change here therefore
//! holds a per-user lock (shared by every Envoy worker), writes a delta, reads the user back
//! to confirm it, retries what was lost, repairs references to deleted groups, and keeps the
//! roles that groups grant in step. Up to `concurrency` users are changed at once.

use crate::drupal::map_failure;
use crate::group::{parse_memberships, GroupCalls, GroupsConfig, Memberships};
use crate::http::{DrupalCall, DrupalReply};
use serde_json::Value;
use std::collections::VecDeque;

/// Per-key locks shared by all requests (in Envoy: proxy-wasm shared data).
pub trait Locks {
    /// Takes `key` for `owner` until `now_ms + ttl_ms`, unless another owner holds it and
    /// its time has not run out. True when `owner` holds it afterwards.
    fn try_lock(&mut self, key: &str, owner: &str, now_ms: u64, ttl_ms: u64) -> bool;
    fn unlock(&mut self, key: &str, owner: &str);
}

/// Locks in memory, for one VM and for tests.
#[derive(Debug, Default)]
pub struct MemoryLocks {
    held: Vec<(String, String, u64)>,
}

impl Locks for MemoryLocks {
    fn try_lock(&mut self, key: &str, owner: &str, now_ms: u64, ttl_ms: u64) -> bool {
        self.held.retain(|(_, _, until)| *until > now_ms);
        if let Some(h) = self.held.iter_mut().find(|(k, _, _)| k == key) {
            if h.1 != owner {
                return false;
            }
            h.2 = now_ms.saturating_add(ttl_ms);
            return true;
        }
        self.held.push((
            key.to_string(),
            owner.to_string(),
            now_ms.saturating_add(ttl_ms),
        ));
        true
    }

    fn unlock(&mut self, key: &str, owner: &str) {
        self.held.retain(|(k, o, _)| !(k == key && o == owner));
    }
}

/// What a request may use besides Drupal's replies.
pub struct Env<'a> {
    pub locks: &'a mut dyn Locks,
    pub now_ms: u64,
    /// Unique per request: who holds a lock.
    pub owner: &'a str,
    /// How long a lock is held at most (a crashed VM's locks run out).
    pub lock_ttl_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
    /// No membership change: bring the user's granted roles in line (after a rename), and
    /// repair references to deleted groups.
    Sync,
}

/// Rounds a job waits for a lock at most, whatever the clock says (a safety net: the real
/// limit is the lock time-out).
const MAX_WAITS: u32 = 10_000;
/// Writes of one change that Drupal lost (or refused) before giving up.
const MAX_ATTEMPTS: u32 = 3;

pub fn user_lock_key(user: &str) -> String {
    format!("scim/user/{user}")
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// The lock is someone else's: the outstanding call is a read, to wait a round trip.
    Waiting,
    /// The delta write is outstanding.
    Writing,
    /// A read to repair references to deleted groups is outstanding.
    RepairRead,
    /// The repairing list replacement is outstanding.
    Repairing,
    /// The confirming read is outstanding.
    Verifying,
    /// Role writes are outstanding (adds first, then removals).
    Roles { removals: Vec<String> },
}

#[derive(Debug)]
struct Job {
    user: String,
    change: Change,
    phase: Phase,
    waits: u32,
    /// When the job started waiting for the lock.
    waiting_since: Option<u64>,
    attempts: u32,
    locked: bool,
    /// A call already decided (a repair or a role write), sent in the next round.
    outgoing: Option<DrupalCall>,
}

/// The outcome for one user.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// The user does not exist (any more).
    NoSuchUser,
    /// The group's term was deleted (by a concurrent request) before this user was added.
    NoSuchGroup,
    Failed(String),
}

/// Drupal's answer to a relationship write naming a term that does not exist.
fn names_missing_target(doc: &Value) -> bool {
    doc.pointer("/errors/0/detail")
        .and_then(Value::as_str)
        .is_some_and(|d| d.starts_with("The targeted ") && d.ends_with("does not exist."))
}

/// Applies one group's membership changes to many users.
#[derive(Debug)]
pub struct Batch {
    term: String,
    pending: VecDeque<(String, Change)>,
    active: Vec<Job>,
    pub results: Vec<(String, Change, Outcome)>,
    /// Role machine name → uuid, when role grants are configured.
    roles: Vec<(String, String)>,
}

impl Batch {
    pub fn new(term: &str, changes: Vec<(String, Change)>, roles: Vec<(String, String)>) -> Self {
        Batch {
            term: term.to_string(),
            pending: changes.into(),
            active: Vec::new(),
            results: Vec::new(),
            roles,
        }
    }

    /// The role table, once read (role grants need role uuids).
    pub fn set_roles(&mut self, roles: Vec<(String, String)>) {
        self.roles = roles;
    }

    /// Releases the locks of unfinished jobs (the request ends early).
    pub fn release_all(&mut self, env: &mut Env) {
        for job in self.active.drain(..) {
            if job.locked {
                env.locks.unlock(&user_lock_key(&job.user), env.owner);
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.pending.is_empty() && self.active.is_empty()
    }

    /// Starts jobs up to the concurrency limit and returns one call per active job.
    pub fn next_calls(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut Env,
    ) -> Vec<DrupalCall> {
        while self.active.len() < groups.concurrency {
            let Some((user, change)) = self.pending.pop_front() else {
                break;
            };
            self.active.push(Job {
                user,
                change,
                phase: Phase::Waiting,
                waits: 0,
                waiting_since: None,
                attempts: 0,
                locked: false,
                outgoing: None,
            });
        }
        let mut out = Vec::with_capacity(self.active.len());
        let term = self.term.clone();
        for job in &mut self.active {
            if let Some(call) = job.outgoing.take() {
                out.push(call);
                continue;
            }
            if job.phase == Phase::Waiting {
                if env.locks.try_lock(
                    &user_lock_key(&job.user),
                    env.owner,
                    env.now_ms,
                    env.lock_ttl_ms,
                ) {
                    job.locked = true;
                    job.phase = if job.change == Change::Sync {
                        Phase::Verifying
                    } else {
                        Phase::Writing
                    };
                } else {
                    job.waits = job.waits.saturating_add(1);
                    let since = *job.waiting_since.get_or_insert(env.now_ms);
                    if env.now_ms.saturating_sub(since) > env.lock_ttl_ms {
                        // Longer than any lock can be held: give up (reported per user).
                        job.waits = MAX_WAITS.saturating_add(1);
                    }
                }
            }
            out.push(match &job.phase {
                Phase::Waiting => calls.pause(calls.user_memberships(&job.user)),
                Phase::RepairRead | Phase::Verifying => calls.user_memberships(&job.user),
                Phase::Writing => match job.change {
                    Change::Add => calls.add_membership(&job.user, &term),
                    Change::Remove => calls.remove_membership(&job.user, &term),
                    Change::Sync => calls.user_memberships(&job.user),
                },
                // These phases always come with their call decided (`outgoing`).
                Phase::Repairing | Phase::Roles { .. } => calls.user_memberships(&job.user),
            });
        }
        out
    }

    /// Feeds the replies to the calls of `next_calls` (same order).
    pub fn on_replies(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut Env,
        replies: &[DrupalReply],
    ) {
        let jobs = std::mem::take(&mut self.active);
        for (mut job, reply) in jobs.into_iter().zip(
            replies
                .iter()
                .chain(std::iter::repeat(&DrupalReply::Failed)),
        ) {
            match self.advance(&mut job, groups, calls, reply) {
                Step::Continue => self.active.push(job),
                Step::Send(call) => {
                    job.outgoing = Some(call);
                    self.active.push(job);
                }
                Step::Finish(outcome) => {
                    if job.locked {
                        env.locks.unlock(&user_lock_key(&job.user), env.owner);
                    }
                    self.results.push((job.user, job.change, outcome));
                }
            }
        }
    }

    fn advance(
        &self,
        job: &mut Job,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        reply: &DrupalReply,
    ) -> Step {
        let status = match reply {
            DrupalReply::Answer { status, .. } => *status,
            DrupalReply::Failed => 0,
        };
        let doc = || match reply {
            DrupalReply::Answer { body, .. } => {
                serde_json::from_slice::<Value>(body).unwrap_or(Value::Null)
            }
            DrupalReply::Failed => Value::Null,
        };
        if status == 404 {
            // The user is gone: nothing to remove, nothing to add to.
            return Step::Finish(match job.change {
                Change::Remove | Change::Sync => Outcome::Done,
                Change::Add => Outcome::NoSuchUser,
            });
        }
        match job.phase.clone() {
            Phase::Waiting => {
                if job.waits > MAX_WAITS {
                    return Step::Finish(Outcome::Failed(
                        "another request kept changing this user's memberships".into(),
                    ));
                }
                Step::Continue
            }
            Phase::Writing => match status {
                200 | 204 => {
                    job.phase = Phase::Verifying;
                    Step::Continue
                }
                422 => {
                    // Usually a reference to a deleted group, which fails every delta write.
                    job.phase = Phase::RepairRead;
                    Step::Continue
                }
                // "The targeted `taxonomy_term--…` resource with ID `…` does not exist."
                400 if job.change == Change::Add && names_missing_target(&doc()) => {
                    Step::Finish(Outcome::NoSuchGroup)
                }
                _ => Step::Finish(Outcome::Failed(map_failure(reply).detail)),
            },
            Phase::RepairRead => {
                if status != 200 {
                    return Step::Finish(Outcome::Failed(map_failure(reply).detail));
                }
                let m = parse_memberships(&doc(), &groups.membership_field);
                let wanted = self.wanted(&m, job.change);
                job.phase = Phase::Repairing;
                job.attempts = job.attempts.saturating_add(1);
                Step::Send(calls.replace_memberships(&job.user, &wanted))
            }
            Phase::Repairing => match status {
                200 | 204 => {
                    job.phase = Phase::Verifying;
                    Step::Continue
                }
                400 if job.change == Change::Add && names_missing_target(&doc()) => {
                    Step::Finish(Outcome::NoSuchGroup)
                }
                _ => Step::Finish(Outcome::Failed(map_failure(reply).detail)),
            },
            Phase::Verifying => {
                if status != 200 {
                    return Step::Finish(Outcome::Failed(map_failure(reply).detail));
                }
                let m = parse_memberships(&doc(), &groups.membership_field);
                let present = m.terms.contains(&self.term);
                let applied = match job.change {
                    Change::Add => present,
                    Change::Remove => !present,
                    Change::Sync => true,
                };
                if !applied || m.dangling {
                    job.attempts = job.attempts.saturating_add(1);
                    if job.attempts > MAX_ATTEMPTS {
                        return Step::Finish(Outcome::Failed(
                            "Drupal did not keep the membership change".into(),
                        ));
                    }
                    if m.dangling {
                        // Never leave a reference to a deleted group behind.
                        job.phase = Phase::Repairing;
                        return Step::Send(
                            calls.replace_memberships(&job.user, &self.wanted(&m, job.change)),
                        );
                    }
                    // Lost to a concurrent write outside this Envoy: write again.
                    job.phase = Phase::Writing;
                    return Step::Send(match job.change {
                        Change::Add => calls.add_membership(&job.user, &self.term),
                        Change::Remove => calls.remove_membership(&job.user, &self.term),
                        Change::Sync => calls.user_memberships(&job.user),
                    });
                }
                self.roles_step(job, groups, calls, &m)
            }
            Phase::Roles { removals } => {
                if !matches!(status, 200 | 204) {
                    return Step::Finish(Outcome::Failed(map_failure(reply).detail));
                }
                if removals.is_empty() {
                    return Step::Finish(Outcome::Done);
                }
                job.phase = Phase::Roles {
                    removals: Vec::new(),
                };
                Step::Send(calls.remove_roles(&job.user, &removals))
            }
        }
    }

    /// The user's list with this change applied and deleted groups dropped.
    fn wanted(&self, m: &Memberships, change: Change) -> Vec<String> {
        match change {
            Change::Sync => m.terms.clone(),
            Change::Add | Change::Remove => {
                let mut terms: Vec<String> = m
                    .terms
                    .iter()
                    .filter(|t| **t != self.term)
                    .cloned()
                    .collect();
                if change == Change::Add {
                    terms.push(self.term.clone());
                }
                terms
            }
        }
    }

    /// Members hold the roles their groups grant; a managed role no group grants goes.
    fn roles_step(
        &self,
        job: &mut Job,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        m: &Memberships,
    ) -> Step {
        if groups.role_grants.is_empty() {
            return Step::Finish(Outcome::Done);
        }
        let names = m.group_names();
        let granted = groups.granted_roles(&names);
        let held = |r: &str| m.roles.iter().any(|(n, _)| n == r);
        let to_add: Vec<String> = granted
            .iter()
            .filter(|r| !held(r))
            .filter_map(|r| {
                self.roles
                    .iter()
                    .find(|(n, _)| n == *r)
                    .map(|(_, id)| id.clone())
            })
            .collect();
        let to_remove: Vec<String> = groups
            .managed_roles()
            .into_iter()
            .filter(|r| !granted.contains(r))
            .filter_map(|r| {
                m.roles
                    .iter()
                    .find(|(n, _)| n == r)
                    .map(|(_, id)| id.clone())
            })
            .collect();
        match (to_add.is_empty(), to_remove.is_empty()) {
            (true, true) => Step::Finish(Outcome::Done),
            (false, _) => {
                job.phase = Phase::Roles {
                    removals: to_remove,
                };
                Step::Send(calls.add_roles(&job.user, &to_add))
            }
            (true, false) => {
                job.phase = Phase::Roles {
                    removals: Vec::new(),
                };
                Step::Send(calls.remove_roles(&job.user, &to_remove))
            }
        }
    }
}

enum Step {
    /// The job's next call is made by `next_calls`.
    Continue,
    /// The job's next call, to be sent now.
    Send(DrupalCall),
    Finish(Outcome),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn groups(role_grants: Value) -> GroupsConfig {
        GroupsConfig::from_config(Some(&json!({"concurrency": 2, "role_grants": role_grants})))
            .unwrap()
            .unwrap()
    }

    fn ans(status: u16, body: Value) -> DrupalReply {
        DrupalReply::json(status, body)
    }

    fn memberships(terms: &[&str], roles: &[(&str, &str)]) -> DrupalReply {
        ans(
            200,
            json!({"data": {"relationships": {
            "field_scim_groups": {"data": terms.iter().map(|t| json!({"type": "taxonomy_term--scim_groups", "id": t})).collect::<Vec<_>>()},
            "roles": {"data": roles.iter().map(|(n, id)| json!({"id": id, "meta": {"drupal_internal__target_id": n}})).collect::<Vec<_>>()}}},
            "included": terms.iter().map(|t| json!({"id": t, "attributes": {"name": if *t == "eng" { "Engineering" } else { "Other" }}})).collect::<Vec<_>>()}),
        )
    }

    struct Rig {
        locks: MemoryLocks,
        cfg: GroupsConfig,
    }

    impl Rig {
        fn env<'a>(locks: &'a mut MemoryLocks, owner: &'a str) -> Env<'a> {
            Env {
                locks,
                now_ms: 1000,
                owner,
                lock_ttl_ms: 10_000,
            }
        }
    }

    #[test]
    fn adds_are_written_then_confirmed_and_lost_ones_retried() {
        let mut rig = Rig {
            locks: MemoryLocks::default(),
            cfg: groups(json!({})),
        };
        let calls = GroupCalls {
            jsonapi: "/jsonapi",
            groups: &rig.cfg,
            can_wait: false,
        };
        let mut b = Batch::new("eng", vec![("u1".into(), Change::Add)], vec![]);
        let mut env = Rig::env(&mut rig.locks, "req1");
        let c = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(
            (c[0].method, c[0].path.as_str()),
            (
                "POST",
                "/jsonapi/user/user/u1/relationships/field_scim_groups"
            )
        );
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(204, Value::Null)]);
        let c = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(c[0].method, "GET");
        // Drupal lost it (a concurrent save): written again.
        b.on_replies(&rig.cfg, &calls, &mut env, &[memberships(&["other"], &[])]);
        let again = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(again[0].method, "POST");
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(204, Value::Null)]);
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(
            &rig.cfg,
            &calls,
            &mut env,
            &[memberships(&["other", "eng"], &[])],
        );
        assert!(b.is_finished());
        assert_eq!(b.results, [("u1".into(), Change::Add, Outcome::Done)]);
        assert!(rig.locks.held.is_empty(), "the lock is released");
    }

    #[test]
    fn a_locked_user_waits_and_the_concurrency_limit_holds() {
        let mut rig = Rig {
            locks: MemoryLocks::default(),
            cfg: groups(json!({})),
        };
        assert!(rig
            .locks
            .try_lock(&user_lock_key("u1"), "other-request", 1000, 10_000));
        let calls = GroupCalls {
            jsonapi: "/jsonapi",
            groups: &rig.cfg,
            can_wait: false,
        };
        let mut b = Batch::new(
            "eng",
            vec![
                ("u1".into(), Change::Add),
                ("u2".into(), Change::Add),
                ("u3".into(), Change::Add),
            ],
            vec![],
        );
        let mut env = Rig::env(&mut rig.locks, "req1");
        let c = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(c.len(), 2, "at most `concurrency` users at once");
        assert_eq!(
            (c[0].method, c[1].method),
            ("GET", "POST"),
            "u1 waits, u2 writes"
        );
    }

    #[test]
    fn an_add_to_a_deleted_group_reports_the_group_gone() {
        let mut rig = Rig {
            locks: MemoryLocks::default(),
            cfg: groups(json!({})),
        };
        let calls = GroupCalls {
            jsonapi: "/jsonapi",
            groups: &rig.cfg,
            can_wait: false,
        };
        let mut b = Batch::new("eng", vec![("u1".into(), Change::Add)], vec![]);
        let mut env = Rig::env(&mut rig.locks, "req1");
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(400, json!({"errors": [{"detail": "The targeted `taxonomy_term--scim_groups` resource with ID `eng` does not exist."}]}))]);
        assert!(b.is_finished());
        assert_eq!(b.results[0].2, Outcome::NoSuchGroup);
    }

    #[test]
    fn dangling_references_are_repaired() {
        let mut rig = Rig {
            locks: MemoryLocks::default(),
            cfg: groups(json!({})),
        };
        let calls = GroupCalls {
            jsonapi: "/jsonapi",
            groups: &rig.cfg,
            can_wait: false,
        };
        let mut b = Batch::new("eng", vec![("u1".into(), Change::Add)], vec![]);
        let mut env = Rig::env(&mut rig.locks, "req1");
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(422, json!({"errors": [{"detail": "field_scim_groups.0.target_id: The referenced entity (taxonomy_term: 8) does not exist."}]}))]);
        b.next_calls(&rig.cfg, &calls, &mut env);
        let dangling = ans(
            200,
            json!({"data": {"relationships": {"field_scim_groups": {"data": [{"id": "missing"}, {"id": "ops"}]}}}}),
        );
        b.on_replies(&rig.cfg, &calls, &mut env, &[dangling]);
        let fix = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(fix[0].method, "PATCH");
        let body: Value = serde_json::from_slice(fix[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body["data"],
            json!([{"type": "taxonomy_term--scim_groups", "id": "ops"}, {"type": "taxonomy_term--scim_groups", "id": "eng"}])
        );
    }

    #[test]
    fn roles_follow_groups_and_unmanaged_roles_are_never_touched() {
        let mut rig = Rig {
            locks: MemoryLocks::default(),
            cfg: groups(json!({"Engineering": ["developer"]})),
        };
        let calls = GroupCalls {
            jsonapi: "/jsonapi",
            groups: &rig.cfg,
            can_wait: false,
        };
        let roles = vec![("developer".to_string(), "r-dev".to_string())];
        let mut b = Batch::new("eng", vec![("u1".into(), Change::Add)], roles.clone());
        let mut env = Rig::env(&mut rig.locks, "req1");
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(204, Value::Null)]);
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(
            &rig.cfg,
            &calls,
            &mut env,
            &[memberships(&["eng"], &[("editor", "r-ed")])],
        );
        let add = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(
            (add[0].method, add[0].path.as_str()),
            ("POST", "/jsonapi/user/user/u1/relationships/roles")
        );
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(204, Value::Null)]);
        assert_eq!(b.results[0].2, Outcome::Done);

        // Leaving the group removes the role it granted, and leaves `editor` alone.
        let mut b = Batch::new("eng", vec![("u1".into(), Change::Remove)], roles);
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(204, Value::Null)]);
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(
            &rig.cfg,
            &calls,
            &mut env,
            &[memberships(
                &[],
                &[("editor", "r-ed"), ("developer", "r-dev")],
            )],
        );
        let rm = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(rm[0].method, "DELETE");
        let body: Value = serde_json::from_slice(rm[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body["data"],
            json!([{"type": "user_role--user_role", "id": "r-dev"}])
        );
    }

    #[test]
    fn a_missing_user_is_reported_for_adds_and_fine_for_removals() {
        let mut rig = Rig {
            locks: MemoryLocks::default(),
            cfg: groups(json!({})),
        };
        let calls = GroupCalls {
            jsonapi: "/jsonapi",
            groups: &rig.cfg,
            can_wait: false,
        };
        let mut b = Batch::new(
            "eng",
            vec![("u1".into(), Change::Add), ("u2".into(), Change::Remove)],
            vec![],
        );
        let mut env = Rig::env(&mut rig.locks, "req1");
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(
            &rig.cfg,
            &calls,
            &mut env,
            &[ans(404, json!({})), ans(404, json!({}))],
        );
        assert_eq!(b.results[0].2, Outcome::NoSuchUser);
        assert_eq!(b.results[1].2, Outcome::Done);
    }
}
