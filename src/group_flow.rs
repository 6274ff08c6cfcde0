//! The `/Groups` endpoints as a sans-IO flow: a queue of tasks (read the term, check the
//! name is free, walk the members, change memberships, …), each of which makes Drupal calls
//! and digests the replies, and a final answer.

use crate::discovery;
use crate::drupal::{expect_document, map_failure, DRUPAL_PAGE_MAX};
use crate::error::{ScimError, ScimType};
use crate::filter::parse_attr_path;
use crate::group::{
    check_display_name, member_ids, parse_group_body, parse_roles, parse_term, unknown_members,
    GroupCalls, GroupsConfig, Member, Term,
};
use crate::http::{scim_json, DrupalCall, DrupalReply, Response, Step};
use crate::mapping::{FieldMap, Kind, Target, UserMapping};
use crate::membership::{Batch, Change, Env, Outcome};
use crate::patch::{self, OpKind};
use crate::projection::Projection;
use crate::user_filter;
use serde_json::Value;
use std::collections::VecDeque;

/// Group names are compared without case; this lock keeps concurrent creates (and renames)
/// of one name in this Envoy down to one.
fn name_lock_key(name: &str) -> String {
    format!("scim/group-name/{}", name.to_lowercase())
}

/// Rounds a name check waits for another request creating the same name, at most (a safety
/// net: the real limit is the lock time-out).
const MAX_NAME_WAITS: u32 = 10_000;
/// Member pages read at once for one group, at most: a walk reads one page, then twice as
/// many each round while the group proves larger (1, 2, 4, 4, …), so a small group costs one
/// call and a large one a fifth of the rounds, at the price of at most 3 reads past its end
/// (and no more of a small Drupal's PHP workers than a few).
const MAX_MEMBER_PAGES_AT_ONCE: usize = 4;
/// Member pages read at once by one request (all its groups together), at most.
const MAX_MEMBER_PAGES_PER_ROUND: usize = 16;

/// The filterable attributes of a Group, as a mapping onto term fields.
fn group_mapping() -> UserMapping {
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
enum Task {
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
        pager: Option<crate::paging::Pager>,
        /// The reads of the round in flight.
        reads: Vec<crate::paging::Read>,
        /// The window's pages read: (offset, terms).
        pages: Vec<(usize, Vec<Term>)>,
    },
}

/// What the members should become.
#[derive(Debug, Default)]
struct MemberPlan {
    /// Operations in order; `None` = remove everyone.
    ops: Vec<(Change, Option<Vec<String>>)>,
    /// The whole set replaces the current one.
    replace: Option<Vec<String>>,
}

impl MemberPlan {
    fn needs_current(&self) -> bool {
        self.replace.is_some() || self.ops.iter().any(|(_, ids)| ids.is_none())
    }

    fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.replace.is_none()
    }
}

/// Where one group's member walk stands.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WalkCursor {
    /// Drupal offset of the next page to read.
    next_offset: usize,
    done: bool,
    /// Pages to read in the next round.
    pages_at_once: usize,
}

/// A create whose member adds failed is undone (the adds that landed, then the term), so
/// that nothing is left behind a "retry" answer.
#[derive(Debug)]
struct Undo {
    /// What went wrong with the adds (the answer, once undone).
    failures: Vec<String>,
    /// Users whose add may have landed (applied, or failed in an unknown way).
    added: Vec<String>,
    /// The term is deleted: the create is undone.
    term_deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Created,
    Resource,
    NoContent,
    List,
}

#[derive(Debug)]
pub struct GroupFlow {
    base_url: String,
    projection: Projection,
    tasks: VecDeque<Task>,
    answer: Answer,
    /// The group(s) at hand.
    terms: Vec<Term>,
    /// Members per term, when read.
    members: Vec<Option<Vec<Member>>>,
    /// Per group being read, where its walk stands.
    walk: Vec<WalkCursor>,
    /// For each call of the walk round in flight, the group it reads.
    walk_round: Vec<usize>,
    /// Member rows read so far (all groups).
    members_read: usize,
    /// Most members one request reads (`groups.max_members_read`).
    max_members_read: usize,
    /// Most members one request changes without naming them, and most it names
    /// (`limits.max_members_per_request`).
    max_changes: usize,
    /// `If-Match` of a change: the group's version must match it.
    if_match: Option<String>,
    /// The term's name or externalId was changed (told in a later failure's answer).
    term_changed: bool,
    /// Undoing a create whose member adds failed.
    undo: Option<Undo>,
    plan: MemberPlan,
    batch: Option<Batch>,
    roles: Vec<(String, String)>,
    name_locked: Option<String>,
    total: usize,
    start_index: usize,
    post_filter: Option<crate::filter::Filter>,
    want_members: bool,
    /// Role grants are configured and the request renames the group.
    resync_roles: bool,
    /// The name the request gives the group.
    new_name: Option<String>,
    /// Most Drupal pages read to check a filter Drupal cannot answer exactly.
    max_checked_pages: usize,
    /// A user query succeeded, which proves Drupal accepted the service account.
    users_read: bool,
    /// Which accounts SCIM may not write (`None`: no check, in unit tests of other parts).
    protection: Option<crate::protection::Protection>,
    /// Current members SCIM may not write, with the reason.
    read_only: Vec<(String, String)>,
}

