//! Whether a JSON:API answer shows a user by label only, read without building the document:
//! the basic-mode gate asks it of every successful read, whose body the exchange parses in
//! full afterwards anyway.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// `reads_as_anonymous`: `data` (one resource or a list) holds a label-only user
/// (`jsonapi::is_label_only`). Anything that is not JSON is not.
pub(crate) fn label_only_in(body: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = Scan(Level::Document).deserialize(&mut de);
    // Trailing garbage makes it no JSON document, as `from_slice` would say.
    matches!((found, de.end()), (Ok(true), Ok(())))
}

#[derive(Clone, Copy)]
enum Level {
    /// The top-level object: its `data`.
    Document,
    /// `data`: a resource object, or an array of them.
    Data,
    /// One resource object: its `attributes`.
    Resource,
    /// A resource's attributes: label only.
    Attributes,
    /// `display_name`: Drupal's label for the anonymous user.
    Label,
}

/// Which member of an object this is, without allocating its name.
enum Key {
    Data,
    Attributes,
    Name,
    DisplayName,
    Other,
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "data" => Key::Data,
            "attributes" => Key::Attributes,
            "name" => Key::Name,
            "display_name" => Key::DisplayName,
            _ => Key::Other,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

/// What one value says at its level: for `Attributes` and `Resource`/`Data`/`Document`,
/// "label only"; for `Label`, "is the anonymous label".
struct Scan(Level);

impl<'de> DeserializeSeed<'de> for Scan {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(matches!(self.0, Level::Label) && v == crate::drupal::jsonapi::ANONYMOUS_LABEL)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut any = false;
        if matches!(self.0, Level::Data) {
            while let Some(found) = seq.next_element_seed(Scan(Level::Resource))? {
                any |= found;
            }
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(any)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        // The last of duplicate members counts, as in a parsed document.
        let (mut found, mut name, mut label, mut anonymous) = (false, false, false, false);
        while let Some(key) = map.next_key::<Key>()? {
            match (self.0, key) {
                (Level::Document, Key::Data) => found = map.next_value_seed(Scan(Level::Data))?,
                (Level::Data | Level::Resource, Key::Attributes) => {
                    found = map.next_value_seed(Scan(Level::Attributes))?
                }
                (Level::Attributes, Key::Name) => {
                    map.next_value::<IgnoredAny>()?;
                    name = true;
                }
                (Level::Attributes, Key::DisplayName) => {
                    anonymous = map.next_value_seed(Scan(Level::Label))?;
                    label = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match self.0 {
            Level::Attributes => !name && label && !anonymous,
            Level::Label => false,
            _ => found,
        })
    }
}
