//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5): which attributes a response
//! carries. Applied to the finished SCIM resource, so every read path (by id, list,
//! `.search`, and the answers to writes) honours them the same way.

use crate::scim::error::ScimError;
use crate::scim::filter::{parse_attr_path, AttrPath};
use crate::scim::schema::ENTERPRISE_USER_SCHEMA;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    attributes: Vec<AttrPath>,
    excluded: Vec<AttrPath>,
}

/// Attributes returned whatever is asked (`returned: always`).
const ALWAYS: &[&str] = &["id", "schemas"];

impl Projection {
    /// From comma-separated query parameter values.
    pub fn from_query(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
        };
        Self::from_lists(&split(attributes), &split(excluded))
    }

    pub fn from_lists(attributes: &[String], excluded: &[String]) -> Result<Self, ScimError> {
        let parse = |list: &[String], name: &str| -> Result<Vec<AttrPath>, ScimError> {
            list.iter()
                .map(|p| {
                    parse_attr_path(p).map_err(|e| {
                        ScimError::invalid_value(format!(
                            "`{name}`: `{p}` is not an attribute path: {e}."
                        ))
                    })
                })
                .collect()
        };
        let attributes = parse(attributes, "attributes")?;
        let excluded = parse(excluded, "excludedAttributes")?;
        Ok(Projection {
            attributes,
            excluded,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Whether a top-level attribute (by name, or an extension URN) will be in responses;
    /// lets callers skip work for attributes nobody asked for.
    pub fn wants(&self, attr: &str) -> bool {
        let whole = |p: &AttrPath| {
            if p.is_bare_schema() {
                p.schema
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(attr))
            } else {
                p.schema.is_none() && p.attr.eq_ignore_ascii_case(attr)
            }
        };
        if !self.attributes.is_empty() {
            let within = |p: &AttrPath| {
                p.schema
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(attr))
            };
            return self.attributes.iter().any(|p| whole(p) || within(p));
        }
        !self
            .excluded
            .iter()
            .any(|p| whole(p) && p.sub_attr.is_none())
    }

    pub fn apply(&self, resource: &mut Map<String, Value>) {
        if !self.attributes.is_empty() {
            let mut kept = Map::new();
            for (k, v) in resource.iter() {
                if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(k)) {
                    kept.insert(k.clone(), v.clone());
                    continue;
                }
                if let Some(v) = select(k, v, &self.attributes) {
                    kept.insert(k.clone(), v);
                }
            }
            *resource = kept;
        }
        for p in &self.excluded {
            exclude(resource, p);
        }
    }
}

fn is_extension_key(key: &str) -> bool {
    key.to_ascii_lowercase().starts_with("urn:")
}

/// The part of attribute `key` (value `v`) that the requested paths name, if any.
fn select(key: &str, v: &Value, paths: &[AttrPath]) -> Option<Value> {
    if is_extension_key(key) {
        let Value::Object(ext) = v else { return None };
        if paths.iter().any(|p| {
            p.is_bare_schema()
                && p.schema
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(key))
        }) {
            return Some(v.clone());
        }
        let inner: Vec<AttrPath> = paths
            .iter()
            .filter(|p| {
                p.schema
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(key))
                    && !p.is_bare_schema()
            })
            .map(|p| AttrPath {
                schema: None,
                ..p.clone()
            })
            .collect();
        let mut out = Map::new();
        for (k, v) in ext {
            if let Some(v) = select(k, v, &inner) {
                out.insert(k.clone(), v);
            }
        }
        return if out.is_empty() {
            None
        } else {
            Some(Value::Object(out))
        };
    }
    let relevant: Vec<&AttrPath> = paths
        .iter()
        .filter(|p| {
            p.attr.eq_ignore_ascii_case(key)
                && p.schema
                    .as_deref()
                    .is_none_or(|s| !s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA))
        })
        .collect();
    if relevant.is_empty() {
        return None;
    }
    if relevant.iter().any(|p| p.sub_attr.is_none()) {
        return Some(v.clone());
    }
    let subs: Vec<&str> = relevant
        .iter()
        .filter_map(|p| p.sub_attr.as_deref())
        .collect();
    let keep = |o: &Map<String, Value>| -> Map<String, Value> {
        o.iter()
            .filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    match v {
        Value::Object(o) => Some(Value::Object(keep(o))),
        Value::Array(list) => Some(Value::Array(
            list.iter()
                .filter_map(Value::as_object)
                .map(|o| Value::Object(keep(o)))
                .filter(|o| o.as_object().is_some_and(|m| !m.is_empty()))
                .collect(),
        )),
        _ => None,
    }
}

