//! SCIM Groups stored as Drupal taxonomy terms: the configuration, the Group resource, its
//! request bodies, and the Drupal calls for terms, memberships and roles. A group's members
//! live on the users (an entity-reference field), so membership is always changed per user.

use crate::config::groups::GroupsConfig;
use crate::drupal::jsonapi::JSONAPI_CONTENT_TYPE;
use crate::drupal::query::DrupalQuery;
use crate::http::DrupalCall;
use crate::scim::error::ScimError;
use crate::scim::schema::GROUP_SCHEMA;
use crate::scim::user::parse_json_object;
use crate::scim::values::get_ci;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Entra ID adds this to group creates; it carries nothing the gateway stores.
const ENTRA_GROUP_SCHEMA: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

/// Drupal term names are at most 255 characters.
const MAX_NAME_CHARS: usize = 255;

/// A Drupal term as a SCIM group needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub uuid: String,
    /// Drupal's term id, which references to a deleted term still carry.
    pub tid: Option<u64>,
    pub name: String,
    /// The group's `externalId`, kept in the term's description (plain text).
    pub external_id: Option<String>,
    pub changed: String,
    pub created: String,
}

impl Term {
    pub fn version(&self) -> String {
        crate::drupal::jsonapi::weak_etag(&self.changed, &Sha256::digest(self.name.as_bytes()))
    }

    /// The SCIM Group; `members` is `None` when they were not read (excluded).
    pub fn to_scim(&self, base_url: &str, members: Option<&[Member]>) -> Map<String, Value> {
        let mut obj = Map::new();
        obj.insert("schemas".into(), json!([GROUP_SCHEMA]));
        obj.insert("id".into(), json!(self.uuid));
        if let Some(ext) = &self.external_id {
            obj.insert("externalId".into(), json!(ext));
        }
        obj.insert("displayName".into(), json!(self.name));
        if let Some(members) = members {
            let list: Vec<Value> = members
                .iter()
                .map(|m| json!({"value": m.uuid, "$ref": format!("{base_url}/Users/{}", m.uuid), "type": "User"}))
                .collect();
            obj.insert("members".into(), Value::Array(list));
        }
        obj.insert(
            "meta".into(),
            json!({
                "resourceType": "Group",
                "created": self.created,
                "lastModified": self.changed,
                "location": format!("{base_url}/Groups/{}", self.uuid),
                "version": self.version(),
            }),
        );
        obj
    }
}

/// A member as listed from Drupal.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub uuid: String,
    pub name: String,
}

/// Reads a term resource; a term of another vocabulary is not one of our groups (Drupal does
/// not check the bundle in the URL).
pub fn parse_term(resource: &Value, vocabulary: &str) -> Option<Term> {
    let uuid = resource.get("id")?.as_str()?;
    let attrs = resource.get("attributes")?;
    let vid = resource
        .pointer("/relationships/vid/data/meta/drupal_internal__target_id")
        .and_then(Value::as_str);
    if vid.is_some_and(|v| v != vocabulary) {
        return None;
    }
    let text = |k: &str| {
        attrs
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let changed = text("changed");
    let created = match attrs.get("revision_created").and_then(Value::as_str) {
        Some(c) => c.to_string(),
        None => changed.clone(),
    };
    Some(Term {
        uuid: uuid.to_string(),
        tid: attrs.get("drupal_internal__tid").and_then(Value::as_u64),
        external_id: attrs
            .pointer("/description/value")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        name: attrs.get("name")?.as_str()?.to_string(),
        changed,
        created,
    })
}

/// A validated Group body (POST/PUT).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWrite {
    pub display_name: String,
    /// `externalId`: `None` when absent, `Some(None)` when null or empty.
    pub external_id: Option<Option<String>>,
    /// Member user ids; `None` when the body has no `members`.
    pub members: Option<Vec<String>>,
}

/// An `externalId` value: a string (empty means none) or null.
pub fn external_id_value(v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s.chars().count() <= 1024 => Ok(Some(s.clone())),
        Value::String(_) => Err(ScimError::invalid_value(
            "`externalId` is longer than 1024 characters.",
        )),
        _ => Err(ScimError::invalid_value("`externalId` must be a string.")),
    }
}

