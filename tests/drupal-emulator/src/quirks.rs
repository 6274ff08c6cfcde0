//! Sites that differ from the recorded one in ways that matter to account protection, switched
//! on through `PUT /_emulator/settings`: `hide_role_ids` (an older core, or a JSON:API Extras
//! override, that gives `roles` relationship items without `meta.drupal_internal__target_id`)
//! and `anonymous_label` (a site that renamed uid 0, `user.settings:anonymous`); and
//! `grant_permissions` (`{"role": ["permission", …]}`, a site that gave a role more).

use crate::json::J;
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quirks {
    pub hide_role_ids: bool,
    pub anonymous_label: Option<String>,
    /// (role, permission) pairs added to the recorded roles.
    pub granted_permissions: Vec<(String, String)>,
}

impl Quirks {
    /// Applies the keys of a settings document that name a quirk.
    pub fn update(&mut self, v: &Value) -> Result<(), String> {
        if let Some(b) = v.get("hide_role_ids") {
            self.hide_role_ids = b.as_bool().ok_or("hide_role_ids must be a boolean")?;
        }
        match v.get("anonymous_label") {
            None => {}
            Some(Value::Null) => self.anonymous_label = None,
            Some(Value::String(s)) if !s.is_empty() => self.anonymous_label = Some(s.clone()),
            Some(_) => return Err("anonymous_label must be a non-empty string or null".into()),
        }
        if let Some(map) = v.get("grant_permissions") {
            let map = map
                .as_object()
                .ok_or("grant_permissions must be an object {role: [permission, …]}")?;
            let mut out = Vec::new();
            for (role, perms) in map {
                let perms = perms
                    .as_array()
                    .ok_or("grant_permissions values must be arrays of permission names")?;
                for p in perms {
                    let p = p.as_str().ok_or("permission names must be strings")?;
                    out.push((role.clone(), p.to_string()));
                }
            }
            self.granted_permissions = out;
        }
        Ok(())
    }

    /// Adds the granted permissions to the site's roles (seeded afresh on reset).
    pub fn apply_to_roles(&self, roles: &mut [crate::model::Role]) {
        for (role, perm) in &self.granted_permissions {
            if let Some(r) = roles.iter_mut().find(|r| r.id == role.as_str()) {
                if !r.permissions.iter().any(|p| p == perm) {
                    // Role permissions are the recorded site's static strings; an emulator
                    // process leaks the few a test adds.
                    r.permissions.push(Box::leak(perm.clone().into_boxed_str()));
                    r.permissions.sort_unstable();
                }
            }
        }
    }

    /// uid 0's label.
    pub fn anonymous_label(&self) -> &str {
        self.anonymous_label.as_deref().unwrap_or("Anonymous")
    }

    /// Adds the quirks that are on to a settings document.
    pub fn to_json(&self, mut out: J) -> J {
        if self.hide_role_ids {
            out = out.with("hide_role_ids", true);
        }
        if let Some(l) = &self.anonymous_label {
            out = out.with("anonymous_label", l.as_str());
        }
        if !self.granted_permissions.is_empty() {
            let pairs = self
                .granted_permissions
                .iter()
                .map(|(role, perm)| J::Str(format!("{role}: {perm}")))
                .collect();
            out = out.with("grant_permissions", J::Arr(pairs));
        }
        out
    }
}
