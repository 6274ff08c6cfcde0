//! User entity logic shared by JSON:API and core REST: access, normalisation, input, validation.

use crate::app::{href, Actor, App};
use crate::fields::{term_idents, FVal, FieldKind, UserField};
use crate::json::J;
use crate::model::{
    eq_nocase_utf8, mail_is_valid, name_format_violations, Db, DrupalVersion, Role, User, Violation,
};
use crate::util::{is_uuid, parse_rfc3339, rfc3339};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum View {
    Label,
    Own,
    Others { mail: bool },
    Admin,
}

/// (public name, internal name) in Drupal's attribute order.
pub const ATTRS: [(&str, &str); 15] = [
    ("display_name", "display_name"),
    ("drupal_internal__uid", "uid"),
    ("langcode", "langcode"),
    ("preferred_langcode", "preferred_langcode"),
    ("preferred_admin_langcode", "preferred_admin_langcode"),
    ("name", "name"),
    ("mail", "mail"),
    ("timezone", "timezone"),
    ("status", "status"),
    ("created", "created"),
    ("changed", "changed"),
    ("access", "access"),
    ("login", "login"),
    ("init", "init"),
    ("default_langcode", "default_langcode"),
];

pub fn internal_name(public: &str) -> &str {
    match public {
        "drupal_internal__uid" => "uid",
        "id" => "uuid",
        other => other,
    }
}

pub fn public_name(internal: &str) -> &str {
    match internal {
        "uid" => "drupal_internal__uid",
        "uuid" => "id",
        other => other,
    }
}

pub fn is_user_attribute(fields: &[UserField], public: &str) -> bool {
    public == "pass"
        || ATTRS
            .iter()
            .any(|(p, _)| *p == public && *p != "display_name")
        || fields.iter().any(|f| f.name == public && !f.is_ref())
}

pub fn is_user_relationship(fields: &[UserField], public: &str) -> bool {
    public == "roles"
        || public == "user_picture"
        || fields.iter().any(|f| f.name == public && f.is_ref())
}

/// A configurable attribute's JSON:API value.
pub fn field_json(v: Option<&FVal>) -> J {
    match v {
        Some(FVal::Str(s)) if !s.is_empty() => J::Str(s.clone()),
        Some(FVal::Int(i)) => J::Int(*i),
        Some(FVal::Bool(b)) => J::Bool(*b),
        _ => J::Null,
    }
}

fn opt_str(s: &Option<String>) -> J {
    match s {
        Some(v) if !v.is_empty() => J::Str(v.clone()),
        _ => J::Null,
    }
}

impl App {
    pub fn user_view(&self, db: &Db, actor: &Actor, u: &User) -> View {
        if u.uid == 0 {
            return View::Label;
        }
        if self.has_perm(db, actor, "administer users") {
            return View::Admin;
        }
        if actor.is_auth() && actor.uid == u.uid {
            return View::Own;
        }
        if self.has_perm(db, actor, "access user profiles") && u.status {
            return View::Others {
                mail: self.has_perm(db, actor, "view user email addresses"),
            };
        }
        View::Label
    }

    /// Field `view` access (`UserAccessControlHandler::checkFieldAccess`); `target` None means
    /// "no entity" (as when checking filter paths).
    pub fn can_view_field(
        &self,
        db: &Db,
        actor: &Actor,
        target: Option<&User>,
        field: &str,
    ) -> bool {
        if field == "pass" {
            return false;
        }
        if self.has_perm(db, actor, "administer users") {
            return true;
        }
        let own = actor.is_auth() && target.map(|t| t.uid == actor.uid).unwrap_or(false);
        match field {
            "mail" => own || self.has_perm(db, actor, "view user email addresses"),
            "timezone" | "preferred_langcode" | "preferred_admin_langcode" => own,
            "status" | "roles" | "access" | "login" | "init" => false,
            _ => true,
        }
    }