pub fn check_display_name(name: &str) -> Result<(), ScimError> {
    if name.trim().is_empty() {
        return Err(ScimError::invalid_value("`displayName` must not be empty."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ScimError::invalid_value(format!(
            "`displayName` is longer than {MAX_NAME_CHARS} characters."
        )));
    }
    Ok(())
}

/// The `value`s of a members list, checked to be ours (Drupal user UUIDs), de-duplicated.
pub fn member_ids(value: Option<&Value>) -> Result<Vec<String>, ScimError> {
    let list: Vec<&Value> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        Some(_) => {
            return Err(ScimError::invalid_value(
                "`members` must be a list of {\"value\": user id} objects.",
            ))
        }
    };
    // Ids that are not Drupal UUIDs are kept (and reported as unknown by the existence check,
    // together with UUIDs of no user); they never reach a Drupal URL.
    let mut ids: Vec<String> = Vec::new();
    for m in list {
        let obj = m.as_object().ok_or_else(|| {
            ScimError::invalid_value("Each member must be an object with a `value`.")
        })?;
        if let Some(t) = get_ci(obj, "type").and_then(Value::as_str) {
            if !t.eq_ignore_ascii_case("User") {
                return Err(ScimError::invalid_value(format!(
                    "Members of type `{t}` are not supported; only users can be members."
                )));
            }
        }
        let id = get_ci(obj, "value")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ScimError::invalid_value("Each member needs a string `value` (the user's id).")
            })?;
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

pub fn unknown_members(ids: &[String]) -> ScimError {
    ScimError::invalid_value(format!(
        "Unknown member ids (no such user): {}. Nothing was changed.",
        ids.join(", ")
    ))
}

pub fn check_group_schemas(obj: &Map<String, Value>) -> Result<(), ScimError> {
    let list = match get_ci(obj, "schemas") {
        Some(Value::Array(list)) => list,
        _ => {
            return Err(ScimError::invalid_value(format!(
                "`schemas` must be a list containing `{GROUP_SCHEMA}`."
            )))
        }
    };
    let mut has_core = false;
    for urn in list {
        match urn.as_str() {
            Some(u) if u.eq_ignore_ascii_case(GROUP_SCHEMA) => has_core = true,
            Some(u) if u.eq_ignore_ascii_case(ENTRA_GROUP_SCHEMA) => {}
            Some(u) => {
                return Err(ScimError::invalid_value(format!(
                    "Unknown schema `{u}` for a Group."
                )))
            }
            None => {
                return Err(ScimError::invalid_value(
                    "`schemas` must contain only strings.",
                ))
            }
        }
    }
    if has_core {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!(
            "`schemas` must contain `{GROUP_SCHEMA}`."
        )))
    }
}

pub fn parse_group_body(body: &[u8]) -> Result<GroupWrite, ScimError> {
    let obj = parse_json_object(body)?;
    check_group_schemas(&obj)?;
    let display_name = match get_ci(&obj, "displayName") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            return Err(ScimError::invalid_value("`displayName` is required."))
        }
        Some(_) => return Err(ScimError::invalid_value("`displayName` must be a string.")),
    };
    check_display_name(&display_name)?;
    let members = match get_ci(&obj, "members") {
        None => None,
        Some(v) => Some(member_ids(Some(v))?),
    };
    let external_id = match get_ci(&obj, "externalId") {
        None => None,
        Some(v) => Some(external_id_value(v)?),
    };
    Ok(GroupWrite {
        display_name,
        external_id,
        members,
    })
}

/// Builds the Drupal calls for groups.
pub struct GroupCalls<'a> {
    pub jsonapi: &'a str,
    pub groups: &'a GroupsConfig,
    /// Envoy's wait listener is configured (`wait_cluster`).
    pub can_wait: bool,
}

fn call(method: &'static str, path: String, body: Option<Value>) -> DrupalCall {
    DrupalCall {
        method,
        path,
        content_type: body.as_ref().map(|_| JSONAPI_CONTENT_TYPE),
        body: body.map(|b| serde_json::to_vec(&b).unwrap_or_default()),
    }
}

