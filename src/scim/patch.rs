//! PATCH (RFC 7644 §3.5.2) in every dialect IdPs send: `op` in any case, booleans as
//! strings, path-less operations whose value keys are attribute paths, value-filter paths
//! (where `add`/`replace` on a filter that matches nothing creates the element), `remove`
//! with and without a value. Operations are applied to the gateway's SCIM view of the user;
//! the result goes to Drupal in one write, so a request is applied whole or not at all.

use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::{parse_patch_path, AttrPath, CompValue, CompareOp, Filter, PatchPath};
use crate::scim::filter_eval::element_matches;
use crate::scim::mapping::{Target, UserMapping};
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::scim::user::{check_password, parse_json_object};
use crate::scim::values::get_ci;
use serde_json::{json, Map, Value};

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub raw_path: Option<String>,
    pub value: Option<Value>,
}

/// Attributes that are read-only or immutable: operations on them are accepted and ignored
/// (IdPs echo them back), as PUT ignores them.
const IGNORED: &[&str] = &["id", "meta", "schemas", "groups"];

/// Parses and checks a PatchOp body.
pub fn parse(body: &[u8]) -> Result<Vec<Operation>, ScimError> {
    let obj = parse_json_object(body)?;
    match get_ci(&obj, "schemas") {
        Some(Value::Array(list))
            if list.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            }) => {}
        _ => {
            return Err(ScimError::invalid_value(format!(
                "`schemas` must be [\"{PATCH_OP_SCHEMA}\"]."
            )))
        }
    }
    let ops = match get_ci(&obj, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        _ => {
            return Err(ScimError::bad_request(
                ScimType::InvalidSyntax,
                "`Operations` must be a non-empty list.",
            ))
        }
    };
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let o = op.as_object().ok_or_else(|| {
            ScimError::bad_request(
                ScimType::InvalidSyntax,
                format!("Operation {i} must be an object."),
            )
        })?;
        let kind = match get_ci(o, "op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => OpKind::Add,
            Some("replace") => OpKind::Replace,
            Some("remove") => OpKind::Remove,
            _ => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidSyntax,
                    format!("Operation {i}: `op` must be add, replace or remove."),
                ))
            }
        };
        let raw_path = match get_ci(o, "path") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidPath,
                    format!("Operation {i}: `path` must be a string."),
                ))
            }
        };
        let path = match &raw_path {
            None => None,
            Some(p) => Some(parse_patch_path(p).map_err(|e| {
                ScimError::bad_request(
                    ScimType::InvalidPath,
                    format!("Operation {i}: the path `{p}` is not valid: {e}."),
                )
            })?),
        };
        let value = get_ci(o, "value").cloned();
        match (kind, &path, &value) {
            (OpKind::Remove, None, _) => {
                return Err(ScimError::bad_request(
                    ScimType::NoTarget,
                    format!("Operation {i}: `remove` needs a `path`."),
                ))
            }
            (OpKind::Add | OpKind::Replace, None, Some(Value::Object(_))) => {}
            (OpKind::Add | OpKind::Replace, None, _) => {
                return Err(ScimError::invalid_value(format!(
                    "Operation {i}: without a `path`, `value` must be an object of attributes."
                )))
            }
            (OpKind::Add | OpKind::Replace, Some(_), None) => {
                return Err(ScimError::invalid_value(format!(
                    "Operation {i}: `{}` needs a `value`.",
                    op_name(kind)
                )))
            }
            _ => {}
        }
        out.push(Operation {
            op: kind,
            path,
            raw_path,
            value,
        });
    }
    Ok(out)
}

fn op_name(k: OpKind) -> &'static str {
    match k {
        OpKind::Add => "add",
        OpKind::Replace => "replace",
        OpKind::Remove => "remove",
    }
}

/// The outcome of applying operations.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    /// A new password, if an operation set one.
    pub password: Option<String>,
}

/// Applies the operations to a SCIM view of a user (as `UserMapping::to_scim` builds it).
pub fn apply(
    resource: &mut Map<String, Value>,
    ops: &[Operation],
    mapping: &UserMapping,
) -> Result<Applied, ScimError> {
    let mut applied = Applied::default();
    for op in ops {
        match &op.path {
            None => {
                let Some(Value::Object(values)) = &op.value else {
                    continue;
                };
                for (key, v) in values {
                    apply_key(resource, op.op, key, v, mapping, &mut applied)?;
                }
            }
            Some(path) => apply_path(
                resource,
                op.op,
                path,
                op.value.as_ref(),
                mapping,
                &mut applied,
            )?,
        }
    }
    Ok(applied)
}

