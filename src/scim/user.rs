//! The SCIM User resource as the gateway accepts it: request bodies are parsed into a
//! validated `NewUser` before anything is sent to Drupal, so bad input changes nothing.

use crate::scim::error::{ScimError, ScimType};
use crate::scim::mapping::UserMapping;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use serde_json::{Map, Value};

/// Usernames the gateway gives to accounts it retires on DELETE; clients may not use them.
pub const RETIRED_NAME_PREFIX: &str = "scimretired";

/// Drupal's longest username (characters) and e-mail address (bytes, RFC 5321).
const MAX_USERNAME_CHARS: usize = 60;
const MAX_MAIL_BYTES: usize = 254;

/// Checks an address before Drupal sees it (Drupal validates the syntax itself).
pub fn check_mail(mail: &str) -> Result<(), ScimError> {
    if mail.len() > MAX_MAIL_BYTES {
        return Err(ScimError::invalid_value(format!(
            "`emails` value is longer than {MAX_MAIL_BYTES} bytes."
        )));
    }
    if mail.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(
            "`emails` value must not contain control characters.",
        ));
    }
    Ok(())
}

/// Drupal fails to hash longer passwords (500 "Failed to hash the User password.").
const MAX_PASSWORD_BYTES: usize = 512;

/// The Drupal side of a validated User body.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWrite {
    /// Drupal field values (`Value::Null` clears a field).
    pub fields: Map<String, Value>,
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

pub use crate::scim::values::get_ci as get_attr;

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
        // Entra has been seen to send the enterprise URN without its last colon.
        let squeezed = |s: &str| s.replace(':', "").to_ascii_lowercase();
        if urn.eq_ignore_ascii_case(USER_SCHEMA) {
            has_core = true;
        } else if squeezed(urn) != squeezed(ENTERPRISE_USER_SCHEMA) {
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

pub fn check_user_name(user_name: &str) -> Result<(), ScimError> {
    if user_name.trim().is_empty() {
        return Err(ScimError::invalid_value("`userName` must not be empty."));
    }
    // Drupal's limit (UserInterface::USERNAME_MAX_LENGTH): refused here, without a Drupal call.
    if user_name.chars().count() > MAX_USERNAME_CHARS {
        return Err(ScimError::invalid_value(format!(
            "`userName` is longer than Drupal's {MAX_USERNAME_CHARS} characters."
        )));
    }
    if user_name.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(
            "`userName` must not contain control characters.",
        ));
    }
    if may_collate_as_retired(user_name) {
        return Err(ScimError::invalid_value(format!(
            "`userName` may not start with `{RETIRED_NAME_PREFIX}` (in any case, or with accented letters): the gateway reserves it for deleted accounts."
        )));
    }
    Ok(())
}

/// Whether a database collation could sort `name` among the retired accounts, which lists
/// leave out by a name range: MariaDB's `utf8mb4_general_ci` equates `ï` with `i`, SQLite's
/// NOCASE_UTF8 `ſ` with `s`. Any non-ASCII character in the prefix's places counts as a
/// possible equal, so no collation can hide an account SCIM created.
pub fn may_collate_as_retired(name: &str) -> bool {
    let mut chars = name.chars();
    RETIRED_NAME_PREFIX.chars().all(|p| {
        chars
            .next()
            .is_some_and(|c| !c.is_ascii() || c.eq_ignore_ascii_case(&p))
    })
}

