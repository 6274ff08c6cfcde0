//! Creating a group (`POST /Groups`): the members are checked, the name is locked and
//! checked free, the term is created (or, when Drupal's answer is lost, looked for), then
//! the members are added.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{parse_group_body, parse_term, GroupCalls, Term};
use crate::drupal::jsonapi::expect_document;
use crate::flows::groups::members::push_membership_tasks;
use crate::flows::groups::plan;
use crate::flows::groups::state::GroupState;
use crate::flows::groups::target::{name_lock_key, MAX_NAME_WAITS};
use crate::flows::groups::task::{GroupAnswer, GroupTask, QueueChange, TaskCalls};
use crate::flows::membership::Change;
use crate::flows::scope::LockScope;
use crate::http::DrupalReply;
use crate::scim::error::ScimError;
use crate::scim::projection::Projection;
use serde_json::Value;
use std::collections::VecDeque;

pub(crate) fn start(
    base_url: &str,
    projection: Projection,
    groups: &GroupsConfig,
    body: &[u8],
) -> Result<(VecDeque<GroupTask>, GroupState), ScimError> {
    let write = parse_group_body(body)?;
    let members = write.members.unwrap_or_default();
    let mut tasks = VecDeque::new();
    if !members.is_empty() {
        tasks.push_back(GroupTask::CheckUsers {
            adds: members.clone(),
            removes: Vec::new(),
        });
    }
    tasks.push_back(GroupTask::CheckName {
        name: write.display_name.clone(),
        waits: 0,
        since: None,
    });
    tasks.push_back(GroupTask::CreateTerm {
        name: write.display_name,
        external_id: write.external_id.flatten(),
    });
    let mut state = GroupState::new(base_url, projection, GroupAnswer::Created);
    if !members.is_empty() {
        state.changes.plan.ops.push((Change::Add, Some(members)));
        push_membership_tasks(&mut tasks, groups);
    }
    state.walk.members = vec![Some(Vec::new())];
    Ok((tasks, state))
}

/// Takes the name's lock (or waits a round for it), then asks for the terms of that name.
pub(crate) fn name_check_calls(
    st: &mut GroupState,
    calls: &GroupCalls,
    env: &mut LockScope,
    name: &str,
    waits: &mut u32,
    since: &mut Option<u64>,
) -> Result<TaskCalls, ScimError> {
    if env.try_lock(&name_lock_key(name)) {
        st.group.name_locked = Some(name.to_string());
    } else {
        *waits = waits.saturating_add(1);
        crate::runtime::tally::note(crate::runtime::tally::Event::LockWait);
        let started = *since.get_or_insert(env.now_ms);
        if *waits > MAX_NAME_WAITS || env.now_ms.saturating_sub(started) > env.lock_ttl_ms {
            return Err(ScimError::new(
                503,
                None,
                "Another request is creating a group with this name; retry.",
            )
            .with_header("retry-after", "1"));
        }
    }
    let call = if st.group.holds_name(name) {
        calls.terms_named(name)
    } else {
        calls.pause(calls.terms_named(name))
    };
    Ok(TaskCalls::Send(vec![call]))
}

/// The terms of the name: another group (case aside) holding it refuses the request.
pub(crate) fn on_name_check(
    st: &mut GroupState,
    vocabulary: &str,
    name: &str,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    if !st.group.holds_name(name) {
        return Ok(QueueChange::Stay); // still waiting for the lock
    }
    let doc = expect_document(reply, &[200])?;
    let own = st.group.terms.first().map(|t| t.uuid.clone());
    let taken = terms_in(&doc, vocabulary)
        .any(|t| t.name.to_lowercase() == name.to_lowercase() && Some(&t.uuid) != own.as_ref());
    if taken {
        return Err(ScimError::conflict(format!(
            "A group named `{name}` already exists."
        )));
    }
    Ok(QueueChange::Done)
}

/// The create's answer: the term, or, when the outcome is unknown, a look for it.
pub(crate) fn on_created(
    st: &mut GroupState,
    vocabulary: &str,
    env: &mut LockScope,
    name: &str,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    let unknown_outcome = matches!(
        reply,
        DrupalReply::Failed
            | DrupalReply::Answer {
                status: 500..=599,
                ..
            }
    );
    let doc = match expect_document(reply, &[201]) {
        Ok(doc) => doc,
        Err(failure) if unknown_outcome => {
            let name = name.to_string();
            return Ok(QueueChange::DoneThen(vec![GroupTask::FindCreated {
                name,
                failure,
            }]));
        }
        Err(e) => return Err(e),
    };
    let term = doc
        .get("data")
        .and_then(|d| parse_term(d, vocabulary))
        .ok_or_else(|| {
            ScimError::bad_gateway("Drupal's answer to the group create is not a term.")
        })?;
    created(st, env, term)
}

/// The look for a term whose create had no clear answer.
pub(crate) fn on_found(
    st: &mut GroupState,
    vocabulary: &str,
    env: &mut LockScope,
    name: &str,
    failure: &ScimError,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    let search = format!("filter=displayName eq \"{name}\"");
    let Ok(doc) = expect_document(reply, &[200]) else {
        let mut e = failure.clone();
        e.detail = format!(
            "{} The group may have been created all the same: look for it (`{search}`) before sending the create again.",
            e.detail
        );
        return Err(e);
    };
    let found = terms_in(&doc, vocabulary).find(|t| t.name.to_lowercase() == name.to_lowercase());
    let Some(term) = found else {
        let mut e = failure.clone();
        e.detail = format!(
            "{} No group of this name exists now, so sending the create again is safe; if Drupal was only slow, the group may still appear: look for it (`{search}`) first.",
            e.detail
        );
        return Err(e);
    };
    // Drupal did create it (the name's lock kept other creates of it out): go on.
    created(st, env, term)
}

/// The term exists: the name's lock is given up, and the member adds are planned.
fn created(st: &mut GroupState, env: &mut LockScope, term: Term) -> Result<QueueChange, ScimError> {
    st.group.terms = vec![term];
    st.group.release_name(env);
    let next = if st.changes.plan.is_empty() {
        Vec::new()
    } else {
        plan::make(st)?
    };
    Ok(QueueChange::DoneThen(next))
}

/// The terms of a collection document.
fn terms_in<'a>(doc: &'a Value, vocabulary: &'a str) -> impl Iterator<Item = Term> + 'a {
    doc.get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(move |d| parse_term(d, vocabulary))
}
