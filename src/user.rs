//! The SCIM User resource as the gateway accepts it: request bodies are parsed into a
//! validated `NewUser` before anything is sent to Drupal, so bad input changes nothing.

use crate::discovery::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::error::{ScimError, ScimType};
use serde_json::{Map, Value};

/// Usernames the gateway gives to accounts it retires on DELETE; clients may not use them.
pub const RETIRED_NAME_PREFIX: &str = "scimretired";

/// Drupal fails to hash longer passwords (500 "Failed to hash the User password.").
const MAX_PASSWORD_BYTES: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub user_name: String,
    pub email: Option<String>,
    pub active: bool,
    pub password: Option<String>,
}

/// Parses a request body as a JSON object, with SCIM errors for every way it can be wrong.
pub fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, ScimError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "The request body is empty; a JSON object is required.",
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "The request body must be a JSON object.",
        )),
    }
}

/// Finds a top-level attribute by name, case-insensitively (RFC 7643 §2.1).
pub fn get_attr<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Checks `schemas`: it must list the core User schema; the only other URN accepted is the
/// enterprise extension (whose attributes this gateway does not map and so ignores).
pub fn check_user_schemas(obj: &Map<String, Value>) -> Result<(), ScimError> {
    let list = match get_attr(obj, "schemas") {
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ScimError::invalid_value(
                "`schemas` must be a list of schema URNs.",
            ))
        }
        None => {
            return Err(ScimError::invalid_value(format!(
                "`schemas` is required and must contain `{USER_SCHEMA}`."
            )))
        }
    };
    let mut has_core = false;
    for urn in list {
        let urn = urn
            .as_str()
            .ok_or_else(|| ScimError::invalid_value("`schemas` must contain only strings."))?;
        if urn.eq_ignore_ascii_case(USER_SCHEMA) {
            has_core = true;
        } else if !urn.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) {
            return Err(ScimError::invalid_value(format!(
                "Unknown schema `{urn}` for a User; accepted are `{USER_SCHEMA}` and `{ENTERPRISE_USER_SCHEMA}`."
            )));
        }
    }
    if has_core {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!(
            "`schemas` must contain `{USER_SCHEMA}`."
        )))
    }
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

fn optional_string(name: &str, value: Option<&Value>) -> Result<Option<String>, ScimError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!(
            "`{name}` must be a string."
        ))),
    }
}

/// The address Drupal stores in `mail`: the primary entry, else the first one.
pub fn primary_email(value: Option<&Value>) -> Result<Option<String>, ScimError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ScimError::invalid_value(
                "`emails` must be a list of {\"value\": …} objects.",
            ))
        }
    };
    let mut first: Option<String> = None;
    let mut primary: Option<String> = None;
    for entry in list {
        let obj = entry
            .as_object()
            .ok_or_else(|| ScimError::invalid_value("Each entry of `emails` must be an object."))?;
        let Some(address) = optional_string("emails.value", get_attr(obj, "value"))? else {
            continue;
        };
        let is_primary = match get_attr(obj, "primary") {
            None | Some(Value::Null) => false,
            Some(v) => coerce_bool("emails.primary", v)?,
        };
        if is_primary {
            if primary.is_some() {
                return Err(ScimError::invalid_value(
                    "Only one entry of `emails` may be primary.",
                ));
            }
            primary = Some(address.clone());
        }
        if first.is_none() {
            first = Some(address);
        }
    }
    Ok(primary.or(first))
}

fn check_user_name(user_name: &str) -> Result<(), ScimError> {
    if user_name.trim().is_empty() {
        return Err(ScimError::invalid_value("`userName` must not be empty."));
    }
    let folded = user_name.to_ascii_lowercase();
    if folded.starts_with(RETIRED_NAME_PREFIX) {
        return Err(ScimError::invalid_value(format!(
            "`userName` may not start with `{RETIRED_NAME_PREFIX}`: the gateway reserves it for deleted accounts."
        )));
    }
    Ok(())
}

