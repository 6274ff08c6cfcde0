//! The `/Groups` endpoints as a sans-IO flow: a queue of tasks (read the term, check the
//! name is free, walk the members, change memberships, …), each of which makes Drupal calls
//! and digests the replies, and a final answer. This module only composes: each operation
//! plans its tasks in its own module (`read`, `list`, `create`, `update`, `patch`,
//! `delete`), each task's calls and replies live with the operation or part they serve
//! (`members`, `plan`, `walk`), and the request's state is made of the parts in `state`.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::GroupCalls;
use crate::flows::scope::LockScope;
use crate::http::{DrupalReply, Step};
use crate::runtime::intents::SharedIntent;
use crate::scim::error::ScimError;
use crate::scim::projection::Projection;
use state::GroupState;
use std::collections::VecDeque;
use task::{GroupTask, QueueChange, TaskCalls};

mod answer;
mod changes;
mod create;
mod delete;
mod list;
mod members;
mod patch;
mod plan;
mod protection;
mod read;
mod state;
mod target;
mod task;
mod update;
mod walk;

pub use protection::{LeftOut, LeftOutReport, Protected};

#[derive(Debug)]
pub struct GroupFlow {
    tasks: VecDeque<GroupTask>,
    state: GroupState,
}

impl GroupFlow {
    /// The flow of an operation's tasks. Whether it changes or deletes the group is read
    /// from its plan once: the walk's and the planner's refusals word themselves by it.
    fn from_start((tasks, mut state): (VecDeque<GroupTask>, GroupState)) -> Self {
        state.changes_group = tasks.iter().any(|t| matches!(t, GroupTask::Plan));
        state.deletes_group = tasks.iter().any(|t| matches!(t, GroupTask::DeleteTerm));
        GroupFlow { tasks, state }
    }

    pub fn get(base_url: &str, projection: Projection, id: &str) -> Self {
        Self::from_start(read::start(base_url, projection, id))
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
        let page = list::PageAsked {
            filter,
            sort_by,
            order,
            start_index,
            count,
        };
        list::start(base_url, projection, &page).map(Self::from_start)
    }

    pub fn create(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        create::start(base_url, projection, groups, body).map(Self::from_start)
    }

    pub fn replace(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        id: &str,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        update::start(base_url, projection, groups, id, body).map(Self::from_start)
    }

    pub fn patch(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        id: &str,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        patch::start(base_url, projection, groups, id, body).map(Self::from_start)
    }

    pub fn delete(base_url: &str, groups: &GroupsConfig, id: &str) -> Self {
        Self::from_start(delete::start(base_url, groups, id))
    }

    /// Membership changes are refused for accounts SCIM may not write.
    pub fn set_protection(&mut self, protection: crate::config::protection::Protection) {
        self.state.protected.protection = Some(protection);
    }

    /// The caller already read users in this request, which proves Drupal accepted the
    /// service account.
    pub fn service_account_proven(mut self) -> Self {
        self.state.users_read = true;
        self
    }

    pub fn set_max_checked_pages(&mut self, pages: usize) {
        self.state.limits.max_checked_pages = pages;
    }

    /// The member caps: `max_read` members read, `max_changes` members changed without being
    /// named (removals of current members, role re-syncs after a rename).
    pub fn set_member_limits(&mut self, max_read: usize, max_changes: usize) {
        self.state.limits.max_read = max_read;
        self.state.limits.max_changes = max_changes;
    }

    /// A change applies only while the group's version matches this `If-Match` value.
    pub fn set_if_match(&mut self, if_match: Option<&str>) {
        self.state.group.if_match = if_match.map(str::to_string);
    }

    /// The next calls, or the answer once every task is done.
    pub fn step(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
    ) -> Result<Step, ScimError> {
        let step = self.next_step(groups, calls, env);
        step.map_err(|e| members::while_undoing(&self.state, e))
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
        taken.map_err(|e| members::while_undoing(&self.state, e))
    }

