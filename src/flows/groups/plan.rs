//! The membership plan of a group write: which users gain or lose the group (and the roles
//! it grants), checked against the per-request limits before anything is written.

use super::state::GroupState;
use crate::drupal::groups::Member;
use crate::flows::groups::changes::MemberPlan;
use crate::flows::groups::task::{GroupAnswer, GroupTask};
use crate::flows::membership::{Batch, Change};
use crate::scim::error::ScimError;
use std::collections::HashSet;

/// Turns the member plan into per-user changes against the current members (the batch),
/// and returns the tasks that must come first (checking the users named).
pub(crate) fn make(st: &mut GroupState) -> Result<Vec<GroupTask>, ScimError> {
    let Some(term) = st.group.terms.first().map(|t| t.uuid.clone()) else {
        return Ok(Vec::new());
    };
    let current: Vec<String> = st
        .walk
        .members
        .first()
        .cloned()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.uuid)
        .collect();
    let (mut target, explicit) = target_of(&st.changes.plan, &current);
    let mut changes: Vec<(String, Change)> = if st.changes.plan.needs_current()
        || st.walk.members.first().is_some_and(Option::is_some)
            && st.answer.kind != GroupAnswer::Created
    {
        // Deltas against the members read just now.
        deltas(&target, &current)
    } else {
        // Adds and removes need no read: each is idempotent on its own.
        explicit
    };
    if st.changes.resync_roles && st.group.renames() {
        // A rename can change which roles the group grants: every remaining member's
        // roles are brought in line.
        for m in &target {
            if !changes.iter().any(|(u, _)| u == m) {
                changes.push((m.clone(), Change::Sync));
            }
        }
    }
    let changes = leave_out_protected(st, changes, &mut target)?;
    show_members(st, &target);
    check_derived(st, &changes)?;
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
    let mut first = Vec::new();
    if (!adds.is_empty() || !removes.is_empty()) && st.answer.kind != GroupAnswer::Created {
        // New members must exist, and every member named be writable, before anything
        // changes.
        first.push(GroupTask::CheckUsers { adds, removes });
    }
    // Only Drupal UUIDs go into Drupal URLs (others are no user: nothing to remove, and
    // adds of them were refused by the existence check).
    let changes = changes
        .into_iter()
        .filter(|(u, _)| crate::drupal::jsonapi::is_uuid(u))
        .collect();
    st.changes.batch = Some(Batch::new(&term, changes, st.changes.roles.clone()));
    Ok(first)
}

/// The member set the plan asks for, and the changes it names (the last per user).
fn target_of(plan: &MemberPlan, current: &[String]) -> (Vec<String>, Vec<(String, Change)>) {
    let mut target: Vec<String> = plan.replace.clone().unwrap_or_else(|| current.to_vec());
    let mut explicit: Vec<(String, Change)> = Vec::new();
    for (change, ids) in &plan.ops {
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
    (target, explicit)
}

/// The adds and removals that turn `current` into `target`.
fn deltas(target: &[String], current: &[String]) -> Vec<(String, Change)> {
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
}

/// Accounts SCIM may not write keep their membership as it is: a change to one of them is
/// left out (and reported), the others go ahead; a role resync after a rename passes them
/// by. An account whose roles Drupal did not show refuses the request.
fn leave_out_protected(
    st: &mut GroupState,
    changes: Vec<(String, Change)>,
    target: &mut Vec<String>,
) -> Result<Vec<(String, Change)>, ScimError> {
    let mut kept = Vec::with_capacity(changes.len());
    for (u, c) in changes {
        let Some(protected) = st.protected.get(&u) else {
            kept.push((u, c));
            continue;
        };
        if protected.unreadable() && c != Change::Sync {
            return Err(protected.refusal());
        }
        match c {
            Change::Add => target.retain(|t| *t != u),
            Change::Remove => {
                if !target.contains(&u) {
                    target.push(u.clone());
                }
            }
            Change::Sync => continue,
        }
        st.protected.leave_out(&u, c);
    }
    Ok(kept)
}

/// The members the answer shows: the target set.
fn show_members(st: &mut GroupState, target: &[String]) {
    if let Some(Some(list)) = st.walk.members.first_mut() {
        list.retain(|m| target.contains(&m.uuid));
        for t in target {
            if !list.iter().any(|m| &m.uuid == t) {
                list.push(Member {
                    uuid: t.clone(),
                    name: String::new(),
                });
            }
        }
    }
}

/// Changes the request does not name (removals of current members, role re-syncs) are
/// bounded like named members, and refused whole before anything changes.
fn check_derived(st: &GroupState, changes: &[(String, Change)]) -> Result<(), ScimError> {
    let plan = &st.changes.plan;
    let named: HashSet<&str> = plan
        .replace
        .iter()
        .flatten()
        .chain(
            plan.ops
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
    if derived > st.limits.max_changes {
        return Err(st.too_many_changes(Some(derived)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_last_change_named_for_a_user_wins_and_deltas_turn_current_into_target() {
        let plan = MemberPlan {
            ops: vec![
                (Change::Add, Some(ids(&["a", "b"]))),
                (Change::Remove, Some(ids(&["a", "c"]))),
            ],
            replace: None,
        };
        let current = ids(&["c", "d"]);
        let (target, explicit) = target_of(&plan, &current);
        assert_eq!(target, ids(&["d", "b"]));
        assert_eq!(
            explicit,
            vec![
                ("b".to_string(), Change::Add),
                ("a".to_string(), Change::Remove),
                ("c".to_string(), Change::Remove)
            ]
        );
        assert_eq!(
            deltas(&target, &current),
            vec![
                ("b".to_string(), Change::Add),
                ("c".to_string(), Change::Remove)
            ]
        );
        // Remove everyone, then add: the set is the adds alone.
        let plan = MemberPlan {
            ops: vec![(Change::Remove, None), (Change::Add, Some(ids(&["e"])))],
            replace: None,
        };
        assert_eq!(target_of(&plan, &current).0, ids(&["e"]));
        // A new set replaces the current one whatever it holds.
        let plan = MemberPlan {
            ops: Vec::new(),
            replace: Some(ids(&["d", "f"])),
        };
        assert_eq!(
            deltas(&target_of(&plan, &current).0, &current),
            vec![
                ("f".to_string(), Change::Add),
                ("c".to_string(), Change::Remove)
            ]
        );
    }
}
