//! Reading JSON values the way SCIM clients send them: attribute names in any case
//! (RFC 7643 §2.1) and booleans as JSON or as strings.

use crate::scim::error::ScimError;
use serde_json::{Map, Value};

/// Finds a key case-insensitively (RFC 7643 §2.1: attribute names are case-insensitive).
pub fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Accepts JSON booleans and the strings "true"/"false" in any case (Entra sends "False").
pub fn coerce_bool(name: &str, value: &Value) -> Result<bool, ScimError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!(
            "`{name}` must be a boolean."
        ))),
    }
}
