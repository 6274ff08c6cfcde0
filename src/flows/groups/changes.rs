//! The membership changes of a group write: what the members should become, the batch that
//! applies it user by user, the role table it grants from, and the undo of a create whose
//! member adds failed.

use crate::flows::membership::{Batch, Change};

/// What the members should become.
#[derive(Debug, Default)]
pub(crate) struct MemberPlan {
    /// Operations in order; `None` = remove everyone.
    pub(crate) ops: Vec<(Change, Option<Vec<String>>)>,
    /// The whole set replaces the current one.
    pub(crate) replace: Option<Vec<String>>,
}

impl MemberPlan {
    pub(crate) fn needs_current(&self) -> bool {
        self.replace.is_some() || self.ops.iter().any(|(_, ids)| ids.is_none())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.replace.is_none()
    }

    /// Members named in the request (the new member set, and the ids of add/remove lists).
    pub(crate) fn named_members(&self) -> usize {
        let listed: usize = self
            .ops
            .iter()
            .filter_map(|(_, ids)| ids.as_ref().map(Vec::len))
            .sum();
        listed.saturating_add(self.replace.as_ref().map_or(0, Vec::len))
    }
}

/// A create whose member adds failed is undone (the adds that landed, then the term), so
/// that nothing is left behind a "retry" answer.
#[derive(Debug)]
pub(crate) struct Undo {
    /// What went wrong with the adds (the answer, once undone).
    pub(crate) failures: Vec<String>,
    /// Users whose add may have landed (applied, or failed in an unknown way).
    pub(crate) added: Vec<String>,
    /// The term is deleted: the create is undone.
    pub(crate) term_deleted: bool,
}

#[derive(Debug, Default)]
pub(crate) struct MemberChanges {
    pub(crate) plan: MemberPlan,
    pub(crate) batch: Option<Batch>,
    /// Role machine name → uuid, once read (role grants are configured).
    pub(crate) roles: Vec<(String, String)>,
    /// Role grants are configured and the request renames the group.
    pub(crate) resync_roles: bool,
    /// Undoing a create whose member adds failed.
    pub(crate) undo: Option<Undo>,
}