/// A key of a path-less value: an attribute name, a dotted or URN-qualified path, or a bare
/// extension URN whose value holds that extension's attributes.
fn apply_key(
    resource: &mut Map<String, Value>,
    op: OpKind,
    key: &str,
    v: &Value,
    mapping: &UserMapping,
    applied: &mut Applied,
) -> Result<(), ScimError> {
    let path = parse_patch_path(key).map_err(|e| {
        ScimError::bad_request(
            ScimType::InvalidPath,
            format!("The attribute `{key}` is not a valid path: {e}."),
        )
    })?;
    apply_path(resource, op, &path, Some(v), mapping, applied)
}

fn is_extension(path: &AttrPath) -> bool {
    path.schema
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA))
}

fn apply_path(
    resource: &mut Map<String, Value>,
    op: OpKind,
    path: &PatchPath,
    value: Option<&Value>,
    mapping: &UserMapping,
    applied: &mut Applied,
) -> Result<(), ScimError> {
    let attr = &path.attr;
    if let Some(s) = &attr.schema {
        if !s.eq_ignore_ascii_case(USER_SCHEMA) && !s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!("Unknown schema `{s}` in a path."),
            ));
        }
    }
    if attr.is_bare_schema() {
        if !is_extension(attr) {
            // `urn:…:core:2.0:User` with an object: its attributes, as if path-less.
            if let Some(Value::Object(values)) = value {
                for (k, v) in values {
                    apply_key(resource, op, k, v, mapping, applied)?;
                }
            }
            return Ok(());
        }
        return apply_extension_object(resource, op, value, mapping, applied);
    }
    if IGNORED.iter().any(|i| i.eq_ignore_ascii_case(&attr.attr)) && !is_extension(attr) {
        return Ok(());
    }
    if attr.attr.eq_ignore_ascii_case("password") && !is_extension(attr) {
        if op != OpKind::Remove {
            applied.password = match value {
                Some(Value::String(p)) => Some(p.clone()),
                _ => return Err(ScimError::invalid_value("`password` must be a string.")),
            };
            check_password(&applied.password)?;
        }
        return Ok(());
    }
    if is_extension(attr) {
        if path.filter.is_some() || attr.sub_attr.is_some() {
            return Ok(()); // Only simple enterprise attributes are stored: nothing else to change.
        }
        let Some(f) = mapping.lookup(attr) else {
            return Ok(());
        };
        let Target::Extension { attr: name } = &f.target else {
            return Ok(());
        };
        let ext = resource
            .entry(ENTERPRISE_USER_SCHEMA.to_string())
            .or_insert_with(|| json!({}));
        if let Some(ext) = ext.as_object_mut() {
            set_simple(ext, name, op, value);
        }
        return Ok(());
    }
    let Some(canonical) = mapping.canonical_top(&attr.attr).map(str::to_string) else {
        return Ok(()); // Not stored by this server: ignored, as unmapped attributes are.
    };
    if mapping.is_multi_valued(&canonical) {
        return apply_multi(resource, op, &canonical, path, value, mapping);
    }
    if mapping.is_complex(&canonical) {
        return apply_complex(resource, op, &canonical, path, value, mapping);
    }
    if path.filter.is_some() || attr.sub_attr.is_some() {
        return Err(ScimError::bad_request(
            ScimType::InvalidPath,
            format!("`{canonical}` has no sub-attributes."),
        ));
    }
    set_simple(resource, &canonical, op, value);
    Ok(())
}

fn apply_extension_object(
    resource: &mut Map<String, Value>,
    op: OpKind,
    value: Option<&Value>,
    mapping: &UserMapping,
    applied: &mut Applied,
) -> Result<(), ScimError> {
    match (op, value) {
        (OpKind::Remove, _) => {
            remove_ci(resource, ENTERPRISE_USER_SCHEMA);
            Ok(())
        }
        (_, Some(Value::Object(values))) => {
            for (k, v) in values {
                if k.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let path =
                    parse_patch_path(&format!("{ENTERPRISE_USER_SCHEMA}:{k}")).map_err(|e| {
                        ScimError::bad_request(
                            ScimType::InvalidPath,
                            format!("`{k}` is not a valid attribute name: {e}."),
                        )
                    })?;
                apply_path(resource, op, &path, Some(v), mapping, applied)?;
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "The value for `{ENTERPRISE_USER_SCHEMA}` must be an object."
        ))),
    }
}

