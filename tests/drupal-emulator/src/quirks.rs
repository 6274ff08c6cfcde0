//! Sites that differ from the recorded one in ways that matter to account protection, switched
//! on through `PUT /_emulator/settings`: `hide_role_ids` (an older core, or a JSON:API Extras
//! override, that gives `roles` relationship items without `meta.drupal_internal__target_id`)
//! and `anonymous_label` (a site that renamed uid 0, `user.settings:anonymous`).

use crate::json::J;
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quirks {
    pub hide_role_ids: bool,
    pub anonymous_label: Option<String>,
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
        Ok(())
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
        out
    }
}
