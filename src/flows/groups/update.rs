//! Replacing a group (`PUT /Groups/{id}`), and the term writes a replace or a patch makes:
//! the rename (a new name checked free first) and the `externalId`.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{parse_group_body, parse_term, GroupCalls};
use crate::drupal::jsonapi::expect_document;
use crate::flows::groups::members::push_membership_tasks;
use crate::flows::groups::state::GroupState;
use crate::flows::groups::task::{GroupAnswer, GroupTask, QueueChange, TaskCalls};
use crate::flows::scope::LockScope;
use crate::http::DrupalReply;
use crate::scim::error::ScimError;
use crate::scim::projection::Projection;
use std::collections::VecDeque;

pub(crate) fn start(
    base_url: &str,
    projection: Projection,
    groups: &GroupsConfig,
    id: &str,
    body: &[u8],
) -> Result<(VecDeque<GroupTask>, GroupState), ScimError> {
    let write = parse_group_body(body)?;
    let resync_roles = !groups.role_grants.is_empty();
    // Members are checked before anything changes; a PUT without `members` keeps them
    // (clearing a group because an IdP left the list out would lose data), and reads
    // them only when the answer shows them or a rename may change their roles.
    let mut tasks = VecDeque::from([GroupTask::GetTerm { id: id.to_string() }]);
    if write.members.is_some() || resync_roles || projection.wants("members") {
        tasks.push_back(GroupTask::Walk);
    }
    tasks.push_back(GroupTask::Plan);
    let mut state = GroupState::new(base_url, projection, GroupAnswer::Resource);
    if let Some(members) = write.members {
        state.changes.plan.replace = Some(members);
    }
    state.changes.resync_roles = resync_roles;
    state.group.new_name = Some(write.display_name.clone());
    tasks.push_back(GroupTask::RenameTerm {
        name: write.display_name,
    });
    // PUT replaces: an absent externalId is cleared.
    tasks.push_back(GroupTask::SetExternalId {
        value: write.external_id.flatten(),
    });
    push_membership_tasks(&mut tasks, groups);
    Ok((tasks, state))
}

pub(crate) fn external_id_calls(
    st: &GroupState,
    calls: &GroupCalls,
    value: &Option<String>,
) -> TaskCalls {
    let current = st.group.terms.first().and_then(|t| t.external_id.as_ref());
    if current == value.as_ref() {
        return TaskCalls::Skip(QueueChange::Done);
    }
    TaskCalls::Send(vec![calls.set_external_id(&st.group.id(), value.as_deref())])
}

pub(crate) fn rename_calls(st: &GroupState, calls: &GroupCalls, name: &str) -> TaskCalls {
    let current = st.group.name();
    if current == name {
        return TaskCalls::Skip(QueueChange::Done);
    }
    // A new name (not just new capitals) must be free: check it first.
    if !current.eq_ignore_ascii_case(name) && !st.group.holds_name(name) {
        return TaskCalls::Skip(QueueChange::First(vec![GroupTask::CheckName {
            name: name.to_string(),
            waits: 0,
            since: None,
        }]));
    }
    TaskCalls::Send(vec![calls.rename_term(&st.group.id(), name)])
}

/// The term as written (a rename or a new `externalId`); the name's lock is given up.
pub(crate) fn on_term_written(
    st: &mut GroupState,
    vocabulary: &str,
    env: &mut LockScope,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    let doc = expect_document(reply, &[200])?;
    if let Some(t) = doc.get("data").and_then(|d| parse_term(d, vocabulary)) {
        st.group.terms = vec![t];
    }
    st.group.term_changed = true;
    st.group.release_name(env);
    Ok(QueueChange::Done)
}
