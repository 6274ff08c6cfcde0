//! Discovery endpoints (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`.
//! They advertise exactly what the gateway maps onto Drupal, nothing Drupal cannot store,
//! because clients (and scim2-tester) generate values for every advertised attribute.

use crate::error::ScimError;
use crate::mapping::UserMapping;
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
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
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

fn user_resource_type(base_url: &str, mapping: &UserMapping) -> Value {
    let mut rt = json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "Drupal user accounts",
        "schema": USER_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/User")}
    });
    if mapping.has_extension() {
        if let Some(o) = rt.as_object_mut() {
            o.insert(
                "schemaExtensions".into(),
                json!([{"schema": ENTERPRISE_USER_SCHEMA, "required": false}]),
            );
        }
    }
    rt
}

fn schema_document(
    base_url: &str,
    id: &str,
    name: &str,
    description: &str,
    attributes: Vec<Value>,
) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base_url}/Schemas/{id}")}
    })
}

fn all_schemas(base_url: &str, mapping: &UserMapping) -> Vec<Value> {
    let (core, ext) = mapping.schema_attributes();
    let mut out = vec![schema_document(
        base_url,
        USER_SCHEMA,
        "User",
        "User account (Drupal user--user)",
        core,
    )];
    if !ext.is_empty() {
        out.push(schema_document(
            base_url,
            ENTERPRISE_USER_SCHEMA,
            "EnterpriseUser",
            "Enterprise user attributes stored in Drupal user fields",
            ext,
        ));
    }
    out
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

pub fn resource_types(base_url: &str, mapping: &UserMapping) -> Value {
    list_response(vec![user_resource_type(base_url, mapping)], 1, 1)
}

pub fn resource_type(base_url: &str, mapping: &UserMapping, id: &str) -> Result<Value, ScimError> {
    if id.eq_ignore_ascii_case("User") {
        Ok(user_resource_type(base_url, mapping))
    } else {
        Err(ScimError::not_found(format!(
            "There is no resource type `{id}`; this server has `User`."
        )))
    }
}

pub fn schemas(base_url: &str, mapping: &UserMapping) -> Value {
    let all = all_schemas(base_url, mapping);
    let n = all.len();
    list_response(all, n, 1)
}

pub fn schema(base_url: &str, mapping: &UserMapping, id: &str) -> Result<Value, ScimError> {
    all_schemas(base_url, mapping)
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(id)))
        .ok_or_else(|| ScimError::not_found(format!("There is no schema `{id}`; see /Schemas.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_mapping_advertises_only_mapped_attributes() {
        let s = schema("http://x/scim/v2", &UserMapping::core(), USER_SCHEMA).unwrap();
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
        assert!(schema("b", &UserMapping::core(), ENTERPRISE_USER_SCHEMA).is_err());
    }

    #[test]
    fn the_enterprise_extension_appears_when_mapped() {
        let m = UserMapping::from_config(Some(&json!([{"scim": format!("{ENTERPRISE_USER_SCHEMA}:department"), "drupal": "field_department"}]))).unwrap();
        assert_eq!(schemas("b", &m)["totalResults"], 2);
        assert_eq!(
            resource_type("b", &m, "User").unwrap()["schemaExtensions"][0]["schema"],
            ENTERPRISE_USER_SCHEMA
        );
    }

    #[test]
    fn lookups_are_case_insensitive_and_unknowns_are_404() {
        assert!(resource_type("b", &UserMapping::core(), "user").is_ok());
        assert_eq!(
            resource_type("b", &UserMapping::core(), "Group")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            schema("b", &UserMapping::core(), "urn:nope")
                .unwrap_err()
                .status,
            404
        );
    }
}
