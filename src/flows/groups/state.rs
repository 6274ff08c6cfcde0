//! What a `/Groups` request knows and holds while its tasks run, in parts (the answer it
//! owes, the group at hand, the members read, the membership changes, the accounts SCIM may
//! not write, the limits), and the member caps that follow from them.

use crate::drupal::groups::GroupCalls;
use crate::flows::groups::answer::AnswerShape;
use crate::flows::groups::changes::MemberChanges;
use crate::flows::groups::protection::ProtectedAccounts;
use crate::flows::groups::target::GroupAtHand;
use crate::flows::groups::task::GroupAnswer;
use crate::flows::groups::walk::{MemberWalk, WalkStop};
use crate::http::{DrupalCall, DrupalReply};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::projection::Projection;

/// How much one request may read and change.
#[derive(Debug)]
pub(crate) struct MemberLimits {
    /// Most members one request reads (`groups.max_members_read`).
    pub(crate) max_read: usize,
    /// Most members one request changes without naming them, and most it names
    /// (`limits.max_members_per_request`).
    pub(crate) max_changes: usize,
    /// Most Drupal pages read to check a filter Drupal cannot answer exactly.
    pub(crate) max_checked_pages: usize,
}

#[derive(Debug)]
pub(crate) struct GroupState {
    pub(crate) answer: AnswerShape,
    pub(crate) group: GroupAtHand,
    pub(crate) walk: MemberWalk,
    pub(crate) changes: MemberChanges,
    pub(crate) protected: ProtectedAccounts,
    pub(crate) limits: MemberLimits,
    /// A user query succeeded, which proves Drupal accepted the service account.
    pub(crate) users_read: bool,
    /// The request changes the group (its reading of the members serves a change).
    pub(crate) changes_group: bool,
    /// The request deletes the group.
    pub(crate) deletes_group: bool,
}

impl GroupState {
    pub(crate) fn new(base_url: &str, projection: Projection, kind: GroupAnswer) -> Self {
        GroupState {
            answer: AnswerShape::new(base_url, projection, kind),
            group: GroupAtHand::default(),
            walk: MemberWalk::default(),
            changes: MemberChanges::default(),
            protected: ProtectedAccounts::default(),
            limits: MemberLimits {
                max_read: crate::config::groups::DEFAULT_MAX_MEMBERS_READ,
                max_changes: 1000,
                max_checked_pages: 20,
            },
            users_read: false,
            changes_group: false,
            deletes_group: false,
        }
    }

    /// The request changes members it does not name: removes current ones (DELETE, remove
    /// all, a new member set), or brings every member's roles in line after a rename.
    pub(crate) fn derives_changes(&self) -> bool {
        self.changes.plan.needs_current() || (self.changes.resync_roles && self.group.renames())
    }

    /// Most member rows this request reads: the read cap, and for a change derived from the
    /// current members, no more than can still keep it within the change limit (at least
    /// current − named members change, so past that the request is refused anyway).
    pub(crate) fn walk_cap(&self) -> usize {
        if self.derives_changes() {
            self.limits.max_read.min(
                self.limits
                    .max_changes
                    .saturating_add(self.changes.plan.named_members()),
            )
        } else {
            self.limits.max_read
        }
    }

    /// The member pages to read next (see `MemberWalk::calls`).
    pub(crate) fn walk_calls(
        &mut self,
        concurrency: usize,
        calls: &GroupCalls,
    ) -> Result<Vec<DrupalCall>, ScimError> {
        let cap = self.walk_cap();
        let out = self.walk.calls(&self.group.terms, cap, concurrency, calls);
        out.map_err(|stop| self.walk_stopped(stop))
    }

    /// Takes in a round of member pages.
    pub(crate) fn take_member_pages(
        &mut self,
        concurrency: usize,
        replies: &[DrupalReply],
    ) -> Result<(), ScimError> {
        let cap = self.walk_cap();
        let taken = self.walk.take_pages(
            replies,
            concurrency,
            cap,
            &mut self.protected,
            &mut self.users_read,
        );
        taken.map_err(|stop| self.walk_stopped(stop))
    }

    fn walk_stopped(&self, stop: WalkStop) -> ScimError {
        match stop {
            WalkStop::Failed(e) => e,
            WalkStop::OverCap => self.too_many_members(),
        }
    }

    /// The walk found more members than the request may read or change: refused whole (a
    /// group is never answered with part of its members).
    pub(crate) fn too_many_members(&self) -> ScimError {
        let cap = self.walk_cap();
        if self.derives_changes() && cap < self.limits.max_read {
            return self.too_many_changes(None);
        }
        let name = self.group.name();
        let detail = if self.answer.kind == GroupAnswer::List {
            format!(
                "The groups of this page have more than {cap} members together, more than the gateway reads for one request (`groups.max_members_read`); it does not answer with part of them. Ask for fewer groups (`count`), or leave the members out (`excludedAttributes=members`)."
            )
        } else if self.changes_group {
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
        let name = self.group.name();
        let max = self.limits.max_changes;
        let count = derived.map_or_else(|| format!("more than {max}"), |n| n.to_string());
        let hint = if self.deletes_group {
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
}
