//! Configurable user fields (`--user-field`, `--second-run-fields`): their definitions, stored
//! values, and JSON:API resource identifiers for entity-reference fields (`meta.arity` and the
//! `missing` identifier of dangling references), as `Drupal\jsonapi\JsonApiResource\ResourceIdentifier`
//! computes them.

use crate::app::href;
use crate::json::J;
use crate::model::Db;
use serde_json::Value;

/// The type of a configurable field.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldKind {
    /// `string`, at most 255 characters, `case_sensitive: false` (NOCASE_UTF8 on SQLite).
    String,
    Integer,
    Boolean,
    /// `entity_reference` to taxonomy terms of one vocabulary, unlimited cardinality.
    TermRef(String),
}

/// A configurable field on the user entity.
#[derive(Clone, Debug, PartialEq)]
pub struct UserField {
    pub name: String,
    pub kind: FieldKind,
    /// The label used in violation messages ("Given name").
    pub label: String,
}

/// A stored value of a configurable field.
#[derive(Clone, Debug, PartialEq)]
pub enum FVal {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Target ids in stored order (they may dangle).
    Refs(Vec<i64>),
}

/// The user entity's base fields (core REST serialises exactly these, plus configurable fields).
pub const USER_BASE_FIELDS: [&str; 18] = [
    "uid",
    "uuid",
    "langcode",
    "preferred_langcode",
    "preferred_admin_langcode",
    "name",
    "pass",
    "mail",
    "timezone",
    "status",
    "created",
    "changed",
    "access",
    "login",
    "init",
    "roles",
    "default_langcode",
    "user_picture",
];

/// Names a configurable field may not take besides the base fields (JSON:API's own members).
const RESERVED: [&str; 7] = [
    "display_name",
    "drupal_internal__uid",
    "id",
    "type",
    "links",
    "meta",
    "relationships",
];

/// "field_given_name" → "Given name" (what the field UI would have suggested).
pub fn label_for(name: &str) -> String {
    let base = name
        .strip_prefix("field_")
        .unwrap_or(name)
        .replace('_', " ");
    let mut c = base.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

impl UserField {
    pub fn new(name: &str, kind: FieldKind) -> UserField {
        UserField {
            name: name.to_string(),
            kind,
            label: label_for(name),
        }
    }

    /// Parses `NAME[:TYPE]` (TYPE `string` (default), `boolean`, `integer`).
    pub fn parse_spec(spec: &str) -> Result<UserField, String> {
        let (name, ty) = spec.split_once(':').unwrap_or((spec, "string"));
        UserField::build(name, ty)
    }

    pub fn build(name: &str, ty: &str) -> Result<UserField, String> {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name.as_bytes()[0].is_ascii_lowercase()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(format!(
                "bad field name {name:?}: use a-z, 0-9 and _, at most 32 characters, starting with a letter"
            ));
        }
        if USER_BASE_FIELDS.contains(&name) || RESERVED.contains(&name) {
            return Err(format!("{name} is a base field of the user entity"));
        }
        let kind = match ty {
            "string" | "" => FieldKind::String,
            "integer" => FieldKind::Integer,
            "boolean" => FieldKind::Boolean,
            "scim_groups" | "entity_reference:scim_groups" => {
                FieldKind::TermRef("scim_groups".into())
            }
            other => {
                return Err(format!(
                    "unknown field type {other} (string, boolean, integer or scim_groups)"
                ))
            }
        };
        Ok(UserField::new(name, kind))
    }

    pub fn from_json(v: &Value) -> Result<UserField, String> {
        match v {
            Value::String(s) => UserField::parse_spec(s),
            Value::Object(o) => {
                let name = o
                    .get("name")
                    .and_then(|n| n.as_str())
                    .ok_or("a user field needs a \"name\"")?;
                let ty = o.get("type").and_then(|t| t.as_str()).unwrap_or("string");
                UserField::build(name, ty)
            }
            _ => Err("a user field is {\"name\", \"type\"} or \"NAME[:TYPE]\"".into()),
        }
    }

    pub fn type_name(&self) -> &str {
        match &self.kind {
            FieldKind::String => "string",
            FieldKind::Integer => "integer",
            FieldKind::Boolean => "boolean",
            FieldKind::TermRef(_) => "scim_groups",
        }
    }

    pub fn to_json(&self) -> J {
        J::obj()
            .with("name", self.name.as_str())
            .with("type", self.type_name())
    }

    pub fn is_ref(&self) -> bool {
        matches!(self.kind, FieldKind::TermRef(_))
    }

    /// The vocabulary an entity-reference field targets.
    pub fn bundle(&self) -> Option<&str> {
        match &self.kind {
            FieldKind::TermRef(b) => Some(b),
            _ => None,
        }
    }

    /// The resource type relatable through a reference field.
    pub fn target_type(&self) -> String {
        format!("taxonomy_term--{}", self.bundle().unwrap_or("tags"))
    }
}

/// What the recorded site added for the second run (transcript records 190–351).
pub fn second_run_fields() -> Vec<UserField> {
    vec![
        UserField::new("field_family_name", FieldKind::String),
        UserField::new("field_given_name", FieldKind::String),
        UserField::new(
            "field_scim_groups",
            FieldKind::TermRef("scim_groups".into()),
        ),
    ]
}