/// What a member read needs: the name, and what tells whether SCIM may write the account.
const MEMBER_FIELDS: &str = "name,drupal_internal__uid,roles";

/// The part of a user query that keeps retired accounts out and makes a refused service
/// account a 403 (see `drupal::push_live_users`).
fn live_users(q: &mut DrupalQuery) {
    crate::drupal::jsonapi::push_live_users(q);
}

impl GroupCalls<'_> {
    fn terms(&self) -> String {
        format!("{}/taxonomy_term/{}", self.jsonapi, self.groups.vocabulary)
    }

    fn term_fields(&self) -> String {
        format!("fields[{}]", self.groups.term_type())
    }

    pub fn get_term(&self, uuid: &str) -> DrupalCall {
        let mut q = DrupalQuery::new();
        q.push(
            &self.term_fields(),
            "name,description,changed,revision_created,vid,drupal_internal__tid",
        );
        call("GET", format!("{}/{uuid}{}", self.terms(), q.build()), None)
    }

    /// Terms matching `conditions`, in tid order.
    pub fn list_terms(
        &self,
        conditions: &[(String, String)],
        sort: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> DrupalCall {
        let mut q = DrupalQuery::with_conditions(conditions);
        q.push_stable_sort(sort, "drupal_internal__tid")
            .push(
                &self.term_fields(),
                "name,description,changed,revision_created,vid,drupal_internal__tid",
            )
            .push("page[offset]", &offset.to_string())
            .push("page[limit]", &limit.to_string());
        call("GET", format!("{}{}", self.terms(), q.build()), None)
    }

    /// A probe for counting (`paging`): the same terms as `list_terms`, ids only.
    pub fn count_terms(
        &self,
        conditions: &[(String, String)],
        offset: usize,
        limit: usize,
    ) -> DrupalCall {
        let mut q = DrupalQuery::with_conditions(conditions);
        q.push(&self.term_fields(), "drupal_internal__tid")
            .push("page[offset]", &offset.to_string())
            .push("page[limit]", &limit.to_string());
        call("GET", format!("{}{}", self.terms(), q.build()), None)
    }

    /// Terms whose name equals `name` ignoring case (Drupal's `=` on term names is a LIKE).
    pub fn terms_named(&self, name: &str) -> DrupalCall {
        self.list_terms(
            &[("filter[name]".to_string(), name.to_string())],
            None,
            0,
            crate::drupal::jsonapi::DRUPAL_PAGE_MAX,
        )
    }

    pub fn create_term(&self, name: &str, external_id: Option<&str>) -> DrupalCall {
        let mut attributes = json!({"name": name});
        if let (Some(ext), Some(o)) = (external_id, attributes.as_object_mut()) {
            o.insert(
                "description".into(),
                json!({"value": ext, "format": "plain_text"}),
            );
        }
        call(
            "POST",
            self.terms(),
            Some(json!({"data": {"type": self.groups.term_type(), "attributes": attributes}})),
        )
    }

    /// Sets (or clears) the `externalId` kept in the term's description.
    pub fn set_external_id(&self, uuid: &str, external_id: Option<&str>) -> DrupalCall {
        let description = match external_id {
            Some(ext) => json!({"value": ext, "format": "plain_text"}),
            None => Value::Null,
        };
        let body = json!({"data": {"type": self.groups.term_type(), "id": uuid, "attributes": {"description": description}}});
        call("PATCH", format!("{}/{uuid}", self.terms()), Some(body))
    }

    pub fn rename_term(&self, uuid: &str, name: &str) -> DrupalCall {
        let body = json!({"data": {"type": self.groups.term_type(), "id": uuid, "attributes": {"name": name}}});
        call("PATCH", format!("{}/{uuid}", self.terms()), Some(body))
    }

    pub fn delete_term(&self, uuid: &str) -> DrupalCall {
        call("DELETE", format!("{}/{uuid}", self.terms()), None)
    }

    /// One page of a group's members, in uid order.
    pub fn members_page(&self, term: &str, offset: usize) -> DrupalCall {
        let mut q = DrupalQuery::new();
        q.push(
            "filter[scim_member][condition][path]",
            &format!("{}.id", self.groups.membership_field),
        )
        .push("filter[scim_member][condition][value]", term);
        live_users(&mut q);
        q.push("sort", "drupal_internal__uid")
            .push("fields[user--user]", MEMBER_FIELDS)
            .push("page[offset]", &offset.to_string())
            .push(
                "page[limit]",
                &crate::drupal::jsonapi::DRUPAL_PAGE_MAX.to_string(),
            );
        call(
            "GET",
            format!("{}/user/user{}", self.jsonapi, q.build()),
            None,
        )
    }

    /// Users whose membership list still references a deleted term (by its tid).
    pub fn users_referencing_tid(&self, tid: u64) -> DrupalCall {
        let mut q = DrupalQuery::new();
        q.push(
            "filter[scim_tid][condition][path]",
            &format!(
                "{}.meta.drupal_internal__target_id",
                self.groups.membership_field
            ),
        )
        .push("filter[scim_tid][condition][value]", &tid.to_string())
        .push("fields[user--user]", MEMBER_FIELDS)
        .push(
            "page[limit]",
            &crate::drupal::jsonapi::DRUPAL_PAGE_MAX.to_string(),
        );
        call(
            "GET",
            format!("{}/user/user{}", self.jsonapi, q.build()),
            None,
        )
    }

    /// The cheapest read that Drupal refuses (403) when it did not accept the service
    /// account: terms are public, so a group read that touches no user needs it to avoid
    /// answering from Drupal's anonymous view.
    pub fn check_service_account(&self) -> DrupalCall {
        let mut q = DrupalQuery::new();
        live_users(&mut q);
        q.push("fields[user--user]", "name")
            .push("page[limit]", "1");
        call(
            "GET",
            format!("{}/user/user{}", self.jsonapi, q.build()),
            None,
        )
    }

    /// Which of these user ids exist (at most 50 per call).
    pub fn users_with_ids(&self, ids: &[String]) -> DrupalCall {
        let mut q = DrupalQuery::new();
        q.push("filter[scim_ids][condition][path]", "id")
            .push("filter[scim_ids][condition][operator]", "IN");
        for id in ids {
            q.push("filter[scim_ids][condition][value][]", id);
        }
        live_users(&mut q);
        q.push("fields[user--user]", MEMBER_FIELDS).push(
            "page[limit]",
            &crate::drupal::jsonapi::DRUPAL_PAGE_MAX.to_string(),
        );
        call(
            "GET",
            format!("{}/user/user{}", self.jsonapi, q.build()),
            None,
        )
    }

    /// The memberships and roles of several users (at most 50): one read confirms the
    /// changes of many users at once.
    pub fn users_memberships(&self, ids: &[String]) -> DrupalCall {
        let f = &self.groups.membership_field;
        let mut q = DrupalQuery::new();
        q.push("filter[scim_ids][condition][path]", "id")
            .push("filter[scim_ids][condition][operator]", "IN");
        for id in ids {
            q.push("filter[scim_ids][condition][value][]", id);
        }
        q.push("fields[user--user]", &format!("{f},roles"))
            .push("include", f)
            .push(&self.term_fields(), "name")
            .push(
                "page[limit]",
                &crate::drupal::jsonapi::DRUPAL_PAGE_MAX.to_string(),
            );
        call(
            "GET",
            format!("{}/user/user{}", self.jsonapi, q.build()),
            None,
        )
    }

    /// A user's memberships and roles, with the group names (for role grants).
    pub fn user_memberships(&self, user: &str) -> DrupalCall {
        let f = &self.groups.membership_field;
        let mut q = DrupalQuery::new();
        q.push("fields[user--user]", &format!("{f},roles"))
            .push("include", f)
            .push(&self.term_fields(), "name");
        call(
            "GET",
            format!("{}/user/user/{user}{}", self.jsonapi, q.build()),
            None,
        )
    }

    fn relationship(&self, user: &str) -> String {
        format!(
            "{}/user/user/{user}/relationships/{}",
            self.jsonapi, self.groups.membership_field
        )
    }

    fn identifiers(&self, terms: &[String]) -> Value {
        let t = self.groups.term_type();
        json!({"data": terms.iter().map(|id| json!({"type": t, "id": id})).collect::<Vec<_>>()})
    }

    pub fn add_membership(&self, user: &str, term: &str) -> DrupalCall {
        call(
            "POST",
            self.relationship(user),
            Some(self.identifiers(&[term.to_string()])),
        )
    }

    pub fn remove_membership(&self, user: &str, term: &str) -> DrupalCall {
        call(
            "DELETE",
            self.relationship(user),
            Some(self.identifiers(&[term.to_string()])),
        )
    }

    /// Replaces the whole list: only used, under the user's lock and from a fresh read, to
    /// repair references to deleted terms (which make every other write fail).
    pub fn replace_memberships(&self, user: &str, terms: &[String]) -> DrupalCall {
        call(
            "PATCH",
            self.relationship(user),
            Some(self.identifiers(terms)),
        )
    }

    /// A pause while another request holds a lock: Envoy's wait listener if there is one,
    /// else a read of `user`'s memberships (or the group names) from Drupal.
    pub fn pause(&self, fallback: DrupalCall) -> DrupalCall {
        if self.can_wait {
            DrupalCall::wait()
        } else {
            fallback
        }
    }

    pub fn list_roles(&self) -> DrupalCall {
        call("GET", roles_path(self.jsonapi), None)
    }

    pub fn add_roles(&self, user: &str, role_uuids: &[String]) -> DrupalCall {
        let body = json!({"data": role_uuids.iter().map(|id| json!({"type": "user_role--user_role", "id": id})).collect::<Vec<_>>()});
        call(
            "POST",
            format!("{}/user/user/{user}/relationships/roles", self.jsonapi),
            Some(body),
        )
    }

    pub fn remove_roles(&self, user: &str, role_uuids: &[String]) -> DrupalCall {
        let body = json!({"data": role_uuids.iter().map(|id| json!({"type": "user_role--user_role", "id": id})).collect::<Vec<_>>()});
        call(
            "DELETE",
            format!("{}/user/user/{user}/relationships/roles", self.jsonapi),
            Some(body),
        )
    }
}