    /// Field `edit` access; Err carries the reason, if any.
    pub fn edit_access(
        &self,
        db: &Db,
        actor: &Actor,
        target: Option<&User>,
        field: &str,
    ) -> Result<(), Option<String>> {
        match field {
            "uid" => return Err(Some("The entity ID cannot be changed.".to_string())),
            "changed" => return Err(None),
            "pass" => return Ok(()),
            _ => {}
        }
        if self.has_perm(db, actor, "administer users") {
            return Ok(());
        }
        let own = actor.is_auth() && target.map(|t| t.uid == actor.uid).unwrap_or(false);
        match field {
            "name" => {
                if own && self.has_perm(db, actor, "change own username") {
                    Ok(())
                } else {
                    Err(None)
                }
            }
            "mail" | "timezone" | "preferred_langcode" | "preferred_admin_langcode" => Ok(()),
            "created" | "roles" | "status" | "access" | "login" | "init" => Err(None),
            _ => Ok(()),
        }
    }

    pub fn roles_rel_data(&self, db: &Db, u: &User) -> J {
        J::Arr(
            u.roles
                .iter()
                .filter_map(|r| db.role(r))
                .map(|r| {
                    let item = J::obj()
                        .with("type", "user_role--user_role")
                        .with("id", r.uuid.as_str());
                    if db.settings.quirks.hide_role_ids {
                        item
                    } else {
                        item.with("meta", J::obj().with("drupal_internal__target_id", r.id))
                    }
                })
                .collect(),
        )
    }

    /// A JSON:API `user--user` resource object.
    pub fn render_user(
        &self,
        db: &Db,
        base: &str,
        u: &User,
        view: View,
        fields: Option<&[String]>,
    ) -> J {
        let self_href = format!("{base}/jsonapi/user/user/{}", u.uuid);
        let wanted = |name: &str| fields.map(|f| f.iter().any(|x| x == name)).unwrap_or(true);
        let mut out = J::obj()
            .with("type", "user--user")
            .with("id", u.uuid.as_str())
            .with("links", J::obj().with("self", href(&self_href)));
        let mut attrs = J::obj();
        let visible: &[&str] = match view {
            View::Label => &["display_name"],
            View::Admin => &[
                "display_name",
                "drupal_internal__uid",
                "langcode",
                "preferred_langcode",
                "preferred_admin_langcode",
                "name",
                "mail",
                "timezone",
                "status",
                "created",
                "changed",
                "access",
                "login",
                "init",
                "default_langcode",
            ],
            View::Own => &[
                "display_name",
                "drupal_internal__uid",
                "langcode",
                "preferred_langcode",
                "preferred_admin_langcode",
                "name",
                "mail",
                "timezone",
                "created",
                "changed",
                "default_langcode",
            ],
            View::Others { .. } => &[
                "display_name",
                "drupal_internal__uid",
                "langcode",
                "name",
                "mail",
                "created",
                "changed",
                "default_langcode",
            ],
        };
        for name in visible {
            if !wanted(name) {
                continue;
            }
            if *name == "mail" && matches!(view, View::Others { mail: false }) {
                continue;
            }
            let v: J = match *name {
                "display_name" if u.uid == 0 => {
                    J::Str(db.settings.quirks.anonymous_label().to_string())
                }
                "display_name" => J::Str(u.display_name()),
                "drupal_internal__uid" => J::Int(u.uid),
                "langcode" => J::Str(u.langcode.clone()),
                "preferred_langcode" => opt_str(&u.preferred_langcode),
                "preferred_admin_langcode" => opt_str(&u.preferred_admin_langcode),
                "name" => J::Str(u.name.clone()),
                "mail" => opt_str(&u.mail),
                "timezone" => opt_str(&u.timezone),
                "status" => J::Bool(u.status),
                "created" => J::Str(rfc3339(u.created)),
                "changed" => J::Str(rfc3339(u.changed)),
                "access" => J::Str(rfc3339(u.jsonapi_access())),
                "login" => J::Str(rfc3339(u.login)),
                "init" => opt_str(&u.init),
                "default_langcode" => J::Bool(true),
                _ => J::Null,
            };
            attrs.push(name, v);
        }
        if view != View::Label {
            for f in db.fields.iter().filter(|f| !f.is_ref()) {
                if wanted(&f.name) {
                    attrs.push(&f.name, field_json(u.field(&f.name)));
                }
            }
        }
        if !attrs.is_empty_obj() {
            out.push("attributes", attrs);
        }
        if view != View::Label {
            let mut rels = J::obj();
            let rel_links = |name: &str| {
                J::obj()
                    .with("related", href(&format!("{self_href}/{name}")))
                    .with("self", href(&format!("{self_href}/relationships/{name}")))
            };
            if view == View::Admin && wanted("roles") {
                rels.push(
                    "roles",
                    J::obj()
                        .with("data", self.roles_rel_data(db, u))
                        .with("links", rel_links("roles")),
                );
            }
            // Configurable relationships (user_picture included) in field-name order.
            let mut picture_done = false;
            for f in db.fields.iter().filter(|f| f.is_ref()) {
                if !picture_done && f.name.as_str() > "user_picture" {
                    picture_done = true;
                    if wanted("user_picture") {
                        rels.push(
                            "user_picture",
                            J::obj()
                                .with("data", J::Null)
                                .with("links", rel_links("user_picture")),
                        );
                    }
                }
                if wanted(&f.name) {
                    rels.push(
                        &f.name,
                        J::obj()
                            .with("data", self.ref_rel_data(db, u, f))
                            .with("links", rel_links(&f.name)),
                    );
                }
            }
            if !picture_done && wanted("user_picture") {
                rels.push(
                    "user_picture",
                    J::obj()
                        .with("data", J::Null)
                        .with("links", rel_links("user_picture")),
                );
            }
            if !rels.is_empty_obj() {
                out.push("relationships", rels);
            }
        }
        out
    }