fn check_password(password: &Option<String>) -> Result<(), ScimError> {
    match password {
        Some(p) if p.len() > MAX_PASSWORD_BYTES => Err(ScimError::invalid_value(format!(
            "`password` is longer than Drupal accepts ({MAX_PASSWORD_BYTES} bytes)."
        ))),
        Some(p) if p.trim().is_empty() => {
            Err(ScimError::invalid_value("`password` must not be empty."))
        }
        _ => Ok(()),
    }
}

/// Validates a `POST /Users` body.
pub fn parse_new_user(body: &[u8]) -> Result<NewUser, ScimError> {
    let obj = parse_json_object(body)?;
    check_user_schemas(&obj)?;
    let user_name = match get_attr(&obj, "userName") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            return Err(ScimError::invalid_value("`userName` is required."))
        }
        Some(_) => return Err(ScimError::invalid_value("`userName` must be a string.")),
    };
    check_user_name(&user_name)?;
    let email = primary_email(get_attr(&obj, "emails"))?;
    let active = match get_attr(&obj, "active") {
        None | Some(Value::Null) => true,
        Some(v) => coerce_bool("active", v)?,
    };
    let password = optional_string("password", get_attr(&obj, "password"))?;
    check_password(&password)?;
    Ok(NewUser {
        user_name,
        email,
        active,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<NewUser, ScimError> {
        parse_new_user(&serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn jumpcloud_create_body_is_accepted() {
        let u = parse(json!({
            "schemas": [USER_SCHEMA],
            "userName": "jane.doe@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe"},
            "displayName": "Jane Doe",
            "emails": [{"value": "other@example.com", "type": "home"}, {"value": "jane.doe@example.com", "type": "work", "primary": true}],
            "active": true
        }))
        .unwrap();
        assert_eq!(u.user_name, "jane.doe@example.com");
        assert_eq!(u.email.as_deref(), Some("jane.doe@example.com"));
        assert!(u.active);
        assert_eq!(u.password, None);
    }

    #[test]
    fn attribute_names_are_case_insensitive_and_strings_coerce_to_booleans() {
        let u = parse(json!({"schemas": [USER_SCHEMA], "USERNAME": "a", "Active": "False", "emails": [{"value": "a@x.org"}]})).unwrap();
        assert_eq!(u.user_name, "a");
        assert!(!u.active);
        assert_eq!(u.email.as_deref(), Some("a@x.org"));
    }

    #[test]
    fn bad_bodies_are_rejected_with_the_right_scim_type() {
        let syntax = [&b""[..], b"  ", b"{", b"[1]", b"\"x\""];
        for body in syntax {
            let e = parse_new_user(body).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidSyntax)),
                "{body:?}"
            );
        }
        let values = [
            json!({"userName": "a"}),
            json!({"schemas": [USER_SCHEMA, "urn:example:unknown"], "userName": "a"}),
            json!({"schemas": "x", "userName": "a"}),
            json!({"schemas": [USER_SCHEMA]}),
            json!({"schemas": [USER_SCHEMA], "userName": 5}),
            json!({"schemas": [USER_SCHEMA], "userName": " "}),
            json!({"schemas": [USER_SCHEMA], "userName": "ScimRetiredX"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "active": "yes"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "emails": "a@b.c"}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "emails": [{"value": 1}]}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "emails": [{"value": "a@b", "primary": true}, {"value": "c@d", "primary": true}]}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "password": "x".repeat(513)}),
            json!({"schemas": [USER_SCHEMA], "userName": "a", "password": 12}),
        ];
        for v in values {
            let e = parse(v.clone()).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidValue)),
                "{v}"
            );
        }
    }

    #[test]
    fn enterprise_extension_and_unmapped_attributes_are_ignored() {
        let u = parse(json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "userName": "a", "externalId": "x", "nickName": 3,
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "1"}
        }));
        assert!(u.is_ok());
    }
}