/// A user's memberships as Drupal reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memberships {
    /// Term ids, in Drupal's order.
    pub terms: Vec<String>,
    /// Names of the terms, where Drupal included them.
    pub names: Vec<(String, String)>,
    /// References to deleted terms are present.
    pub dangling: bool,
    /// Role machine names (and uuids) the user holds.
    pub roles: Vec<(String, String)>,
}

impl Memberships {
    pub fn group_names(&self) -> Vec<String> {
        self.terms
            .iter()
            .filter_map(|t| {
                self.names
                    .iter()
                    .find(|(id, _)| id == t)
                    .map(|(_, n)| n.clone())
            })
            .collect()
    }
}

/// Reads `user_memberships`' answer.
pub fn parse_memberships(doc: &Value, field: &str) -> Memberships {
    let mut m = Memberships::default();
    let rel = doc
        .pointer(&format!("/data/relationships/{field}/data"))
        .and_then(Value::as_array);
    for item in rel.into_iter().flatten() {
        match item.get("id").and_then(Value::as_str) {
            Some("missing") | None => m.dangling = true,
            Some(id) => m.terms.push(id.to_string()),
        }
    }
    for item in doc
        .get("included")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(name)) = (
            item.get("id").and_then(Value::as_str),
            item.pointer("/attributes/name").and_then(Value::as_str),
        ) {
            m.names.push((id.to_string(), name.to_string()));
        }
    }
    let roles = doc
        .pointer("/data/relationships/roles/data")
        .and_then(Value::as_array);
    for r in roles.into_iter().flatten() {
        if let (Some(id), Some(name)) = (
            r.get("id").and_then(Value::as_str),
            r.pointer("/meta/drupal_internal__target_id")
                .and_then(Value::as_str),
        ) {
            m.roles.push((name.to_string(), id.to_string()));
        }
    }
    m
}

