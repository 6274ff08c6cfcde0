//! The membership writes of a group request: the users named are checked first, the role
//! table is read when groups grant roles, the batch runs, and its end is told (every change
//! applied, what failed, or a create undone, with what is left when the undo fails too).

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{parse_roles, unknown_members, GroupCalls};
use crate::drupal::jsonapi::{expect_document, DRUPAL_PAGE_MAX};
use crate::flows::groups::changes::Undo;
use crate::flows::groups::state::GroupState;
use crate::flows::groups::task::{GroupAnswer, GroupTask, QueueChange, TaskCalls};
use crate::flows::membership::{Batch, Change, MemberOutcome};
use crate::flows::scope::LockScope;
use crate::http::DrupalReply;
use crate::scim::error::ScimError;
use serde_json::Value;
use std::collections::VecDeque;

/// Queues the membership writes; the role table, when groups grant roles, is read before
/// anything changes (right after the group itself), so that failing to read it leaves
/// nothing half-done.
pub(crate) fn push_membership_tasks(tasks: &mut VecDeque<GroupTask>, groups: &GroupsConfig) {
    if !groups.role_grants.is_empty() {
        let at = usize::from(matches!(tasks.front(), Some(GroupTask::GetTerm { .. })));
        tasks.insert(at, GroupTask::LoadRoles);
    }
    tasks.push_back(GroupTask::Members);
}

/// The reads that check the users named (only Drupal UUIDs can be users).
pub(crate) fn user_check_calls(
    calls: &GroupCalls,
    adds: &[String],
    removes: &[String],
) -> Result<TaskCalls, ScimError> {
    let ours: Vec<String> = adds
        .iter()
        .chain(removes.iter())
        .filter(|i| crate::drupal::jsonapi::is_uuid(i))
        .cloned()
        .collect();
    if ours.is_empty() {
        if !adds.is_empty() {
            // Not one of them could be a user: no need to ask Drupal.
            return Err(unknown_members(adds));
        }
        return Ok(TaskCalls::Skip(QueueChange::Done));
    }
    Ok(TaskCalls::Send(
        ours.chunks(DRUPAL_PAGE_MAX)
            .map(|c| calls.users_with_ids(c))
            .collect(),
    ))
}