    /// The changes this request left out (protected accounts), for the log and metrics.
    pub fn take_left_out(&mut self) -> Option<LeftOutReport> {
        if self.state.protected.left_out.is_empty() {
            return None;
        }
        let group = self.state.group.id();
        self.state.protected.take_report(group)
    }

    /// Releases what the flow holds when it ends early on an error (no call in flight).
    pub fn abandon(&mut self, env: &LockScope) -> Vec<SharedIntent> {
        let mut intents: Vec<SharedIntent> =
            self.state.group.name_unlock(env).into_iter().collect();
        if let Some(b) = self.state.changes.batch.as_mut() {
            intents.extend(b.release_all(env));
        }
        intents
    }

    /// Releases what the flow holds when its stream ends with calls in flight: at once where
    /// only a read is out, after `write_grace_ms` where a write may still land in Drupal.
    pub fn abandon_mid_flight(
        &mut self,
        env: &LockScope,
        write_grace_ms: u64,
    ) -> Vec<SharedIntent> {
        let writing_term = matches!(
            self.tasks.front(),
            Some(GroupTask::CreateTerm { .. } | GroupTask::RenameTerm { .. })
        );
        let mut intents = Vec::new();
        if let Some(name) = self.state.group.name_locked.take() {
            let key = target::name_lock_key(&name);
            intents.push(if writing_term {
                env.keep_for(&key, write_grace_ms)
            } else {
                env.unlock(&key)
            });
        }
        if let Some(b) = self.state.changes.batch.as_mut() {
            intents.extend(b.release_mid_flight(env, write_grace_ms));
        }
        intents
    }

    fn apply(&mut self, change: QueueChange) {
        match change {
            QueueChange::Stay => {}
            QueueChange::Done => {
                self.tasks.pop_front();
            }
            QueueChange::DoneThen(next) => {
                self.tasks.pop_front();
                for task in next.into_iter().rev() {
                    self.tasks.push_front(task);
                }
            }
            QueueChange::First(first) => {
                for task in first.into_iter().rev() {
                    self.tasks.push_front(task);
                }
            }
        }
    }

    fn next_step(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
    ) -> Result<Step, ScimError> {
        loop {
            let delete_queued = self.delete_queued();
            let st = &mut self.state;
            let Some(task) = self.tasks.front_mut() else {
                st.group.release_name(env);
                let (answer, changes) = (&st.answer, &st.changes);
                return Ok(answer.respond(
                    &st.group.terms,
                    &st.walk.members,
                    changes.undo.as_ref(),
                    &st.protected.left_out,
                ));
            };
            let planned = match task {
                GroupTask::GetTerm { id } => TaskCalls::Send(vec![calls.get_term(id)]),
                GroupTask::CheckName { name, waits, since } => {
                    create::name_check_calls(st, calls, env, name, waits, since)?
                }
                GroupTask::CreateTerm { name, external_id } => {
                    TaskCalls::Send(vec![calls.create_term(name, external_id.as_deref())])
                }
                GroupTask::FindCreated { name, .. } => {
                    TaskCalls::Send(vec![calls.terms_named(name)])
                }
                GroupTask::SetExternalId { value } => update::external_id_calls(st, calls, value),
                GroupTask::RenameTerm { name } => update::rename_calls(st, calls, name),
                GroupTask::Walk => match st.walk_calls(groups.concurrency, calls)? {
                    out if out.is_empty() => TaskCalls::Skip(QueueChange::Done),
                    out => TaskCalls::Send(out),
                },
                GroupTask::CheckAuth => read::auth_check_calls(st, calls),
                GroupTask::CheckUsers { adds, removes } => {
                    members::user_check_calls(calls, adds, removes)?
                }
                GroupTask::Plan => TaskCalls::Skip(QueueChange::DoneThen(plan::make(st)?)),
                GroupTask::LoadRoles => TaskCalls::Send(vec![calls.list_roles()]),
                GroupTask::Members => members::calls(st, groups, calls, env, delete_queued)?,
                GroupTask::DeleteTerm => TaskCalls::Send(vec![calls.delete_term(&st.group.id())]),
                GroupTask::SweepDangling => delete::sweep_calls(st, calls),
                GroupTask::ListTerms(listing) => list::calls(listing, calls),
            };
            match planned {
                TaskCalls::Send(out) => return Ok(Step::Call(out)),
                TaskCalls::Skip(change) => self.apply(change),
            }
        }
    }

