//! The `/Groups` endpoints as a sans-IO flow: a queue of tasks (read the term, check the
//! name is free, walk the members, change memberships, …), each of which makes Drupal calls
//! and digests the replies, and a final answer.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{GroupCalls, Member, Term};
use crate::flows::discovery;
use crate::flows::membership::{Batch, Change};
use crate::flows::scope::LockScope;
use crate::http::{scim_json, DrupalReply, Response, Step};
use crate::scim::error::ScimError;
use crate::scim::mapping::{FieldMap, Kind, Target, UserMapping};
use crate::scim::projection::Projection;
use serde_json::Value;
use std::collections::VecDeque;

mod calls;
mod plan;
mod replies;
mod requests;

/// Group names are compared without case; this lock keeps concurrent creates (and renames)
/// of one name in this Envoy down to one.
pub(crate) fn name_lock_key(name: &str) -> String {
    format!("scim/group-name/{}", name.to_lowercase())
}

/// Rounds a name check waits for another request creating the same name, at most (a safety
/// net: the real limit is the lock time-out).
pub(crate) const MAX_NAME_WAITS: u32 = 10_000;
/// Member pages read at once for one group, at most: a walk reads one page, then twice as
/// many each round while the group proves larger (1, 2, 4, 4, …), so a small group costs one
/// call and a large one a fifth of the rounds, at the price of at most 3 reads past its end
/// (and no more of a small Drupal's PHP workers than a few).
pub(crate) const MAX_MEMBER_PAGES_AT_ONCE: usize = 4;
/// Member pages read at once by one request (all its groups together), at most.
pub(crate) const MAX_MEMBER_PAGES_PER_ROUND: usize = 16;

/// The filterable attributes of a Group, as a mapping onto term fields.
pub(crate) fn group_mapping() -> UserMapping {
    UserMapping {
        fields: vec![FieldMap {
            target: Target::Top {
                attr: "displayName".into(),
            },
            field: "name".into(),
            kind: Kind::String,
            case_exact: false,
        }],
    }
}

#[derive(Debug)]
pub(crate) enum Task {
    GetTerm {
        id: String,
    },
    /// Lock the name and check no other group has it.
    CheckName {
        name: String,
        waits: u32,
        /// When the check started waiting for the name's lock.
        since: Option<u64>,
    },
    CreateTerm {
        name: String,
        external_id: Option<String>,
    },
    /// The create failed without a clear refusal (a time-out, a 5xx, a lost answer): Drupal
    /// may have created the term all the same. Look for it (under the name's lock still), so
    /// that the answer never hides a group behind "retry".
    FindCreated {
        name: String,
        failure: ScimError,
    },
    RenameTerm {
        name: String,
    },
    /// Set the term's description to the group's `externalId` (if it differs).
    SetExternalId {
        value: Option<String>,
    },
    /// Read every member of `terms` (pages of a large group several at a time), up to the
    /// request's member cap.
    Walk,
    /// Make sure Drupal accepted the service account, unless a user was already read.
    CheckAuth,
    /// Check that the users to add exist, and that SCIM may write every user named,
    /// before changing anything.
    CheckUsers {
        adds: Vec<String>,
        removes: Vec<String>,
    },
    /// Work out the membership changes from what is now known.
    Plan,
    LoadRoles,
    Members,
    DeleteTerm,
    /// After a delete: repair users that still reference the term (a member added
    /// concurrently, or a retired account).
    SweepDangling,
    ListTerms {
        conditions: Vec<(String, String)>,
        sort: Option<String>,
        offset: usize,
        count: usize,
        start_index: usize,
        post: bool,
        /// Reads and counts the window exactly (`paging`); not for `post`, which reads
        /// every candidate anyway.
        pager: Option<crate::flows::paging::Pager>,
        /// The reads of the round in flight.
        reads: Vec<crate::flows::paging::Read>,
        /// The window's pages read: (offset, terms).
        pages: Vec<(usize, Vec<Term>)>,
    },
}

/// What the members should become.
#[derive(Debug, Default)]
pub(crate) struct MemberPlan {
    /// Operations in order; `None` = remove everyone.
    pub(crate) ops: Vec<(Change, Option<Vec<String>>)>,
    /// The whole set replaces the current one.
    pub(crate) replace: Option<Vec<String>>,
}

impl MemberPlan {
    pub(crate) fn needs_current(&self) -> bool {
        self.replace.is_some() || self.ops.iter().any(|(_, ids)| ids.is_none())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.replace.is_none()
    }
}

/// Where one group's member walk stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WalkCursor {
    /// Drupal offset of the next page to read.
    pub(crate) next_offset: usize,
    pub(crate) done: bool,
    /// Pages to read in the next round.
    pub(crate) pages_at_once: usize,
}