    /// The resource identifiers of a reference field (`missing` for dangling targets).
    pub fn ref_rel_data(&self, db: &Db, u: &User, f: &UserField) -> J {
        J::Arr(
            term_idents(db, &f.target_type(), u.refs(&f.name))
                .iter()
                .map(|i| i.to_json())
                .collect(),
        )
    }

    pub fn render_role(&self, base: &str, r: &Role, fields: Option<&[String]>) -> J {
        let wanted = |name: &str| fields.map(|f| f.iter().any(|x| x == name)).unwrap_or(true);
        let mut attrs = J::obj();
        let all: Vec<(&str, J)> = vec![
            ("langcode", J::Str("en".into())),
            ("status", J::Bool(true)),
            ("dependencies", r.dependencies.clone()),
            ("drupal_internal__id", J::Str(r.id.into())),
            ("label", J::Str(r.label.into())),
            ("weight", J::Int(r.weight)),
            ("is_admin", J::Bool(r.is_admin)),
            (
                "permissions",
                J::Arr(
                    r.permissions
                        .iter()
                        .map(|p| J::Str(p.to_string()))
                        .collect(),
                ),
            ),
        ];
        for (k, v) in all {
            if wanted(k) {
                attrs.push(k, v);
            }
        }
        let mut out = J::obj()
            .with("type", "user_role--user_role")
            .with("id", r.uuid.as_str())
            .with(
                "links",
                J::obj().with(
                    "self",
                    href(&format!("{base}/jsonapi/user_role/user_role/{}", r.uuid)),
                ),
            );
        if !attrs.is_empty_obj() {
            out.push("attributes", attrs);
        }
        out
    }

