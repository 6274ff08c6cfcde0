//! Changing group memberships, one user at a time, without ever losing one. Drupal stores a
//! user's memberships as one list that every relationship write loads and saves whole, so
//! concurrent writes to one user silently overwrite each other. Each change here therefore
//! holds a per-user lock (shared by every Envoy worker), writes a delta, reads the user back
//! to confirm it, retries what was lost, repairs references to deleted groups, and keeps the
//! roles that groups grant in step. Up to `concurrency` users are written at once; the
//! confirming reads of a round are one collection read per 50 users, and users waiting for
//! theirs do not hold a write slot.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{parse_memberships, GroupCalls, Memberships};
use crate::drupal::jsonapi::{map_failure, DRUPAL_PAGE_MAX};
use crate::flows::scope::LockScope;
use crate::http::{DrupalCall, DrupalReply};
use crate::runtime::intents::SharedIntent;
use serde_json::Value;
use std::collections::VecDeque;

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
const MAX_LOCK_WAITS: u32 = 10_000;
/// Writes of one change that Drupal lost (or refused) before giving up.
const MAX_WRITE_ATTEMPTS: u32 = 3;

pub fn user_lock_key(user: &str) -> String {
    format!("scim/user/{user}")
}

#[derive(Debug, Clone, PartialEq)]
enum JobPhase {
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
    phase: JobPhase,
    waits: u32,
    /// When the job started waiting for the lock.
    waiting_since: Option<u64>,
    attempts: u32,
    locked: bool,
    /// A call already decided (a repair or a role write), sent in the next round.
    outgoing: Option<DrupalCall>,
    /// The group's term was deleted under an add: the user's reference to it is dropped,
    /// then the add reports `NoSuchGroup`.
    group_gone: bool,
}

/// The outcome for one user.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberOutcome {
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
    pub results: Vec<(String, Change, MemberOutcome)>,
    /// Role machine name → uuid, when role grants are configured.
    roles: Vec<(String, String)>,
    /// Which call of the last round answers each active job.
    reply_sources: Vec<ReplySource>,
}

/// Where a job's reply comes from.
#[derive(Debug, Clone, Copy)]
enum ReplySource {
    /// Its own call, at this position.
    Own(usize),
    /// A collection read of several users' memberships, at this position.
    Shared(usize),
}

impl Batch {
    pub fn new(term: &str, changes: Vec<(String, Change)>, roles: Vec<(String, String)>) -> Self {
        Batch {
            term: term.to_string(),
            pending: changes.into(),
            active: Vec::new(),
            results: Vec::new(),
            roles,
            reply_sources: Vec::new(),
        }
    }

    /// The role table, once read (role grants need role uuids).
    pub fn set_roles(&mut self, roles: Vec<(String, String)>) {
        self.roles = roles;
    }

    /// Releases the locks of unfinished jobs (the request ends early).
    pub fn release_all(&mut self, env: &LockScope) -> Vec<SharedIntent> {
        self.active
            .drain(..)
            .filter(|job| job.locked)
            .map(|job| env.unlock(&user_lock_key(&job.user)))
            .collect()
    }

    /// Releases the locks of unfinished jobs when the request ends with their calls in
    /// flight: a job whose write is out keeps its lock `write_grace_ms` more (the write can
    /// still land, and a concurrent write would then lose one of them); the others at once.
    pub fn release_mid_flight(
        &mut self,
        env: &LockScope,
        write_grace_ms: u64,
    ) -> Vec<SharedIntent> {
        self.active
            .drain(..)
            .filter(|job| job.locked)
            .map(|job| {
                let key = user_lock_key(&job.user);
                if job.writing() {
                    env.keep_for(&key, write_grace_ms)
                } else {
                    env.unlock(&key)
                }
            })
            .collect()
    }

    /// Takes the users' changes out of a batch that has not started them; returns them.
    pub fn drop_pending(&mut self, users: &[String]) -> Vec<(String, Change)> {
        let (dropped, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(u, _)| users.contains(u));
        self.pending = kept.into();
        dropped
    }

    pub fn is_finished(&self) -> bool {
        self.pending.is_empty() && self.active.is_empty()
    }

