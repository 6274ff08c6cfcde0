//! Which SCIM User attributes live in which Drupal user fields. The core four (userName,
//! emails, active, password) are fixed; more come from the plugin configuration. Everything
//! the gateway reads, writes, filters on, projects and advertises in `/Schemas` is driven
//! by this one table, so an attribute is either fully supported or not there at all.

use crate::scim::error::ScimError;
use crate::scim::filter::{parse_patch_path, AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::scim::values::{coerce_bool, get_ci};
use serde_json::{json, Map, Value};

/// Drupal field types the gateway can map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Integer,
}

impl Kind {
    fn scim_type(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
        }
    }
}

/// Where a value sits in a SCIM User.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `displayName`
    Top { attr: String },
    /// `name.givenName`
    Sub { attr: String, sub: String },
    /// `phoneNumbers[type eq "work"].value`: one element of a multi-valued attribute.
    Typed {
        attr: String,
        type_value: String,
        sub: String,
    },
    /// `urn:…:enterprise:2.0:User:employeeNumber`
    Extension { attr: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap {
    pub target: Target,
    /// The Drupal field (JSON:API public name).
    pub field: String,
    pub kind: Kind,
    pub case_exact: bool,
}

/// The complete User mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMapping {
    pub fields: Vec<FieldMap>,
}

/// Drupal fields the gateway itself manages or that must never be written through SCIM.
const RESERVED_FIELDS: &[&str] = &[
    "name",
    "mail",
    "status",
    "pass",
    "uid",
    "uuid",
    "drupal_internal__uid",
    "display_name",
    "created",
    "changed",
    "access",
    "login",
    "init",
    "roles",
    "langcode",
    "preferred_langcode",
    "preferred_admin_langcode",
    "timezone",
    "default_langcode",
    "user_picture",
    "id",
];

/// SCIM attributes the gateway handles itself, or that are read-only.
const RESERVED_ATTRS: &[&str] = &[
    "userName", "emails", "active", "password", "id", "meta", "schemas", "groups",
];

/// RFC 7643 §4.1 sub-attributes of `name`; anything else there is not a SCIM attribute.
const NAME_SUBS: &[&str] = &[
    "formatted",
    "familyName",
    "givenName",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
];

/// Multi-valued complex attributes of the User schema whose elements carry a `type`.
const TYPED_ATTRS: &[&str] = &[
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "entitlements",
    "roles",
    "x509Certificates",
];

/// RFC 7643 §4.3 enterprise attributes that are simple strings.
const ENTERPRISE_ATTRS: &[&str] = &[
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
];

/// RFC 7643 §4.1 simple top-level User attributes.
const TOP_ATTRS: &[&str] = &[
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "externalId",
];

impl UserMapping {
    pub fn core() -> Self {
        UserMapping {
            fields: vec![
                FieldMap {
                    target: Target::Top {
                        attr: "userName".into(),
                    },
                    field: "name".into(),
                    kind: Kind::String,
                    case_exact: false,
                },
                FieldMap {
                    target: Target::Typed {
                        attr: "emails".into(),
                        type_value: "work".into(),
                        sub: "value".into(),
                    },
                    field: "mail".into(),
                    kind: Kind::String,
                    case_exact: false,
                },
                FieldMap {
                    target: Target::Top {
                        attr: "active".into(),
                    },
                    field: "status".into(),
                    kind: Kind::Boolean,
                    case_exact: false,
                },
            ],
        }
    }