    /// A delete of the group is still to come (a failed removal of its members says it was
    /// not deleted).
    fn delete_queued(&self) -> bool {
        self.tasks
            .iter()
            .any(|t| matches!(t, GroupTask::DeleteTerm))
    }

    fn take_replies(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
        replies: &[DrupalReply],
    ) -> Result<(), ScimError> {
        let first = replies.first().unwrap_or(&DrupalReply::Failed);
        let vocabulary = groups.vocabulary.as_str();
        let st = &mut self.state;
        let Some(task) = self.tasks.front_mut() else {
            return Ok(());
        };
        let change = match task {
            GroupTask::GetTerm { .. } => read::on_term(st, vocabulary, first)?,
            GroupTask::CheckName { name, .. } => {
                create::on_name_check(st, vocabulary, name, first)?
            }
            GroupTask::CreateTerm { name, .. } => {
                create::on_created(st, vocabulary, env, name, first)?
            }
            GroupTask::FindCreated { name, failure } => {
                create::on_found(st, vocabulary, env, name, failure, first)?
            }
            GroupTask::SetExternalId { .. } | GroupTask::RenameTerm { .. } => {
                update::on_term_written(st, vocabulary, env, first)?
            }
            GroupTask::Walk => {
                st.take_member_pages(groups.concurrency, replies)?;
                if st.walk.is_done() {
                    QueueChange::Done
                } else {
                    QueueChange::Stay
                }
            }
            GroupTask::CheckAuth => read::on_auth_check(st, first)?,
            GroupTask::CheckUsers { adds, .. } => members::on_user_check(st, adds, replies)?,
            GroupTask::LoadRoles => members::on_roles(st, groups, first)?,
            GroupTask::Members => {
                if let Some(b) = st.changes.batch.as_mut() {
                    b.on_replies(groups, calls, env, replies);
                }
                QueueChange::Stay
            }
            GroupTask::SweepDangling => delete::on_sweep(st, first)?,
            GroupTask::DeleteTerm => delete::on_deleted(st, first)?,
            GroupTask::ListTerms(listing) => list::on_replies(st, listing, vocabulary, replies)?,
            GroupTask::Plan => QueueChange::Done,
        };
        self.apply(change);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drupal::groups::parse_term;
    use crate::drupal::jsonapi::DRUPAL_PAGE_MAX;
    use crate::flows::membership::Change;
    use crate::http::DrupalCall;
    use crate::runtime::locks::{Locks, MemoryLocks};
    use protection::left_out_warning;
    use serde_json::json;
    use serde_json::Value;
    use target::name_lock_key;

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
            let mut env = LockScope::new(locks, *now_ms, "req", 10_000);
            let step = flow.step(cfg, &calls, &mut env);
            let returned = env.take_returned();
            apply_each(locks, returned);
            step
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
                let mut env = LockScope::new(locks, *now_ms, "req", 10_000);
                let taken = flow.on_replies(cfg, &calls, &mut env, &replies);
                let returned = env.take_returned();
                apply_each(locks, returned);
                taken?;
            }
            self.step(flow)
        }

        fn abandon(&mut self, flow: &mut GroupFlow, grace_ms: u64) {
            let env = LockScope::new(&mut self.locks, self.now_ms, "req", 10_000);
            let released = flow.abandon_mid_flight(&env, grace_ms);
            drop(env);
            apply_each(&mut self.locks, released);
        }
    }

    /// Applies what a step returned, as the host does once the step is over.
    fn apply_each(locks: &mut MemoryLocks, intents: Vec<SharedIntent>) {
        for intent in intents {
            crate::runtime::intents::SharedPort::apply(locks, intent);
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