    /// Core REST (`serialization` json format) normalisation.
    pub fn render_user_rest(&self, db: &Db, u: &User, view: View) -> J {
        let fields: &[&str] = match view {
            View::Admin => &[
                "uid",
                "uuid",
                "langcode",
                "preferred_langcode",
                "preferred_admin_langcode",
                "name",
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
            ],
            View::Own => &[
                "uid",
                "uuid",
                "langcode",
                "preferred_langcode",
                "preferred_admin_langcode",
                "name",
                "mail",
                "timezone",
                "created",
                "changed",
                "default_langcode",
                "user_picture",
            ],
            View::Others { .. } => &[
                "uid",
                "uuid",
                "langcode",
                "name",
                "mail",
                "created",
                "changed",
                "default_langcode",
                "user_picture",
            ],
            View::Label => &[],
        };
        let val = |v: J| J::Arr(vec![J::obj().with("value", v)]);
        let s = |o: &Option<String>| match o {
            Some(x) if !x.is_empty() => val(J::Str(x.clone())),
            _ => J::Arr(vec![]),
        };
        let ts = |t: i64| {
            J::Arr(vec![J::obj()
                .with("value", rfc3339(t))
                .with("format", "Y-m-d\\TH:i:sP")])
        };
        let mut out = J::obj();
        // Base fields, then the configurable ones (user_picture included) in name order.
        let mut order: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|f| *f != "user_picture")
            .collect();
        if !fields.is_empty() {
            let mut conf: Vec<&str> = db.fields.iter().map(|f| f.name.as_str()).collect();
            conf.push("user_picture");
            conf.sort_unstable();
            order.extend(conf);
        }
        for f in order {
            if f == "mail" && matches!(view, View::Others { mail: false }) {
                continue;
            }
            if let Some(def) = db.user_field(f) {
                let v = match (&def.kind, u.field(f)) {
                    (FieldKind::TermRef(_), Some(FVal::Refs(r))) => J::Arr(
                        r.iter()
                            .map(|tid| match db.terms.get(tid) {
                                Some(t) => J::obj()
                                    .with("target_id", *tid)
                                    .with("target_type", "taxonomy_term")
                                    .with("target_uuid", t.uuid.as_str())
                                    .with("url", format!("/taxonomy/term/{tid}")),
                                None => J::obj().with("target_id", *tid),
                            })
                            .collect(),
                    ),
                    (_, v) => match field_json(v) {
                        J::Null => J::Arr(vec![]),
                        x => val(x),
                    },
                };
                out.push(f, v);
                continue;
            }
            let v = match f {
                "uid" => val(J::Int(u.uid)),
                "uuid" => val(J::Str(u.uuid.clone())),
                "langcode" => val(J::Str(u.langcode.clone())),
                "preferred_langcode" => s(&u.preferred_langcode),
                "preferred_admin_langcode" => s(&u.preferred_admin_langcode),
                "name" => val(J::Str(u.name.clone())),
                "mail" => s(&u.mail),
                "timezone" => s(&u.timezone),
                "status" => val(J::Bool(u.status)),
                "created" => ts(u.created),
                "changed" => ts(u.changed),
                "access" => ts(u.access),
                "login" => ts(u.login),
                "init" => s(&u.init),
                "roles" => J::Arr(
                    u.roles
                        .iter()
                        .filter_map(|r| db.role(r))
                        .map(|r| {
                            J::obj()
                                .with("target_id", r.id)
                                .with("target_type", "user_role")
                                .with("target_uuid", r.uuid.as_str())
                        })
                        .collect(),
                ),
                "default_langcode" => val(J::Bool(true)),
                _ => J::Arr(vec![]),
            };
            out.push(f, v);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Input.

#[derive(Clone, Debug, Default)]
pub struct PassIn {
    pub value: Option<String>,
    pub existing: Option<String>,
}

/// The fields a POST/PATCH sent, already denormalised. `Option<Option<String>>`: outer None = not
/// sent, inner None = sent empty/null.
#[derive(Clone, Debug, Default)]
pub struct Patch {
    /// Internal field names in the order they were sent.
    pub fields: Vec<String>,
    pub name: Option<Option<String>>,
    pub mail: Option<Option<String>>,
    pub init: Option<Option<String>>,
    pub timezone: Option<Option<String>>,
    pub langcode: Option<Option<String>>,
    pub preferred_langcode: Option<Option<String>>,
    pub preferred_admin_langcode: Option<Option<String>>,
    pub pass: Option<PassIn>,
    pub status: Option<Value>,
    pub default_langcode: Option<Value>,
    pub created: Option<i64>,
    pub changed: Option<i64>,
    pub access: Option<i64>,
    pub login: Option<i64>,
    pub uid: Option<Value>,
    pub roles: Option<Vec<String>>,
    pub uuid: Option<String>,
    /// Configurable fields, by name, in the order sent.
    pub custom: Vec<(String, CustomIn)>,
}

/// A configurable field's submitted value.
#[derive(Clone, Debug)]
pub enum CustomIn {
    /// A string field (None = null or empty).
    Str(Option<String>),
    /// An integer field, as sent (validated later).
    Int(Value),
    /// A boolean field, as sent (validated later).
    Bool(Value),
    /// A reference field's target ids.
    Refs(Vec<i64>),
}

impl Patch {
    pub fn custom(&self, name: &str) -> Option<&CustomIn> {
        self.custom.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    pub fn set_custom(&mut self, name: &str, v: CustomIn) {
        self.custom.retain(|(k, _)| k != name);
        self.custom.push((name.to_string(), v));
        if !self.fields.iter().any(|f| f == name) {
            self.fields.push(name.to_string());
        }
    }
}

/// Sets a configurable (non-reference) field of a Patch from a JSON:API attribute value.
pub fn set_custom_field(p: &mut Patch, def: &UserField, v: &Value) -> Result<(), InErr> {
    let value = match def.kind {
        FieldKind::String => CustomIn::Str(string_value(&def.name, "string", v)?),
        FieldKind::Integer => CustomIn::Int(raw_value(&def.name, "integer", v)?),
        FieldKind::Boolean => CustomIn::Bool(raw_value(&def.name, "boolean", v)?),
        FieldKind::TermRef(_) => {
            return Err(InErr::Unprocessable(format!(
                "The following relationship fields were provided as attributes: [ {} ]",
                def.name
            )))
        }
    };
    p.set_custom(&def.name, value);
    Ok(())
}

/// PHP `filter_var($v, FILTER_VALIDATE_INT)` as the primitive-type constraint uses it.
fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::Bool(b) => Some(*b as i64),
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            let ok = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            if ok {
                t.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

pub enum InErr {
    /// 400
    Bad(String),
    /// 422 from denormalisation (no pointer)
    Unprocessable(String),
    /// 404 (relationship item not found)
    NotFound(String),
}

/// A client-generated `data.id` must be a UUID (any entity type).
pub fn check_client_id(data: &serde_json::Map<String, Value>) -> Result<(), InErr> {
    match data.get("id").filter(|v| !v.is_null()) {
        Some(id) if !id.as_str().map(is_uuid).unwrap_or(false) => Err(InErr::Unprocessable(
            "IDs should be properly generated and formatted UUIDs as described in RFC 4122.".into(),
        )),
        _ => Ok(()),
    }
}

/// JSON:API refuses relationship fields sent as attributes (any entity type).
pub fn reject_relationships_as_attributes(
    attrs: Option<&serde_json::Map<String, Value>>,
    is_relationship: impl Fn(&str) -> bool,
) -> Result<(), InErr> {
    let rels: Vec<&str> = attrs
        .into_iter()
        .flat_map(|a| a.keys())
        .map(|k| k.as_str())
        .filter(|k| is_relationship(k))
        .collect();
    if rels.is_empty() {
        return Ok(());
    }
    Err(InErr::Unprocessable(format!(
        "The following relationship fields were provided as attributes: [ {} ]",
        rels.join(", ")
    )))
}

/// A relationship's resource identifiers: `data` as a list, or one identifier object;
/// nulls dropped.
pub fn relationship_items(rel: &Value) -> Vec<Value> {
    let mut items: Vec<Value> = match rel.get("data") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Object(o)) if o.contains_key("type") && o.contains_key("id") => {
            vec![Value::Object(o.clone())]
        }
        _ => Vec::new(),
    };
    items.retain(|v| !v.is_null());
    items
}

fn item_props(field: &str, field_type: &str, v: &Value, writable: &[&str]) -> Result<(), InErr> {
    if let Value::Object(o) = v {
        for k in o.keys() {
            if !writable.contains(&k.as_str()) {
                let list = writable
                    .iter()
                    .map(|w| format!("'{w}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(InErr::Unprocessable(format!(
                    "The property '{k}' does not exist on the '{field}' field of type '{field_type}'. Writable properties are: {list}."
                )));
            }
        }
    }
    if let Value::Array(a) = v {
        if !a.is_empty() {
            let list = writable
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(InErr::Unprocessable(format!(
                "The property '0' does not exist on the '{field}' field of type '{field_type}'. Writable properties are: {list}."
            )));
        }
    }
    Ok(())
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("1".into()),
        Value::Bool(false) => Some(String::new()),
        _ => None,
    }
}

