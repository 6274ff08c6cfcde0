//! The optional `groups` part of the configuration: the vocabulary and membership field that
//! hold SCIM Groups, the role grants, and the per-request limits of group work.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct RoleGrant {
    /// The group's displayName (compared without case).
    pub group: String,
    /// Drupal role machine names its members hold.
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupsConfig {
    pub vocabulary: String,
    pub membership_field: String,
    pub role_grants: Vec<RoleGrant>,
    /// How many users' memberships one request changes at the same time (and, at most, how
    /// many member pages it reads at once).
    pub concurrency: usize,
    /// Most members one request reads (all its groups together): a group read beyond it is
    /// refused (400 `tooMany`), never answered with part of the members.
    pub max_members_read: usize,
}

/// Below a small PHP-FPM pool (Debian's `pm.max_children` is 5): one group request never
/// queues calls in PHP, so none waits past `timeout_ms` behind its own siblings, and a worker
/// stays free for the IdP's other requests and the site. A larger Drupal can take more.
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const DEFAULT_MAX_MEMBERS_READ: usize = 10_000;

impl GroupsConfig {
    /// Parses the optional `groups` object (field names `groups.…`).
    pub fn from_config(value: Option<&Value>) -> Result<Option<Self>, (String, String)> {
        let Some(value) = value else {
            return Ok(None);
        };
        let err = |f: &str, r: &str| (format!("groups.{f}"), r.to_string());
        let obj = value
            .as_object()
            .ok_or_else(|| ("groups".to_string(), "must be an object".to_string()))?;
        let known = [
            "vocabulary",
            "membership_field",
            "role_grants",
            "concurrency",
            "max_members_read",
        ];
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err((
                format!("groups.{k}"),
                format!("unknown field (expected one of: {})", known.join(", ")),
            ));
        }
        let name = |key: &str, default: &str| -> Result<String, (String, String)> {
            match obj.get(key) {
                None => Ok(default.to_string()),
                Some(Value::String(s)) if is_machine_name(s) => Ok(s.clone()),
                Some(_) => Err(err(key, "must be a Drupal machine name (a-z, 0-9, _)")),
            }
        };
        let vocabulary = name("vocabulary", "scim_groups")?;
        let membership_field = name("membership_field", "field_scim_groups")?;
        let concurrency = match obj.get("concurrency") {
            None => DEFAULT_CONCURRENCY,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=64) => usize::try_from(n).unwrap_or(DEFAULT_CONCURRENCY),
                _ => return Err(err("concurrency", "must be an integer from 1 to 64")),
            },
        };
        let max_members_read = match obj.get("max_members_read") {
            None => DEFAULT_MAX_MEMBERS_READ,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=100_000) => usize::try_from(n).unwrap_or(DEFAULT_MAX_MEMBERS_READ),
                _ => {
                    return Err(err(
                        "max_members_read",
                        "must be an integer from 1 to 100000",
                    ))
                }
            },
        };
        let mut role_grants: Vec<RoleGrant> = Vec::new();
        if let Some(grants) = obj.get("role_grants") {
            let grants = grants.as_object().ok_or_else(|| {
                err(
                    "role_grants",
                    "must be an object: {\"group displayName\": [\"role_machine_name\", …]}",
                )
            })?;
            for (group, roles) in grants {
                let field = format!("role_grants.{group}");
                let list = roles
                    .as_array()
                    .ok_or_else(|| err(&field, "must be a list of role machine names"))?;
                let mut names = Vec::new();
                for r in list {
                    match r.as_str() {
                        Some("anonymous" | "authenticated") => {
                            return Err(err(
                                &field,
                                "`anonymous` and `authenticated` cannot be granted",
                            ))
                        }
                        // Granting it would let the IdP make site administrators, and every
                        // administrator would become writable to SCIM.
                        Some("administrator") => {
                            return Err(err(
                                &field,
                                "`administrator` can never be granted through SCIM (it would let the IdP make site administrators and make every administrator writable)",
                            ))
                        }
                        Some(s) if is_machine_name(s) => names.push(s.to_string()),
                        _ => return Err(err(&field, "must be a list of role machine names")),
                    }
                }
                if role_grants
                    .iter()
                    .any(|g| g.group.eq_ignore_ascii_case(group))
                {
                    return Err(err(
                        &field,
                        "is given twice (names are compared without case)",
                    ));
                }
                role_grants.push(RoleGrant {
                    group: group.clone(),
                    roles: names,
                });
            }
        }
        Ok(Some(GroupsConfig {
            vocabulary,
            membership_field,
            role_grants,
            concurrency,
            max_members_read,
        }))
    }

    pub fn term_type(&self) -> String {
        format!("taxonomy_term--{}", self.vocabulary)
    }

    /// Every role some group grants: the only roles the gateway ever adds or removes.
    pub fn managed_roles(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for g in &self.role_grants {
            for r in &g.roles {
                if !out.contains(&r.as_str()) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// The roles members of these groups (by displayName) hold.
    pub fn granted_roles<'a>(&'a self, group_names: &[String]) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for g in &self.role_grants {
            if group_names.iter().any(|n| n.eq_ignore_ascii_case(&g.group)) {
                for r in &g.roles {
                    if !out.contains(&r.as_str()) {
                        out.push(r);
                    }
                }
            }
        }
        out
    }
}

fn is_machine_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_config_defaults_and_errors() {
        let g = GroupsConfig::from_config(Some(&json!({})))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                g.vocabulary.as_str(),
                g.membership_field.as_str(),
                g.concurrency
            ),
            ("scim_groups", "field_scim_groups", DEFAULT_CONCURRENCY)
        );
        assert_eq!(g.max_members_read, DEFAULT_MAX_MEMBERS_READ);
        assert!(GroupsConfig::from_config(None).unwrap().is_none());
        let cases = [
            (json!({"vocab": "x"}), "groups.vocab"),
            (json!({"vocabulary": "Bad Name"}), "groups.vocabulary"),
            (json!({"concurrency": 0}), "groups.concurrency"),
            (json!({"max_members_read": 0}), "groups.max_members_read"),
            (
                json!({"max_members_read": 100_001}),
                "groups.max_members_read",
            ),
            (
                json!({"role_grants": {"Eng": ["authenticated"]}}),
                "groups.role_grants.Eng",
            ),
            (
                json!({"role_grants": {"Eng": ["a"], "eng": ["b"]}}),
                "groups.role_grants.eng",
            ),
            (json!({"role_grants": []}), "groups.role_grants"),
            (
                json!({"role_grants": {"Eng": ["developer", "administrator"]}}),
                "groups.role_grants.Eng",
            ),
        ];
        for (v, field) in cases {
            assert_eq!(
                GroupsConfig::from_config(Some(&v)).unwrap_err().0,
                field,
                "{v}"
            );
        }
    }

    #[test]
    fn role_grants_follow_group_names_without_case() {
        let g = GroupsConfig::from_config(Some(
            &json!({"role_grants": {"Engineering": ["editor", "dev"], "Ops": ["dev"]}}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(g.managed_roles(), ["editor", "dev"]);
        assert_eq!(g.granted_roles(&["ops".into()]), ["dev"]);
        assert!(g.granted_roles(&["Sales".into()]).is_empty());
    }
}