    /// Starts jobs up to the concurrency limit and returns this round's calls: one per active
    /// job, except that confirming reads are shared (one per 50 users).
    pub fn next_calls(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
    ) -> Vec<DrupalCall> {
        self.start_jobs(groups.concurrency);
        let mut out = Vec::with_capacity(self.active.len());
        let mut sources = Vec::with_capacity(self.active.len());
        let mut shared = SharedReads::of(&self.active);
        let term = self.term.clone();
        for job in &mut self.active {
            if shared.gathered && job.confirming() {
                sources.push(ReplySource::Shared(shared.call_for_next(calls, &mut out)));
                continue;
            }
            sources.push(ReplySource::Own(out.len()));
            if let Some(call) = job.outgoing.take() {
                out.push(call);
                continue;
            }
            if job.phase == JobPhase::Waiting {
                job.try_lock(env);
            }
            out.push(job.call(calls, &term));
        }
        self.reply_sources = sources;
        out
    }

    /// Starts pending jobs while fewer than `concurrency` write: a job waiting for its
    /// confirming read does not count against the limit (the read is shared), but no more
    /// than twice the limit are active, whatever happens.
    fn start_jobs(&mut self, concurrency: usize) {
        let writing = |active: &[Job]| active.iter().filter(|j| !j.confirming()).count();
        while writing(&self.active) < concurrency
            && self.active.len() < concurrency.saturating_mul(2)
        {
            let Some((user, change)) = self.pending.pop_front() else {
                break;
            };
            self.active.push(Job {
                user,
                change,
                phase: JobPhase::Waiting,
                waits: 0,
                waiting_since: None,
                attempts: 0,
                locked: false,
                outgoing: None,
                group_gone: false,
            });
        }
    }