/// The users named: every add must exist, and an account SCIM may not write is left out
/// (or, when Drupal hid its roles, refuses the request).
pub(crate) fn on_user_check(
    st: &mut GroupState,
    adds: &[String],
    replies: &[DrupalReply],
) -> Result<QueueChange, ScimError> {
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
                st.protected.note(d);
                if let Some(p) = st.protected.get(id).filter(|p| p.unreadable()) {
                    return Err(p.refusal());
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
    leave_out_protected(st);
    Ok(QueueChange::Done)
}

/// Takes the changes to accounts found read-only by the user check out of the batch
/// (before it starts): they are left out and reported, the rest goes ahead.
fn leave_out_protected(st: &mut GroupState) {
    let read_only: Vec<String> = st
        .protected
        .read_only
        .iter()
        .map(|p| p.uuid.clone())
        .collect();
    let Some(batch) = st.changes.batch.as_mut() else {
        return;
    };
    for (u, c) in batch.drop_pending(&read_only) {
        if c == Change::Sync {
            continue;
        }
        if c == Change::Add {
            if let Some(Some(list)) = st.walk.members.first_mut() {
                list.retain(|m| m.uuid != u);
            }
        }
        st.protected.leave_out(&u, c);
    }
}

/// The role table: every role the grants name must exist, and none may administer users or
/// permissions.
pub(crate) fn on_roles(
    st: &mut GroupState,
    groups: &GroupsConfig,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    let doc = expect_document(reply, &[200])?;
    let roles = parse_roles(&doc);
    st.changes.roles = roles;
    if let Some((role, why)) = crate::drupal::groups::dangerous_grant(&doc, &groups.managed_roles())
    {
        return Err(ScimError::new(
            403,
            None,
            format!(
                "The role `{role}` named in the gateway's role grants {why}: granting it would let the IdP take over the site, so the gateway grants no role until it is removed from `groups.role_grants`. Nothing was changed."
            ),
        ));
    }
    if let Some(missing) = groups
        .managed_roles()
        .into_iter()
        .find(|r| !st.changes.roles.iter().any(|(n, _)| n == r))
    {
        return Err(ScimError::bad_gateway(format!(
            "The role `{missing}` named in the gateway's role grants does not exist in Drupal (or the service account lacks 'administer permissions')."
        )));
    }
    if let Some(b) = st.changes.batch.as_mut() {
        b.set_roles(st.changes.roles.clone());
    }
    Ok(QueueChange::Done)
}

/// The batch's next calls, or, once it is finished, its conclusion (`delete_queued`: the
/// group's delete is still to come).
pub(crate) fn calls(
    st: &mut GroupState,
    groups: &GroupsConfig,
    calls: &GroupCalls,
    env: &mut LockScope,
    delete_queued: bool,
) -> Result<TaskCalls, ScimError> {
    let Some(batch) = st.changes.batch.as_mut() else {
        return Ok(TaskCalls::Skip(QueueChange::Done));
    };
    if batch.is_finished() {
        let next = finish(st, delete_queued)?;
        return Ok(TaskCalls::Skip(QueueChange::DoneThen(next)));
    }
    Ok(TaskCalls::Send(batch.next_calls(groups, calls, env)))
}

/// Concludes a finished membership batch: every change applied, or an answer that says
/// what was applied and what failed; a create whose adds failed is undone instead (the
/// tasks returned).
fn finish(st: &mut GroupState, delete_queued: bool) -> Result<Vec<GroupTask>, ScimError> {
    let Some(batch) = st.changes.batch.as_ref() else {
        return Ok(Vec::new());
    };
    let failures: Vec<String> = batch
        .results
        .iter()
        .filter_map(|(u, _, o)| match o {
            MemberOutcome::Done => None,
            MemberOutcome::NoSuchUser => Some(format!("{u}: no such user")),
            MemberOutcome::NoSuchGroup => Some(format!("{u}: no such group")),
            MemberOutcome::Failed(why) => Some(format!("{u}: {why}")),
        })
        .collect();
    let done = batch.results.len().saturating_sub(failures.len());
    if let Some(undo) = &st.changes.undo {
        if failures.is_empty() || undo.term_deleted {
            // Repairs after the undone term's delete are best effort: a reference left
            // to a deleted term is repaired at the user's next change.
            return Ok(Vec::new());
        }
        return Err(ScimError::bad_gateway(format!(
            "removing the members added again failed ({})",
            failures.join("; ")
        )));
    }
    if batch
        .results
        .iter()
        .any(|(_, _, o)| matches!(o, MemberOutcome::NoSuchGroup))
    {
        return Err(ScimError::not_found(format!(
            "The group was deleted while its members were being changed ({done} change(s) had been applied)."
        )));
    }
    if failures.is_empty() {
        return Ok(Vec::new());
    }
    if st.answer.kind == GroupAnswer::Created {
        return Ok(undo_create(st, failures));
    }
    Err(failed_changes(st, done, &failures, delete_queued))
}

/// A retry of the create would meet its own group (409): it is undone instead, the adds
/// that may have landed first (a failed add may have landed all the same), then the term.
fn undo_create(st: &mut GroupState, failures: Vec<String>) -> Vec<GroupTask> {
    let added: Vec<String> = st
        .changes
        .batch
        .iter()
        .flat_map(|b| b.results.iter())
        .filter(|(_, c, o)| *c == Change::Add && !matches!(o, MemberOutcome::NoSuchUser))
        .map(|(u, _, _)| u.clone())
        .collect();
    let removals = added.iter().map(|u| (u.clone(), Change::Remove)).collect();
    st.changes.batch = Some(Batch::new(
        &st.group.id(),
        removals,
        st.changes.roles.clone(),
    ));
    st.changes.undo = Some(Undo {
        failures,
        added,
        term_deleted: false,
    });
    vec![
        GroupTask::Members,
        GroupTask::DeleteTerm,
        GroupTask::SweepDangling,
    ]
}

/// The answer of a batch with failures: what was applied, what failed, and that a retry is
/// safe.
fn failed_changes(
    st: &GroupState,
    done: usize,
    failures: &[String],
    delete_queued: bool,
) -> ScimError {
    let failed = failures.len();
    let listed = failures.join("; ");
    if delete_queued {
        return ScimError::bad_gateway(format!(
            "{done} of the group's members were removed from it, {failed} removal(s) failed ({listed}); the group was not deleted. Sending the DELETE again is safe."
        ));
    }
    let mut detail =
        format!("{done} membership change(s) were applied, {failed} failed ({listed}).");
    if !st.protected.left_out.is_empty() {
        detail.push_str(&format!(
            " {} change(s) to accounts SCIM may not change were left out (they are not failures, and a retry leaves them out again).",
            st.protected.left_out.len()
        ));
    }
    if st.group.term_changed {
        detail.push_str(" The group's new displayName or externalId was saved.");
        if st.group.if_match.is_some() {
            detail.push_str(" That changed its version: send the request again with the new version (`GET` it) or without `If-Match`.");
        }
    }
    detail.push_str(" Sending the same request again is safe: adding a member twice or removing a non-member changes nothing.");
    ScimError::bad_gateway(detail)
}

/// An error while undoing a create: the group exists after all, and the answer says so.
pub(crate) fn while_undoing(st: &GroupState, mut e: ScimError) -> ScimError {
    let Some(undo) = &st.changes.undo else {
        return e;
    };
    if undo.term_deleted {
        return e;
    }
    let term = st.group.terms.first();
    let name = term.map(|t| t.name.as_str()).unwrap_or("");
    let id = term.map(|t| t.uuid.as_str()).unwrap_or("");
    // Who may still be a member: the adds that landed, less the removals that did.
    let removed: Vec<&str> = st
        .changes
        .batch
        .iter()
        .flat_map(|b| b.results.iter())
        .filter(|(_, c, o)| *c == Change::Remove && *o == MemberOutcome::Done)
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