/// A string field's value: scalar, null, or `{"value": …}`.
fn string_value(field: &str, field_type: &str, v: &Value) -> Result<Option<String>, InErr> {
    item_props(field, field_type, v, &["value"])?;
    let inner = match v {
        Value::Object(o) => o.get("value").cloned().unwrap_or(Value::Null),
        Value::Array(_) => Value::Null,
        other => other.clone(),
    };
    Ok(scalar_string(&inner).filter(|s| !s.is_empty()))
}

fn timestamp_value(field: &str, v: &Value) -> Result<i64, InErr> {
    item_props(field, "timestamp", v, &["value"])?;
    let inner = match v {
        Value::Object(o) => o.get("value").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    match &inner {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| InErr::Unprocessable(bad_date(&n.to_string()))),
        Value::String(s) => {
            if let Ok(n) = s.parse::<i64>() {
                return Ok(n);
            }
            parse_rfc3339(s).ok_or_else(|| InErr::Unprocessable(bad_date(s)))
        }
        other => Err(InErr::Unprocessable(bad_date(&other.to_string()))),
    }
}

fn bad_date(s: &str) -> String {
    format!(
        "The specified date \"{s}\" is not in an accepted format: \"Y-m-d\\TH:i:sP\" (RFC 3339), \"Y-m-d\\TH:i:sO\" (ISO 8601)."
    )
}