/// Role machine name → uuid, from `list_roles`.
/// Every role with what decides whether granting it is safe: its machine name, `is_admin`
/// and `permissions` (the grant-time check and the start-up check read the same answer).
pub fn roles_path(jsonapi_prefix: &str) -> String {
    format!(
        "{jsonapi_prefix}/user_role/user_role?fields[user_role--user_role]=drupal_internal__id%2Cis_admin%2Cpermissions"
    )
}

/// Permissions that let a role's holders take over the site: Drupal's own "restrict access"
/// permissions over accounts and roles.
const TAKEOVER_PERMISSIONS: [&str; 2] = ["administer users", "administer permissions"];

/// The first of `granted` roles that makes its holders site administrators or lets them
/// administer accounts or permissions, with why; the gateway never grants such a role.
pub fn dangerous_grant(doc: &Value, granted: &[&str]) -> Option<(String, String)> {
    doc.get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let name = r.pointer("/attributes/drupal_internal__id")?.as_str()?;
            granted.contains(&name).then_some((name, r))
        })
        .find_map(|(name, r)| {
            let why = if r.pointer("/attributes/is_admin").and_then(Value::as_bool) == Some(true) {
                "is an administrator role (is_admin)".to_string()
            } else {
                let perms: Vec<&str> = r
                    .pointer("/attributes/permissions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|p| TAKEOVER_PERMISSIONS.contains(p))
                    .collect();
                if perms.is_empty() {
                    return None;
                }
                format!("holds '{}'", perms.join("' and '"))
            };
            Some((name.to_string(), why))
        })
}