/// A create whose member adds failed is undone (the adds that landed, then the term), so
/// that nothing is left behind a "retry" answer.
#[derive(Debug)]
pub(crate) struct Undo {
    /// What went wrong with the adds (the answer, once undone).
    pub(crate) failures: Vec<String>,
    /// Users whose add may have landed (applied, or failed in an unknown way).
    pub(crate) added: Vec<String>,
    /// The term is deleted: the create is undone.
    pub(crate) term_deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Answer {
    Created,
    Resource,
    NoContent,
    List,
}

#[derive(Debug)]
pub struct GroupFlow {
    pub(crate) base_url: String,
    pub(crate) projection: Projection,
    pub(crate) tasks: VecDeque<Task>,
    pub(crate) answer: Answer,
    /// The group(s) at hand.
    pub(crate) terms: Vec<Term>,
    /// Members per term, when read.
    pub(crate) members: Vec<Option<Vec<Member>>>,
    /// Per group being read, where its walk stands.
    pub(crate) walk: Vec<WalkCursor>,
    /// For each call of the walk round in flight, the group it reads.
    pub(crate) walk_round: Vec<usize>,
    /// Member rows read so far (all groups).
    pub(crate) members_read: usize,
    /// Most members one request reads (`groups.max_members_read`).
    pub(crate) max_members_read: usize,
    /// Most members one request changes without naming them, and most it names
    /// (`limits.max_members_per_request`).
    pub(crate) max_changes: usize,
    /// `If-Match` of a change: the group's version must match it.
    pub(crate) if_match: Option<String>,
    /// The term's name or externalId was changed (told in a later failure's answer).
    pub(crate) term_changed: bool,
    /// Undoing a create whose member adds failed.
    pub(crate) undo: Option<Undo>,
    pub(crate) plan: MemberPlan,
    pub(crate) batch: Option<Batch>,
    pub(crate) roles: Vec<(String, String)>,
    pub(crate) name_locked: Option<String>,
    pub(crate) total: usize,
    pub(crate) start_index: usize,
    pub(crate) post_filter: Option<crate::scim::filter::Filter>,
    pub(crate) want_members: bool,
    /// Role grants are configured and the request renames the group.
    pub(crate) resync_roles: bool,
    /// The name the request gives the group.
    pub(crate) new_name: Option<String>,
    /// Most Drupal pages read to check a filter Drupal cannot answer exactly.
    pub(crate) max_checked_pages: usize,
    /// A user query succeeded, which proves Drupal accepted the service account.
    pub(crate) users_read: bool,
    /// Which accounts SCIM may not write (`None`: no check, in unit tests of other parts).
    pub(crate) protection: Option<crate::config::protection::Protection>,
    /// Accounts met in this request that SCIM may not write (current members, and members
    /// the request names).
    pub(crate) read_only: Vec<Protected>,
    /// The membership changes the request asked for and the gateway left out, because the
    /// account is read-only to SCIM; everything else is applied.
    pub(crate) left_out: Vec<LeftOut>,
}

/// An account SCIM may not write, as a group request met it.
#[derive(Debug, Clone, PartialEq)]
pub struct Protected {
    /// Its SCIM id (the Drupal UUID).
    pub uuid: String,
    pub uid: u64,
    /// Why it is read-only (`Protection::refusal`).
    pub why: String,
}

impl Protected {
    /// Drupal did not show its roles: a change to it refuses the request (`read_only_member`).
    pub(crate) fn unreadable(&self) -> bool {
        self.why == crate::config::protection::ROLES_UNREADABLE
    }

    pub(crate) fn refusal(&self) -> ScimError {
        read_only_member(&self.uuid, &self.why)
    }
}

/// A membership change left out of a group request: the account keeps its groups and roles
/// as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOut {
    pub member: Protected,
    pub change: Change,
}

/// What a group request left out, for the site's log and metrics: the group's id and the
/// changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeftOutReport {
    pub group: String,
    pub changes: Vec<LeftOut>,
}

impl LeftOutReport {
    /// One log line's worth: the uids with what was asked for each, then the reasons.
    pub fn describe(&self) -> String {
        let uids: Vec<String> = self
            .changes
            .iter()
            .map(|l| {
                let op = if l.change == Change::Add {
                    "add"
                } else {
                    "remove"
                };
                format!("{}:{op}", l.member.uid)
            })
            .collect();
        let mut reasons: Vec<&str> = Vec::new();
        for l in &self.changes {
            if !reasons.contains(&l.member.why.as_str()) {
                reasons.push(l.member.why.as_str());
            }
        }
        format!(
            "group={} left_unchanged={} uids={} why=\"{}\"",
            self.group,
            self.changes.len(),
            uids.join(","),
            reasons.join(" | ").replace('"', "'")
        )
    }
}

/// Most member ids the `Warning` header names (the rest are counted).
const WARNING_IDS: usize = 10;

/// The `Warning` header of an answer whose request left protected members out: the IdP's
/// request succeeded for everyone else, and retrying it would change nothing.
pub(crate) fn left_out_warning(left_out: &[LeftOut]) -> Option<(String, String)> {
    if left_out.is_empty() {
        return None;
    }
    let mut ids: Vec<&str> = Vec::new();
    for l in left_out {
        if !ids.contains(&l.member.uuid.as_str()) {
            ids.push(l.member.uuid.as_str());
        }
    }
    let total = ids.len();
    let mut named = ids
        .iter()
        .take(WARNING_IDS)
        .map(|i| i.replace(['"', '\\'], ""))
        .collect::<Vec<_>>()
        .join(", ");
    if total > WARNING_IDS {
        named.push_str(&format!(" and {} more", total.saturating_sub(WARNING_IDS)));
    }
    Some((
        "warning".to_string(),
        format!(
            "299 scim-gateway \"The membership of {total} account(s) that SCIM may not change (administrators, uid 1, the service account) was left as it is: {named}. Every other change was applied.\""
        ),
    ))
}

