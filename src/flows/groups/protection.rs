//! The accounts a group request may not write (administrators, uid 1, the service account):
//! which it met, the membership changes it left out for them, and how the answer and the
//! site's log report those.

use crate::config::protection::Protection;
use crate::flows::membership::Change;
use crate::scim::error::ScimError;
use serde_json::Value;

/// An account SCIM may not write, as a group request met it.
#[derive(Debug, Clone, PartialEq)]
pub struct Protected {
    /// Its SCIM id (the Drupal UUID).
    pub uuid: String,
    pub uid: u64,
    /// Why it is read-only (`Protection::refusal`).
    pub why: String,
}

impl Protected {
    /// Drupal did not show its roles: a change to it refuses the request (`read_only_member`).
    pub(crate) fn unreadable(&self) -> bool {
        self.why == crate::config::protection::ROLES_UNREADABLE
    }

    pub(crate) fn refusal(&self) -> ScimError {
        read_only_member(&self.uuid, &self.why)
    }
}

/// A membership change left out of a group request: the account keeps its groups and roles
/// as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOut {
    pub member: Protected,
    pub change: Change,
}

/// What a group request left out, for the site's log and metrics: the group's id and the
/// changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeftOutReport {
    pub group: String,
    pub changes: Vec<LeftOut>,
}

impl LeftOutReport {
    /// One log line's worth: the uids with what was asked for each, then the reasons.
    pub fn describe(&self) -> String {
        let uids: Vec<String> = self
            .changes
            .iter()
            .map(|l| {
                let op = if l.change == Change::Add {
                    "add"
                } else {
                    "remove"
                };
                format!("{}:{op}", l.member.uid)
            })
            .collect();
        let mut reasons: Vec<&str> = Vec::new();
        for l in &self.changes {
            if !reasons.contains(&l.member.why.as_str()) {
                reasons.push(l.member.why.as_str());
            }
        }
        format!(
            "group={} left_unchanged={} uids={} why=\"{}\"",
            self.group,
            self.changes.len(),
            uids.join(","),
            reasons.join(" | ").replace('"', "'")
        )
    }
}

/// The accounts a request met that SCIM may not write, and the changes it left out for them.
#[derive(Debug, Default)]
pub(crate) struct ProtectedAccounts {
    /// Which accounts SCIM may not write (`None`: no check, in unit tests of other parts).
    pub(crate) protection: Option<Protection>,
    /// Accounts met in this request that SCIM may not write (current members, and members
    /// the request names).
    pub(crate) read_only: Vec<Protected>,
    /// The membership changes the request asked for and the gateway left out, because the
    /// account is read-only to SCIM; everything else is applied.
    pub(crate) left_out: Vec<LeftOut>,
}

impl ProtectedAccounts {
    /// Notes an account SCIM may not write (once).
    pub(crate) fn note(&mut self, resource: &Value) {
        let Some(why) = self.refusal_of(resource) else {
            return;
        };
        let uuid = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.read_only.iter().any(|p| p.uuid == uuid) {
            self.read_only.push(Protected {
                uuid: uuid.to_string(),
                uid: uid_of(resource),
                why,
            });
        }
    }

    /// Why SCIM may not write the account of this JSON:API user resource, if it may not.
    pub(crate) fn refusal_of(&self, resource: &Value) -> Option<String> {
        self.protection
            .as_ref()
            .and_then(|p| member_refusal(p, resource))
    }

    pub(crate) fn get(&self, uuid: &str) -> Option<&Protected> {
        self.read_only.iter().find(|p| p.uuid == uuid)
    }

    /// Records a change left out (once per account and kind of change).
    pub(crate) fn leave_out(&mut self, uuid: &str, change: Change) {
        let Some(member) = self.get(uuid).cloned() else {
            return;
        };
        if !self
            .left_out
            .iter()
            .any(|l| l.member.uuid == uuid && l.change == change)
        {
            self.left_out.push(LeftOut { member, change });
        }
    }

    /// The changes left out, for the log and metrics (once).
    pub(crate) fn take_report(&mut self, group: String) -> Option<LeftOutReport> {
        if self.left_out.is_empty() {
            return None;
        }
        Some(LeftOutReport {
            group,
            changes: std::mem::take(&mut self.left_out),
        })
    }
}

/// Most member ids the `Warning` header names (the rest are counted).
const WARNING_IDS: usize = 10;

/// The `Warning` header of an answer whose request left protected members out: the IdP's
/// request succeeded for everyone else, and retrying it would change nothing.
pub(crate) fn left_out_warning(left_out: &[LeftOut]) -> Option<(String, String)> {
    if left_out.is_empty() {
        return None;
    }
    let mut ids: Vec<&str> = Vec::new();
    for l in left_out {
        if !ids.contains(&l.member.uuid.as_str()) {
            ids.push(l.member.uuid.as_str());
        }
    }
    let total = ids.len();
    let mut named = ids
        .iter()
        .take(WARNING_IDS)
        .map(|i| i.replace(['"', '\\'], ""))
        .collect::<Vec<_>>()
        .join(", ");
    if total > WARNING_IDS {
        named.push_str(&format!(" and {} more", total.saturating_sub(WARNING_IDS)));
    }
    Some((
        "warning".to_string(),
        format!(
            "299 scim-gateway \"The membership of {total} account(s) that SCIM may not change (administrators, uid 1, the service account) was left as it is: {named}. Every other change was applied.\""
        ),
    ))
}

/// The uid of a JSON:API user resource (0 when Drupal did not show it).
pub(crate) fn uid_of(resource: &Value) -> u64 {
    resource
        .pointer("/attributes/drupal_internal__uid")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Why SCIM may not write the account of this JSON:API user resource, if it may not.
pub(crate) fn member_refusal(protection: &Protection, resource: &Value) -> Option<String> {
    let uid = uid_of(resource);
    let name = resource
        .pointer("/attributes/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    protection.refusal(
        uid,
        name,
        crate::config::protection::roles_of(resource).as_deref(),
    )
}

/// A member whose roles Drupal's answer does not show: nothing tells whether it is an
/// administrator, and that is Drupal's (or its configuration's) failure, not the site's
/// policy about this account, so the whole request is refused rather than passing it by.
pub(crate) fn read_only_member(id: &str, why: &str) -> ScimError {
    ScimError::new(
        403,
        None,
        format!("Member `{id}` cannot be changed through SCIM: {why} Nothing was changed."),
    )
}