fn remove_ci(obj: &mut Map<String, Value>, name: &str) {
    let keys: Vec<String> = obj
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    for k in keys {
        obj.remove(&k);
    }
}

/// Replaces any differently-cased spelling of `name` with the canonical one.
fn canonical_entry<'a>(
    obj: &'a mut Map<String, Value>,
    name: &str,
    default: Value,
) -> &'a mut Value {
    if !obj.contains_key(name) {
        let existing = obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned();
        let v = existing.and_then(|k| obj.remove(&k)).unwrap_or(default);
        obj.insert(name.to_string(), v);
    }
    obj.entry(name.to_string()).or_insert(Value::Null)
}

fn set_simple(obj: &mut Map<String, Value>, name: &str, op: OpKind, value: Option<&Value>) {
    match (op, value) {
        (OpKind::Remove, _) | (_, None | Some(Value::Null)) => remove_ci(obj, name),
        (_, Some(v)) => {
            remove_ci(obj, name);
            obj.insert(name.to_string(), v.clone());
        }
    }
}

fn apply_complex(
    resource: &mut Map<String, Value>,
    op: OpKind,
    attr: &str,
    path: &PatchPath,
    value: Option<&Value>,
    mapping: &UserMapping,
) -> Result<(), ScimError> {
    let sub = path.attr.sub_attr.as_deref();
    if let Some(filter) = &path.filter {
        // `name[givenName eq "x"].familyName`: applies when the one value matches.
        let current = get_ci(resource, attr)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if !element_matches(filter, &current, attr, mapping) {
            return match op {
                OpKind::Remove => Ok(()),
                _ => Err(ScimError::bad_request(
                    ScimType::NoTarget,
                    format!("No value of `{attr}` matches the filter."),
                )),
            };
        }
    }
    let sub = sub.or(path.sub_attr.as_deref());
    let entry = canonical_entry(resource, attr, json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    let Some(obj) = entry.as_object_mut() else {
        return Ok(());
    };
    match (op, sub, value) {
        (OpKind::Remove, None, _) => obj.clear(),
        (_, Some(s), v) => set_simple(obj, s, op, v),
        (OpKind::Replace | OpKind::Add, None, Some(Value::Object(values))) => {
            for (k, v) in values {
                set_simple(obj, k, OpKind::Replace, Some(v));
            }
        }
        (OpKind::Replace | OpKind::Add, None, Some(Value::Null)) => obj.clear(),
        (_, None, _) => {
            return Err(ScimError::invalid_value(format!(
                "The value for `{attr}` must be an object."
            )))
        }
    }
    if obj.is_empty() {
        remove_ci(resource, attr);
    }
    Ok(())
}

fn elements_of(value: Option<&Value>, attr: &str) -> Result<Vec<Map<String, Value>>, ScimError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|e| {
                e.as_object().cloned().ok_or_else(|| {
                    ScimError::invalid_value(format!("Each value of `{attr}` must be an object."))
                })
            })
            .collect(),
        Some(Value::Object(o)) => Ok(vec![o.clone()]),
        Some(_) => Err(ScimError::invalid_value(format!(
            "The value for `{attr}` must be a list of objects."
        ))),
    }
}

fn type_of(e: &Map<String, Value>) -> Option<String> {
    get_ci(e, "type")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
}

/// Attributes a value filter pins down (`type eq "work"`), to build the element it names.
fn equalities(f: &Filter, out: &mut Map<String, Value>) {
    match f {
        Filter::And(a, b) => {
            equalities(a, out);
            equalities(b, out);
        }
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } => {
            let v = match value {
                CompValue::Str(s) => json!(s),
                CompValue::Bool(b) => json!(b),
                CompValue::Num(n) => n.parse::<f64>().map(|f| json!(f)).unwrap_or(Value::Null),
                CompValue::Null => Value::Null,
            };
            out.insert(path.attr.clone(), v);
        }
        _ => {}
    }
}