pub fn parse_roles(doc: &Value) -> Vec<(String, String)> {
    doc.get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let id = r.get("id")?.as_str()?;
            let name = r.pointer("/attributes/drupal_internal__id")?.as_str()?;
            Some((name.to_string(), id.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_bodies() {
        let ok = parse_group_body(br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],"displayName":"Eng","externalId":"x","meta":{}}"#).unwrap();
        assert_eq!((ok.display_name.as_str(), ok.members), ("Eng", None));
        let with = parse_group_body(br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Eng","members":[{"value":"7724f730-7aca-4819-aaee-90673a0141a4","$ref":null},{"value":"7724f730-7aca-4819-aaee-90673a0141a4"}]}"#).unwrap();
        assert_eq!(with.members.unwrap().len(), 1);
        for bad in [
            &br#"{"displayName":"Eng"}"#[..],
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":" "}"#,
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"x","members":[{"value":"7724f730-7aca-4819-aaee-90673a0141a4","type":"Group"}]}"#,
        ] {
            assert_eq!(parse_group_body(bad).unwrap_err().status, 400, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            member_ids(Some(
                &json!([{"value": "42"}, {"value": "42"}, {"value": "nope"}])
            ))
            .unwrap(),
            ["42", "nope"]
        );
    }

    #[test]
    fn terms_of_other_vocabularies_are_not_groups() {
        let t = json!({"id": "t1", "attributes": {"name": "Eng", "changed": "2026-11-28T11:51:50+00:00"},
            "relationships": {"vid": {"data": {"meta": {"drupal_internal__target_id": "tags"}}}}});
        assert!(parse_term(&t, "scim_groups").is_none());
        assert_eq!(parse_term(&t, "tags").unwrap().name, "Eng");
    }

    #[test]
    fn memberships_with_dangling_references_and_roles() {
        let doc = json!({"data": {"relationships": {
            "field_scim_groups": {"data": [{"type": "t", "id": "missing"}, {"type": "t", "id": "g1"}]},
            "roles": {"data": [{"id": "r1", "meta": {"drupal_internal__target_id": "editor"}}]}}},
            "included": [{"id": "g1", "attributes": {"name": "Eng"}}]});
        let m = parse_memberships(&doc, "field_scim_groups");
        assert!(m.dangling);
        assert_eq!(m.terms, ["g1"]);
        assert_eq!(m.group_names(), ["Eng"]);
        assert_eq!(m.roles, [("editor".to_string(), "r1".to_string())]);
    }
}
