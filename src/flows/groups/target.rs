//! The group a request acts on: its term as read (or the terms of a list), the version an
//! `If-Match` asks for, the name the request gives it, and the name's lock a create or a
//! rename holds.

use crate::drupal::groups::Term;
use crate::flows::scope::LockScope;
use crate::runtime::intents::SharedIntent;

/// Group names are compared without case; this lock keeps concurrent creates (and renames)
/// of one name in this Envoy down to one.
pub(crate) fn name_lock_key(name: &str) -> String {
    format!("scim/group-name/{}", name.to_lowercase())
}

/// Rounds a name check waits for another request creating the same name, at most (a safety
/// net: the real limit is the lock time-out).
pub(crate) const MAX_NAME_WAITS: u32 = 10_000;

#[derive(Debug, Default)]
pub(crate) struct GroupAtHand {
    /// The group(s) at hand.
    pub(crate) terms: Vec<Term>,
    /// `If-Match` of a change: the group's version must match it.
    pub(crate) if_match: Option<String>,
    /// The name the request gives the group.
    pub(crate) new_name: Option<String>,
    /// The term's name or externalId was changed (told in a later failure's answer).
    pub(crate) term_changed: bool,
    /// The name whose lock this request holds.
    pub(crate) name_locked: Option<String>,
}

impl GroupAtHand {
    /// The uuid of the group the request acts on: the first term read (empty before it is
    /// known).
    pub(crate) fn id(&self) -> String {
        self.terms
            .first()
            .map(|t| t.uuid.clone())
            .unwrap_or_default()
    }

    /// Its name (empty before it is known).
    pub(crate) fn name(&self) -> &str {
        self.terms.first().map(|t| t.name.as_str()).unwrap_or("")
    }

    /// The request gives the group a new name (not just new capitals).
    pub(crate) fn renames(&self) -> bool {
        let current = self.name();
        self.new_name
            .as_ref()
            .is_some_and(|n| !n.eq_ignore_ascii_case(current))
    }

    pub(crate) fn holds_name(&self, name: &str) -> bool {
        self.name_locked.as_deref() == Some(name)
    }

    /// Lets go of the name's lock after this step (nothing waits for it).
    pub(crate) fn release_name(&mut self, env: &mut LockScope) {
        let unlock = self.name_unlock(env);
        env.later(unlock);
    }

    /// The release of the name's lock, if held.
    pub(crate) fn name_unlock(&mut self, env: &LockScope) -> Option<SharedIntent> {
        let name = self.name_locked.take()?;
        Some(env.unlock(&name_lock_key(&name)))
    }
}