fn apply_multi(
    resource: &mut Map<String, Value>,
    op: OpKind,
    attr: &str,
    path: &PatchPath,
    value: Option<&Value>,
    mapping: &UserMapping,
) -> Result<(), ScimError> {
    let sub = path.sub_attr.as_deref().or(path.attr.sub_attr.as_deref());
    let current: Vec<Map<String, Value>> = match get_ci(resource, attr) {
        Some(Value::Array(list)) => list.iter().filter_map(|e| e.as_object().cloned()).collect(),
        _ => Vec::new(),
    };
    let matching: Vec<bool> = current
        .iter()
        .map(|e| {
            path.filter
                .as_ref()
                .is_none_or(|f| element_matches(f, e, attr, mapping))
        })
        .collect();
    let mut next = current.clone();
    match (op, sub, &path.filter) {
        // Whole-attribute forms.
        (OpKind::Remove, None, None) => match value {
            // `remove` with a value list removes exactly those values.
            Some(v @ (Value::Array(_) | Value::Object(_))) => {
                let doomed = elements_of(Some(v), attr)?;
                next.retain(|e| !doomed.iter().any(|d| same_value(d, e)));
            }
            _ => next.clear(),
        },
        (OpKind::Replace, None, None) => next = elements_of(value, attr)?,
        (OpKind::Add, None, None) => {
            for new in elements_of(value, attr)? {
                upsert_by_type(&mut next, new);
            }
        }
        // `attr[filter]`: the matching elements.
        (OpKind::Remove, None, Some(_)) => {
            let mut i = matching.iter();
            next.retain(|_| !i.next().copied().unwrap_or(false));
        }
        (OpKind::Add | OpKind::Replace, None, Some(filter)) => {
            let news = elements_of(value, attr)?;
            if matching.iter().any(|m| *m) {
                for (e, m) in next.iter_mut().zip(&matching) {
                    if *m {
                        for n in &news {
                            e.extend(n.clone());
                        }
                    }
                }
            } else {
                let mut base = Map::new();
                equalities(filter, &mut base);
                for n in news {
                    let mut e = base.clone();
                    e.extend(n);
                    upsert_by_type(&mut next, e);
                }
            }
        }
        // Removing an element's `value` leaves nothing to store: the element goes (an element
        // without its value is refused in request bodies).
        (OpKind::Remove, Some(s), _) if s.eq_ignore_ascii_case("value") => {
            let mut i = matching.iter();
            next.retain(|_| !i.next().copied().unwrap_or(false));
        }
        // `attr[filter].sub` or `attr.sub`: a sub-attribute of the matching elements.
        (_, Some(s), filter) => {
            if matching.iter().any(|m| *m) {
                for (e, m) in next.iter_mut().zip(&matching) {
                    if *m {
                        set_simple(e, s, op, value);
                    }
                }
            } else if op != OpKind::Remove {
                let mut e = Map::new();
                if let Some(f) = filter {
                    equalities(f, &mut e);
                }
                set_simple(&mut e, s, op, value);
                upsert_by_type(&mut next, e);
            }
        }
    }

    let list: Vec<Value> = next
        .into_iter()
        .filter(|e| !e.is_empty())
        .map(Value::Object)
        .collect();
    remove_ci(resource, attr);
    if !list.is_empty() {
        resource.insert(attr.to_string(), Value::Array(list));
    }
    Ok(())
}

/// Drupal keeps one value per type, so a new element of a type replaces the old one.
fn upsert_by_type(list: &mut Vec<Map<String, Value>>, new: Map<String, Value>) {
    let t = type_of(&new);
    match list.iter_mut().find(|e| t.is_some() && type_of(e) == t) {
        Some(existing) => existing.extend(new),
        None => list.push(new),
    }
}