fn pass_value(v: &Value) -> Result<PassIn, InErr> {
    item_props("pass", "password", v, &["value", "existing", "pre_hashed"])?;
    Ok(match v {
        Value::Object(o) => PassIn {
            value: o.get("value").and_then(scalar_string),
            existing: o.get("existing").and_then(scalar_string),
        },
        other => PassIn {
            value: scalar_string(other),
            existing: None,
        },
    })
}

fn raw_value(field: &str, field_type: &str, v: &Value) -> Result<Value, InErr> {
    item_props(field, field_type, v, &["value"])?;
    Ok(match v {
        Value::Object(o) => o.get("value").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    })
}

/// Sets one field of a Patch from a JSON:API attribute value (internal field name).
pub fn set_patch_field(p: &mut Patch, field: &str, v: &Value) -> Result<(), InErr> {
    match field {
        "name" => p.name = Some(string_value("name", "string", v)?),
        "mail" => p.mail = Some(string_value("mail", "email", v)?),
        "init" => p.init = Some(string_value("init", "email", v)?),
        "timezone" => p.timezone = Some(string_value("timezone", "string", v)?),
        "langcode" => p.langcode = Some(string_value("langcode", "language", v)?),
        "preferred_langcode" => {
            p.preferred_langcode = Some(string_value("preferred_langcode", "language", v)?)
        }
        "preferred_admin_langcode" => {
            p.preferred_admin_langcode =
                Some(string_value("preferred_admin_langcode", "language", v)?)
        }
        "pass" => p.pass = Some(pass_value(v)?),
        "status" => p.status = Some(raw_value("status", "boolean", v)?),
        "default_langcode" => {
            p.default_langcode = Some(raw_value("default_langcode", "boolean", v)?)
        }
        "created" => p.created = Some(timestamp_value("created", v)?),
        "changed" => p.changed = Some(timestamp_value("changed", v)?),
        "access" => p.access = Some(timestamp_value("access", v)?),
        "login" => p.login = Some(timestamp_value("login", v)?),
        "uid" => p.uid = Some(raw_value("uid", "integer", v)?),
        _ => {}
    }
    if !p.fields.iter().any(|f| f == field) {
        p.fields.push(field.to_string());
    }
    Ok(())
}

/// PHP-ish boolean acceptance of `PrimitiveTypeConstraint` for booleans.
/// A patch value replaces the stored one only when the document gave it.
fn set_if_given<T: Clone>(slot: &mut T, given: &Option<T>) {
    if let Some(v) = given {
        *slot = v.clone();
    }
}

pub fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) if s == "0" => Some(false),
        Value::String(s) if s.trim().parse::<f64>().ok() == Some(1.0) => Some(true),
        _ => None,
    }
}

/// A boolean base field must hold a boolean (or a form Drupal casts to one) or null.
pub fn check_boolean(v: &mut Vec<Violation>, field: &str, value: Option<&Value>) {
    if value.is_some_and(|s| bool_of(s).is_none() && !s.is_null()) {
        v.push(Violation::new(
            field,
            &format!("{field}.0.value"),
            "This value should be of the correct primitive type.",
        ));
    }
}

