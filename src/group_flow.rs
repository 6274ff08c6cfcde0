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
/// Member pages read at once per group while walking a large group.
const PAGES_AHEAD: usize = 1;

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
    RenameTerm {
        name: String,
    },
    /// Set the term's description to the group's `externalId` (if it differs).
    SetExternalId {
        value: Option<String>,
    },
    /// Read every member of `terms` (page by page).
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
        /// The first page was read (the rest of the window is read concurrently).
        first_read: bool,
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
    /// Per group being read: next offset, done, pages to read next round (1 at first, then
    /// `PAGES_AHEAD` once a group proves large).
    walk: Vec<(usize, bool, usize)>,
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
            first_read: false,
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
        // Members are checked before anything changes; a PUT without `members` keeps them
        // (clearing a group because an IdP left the list out would lose data).
        let mut flow = Self::new(
            base_url,
            projection,
            vec![Task::GetTerm { id: id.to_string() }, Task::Walk, Task::Plan],
            Answer::Resource,
        );
        if let Some(members) = write.members {
            flow.plan.replace = Some(members);
        }
        flow.resync_roles = !groups.role_grants.is_empty();
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
            self.tasks.push_back(Task::LoadRoles);
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
                    if self.walk.is_empty() {
                        self.walk = vec![(0, false, 1); self.terms.len()];
                        self.members = vec![Some(Vec::new()); self.terms.len()];
                    }
                    let mut out = Vec::new();
                    let mut active = 0usize;
                    for (i, (offset, done, ahead)) in self.walk.iter().enumerate() {
                        if *done || active >= 16 {
                            continue;
                        }
                        active = active.saturating_add(1);
                        let term = self
                            .terms
                            .get(i)
                            .map(|t| t.uuid.clone())
                            .unwrap_or_default();
                        for k in 0..*ahead {
                            out.push(calls.members_page(
                                &term,
                                offset.saturating_add(k.saturating_mul(DRUPAL_PAGE_MAX)),
                            ));
                        }
                    }
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
                        if batch
                            .results
                            .iter()
                            .any(|(_, _, o)| matches!(o, Outcome::NoSuchGroup))
                        {
                            let done = batch
                                .results
                                .iter()
                                .filter(|(_, _, o)| matches!(o, Outcome::Done))
                                .count();
                            return Err(ScimError::not_found(format!(
                                "The group was deleted while its members were being changed ({done} change(s) had been applied)."
                            )));
                        }
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
                        if !failures.is_empty() {
                            let done = batch.results.len().saturating_sub(failures.len());
                            return Err(ScimError::bad_gateway(format!(
                                "{done} membership change(s) were applied, {} failed ({}). Sending the same request again is safe: adding a member twice or removing a non-member changes nothing.",
                                failures.len(),
                                failures.join("; ")
                            )));
                        }
                        self.tasks.pop_front();
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
                    first_read,
                    ..
                } => {
                    if *post || !*first_read {
                        let limit = if *post {
                            DRUPAL_PAGE_MAX
                        } else {
                            (*count).clamp(1, DRUPAL_PAGE_MAX)
                        };
                        vec![calls.list_terms(conditions, sort.as_deref(), *offset, limit)]
                    } else {
                        // The rest of the window, after the first page said there is more.
                        let mut out = Vec::new();
                        let mut skip = DRUPAL_PAGE_MAX;
                        while skip < *count {
                            let limit = count.saturating_sub(skip).min(DRUPAL_PAGE_MAX);
                            out.push(calls.list_terms(
                                conditions,
                                sort.as_deref(),
                                offset.saturating_add(skip),
                                limit,
                            ));
                            skip = skip.saturating_add(DRUPAL_PAGE_MAX);
                        }
                        out
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
            Task::CreateTerm { .. } => {
                let doc = expect_document(&first, &[201])?;
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
            Task::SetExternalId { .. } | Task::RenameTerm { .. } => {
                let doc = expect_document(&first, &[200])?;
                if let Some(t) = doc
                    .get("data")
                    .and_then(|d| parse_term(d, &groups.vocabulary))
                {
                    self.terms = vec![t];
                }
                self.release_name(env);
                self.tasks.pop_front();
            }
            Task::Walk => {
                let mut cursor = replies.iter();
                let mut active = 0usize;
                for (i, (offset, done, ahead)) in self.walk.iter_mut().enumerate() {
                    if *done || active >= 16 {
                        continue;
                    }
                    active = active.saturating_add(1);
                    for _ in 0..*ahead {
                        let reply = cursor.next().cloned().unwrap_or(DrupalReply::Failed);
                        if *done {
                            continue;
                        }
                        let doc = expect_document(&reply, &[200])?;
                        self.users_read = true;
                        let data = doc
                            .get("data")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        if let Some(Some(list)) = self.members.get_mut(i) {
                            for d in &data {
                                let uuid = d.get("id").and_then(Value::as_str);
                                let name = d.pointer("/attributes/name").and_then(Value::as_str);
                                match (uuid, name) {
                                    // A retired account is no member any more.
                                    (Some(_), Some(n))
                                        if n.to_ascii_lowercase()
                                            .starts_with(crate::user::RETIRED_NAME_PREFIX) => {}
                                    (Some(u), Some(n)) => {
                                        if let Some(why) = self
                                            .protection
                                            .as_ref()
                                            .and_then(|p| member_refusal(p, d))
                                        {
                                            self.read_only.push((u.to_string(), why));
                                        }
                                        list.push(Member {
                                            uuid: u.to_string(),
                                            name: n.to_string(),
                                        })
                                    }
                                    _ => {
                                        return Err(map_failure(&DrupalReply::Answer {
                                            status: 403,
                                            body: Vec::new(),
                                        }))
                                    }
                                }
                            }
                        }
                        *offset = offset.saturating_add(DRUPAL_PAGE_MAX);
                        if doc.pointer("/links/next").is_none() {
                            *done = true;
                        }
                    }
                    *ahead = PAGES_AHEAD;
                }
                if self.walk.iter().all(|(_, d, _)| *d) {
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
                let doc = expect_document(&first, &[200])?;
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
                    other => return Err(map_failure(other)),
                }
                self.tasks.pop_front();
            }
            Task::ListTerms {
                offset,
                count,
                start_index,
                post,
                first_read,
                ..
            } => {
                let mut terms: Vec<Term> = Vec::new();
                let mut more = false;
                for r in replies {
                    let doc = expect_document(r, &[200])?;
                    terms.extend(
                        doc.get("data")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(|d| parse_term(d, &groups.vocabulary)),
                    );
                    more = doc.pointer("/links/next").is_some();
                    if !more {
                        break;
                    }
                }
                if *post {
                    // Drupal's answer is a superset: keep the matches, read on.
                    let mapping = group_mapping();
                    if let Some(f) = &self.post_filter {
                        terms.retain(|t| {
                            crate::filter_eval::matches(
                                f,
                                &t.to_scim(&self.base_url, None),
                                &mapping,
                            )
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
                } else {
                    self.terms.extend(terms);
                    if !*first_read && more && *count > DRUPAL_PAGE_MAX {
                        *first_read = true;
                        return Ok(());
                    }
                    let seen = offset.saturating_add(self.terms.len());
                    self.total = if more { seen.saturating_add(1) } else { seen };
                    self.terms.truncate(*count);
                }
                self.tasks.pop_front();
            }
            Task::Plan => {
                self.tasks.pop_front();
            }
        }
        Ok(())
    }

    fn release_name(&mut self, env: &mut Env) {
        if let Some(name) = self.name_locked.take() {
            env.locks.unlock(&name_lock_key(&name), env.owner);
        }
    }

    /// Releases what the flow holds when it ends early.
    pub fn abandon(&mut self, env: &mut Env) {
        self.release_name(env);
        if let Some(b) = self.batch.as_mut() {
            b.release_all(env);
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
        let current_name = self
            .terms
            .first()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let renamed = self
            .new_name
            .as_ref()
            .is_some_and(|n| !n.eq_ignore_ascii_case(&current_name));
        if self.resync_roles && renamed {
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
