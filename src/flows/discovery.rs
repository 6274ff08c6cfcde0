//! Discovery endpoints (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`.
//! They advertise exactly what the gateway maps onto Drupal, nothing Drupal cannot store,
//! because clients (and scim2-tester) generate values for every advertised attribute.

use crate::config::Config;
use crate::scim::error::ScimError;
use crate::scim::mapping::{attribute_definition, UserMapping};
use crate::scim::schema::{
    ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, USER_SCHEMA,
};
use serde_json::{json, Value};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub fn service_provider_config(base_url: &str, max_results: usize) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
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

fn group_resource_type(base_url: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "description": "Groups: Drupal taxonomy terms, with memberships on the users",
        "schema": GROUP_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/Group")}
    })
}

fn group_attributes() -> Vec<Value> {
    vec![
        attribute_definition(
            "displayName",
            "string",
            json!({"description": "The term's name; unique without case.", "required": true, "uniqueness": "server"}),
        ),
        attribute_definition(
            "members",
            "complex",
            json!({
                "description": "Users in the group (stored on each user).",
                "multiValued": true,
                "subAttributes": [
                    attribute_definition("value", "string", json!({"description": "The user's id.", "mutability": "immutable", "caseExact": true})),
                    attribute_definition("$ref", "reference", json!({"description": "The user's URI.", "mutability": "immutable", "referenceTypes": ["User"], "caseExact": true})),
                    attribute_definition("type", "string", json!({"description": "Always `User`.", "mutability": "immutable", "canonicalValues": ["User"]})),
                ]
            }),
        ),
    ]
}

/// The read-only `groups` attribute of Users, when groups are configured.
fn user_groups_attribute() -> Value {
    let read_only = |name: &str, kind: &str, extra: Value| {
        let mut a = attribute_definition(name, kind, extra);
        if let Some(o) = a.as_object_mut() {
            o.insert("mutability".into(), json!("readOnly"));
        }
        a
    };
    read_only(
        "groups",
        "complex",
        json!({
            "description": "The groups the user is in; changed through /Groups.",
            "multiValued": true,
            "subAttributes": [
                read_only("value", "string", json!({"caseExact": true})),
                read_only("$ref", "reference", json!({"referenceTypes": ["Group"], "caseExact": true})),
                read_only("display", "string", json!({})),
            ]
        }),
    )
}

fn all_schemas(base_url: &str, config: &Config) -> Vec<Value> {
    let (mut core, ext) = config.mapping.schema_attributes();
    if config.groups.is_some() {
        core.push(user_groups_attribute());
    }
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
    if config.groups.is_some() {
        out.push(schema_document(
            base_url,
            GROUP_SCHEMA,
            "Group",
            "Group (Drupal taxonomy term)",
            group_attributes(),
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

fn all_resource_types(base_url: &str, config: &Config) -> Vec<Value> {
    let mut out = vec![user_resource_type(base_url, &config.mapping)];
    if config.groups.is_some() {
        out.push(group_resource_type(base_url));
    }
    out
}

pub fn resource_types(base_url: &str, config: &Config) -> Value {
    let all = all_resource_types(base_url, config);
    let n = all.len();
    list_response(all, n, 1)
}

pub fn resource_type(base_url: &str, config: &Config, id: &str) -> Result<Value, ScimError> {
    all_resource_types(base_url, config)
        .into_iter()
        .find(|r| {
            r.get("id")
                .and_then(Value::as_str)
                .is_some_and(|r| r.eq_ignore_ascii_case(id))
        })
        .ok_or_else(|| {
            ScimError::not_found(format!(
                "There is no resource type `{id}`; see /ResourceTypes."
            ))
        })
}

pub fn schemas(base_url: &str, config: &Config) -> Value {
    let all = all_schemas(base_url, config);
    let n = all.len();
    list_response(all, n, 1)
}

pub fn schema(base_url: &str, config: &Config, id: &str) -> Result<Value, ScimError> {
    all_schemas(base_url, config)
        .into_iter()
        .find(|s| {
            s.get("id")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case(id))
        })
        .ok_or_else(|| ScimError::not_found(format!("There is no schema `{id}`; see /Schemas.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> Config {
        let mut json = json!({"tokens": [{"label": "a", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
            "drupal": {"cluster": "d", "authority": "a"}});
        if let (Some(o), Value::Object(more)) = (json.as_object_mut(), extra) {
            o.extend(more);
        }
        let env = |_: &str| Some("x".to_string());
        crate::config::parse(&serde_json::to_vec(&json).unwrap(), &env)
            .unwrap()
            .0
    }

    #[test]
    fn core_mapping_advertises_only_mapped_attributes() {
        let c = config(json!({}));
        let s = schema("http://x/scim/v2", &c, USER_SCHEMA).unwrap();
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
        assert!(schema("b", &c, ENTERPRISE_USER_SCHEMA).is_err());
        assert!(resource_type("b", &c, "Group").is_err());
    }

    #[test]
    fn the_enterprise_extension_appears_when_mapped() {
        let c = config(
            json!({"attributes": [{"scim": format!("{ENTERPRISE_USER_SCHEMA}:department"), "drupal": "field_department"}]}),
        );
        assert_eq!(schemas("b", &c)["totalResults"], 2);
        assert_eq!(
            resource_type("b", &c, "User").unwrap()["schemaExtensions"][0]["schema"],
            ENTERPRISE_USER_SCHEMA
        );
    }

    #[test]
    fn groups_appear_when_configured() {
        let c = config(json!({"groups": {}}));
        assert_eq!(resource_types("b", &c)["totalResults"], 2);
        assert_eq!(
            resource_type("b", &c, "group").unwrap()["endpoint"],
            "/Groups"
        );
        let user = schema("b", &c, USER_SCHEMA).unwrap();
        assert_eq!(user["attributes"][4]["name"], "groups");
        assert_eq!(user["attributes"][4]["mutability"], "readOnly");
        assert!(schema("b", &c, GROUP_SCHEMA).is_ok());
    }

    #[test]
    fn lookups_are_case_insensitive_and_unknowns_are_404() {
        let c = config(json!({}));
        assert!(resource_type("b", &c, "user").is_ok());
        assert_eq!(schema("b", &c, "urn:nope").unwrap_err().status, 404);
    }
}
