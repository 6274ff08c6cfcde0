//! Discovery endpoints (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`.
//! They advertise exactly what the gateway maps onto Drupal, nothing Drupal cannot store,
//! because clients (and scim2-tester) generate values for every advertised attribute.

use crate::error::ScimError;
use serde_json::{json, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The largest `count` a list request is served with; larger requests are clamped.
pub const MAX_RESULTS: usize = 1000;

pub fn service_provider_config(base_url: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": false},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": true},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A static bearer token whose SHA-256 digest is in the gateway's configuration.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig")
        }
    })
}

fn user_resource_type(base_url: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "Drupal user accounts",
        "schema": USER_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/User")}
    })
}

fn attribute(name: &str, kind: &str, extra: Value) -> Value {
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

fn user_schema(base_url: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User account (Drupal user--user)",
        "attributes": [
            attribute("userName", "string", json!({
                "description": "Drupal's username (`name`): unique, case-insensitive, at most 60 characters.",
                "required": true, "uniqueness": "server"})),
            attribute("emails", "complex", json!({
                "description": "Drupal stores one address (`mail`): the primary one, else the first.",
                "multiValued": true,
                "subAttributes": [attribute("value", "string", json!({"description": "The address."}))]})),
            attribute("active", "boolean", json!({
                "description": "Drupal's `status`: false means the account is blocked."})),
            attribute("password", "string", json!({
                "description": "Sets the Drupal password; never returned.",
                "mutability": "writeOnly", "returned": "never", "caseExact": true})),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base_url}/Schemas/{USER_SCHEMA}")}
    })
}

pub fn list_response(resources: Vec<Value>, total: usize, start_index: usize) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources
    })
}

pub fn resource_types(base_url: &str) -> Value {
    list_response(vec![user_resource_type(base_url)], 1, 1)
}

pub fn resource_type(base_url: &str, id: &str) -> Result<Value, ScimError> {
    if id.eq_ignore_ascii_case("User") {
        Ok(user_resource_type(base_url))
    } else {
        Err(ScimError::not_found(format!(
            "There is no resource type `{id}`; this server has `User`."
        )))
    }
}

pub fn schemas(base_url: &str) -> Value {
    list_response(vec![user_schema(base_url)], 1, 1)
}

pub fn schema(base_url: &str, id: &str) -> Result<Value, ScimError> {
    if id.eq_ignore_ascii_case(USER_SCHEMA) {
        Ok(user_schema(base_url))
    } else {
        Err(ScimError::not_found(format!(
            "There is no schema `{id}`; this server has `{USER_SCHEMA}`."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_schema_advertises_only_mapped_attributes() {
        let s = schema("http://x/scim/v2", USER_SCHEMA).unwrap();
        let names: Vec<&str> = s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["userName", "emails", "active", "password"]);
        assert_eq!(s["attributes"][3]["returned"], "never");
        assert_eq!(
            s["meta"]["location"],
            format!("http://x/scim/v2/Schemas/{USER_SCHEMA}")
        );
    }

    #[test]
    fn lookups_are_case_insensitive_and_unknowns_are_404() {
        assert!(resource_type("b", "user").is_ok());
        assert_eq!(resource_type("b", "Group").unwrap_err().status, 404);
        assert_eq!(schema("b", "urn:nope").unwrap_err().status, 404);
    }
}
