//! Reading one group (`GET /Groups/{id}`, and the first task of every change): its term,
//! checked against the `If-Match` of a change, and proof that Drupal accepted the service
//! account when no user was read.

use crate::drupal::groups::{parse_term, GroupCalls};
use crate::drupal::jsonapi::expect_document;
use crate::flows::groups::state::GroupState;
use crate::flows::groups::task::{GroupAnswer, GroupTask, QueueChange, TaskCalls};
use crate::http::DrupalReply;
use crate::scim::error::ScimError;
use crate::scim::projection::Projection;
use std::collections::VecDeque;

pub(crate) fn start(
    base_url: &str,
    projection: Projection,
    id: &str,
) -> (VecDeque<GroupTask>, GroupState) {
    let mut tasks = VecDeque::from([GroupTask::GetTerm { id: id.to_string() }]);
    if projection.wants("members") {
        tasks.push_back(GroupTask::Walk);
    }
    tasks.push_back(GroupTask::CheckAuth);
    let state = GroupState::new(base_url, projection, GroupAnswer::Resource);
    (tasks, state)
}

/// The group's term; a change checks its version against `If-Match` here, before anything
/// is written.
pub(crate) fn on_term(
    st: &mut GroupState,
    vocabulary: &str,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    if let DrupalReply::Answer { status: 404, .. } = reply {
        return Err(ScimError::not_found("Group not found."));
    }
    let doc = expect_document(reply, &[200])?;
    let term = doc
        .get("data")
        .and_then(|d| parse_term(d, vocabulary))
        .ok_or_else(|| ScimError::not_found("Group not found."))?;
    if let Some(if_match) = &st.group.if_match {
        if !crate::flows::request::etag_matches(if_match, &term.version()) {
            return Err(crate::flows::request::precondition_failed());
        }
    }
    st.group.terms = vec![term];
    Ok(QueueChange::Done)
}

pub(crate) fn auth_check_calls(st: &GroupState, calls: &GroupCalls) -> TaskCalls {
    if st.users_read {
        return TaskCalls::Skip(QueueChange::Done);
    }
    TaskCalls::Send(vec![calls.check_service_account()])
}

pub(crate) fn on_auth_check(
    st: &mut GroupState,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    expect_document(reply, &[200])?;
    st.users_read = true;
    Ok(QueueChange::Done)
}
