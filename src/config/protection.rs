//! Which Drupal accounts SCIM may change. An IdP's token must never be enough to take over
//! the site: uid 1, the gateway's own service account, and every account holding a role the
//! gateway does not manage are read-only to SCIM (listed and readable, never written).

use crate::scim::error::ScimError;
use serde_json::Value;
use std::cell::Cell;
use std::rc::Rc;

/// The role every logged-in account has; Drupal does not list it in `roles`.
const AUTHENTICATED: &str = "authenticated";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Protection {
    /// The Drupal account the gateway acts as.
    pub service_username: String,
    /// Roles an account may hold and still be written through SCIM: `authenticated`, the
    /// roles `groups.role_grants` manages, and the configured `allowed_roles`.
    pub writable_roles: Vec<String>,
    /// The service account's uid, once the start-up check has learnt it: a name can be
    /// spelt in ways an ASCII comparison misses (`ǅ` / `ǆ`), a uid cannot.
    pub service_uid: ServiceUid,
}

/// The service account's uid as the start-up check learnt it, shared by every copy of the
/// configuration in a VM (the configuration is parsed before Drupal can be asked).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceUid(Rc<Cell<Option<u64>>>);

impl ServiceUid {
    pub fn get(&self) -> Option<u64> {
        self.0.get()
    }

    pub fn set(&self, uid: u64) {
        self.0.set(Some(uid));
    }
}

impl Protection {
    /// Why SCIM may not write this account, or `None` when it may.
    /// `roles` is `None` when Drupal's answer did not say which roles the account holds.
    pub fn refusal(&self, uid: u64, name: &str, roles: Option<&[String]>) -> Option<String> {
        let reason = self.reason(uid, name, roles);
        if reason.is_some() {
            crate::runtime::tally::note(crate::runtime::tally::Event::ProtectedRefusal);
        }
        reason
    }

    fn reason(&self, uid: u64, name: &str, roles: Option<&[String]>) -> Option<String> {
        if uid == 1 {
            return Some("Drupal's first account (uid 1) is read-only to SCIM.".into());
        }
        if uid == 0 {
            return Some("Drupal's anonymous user (uid 0) is read-only to SCIM.".into());
        }
        if self.service_uid.get() == Some(uid) || self.is_service_name(name) {
            return Some("The gateway's own Drupal service account is read-only to SCIM.".into());
        }
        // An administrator whose roles are hidden would otherwise look role-less: fail closed.
        let Some(roles) = roles else {
            return Some(ROLES_UNREADABLE.into());
        };
        let foreign: Vec<&str> = roles
            .iter()
            .map(String::as_str)
            .filter(|r| !self.writable_roles.iter().any(|w| w == r))
            .collect();
        (!foreign.is_empty()).then(|| {
            format!(
                "The account holds the Drupal role(s) `{}`, which the gateway does not manage, so it is read-only to SCIM (see `allowed_roles`).",
                foreign.join("`, `")
            )
        })
    }

    /// Drupal compares user names case-insensitively, beyond ASCII too.
    fn is_service_name(&self, name: &str) -> bool {
        !name.is_empty()
            && (name.eq_ignore_ascii_case(&self.service_username)
                || name.to_lowercase() == self.service_username.to_lowercase())
    }

    /// The same as an error: 403, nothing changed.
    pub fn check(&self, uid: u64, name: &str, roles: Option<&[String]>) -> Result<(), ScimError> {
        match self.refusal(uid, name, roles) {
            Some(reason) => Err(ScimError::new(403, None, reason)),
            None => Ok(()),
        }
    }
}

/// Why an account whose roles Drupal did not show is read-only.
pub const ROLES_UNREADABLE: &str = "Drupal's answer does not show which roles the account holds (the `roles` relationship or its `meta.drupal_internal__target_id` is missing, for example renamed or hidden by JSON:API Extras), so it is read-only to SCIM: it might be an administrator.";

/// Builds the writable set from the configured roles.
pub fn writable_roles(allowed: &[String], managed: &[&str]) -> Vec<String> {
    let mut out = vec![AUTHENTICATED.to_string()];
    for r in managed
        .iter()
        .copied()
        .chain(allowed.iter().map(String::as_str))
    {
        if !out.iter().any(|o| o == r) {
            out.push(r.to_string());
        }
    }
    out
}