fn same_value(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    match (get_ci(a, "value"), get_ci(b, "value")) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.eq_ignore_ascii_case(y),
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;

    fn mapping() -> UserMapping {
        crate::scim::mapping::tests::sample()
    }

    fn jane() -> Map<String, Value> {
        json!({"userName": "jane", "emails": [{"value": "j@x.org", "type": "work"}], "active": true,
            "name": {"givenName": "Jane", "familyName": "Doe"}})
        .as_object()
        .unwrap()
        .clone()
    }

    fn body(ops: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})).unwrap()
    }

    /// Applies and returns the resulting Drupal fields (every mapped field; null = empty).
    fn run(ops: Value) -> Map<String, Value> {
        let ops = parse(&body(ops)).unwrap();
        let mut r = jane();
        apply(&mut r, &ops, &mapping()).unwrap();
        let present = mapping().from_scim(&r).unwrap();
        mapping()
            .drupal_fields()
            .map(|f| {
                (
                    f.to_string(),
                    present.get(f).cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    #[test]
    fn every_dialect_of_deactivation_gives_status_false() {
        for ops in [
            json!([{"op": "replace", "path": "active", "value": false}]),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
            json!([{"op": "replace", "value": {"active": false}}]),
            json!([{"op": "REPLACE", "value": {"ACTIVE": "false"}}]),
        ] {
            assert_eq!(run(ops.clone())["status"], false, "{ops}");
        }
    }

    #[test]
    fn pathless_values_with_dotted_and_urn_keys() {
        let d = run(json!([{"op": "replace", "value": {
            "displayName": "Bjfe", "name.givenName": "Kkom", "name.familyName": "Unua",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"}}]));
        assert_eq!(
            (
                d["field_display_name"].as_str(),
                d["field_given_name"].as_str(),
                d["field_family_name"].as_str(),
                d["field_employee_number"].as_str()
            ),
            (Some("Bjfe"), Some("Kkom"), Some("Unua"), Some("Aklq"))
        );
        assert_eq!(d["name"], "jane");
    }

    #[test]
    fn value_filter_paths_update_or_create_the_element() {
        let d = run(
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@x.org"},
            {"op": "replace", "path": "name.familyName", "value": "Smith"}]),
        );
        assert_eq!(
            (d["mail"].as_str(), d["field_family_name"].as_str()),
            (Some("new@x.org"), Some("Smith"))
        );
        let d = run(
            json!([{"op": "add", "path": "phoneNumbers[type eq \"work\"].value", "value": "555"}]),
        );
        assert_eq!(d["field_phone_work"], "555");
        let d = run(json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}]));
        assert_eq!(d["field_phone_work"], Value::Null);
    }

    #[test]
    fn remove_with_and_without_value() {
        assert_eq!(
            run(json!([{"op": "remove", "path": "name.givenName"}]))["field_given_name"],
            Value::Null
        );
        assert_eq!(
            run(json!([{"op": "remove", "path": "name"}]))["field_family_name"],
            Value::Null
        );
        let d =
            run(json!([{"op": "remove", "path": "emails", "value": [{"value": "other@x.org"}]}]));
        assert_eq!(d["mail"], "j@x.org");
        let d = run(json!([{"op": "remove", "path": "emails", "value": [{"value": "J@X.org"}]}]));
        assert_eq!(d["mail"], Value::Null);
        // Removing the value removes the element, not just leaves its `type` behind.
        let d = run(json!([{"op": "remove", "path": "emails[type eq \"work\"].value"}]));
        assert_eq!(d["mail"], Value::Null);
    }

    #[test]
    fn enterprise_extension_as_an_object_and_bare_urn() {
        let d = run(
            json!([{"op": "add", "path": ENTERPRISE_USER_SCHEMA, "value": {"employeeNumber": "7", "schemas": ["x"]}}]),
        );
        assert_eq!(d["field_employee_number"], "7");
        let d =
            run(json!([{"op": "add", "value": {ENTERPRISE_USER_SCHEMA: {"employeeNumber": "8"}}}]));
        assert_eq!(d["field_employee_number"], "8");
    }

    #[test]
    fn read_only_unmapped_and_password_operations() {
        let ops = parse(&body(json!([{"op": "replace", "value": {"id": "x", "meta": {}, "nickName": "n", "password": "S3cret!"}}, {"op": "add", "path": "groups", "value": []}]))).unwrap();
        let mut r = jane();
        let applied = apply(&mut r, &ops, &mapping()).unwrap();
        assert_eq!(applied.password.as_deref(), Some("S3cret!"));
        assert_eq!(r, jane());
    }

    #[test]
    fn bad_patch_bodies() {
        let cases = [
            (
                json!({"Operations": [{"op": "add", "path": "x", "value": 1}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "move", "path": "x"}]}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "remove"}]}),
                ScimType::NoTarget,
            ),
            (
                json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "add", "path": "emails[type eq]", "value": 1}]}),
                ScimType::InvalidPath,
            ),
            (
                json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "replace", "value": "x"}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [{"op": "replace", "path": "active"}]}),
                ScimType::InvalidValue,
            ),
        ];
        for (b, t) in cases {
            let e = parse(&serde_json::to_vec(&b).unwrap()).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some(t)), "{b}");
        }
        let ops = parse(&body(
            json!([{"op": "replace", "path": "active", "value": "maybe"}]),
        ))
        .unwrap();
        let mut r = jane();
        apply(&mut r, &ops, &mapping()).unwrap();
        assert_eq!(mapping().from_scim(&r).unwrap_err().status, 400);
    }
}
