//! An ordered JSON value for responses, written the way PHP's `json_encode` does with Drupal's flags
//! (`JSON_HEX_TAG | JSON_HEX_APOS | JSON_HEX_AMP | JSON_HEX_QUOT`, no unescaped slashes or unicode).
//! Key order matters for readability of the wire format (Drupal's attribute order), so objects are
//! vectors of pairs rather than maps.

#[derive(Clone, Debug, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn obj() -> J {
        J::Obj(Vec::new())
    }

    /// Builder: appends a member (only valid on objects).
    pub fn with(mut self, key: &str, value: impl Into<J>) -> J {
        if let J::Obj(ref mut v) = self {
            v.push((key.to_string(), value.into()));
        }
        self
    }

    pub fn push(&mut self, key: &str, value: impl Into<J>) {
        if let J::Obj(ref mut v) = self {
            v.push((key.to_string(), value.into()));
        }
    }

    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(v) => v.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn is_empty_obj(&self) -> bool {
        matches!(self, J::Obj(v) if v.is_empty())
    }

    pub fn to_php_json(&self) -> String {
        let mut out = String::with_capacity(512);
        write_value(self, &mut out, true);
        out
    }

    /// Ordinary JSON (only `"`, `\\` and control characters escaped).
    pub fn to_plain_json(&self) -> String {
        let mut out = String::with_capacity(512);
        write_value(self, &mut out, false);
        out
    }

    /// Converts a serde_json value (used for echoing request data such as relationship meta).
    pub fn from_value(v: &serde_json::Value) -> J {
        match v {
            serde_json::Value::Null => J::Null,
            serde_json::Value::Bool(b) => J::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => J::Int(i),
                None => J::Str(n.to_string()),
            },
            serde_json::Value::String(s) => J::Str(s.clone()),
            serde_json::Value::Array(a) => J::Arr(a.iter().map(J::from_value).collect()),
            serde_json::Value::Object(o) => J::Obj(
                o.iter()
                    .map(|(k, v)| (k.clone(), J::from_value(v)))
                    .collect(),
            ),
        }
    }
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Str(s.to_string())
    }
}
impl From<String> for J {
    fn from(s: String) -> J {
        J::Str(s)
    }
}
impl From<&String> for J {
    fn from(s: &String) -> J {
        J::Str(s.clone())
    }
}
impl From<bool> for J {
    fn from(b: bool) -> J {
        J::Bool(b)
    }
}
impl From<i64> for J {
    fn from(i: i64) -> J {
        J::Int(i)
    }
}
impl From<u64> for J {
    fn from(i: u64) -> J {
        J::Int(i as i64)
    }
}
impl From<Option<String>> for J {
    fn from(o: Option<String>) -> J {
        match o {
            Some(s) => J::Str(s),
            None => J::Null,
        }
    }
}
impl From<Vec<J>> for J {
    fn from(v: Vec<J>) -> J {
        J::Arr(v)
    }
}

fn write_value(v: &J, out: &mut String, php: bool) {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(true) => out.push_str("true"),
        J::Bool(false) => out.push_str("false"),
        J::Int(i) => out.push_str(&i.to_string()),
        J::Str(s) => {
            if php {
                write_str(s, out)
            } else {
                write_plain_str(s, out)
            }
        }
        J::Arr(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(x, out, php);
            }
            out.push(']');
        }
        J::Obj(o) => {
            // PHP encodes an empty array as [] (Drupal's "dependencies": [] for example); an empty
            // object written by us is always a PHP array too.
            if o.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if php {
                    write_str(k, out);
                } else {
                    write_plain_str(k, out);
                }
                out.push(':');
                write_value(x, out, php);
            }
            out.push('}');
        }
    }
}

fn write_plain_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// PHP json_encode string escaping with JSON_HEX_TAG|APOS|AMP|QUOT.
pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\u0022"),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\'' => out.push_str("\\u0027"),
            '&' => out.push_str("\\u0026"),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_escaping() {
        let v = J::obj()
            .with("a", "Zoë/<x>&'\"")
            .with("b", J::Arr(vec![]))
            .with("c", J::obj());
        assert_eq!(
            v.to_php_json(),
            r#"{"a":"Zo\u00eb\/\u003Cx\u003E\u0026\u0027\u0022","b":[],"c":[]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&v.to_php_json()).unwrap();
        assert_eq!(parsed["a"], "Zoë/<x>&'\"");
    }

    #[test]
    fn astral_plane_uses_surrogates() {
        assert_eq!(J::Str("😀".into()).to_php_json(), r#""\ud83d\ude00""#);
    }
}

/// The member names of the JSON object found at `path` inside `raw`, in document order
/// (serde_json's map sorts keys; PHP walks them in the order they were sent).
pub fn key_order(raw: &[u8], path: &[&str]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Ordered>(raw) else {
        return Vec::new();
    };
    let mut cur = &v;
    for p in path {
        match cur {
            Ordered::Obj(members) => match members.iter().find(|(k, _)| k == p) {
                Some((_, next)) => cur = next,
                None => return Vec::new(),
            },
            Ordered::Other => return Vec::new(),
        }
    }
    match cur {
        Ordered::Obj(members) => {
            let mut out: Vec<String> = Vec::new();
            for (k, _) in members {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
            out
        }
        Ordered::Other => Vec::new(),
    }
}

enum Ordered {
    Obj(Vec<(String, Ordered)>),
    Other,
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Ordered>()? {
                    out.push((k, v));
                }
                Ok(Ordered::Obj(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Ordered, A::Error> {
                while s.next_element::<Ordered>()?.is_some() {}
                Ok(Ordered::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_none<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod order_tests {
    #[test]
    fn keeps_document_order() {
        let raw = br#"{"data":{"attributes":{"name":"x","mail":"y","a":[1,{"b":2}]}},"z":1}"#;
        assert_eq!(
            super::key_order(raw, &["data", "attributes"]),
            vec!["name", "mail", "a"]
        );
        assert_eq!(super::key_order(raw, &[]), vec!["data", "z"]);
    }
}

/// Order-preserving parse into `J` (numbers that are not i64 become their decimal text).
pub fn parse_ordered(raw: &[u8]) -> Option<J> {
    serde_json::from_slice::<J>(raw).ok()
}

impl<'de> serde::Deserialize<'de> for J {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = J;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<J, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, J>()? {
                    out.push((k, v));
                }
                Ok(J::Obj(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<J, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = s.next_element::<J>()? {
                    out.push(x);
                }
                Ok(J::Arr(out))
            }
            fn visit_bool<E>(self, b: bool) -> Result<J, E> {
                Ok(J::Bool(b))
            }
            fn visit_i64<E>(self, i: i64) -> Result<J, E> {
                Ok(J::Int(i))
            }
            fn visit_u64<E>(self, i: u64) -> Result<J, E> {
                Ok(i64::try_from(i)
                    .map(J::Int)
                    .unwrap_or(J::Str(i.to_string())))
            }
            fn visit_f64<E>(self, f: f64) -> Result<J, E> {
                Ok(J::Str(f.to_string()))
            }
            fn visit_str<E>(self, s: &str) -> Result<J, E> {
                Ok(J::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<J, E> {
                Ok(J::Str(s))
            }
            fn visit_unit<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
            fn visit_none<E>(self) -> Result<J, E> {
                Ok(J::Null)
            }
        }
        d.deserialize_any(V)
    }
}
