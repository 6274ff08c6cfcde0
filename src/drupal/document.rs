//! Reads a JSON:API document into a `Value` without what no flow reads: the `links` of every
//! resource and relationship (a Drupal user carries five URLs, half its bytes) and the
//! top-level `jsonapi` member. Each dropped member is skipped by the parser, never built
//! (allocations are most of what a read costs in V8). The document's own `links` stay: the
//! pager reads `links.next`.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// `serde_json::from_slice`, less the members above.
pub(crate) fn parse(body: &[u8]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Pruned(Level::Document).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

#[derive(Clone, Copy)]
enum Level {
    /// The top-level object.
    Document,
    /// `data` or `included`: a resource object, or an array of them.
    Resources,
    /// A resource's `relationships`: an object of relationship objects.
    Relationships,
    /// One relationship: its `data` is kept, its `links` not.
    Relationship,
}

impl Level {
    /// What a member of an object at this level is read as; `None`: skipped.
    fn member(self, key: &str) -> Option<Option<Level>> {
        match (self, key) {
            (Level::Document, "data" | "included") => Some(Some(Level::Resources)),
            (Level::Document, "jsonapi") => None,
            (Level::Resources, "relationships") => Some(Some(Level::Relationships)),
            (Level::Resources | Level::Relationship, "links") => None,
            (Level::Relationships, _) => Some(Some(Level::Relationship)),
            _ => Some(None),
        }
    }
}

/// A value at `Level`; anything not shaped as the level expects is read in full.
struct Pruned(Level);

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(PrunedVisitor(self.0))
    }
}

struct PrunedVisitor(Level);

impl<'de> Visitor<'de> for PrunedVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        // Only `data`/`included` lists hold resources; any other array is plain JSON.
        match self.0 {
            Level::Resources => {
                while let Some(item) = seq.next_element_seed(Pruned(Level::Resources))? {
                    items.push(item);
                }
            }
            _ => {
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
            }
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.0.member(&key) {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(Some(level)) => {
                    let value = map.next_value_seed(Pruned(level))?;
                    out.insert(key, value);
                }
                Some(None) => {
                    let value = map.next_value::<Value>()?;
                    out.insert(key, value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_and_relationship_links_are_left_out_the_rest_is_kept() {
        let doc = json!({
            "jsonapi": {"version": "1.0", "meta": {"links": {"self": {"href": "x"}}}},
            "data": [{
                "type": "user--user", "id": "u",
                "links": {"self": {"href": "http://d/u"}},
                "attributes": {"name": "a", "links": "an attribute named links", "n": [1, 2.5, null]},
                "relationships": {"roles": {
                    "data": [{"type": "user_role--user_role", "id": "r", "meta": {"drupal_internal__target_id": "editor"}}],
                    "links": {"related": {"href": "http://d/u/roles"}}
                }}
            }],
            "included": {"type": "t", "id": "i", "links": {}, "attributes": {"x": true}},
            "links": {"next": {"href": "http://d/next"}},
            "meta": {"count": 3}
        });
        let parsed = parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
        let mut expected = doc.clone();
        let e = expected.as_object_mut().unwrap();
        e.remove("jsonapi");
        e["data"][0].as_object_mut().unwrap().remove("links");
        e["data"][0]["relationships"]["roles"]
            .as_object_mut()
            .unwrap()
            .remove("links");
        e["included"].as_object_mut().unwrap().remove("links");
        assert_eq!(parsed, expected);
        assert_eq!(parsed["links"]["next"]["href"], "http://d/next");
    }

    #[test]
    fn anything_else_reads_as_serde_json_does() {
        for body in [
            &br#"{"errors":[{"detail":"x","links":{"via":1}}]}"#[..],
            b"[1,2,{\"links\":1}]",
            b"null",
            b"\"s\"",
            b"{\"data\":null}",
            b"{\"data\":[1,\"x\"]}",
            b"-12.5e3",
        ] {
            assert_eq!(
                parse(body).unwrap(),
                serde_json::from_slice::<Value>(body).unwrap()
            );
        }
        for bad in [&b"{"[..], b"{} x", b"", b"{\"a\":}"] {
            assert!(parse(bad).is_err());
        }
    }
}