/// The effective field list: the second-run fields (if enabled) overridden by the explicit ones,
/// sorted by name (Drupal loads field configs ordered by id, so configurable fields come out in
/// name order after the base fields).
pub fn effective_fields(second_run: bool, extra: &[UserField]) -> Vec<UserField> {
    let mut out: Vec<UserField> = if second_run {
        second_run_fields()
    } else {
        Vec::new()
    };
    for f in extra {
        out.retain(|x| x.name != f.name);
        out.push(f.clone());
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

// ---------------------------------------------------------------------------------------------
// Resource identifiers.

/// A JSON:API resource identifier of a reference-field item.
#[derive(Clone, Debug)]
pub struct Ident {
    pub ty: String,
    pub id: String,
    pub arity: Option<i64>,
    /// `meta.drupal_internal__target_id` (None for `missing`/`virtual`, and for received ones).
    pub target: Option<i64>,
}

impl Ident {
    /// `ResourceIdentifier::compare() == 0`: same `type:id`, and the same arity when both have one.
    pub fn same(&self, o: &Ident) -> bool {
        self.ty == o.ty
            && self.id == o.id
            && match (self.arity, o.arity) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    pub fn to_json(&self) -> J {
        let mut meta = J::obj();
        if let Some(a) = self.arity {
            meta.push("arity", a);
        }
        match self.target {
            Some(t) => meta.push("drupal_internal__target_id", t),
            None => {
                let kind = self.id.as_str();
                meta.push(
                    "links",
                    J::obj().with(
                        "help",
                        href(&format!(
                            "https://www.drupal.org/docs/8/modules/json-api/core-concepts#{kind}"
                        ))
                        .with(
                            "meta",
                            J::obj().with(
                                "about",
                                format!("Usage and meaning of the '{kind}' resource identifier."),
                            ),
                        ),
                    ),
                );
            }
        }
        J::obj()
            .with("type", self.ty.as_str())
            .with("id", self.id.as_str())
            .with("meta", meta)
    }
}

/// `ResourceIdentifier::toResourceIdentifiers()`: arity only on parallel identifiers.
pub fn term_idents(db: &Db, relatable: &str, targets: &[i64]) -> Vec<Ident> {
    let mut out: Vec<Ident> = Vec::with_capacity(targets.len());
    for &tid in targets {
        let mut ident = match db.terms.get(&tid) {
            Some(t) => Ident {
                ty: format!("taxonomy_term--{}", t.vid),
                id: t.uuid.clone(),
                arity: None,
                target: Some(tid),
            },
            None => Ident {
                ty: relatable.to_string(),
                id: if tid == 0 { "virtual" } else { "missing" }.into(),
                arity: None,
                target: None,
            },
        };
        if let Some(i) = out
            .iter()
            .rposition(|e| e.ty == ident.ty && e.id == ident.id)
        {
            if out[i].arity.is_none() {
                out[i].arity = Some(0);
            }
            ident.arity = Some(out[i].arity.unwrap_or(0) + 1);
        }
        out.push(ident);
    }
    out
}

/// `toResourceIdentifiersWithArityRequired()`.
pub fn with_arity(mut v: Vec<Ident>) -> Vec<Ident> {
    for i in v.iter_mut() {
        if i.arity.is_none() {
            i.arity = Some(0);
        }
    }
    v
}

/// `ResourceIdentifier::deduplicate()`.
pub fn dedupe(v: Vec<Ident>) -> Vec<Ident> {
    let mut out: Vec<Ident> = Vec::with_capacity(v.len());
    for i in v {
        if !out.iter().any(|o| o.same(&i)) {
            out.push(i);
        }
    }
    out
}

/// `EntityResource::relationshipResponseRequiresBody()`: the final list holds an identifier the
/// request did not name.
pub fn requires_body(received: &[Ident], fin: &[Ident]) -> bool {
    fin.iter().any(|f| !received.iter().any(|r| r.same(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_specs() {
        assert_eq!(label_for("field_given_name"), "Given name");
        assert_eq!(label_for("nickname"), "Nickname");
        let f = UserField::parse_spec("field_age:integer").unwrap();
        assert_eq!(f.kind, FieldKind::Integer);
        assert_eq!(
            UserField::parse_spec("field_x").unwrap().kind,
            FieldKind::String
        );
        assert!(UserField::parse_spec("mail").is_err());
        assert!(UserField::parse_spec("Field").is_err());
        assert!(UserField::parse_spec("field_x:float").is_err());
    }

    #[test]
    fn effective_fields_are_sorted_and_overridable() {
        let extra = vec![UserField::parse_spec("field_given_name:integer").unwrap()];
        let f = effective_fields(true, &extra);
        let names: Vec<&str> = f.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            ["field_family_name", "field_given_name", "field_scim_groups"]
        );
        assert_eq!(f[1].kind, FieldKind::Integer);
    }

    #[test]
    fn identifier_arity_rules() {
        let a = |id: &str, arity: Option<i64>| Ident {
            ty: "t".into(),
            id: id.into(),
            arity,
            target: None,
        };
        assert!(a("x", None).same(&a("x", Some(3))));
        assert!(!a("x", Some(0)).same(&a("x", Some(1))));
        let d = dedupe(vec![
            a("x", Some(0)),
            a("y", Some(0)),
            a("x", None),
            a("x", Some(1)),
        ]);
        assert_eq!(d.len(), 3);
        assert!(requires_body(
            &[a("x", Some(1))],
            &[a("x", Some(0)), a("x", Some(1))]
        ));
        assert!(!requires_body(&[a("x", None)], &[a("x", Some(0))]));
    }
}