    /// Parses the `attributes` list of the plugin configuration (field names `attributes[i].…`).
    pub fn from_config(list: Option<&Value>) -> Result<Self, (String, String)> {
        let mut mapping = Self::core();
        let Some(list) = list else {
            return Ok(mapping);
        };
        let items = list.as_array().ok_or_else(|| {
            (
                "attributes".to_string(),
                "must be a list of {scim, drupal[, type][, case_exact]}".to_string(),
            )
        })?;
        for (i, item) in items.iter().enumerate() {
            let at = |k: &str| format!("attributes[{i}].{k}");
            let obj = item
                .as_object()
                .ok_or_else(|| (format!("attributes[{i}]"), "must be an object".to_string()))?;
            if let Some(k) = obj
                .keys()
                .find(|k| !["scim", "drupal", "type", "case_exact"].contains(&k.as_str()))
            {
                return Err((
                    at(k),
                    "unknown field (expected one of: scim, drupal, type, case_exact)".into(),
                ));
            }
            let scim = obj.get("scim").and_then(Value::as_str).ok_or_else(|| {
                (
                    at("scim"),
                    "is required (a SCIM attribute path)".to_string(),
                )
            })?;
            let field = obj.get("drupal").and_then(Value::as_str).ok_or_else(|| {
                (
                    at("drupal"),
                    "is required (a Drupal user field name)".to_string(),
                )
            })?;
            if !is_field_name(field) {
                return Err((
                    at("drupal"),
                    format!("`{field}` is not a Drupal field machine name"),
                ));
            }
            if RESERVED_FIELDS.contains(&field) {
                return Err((
                    at("drupal"),
                    format!("`{field}` is managed by the gateway and cannot be mapped"),
                ));
            }
            if mapping.fields.iter().any(|f| f.field == field) {
                return Err((at("drupal"), format!("`{field}` is mapped twice")));
            }
            let kind = match obj.get("type").map(|t| t.as_str()) {
                None | Some(Some("string")) => Kind::String,
                Some(Some("boolean")) => Kind::Boolean,
                Some(Some("integer")) => Kind::Integer,
                _ => {
                    return Err((
                        at("type"),
                        "must be `string`, `boolean` or `integer`".into(),
                    ))
                }
            };
            let target = parse_target(scim).map_err(|reason| (at("scim"), reason))?;
            if mapping.fields.iter().any(|f| f.target == target) {
                return Err((at("scim"), format!("`{scim}` is mapped twice")));
            }
            if let Target::Typed { attr, .. } = &target {
                if mapping.fields.iter().any(|f| {
                    matches!(&f.target, Target::Typed { attr: a, .. } if a == attr)
                        && f.kind != kind
                }) {
                    return Err((
                        at("type"),
                        format!("every `{attr}` mapping must have the same type"),
                    ));
                }
            }
            let default_exact = matches!(&target, Target::Top { attr } if attr == "externalId");
            let case_exact = match obj.get("case_exact") {
                None => default_exact,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err((at("case_exact"), "must be true or false".into())),
            };
            mapping.fields.push(FieldMap {
                target,
                field: field.to_string(),
                kind,
                case_exact,
            });
        }
        Ok(mapping)
    }