impl App {
    /// Applies the patch's values (only the listed fields) to a user.
    pub fn apply_patch(&self, u: &mut User, p: &Patch, only: &[String]) {
        for f in only {
            match f.as_str() {
                "name" => {
                    if let Some(v) = &p.name {
                        u.name = v.clone().unwrap_or_default();
                    }
                }
                "mail" => set_if_given(&mut u.mail, &p.mail),
                "init" => set_if_given(&mut u.init, &p.init),
                "timezone" => set_if_given(&mut u.timezone, &p.timezone),
                "langcode" => {
                    if let Some(Some(v)) = &p.langcode {
                        u.langcode = v.clone();
                    }
                }
                "preferred_langcode" => {
                    set_if_given(&mut u.preferred_langcode, &p.preferred_langcode)
                }
                "preferred_admin_langcode" => {
                    set_if_given(&mut u.preferred_admin_langcode, &p.preferred_admin_langcode)
                }
                "pass" => {
                    if let Some(PassIn { value: Some(v), .. }) = &p.pass {
                        let v = v.trim();
                        if !v.is_empty() {
                            u.pass = Some(v.to_string());
                        }
                    }
                }
                "status" => {
                    if let Some(b) = p.status.as_ref().and_then(bool_of) {
                        u.status = b;
                    }
                }
                "created" => {
                    if let Some(t) = p.created {
                        u.created = t;
                    }
                }
                "access" => {
                    if let Some(t) = p.access {
                        u.access = t;
                    }
                }
                "login" => {
                    if let Some(t) = p.login {
                        u.login = t;
                    }
                }
                "roles" => {
                    if let Some(r) = &p.roles {
                        u.roles = clean_roles(r);
                    }
                }
                name => match p.custom(name) {
                    Some(CustomIn::Str(v)) => u.set_field(name, v.clone().map(FVal::Str)),
                    Some(CustomIn::Refs(r)) => u.set_field(name, Some(FVal::Refs(r.clone()))),
                    Some(CustomIn::Int(v)) => {
                        // An invalid value fails validation; keep the old one meanwhile.
                        if v.is_null() {
                            u.set_field(name, None);
                        } else if let Some(i) = int_of(v) {
                            u.set_field(name, Some(FVal::Int(i)));
                        }
                    }
                    Some(CustomIn::Bool(v)) => {
                        if v.is_null() {
                            u.set_field(name, None);
                        } else if let Some(b) = bool_of(v) {
                            u.set_field(name, Some(FVal::Bool(b)));
                        }
                    }
                    None => {}
                },
            }
        }
    }