fn exclude(resource: &mut Map<String, Value>, p: &AttrPath) {
    let in_ext = p
        .schema
        .as_deref()
        .filter(|s| s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA));
    if p.is_bare_schema() {
        if let Some(s) = &p.schema {
            resource.retain(|k, _| !k.eq_ignore_ascii_case(s));
        }
        return;
    }
    let target: &mut Map<String, Value> = match in_ext {
        Some(urn) => match resource
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(urn))
            .map(|(_, v)| v)
        {
            Some(Value::Object(ext)) => ext,
            _ => return,
        },
        None => resource,
    };
    if in_ext.is_none() && ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&p.attr)) {
        return;
    }
    match &p.sub_attr {
        None => target.retain(|k, _| !k.eq_ignore_ascii_case(&p.attr)),
        Some(sub) => {
            if let Some((_, v)) = target
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(&p.attr))
            {
                match v {
                    Value::Object(o) => o.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
                    Value::Array(list) => {
                        for e in list.iter_mut() {
                            if let Value::Object(o) = e {
                                o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Map<String, Value> {
        json!({"schemas": ["s"], "id": "1", "userName": "jane", "name": {"givenName": "J", "familyName": "D"},
            "emails": [{"value": "j@x.org", "type": "work"}], "active": true,
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "7", "department": "R&D"},
            "meta": {"resourceType": "User"}})
        .as_object()
        .unwrap()
        .clone()
    }

    fn project(a: Option<&str>, e: Option<&str>) -> Value {
        let mut u = user();
        Projection::from_query(a, e).unwrap().apply(&mut u);
        Value::Object(u)
    }

    #[test]
    fn attributes_keep_only_what_is_named_plus_id_and_schemas() {
        assert_eq!(
            project(Some("userName,name.givenName"), None),
            json!({"schemas": ["s"], "id": "1", "userName": "jane", "name": {"givenName": "J"}})
        );
        assert_eq!(
            project(Some("EMAILS.value"), None),
            json!({"schemas": ["s"], "id": "1", "emails": [{"value": "j@x.org"}]})
        );
        assert_eq!(
            project(
                Some(&format!("{ENTERPRISE_USER_SCHEMA}:department,meta")),
                None
            ),
            json!({"schemas": ["s"], "id": "1", ENTERPRISE_USER_SCHEMA: {"department": "R&D"}, "meta": {"resourceType": "User"}})
        );
    }

    #[test]
    fn excluded_attributes_drop_what_is_named_but_never_id() {
        let v = project(None, Some("emails,name.familyName,id,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"));
        assert!(v.get("emails").is_none());
        assert_eq!(v["name"], json!({"givenName": "J"}));
        assert_eq!(v["id"], "1");
        assert_eq!(v[ENTERPRISE_USER_SCHEMA], json!({"department": "R&D"}));
        let v = project(None, Some(ENTERPRISE_USER_SCHEMA));
        assert!(v.get(ENTERPRISE_USER_SCHEMA).is_none());
    }

    #[test]
    fn wants_tells_callers_what_they_may_skip() {
        let p = Projection::from_query(None, Some("members")).unwrap();
        assert!(!p.wants("members") && p.wants("displayName"));
        let p = Projection::from_query(Some("displayName"), None).unwrap();
        assert!(!p.wants("members") && p.wants("displayName"));
        assert!(Projection::default().wants("members"));
        assert!(Projection::from_query(Some("a b"), None).is_err());
    }
}
