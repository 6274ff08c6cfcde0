//! Evaluates a SCIM filter against a SCIM resource held by the gateway. Used where Drupal
//! cannot answer a filter exactly (its collations differ per database: the gateway asks
//! Drupal for a superset and keeps what really matches), and for the value filters of PATCH
//! paths (`emails[type eq "work"]`).

use crate::scim::dates::parse_rfc3339;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::mapping::UserMapping;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::scim::values::get_ci;
use serde_json::{Map, Value};

/// Whether a whole resource matches.
pub fn matches(filter: &Filter, resource: &Map<String, Value>, mapping: &UserMapping) -> bool {
    eval(filter, resource, mapping, None)
}

/// Whether one element of a multi-valued (or the value of a complex) attribute `parent`
/// matches a value filter; paths in the filter are sub-attribute names.
pub fn element_matches(
    filter: &Filter,
    element: &Map<String, Value>,
    parent: &str,
    mapping: &UserMapping,
) -> bool {
    eval(filter, element, mapping, Some(parent))
}

fn eval(
    filter: &Filter,
    obj: &Map<String, Value>,
    mapping: &UserMapping,
    parent: Option<&str>,
) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, obj, mapping, parent) && eval(b, obj, mapping, parent),
        Filter::Or(a, b) => eval(a, obj, mapping, parent) || eval(b, obj, mapping, parent),
        Filter::Not(a) => !eval(a, obj, mapping, parent),
        Filter::Present(path) => values_at(obj, path, parent).iter().any(|v| is_present(v)),
        Filter::Compare { path, op, value } => {
            let exact = case_exact(mapping, path, parent);
            let is_date = parent.is_none() && path.attr.eq_ignore_ascii_case("meta");
            let values = values_at(obj, path, parent);
            let hit = |v: &Value| compare(v, *op, value, exact, is_date);
            match (op, value) {
                (CompareOp::Eq, CompValue::Null) => !values.iter().any(|v| is_present(v)),
                (CompareOp::Ne, CompValue::Null) => values.iter().any(|v| is_present(v)),
                (CompareOp::Ne, _) => !values
                    .iter()
                    .any(|v| compare(v, CompareOp::Eq, value, exact, is_date)),
                _ => values.iter().any(|v| hit(v)),
            }
        }
        Filter::ValuePath { attr, filter } => {
            let name = attr.attr.as_str();
            match lookup(obj, attr, parent) {
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_object)
                    .any(|e| eval(filter, e, mapping, Some(name))),
                Some(Value::Object(o)) => eval(filter, o, mapping, Some(name)),
                _ => false,
            }
        }
    }
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// The attribute itself (`emails`, `name`) under its schema.
fn lookup<'a>(
    obj: &'a Map<String, Value>,
    path: &AttrPath,
    parent: Option<&str>,
) -> Option<&'a Value> {
    if parent.is_some() {
        return get_ci(obj, &path.attr);
    }
    match &path.schema {
        Some(s) if s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) => {
            match get_ci(obj, ENTERPRISE_USER_SCHEMA) {
                Some(Value::Object(ext)) => get_ci(ext, &path.attr),
                _ => None,
            }
        }
        Some(s) if !s.eq_ignore_ascii_case(USER_SCHEMA) => None,
        _ => get_ci(obj, &path.attr),
    }
}

/// Every value a path names: `emails` and `emails.value` both give each address (RFC 7644
/// §3.4.2.2: a filter on a multi-valued complex attribute compares its `value`).
fn values_at<'a>(
    obj: &'a Map<String, Value>,
    path: &AttrPath,
    parent: Option<&str>,
) -> Vec<&'a Value> {
    let Some(v) = lookup(obj, path, parent) else {
        return Vec::new();
    };
    let sub = path.sub_attr.as_deref();
    match (v, sub) {
        (Value::Array(list), _) => list
            .iter()
            .filter_map(|e| match e {
                Value::Object(o) => get_ci(o, sub.unwrap_or("value")),
                other if sub.is_none() => Some(other),
                _ => None,
            })
            .collect(),
        (Value::Object(o), Some(sub)) => get_ci(o, sub).into_iter().collect(),
        (Value::Object(_), None) => vec![v],
        (_, None) => vec![v],
        (_, Some(_)) => Vec::new(),
    }
}

fn case_exact(mapping: &UserMapping, path: &AttrPath, parent: Option<&str>) -> bool {
    let attr = parent.unwrap_or(&path.attr);
    let sub = if parent.is_some() {
        Some(path.attr.as_str())
    } else {
        path.sub_attr.as_deref()
    };
    if parent.is_none()
        && (path.attr.eq_ignore_ascii_case("id") || path.attr.eq_ignore_ascii_case("meta"))
    {
        return true;
    }
    if let Some(f) = mapping.typed(attr).first() {
        return sub.is_none_or(|s| !s.eq_ignore_ascii_case("type")) && f.case_exact;
    }
    let probe = AttrPath {
        schema: if parent.is_some() {
            None
        } else {
            path.schema.clone()
        },
        attr: attr.to_string(),
        sub_attr: sub.map(str::to_string),
    };
    mapping.lookup(&probe).is_some_and(|f| f.case_exact)
}