    /// The Drupal fields to read (sparse fieldset).
    pub fn drupal_fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.field.as_str())
    }

    pub fn has_extension(&self) -> bool {
        self.fields
            .iter()
            .any(|f| matches!(f.target, Target::Extension { .. }))
    }

    /// The mapped types of a typed attribute, first mapped first.
    fn types_of<'a>(&'a self, attr: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter_map(move |f| match &f.target {
            Target::Typed {
                attr: a,
                type_value,
                ..
            } if a == attr => Some(type_value.as_str()),
            _ => None,
        })
    }

    /// The mapping for a path such as `name.givenName`, `displayName`, `emails.value` (of the
    /// first type) or `urn:…:enterprise:2.0:User:department`.
    pub fn lookup(&self, path: &AttrPath) -> Option<&FieldMap> {
        let ext = match &path.schema {
            None => false,
            Some(s) if s.eq_ignore_ascii_case(USER_SCHEMA) => false,
            Some(s) if s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) => true,
            Some(_) => return None,
        };
        self.fields.iter().find(|f| match (&f.target, ext) {
            (Target::Top { attr }, false) => {
                path.sub_attr.is_none() && attr.eq_ignore_ascii_case(&path.attr)
            }
            (Target::Sub { attr, sub }, false) => {
                attr.eq_ignore_ascii_case(&path.attr)
                    && path
                        .sub_attr
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(sub))
            }
            (Target::Extension { attr }, true) => {
                path.sub_attr.is_none() && attr.eq_ignore_ascii_case(&path.attr)
            }
            _ => false,
        })
    }

    /// The mappings of one typed attribute (e.g. every `phoneNumbers` type).
    pub fn typed(&self, attr: &str) -> Vec<&FieldMap> {
        self.fields
            .iter()
            .filter(|f| matches!(&f.target, Target::Typed { attr: a, .. } if a.eq_ignore_ascii_case(attr)))
            .collect()
    }

    /// Whether a top-level name is a multi-valued attribute here.
    pub fn is_multi_valued(&self, attr: &str) -> bool {
        !self.typed(attr).is_empty()
    }

    /// Whether a top-level name is a complex single-valued attribute here (`name`).
    pub fn is_complex(&self, attr: &str) -> bool {
        self.fields.iter().any(
            |f| matches!(&f.target, Target::Sub { attr: a, .. } if a.eq_ignore_ascii_case(attr)),
        )
    }

    /// The canonical spelling of a top-level attribute name, if mapped at all.
    pub fn canonical_top(&self, attr: &str) -> Option<&str> {
        self.fields.iter().find_map(|f| match &f.target {
            Target::Top { attr: a }
            | Target::Sub { attr: a, .. }
            | Target::Typed { attr: a, .. }
                if a.eq_ignore_ascii_case(attr) =>
            {
                Some(a.as_str())
            }
            _ => None,
        })
    }

    /// Builds the SCIM view of Drupal attribute values (without id/meta/schemas).
    pub fn to_scim(&self, drupal: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for f in &self.fields {
            let Some(value) = drupal.get(&f.field).filter(|v| !v.is_null()) else {
                continue;
            };
            let value = match (f.kind, value) {
                (Kind::String, Value::String(s)) if s.is_empty() => continue,
                _ => value.clone(),
            };
            match &f.target {
                Target::Top { attr } => {
                    out.insert(attr.clone(), value);
                }
                Target::Sub { attr, sub } => {
                    if let Some(obj) = out
                        .entry(attr.clone())
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                    {
                        obj.insert(sub.clone(), value);
                    }
                }
                Target::Typed {
                    attr,
                    type_value,
                    sub,
                } => {
                    if let Some(list) = out
                        .entry(attr.clone())
                        .or_insert_with(|| json!([]))
                        .as_array_mut()
                    {
                        let mut element = Map::new();
                        element.insert(sub.clone(), value);
                        element.insert("type".into(), json!(type_value));
                        list.push(Value::Object(element));
                    }
                }
                Target::Extension { attr } => {
                    if let Some(obj) = out
                        .entry(ENTERPRISE_USER_SCHEMA.to_string())
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                    {
                        obj.insert(attr.clone(), value);
                    }
                }
            }
        }
        out
    }

    /// Reads the mapped values out of a SCIM User (a request body, or the result of applying
    /// PATCH operations). Absent attributes are absent from the result; `null` and empty
    /// values are `Value::Null` (clear).
    pub fn from_scim(
        &self,
        resource: &Map<String, Value>,
    ) -> Result<Map<String, Value>, ScimError> {
        let mut out = Map::new();
        for f in &self.fields {
            let found = match &f.target {
                Target::Top { attr } => get_ci(resource, attr).cloned(),
                Target::Sub { attr, sub } => match get_ci(resource, attr) {
                    None => None,
                    Some(Value::Null) => Some(Value::Null),
                    Some(Value::Object(o)) => get_ci(o, sub).cloned(),
                    Some(_) => {
                        return Err(ScimError::invalid_value(format!(
                            "`{attr}` must be an object."
                        )))
                    }
                },
                Target::Typed {
                    attr,
                    type_value,
                    sub,
                } => self.typed_value(resource, attr, type_value, sub)?,
                Target::Extension { attr } => match get_ci(resource, ENTERPRISE_USER_SCHEMA) {
                    Some(Value::Object(o)) => get_ci(o, attr).cloned(),
                    Some(Value::Null) => Some(Value::Null),
                    None => None,
                    Some(_) => {
                        return Err(ScimError::invalid_value(format!(
                            "`{ENTERPRISE_USER_SCHEMA}` must be an object."
                        )))
                    }
                },
            };
            if let Some(v) = found {
                out.insert(f.field.clone(), coerce(f, v)?);
            }
        }
        Ok(out)
    }

    /// The element of a typed multi-valued attribute that a mapping takes: the element of
    /// that type; for the first mapped type, the primary element first, and failing both the
    /// first element that no other mapped type claims.
    fn typed_value(
        &self,
        resource: &Map<String, Value>,
        attr: &str,
        type_value: &str,
        sub: &str,
    ) -> Result<Option<Value>, ScimError> {
        let list = match get_ci(resource, attr) {
            None => return Ok(None),
            Some(Value::Null) => return Ok(Some(Value::Null)),
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(ScimError::invalid_value(format!(
                    "`{attr}` must be a list."
                )))
            }
        };
        let mut elements = Vec::with_capacity(list.len());
        for e in list {
            let obj = e.as_object().ok_or_else(|| {
                ScimError::invalid_value(format!("Each entry of `{attr}` must be an object."))
            })?;
            let t = match get_ci(obj, "type") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => {
                    return Err(ScimError::invalid_value(format!(
                        "`{attr}.type` must be a string."
                    )))
                }
            };
            let primary = match get_ci(obj, "primary") {
                None | Some(Value::Null) => false,
                Some(v) => coerce_bool(&format!("{attr}.primary"), v)?,
            };
            elements.push((obj, t, primary));
        }
        if elements.iter().filter(|(_, _, p)| *p).count() > 1 {
            return Err(ScimError::invalid_value(format!(
                "Only one entry of `{attr}` may be primary."
            )));
        }
        let of_type = elements
            .iter()
            .find(|(_, t, _)| t.is_some_and(|t| t.eq_ignore_ascii_case(type_value)));
        let is_first_type = self.types_of(attr).next() == Some(type_value);
        let chosen = if is_first_type {
            // The first mapped type also takes the primary entry, or an entry no other mapped
            // type claims (IdPs often send untyped or differently typed addresses).
            let other_typed = |t: Option<&str>| {
                t.is_some_and(|t| {
                    !t.eq_ignore_ascii_case(type_value)
                        && self.types_of(attr).any(|m| m.eq_ignore_ascii_case(t))
                })
            };
            elements
                .iter()
                .find(|(_, t, p)| *p && !other_typed(*t))
                .or(of_type)
                .or_else(|| elements.iter().find(|(_, t, _)| !other_typed(*t)))
        } else {
            of_type
        };
        match chosen {
            // An entry that is there but has no value is a mistake, not "no value".
            Some((obj, _, _)) => match get_ci(obj, sub) {
                Some(v) => Ok(Some(v.clone())),
                None => Err(ScimError::invalid_value(format!(
                    "Each entry of `{attr}` needs a `{sub}`."
                ))),
            },
            None => Ok(Some(Value::Null)),
        }
    }

    /// The attribute definitions for `/Schemas`: core schema and, if mapped, the enterprise
    /// extension.
    pub fn schema_attributes(&self) -> (Vec<Value>, Vec<Value>) {
        let mut core: Vec<Value> = Vec::new();
        let mut ext: Vec<Value> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for f in &self.fields {
            match &f.target {
                Target::Top { attr } => core.push(top_attribute(attr, f)),
                Target::Extension { attr } => {
                    ext.push(simple_attribute(attr, f.kind, f.case_exact, ""))
                }
                Target::Sub { attr, .. } | Target::Typed { attr, .. } => {
                    if seen.contains(attr) {
                        continue;
                    }
                    seen.push(attr.clone());
                    core.push(self.complex_attribute(attr));
                }
            }
        }
        core.push(attribute_definition(
            "password",
            "string",
            json!({"description": "Sets the Drupal password; never returned.", "mutability": "writeOnly", "returned": "never", "caseExact": true}),
        ));
        (core, ext)
    }

    fn complex_attribute(&self, attr: &str) -> Value {
        let mut subs: Vec<Value> = Vec::new();
        let typed = self.typed(attr);
        if typed.is_empty() {
            for f in &self.fields {
                if let Target::Sub { attr: a, sub } = &f.target {
                    if a == attr {
                        subs.push(simple_attribute(sub, f.kind, f.case_exact, ""));
                    }
                }
            }
            return attribute_definition(
                attr,
                "complex",
                json!({"description": describe_attr(attr), "subAttributes": subs}),
            );
        }
        let mut sub_names: Vec<(&str, &FieldMap)> = Vec::new();
        for f in &typed {
            if let Target::Typed { sub, .. } = &f.target {
                if !sub_names.iter().any(|(s, _)| s == sub) {
                    sub_names.push((sub.as_str(), *f));
                }
            }
        }
        for (sub, f) in sub_names {
            subs.push(simple_attribute(sub, f.kind, f.case_exact, ""));
        }
        let types: Vec<&str> = self.types_of(attr).collect();
        let mut type_attr = simple_attribute(
            "type",
            Kind::String,
            false,
            "The kind of entry; only these are stored.",
        );
        if let Some(o) = type_attr.as_object_mut() {
            o.insert("canonicalValues".into(), json!(types));
        }
        subs.push(type_attr);
        attribute_definition(
            attr,
            "complex",
            // Drupal requires `mail` once an account has one: advertised as required, so clients
            // (and compliance suites) do not expect to remove it.
            json!({"description": describe_attr(attr), "multiValued": true, "required": attr == "emails", "subAttributes": subs}),
        )
    }
}