    /// Drupal's entity validation for users. `only`: the fields to validate (PATCH validates the
    /// submitted ones only); None = all. Violations on fields the actor may not edit are dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn validate_user(
        &self,
        db: &Db,
        actor: &Actor,
        cand: &User,
        orig: Option<&User>,
        p: &Patch,
        only: Option<&[String]>,
    ) -> Vec<Violation> {
        let check = |f: &str| only.map(|o| o.iter().any(|x| x == f)).unwrap_or(true);
        let mut v: Vec<Violation> = Vec::new();
        let own = orig.is_some() && actor.is_auth() && orig.map(|o| o.uid) == Some(actor.uid);
        let existing_ok = || -> bool {
            let ex = p
                .pass
                .as_ref()
                .and_then(|x| x.existing.clone())
                .unwrap_or_default();
            !ex.is_empty() && orig.and_then(|o| o.pass.as_deref()) == Some(ex.as_str())
        };
        if check("name") {
            if cand.name.is_empty() {
                v.push(Violation::new("name", "name", "You must enter a username."));
                v.push(Violation::new(
                    "name",
                    "name",
                    "This value should not be null.",
                ));
            } else {
                for m in name_format_violations(&cand.name) {
                    v.push(Violation::new("name", "name", m));
                }
                // UniqueFieldValueValidator: LIKE (ASCII case on SQLite, the collation on
                // MariaDB), then PHP's ASCII `strtolower` on what it found. A name equal only
                // in non-ASCII case or accents passes, and meets the unique key on save.
                let taken = db.users.values().any(|u| {
                    u.uid != cand.uid && u.uid != 0 && u.name.eq_ignore_ascii_case(&cand.name)
                });
                if taken {
                    v.push(Violation::new(
                        "name",
                        "name",
                        format!("The username {} is already taken.", cand.name),
                    ));
                }
            }
        }
        if check("pass") && own {
            let new_value = p
                .pass
                .as_ref()
                .and_then(|x| x.value.clone())
                .unwrap_or_default();
            if !new_value.is_empty() && !existing_ok() {
                v.push(Violation::new(
                    "pass",
                    "pass",
                    "Your current password is missing or incorrect; it's required to change the Password.",
                ));
            }
        }
        if check("mail") {
            let existing = orig.and_then(|o| o.mail.clone()).filter(|m| !m.is_empty());
            let required = !(existing.is_none() && self.has_perm(db, actor, "administer users"));
            match &cand.mail {
                None => {
                    if required {
                        v.push(Violation::new("mail", "mail", "Email field is required."));
                    }
                }
                Some(mail) => {
                    // From 10.6 on, UniqueFieldValueValidator compares with LIKE unless the
                    // constraint is case-sensitive (user mail's is not): a case-different
                    // duplicate is taken on SQLite too.
                    let ci = db.settings.mail_case_insensitive
                        || self.cfg.drupal_version >= DrupalVersion::V10_6;
                    let taken = db.users.values().any(|u| {
                        u.uid != cand.uid
                            && u.mail.as_deref().is_some_and(|m| {
                                if self.cfg.drupal_version >= DrupalVersion::V10_6 {
                                    // LIKE, then PHP's ASCII `strtolower`.
                                    m.eq_ignore_ascii_case(mail)
                                } else if crate::filter::general_ci() {
                                    crate::filter::general_ci_key(m)
                                        == crate::filter::general_ci_key(mail)
                                } else if ci {
                                    eq_nocase_utf8(m, mail)
                                } else {
                                    m == mail
                                }
                            })
                    });
                    if taken {
                        v.push(Violation::new(
                            "mail",
                            "mail",
                            format!("The email address {mail} is already taken."),
                        ));
                    }
                }
            }
            if own && orig.map(|o| o.mail.clone()) != Some(cand.mail.clone()) && !existing_ok() {
                v.push(Violation::new(
                    "mail",
                    "mail",
                    "Your current password is missing or incorrect; it's required to change the Email.",
                ));
            }
            if let Some(mail) = &cand.mail {
                if mail.chars().count() > 254 {
                    v.push(Violation::new(
                        "mail",
                        "mail.0.value",
                        "Email: the email address can not be longer than 254 characters.",
                    ));
                }
                if !mail_is_valid(mail) {
                    v.push(Violation::new(
                        "mail",
                        "mail.0.value",
                        "This value is not a valid email address.",
                    ));
                }
            }
        }
        if check("init") {
            if let Some(init) = &cand.init {
                if !mail_is_valid(init) {
                    v.push(Violation::new(
                        "init",
                        "init.0.value",
                        "This value is not a valid email address.",
                    ));
                }
            }
        }
        if check("status") {
            check_boolean(&mut v, "status", p.status.as_ref());
        }
        if check("default_langcode") {
            check_boolean(&mut v, "default_langcode", p.default_langcode.as_ref());
        }
        for f in &db.fields {
            if !check(&f.name) {
                continue;
            }
            let name = f.name.as_str();
            let primitive = || {
                Violation::new(
                    name,
                    &format!("{name}.0.value"),
                    "This value should be of the correct primitive type.",
                )
            };
            match &f.kind {
                FieldKind::String => {
                    if let Some(FVal::Str(s)) = cand.field(name) {
                        if s.chars().count() > 255 {
                            v.push(Violation::new(
                                name,
                                &format!("{name}.0.value"),
                                format!("{}: may not be longer than 255 characters.", f.label),
                            ));
                        }
                    }
                }
                FieldKind::Integer => {
                    if let Some(CustomIn::Int(x)) = p.custom(name) {
                        if !x.is_null() && int_of(x).is_none() {
                            v.push(primitive());
                        }
                    }
                }
                FieldKind::Boolean => {
                    if let Some(CustomIn::Bool(x)) = p.custom(name) {
                        if !x.is_null() && bool_of(x).is_none() {
                            v.push(primitive());
                        }
                    }
                }
                FieldKind::TermRef(bundle) => {
                    for (delta, tid) in cand.refs(name).iter().enumerate() {
                        let msg = match db.terms.get(tid) {
                            None => {
                                format!(
                                    "The referenced entity (taxonomy_term: {tid}) does not exist."
                                )
                            }
                            Some(t) if &t.vid != bundle => {
                                format!("This entity (taxonomy_term: {tid}) cannot be referenced.")
                            }
                            Some(_) => continue,
                        };
                        v.push(Violation::multi(
                            name,
                            &format!("{name}.{delta}.target_id"),
                            msg,
                        ));
                    }
                }
            }
        }
        v.retain(|x| {
            let field = x.path.split('.').next().unwrap_or("");
            self.edit_access(db, actor, orig, field).is_ok()
        });
        v.sort_by_key(|x| x.order);
        v
    }
}

/// `User::preSave` strips the locked roles.
pub fn clean_roles(r: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in r {
        if x != "anonymous" && x != "authenticated" && !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}
