//! Deleting a group (`DELETE /Groups/{id}`): every member is removed first (their roles
//! follow), then the term is deleted, then users still referencing it are repaired. A
//! create whose member adds failed is undone the same way.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::GroupCalls;
use crate::drupal::jsonapi::{expect_document, map_failure};
use crate::flows::groups::members::push_membership_tasks;
use crate::flows::groups::state::GroupState;
use crate::flows::groups::task::{GroupAnswer, GroupTask, QueueChange, TaskCalls};
use crate::flows::membership::{Batch, Change};
use crate::http::DrupalReply;
use crate::scim::error::ScimError;
use crate::scim::projection::Projection;
use serde_json::Value;
use std::collections::VecDeque;

pub(crate) fn start(
    base_url: &str,
    groups: &GroupsConfig,
    id: &str,
) -> (VecDeque<GroupTask>, GroupState) {
    let mut tasks = VecDeque::from([GroupTask::GetTerm { id: id.to_string() }, GroupTask::Walk]);
    let mut state = GroupState::new(base_url, Projection::default(), GroupAnswer::NoContent);
    state.changes.plan.ops.push((Change::Remove, None));
    tasks.push_back(GroupTask::Plan);
    push_membership_tasks(&mut tasks, groups);
    tasks.push_back(GroupTask::DeleteTerm);
    tasks.push_back(GroupTask::SweepDangling);
    (tasks, state)
}

pub(crate) fn on_deleted(
    st: &mut GroupState,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    match reply {
        DrupalReply::Answer {
            status: 204 | 404, ..
        } => {}
        other if st.changes.undo.is_some() => return Err(map_failure(other)),
        other => {
            let mut e = map_failure(other);
            e.detail = format!(
                "Every member was removed from the group, but deleting it failed: {} It exists with no members; sending the DELETE again is safe.",
                e.detail
            );
            return Err(e);
        }
    }
    if let Some(undo) = st.changes.undo.as_mut() {
        undo.term_deleted = true;
    }
    Ok(QueueChange::Done)
}

pub(crate) fn sweep_calls(st: &GroupState, calls: &GroupCalls) -> TaskCalls {
    match st.group.terms.first().and_then(|t| t.tid) {
        Some(tid) => TaskCalls::Send(vec![calls.users_referencing_tid(tid)]),
        None => TaskCalls::Skip(QueueChange::Done),
    }
}

/// The users still referencing the deleted term: each is repaired (a `Sync` change).
pub(crate) fn on_sweep(st: &mut GroupState, reply: &DrupalReply) -> Result<QueueChange, ScimError> {
    let doc = match expect_document(reply, &[200]) {
        Ok(doc) => doc,
        // The undone create is answered as it is: a reference left to its deleted
        // term is repaired at the user's next change.
        Err(_) if st.changes.undo.is_some() => return Ok(QueueChange::Done),
        Err(e) => return Err(e),
    };
    let users: Vec<(String, Change)> = doc
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        // An account SCIM may not write keeps even its reference to the
        // deleted term (see docs/groups.md).
        .filter(|d| st.protected.refusal_of(d).is_none())
        .filter_map(|d| d.get("id").and_then(Value::as_str))
        .filter(|id| crate::drupal::jsonapi::is_uuid(id))
        .map(|id| (id.to_string(), Change::Sync))
        .collect();
    if users.is_empty() {
        return Ok(QueueChange::Done);
    }
    let term = st.group.id();
    st.changes.batch = Some(Batch::new(&term, users, st.changes.roles.clone()));
    Ok(QueueChange::DoneThen(vec![GroupTask::Members]))
}