fn describe_attr(attr: &str) -> String {
    match attr {
        "emails" => "Drupal stores one address (`mail`): the primary entry, else the `work` one, else the first. Once set it can be changed but not removed.".into(),
        _ => format!("Stored in Drupal user fields, one per mapped sub-attribute or type of `{attr}`."),
    }
}

fn top_attribute(attr: &str, f: &FieldMap) -> Value {
    let extra = match attr {
        "userName" => {
            json!({"description": "Drupal's username (`name`): unique, case-insensitive, at most 60 characters.", "required": true, "uniqueness": "server"})
        }
        "active" => {
            // Required: Drupal's status always has a value and cannot be removed (set false).
            json!({"description": "Drupal's `status`: false means the account is blocked. Always set; cannot be removed.", "required": true})
        }
        _ => json!({"description": format!("Drupal field `{}`.", f.field)}),
    };
    let mut def = attribute_definition(attr, f.kind.scim_type(), extra);
    if let Some(o) = def.as_object_mut() {
        if f.kind == Kind::String {
            o.insert("caseExact".into(), json!(f.case_exact));
        }
    }
    def
}

fn simple_attribute(name: &str, kind: Kind, case_exact: bool, description: &str) -> Value {
    attribute_definition(
        name,
        kind.scim_type(),
        json!({"description": description, "caseExact": case_exact}),
    )
}