/// The uid of a JSON:API user resource (0 when Drupal did not show it).
pub(crate) fn uid_of(resource: &Value) -> u64 {
    resource
        .pointer("/attributes/drupal_internal__uid")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Why SCIM may not write the account of this JSON:API user resource, if it may not.
pub(crate) fn member_refusal(
    protection: &crate::config::protection::Protection,
    resource: &Value,
) -> Option<String> {
    let uid = uid_of(resource);
    let name = resource
        .pointer("/attributes/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    protection.refusal(
        uid,
        name,
        crate::config::protection::roles_of(resource).as_deref(),
    )
}

/// A member whose roles Drupal's answer does not show: nothing tells whether it is an
/// administrator, and that is Drupal's (or its configuration's) failure, not the site's
/// policy about this account, so the whole request is refused rather than passing it by.
pub(crate) fn read_only_member(id: &str, why: &str) -> ScimError {
    ScimError::new(
        403,
        None,
        format!("Member `{id}` cannot be changed through SCIM: {why} Nothing was changed."),
    )
}

/// The uuid of the group a request acts on: the first term read (empty before it is known).
pub(crate) fn term_id(terms: &[Term]) -> String {
    terms.first().map(|t| t.uuid.clone()).unwrap_or_default()
}

impl GroupFlow {
    pub(crate) fn new(
        base_url: &str,
        projection: Projection,
        tasks: Vec<Task>,
        answer: Answer,
    ) -> Self {
        let want_members = projection.wants("members");
        GroupFlow {
            base_url: base_url.to_string(),
            projection,
            tasks: tasks.into(),
            answer,
            terms: Vec::new(),
            members: Vec::new(),
            walk: Vec::new(),
            walk_round: Vec::new(),
            members_read: 0,
            max_members_read: crate::config::groups::DEFAULT_MAX_MEMBERS_READ,
            max_changes: 1000,
            if_match: None,
            term_changed: false,
            undo: None,
            plan: MemberPlan::default(),
            batch: None,
            roles: Vec::new(),
            name_locked: None,
            total: 0,
            start_index: 1,
            post_filter: None,
            want_members,
            resync_roles: false,
            new_name: None,
            max_checked_pages: 20,
            users_read: false,
            protection: None,
            read_only: Vec::new(),
            left_out: Vec::new(),
        }
    }

    /// Membership changes are refused for accounts SCIM may not write.
    pub fn set_protection(&mut self, protection: crate::config::protection::Protection) {
        self.protection = Some(protection);
    }

    /// The caller already read users in this request, which proves Drupal accepted the
    /// service account.
    pub fn service_account_proven(mut self) -> Self {
        self.users_read = true;
        self
    }

    pub fn set_max_checked_pages(&mut self, pages: usize) {
        self.max_checked_pages = pages;
    }

    /// The member caps: `max_read` members read, `max_changes` members changed without being
    /// named (removals of current members, role re-syncs after a rename).
    pub fn set_member_limits(&mut self, max_read: usize, max_changes: usize) {
        self.max_members_read = max_read;
        self.max_changes = max_changes;
    }

    /// A change applies only while the group's version matches this `If-Match` value.
    pub fn set_if_match(&mut self, if_match: Option<&str>) {
        self.if_match = if_match.map(str::to_string);
    }

    /// The next calls, or the answer once every task is done.
    pub fn step(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
    ) -> Result<Step, ScimError> {
        let step = self.next_step(groups, calls, env);
        step.map_err(|e| self.while_undoing(e))
    }

    /// Digests the replies to the calls `step` returned.
    pub fn on_replies(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
        replies: &[DrupalReply],
    ) -> Result<(), ScimError> {
        let taken = self.take_replies(groups, calls, env, replies);
        taken.map_err(|e| self.while_undoing(e))
    }

    pub(crate) fn release_name(&mut self, env: &mut LockScope) {
        if let Some(name) = self.name_locked.take() {
            env.locks.unlock(&name_lock_key(&name), env.owner);
        }
    }

    /// The changes this request left out (protected accounts), for the log and metrics.
    pub fn take_left_out(&mut self) -> Option<LeftOutReport> {
        if self.left_out.is_empty() {
            return None;
        }
        Some(LeftOutReport {
            group: term_id(&self.terms),
            changes: std::mem::take(&mut self.left_out),
        })
    }

    /// Notes an account SCIM may not write (once).
    pub(crate) fn note_protected(&mut self, resource: &Value) {
        let Some(why) = self
            .protection
            .as_ref()
            .and_then(|p| member_refusal(p, resource))
        else {
            return;
        };
        let uuid = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.read_only.iter().any(|p| p.uuid == uuid) {
            self.read_only.push(Protected {
                uuid: uuid.to_string(),
                uid: uid_of(resource),
                why,
            });
        }
    }

    pub(crate) fn is_protected(&self, uuid: &str) -> Option<&Protected> {
        self.read_only.iter().find(|p| p.uuid == uuid)
    }

    /// Records a change left out (once per account and kind of change).
    pub(crate) fn leave_out(&mut self, uuid: &str, change: Change) {
        let Some(member) = self.is_protected(uuid).cloned() else {
            return;
        };
        if !self
            .left_out
            .iter()
            .any(|l| l.member.uuid == uuid && l.change == change)
        {
            self.left_out.push(LeftOut { member, change });
        }
    }

    /// Releases what the flow holds when it ends early on an error (no call in flight).
    pub fn abandon(&mut self, env: &mut LockScope) {
        self.release_name(env);
        if let Some(b) = self.batch.as_mut() {
            b.release_all(env);
        }
    }

    /// Releases what the flow holds when its stream ends with calls in flight: at once where
    /// only a read is out, after `write_grace_ms` where a write may still land in Drupal.
    pub fn abandon_mid_flight(&mut self, env: &mut LockScope, write_grace_ms: u64) {
        let writing_term = matches!(
            self.tasks.front(),
            Some(Task::CreateTerm { .. } | Task::RenameTerm { .. })
        );
        if let Some(name) = self.name_locked.take() {
            let key = name_lock_key(&name);
            if writing_term {
                env.locks
                    .try_lock(&key, env.owner, env.now_ms, write_grace_ms);
            } else {
                env.locks.unlock(&key, env.owner);
            }
        }
        if let Some(b) = self.batch.as_mut() {
            b.release_mid_flight(env, write_grace_ms);
        }
    }

    pub(crate) fn answer_step(&mut self, env: &mut LockScope) -> Step {
        self.release_name(env);
        if let Some(undo) = &self.undo {
            let name = self.terms.first().map(|t| t.name.as_str()).unwrap_or("");
            return Step::Respond(
                ScimError::bad_gateway(format!(
                    "Adding the members of the new group `{name}` failed ({}), so the group was not created: the {} member(s) that may have been added were removed again and the group deleted. Sending the same request again is safe.",
                    undo.failures.join("; "),
                    undo.added.len()
                ))
                .into_response(),
            );
        }
        let warning = left_out_warning(&self.left_out);
        match self.answer {
            Answer::NoContent => Step::Respond(Response {
                status: 204,
                headers: warning.into_iter().collect(),
                body: Vec::new(),
            }),
            Answer::Created | Answer::Resource => {
                let Some(term) = self.terms.first() else {
                    return Step::Respond(ScimError::not_found("Group not found.").into_response());
                };
                let members = if self.want_members {
                    self.members.first().cloned().flatten()
                } else {
                    None
                };
                let mut resource = term.to_scim(&self.base_url, members.as_deref());
                self.projection.apply(&mut resource);
                let mut headers = vec![("etag".to_string(), term.version())];
                headers.extend(warning);
                let status = if self.answer == Answer::Created {
                    headers.push((
                        "location".to_string(),
                        format!("{}/Groups/{}", self.base_url, term.uuid),
                    ));
                    201
                } else {
                    200
                };
                scim_json(status, &Value::Object(resource), headers)
            }
            Answer::List => {
                let resources: Vec<Value> = self
                    .terms
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let members = if self.want_members {
                            self.members.get(i).cloned().flatten()
                        } else {
                            None
                        };
                        let mut r = t.to_scim(&self.base_url, members.as_deref());
                        self.projection.apply(&mut r);
                        Value::Object(r)
                    })
                    .collect();
                scim_json(
                    200,
                    &discovery::list_response(resources, self.total, self.start_index),
                    vec![],
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drupal::groups::parse_term;
    use crate::drupal::jsonapi::DRUPAL_PAGE_MAX;
    use crate::http::DrupalCall;
    use crate::runtime::locks::{Locks, MemoryLocks};
    use serde_json::json;

    const BASE: &str = "https://gw.example/scim/v2";
    const ENG: &str = "32a595e5-cfd9-4ce7-945f-9b04077da756";

    fn user_id(i: usize) -> String {
        format!("00000000-0000-4000-8000-{i:012}")
    }

    fn term(uuid: &str, name: &str) -> Value {
        json!({"type": "taxonomy_term--scim_groups", "id": uuid, "attributes": {"name": name,
            "changed": "2026-11-28T11:51:50+00:00", "drupal_internal__tid": 7}})
    }

    fn term_reply(uuid: &str, name: &str) -> DrupalReply {
        DrupalReply::json(200, json!({"data": term(uuid, name)}))
    }

    fn users_page(ids: &[String], next: bool) -> DrupalReply {
        let data: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| json!({"id": id, "attributes": {"name": format!("user{k}"), "drupal_internal__uid": k.saturating_add(10)}}))
            .collect();
        let mut doc = json!({"data": data});
        if next {
            doc["links"] = json!({"next": {"href": "https://drupal/next"}});
        }
        DrupalReply::json(200, doc)
    }

    fn no_content() -> DrupalReply {
        DrupalReply::json(204, Value::Null)
    }

    fn offset_of(call: &DrupalCall) -> usize {
        call.path
            .split('&')
            .find_map(|p| p.strip_prefix("page[offset]="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Drupal's answers to member page reads of a group of `size` users (50 a page).
    fn member_pages(calls: &[DrupalCall], size: usize) -> Vec<DrupalReply> {
        calls
            .iter()
            .map(|c| {
                assert!(c.path.contains("filter[scim_member]"), "{}", c.path);
                let from = offset_of(c).min(size);
                let to = from.saturating_add(DRUPAL_PAGE_MAX).min(size);
                let ids: Vec<String> = (from..to).map(user_id).collect();
                users_page(&ids, to < size)
            })
            .collect()
    }

    /// The memberships of users (confirming reads): `(user, their terms)`.
    fn memberships_of(users: &[(String, &[&str])]) -> DrupalReply {
        let data: Vec<Value> = users
            .iter()
            .map(|(id, terms)| json!({"id": id, "relationships": {"field_scim_groups": {"data": terms.iter().map(|t| json!({"id": t})).collect::<Vec<_>>()}, "roles": {"data": []}}}))
            .collect();
        DrupalReply::json(200, json!({"data": data}))
    }

    /// One user's memberships (a lone confirming read).
    fn memberships(terms: &[&str]) -> DrupalReply {
        DrupalReply::json(
            200,
            json!({"data": {"relationships": {"field_scim_groups": {"data": terms.iter().map(|t| json!({"id": t})).collect::<Vec<_>>()}, "roles": {"data": []}}}}),
        )
    }

    struct Rig {
        cfg: GroupsConfig,
        locks: MemoryLocks,
        now_ms: u64,
    }

    impl Rig {
        fn new(groups: Value) -> Self {
            Rig {
                cfg: GroupsConfig::from_config(Some(&groups)).unwrap().unwrap(),
                locks: MemoryLocks::default(),
                now_ms: 1000,
            }
        }

        fn step(&mut self, flow: &mut GroupFlow) -> Result<Step, ScimError> {
            let Rig { cfg, locks, now_ms } = self;
            let calls = GroupCalls {
                jsonapi: "/jsonapi",
                groups: cfg,
                can_wait: false,
            };
            let mut env = LockScope {
                locks,
                now_ms: *now_ms,
                owner: "req",
                lock_ttl_ms: 10_000,
            };
            flow.step(cfg, &calls, &mut env)
        }

        fn reply(
            &mut self,
            flow: &mut GroupFlow,
            replies: Vec<DrupalReply>,
        ) -> Result<Step, ScimError> {
            {
                let Rig { cfg, locks, now_ms } = self;
                let calls = GroupCalls {
                    jsonapi: "/jsonapi",
                    groups: cfg,
                    can_wait: false,
                };
                let mut env = LockScope {
                    locks,
                    now_ms: *now_ms,
                    owner: "req",
                    lock_ttl_ms: 10_000,
                };
                flow.on_replies(cfg, &calls, &mut env, &replies)?;
            }
            self.step(flow)
        }

        fn abandon(&mut self, flow: &mut GroupFlow, grace_ms: u64) {
            let mut env = LockScope {
                locks: &mut self.locks,
                now_ms: self.now_ms,
                owner: "req",
                lock_ttl_ms: 10_000,
            };
            flow.abandon_mid_flight(&mut env, grace_ms);
        }
    }

    fn calls(step: &Result<Step, ScimError>) -> &[DrupalCall] {
        match step {
            Ok(Step::Call(c)) => c,
            other => panic!("expected calls, got {other:?}"),
        }
    }

    fn answer(step: Result<Step, ScimError>) -> (u16, Value) {
        let response = match step {
            Ok(Step::Respond(r)) => r,
            Err(e) => e.into_response(),
            Ok(Step::Call(c)) => panic!("expected an answer, got calls {c:?}"),
        };
        let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, body)
    }

    /// Serves a group of `size` members to the walk; returns the number of pages read per
    /// round, and the step after it.
    fn walk(
        rig: &mut Rig,
        flow: &mut GroupFlow,
        mut step: Result<Step, ScimError>,
        size: usize,
    ) -> (Vec<usize>, Result<Step, ScimError>) {
        let mut rounds = Vec::new();
        while let Ok(Step::Call(c)) = &step {
            if !c.iter().all(|c| c.path.contains("filter[scim_member]")) {
                break;
            }
            rounds.push(c.len());
            let replies = member_pages(c, size);
            step = rig.reply(flow, replies);
        }
        (rounds, step)
    }

    #[test]
    fn a_large_group_is_read_several_pages_at_a_time() {
        let mut rig = Rig::new(json!({}));
        let mut flow = GroupFlow::get(BASE, Projection::default(), ENG);
        rig.step(&mut flow).unwrap();
        let step = rig.reply(&mut flow, vec![term_reply(ENG, "Everyone")]);
        let (rounds, step) = walk(&mut rig, &mut flow, step, 1000);
        // 20 pages of members in 7 rounds instead of 20; 3 reads past the end.
        assert_eq!(rounds, [1, 2, 4, 4, 4, 4, 4]);
        let (status, body) = answer(step);
        assert_eq!(status, 200);
        let members = body["members"].as_array().unwrap();
        assert_eq!(members.len(), 1000);
        let unique: std::collections::HashSet<&str> =
            members.iter().filter_map(|m| m["value"].as_str()).collect();
        assert_eq!(unique.len(), 1000, "no member listed twice");

        // A small group costs one read; so does an empty one.
        for size in [0, 7, 50] {
            let mut flow = GroupFlow::get(BASE, Projection::default(), ENG);
            rig.step(&mut flow).unwrap();
            let step = rig.reply(&mut flow, vec![term_reply(ENG, "Small")]);
            let (rounds, step) = walk(&mut rig, &mut flow, step, size);
            assert_eq!(rounds, [1], "{size}");
            assert_eq!(answer(step).0, 200);
        }
    }

    #[test]
    fn member_reads_at_once_follow_the_groups_concurrency() {
        let mut rig = Rig::new(json!({"concurrency": 3}));
        let mut flow = GroupFlow::get(BASE, Projection::default(), ENG);
        rig.step(&mut flow).unwrap();
        let step = rig.reply(&mut flow, vec![term_reply(ENG, "Everyone")]);
        let (rounds, step) = walk(&mut rig, &mut flow, step, 400);
        assert_eq!(rounds, [1, 2, 3, 3]);
        assert_eq!(answer(step).0, 200);
    }

    #[test]
    fn a_group_read_beyond_the_cap_is_refused_not_cut() {
        let mut rig = Rig::new(json!({"max_members_read": 120}));
        for (size, expect) in [(120, 200), (121, 400), (5000, 400)] {
            let mut flow = GroupFlow::get(BASE, Projection::default(), ENG);
            flow.set_member_limits(120, 1000);
            rig.step(&mut flow).unwrap();
            let mut step = rig.reply(&mut flow, vec![term_reply(ENG, "Big")]);
            let mut highest = 0;
            while let Ok(Step::Call(c)) = &step {
                highest = c.iter().map(offset_of).max().unwrap_or(0).max(highest);
                let replies = member_pages(c, size);
                step = rig.reply(&mut flow, replies);
            }
            assert!(highest <= 120, "no page past the cap is read ({highest})");
            let (status, body) = answer(step);
            assert_eq!(status, expect, "{size}: {body}");
            if expect == 400 {
                assert_eq!(body["scimType"], "tooMany");
                assert!(body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("excludedAttributes=members"));
            } else {
                assert_eq!(body["members"].as_array().unwrap().len(), 120);
            }
        }
    }

    #[test]
    fn the_member_cap_holds_for_a_list_of_groups_together() {
        let mut rig = Rig::new(json!({}));
        let mut flow =
            GroupFlow::list(BASE, Projection::default(), None, None, None, 1, 100).unwrap();
        flow.set_member_limits(120, 1000);
        rig.step(&mut flow).unwrap();
        let terms =
            json!({"data": [term(ENG, "A"), term(&user_id(900), "B"), term(&user_id(901), "C")]});
        let step = rig.reply(&mut flow, vec![DrupalReply::json(200, terms)]);
        assert_eq!(calls(&step).len(), 3, "one page per group");
        let replies = member_pages(calls(&step), 50);
        let (status, body) = answer(rig.reply(&mut flow, replies));
        assert_eq!((status, body["scimType"].as_str()), (400, Some("tooMany")));
        assert!(body["detail"].as_str().unwrap().contains("`count`"));
    }

    #[test]
    fn excluded_members_cost_no_member_read() {
        let mut rig = Rig::new(json!({}));
        let excluded = Projection::from_query(None, Some("members")).unwrap();
        let mut flow = GroupFlow::get(BASE, excluded.clone(), ENG);
        rig.step(&mut flow).unwrap();
        let step = rig.reply(&mut flow, vec![term_reply(ENG, "Big")]);
        assert!(
            !calls(&step)[0].path.contains("scim_member"),
            "only the service-account check"
        );
        // A PUT that sends no members and does not show them reads none either.
        let body = json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "Big"});
        let mut flow = GroupFlow::replace(
            BASE,
            excluded,
            &rig.cfg.clone(),
            ENG,
            body.to_string().as_bytes(),
        )
        .unwrap();
        rig.step(&mut flow).unwrap();
        let (status, out) = answer(rig.reply(&mut flow, vec![term_reply(ENG, "Big")]));
        assert_eq!(status, 200, "{out}");
        assert!(out.get("members").is_none());
    }

    #[test]
    fn a_delete_of_more_members_than_the_limit_is_refused_before_any_write() {
        let mut rig = Rig::new(json!({}));
        for (size, expect) in [
            (100, None),
            (101, Some(400)),
            (160, Some(400)),
            (5000, Some(400)),
        ] {
            let cfg = rig.cfg.clone();
            let mut flow = GroupFlow::delete(BASE, &cfg, ENG);
            flow.set_member_limits(10_000, 100);
            rig.step(&mut flow).unwrap();
            let mut step = rig.reply(&mut flow, vec![term_reply(ENG, "Big")]);
            let mut reads = 0;
            while let Ok(Step::Call(c)) = &step {
                if !c[0].path.contains("scim_member") {
                    break;
                }
                reads += c.len();
                let replies = member_pages(c, size);
                step = rig.reply(&mut flow, replies);
            }
            assert!(reads <= 3, "the walk stops at the limit: {reads} pages");
            match expect {
                None => assert!(
                    calls(&step).iter().all(|c| c.method == "DELETE"),
                    "the removals start"
                ),
                Some(status) => {
                    let (got, body) = answer(step);
                    assert_eq!((got, body["scimType"].as_str()), (status, Some("tooMany")));
                    let detail = body["detail"].as_str().unwrap();
                    assert!(detail.contains("Nothing was changed"), "{detail}");
                    assert!(detail.contains("then delete it"), "{detail}");
                }
            }
        }
    }

    #[test]
    fn removals_derived_from_a_new_member_set_count_against_the_limit() {
        let mut rig = Rig::new(json!({}));
        let current: Vec<String> = (0..3).map(user_id).collect();
        let others: Vec<Value> = (10..13).map(|i| json!({"value": user_id(i)})).collect();
        let body = json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "Eng", "members": others});
        for (limit, refused) in [(2, true), (3, false)] {
            let cfg = rig.cfg.clone();
            let mut flow = GroupFlow::replace(
                BASE,
                Projection::default(),
                &cfg,
                ENG,
                body.to_string().as_bytes(),
            )
            .unwrap();
            flow.set_member_limits(10_000, limit);
            rig.step(&mut flow).unwrap();
            rig.reply(&mut flow, vec![term_reply(ENG, "Eng")]).unwrap();
            let step = rig.reply(&mut flow, vec![users_page(&current, false)]);
            if refused {
                let (status, out) = answer(step);
                assert_eq!((status, out["scimType"].as_str()), (400, Some("tooMany")));
                assert!(out["detail"].as_str().unwrap().contains("change 3 members"));
            } else {
                // The three new members are checked: the request goes ahead.
                assert!(calls(&step)[0].path.contains("[operator]=IN"));
            }
        }
        // Naming the members to remove is bounded by the request's size instead.
        let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": "members", "value": current.iter().map(|u| json!({"value": u})).collect::<Vec<_>>()}]});
        let cfg = rig.cfg.clone();
        let mut flow = GroupFlow::patch(
            BASE,
            Projection::default(),
            &cfg,
            ENG,
            ops.to_string().as_bytes(),
        )
        .unwrap();
        flow.set_member_limits(10_000, 2);
        rig.step(&mut flow).unwrap();
        let step = rig.reply(&mut flow, vec![term_reply(ENG, "Eng")]);
        assert!(calls(&step)[0].path.contains("[operator]=IN"));
    }

    #[test]
    fn if_match_guards_group_changes() {
        let mut rig = Rig::new(json!({}));
        let version = parse_term(&term(ENG, "Eng"), "scim_groups")
            .unwrap()
            .version();
        let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Platform"}]});
        for (if_match, expect_write) in [
            ("W/\"20260101000000-00000000\"", false),
            (version.as_str(), true),
            ("*", true),
        ] {
            let cfg = rig.cfg.clone();
            let mut flow = GroupFlow::patch(
                BASE,
                Projection::default(),
                &cfg,
                ENG,
                ops.to_string().as_bytes(),
            )
            .unwrap();
            flow.set_if_match(Some(if_match));
            rig.step(&mut flow).unwrap();
            let step = rig.reply(&mut flow, vec![term_reply(ENG, "Eng")]);
            if expect_write {
                assert!(calls(&step)[0].path.contains("filter[name]=Platform"));
                rig.abandon(&mut flow, 0);
            } else {
                assert_eq!(answer(step).0, 412, "{if_match}");
            }
        }
    }

    /// A create of `Eng` with two members, up to the member writes.
    fn create_until_adds(rig: &mut Rig) -> (GroupFlow, [String; 2]) {
        let members = [user_id(1), user_id(2)];
        let body = json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "Eng",
            "members": [{"value": members[0]}, {"value": members[1]}]});
        let cfg = rig.cfg.clone();
        let mut flow = GroupFlow::create(
            BASE,
            Projection::default(),
            &cfg,
            body.to_string().as_bytes(),
        )
        .unwrap();
        rig.step(&mut flow).unwrap();
        rig.reply(&mut flow, vec![users_page(&members, false)])
            .unwrap();
        let step = rig.reply(&mut flow, vec![users_page(&[], false)]);
        assert_eq!(calls(&step)[0].method, "POST", "the term is created");
        let step = rig.reply(
            &mut flow,
            vec![DrupalReply::json(201, json!({"data": term(ENG, "Eng")}))],
        );
        assert_eq!(calls(&step).len(), 2, "both members are added");
        (flow, members)
    }

    #[test]
    fn a_create_whose_adds_fail_is_undone() {
        let mut rig = Rig::new(json!({}));
        let (mut flow, [one, two]) = create_until_adds(&mut rig);
        // The first add lands; the second fails.
        let step = rig.reply(
            &mut flow,
            vec![no_content(), DrupalReply::json(500, json!({"errors": []}))],
        );
        assert_eq!(calls(&step).len(), 1, "the landed add is confirmed");
        let step = rig.reply(&mut flow, vec![memberships(&[ENG])]);
        // Undo: both removed (the failed add may have landed), confirmed, term deleted.
        let c = calls(&step);
        assert!(
            c.len() == 2 && c.iter().all(|c| c.method == "DELETE"),
            "{c:?}"
        );
        rig.reply(&mut flow, vec![no_content(), no_content()])
            .unwrap();
        let step = rig.reply(
            &mut flow,
            vec![memberships_of(&[(one.clone(), &[]), (two.clone(), &[])])],
        );
        let c = calls(&step);
        assert_eq!(
            (c[0].method, c[0].path.as_str()),
            (
                "DELETE",
                format!("/jsonapi/taxonomy_term/scim_groups/{ENG}").as_str()
            )
        );
        let step = rig.reply(&mut flow, vec![no_content()]);
        assert!(calls(&step)[0].path.contains("scim_tid"), "the sweep");
        let (status, body) = answer(rig.reply(&mut flow, vec![users_page(&[], false)]));
        assert_eq!(status, 502);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("not created"), "{detail}");
        assert!(detail.contains(&two), "the failure is named: {detail}");
        assert!(detail.contains("again is safe"), "{detail}");
    }

    #[test]
    fn a_create_that_cannot_be_undone_says_what_exists() {
        let mut rig = Rig::new(json!({}));
        let (mut flow, [one, two]) = create_until_adds(&mut rig);
        let step = rig.reply(
            &mut flow,
            vec![no_content(), DrupalReply::json(500, json!({"errors": []}))],
        );
        assert_eq!(calls(&step).len(), 1);
        let step = rig.reply(&mut flow, vec![memberships(&[ENG])]);
        // Removing the landed member fails, so the term stays.
        let replies = calls(&step)
            .iter()
            .map(|c| match c.path.contains(&one) {
                true => DrupalReply::json(503, json!({"errors": []})),
                false => no_content(),
            })
            .collect();
        rig.reply(&mut flow, replies).unwrap();
        let step = rig.reply(&mut flow, vec![memberships(&[])]);
        let (status, body) = answer(step);
        assert_eq!(status, 502);
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("The group exists (id `{ENG}`)")),
            "{detail}"
        );
        assert!(
            detail.contains(&format!("some of them: {one}")),
            "who may still be a member: {detail}"
        );
        assert!(detail.contains(&two), "the failed add: {detail}");
        assert!(!detail.contains("again is safe"), "{detail}");
        assert!(
            detail.contains(&format!("DELETE /Groups/{ENG}")),
            "{detail}"
        );
    }

    #[test]
    fn a_create_without_a_clear_answer_looks_for_the_group() {
        let mut rig = Rig::new(json!({}));
        let body = json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "Eng"});
        let cfg = rig.cfg.clone();
        let start = |rig: &mut Rig| {
            let mut flow = GroupFlow::create(
                BASE,
                Projection::default(),
                &cfg,
                body.to_string().as_bytes(),
            )
            .unwrap();
            rig.step(&mut flow).unwrap();
            let step = rig.reply(&mut flow, vec![users_page(&[], false)]);
            assert_eq!(calls(&step)[0].method, "POST");
            let step = rig.reply(&mut flow, vec![DrupalReply::json(504, Value::Null)]);
            assert!(
                calls(&step)[0].path.contains("filter[name]=Eng"),
                "Drupal may have created it: looked for"
            );
            flow
        };
        // It was created after all: the create goes on (and answers 201).
        let mut flow = start(&mut rig);
        let step = rig.reply(
            &mut flow,
            vec![DrupalReply::json(200, json!({"data": [term(ENG, "Eng")]}))],
        );
        assert_eq!(answer(step).0, 201);
        // It was not: the answer says so.
        let mut flow = start(&mut rig);
        let (status, out) = answer(rig.reply(&mut flow, vec![users_page(&[], false)]));
        assert_eq!(status, 504);
        assert!(out["detail"]
            .as_str()
            .unwrap()
            .contains("No group of this name exists now"));
        // A refusal is no unknown outcome: answered as it is.
        let mut flow = GroupFlow::create(
            BASE,
            Projection::default(),
            &cfg,
            body.to_string().as_bytes(),
        )
        .unwrap();
        rig.step(&mut flow).unwrap();
        rig.reply(&mut flow, vec![users_page(&[], false)]).unwrap();
        let refused = DrupalReply::json(422, json!({"errors": [{"detail": "name: bad"}]}));
        assert_eq!(answer(rig.reply(&mut flow, vec![refused])).0, 400);
    }

    #[test]
    fn a_create_with_role_grants_reads_the_roles_before_creating_anything() {
        let mut rig = Rig::new(json!({"role_grants": {"Eng": ["developer"]}}));
        let body = json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "Eng",
            "members": [{"value": user_id(1)}]});
        let cfg = rig.cfg.clone();
        let mut flow = GroupFlow::create(
            BASE,
            Projection::default(),
            &cfg,
            body.to_string().as_bytes(),
        )
        .unwrap();
        let step = rig.step(&mut flow);
        assert!(calls(&step)[0].path.contains("/user_role/user_role"));
        // The role is missing: refused before the term is created.
        let (status, _) =
            answer(rig.reply(&mut flow, vec![DrupalReply::json(200, json!({"data": []}))]));
        assert_eq!(status, 502);
    }

    #[test]
    fn a_granted_role_that_administers_users_or_permissions_is_never_granted() {
        let role = |perms: Value, is_admin: bool| {
            json!({"data": [{"type": "user_role--user_role", "id": "r1", "attributes": {
                "drupal_internal__id": "developer", "is_admin": is_admin, "permissions": perms}},
                {"type": "user_role--user_role", "id": "r2", "attributes": {
                "drupal_internal__id": "other", "is_admin": true, "permissions": []}}]})
        };
        for (doc, says) in [
            (
                role(json!(["access content", "administer users"]), false),
                "holds 'administer users'",
            ),
            (
                role(json!(["administer permissions"]), false),
                "holds 'administer permissions'",
            ),
            (role(json!([]), true), "is_admin"),
        ] {
            let mut rig = Rig::new(json!({"role_grants": {"Eng": ["developer"]}}));
            let body = json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "Eng",
                "members": [{"value": user_id(1)}]});
            let cfg = rig.cfg.clone();
            let mut flow = GroupFlow::create(
                BASE,
                Projection::default(),
                &cfg,
                body.to_string().as_bytes(),
            )
            .unwrap();
            let step = rig.step(&mut flow);
            let path = &calls(&step)[0].path;
            assert!(
                path.contains("drupal_internal__id%2Cis_admin%2Cpermissions"),
                "{path}"
            );
            let step = rig.reply(&mut flow, vec![DrupalReply::json(200, doc)]);
            // An answer, no call: nothing is written.
            let (status, body) = answer(step);
            assert_eq!(status, 403);
            let detail = body["detail"].as_str().unwrap();
            assert!(
                detail.contains("`developer`") && detail.contains(says),
                "{detail}"
            );
        }
        // A role of none of these kinds (`other`, an administrator role, is not granted).
        let ok = crate::drupal::groups::dangerous_grant(
            &role(json!(["access content"]), false),
            &["developer"],
        );
        assert_eq!(ok, None);
    }

    #[test]
    fn the_warning_names_at_most_ten_accounts_once_each() {
        assert_eq!(left_out_warning(&[]), None);
        let left: Vec<LeftOut> = (0..12)
            .flat_map(|i| {
                let member = Protected {
                    uuid: user_id(i),
                    uid: u64::try_from(i).unwrap(),
                    why: "x".into(),
                };
                [
                    LeftOut {
                        member: member.clone(),
                        change: Change::Add,
                    },
                    LeftOut {
                        member,
                        change: Change::Remove,
                    },
                ]
            })
            .collect();
        let (name, value) = left_out_warning(&left).unwrap();
        assert_eq!(name, "warning");
        assert!(value.starts_with("299 scim-gateway \"The membership of 12 account(s)"));
        assert!(value.contains(&user_id(9)) && !value.contains(&user_id(10)));
        assert!(
            value.ends_with("and 2 more. Every other change was applied.\""),
            "{value}"
        );
        assert_eq!(value.matches(&user_id(0)).count(), 1);
        assert!(value.is_ascii());
    }

    #[test]
    fn a_stream_that_ends_mid_flight_gives_up_the_name_lock() {
        let mut rig = Rig::new(json!({}));
        let body = json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "Eng"});
        let cfg = rig.cfg.clone();
        let key = name_lock_key("Eng");
        // While the name check (a read) is out: released at once.
        let mut flow = GroupFlow::create(
            BASE,
            Projection::default(),
            &cfg,
            body.to_string().as_bytes(),
        )
        .unwrap();
        rig.step(&mut flow).unwrap();
        assert!(!rig.locks.try_lock(&key, "other", rig.now_ms, 10_000));
        rig.abandon(&mut flow, 500);
        assert!(rig.locks.try_lock(&key, "other", rig.now_ms, 10_000));
        rig.locks.unlock(&key, "other");
        // While the create (a write) is out: kept for the grace only.
        let mut flow = GroupFlow::create(
            BASE,
            Projection::default(),
            &cfg,
            body.to_string().as_bytes(),
        )
        .unwrap();
        rig.step(&mut flow).unwrap();
        let step = rig.reply(&mut flow, vec![users_page(&[], false)]);
        assert_eq!(calls(&step)[0].method, "POST");
        rig.abandon(&mut flow, 500);
        assert!(!rig.locks.try_lock(&key, "other", rig.now_ms + 400, 10_000));
        assert!(rig.locks.try_lock(&key, "other", rig.now_ms + 600, 10_000));
    }
}