    /// Feeds the replies to the calls of `next_calls` (same order).
    pub fn on_replies(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
        replies: &[DrupalReply],
    ) {
        let jobs = std::mem::take(&mut self.active);
        let sources = std::mem::take(&mut self.reply_sources);
        // Each shared read, parsed once.
        let mut parsed: Vec<(usize, Option<Value>)> = Vec::new();
        for (position, mut job) in jobs.into_iter().enumerate() {
            let source = sources
                .get(position)
                .copied()
                .unwrap_or(ReplySource::Own(usize::MAX));
            let own;
            let reply = match source {
                ReplySource::Own(i) => replies.get(i).unwrap_or(&DrupalReply::Failed),
                ReplySource::Shared(i) => {
                    let reply = replies.get(i).unwrap_or(&DrupalReply::Failed);
                    let doc = match parsed.iter().find(|(at, _)| *at == i) {
                        Some((_, doc)) => doc.as_ref(),
                        None => {
                            parsed.push((i, parse_ok(reply)));
                            parsed.last().and_then(|(_, doc)| doc.as_ref())
                        }
                    };
                    own = match doc {
                        Some(doc) => one_user(doc, &job.user),
                        None => reply.clone(),
                    };
                    &own
                }
            };
            match self.advance(&mut job, groups, calls, reply) {
                JobStep::Continue => self.active.push(job),
                JobStep::Send(call) => {
                    job.outgoing = Some(call);
                    self.active.push(job);
                }
                JobStep::Finish(outcome) => {
                    if job.locked {
                        let unlock = env.unlock(&user_lock_key(&job.user));
                        env.later([unlock]);
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
    ) -> JobStep {
        let status = match reply {
            DrupalReply::Answer { status, .. } => *status,
            DrupalReply::Failed => 0,
        };
        if status == 404 {
            // The user is gone: nothing to remove, nothing to add to.
            return JobStep::Finish(match job.change {
                Change::Remove | Change::Sync => MemberOutcome::Done,
                Change::Add => MemberOutcome::NoSuchUser,
            });
        }
        if job.writing() && crate::drupal::delivery::outcome_unknown(reply) {
            // Reset or timed out: Drupal may have made the change (it often has, behind a
            // queue of PHP workers). The confirming read tells, and a change it does not
            // show is written again (adds and removes are idempotent).
            job.attempts = job.attempts.saturating_add(1);
            if job.attempts > MAX_WRITE_ATTEMPTS {
                return JobStep::Finish(MemberOutcome::Failed(map_failure(reply).detail));
            }
            job.phase = JobPhase::Verifying;
            return JobStep::Continue;
        }
        match job.phase.clone() {
            JobPhase::Waiting => {
                if job.waits > MAX_LOCK_WAITS {
                    return JobStep::Finish(MemberOutcome::Failed(
                        "another request kept changing this user's memberships".into(),
                    ));
                }
                JobStep::Continue
            }
            JobPhase::Writing | JobPhase::Repairing => on_written(job, status, reply),
            JobPhase::RepairRead => {
                if status != 200 {
                    return JobStep::Finish(MemberOutcome::Failed(map_failure(reply).detail));
                }
                let m = parse_memberships(&reply_doc(reply), &groups.membership_field);
                let wanted = self.wanted(&m, job.change);
                job.phase = JobPhase::Repairing;
                job.attempts = job.attempts.saturating_add(1);
                JobStep::Send(calls.replace_memberships(&job.user, &wanted))
            }
            JobPhase::Verifying => self.on_confirming_read(job, groups, calls, status, reply),
            JobPhase::Roles { removals } => {
                if !matches!(status, 200 | 204) {
                    return JobStep::Finish(MemberOutcome::Failed(map_failure(reply).detail));
                }
                if removals.is_empty() {
                    return JobStep::Finish(MemberOutcome::Done);
                }
                job.phase = JobPhase::Roles {
                    removals: Vec::new(),
                };
                JobStep::Send(calls.remove_roles(&job.user, &removals))
            }
        }
    }

    /// The read that confirms a write: done (then the roles), written again, or repaired.
    fn on_confirming_read(
        &self,
        job: &mut Job,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        status: u16,
        reply: &DrupalReply,
    ) -> JobStep {
        if status != 200 {
            return JobStep::Finish(MemberOutcome::Failed(map_failure(reply).detail));
        }
        let m = parse_memberships(&reply_doc(reply), &groups.membership_field);
        if job.group_gone && !m.dangling && !m.terms.contains(&self.term) {
            return JobStep::Finish(MemberOutcome::NoSuchGroup);
        }
        let present = m.terms.contains(&self.term);
        let applied = match job.change {
            Change::Add => present,
            Change::Remove => !present,
            Change::Sync => true,
        };
        if !applied || m.dangling {
            job.attempts = job.attempts.saturating_add(1);
            if job.attempts > MAX_WRITE_ATTEMPTS {
                return JobStep::Finish(MemberOutcome::Failed(
                    "Drupal did not keep the membership change".into(),
                ));
            }
            if m.dangling {
                // Never leave a reference to a deleted group behind.
                job.phase = JobPhase::Repairing;
                return JobStep::Send(
                    calls.replace_memberships(&job.user, &self.wanted(&m, job.change)),
                );
            }
            // Lost to a concurrent write outside this Envoy: write again.
            // (`next_calls` sends the delta again.)
            job.phase = JobPhase::Writing;
            return JobStep::Continue;
        }
        self.roles_step(job, groups, calls, &m)
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
    ) -> JobStep {
        if groups.role_grants.is_empty() {
            return JobStep::Finish(MemberOutcome::Done);
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
            (true, true) => JobStep::Finish(MemberOutcome::Done),
            (false, _) => {
                job.phase = JobPhase::Roles {
                    removals: to_remove,
                };
                JobStep::Send(calls.add_roles(&job.user, &to_add))
            }
            (true, false) => {
                job.phase = JobPhase::Roles {
                    removals: Vec::new(),
                };
                JobStep::Send(calls.remove_roles(&job.user, &to_remove))
            }
        }
    }
}

impl Job {
    /// Waiting for the read that confirms its write (which `next_calls` may share).
    fn confirming(&self) -> bool {
        self.phase == JobPhase::Verifying && self.outgoing.is_none()
    }

    /// Its call in flight writes the user.
    fn writing(&self) -> bool {
        matches!(
            self.phase,
            JobPhase::Writing | JobPhase::Repairing | JobPhase::Roles { .. }
        )
    }

    /// Takes the user's lock if it is free; else counts a round of waiting.
    fn try_lock(&mut self, env: &mut LockScope) {
        if env.try_lock(&user_lock_key(&self.user)) {
            self.locked = true;
            self.phase = if self.change == Change::Sync {
                JobPhase::Verifying
            } else {
                JobPhase::Writing
            };
            return;
        }
        self.waits = self.waits.saturating_add(1);
        crate::runtime::tally::note(crate::runtime::tally::Event::LockWait);
        let since = *self.waiting_since.get_or_insert(env.now_ms);
        if env.now_ms.saturating_sub(since) > env.lock_ttl_ms {
            // Longer than any lock can be held: give up (reported per user).
            self.waits = MAX_LOCK_WAITS.saturating_add(1);
        }
    }

    /// The call its phase makes, when none was decided before (`outgoing`).
    fn call(&self, calls: &GroupCalls, term: &str) -> DrupalCall {
        match &self.phase {
            JobPhase::Waiting => calls.pause(calls.user_memberships(&self.user)),
            JobPhase::RepairRead | JobPhase::Verifying => calls.user_memberships(&self.user),
            JobPhase::Writing => match self.change {
                Change::Add => calls.add_membership(&self.user, term),
                Change::Remove => calls.remove_membership(&self.user, term),
                Change::Sync => calls.user_memberships(&self.user),
            },
            // These phases always come with their call decided (`outgoing`).
            JobPhase::Repairing | JobPhase::Roles { .. } => calls.user_memberships(&self.user),
        }
    }
}

/// The reply to a delta write or a repairing list replacement.
fn on_written(job: &mut Job, status: u16, reply: &DrupalReply) -> JobStep {
    match status {
        200 | 204 => {
            job.phase = JobPhase::Verifying;
            JobStep::Continue
        }
        422 if job.phase == JobPhase::Writing => {
            // Usually a reference to a deleted group, which fails every delta write.
            job.phase = JobPhase::RepairRead;
            JobStep::Continue
        }
        // "The targeted `taxonomy_term--…` resource with ID `…` does not exist."
        400 if job.change == Change::Add && names_missing_target(&reply_doc(reply)) => {
            if job.phase == JobPhase::Writing {
                // Refused whole: nothing was written.
                return JobStep::Finish(MemberOutcome::NoSuchGroup);
            }
            // A repair found the add had landed, then the group was deleted (a
            // concurrent DELETE /Groups whose sweep ran before the add's save): drop
            // the dangling reference before reporting the group gone.
            job.group_gone = true;
            job.change = Change::Remove;
            job.phase = JobPhase::RepairRead;
            JobStep::Continue
        }
        _ => JobStep::Finish(MemberOutcome::Failed(map_failure(reply).detail)),
    }
}

/// A reply's JSON document (`null` when it has none).
fn reply_doc(reply: &DrupalReply) -> Value {
    match reply {
        DrupalReply::Answer { body, .. } => {
            serde_json::from_slice::<Value>(body).unwrap_or(Value::Null)
        }
        DrupalReply::Failed => Value::Null,
    }
}

/// The confirming reads of one round, gathered into collection reads of 50 users when more
/// than one user needs one.
struct SharedReads {
    gathered: bool,
    users: Vec<String>,
    /// For each chunk of 50 users, the position of its call once made.
    chunk_call: Vec<Option<usize>>,
    confirmed: usize,
}

impl SharedReads {
    fn of(active: &[Job]) -> Self {
        let users: Vec<String> = active
            .iter()
            .filter(|j| j.confirming())
            .map(|j| j.user.clone())
            .collect();
        SharedReads {
            gathered: users.len() > 1,
            chunk_call: vec![None; users.len().div_ceil(DRUPAL_PAGE_MAX)],
            users,
            confirmed: 0,
        }
    }

    /// The position of the call that reads the next confirming user (made for the first
    /// user of its chunk).
    fn call_for_next(&mut self, calls: &GroupCalls, out: &mut Vec<DrupalCall>) -> usize {
        let chunk = self.confirmed / DRUPAL_PAGE_MAX;
        self.confirmed = self.confirmed.saturating_add(1);
        if let Some(index) = self.chunk_call.get(chunk).copied().flatten() {
            return index;
        }
        let users = self
            .users
            .chunks(DRUPAL_PAGE_MAX)
            .nth(chunk)
            .unwrap_or_default();
        out.push(calls.users_memberships(users));
        let index = out.len().saturating_sub(1);
        if let Some(slot) = self.chunk_call.get_mut(chunk) {
            *slot = Some(index);
        }
        index
    }
}

/// A successful reply's JSON document.
fn parse_ok(reply: &DrupalReply) -> Option<Value> {
    match reply {
        DrupalReply::Answer { status: 200, body } => serde_json::from_slice(body).ok(),
        _ => None,
    }
}

/// One user's part of a collection read, as the individual read would answer it (404 when
/// the user is not in it: deleted meanwhile).
fn one_user(doc: &Value, user: &str) -> DrupalReply {
    let resource = doc.get("data").and_then(Value::as_array).and_then(|d| {
        d.iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(user))
    });
    match resource {
        Some(resource) => {
            let single = serde_json::json!({
                "data": resource,
                "included": doc.get("included").cloned().unwrap_or(Value::Array(Vec::new())),
            });
            DrupalReply::Answer {
                status: 200,
                body: serde_json::to_vec(&single).unwrap_or_default(),
            }
        }
        None => DrupalReply::Answer {
            status: 404,
            body: Vec::new(),
        },
    }
}

enum JobStep {
    /// The job's next call is made by `next_calls`.
    Continue,
    /// The job's next call, to be sent now.
    Send(DrupalCall),
    Finish(MemberOutcome),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::locks::{Locks, MemoryLocks};
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

    /// Applies what a step returned, as the host does once the step is over.
    fn apply_each(locks: &mut MemoryLocks, intents: Vec<SharedIntent>) {
        for intent in intents {
            crate::runtime::intents::SharedPort::apply(locks, intent);
        }
    }

    struct Rig {
        locks: MemoryLocks,
        cfg: GroupsConfig,
    }

    fn calls_for(cfg: &GroupsConfig) -> GroupCalls<'_> {
        GroupCalls {
            jsonapi: "/jsonapi",
            groups: cfg,
            can_wait: false,
        }
    }

    impl Rig {
        fn new(role_grants: Value) -> Self {
            Rig {
                locks: MemoryLocks::default(),
                cfg: groups(role_grants),
            }
        }

        fn env<'a>(locks: &'a mut MemoryLocks, owner: &'a str) -> LockScope<'a> {
            LockScope::new(locks, 1000, owner, 10_000)
        }
    }

    #[test]
    fn confirming_reads_are_shared_and_free_their_write_slot() {
        let mut rig = Rig::new(json!({}));
        let calls = calls_for(&rig.cfg);
        let users: Vec<(String, Change)> = ["u1", "u2", "u3"]
            .iter()
            .map(|u| (u.to_string(), Change::Add))
            .collect();
        let mut b = Batch::new("eng", users, vec![]);
        let mut env = Rig::env(&mut rig.locks, "req1");
        let c = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(c.len(), 2, "concurrency 2: two writes");
        b.on_replies(
            &rig.cfg,
            &calls,
            &mut env,
            &[ans(204, Value::Null), ans(204, Value::Null)],
        );
        let c = b.next_calls(&rig.cfg, &calls, &mut env);
        // One read confirms u1 and u2, and u3's write starts in the same round.
        assert_eq!(c.len(), 2);
        assert!(
            c[0].path.contains("[operator]=IN")
                && c[0].path.contains("u1")
                && c[0].path.contains("u2")
        );
        assert_eq!(c[1].method, "POST");
        // u1 kept its group, u2's add was lost (written again), u3 written.
        let page = ans(
            200,
            json!({"data": [
                {"id": "u1", "relationships": {"field_scim_groups": {"data": [{"id": "eng"}]}, "roles": {"data": []}}},
                {"id": "u2", "relationships": {"field_scim_groups": {"data": []}, "roles": {"data": []}}}
            ]}),
        );
        b.on_replies(&rig.cfg, &calls, &mut env, &[page, ans(204, Value::Null)]);
        assert_eq!(
            b.results,
            vec![("u1".to_string(), Change::Add, MemberOutcome::Done)]
        );
        let c = b.next_calls(&rig.cfg, &calls, &mut env);
        let shapes: Vec<(&str, bool)> = c
            .iter()
            .map(|c| (c.method, c.path.contains("u2")))
            .collect();
        assert_eq!(
            shapes,
            vec![("POST", true), ("GET", false)],
            "u2 rewritten, u3 confirmed alone"
        );
        b.on_replies(
            &rig.cfg,
            &calls,
            &mut env,
            &[ans(204, Value::Null), memberships(&["eng"], &[])],
        );
        let c = b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[memberships(&["eng"], &[])]);
        assert_eq!(c.len(), 1);
        assert!(b.is_finished());
        assert_eq!(b.results.len(), 3);
        assert!(b.results.iter().all(|(_, _, o)| *o == MemberOutcome::Done));
    }

    #[test]
    fn a_request_gone_mid_flight_frees_its_users_at_once_unless_a_write_is_out() {
        let mut rig = Rig::new(json!({}));
        let calls = calls_for(&rig.cfg);
        let users = || {
            vec![
                ("u1".to_string(), Change::Add),
                ("u2".to_string(), Change::Add),
            ]
        };
        let free_at = |locks: &mut MemoryLocks, now: u64| {
            ["u1", "u2"]
                .iter()
                .map(|u| {
                    let free = locks.try_lock(&user_lock_key(u), "other", now, 10);
                    locks.unlock(&user_lock_key(u), "other");
                    free
                })
                .collect::<Vec<bool>>()
        };
        // The writes are out: the locks stay for the grace (the writes may still land).
        let mut b = Batch::new("eng", users(), vec![]);
        let mut env = Rig::env(&mut rig.locks, "req1");
        assert_eq!(b.next_calls(&rig.cfg, &calls, &mut env).len(), 2);
        let kept = b.release_mid_flight(&env, 500);
        drop(env);
        apply_each(&mut rig.locks, kept);
        assert_eq!(free_at(&mut rig.locks, 1400), [false, false]);
        assert_eq!(free_at(&mut rig.locks, 1600), [true, true]);
        // The confirming read is out: both are free at once.
        let mut b = Batch::new("eng", users(), vec![]);
        let mut env = Rig::env(&mut rig.locks, "req2");
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(
            &rig.cfg,
            &calls,
            &mut env,
            &[ans(204, Value::Null), ans(204, Value::Null)],
        );
        assert_eq!(b.next_calls(&rig.cfg, &calls, &mut env).len(), 1);
        let released = b.release_mid_flight(&env, 500);
        drop(env);
        apply_each(&mut rig.locks, released);
        assert_eq!(free_at(&mut rig.locks, 1000), [true, true]);
    }

    #[test]
    fn a_user_missing_from_the_shared_read_was_deleted() {
        let doc = json!({"data": [{"id": "u1"}]});
        assert!(matches!(
            one_user(&doc, "u1"),
            DrupalReply::Answer { status: 200, .. }
        ));
        assert_eq!(
            one_user(&doc, "u2"),
            DrupalReply::Answer {
                status: 404,
                body: Vec::new()
            }
        );
    }

    #[test]
    fn adds_are_written_then_confirmed_and_lost_ones_retried() {
        let mut rig = Rig::new(json!({}));
        let calls = calls_for(&rig.cfg);
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
        assert_eq!(b.results, [("u1".into(), Change::Add, MemberOutcome::Done)]);
        let returned = env.take_returned();
        assert!(
            !rig.locks.held().is_empty(),
            "released after the step, not in it"
        );
        apply_each(&mut rig.locks, returned);
        assert!(rig.locks.held().is_empty(), "the lock is released");
    }

    #[test]
    fn a_timed_out_or_reset_write_is_read_back_before_it_is_reported() {
        let envoy = |status: u16, body: &str| DrupalReply::Answer {
            status,
            body: body.as_bytes().to_vec(),
        };
        let timeout = envoy(504, "upstream request timeout");
        let reset = envoy(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        );
        let mut rig = Rig::new(json!({}));
        let calls = calls_for(&rig.cfg);
        let changes = vec![("u1".into(), Change::Add), ("u2".into(), Change::Remove)];
        let mut b = Batch::new("eng", changes, vec![]);
        let mut env = Rig::env(&mut rig.locks, "req1");
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[timeout.clone(), reset]);
        // Both read back (one shared read): u1's add landed, u2's removal did not.
        let c = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].method, "GET");
        let both = json!({"data": [
            {"type": "user--user", "id": "u1", "relationships": {"field_scim_groups": {"data": [{"type": "taxonomy_term--scim_groups", "id": "eng"}]}, "roles": {"data": []}}},
            {"type": "user--user", "id": "u2", "relationships": {"field_scim_groups": {"data": [{"type": "taxonomy_term--scim_groups", "id": "eng"}]}, "roles": {"data": []}}}
        ], "included": [{"type": "taxonomy_term--scim_groups", "id": "eng", "attributes": {"name": "Eng"}}]});
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(200, both)]);
        assert_eq!(
            b.results,
            [("u1".into(), Change::Add, MemberOutcome::Done)],
            "a write Drupal made is no failure"
        );
        let again = b.next_calls(&rig.cfg, &calls, &mut env);
        assert_eq!(
            again[0].method, "DELETE",
            "what did not land is written again"
        );
        // A Drupal that never answers in time: reported after the attempts.
        for _ in 0..MAX_WRITE_ATTEMPTS {
            b.on_replies(&rig.cfg, &calls, &mut env, std::slice::from_ref(&timeout));
            b.next_calls(&rig.cfg, &calls, &mut env);
            b.on_replies(&rig.cfg, &calls, &mut env, &[memberships(&["eng"], &[])]);
            b.next_calls(&rig.cfg, &calls, &mut env);
        }
        assert!(b.is_finished());
        assert!(
            matches!(&b.results[1], (_, Change::Remove, MemberOutcome::Failed(_))),
            "{:?}",
            b.results
        );
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
        let mut rig = Rig::new(json!({}));
        let calls = calls_for(&rig.cfg);
        let mut b = Batch::new("eng", vec![("u1".into(), Change::Add)], vec![]);
        let mut env = Rig::env(&mut rig.locks, "req1");
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(400, json!({"errors": [{"detail": "The targeted `taxonomy_term--scim_groups` resource with ID `eng` does not exist."}]}))]);
        assert!(b.is_finished());
        assert_eq!(b.results[0].2, MemberOutcome::NoSuchGroup);
    }

    #[test]
    fn dangling_references_are_repaired() {
        let mut rig = Rig::new(json!({}));
        let calls = calls_for(&rig.cfg);
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
    fn an_add_that_landed_on_a_group_deleted_meanwhile_leaves_no_dangling_reference() {
        let mut rig = Rig::new(json!({}));
        let calls = calls_for(&rig.cfg);
        let mut b = Batch::new("eng", vec![("u1".into(), Change::Add)], vec![]);
        let mut env = Rig::env(&mut rig.locks, "req1");
        let missing = |id: &str| {
            ans(
                400,
                json!({"errors": [{"detail": format!("The targeted `taxonomy_term--scim_groups` resource with ID `{id}` does not exist.")}]}),
            )
        };
        let refs = |ids: &[&str]| {
            let data: Vec<Value> = ids.iter().map(|i| json!({"id": i})).collect();
            ans(
                200,
                json!({"data": {"relationships": {"field_scim_groups": {"data": data}}}}),
            )
        };
        b.next_calls(&rig.cfg, &calls, &mut env);
        // The add landed; then DELETE /Groups deleted the term: the reference dangles.
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(204, Value::Null)]);
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[refs(&["missing", "ops"])]);
        // The repair that keeps the add names the deleted term: refused whole.
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[missing("eng")]);
        assert!(!b.is_finished());
        // So the reference is dropped instead.
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[refs(&["missing", "ops"])]);
        let fix = b.next_calls(&rig.cfg, &calls, &mut env);
        let body: Value = serde_json::from_slice(fix[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body["data"],
            json!([{"type": "taxonomy_term--scim_groups", "id": "ops"}])
        );
        b.on_replies(&rig.cfg, &calls, &mut env, &[ans(200, Value::Null)]);
        b.next_calls(&rig.cfg, &calls, &mut env);
        b.on_replies(&rig.cfg, &calls, &mut env, &[refs(&["ops"])]);
        assert!(b.is_finished());
        assert_eq!(b.results[0].2, MemberOutcome::NoSuchGroup);
    }

    #[test]
    fn roles_follow_groups_and_unmanaged_roles_are_never_touched() {
        let mut rig = Rig::new(json!({"Engineering": ["developer"]}));
        let calls = calls_for(&rig.cfg);
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
        assert_eq!(b.results[0].2, MemberOutcome::Done);

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
        let mut rig = Rig::new(json!({}));
        let calls = calls_for(&rig.cfg);
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
        assert_eq!(b.results[0].2, MemberOutcome::NoSuchUser);
        assert_eq!(b.results[1].2, MemberOutcome::Done);
    }
}