pub fn attribute_definition(name: &str, kind: &str, extra: Value) -> Value {
    let mut a = json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": "",
        "required": false,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none"
    });
    if let (Some(obj), Value::Object(more)) = (a.as_object_mut(), extra) {
        obj.extend(more);
    }
    a
}

fn coerce(f: &FieldMap, value: Value) -> Result<Value, ScimError> {
    let name = describe_target(&f.target);
    match (f.kind, value) {
        (_, Value::Null) => Ok(Value::Null),
        (Kind::String, Value::String(s)) if s.is_empty() => Ok(Value::Null),
        (Kind::String, v @ Value::String(_)) => Ok(v),
        (Kind::Boolean, v) => coerce_bool(&name, &v).map(Value::Bool),
        (Kind::Integer, Value::Number(n)) if n.is_i64() => Ok(Value::Number(n)),
        (Kind::String, _) => Err(ScimError::invalid_value(format!(
            "`{name}` must be a string."
        ))),
        (Kind::Integer, _) => Err(ScimError::invalid_value(format!(
            "`{name}` must be an integer."
        ))),
    }
}

pub fn describe_target(t: &Target) -> String {
    match t {
        Target::Top { attr } => attr.clone(),
        Target::Sub { attr, sub } => format!("{attr}.{sub}"),
        Target::Typed {
            attr,
            type_value,
            sub,
        } => format!("{attr}[type eq \"{type_value}\"].{sub}"),
        Target::Extension { attr } => format!("{ENTERPRISE_USER_SCHEMA}:{attr}"),
    }
}

fn is_field_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 32
}