fn compare(
    actual: &Value,
    op: CompareOp,
    expected: &CompValue,
    case_exact: bool,
    is_date: bool,
) -> bool {
    match (actual, expected) {
        (Value::String(a), CompValue::Str(e)) if is_date => {
            match (parse_rfc3339(a), parse_rfc3339(e)) {
                (Some(a), Some(e)) => ordered(a.cmp(&e), op),
                _ => false,
            }
        }
        (Value::String(a), CompValue::Str(e)) => {
            let (a, e) = if case_exact {
                (a.clone(), e.clone())
            } else {
                (a.to_lowercase(), e.to_lowercase())
            };
            match op {
                CompareOp::Co => a.contains(&e),
                CompareOp::Sw => a.starts_with(&e),
                CompareOp::Ew => a.ends_with(&e),
                _ => ordered(a.cmp(&e), op),
            }
        }
        (Value::Bool(a), CompValue::Bool(e)) => matches!(op, CompareOp::Eq) && a == e,
        (Value::Number(a), CompValue::Num(e)) => match (a.as_f64(), e.parse::<f64>().ok()) {
            (Some(a), Some(e)) => a.partial_cmp(&e).is_some_and(|o| ordered(o, op)),
            _ => false,
        },
        _ => false,
    }
}

fn ordered(o: std::cmp::Ordering, op: CompareOp) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        CompareOp::Eq => o == Equal,
        CompareOp::Ne => o != Equal,
        CompareOp::Gt => o == Greater,
        CompareOp::Ge => o != Less,
        CompareOp::Lt => o == Less,
        CompareOp::Le => o != Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;
    use crate::scim::mapping::UserMapping;
    use serde_json::json;

    fn mapping() -> UserMapping {
        UserMapping::from_config(Some(&json!([
            {"scim": "externalId", "drupal": "field_external_id"},
            {"scim": "name.givenName", "drupal": "field_given_name"},
            {"scim": "phoneNumbers[type eq \"work\"].value", "drupal": "field_phone"}
        ])))
        .unwrap()
    }

    fn jane() -> Map<String, Value> {
        json!({"id": "7724f730-7aca-4819-aaee-90673a0141a4", "userName": "Jane@Example.com", "externalId": "AbC",
            "active": true, "name": {"givenName": "Jane"}, "emails": [{"value": "j@x.org", "type": "work"}],
            "phoneNumbers": [{"value": "555", "type": "work"}],
            "meta": {"created": "2026-11-28T11:44:27+00:00", "lastModified": "2026-11-28T11:44:27+00:00"}})
        .as_object()
        .unwrap()
        .clone()
    }

    fn check(f: &str) -> bool {
        matches(&parse_filter(f).unwrap(), &jane(), &mapping())
    }

    #[test]
    fn rfc_semantics_with_case_rules() {
        let yes = [
            r#"userName eq "jane@example.com""#,
            r#"userName sw "JANE""#,
            r#"externalId eq "AbC""#,
            r#"emails eq "J@X.ORG""#,
            r#"emails.value co "x.org""#,
            r#"emails[type eq "work" and value ew ".org"]"#,
            r#"emails[type eq "work"].value eq "j@x.org""#,
            r#"name.givenName eq "jane""#,
            r#"active eq true"#,
            r#"title eq null"#,
            r#"title ne "x""#,
            r#"externalId pr and not (active eq false)"#,
            r#"meta.lastModified gt "2026-01-01T00:00:00Z""#,
            r#"meta.created le "2026-11-28T11:44:27Z""#,
            r#"id eq "7724f730-7aca-4819-aaee-90673a0141a4""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "JANE@example.com""#,
            r#"userName eq "x" or phoneNumbers[type eq "work" and value eq "555"]"#,
        ];
        for f in yes {
            assert!(check(f), "{f}");
        }
        let no = [
            r#"externalId eq "abc""#,
            r#"emails[type eq "home"]"#,
            r#"active eq false"#,
            r#"userName ne "JANE@example.com""#,
            r#"title pr"#,
            r#"meta.created gt "2026-11-28T11:44:27Z""#,
            r#"id eq "7724F730-7ACA-4819-AAEE-90673A0141A4""#,
            r#"userName gt "k""#,
        ];
        for f in no {
            assert!(!check(f), "{f}");
        }
    }
}