/// Why SCIM may not write the account of this JSON:API user resource, if it may not.
fn member_refusal(protection: &crate::protection::Protection, resource: &Value) -> Option<String> {
    let uid = resource
        .pointer("/attributes/drupal_internal__uid")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let name = resource
        .pointer("/attributes/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    protection.refusal(uid, name, &crate::protection::roles_of(resource))
}

/// A membership change that would write an account SCIM may not write: refused up front.
fn read_only_member(id: &str, why: &str) -> ScimError {
    ScimError::new(
        403,
        None,
        format!("Member `{id}` cannot be changed through SCIM: {why} Nothing was changed."),
    )
}

/// The uuid of the group a request acts on: the first term read (empty before it is known).
fn term_id(terms: &[Term]) -> String {
    terms.first().map(|t| t.uuid.clone()).unwrap_or_default()
}

impl GroupFlow {
    fn new(base_url: &str, projection: Projection, tasks: Vec<Task>, answer: Answer) -> Self {
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
            max_members_read: crate::group::DEFAULT_MAX_MEMBERS_READ,
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
        }
    }

    /// Membership changes are refused for accounts SCIM may not write.
    pub fn set_protection(&mut self, protection: crate::protection::Protection) {
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

    pub fn get(base_url: &str, projection: Projection, id: &str) -> Self {
        let mut tasks = vec![Task::GetTerm { id: id.to_string() }];
        if projection.wants("members") {
            tasks.push(Task::Walk);
        }
        tasks.push(Task::CheckAuth);
        Self::new(base_url, projection, tasks, Answer::Resource)
    }

    pub fn list(
        base_url: &str,
        projection: Projection,
        filter: Option<&str>,
        sort_by: Option<&str>,
        order: Option<&str>,
        start_index: usize,
        count: usize,
    ) -> Result<Self, ScimError> {
        let mapping = group_mapping();
        let query = match filter {
            None => user_filter::UserQuery::default(),
            Some(f) => user_filter::translate_in(f, &mapping, crate::group::GROUP_SCHEMA)?,
        };
        let conditions: Vec<(String, String)> = query
            .conditions
            .iter()
            .map(|(k, v)| {
                // Terms have no `created`; their first revision's time stands in for it.
                let v = if k.ends_with("[path]") && v == "created" {
                    "revision_created".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect();
        let sort = match sort_by {
            None => None,
            Some(s) => {
                let p = parse_attr_path(s)
                    .map_err(|e| ScimError::invalid_value(format!("`sortBy`: {e}.")))?;
                let field = if p.is("displayName") {
                    "name"
                } else if p.is_sub("meta", "lastModified") {
                    "changed"
                } else {
                    return Err(ScimError::invalid_value(format!(
                        "Cannot sort groups by `{s}`."
                    )));
                };
                let descending = order.is_some_and(|o| o.eq_ignore_ascii_case("descending"));
                Some(if descending {
                    format!("-{field}")
                } else {
                    field.to_string()
                })
            }
        };
        let mut flow = Self::new(base_url, projection, Vec::new(), Answer::List);
        flow.start_index = start_index;
        if query.matches_nothing {
            flow.tasks.push_back(Task::CheckAuth);
            return Ok(flow);
        }
        flow.post_filter = query.post_filter.clone();
        flow.tasks.push_back(Task::ListTerms {
            conditions,
            sort,
            // A superset is read from the start and cut in the gateway.
            offset: if query.post_filter.is_some() {
                0
            } else {
                start_index.saturating_sub(1)
            },
            count,
            start_index,
            post: query.post_filter.is_some(),
            pager: None,
            reads: Vec::new(),
            pages: Vec::new(),
        });
        if flow.want_members {
            flow.tasks.push_back(Task::Walk);
        }
        flow.tasks.push_back(Task::CheckAuth);
        Ok(flow)
    }

    pub fn create(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        let write = parse_group_body(body)?;
        let members = write.members.unwrap_or_default();
        let mut tasks = Vec::new();
        if !members.is_empty() {
            tasks.push(Task::CheckUsers {
                adds: members.clone(),
                removes: Vec::new(),
            });
        }
        tasks.push(Task::CheckName {
            name: write.display_name.clone(),
            waits: 0,
            since: None,
        });
        tasks.push(Task::CreateTerm {
            name: write.display_name,
            external_id: write.external_id.flatten(),
        });
        let mut flow = Self::new(base_url, projection, tasks, Answer::Created);
        if !members.is_empty() {
            flow.plan.ops.push((Change::Add, Some(members)));
            flow.push_membership_tasks(groups);
        }
        flow.members = vec![Some(Vec::new())];
        Ok(flow)
    }

    pub fn replace(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        id: &str,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        let write = parse_group_body(body)?;
        let resync_roles = !groups.role_grants.is_empty();
        // Members are checked before anything changes; a PUT without `members` keeps them
        // (clearing a group because an IdP left the list out would lose data), and reads
        // them only when the answer shows them or a rename may change their roles.
        let mut tasks = vec![Task::GetTerm { id: id.to_string() }];
        if write.members.is_some() || resync_roles || projection.wants("members") {
            tasks.push(Task::Walk);
        }
        tasks.push(Task::Plan);
        let mut flow = Self::new(base_url, projection, tasks, Answer::Resource);
        if let Some(members) = write.members {
            flow.plan.replace = Some(members);
        }
        flow.resync_roles = resync_roles;
        flow.new_name = Some(write.display_name.clone());
        flow.tasks.push_back(Task::RenameTerm {
            name: write.display_name,
        });
        // PUT replaces: an absent externalId is cleared.
        flow.tasks.push_back(Task::SetExternalId {
            value: write.external_id.flatten(),
        });
        flow.push_membership_tasks(groups);
        Ok(flow)
    }

    pub fn patch(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        id: &str,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        let ops = patch::parse(body)?;
        let mut rename: Option<String> = None;
        let mut plan = MemberPlan::default();
        let member_op =
            |plan: &mut MemberPlan, op: OpKind, value: Option<&Value>| -> Result<(), ScimError> {
                match op {
                    OpKind::Add => plan.ops.push((Change::Add, Some(member_ids(value)?))),
                    OpKind::Replace => {
                        plan.ops.clear();
                        plan.replace = Some(member_ids(value)?);
                    }
                    OpKind::Remove => match value {
                        Some(v @ (Value::Array(_) | Value::Object(_))) => {
                            plan.ops.push((Change::Remove, Some(member_ids(Some(v))?)))
                        }
                        _ => plan.ops.push((Change::Remove, None)),
                    },
                }
                Ok(())
            };
        let mut set_name = |v: Option<&Value>| -> Result<(), ScimError> {
            match v {
                Some(Value::String(s)) => {
                    check_display_name(s)?;
                    rename = Some(s.clone());
                    Ok(())
                }
                _ => Err(ScimError::invalid_value("`displayName` must be a string.")),
            }
        };
        let mut external_id: Option<Option<String>> = None;
        for op in &ops {
            match &op.path {
                None => {
                    let Some(Value::Object(values)) = &op.value else { continue };
                    for (k, v) in values {
                        if k.eq_ignore_ascii_case("displayName") {
                            set_name(Some(v))?;
                        } else if k.eq_ignore_ascii_case("externalId") {
                            external_id = Some(crate::group::external_id_value(v)?);
                        } else if k.eq_ignore_ascii_case("members") {
                            member_op(&mut plan, op.op, Some(v))?;
                        }
                    }
                }
                                Some(p) if p.attr.is("externalId") => {
                    external_id = Some(match (op.op, &op.value) {
                        (OpKind::Remove, _) | (_, None) => None,
                        (_, Some(v)) => crate::group::external_id_value(v)?,
                    });
                }
                Some(p) if p.attr.is("displayName") => {
                    if op.op == OpKind::Remove {
                        return Err(ScimError::new(400, Some(ScimType::Mutability), "`displayName` is required and cannot be removed."));
                    }
                    set_name(op.value.as_ref())?;
                }
                Some(p) if p.attr.attr.eq_ignore_ascii_case("members") => match (&p.filter, op.op) {
                    (None, _) if p.sub_attr.is_none() && p.attr.sub_attr.is_none() => member_op(&mut plan, op.op, op.value.as_ref())?,
                    (Some(crate::filter::Filter::Compare { path, op: crate::filter::CompareOp::Eq, value: crate::filter::CompValue::Str(v) }), OpKind::Remove)
                        if path.is("value") =>
                    {
                        let ids = member_ids(Some(&serde_json::json!([{ "value": v }])))?;
                        plan.ops.push((Change::Remove, Some(ids)));
                    }
                    _ => {
                        return Err(ScimError::bad_request(
                            ScimType::InvalidPath,
                            format!("Unsupported members path `{}`; use `members` or `members[value eq \"…\"]` with remove.", op.raw_path.as_deref().unwrap_or("")),
                        ))
                    }
                },
                                // Not stored for groups: ignored, like unmapped User attributes.
                Some(_) => {}
            }
        }
        // Unknown members are found (Plan) before the rename, so a bad request changes nothing.
        let mut flow = Self::new(
            base_url,
            projection,
            vec![Task::GetTerm { id: id.to_string() }],
            Answer::NoContent,
        );
        // A rename may change the roles the group grants: its members are then all visited.
        let resync = rename.is_some() && !groups.role_grants.is_empty();
        if plan.needs_current() || resync {
            flow.tasks.push_back(Task::Walk);
        }
        let has_members = !plan.is_empty() || resync;
        flow.resync_roles = resync;
        flow.new_name = rename.clone();
        flow.plan = plan;
        if has_members {
            flow.tasks.push_back(Task::Plan);
        }
        if let Some(name) = rename {
            flow.tasks.push_back(Task::RenameTerm { name });
        }
        if let Some(value) = external_id {
            flow.tasks.push_back(Task::SetExternalId { value });
        }
        if has_members {
            flow.push_membership_tasks(groups);
        }
        Ok(flow)
    }

    pub fn delete(base_url: &str, groups: &GroupsConfig, id: &str) -> Self {
        let mut flow = Self::new(
            base_url,
            Projection::default(),
            vec![Task::GetTerm { id: id.to_string() }, Task::Walk],
            Answer::NoContent,
        );
        flow.plan.ops.push((Change::Remove, None));
        flow.tasks.push_back(Task::Plan);
        flow.push_membership_tasks(groups);
        flow.tasks.push_back(Task::DeleteTerm);
        flow.tasks.push_back(Task::SweepDangling);
        flow
    }

    fn push_membership_tasks(&mut self, groups: &GroupsConfig) {
        if !groups.role_grants.is_empty() {
            // The role table is read before anything changes (right after the group itself),
            // so that failing to read it leaves nothing half-done.
            let at = usize::from(matches!(self.tasks.front(), Some(Task::GetTerm { .. })));
            self.tasks.insert(at, Task::LoadRoles);
        }
        self.tasks.push_back(Task::Members);
    }

    /// The next calls, or the answer once every task is done.
    pub fn step(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        let step = self.next_step(groups, calls, env);
        step.map_err(|e| self.while_undoing(e))
    }

    fn next_step(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        loop {
            let Some(task) = self.tasks.front_mut() else {
                return Ok(self.answer_step(env));
            };
            let out: Vec<DrupalCall> = match task {
                Task::GetTerm { id } => vec![calls.get_term(id)],
                Task::CheckName { name, waits, since } => {
                    if env.locks.try_lock(
                        &name_lock_key(name),
                        env.owner,
                        env.now_ms,
                        env.lock_ttl_ms,
                    ) {
                        self.name_locked = Some(name.clone());
                    } else {
                        *waits = waits.saturating_add(1);
                        let started = *since.get_or_insert(env.now_ms);
                        if *waits > MAX_NAME_WAITS
                            || env.now_ms.saturating_sub(started) > env.lock_ttl_ms
                        {
                            return Err(ScimError::new(
                                503,
                                None,
                                "Another request is creating a group with this name; retry.",
                            )
                            .with_header("retry-after", "1"));
                        }
                    }
                    if self.name_locked.as_deref() == Some(name.as_str()) {
                        vec![calls.terms_named(name)]
                    } else {
                        vec![calls.pause(calls.terms_named(name))]
                    }
                }
                Task::CreateTerm { name, external_id } => {
                    vec![calls.create_term(name, external_id.as_deref())]
                }
                Task::FindCreated { name, .. } => vec![calls.terms_named(name)],
                Task::SetExternalId { value } => {
                    let current = self.terms.first().and_then(|t| t.external_id.clone());
                    if current == *value {
                        self.tasks.pop_front();
                        continue;
                    }
                    let id = term_id(&self.terms);
                    vec![calls.set_external_id(&id, value.as_deref())]
                }
                Task::RenameTerm { name } => {
                    let current = self
                        .terms
                        .first()
                        .map(|t| t.name.clone())
                        .unwrap_or_default();
                    if current == *name {
                        self.tasks.pop_front();
                        continue;
                    }
                    // A new name (not just new capitals) must be free: check it first.
                    if !current.eq_ignore_ascii_case(name)
                        && self.name_locked.as_deref() != Some(name.as_str())
                    {
                        let name = name.clone();
                        self.tasks.push_front(Task::CheckName {
                            name,
                            waits: 0,
                            since: None,
                        });
                        continue;
                    }
                    let id = term_id(&self.terms);
                    vec![calls.rename_term(&id, name)]
                }
                Task::Walk => {
                    let out = self.walk_calls(groups, calls)?;
                    if out.is_empty() {
                        self.tasks.pop_front();
                        continue;
                    }
                    out
                }
                Task::CheckAuth => {
                    if self.users_read {
                        self.tasks.pop_front();
                        continue;
                    }
                    vec![calls.check_service_account()]
                }
                Task::CheckUsers { adds, removes } => {
                    let ours: Vec<String> = adds
                        .iter()
                        .chain(removes.iter())
                        .filter(|i| crate::drupal::is_uuid(i))
                        .cloned()
                        .collect();
                    if ours.is_empty() {
                        if !adds.is_empty() {
                            // Not one of them could be a user: no need to ask Drupal.
                            return Err(unknown_members(adds));
                        }
                        self.tasks.pop_front();
                        continue;
                    }
                    ours.chunks(DRUPAL_PAGE_MAX)
                        .map(|c| calls.users_with_ids(c))
                        .collect()
                }
                Task::Plan => {
                    self.tasks.pop_front();
                    self.make_plan()?;
                    continue;
                }
                Task::LoadRoles => vec![calls.list_roles()],
                Task::Members => {
                    let Some(batch) = self.batch.as_mut() else {
                        self.tasks.pop_front();
                        continue;
                    };
                    if batch.is_finished() {
                        self.tasks.pop_front();
                        self.finish_members()?;
                        continue;
                    }
                    batch.next_calls(groups, calls, env)
                }
                Task::DeleteTerm => {
                    let id = term_id(&self.terms);
                    vec![calls.delete_term(&id)]
                }
                Task::SweepDangling => match self.terms.first().and_then(|t| t.tid) {
                    Some(tid) => vec![calls.users_referencing_tid(tid)],
                    None => {
                        self.tasks.pop_front();
                        continue;
                    }
                },
                Task::ListTerms {
                    conditions,
                    sort,
                    offset,
                    count,
                    post,
                    pager,
                    reads,
                    ..
                } => {
                    if *post {
                        vec![calls.list_terms(
                            conditions,
                            sort.as_deref(),
                            *offset,
                            DRUPAL_PAGE_MAX,
                        )]
                    } else {
                        if pager.is_none() {
                            let (p, first) = crate::paging::Pager::start(*offset, *count, None);
                            *pager = Some(p);
                            *reads = first;
                        }
                        reads
                            .iter()
                            .map(|r| {
                                if r.window {
                                    calls.list_terms(conditions, sort.as_deref(), r.offset, r.limit)
                                } else {
                                    calls.count_terms(conditions, r.offset, r.limit)
                                }
                            })
                            .collect()
                    }
                }
            };
            return Ok(Step::Call(out));
        }
    }

    /// Digests the replies to the calls `step` returned.
    pub fn on_replies(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut Env,
        replies: &[DrupalReply],
    ) -> Result<(), ScimError> {
        let taken = self.take_replies(groups, calls, env, replies);
        taken.map_err(|e| self.while_undoing(e))
    }

    fn take_replies(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut Env,
        replies: &[DrupalReply],
    ) -> Result<(), ScimError> {
        let first = replies.first().cloned().unwrap_or(DrupalReply::Failed);
        let Some(task) = self.tasks.front_mut() else {
            return Ok(());
        };
        match task {
            Task::GetTerm { .. } => {
                if let DrupalReply::Answer { status: 404, .. } = first {
                    return Err(ScimError::not_found("Group not found."));
                }
                let doc = expect_document(&first, &[200])?;
                let term = doc
                    .get("data")
                    .and_then(|d| parse_term(d, &groups.vocabulary))
                    .ok_or_else(|| ScimError::not_found("Group not found."))?;
                if let Some(if_match) = &self.if_match {
                    if !crate::exchange::etag_matches(if_match, &term.version()) {
                        return Err(crate::exchange::precondition_failed());
                    }
                }
                self.terms = vec![term];
                self.tasks.pop_front();
            }
            Task::CheckName { name, .. } => {
                if self.name_locked.as_deref() != Some(name.as_str()) {
                    return Ok(()); // still waiting for the lock
                }
                let doc = expect_document(&first, &[200])?;
                let own = self.terms.first().map(|t| t.uuid.clone());
                let taken = doc
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| parse_term(d, &groups.vocabulary))
                    .any(|t| {
                        t.name.to_lowercase() == name.to_lowercase()
                            && Some(&t.uuid) != own.as_ref()
                    });
                if taken {
                    return Err(ScimError::conflict(format!(
                        "A group named `{name}` already exists."
                    )));
                }
                self.tasks.pop_front();
            }
            Task::CreateTerm { name, .. } => {
                let unknown_outcome = matches!(
                    first,
                    DrupalReply::Failed
                        | DrupalReply::Answer {
                            status: 500..=599,
                            ..
                        }
                );
                let doc = match expect_document(&first, &[201]) {
                    Ok(doc) => doc,
                    Err(failure) if unknown_outcome => {
                        let name = name.clone();
                        self.tasks.pop_front();
                        self.tasks.push_front(Task::FindCreated { name, failure });
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                let term = doc
                    .get("data")
                    .and_then(|d| parse_term(d, &groups.vocabulary))
                    .ok_or_else(|| {
                        ScimError::bad_gateway("Drupal's answer to the group create is not a term.")
                    })?;
                self.terms = vec![term.clone()];
                self.release_name(env);
                if !self.plan.is_empty() {
                    self.make_plan()?;
                }
                self.tasks.pop_front();
            }
            Task::FindCreated { name, failure } => {
                let search = format!("filter=displayName eq \"{name}\"");
                let doc = match expect_document(&first, &[200]) {
                    Ok(doc) => doc,
                    Err(_) => {
                        let mut e = failure.clone();
                        e.detail = format!(
                            "{} The group may have been created all the same: look for it (`{search}`) before sending the create again.",
                            e.detail
                        );
                        return Err(e);
                    }
                };
                let created = doc
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| parse_term(d, &groups.vocabulary))
                    .find(|t| t.name.to_lowercase() == name.to_lowercase());
                let Some(term) = created else {
                    let mut e = failure.clone();
                    e.detail = format!(
                        "{} No group of this name exists now, so sending the create again is safe; if Drupal was only slow, the group may still appear: look for it (`{search}`) first.",
                        e.detail
                    );
                    return Err(e);
                };
                // Drupal did create it (the name's lock kept other creates of it out): go on.
                self.terms = vec![term];
                self.release_name(env);
                if !self.plan.is_empty() {
                    self.make_plan()?;
                }
                self.tasks.pop_front();
            }
            Task::SetExternalId { .. } | Task::RenameTerm { .. } => {
                let doc = expect_document(&first, &[200])?;
                if let Some(t) = doc
                    .get("data")
                    .and_then(|d| parse_term(d, &groups.vocabulary))
                {
                    self.terms = vec![t];
                }
                self.term_changed = true;
                self.release_name(env);
                self.tasks.pop_front();
            }
            Task::Walk => {
                self.on_member_pages(groups, replies)?;
                if self.walk.iter().all(|w| w.done) {
                    self.tasks.pop_front();
                }
            }
            Task::CheckAuth => {
                expect_document(&first, &[200])?;
                self.users_read = true;
                self.tasks.pop_front();
            }
            Task::CheckUsers { adds, .. } => {
                let mut found: Vec<String> = Vec::new();
                for r in replies {
                    let doc = expect_document(r, &[200])?;
                    for d in doc
                        .get("data")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(id) = d.get("id").and_then(Value::as_str) {
                            if let Some(why) =
                                self.protection.as_ref().and_then(|p| member_refusal(p, d))
                            {
                                return Err(read_only_member(id, &why));
                            }
                            found.push(id.to_string());
                        }
                    }
                }
                let missing: Vec<String> = adds
                    .iter()
                    .filter(|i| !found.contains(i))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Err(unknown_members(&missing));
                }
                self.tasks.pop_front();
            }
            Task::LoadRoles => {
                let doc = expect_document(&first, &[200])?;
                self.roles = parse_roles(&doc);
                if let Some(missing) = groups
                    .managed_roles()
                    .into_iter()
                    .find(|r| !self.roles.iter().any(|(n, _)| n == r))
                {
                    return Err(ScimError::bad_gateway(format!(
                        "The role `{missing}` named in the gateway's role grants does not exist in Drupal (or the service account lacks 'administer permissions')."
                    )));
                }
                if let Some(b) = self.batch.as_mut() {
                    b.set_roles(self.roles.clone());
                }
                self.tasks.pop_front();
            }
            Task::Members => {
                if let Some(b) = self.batch.as_mut() {
                    b.on_replies(groups, calls, env, replies);
                }
            }
            Task::SweepDangling => {
                self.tasks.pop_front();
                let doc = match expect_document(&first, &[200]) {
                    Ok(doc) => doc,
                    // The undone create is answered as it is: a reference left to its deleted
                    // term is repaired at the user's next change.
                    Err(_) if self.undo.is_some() => return Ok(()),
                    Err(e) => return Err(e),
                };
                let users: Vec<(String, Change)> = doc
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.get("id").and_then(Value::as_str))
                    .filter(|id| crate::drupal::is_uuid(id))
                    .map(|id| (id.to_string(), Change::Sync))
                    .collect();
                if !users.is_empty() {
                    let term = term_id(&self.terms);
                    self.batch = Some(Batch::new(&term, users, self.roles.clone()));
                    self.tasks.push_front(Task::Members);
                }
            }
            Task::DeleteTerm => {
                match &first {
                    DrupalReply::Answer {
                        status: 204 | 404, ..
                    } => {}
                    other if self.undo.is_some() => return Err(map_failure(other)),
                    other => {
                        let mut e = map_failure(other);
                        e.detail = format!(
                            "Every member was removed from the group, but deleting it failed: {} It exists with no members; sending the DELETE again is safe.",
                            e.detail
                        );
                        return Err(e);
                    }
                }
                if let Some(undo) = self.undo.as_mut() {
                    undo.term_deleted = true;
                }
                self.tasks.pop_front();
            }
            Task::ListTerms {
                offset,
                count,
                start_index,
                post: true,
                ..
            } => {
                // Drupal's answer is a superset: keep the matches, read on.
                let doc = expect_document(&first, &[200])?;
                let mut terms: Vec<Term> = doc
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| parse_term(d, &groups.vocabulary))
                    .collect();
                let more = doc.pointer("/links/next").is_some();
                let mapping = group_mapping();
                if let Some(f) = &self.post_filter {
                    terms.retain(|t| {
                        crate::filter_eval::matches(f, &t.to_scim(&self.base_url, None), &mapping)
                    });
                }
                self.terms.extend(terms);
                if more {
                    if *offset >= self.max_checked_pages.saturating_mul(DRUPAL_PAGE_MAX) {
                        return Err(ScimError::new(400, Some(ScimType::TooMany), "The filter needs more groups checked than the gateway reads for one request; narrow it."));
                    }
                    *offset = offset.saturating_add(DRUPAL_PAGE_MAX);
                    return Ok(());
                }
                self.total = self.terms.len();
                let skip = start_index.saturating_sub(1);
                self.terms = self.terms.iter().skip(skip).take(*count).cloned().collect();
                self.tasks.pop_front();
            }
            Task::ListTerms {
                count,
                pager: Some(pager),
                reads,
                pages,
                ..
            } => {
                let mut round = Vec::with_capacity(reads.len());
                for (read, reply) in reads.iter().zip(replies) {
                    let doc = expect_document(reply, &[200])?;
                    let data = doc.get("data").and_then(Value::as_array);
                    round.push((
                        *read,
                        crate::paging::Found {
                            len: data.map(Vec::len).unwrap_or(0),
                            has_next: doc.pointer("/links/next").is_some(),
                        },
                    ));
                    if read.window {
                        let terms = data
                            .into_iter()
                            .flatten()
                            .filter_map(|d| parse_term(d, &groups.vocabulary))
                            .collect();
                        pages.push((read.offset, terms));
                    }
                }
                match pager.learn(&round) {
                    crate::paging::Next::Read(next) => {
                        *reads = next;
                        return Ok(());
                    }
                    crate::paging::Next::Total(total) => self.total = total,
                    crate::paging::Next::GaveUp => {
                        return Err(ScimError::new(
                            503,
                            None,
                            "The group list kept changing while it was counted; retry.",
                        ))
                    }
                }
                pages.sort_by_key(|(offset, _)| *offset);
                let count = *count;
                self.terms = std::mem::take(pages)
                    .into_iter()
                    .flat_map(|(_, terms)| terms)
                    .take(count)
                    .collect();
                self.tasks.pop_front();
            }
            Task::ListTerms { .. } => {
                return Err(ScimError::internal(
                    "A group list was read before it started.",
                ))
            }
            Task::Plan => {
                self.tasks.pop_front();
            }
        }
        Ok(())
    }

    /// Members named in the request (the new member set, and the ids of add/remove lists).
    fn named_members(&self) -> usize {
        let listed: usize = self
            .plan
            .ops
            .iter()
            .filter_map(|(_, ids)| ids.as_ref().map(Vec::len))
            .sum();
        listed.saturating_add(self.plan.replace.as_ref().map_or(0, Vec::len))
    }

    /// The request gives the group a new name (not just new capitals).
    fn renames(&self) -> bool {
        let current = self.terms.first().map(|t| t.name.as_str()).unwrap_or("");
        self.new_name
            .as_ref()
            .is_some_and(|n| !n.eq_ignore_ascii_case(current))
    }

    /// The request changes members it does not name: removes current ones (DELETE, remove
    /// all, a new member set), or brings every member's roles in line after a rename.
    fn derives_changes(&self) -> bool {
        self.plan.needs_current() || (self.resync_roles && self.renames())
    }

    /// The request changes the group (its reading of the members serves a change).
    fn changes_group(&self) -> bool {
        self.tasks.iter().any(|t| matches!(t, Task::Plan))
    }

    /// Most member rows this request reads: the read cap, and for a change derived from the
    /// current members, no more than can still keep it within the change limit (at least
    /// current − named members change, so past that the request is refused anyway).
    fn walk_cap(&self) -> usize {
        if self.derives_changes() {
            self.max_members_read
                .min(self.max_changes.saturating_add(self.named_members()))
        } else {
            self.max_members_read
        }
    }

    /// The walk found more members than the request may read or change: refused whole (a
    /// group is never answered with part of its members).
    fn too_many_members(&self) -> ScimError {
        let cap = self.walk_cap();
        if self.derives_changes() && cap < self.max_members_read {
            return self.too_many_changes(None);
        }
        let name = self.terms.first().map(|t| t.name.as_str()).unwrap_or("");
        let detail = if self.answer == Answer::List {
            format!(
                "The groups of this page have more than {cap} members together, more than the gateway reads for one request (`groups.max_members_read`); it does not answer with part of them. Ask for fewer groups (`count`), or leave the members out (`excludedAttributes=members`)."
            )
        } else if self.changes_group() {
            format!(
                "Group `{name}` has more than {cap} members, more than the gateway reads for one request (`groups.max_members_read`). Nothing was changed."
            )
        } else {
            format!(
                "Group `{name}` has more than {cap} members, more than the gateway reads for one request (`groups.max_members_read`); it does not answer with part of them. Read the group with `excludedAttributes=members`."
            )
        };
        ScimError::new(400, Some(ScimType::TooMany), detail)
    }

    /// The request would change more members it does not name than one request may change
    /// (`derived`: how many, when known).
    fn too_many_changes(&self, derived: Option<usize>) -> ScimError {
        let name = self.terms.first().map(|t| t.name.as_str()).unwrap_or("");
        let max = self.max_changes;
        let count = derived.map_or_else(|| format!("more than {max}"), |n| n.to_string());
        let deleting = self.tasks.iter().any(|t| matches!(t, Task::DeleteTerm));
        let hint = if deleting {
            format!("Remove its members first with PATCH requests of at most {max} members each (`remove` with a value list), then delete it.")
        } else {
            format!("Change the members with PATCH requests of at most {max} members each (`add` and `remove` with value lists).")
        };
        ScimError::new(
            400,
            Some(ScimType::TooMany),
            format!(
                "Group `{name}`: this request would change {count} members it does not name (removing current members, or updating their roles after a rename), more than the gateway changes in one request (`limits.max_members_per_request`: {max}). Nothing was changed. {hint}"
            ),
        )
    }

    /// The member pages to read next: for each group not read through yet, as many pages as
    /// it has earned (see `MAX_MEMBER_PAGES_AT_ONCE`), within the round's budget and no
    /// further than the cap.
    fn walk_calls(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
    ) -> Result<Vec<DrupalCall>, ScimError> {
        if self.walk.is_empty() {
            let start = WalkCursor {
                next_offset: 0,
                done: false,
                pages_at_once: 1,
            };
            self.walk = vec![start; self.terms.len()];
            self.members = vec![Some(Vec::new()); self.terms.len()];
        }
        let cap = self.walk_cap();
        // Enough pages to tell whether the groups hold more than the cap, and no more.
        let pages_to_cap =
            (cap.saturating_sub(self.members_read) / DRUPAL_PAGE_MAX).saturating_add(1);
        let mut budget = MAX_MEMBER_PAGES_PER_ROUND
            .min(groups.concurrency)
            .min(pages_to_cap)
            .max(1);
        let mut out = Vec::new();
        let mut round = Vec::new();
        for (group, cursor) in self.walk.iter().enumerate() {
            if cursor.done {
                continue;
            }
            if cursor.next_offset > cap {
                // More members follow than the request may read.
                return Err(self.too_many_members());
            }
            let term = self.terms.get(group).map(|t| t.uuid.as_str()).unwrap_or("");
            let mut offset = cursor.next_offset;
            for _ in 0..cursor.pages_at_once {
                if budget == 0 || offset > cap {
                    break;
                }
                out.push(calls.members_page(term, offset));
                round.push(group);
                budget = budget.saturating_sub(1);
                offset = offset.saturating_add(DRUPAL_PAGE_MAX);
            }
            if budget == 0 {
                break;
            }
        }
        self.walk_round = round;
        Ok(out)
    }

    /// Takes in a round of member pages (the replies to `walk_calls`, in order).
    fn on_member_pages(
        &mut self,
        groups: &GroupsConfig,
        replies: &[DrupalReply],
    ) -> Result<(), ScimError> {
        let round = std::mem::take(&mut self.walk_round);
        for (position, group) in round.iter().copied().enumerate() {
            if self.walk.get(group).is_none_or(|w| w.done) {
                // A page read past the end of a group that the page before it ended.
                continue;
            }
            let reply = replies.get(position).unwrap_or(&DrupalReply::Failed);
            let doc = expect_document(reply, &[200])?;
            self.users_read = true;
            let data = doc
                .get("data")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            self.members_read = self.members_read.saturating_add(data.len());
            for d in data {
                let uuid = d.get("id").and_then(Value::as_str);
                let name = d.pointer("/attributes/name").and_then(Value::as_str);
                match (uuid, name) {
                    // A retired account is no member any more.
                    (Some(_), Some(n))
                        if n.to_ascii_lowercase()
                            .starts_with(crate::user::RETIRED_NAME_PREFIX) => {}
                    (Some(u), Some(n)) => {
                        if let Some(why) =
                            self.protection.as_ref().and_then(|p| member_refusal(p, d))
                        {
                            self.read_only.push((u.to_string(), why));
                        }
                        if let Some(Some(list)) = self.members.get_mut(group) {
                            list.push(Member {
                                uuid: u.to_string(),
                                name: n.to_string(),
                            });
                        }
                    }
                    // Users without an id or a name are not what Drupal shows the service
                    // account: Drupal did not accept it.
                    _ => {
                        return Err(map_failure(&DrupalReply::Answer {
                            status: 403,
                            body: Vec::new(),
                        }))
                    }
                }
            }
            if let Some(cursor) = self.walk.get_mut(group) {
                cursor.next_offset = cursor.next_offset.saturating_add(DRUPAL_PAGE_MAX);
                cursor.done = doc.pointer("/links/next").is_none();
            }
        }
        // A group that filled its pages earns twice as many next round.
        let most = MAX_MEMBER_PAGES_AT_ONCE.min(groups.concurrency).max(1);
        for (group, cursor) in self.walk.iter_mut().enumerate() {
            if !cursor.done && round.contains(&group) {
                cursor.pages_at_once = cursor.pages_at_once.saturating_mul(2).min(most);
            }
        }
        if self.members_read > self.walk_cap() {
            return Err(self.too_many_members());
        }
        Ok(())
    }

    /// Concludes a finished membership batch: every change applied, or an answer that says
    /// what was applied and what failed; a create whose adds failed is undone instead.
    fn finish_members(&mut self) -> Result<(), ScimError> {
        let Some(batch) = self.batch.as_ref() else {
            return Ok(());
        };
        let failures: Vec<String> = batch
            .results
            .iter()
            .filter_map(|(u, _, o)| match o {
                Outcome::Done => None,
                Outcome::NoSuchUser => Some(format!("{u}: no such user")),
                Outcome::NoSuchGroup => Some(format!("{u}: no such group")),
                Outcome::Failed(why) => Some(format!("{u}: {why}")),
            })
            .collect();
        let done = batch.results.len().saturating_sub(failures.len());
        if let Some(undo) = &self.undo {
            if failures.is_empty() || undo.term_deleted {
                // Repairs after the undone term's delete are best effort: a reference left
                // to a deleted term is repaired at the user's next change.
                return Ok(());
            }
            return Err(ScimError::bad_gateway(format!(
                "removing the members added again failed ({})",
                failures.join("; ")
            )));
        }
        if batch
            .results
            .iter()
            .any(|(_, _, o)| matches!(o, Outcome::NoSuchGroup))
        {
            return Err(ScimError::not_found(format!(
                "The group was deleted while its members were being changed ({done} change(s) had been applied)."
            )));
        }
        if failures.is_empty() {
            return Ok(());
        }
        if self.answer == Answer::Created {
            // A retry of the create would meet its own group (409): undo it instead, the
            // adds that may have landed first (a failed add may have landed all the same).
            let added: Vec<String> = batch
                .results
                .iter()
                .filter(|(_, c, o)| *c == Change::Add && !matches!(o, Outcome::NoSuchUser))
                .map(|(u, _, _)| u.clone())
                .collect();
            let removals = added.iter().map(|u| (u.clone(), Change::Remove)).collect();
            self.batch = Some(Batch::new(
                &term_id(&self.terms),
                removals,
                self.roles.clone(),
            ));
            self.undo = Some(Undo {
                failures,
                added,
                term_deleted: false,
            });
            self.tasks.push_front(Task::SweepDangling);
            self.tasks.push_front(Task::DeleteTerm);
            self.tasks.push_front(Task::Members);
            return Ok(());
        }
        let failed = failures.len();
        let listed = failures.join("; ");
        if self.tasks.iter().any(|t| matches!(t, Task::DeleteTerm)) {
            return Err(ScimError::bad_gateway(format!(
                "{done} of the group's members were removed from it, {failed} removal(s) failed ({listed}); the group was not deleted. Sending the DELETE again is safe."
            )));
        }
        let mut detail =
            format!("{done} membership change(s) were applied, {failed} failed ({listed}).");
        if self.term_changed {
            detail.push_str(" The group's new displayName or externalId was saved.");
            if self.if_match.is_some() {
                detail.push_str(" That changed its version: send the request again with the new version (`GET` it) or without `If-Match`.");
            }
        }
        detail.push_str(" Sending the same request again is safe: adding a member twice or removing a non-member changes nothing.");
        Err(ScimError::bad_gateway(detail))
    }

    /// An error while undoing a create: the group exists after all, and the answer says so.
    fn while_undoing(&self, mut e: ScimError) -> ScimError {
        let Some(undo) = &self.undo else {
            return e;
        };
        if undo.term_deleted {
            return e;
        }
        let term = self.terms.first();
        let name = term.map(|t| t.name.as_str()).unwrap_or("");
        let id = term.map(|t| t.uuid.as_str()).unwrap_or("");
        // Who may still be a member: the adds that landed, less the removals that did.
        let removed: Vec<&str> = self
            .batch
            .iter()
            .flat_map(|b| b.results.iter())
            .filter(|(_, c, o)| *c == Change::Remove && *o == Outcome::Done)
            .map(|(u, _, _)| u.as_str())
            .collect();
        let left: Vec<&str> = undo
            .added
            .iter()
            .map(String::as_str)
            .filter(|u| !removed.contains(u))
            .collect();
        let members = if left.is_empty() {
            "no members".to_string()
        } else {
            format!("these members or some of them: {}", left.join(", "))
        };
        e.detail = format!(
            "Adding the members of the new group `{name}` failed ({}), and undoing the create failed too: {}. The group exists (id `{id}`) with {members}; delete it (`DELETE /Groups/{id}`) before sending the create again, or add the missing members with PATCH.",
            undo.failures.join("; "),
            e.detail.trim_end_matches('.')
        );
        if e.status < 500 {
            e.status = 502;
            e.scim_type = None;
        }
        e
    }

    fn release_name(&mut self, env: &mut Env) {
        if let Some(name) = self.name_locked.take() {
            env.locks.unlock(&name_lock_key(&name), env.owner);
        }
    }

    /// Releases what the flow holds when it ends early on an error (no call in flight).
    pub fn abandon(&mut self, env: &mut Env) {
        self.release_name(env);
        if let Some(b) = self.batch.as_mut() {
            b.release_all(env);
        }
    }

    /// Releases what the flow holds when its stream ends with calls in flight: at once where
    /// only a read is out, after `write_grace_ms` where a write may still land in Drupal.
    pub fn abandon_mid_flight(&mut self, env: &mut Env, write_grace_ms: u64) {
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

    /// Turns the member plan into per-user changes against the current members.
    fn make_plan(&mut self) -> Result<(), ScimError> {
        let Some(term) = self.terms.first().map(|t| t.uuid.clone()) else {
            return Ok(());
        };
        let current: Vec<String> = self
            .members
            .first()
            .cloned()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.uuid)
            .collect();
        let mut target: Vec<String> = self.plan.replace.clone().unwrap_or_else(|| current.clone());
        let mut explicit: Vec<(String, Change)> = Vec::new();
        for (change, ids) in &self.plan.ops {
            match (change, ids) {
                (Change::Remove, None) => target.clear(),
                (Change::Add, Some(ids)) => {
                    for id in ids {
                        if !target.contains(id) {
                            target.push(id.clone());
                        }
                        explicit.retain(|(u, _)| u != id);
                        explicit.push((id.clone(), Change::Add));
                    }
                }
                (Change::Remove, Some(ids)) => {
                    target.retain(|t| !ids.contains(t));
                    for id in ids {
                        explicit.retain(|(u, _)| u != id);
                        explicit.push((id.clone(), Change::Remove));
                    }
                }
                (Change::Add | Change::Sync, None) | (Change::Sync, Some(_)) => {}
            }
        }
        let mut changes: Vec<(String, Change)> = if self.plan.needs_current()
            || self.members.first().is_some_and(Option::is_some) && self.answer != Answer::Created
        {
            // Deltas against the members read just now.
            let mut c: Vec<(String, Change)> = target
                .iter()
                .filter(|t| !current.contains(t))
                .map(|t| (t.clone(), Change::Add))
                .collect();
            c.extend(
                current
                    .iter()
                    .filter(|m| !target.contains(m))
                    .map(|m| (m.clone(), Change::Remove)),
            );
            c
        } else {
            // Adds and removes need no read: each is idempotent on its own.
            explicit
        };
        if self.resync_roles && self.renames() {
            // A rename can change which roles the group grants: every remaining member's
            // roles are brought in line.
            for m in &target {
                if !changes.iter().any(|(u, _)| u == m) {
                    changes.push((m.clone(), Change::Sync));
                }
            }
        }
        if let Some(Some(list)) = self.members.first_mut() {
            list.retain(|m| target.contains(&m.uuid));
            for t in &target {
                if !list.iter().any(|m| &m.uuid == t) {
                    list.push(Member {
                        uuid: t.clone(),
                        name: String::new(),
                    });
                }
            }
        }
        // Accounts SCIM may not write keep their membership as it is: a change to one of them
        // refuses the whole request; a role resync after a rename passes them by.
        if let Some((id, why)) = self.read_only.iter().find(|(id, _)| {
            changes
                .iter()
                .any(|(u, c)| u == id && matches!(c, Change::Add | Change::Remove))
        }) {
            return Err(read_only_member(id, why));
        }
        changes
            .retain(|(u, c)| !(*c == Change::Sync && self.read_only.iter().any(|(id, _)| id == u)));
        // Changes the request does not name (removals of current members, role re-syncs)
        // are bounded like named members, and refused whole before anything changes.
        let named: std::collections::HashSet<&str> = self
            .plan
            .replace
            .iter()
            .flatten()
            .chain(
                self.plan
                    .ops
                    .iter()
                    .filter_map(|(_, ids)| ids.as_ref())
                    .flatten(),
            )
            .map(String::as_str)
            .collect();
        let derived = changes
            .iter()
            .filter(|(u, c)| match c {
                Change::Add => false,
                Change::Remove => !named.contains(u.as_str()),
                Change::Sync => true,
            })
            .count();
        if derived > self.max_changes {
            return Err(self.too_many_changes(Some(derived)));
        }
        let named = |change: Change| -> Vec<String> {
            changes
                .iter()
                .filter(|(_, c)| *c == change)
                .map(|(u, _)| u.clone())
                .collect()
        };
        let adds = named(Change::Add);
        // Removals of members not read just now are checked too.
        let removes: Vec<String> = named(Change::Remove)
            .into_iter()
            .filter(|u| !current.contains(u))
            .collect();
        if (!adds.is_empty() || !removes.is_empty()) && self.answer != Answer::Created {
            // New members must exist, and every member named be writable, before anything
            // changes.
            self.tasks.push_front(Task::CheckUsers { adds, removes });
        }
        // Only Drupal UUIDs go into Drupal URLs (others are no user: nothing to remove, and
        // adds of them were refused by the existence check).
        let changes = changes
            .into_iter()
            .filter(|(u, _)| crate::drupal::is_uuid(u))
            .collect();
        self.batch = Some(Batch::new(&term, changes, self.roles.clone()));
        Ok(())
    }

    fn answer_step(&mut self, env: &mut Env) -> Step {
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
        match self.answer {
            Answer::NoContent => Step::Respond(Response {
                status: 204,
                headers: Vec::new(),
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
    use crate::membership::{Locks, MemoryLocks};
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
            let mut env = Env {
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
                let mut env = Env {
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
            let mut env = Env {
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
        let body = json!({"schemas": [crate::group::GROUP_SCHEMA], "displayName": "Big"});
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
        let body = json!({"schemas": [crate::group::GROUP_SCHEMA], "displayName": "Eng", "members": others});
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
        let body = json!({"schemas": [crate::group::GROUP_SCHEMA], "displayName": "Eng",
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
        let body = json!({"schemas": [crate::group::GROUP_SCHEMA], "displayName": "Eng"});
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
        let body = json!({"schemas": [crate::group::GROUP_SCHEMA], "displayName": "Eng",
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
    fn a_stream_that_ends_mid_flight_gives_up_the_name_lock() {
        let mut rig = Rig::new(json!({}));
        let body = json!({"schemas": [crate::group::GROUP_SCHEMA], "displayName": "Eng"});
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
