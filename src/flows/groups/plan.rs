//! The membership plan of a group write: which users gain or lose the group (and the roles
//! it grants), checked against the per-request limits before anything is written.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{GroupCalls, Member};
use crate::drupal::jsonapi::DRUPAL_PAGE_MAX;
use crate::flows::groups::*;
use crate::flows::membership::{Batch, Change};
use crate::http::DrupalCall;
use crate::scim::error::{ScimError, ScimType};

impl GroupFlow {
    /// Turns the member plan into per-user changes against the current members.
    pub(crate) fn make_plan(&mut self) -> Result<(), ScimError> {
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
        // Accounts SCIM may not write keep their membership as it is: a change to one of them
        // is left out (and reported), the others go ahead; a role resync after a rename
        // passes them by.
        let mut kept = Vec::with_capacity(changes.len());
        for (u, c) in changes {
            let Some(protected) = self.is_protected(&u) else {
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
            self.leave_out(&u, c);
        }
        let changes = kept;
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
            .filter(|(u, _)| crate::drupal::jsonapi::is_uuid(u))
            .collect();
        self.batch = Some(Batch::new(&term, changes, self.roles.clone()));
        Ok(())
    }

    /// Members named in the request (the new member set, and the ids of add/remove lists).
    pub(crate) fn named_members(&self) -> usize {
        let listed: usize = self
            .plan
            .ops
            .iter()
            .filter_map(|(_, ids)| ids.as_ref().map(Vec::len))
            .sum();
        listed.saturating_add(self.plan.replace.as_ref().map_or(0, Vec::len))
    }

    /// The request gives the group a new name (not just new capitals).
    pub(crate) fn renames(&self) -> bool {
        let current = self.terms.first().map(|t| t.name.as_str()).unwrap_or("");
        self.new_name
            .as_ref()
            .is_some_and(|n| !n.eq_ignore_ascii_case(current))
    }

    /// The request changes members it does not name: removes current ones (DELETE, remove
    /// all, a new member set), or brings every member's roles in line after a rename.
    pub(crate) fn derives_changes(&self) -> bool {
        self.plan.needs_current() || (self.resync_roles && self.renames())
    }

    /// The request changes the group (its reading of the members serves a change).
    pub(crate) fn changes_group(&self) -> bool {
        self.tasks.iter().any(|t| matches!(t, Task::Plan))
    }

    /// Most member rows this request reads: the read cap, and for a change derived from the
    /// current members, no more than can still keep it within the change limit (at least
    /// current − named members change, so past that the request is refused anyway).
    pub(crate) fn walk_cap(&self) -> usize {
        if self.derives_changes() {
            self.max_members_read
                .min(self.max_changes.saturating_add(self.named_members()))
        } else {
            self.max_members_read
        }
    }

    /// The walk found more members than the request may read or change: refused whole (a
    /// group is never answered with part of its members).
    pub(crate) fn too_many_members(&self) -> ScimError {
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
    pub(crate) fn too_many_changes(&self, derived: Option<usize>) -> ScimError {
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
    pub(crate) fn walk_calls(
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
}