/// The role machine names of a JSON:API user resource (its `roles` relationship), or `None`
/// when the relationship, or the machine name of any role in it, is missing: older cores
/// give no `meta.drupal_internal__target_id`, JSON:API Extras can rename or hide `roles`.
pub fn roles_of(resource: &Value) -> Option<Vec<String>> {
    resource
        .pointer("/relationships/roles/data")?
        .as_array()?
        .iter()
        .map(|r| {
            r.pointer("/meta/drupal_internal__target_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn protection() -> Protection {
        Protection {
            service_username: "scim-service".into(),
            writable_roles: writable_roles(&["content_editor".into()], &["developer"]),
            service_uid: ServiceUid::default(),
        }
    }

    #[test]
    fn the_service_account_is_known_by_uid_once_learnt_and_uid_0_by_its_uid() {
        let p = protection();
        // Before the start-up check: by name only (any case, beyond ASCII too).
        assert_eq!(p.refusal(7, "renamed-svc", Some(&[])), None);
        let q = Protection {
            service_username: "Ærøskøbing-svc".into(),
            ..protection()
        };
        assert!(q.refusal(9, "ærøskøbing-SVC", Some(&[])).is_some());
        // Learnt: every copy of the configuration knows it.
        let copy = p.clone();
        p.service_uid.set(7);
        let why = copy.refusal(7, "renamed-svc", Some(&[])).unwrap();
        assert!(why.contains("service account"), "{why}");
        assert_eq!(copy.refusal(8, "alice", Some(&[])), None);
        assert!(p.refusal(0, "Gast", Some(&[])).unwrap().contains("uid 0"));
    }

    #[test]
    fn uid_1_the_service_account_and_foreign_roles_are_read_only() {
        let p = protection();
        assert!(p.refusal(1, "admin", Some(&[])).unwrap().contains("uid 1"));
        assert!(p
            .refusal(7, "SCIM-Service", Some(&[]))
            .unwrap()
            .contains("service account"));
        let why = p
            .refusal(
                7,
                "eve",
                Some(&["administrator".into(), "developer".into()]),
            )
            .unwrap();
        assert!(why.contains("`administrator`") && !why.contains("developer"));
        assert_eq!(
            p.check(7, "eve", Some(&["administrator".into()]))
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn managed_and_allowed_roles_are_writable() {
        let p = protection();
        assert_eq!(p.refusal(7, "alice", Some(&[])), None);
        assert_eq!(
            p.refusal(
                7,
                "alice",
                Some(&["developer".into(), "content_editor".into()])
            ),
            None
        );
        assert!(p.check(7, "alice", Some(&["authenticated".into()])).is_ok());
    }

    #[test]
    fn roles_come_from_the_relationship_meta() {
        let resource = json!({"relationships": {"roles": {"data": [
            {"type": "user_role--user_role", "id": "u1", "meta": {"drupal_internal__target_id": "administrator"}},
            {"type": "user_role--user_role", "id": "u2", "meta": {"drupal_internal__target_id": "content_editor"}}
        ]}}});
        assert_eq!(
            roles_of(&resource),
            Some(vec!["administrator".into(), "content_editor".into()])
        );
        let none = json!({"relationships": {"roles": {"data": []}}});
        assert_eq!(roles_of(&none), Some(vec![]));
    }

    #[test]
    fn an_account_whose_roles_cannot_be_read_is_read_only() {
        let hidden = [
            json!({}),
            json!({"relationships": {}}),
            json!({"relationships": {"roles": {"data": null}}}),
            // A renamed relationship (JSON:API Extras).
            json!({"relationships": {"user_roles": {"data": []}}}),
            // Older cores: no machine name in the relationship's meta.
            json!({"relationships": {"roles": {"data": [{"type": "user_role--user_role", "id": "u1"}]}}}),
            json!({"relationships": {"roles": {"data": [
                {"type": "user_role--user_role", "id": "u1", "meta": {"drupal_internal__target_id": "editor"}},
                {"type": "user_role--user_role", "id": "u2", "meta": {}}
            ]}}}),
        ];
        let p = protection();
        for resource in hidden {
            assert_eq!(roles_of(&resource), None, "{resource}");
            let e = p
                .check(7, "alice", roles_of(&resource).as_deref())
                .unwrap_err();
            assert_eq!(e.status, 403);
            assert!(
                e.detail.contains("does not show which roles"),
                "{}",
                e.detail
            );
        }
    }
}