fn parse_target(scim: &str) -> Result<Target, String> {
    let path = parse_patch_path(scim).map_err(|e| format!("not a SCIM attribute path: {e}"))?;
    let attr = &path.attr;
    let canonical = |list: &[&str], name: &str| {
        list.iter()
            .find(|a| a.eq_ignore_ascii_case(name))
            .map(|a| a.to_string())
    };
    if let Some(schema) = &attr.schema {
        if schema.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
            if attr.sub_attr.is_some() || path.filter.is_some() {
                return Err("only the simple enterprise attributes can be mapped".into());
            }
            return canonical(ENTERPRISE_ATTRS, &attr.attr)
                .map(|attr| Target::Extension { attr })
                .ok_or_else(|| {
                    format!(
                        "`{}` is not a simple enterprise attribute ({})",
                        attr.attr,
                        ENTERPRISE_ATTRS.join(", ")
                    )
                });
        }
        if !schema.eq_ignore_ascii_case(USER_SCHEMA) {
            return Err(format!(
                "schema `{schema}` is not supported; use the core User or enterprise extension"
            ));
        }
    }
    if RESERVED_ATTRS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&attr.attr))
    {
        return Err(format!("`{}` is mapped by the gateway itself", attr.attr));
    }
    match (&path.filter, &attr.sub_attr, &path.sub_attr) {
        (None, None, None) => canonical(TOP_ATTRS, &attr.attr)
            .map(|attr| Target::Top { attr })
            .ok_or_else(|| {
                format!(
                    "`{}` is not a simple User attribute ({})",
                    attr.attr,
                    TOP_ATTRS.join(", ")
                )
            }),
        (None, Some(sub), None) => {
            if !attr.attr.eq_ignore_ascii_case("name") {
                return Err(format!(
                    "`{}.{sub}`: only `name` sub-attributes can be mapped this way",
                    attr.attr
                ));
            }
            canonical(NAME_SUBS, sub)
                .map(|sub| Target::Sub {
                    attr: "name".into(),
                    sub,
                })
                .ok_or_else(|| {
                    format!(
                        "`name.{sub}` is not a sub-attribute of name ({})",
                        NAME_SUBS.join(", ")
                    )
                })
        }
        (Some(filter), None, Some(sub)) => {
            let attr_name = canonical(TYPED_ATTRS, &attr.attr).ok_or_else(|| {
                format!(
                    "`{}` is not a multi-valued User attribute with types",
                    attr.attr
                )
            })?;
            let type_value = match filter {
                Filter::Compare {
                    path,
                    op: CompareOp::Eq,
                    value: CompValue::Str(t),
                } if path.is("type") => t.clone(),
                _ => return Err("the filter must be `[type eq \"…\"]`".into()),
            };
            if sub.eq_ignore_ascii_case("type") || sub.eq_ignore_ascii_case("primary") {
                return Err(format!("`{sub}` cannot be mapped"));
            }
            Ok(Target::Typed {
                attr: attr_name,
                type_value,
                sub: sub.clone(),
            })
        }
        _ => Err(
            "use `attr`, `name.sub`, `attr[type eq \"t\"].sub` or an enterprise attribute URN"
                .into(),
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The mapping the unit tests share (the emulator's, without department and title).
    pub fn sample() -> UserMapping {
        UserMapping::from_config(Some(&json!([
            {"scim": "name.givenName", "drupal": "field_given_name"},
            {"scim": "name.familyName", "drupal": "field_family_name"},
            {"scim": "displayName", "drupal": "field_display_name"},
            {"scim": "externalId", "drupal": "field_external_id"},
            {"scim": "phoneNumbers[type eq \"work\"].value", "drupal": "field_phone_work"},
            {"scim": "phoneNumbers[type eq \"mobile\"].value", "drupal": "field_phone_mobile"},
            {"scim": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "drupal": "field_employee_number"}
        ])))
        .unwrap()
    }

    #[test]
    fn drupal_values_become_a_scim_user() {
        let m = sample();
        let drupal = json!({"name": "jane", "mail": "j@x.org", "status": false, "field_given_name": "Jane",
            "field_phone_mobile": "555", "field_employee_number": "42", "field_display_name": null, "field_external_id": ""});
        let scim = m.to_scim(drupal.as_object().unwrap());
        assert_eq!(
            Value::Object(scim),
            json!({
                "userName": "jane", "emails": [{"value": "j@x.org", "type": "work"}], "active": false,
                "name": {"givenName": "Jane"}, "phoneNumbers": [{"value": "555", "type": "mobile"}],
                ENTERPRISE_USER_SCHEMA: {"employeeNumber": "42"}
            })
        );
    }

    #[test]
    fn scim_values_become_drupal_fields() {
        let m = sample();
        let body = json!({"userName": "jane", "emails": [{"value": "h@x.org", "type": "home", "primary": true}, {"value": "w@x.org", "type": "Work"}],
            "ACTIVE": "True", "name": {"givenName": "Jane", "familyName": null}, "phoneNumbers": [{"value": "1"}],
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "7"}, "nickName": "ignored"});
        let d = m.from_scim(body.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(d),
            json!({"name": "jane", "mail": "h@x.org", "status": true, "field_given_name": "Jane",
            "field_family_name": null, "field_phone_work": "1", "field_phone_mobile": null, "field_employee_number": "7"})
        );
    }

    #[test]
    fn untyped_and_primary_entries_fill_the_first_type() {
        let m = sample();
        let d = m
            .from_scim(
                json!({"emails": [{"value": "a@x.org"}, {"value": "p@x.org", "primary": true}]})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(d["mail"], "p@x.org");
    }

    #[test]
    fn bad_types_are_invalid_values() {
        let m = sample();
        for body in [
            json!({"name": "x"}),
            json!({"displayName": 1}),
            json!({"emails": {}}),
            json!({"phoneNumbers": [1]}),
            json!({"active": "maybe"}),
        ] {
            assert_eq!(
                m.from_scim(body.as_object().unwrap()).unwrap_err().status,
                400,
                "{body}"
            );
        }
    }

    #[test]
    fn lookups_accept_any_case_and_the_schema_prefix() {
        let m = sample();
        let p = |s: &str| crate::scim::filter::parse_attr_path(s).unwrap();
        assert_eq!(
            m.lookup(&p("NAME.givenname")).unwrap().field,
            "field_given_name"
        );
        assert_eq!(
            m.lookup(&p("urn:ietf:params:scim:schemas:core:2.0:User:userName"))
                .unwrap()
                .field,
            "name"
        );
        assert_eq!(
            m.lookup(&p(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeenumber"
            ))
            .unwrap()
            .field,
            "field_employee_number"
        );
        assert!(m.lookup(&p("title")).is_none());
        assert_eq!(m.typed("phonenumbers").len(), 2);
    }

    #[test]
    fn config_errors_name_the_entry() {
        let cases = [
            (
                json!([{"scim": "userName", "drupal": "field_x"}]),
                "attributes[0].scim",
            ),
            (
                json!([{"scim": "displayName", "drupal": "mail"}]),
                "attributes[0].drupal",
            ),
            (
                json!([{"scim": "displayName", "drupal": "Field X"}]),
                "attributes[0].drupal",
            ),
            (
                json!([{"scim": "displayName", "drupal": "field_a"}, {"scim": "displayname", "drupal": "field_b"}]),
                "attributes[1].scim",
            ),
            (
                json!([{"scim": "name.nick", "drupal": "field_a"}]),
                "attributes[0].scim",
            ),
            (
                json!([{"scim": "displayName", "drupal": "field_a", "type": "date"}]),
                "attributes[0].type",
            ),
            (
                json!([{"scim": "displayName", "drupal": "field_a", "extra": 1}]),
                "attributes[0].extra",
            ),
            (
                json!([{"scim": "urn:example:ext:User:x", "drupal": "field_a"}]),
                "attributes[0].scim",
            ),
            (
                json!([{"scim": "phoneNumbers[value eq \"x\"].value", "drupal": "field_a"}]),
                "attributes[0].scim",
            ),
        ];
        for (list, field) in cases {
            assert_eq!(
                UserMapping::from_config(Some(&list)).unwrap_err().0,
                field,
                "{list}"
            );
        }
    }

    #[test]
    fn schema_lists_exactly_the_mapped_attributes() {
        let (core, ext) = sample().schema_attributes();
        let names: Vec<&str> = core.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "userName",
                "emails",
                "active",
                "name",
                "displayName",
                "externalId",
                "phoneNumbers",
                "password"
            ]
        );
        assert_eq!(
            core[6]["subAttributes"][1]["canonicalValues"],
            json!(["work", "mobile"])
        );
        assert_eq!(core[5]["caseExact"], true);
        assert_eq!(ext.len(), 1);
    }
}