pub fn check_password(password: &Option<String>) -> Result<(), ScimError> {
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

/// Fields Drupal cannot clear: a user keeps its status, and an address once set, when a
/// replacing PUT leaves them out.
const NOT_CLEARED_BY_PUT: &[&str] = &["status", "mail"];

/// Validates a `POST /Users` body (`replace` false) or a `PUT /Users/{id}` body (`replace`
/// true: mapped attributes left out are cleared where Drupal allows it).
pub fn parse_user_body(
    body: &[u8],
    mapping: &UserMapping,
    replace: bool,
) -> Result<UserWrite, ScimError> {
    let obj = parse_json_object(body)?;
    check_user_schemas(&obj)?;
    let mut fields = mapping.from_scim(&obj)?;
    match fields.get("name") {
        Some(Value::String(name)) => check_user_name(name)?,
        _ => return Err(ScimError::invalid_value("`userName` is required.")),
    }
    if let Some(Value::String(mail)) = fields.get("mail") {
        check_mail(mail)?;
    }
    let password = match get_attr(&obj, "password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(ScimError::invalid_value("`password` must be a string.")),
    };
    check_password(&password)?;
    if replace {
        for field in mapping.drupal_fields() {
            if !fields.contains_key(field) && !NOT_CLEARED_BY_PUT.contains(&field) {
                fields.insert(field.to_string(), Value::Null);
            }
        }
        // Drupal keeps an address once set: an empty or null `emails` leaves it unchanged.
        for keep in NOT_CLEARED_BY_PUT {
            if fields.get(*keep).is_some_and(Value::is_null) {
                fields.remove(*keep);
            }
        }
    } else {
        // Drupal creates blocked accounts unless `status` is sent.
        if fields.get("status").is_none_or(Value::is_null) {
            fields.insert("status".into(), Value::Bool(true));
        }
        fields.retain(|_, v| !v.is_null());
    }
    Ok(UserWrite { fields, password })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> UserMapping {
        UserMapping::from_config(Some(
            &json!([{"scim": "name.givenName", "drupal": "field_given_name"}]),
        ))
        .unwrap()
    }

    fn create(v: Value) -> Result<UserWrite, ScimError> {
        parse_user_body(&serde_json::to_vec(&v).unwrap(), &mapping(), false)
    }

    #[test]
    fn jumpcloud_create_body_is_accepted() {
        let u = create(json!({
            "schemas": [USER_SCHEMA],
            "userName": "jane.doe@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe"},
            "displayName": "Jane Doe",
            "emails": [{"value": "other@example.com", "type": "home"}, {"value": "jane.doe@example.com", "type": "work", "primary": true}],
            "active": true
        }))
        .unwrap();
        assert_eq!(
            Value::Object(u.fields),
            json!({"name": "jane.doe@example.com", "mail": "jane.doe@example.com", "status": true, "field_given_name": "Jane"})
        );
        assert_eq!(u.password, None);
    }

    #[test]
    fn attribute_names_are_case_insensitive_and_strings_coerce_to_booleans() {
        let u = create(json!({"schemas": [USER_SCHEMA], "USERNAME": "a", "Active": "False", "emails": [{"value": "a@x.org"}], "password": "pw"})).unwrap();
        assert_eq!(
            Value::Object(u.fields),
            json!({"name": "a", "mail": "a@x.org", "status": false})
        );
        assert_eq!(u.password.as_deref(), Some("pw"));
    }

    #[test]
    fn put_clears_what_it_leaves_out_where_drupal_allows_it() {
        let body = serde_json::to_vec(&json!({"schemas": [USER_SCHEMA], "userName": "a", "id": "ignored", "meta": {}, "groups": []})).unwrap();
        let u = parse_user_body(&body, &mapping(), true).unwrap();
        assert_eq!(
            Value::Object(u.fields),
            json!({"name": "a", "field_given_name": null})
        );
    }

    #[test]
    fn the_retired_prefix_is_reserved_under_any_collation() {
        for n in [
            "scimretired1",
            "SCIMRetiredX",
            "scïmretired",
            "ſcimretiredabc",
            "scimretired",
        ] {
            assert!(may_collate_as_retired(n), "{n}");
        }
        for n in ["scimretire", "scim-retired", "jose", "scimretirex1", ""] {
            assert!(!may_collate_as_retired(n), "{n}");
        }
    }

    #[test]
    fn bad_bodies_are_rejected_with_the_right_scim_type() {
        let syntax = [&b""[..], b"  ", b"{", b"[1]", b"\"x\""];
        for body in syntax {
            let e = parse_user_body(body, &mapping(), false).unwrap_err();
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
            json!({"schemas": [USER_SCHEMA], "userName": "a", "name": "Jane"}),
        ];
        for v in values {
            let e = create(v.clone()).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidValue)),
                "{v}"
            );
        }
    }

    #[test]
    fn enterprise_extension_and_unmapped_attributes_are_ignored() {
        let u = create(json!({
            "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
            "userName": "a", "externalId": "x", "nickName": 3,
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "1"}
        }));
        assert!(u.is_ok());
    }
}
