//! Drupal's side: the JSON:API (and core REST) calls for user accounts, the reading of
//! Drupal's `user--user` resources, and the mapping of Drupal's errors onto SCIM errors.

use crate::drupal::query::DrupalQuery;
use crate::http::{DrupalCall, DrupalReply};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::mapping::UserMapping;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
use crate::scim::user::RETIRED_NAME_PREFIX;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub const JSONAPI_CONTENT_TYPE: &str = "application/vnd.api+json";
/// Drupal caps every JSON:API page at 50 items.
pub const DRUPAL_PAGE_MAX: usize = 50;
/// Read on every user besides the mapped fields. `display_name` is there to recognise
/// Drupal's anonymous user (uid 0), which even the service account only sees label-only.
/// `roles` tells which accounts are read-only to SCIM (`protection`).
const BASE_FIELDS: &str = "display_name,drupal_internal__uid,created,changed,init,roles";
/// Written to `init` (the sign-up address, which no SCIM attribute maps to) when the gateway
/// retires an account: it marks the account as deleted whatever a later write did to it.
pub const RETIRED_MARKER: &str = "retired@scim-retired.invalid";
/// Drupal's default label for uid 0 (`user.settings:anonymous`).
pub(crate) const ANONYMOUS_LABEL: &str = "Anonymous";

/// A Drupal user as the gateway needs it: identity, timestamps and the mapped fields.
#[derive(Debug, Clone, PartialEq)]
pub struct DrupalUser {
    pub uuid: String,
    pub uid: u64,
    pub created: String,
    pub changed: String,
    /// Drupal attribute values of the mapped fields (`name`, `mail`, `status`, …).
    pub fields: Map<String, Value>,
    /// Group memberships (term id, name if known), when groups are configured.
    pub groups: Option<Vec<(String, Option<String>)>>,
    /// The account was retired by a SCIM DELETE (`init` carries the marker).
    pub retired_marker: bool,
    /// Role machine names (without `authenticated`); `None` when Drupal's answer did not show
    /// them (then the account is read-only to SCIM, `protection`).
    pub roles: Option<Vec<String>>,
}

impl DrupalUser {
    pub fn name(&self) -> &str {
        self.fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Accounts the gateway retired on DELETE are gone as far as SCIM is concerned.
    pub fn is_retired(&self) -> bool {
        self.retired_marker
            || self
                .name()
                .to_ascii_lowercase()
                .starts_with(RETIRED_NAME_PREFIX)
    }

    /// A weak ETag: Drupal's `changed` has one-second resolution, so a digest of what SCIM
    /// shows is added to tell apart two changes within the same second.
    pub fn version(&self, mapping: &UserMapping) -> String {
        let mut h = Digesting(Sha256::new());
        for field in mapping.drupal_fields() {
            // Serialised straight into the digest: the same bytes as `to_vec`, no buffer.
            let _ = serde_json::to_writer(&mut h, self.fields.get(field).unwrap_or(&Value::Null));
            h.0.update([0u8]);
        }
        weak_etag(&self.changed, &h.0.finalize())
    }

    /// The SCIM view of the mapped attributes, without `id`, `meta` and `schemas`.
    pub fn attributes(&self, mapping: &UserMapping) -> Map<String, Value> {
        mapping.to_scim(&self.fields)
    }

    pub fn to_scim(&self, mapping: &UserMapping, base_url: &str) -> Map<String, Value> {
        self.to_scim_at(mapping, base_url, self.version(mapping))
    }

    /// `to_scim` with the `version` the caller computed already (it is a digest of every
    /// mapped field, and the `ETag` header of a single user carries it too).
    pub fn to_scim_at(
        &self,
        mapping: &UserMapping,
        base_url: &str,
        version: String,
    ) -> Map<String, Value> {
        let attrs = self.attributes(mapping);
        let mut obj = Map::new();
        let mut schemas = vec![json!(USER_SCHEMA)];
        if attrs.contains_key(ENTERPRISE_USER_SCHEMA) {
            schemas.push(json!(ENTERPRISE_USER_SCHEMA));
        }
        obj.insert("schemas".into(), Value::Array(schemas));
        obj.insert("id".into(), json!(self.uuid));
        obj.extend(attrs);
        if let Some(groups) = self.groups.as_ref().filter(|g| !g.is_empty()) {
            let list: Vec<Value> = groups
                .iter()
                .map(|(id, name)| {
                    let mut g = Map::new();
                    g.insert("value".into(), json!(id));
                    g.insert("$ref".into(), json!(format!("{base_url}/Groups/{id}")));
                    if let Some(n) = name {
                        g.insert("display".into(), json!(n));
                    }
                    Value::Object(g)
                })
                .collect();
            obj.insert("groups".into(), Value::Array(list));
        }
        obj.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": self.created,
                "lastModified": self.changed,
                "location": format!("{base_url}/Users/{}", self.uuid),
                "version": version,
            }),
        );
        obj
    }
}

/// Reads one `user--user` resource object. An object without `name` is what Drupal shows
/// an anonymous caller (label only): the service account was not accepted.
pub fn parse_user(resource: &Value, mapping: &UserMapping) -> Result<DrupalUser, ScimError> {
    let uuid = resource.get("id").and_then(Value::as_str);
    let attrs = resource.get("attributes").and_then(Value::as_object);
    let get = |k: &str| attrs.and_then(|a| a.get(k));
    let uid = get("drupal_internal__uid").and_then(Value::as_u64);
    match (uuid, attrs, uid, get("name").and_then(Value::as_str)) {
        (Some(uuid), Some(attrs), Some(uid), Some(_)) => Ok(DrupalUser {
            uuid: uuid.to_string(),
            uid,
            created: get("created")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            changed: get("changed")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            fields: mapping
                .drupal_fields()
                .filter_map(|f| attrs.get(f).map(|v| (f.to_string(), v.clone())))
                .collect(),
            groups: None,
            retired_marker: get("init").and_then(Value::as_str) == Some(RETIRED_MARKER),
            roles: crate::config::protection::roles_of(resource),
        }),
        _ => Err(service_account_refused()),
    }
}

/// Adds a user's group memberships from its relationship `field` (references to deleted terms
/// are skipped), with names from a document's `included` terms.
pub fn attach_groups(user: &mut DrupalUser, resource: &Value, field: &str, included: &[Value]) {
    let refs = resource
        .pointer(&format!("/relationships/{field}/data"))
        .and_then(Value::as_array);
    let groups = refs
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("id").and_then(Value::as_str))
        .filter(|id| *id != "missing")
        .map(|id| {
            let name = included
                .iter()
                .find(|i| i.get("id").and_then(Value::as_str) == Some(id))
                .and_then(|i| i.pointer("/attributes/name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            (id.to_string(), name)
        })
        .collect();
    user.groups = Some(groups);
}

/// An object Drupal shows by label only (`display_name`, no `name`). To the service account
/// (`administer users`) that is only ever Drupal's anonymous user, uid 0, whatever the site
/// named it; a refused account's anonymous view is caught before a flow reads the answer
/// (the upstream gate confirms every label-only read with a guarded one).
pub fn is_label_view(resource: &Value) -> bool {
    resource
        .get("attributes")
        .is_some_and(|a| a.get("name").is_none() && a.get("display_name").is_some())
}

/// A label-only object with Drupal's default label for uid 0: no sign of a refused account,
/// so the gate does not confirm it. Sites that renamed the label cost one guarded read.
pub fn is_anonymous_label(resource: &Value) -> bool {
    let attrs = resource.get("attributes");
    attrs.and_then(|a| a.get("name")).is_none()
        && attrs
            .and_then(|a| a.get("display_name"))
            .and_then(Value::as_str)
            == Some(ANONYMOUS_LABEL)
}

/// A user shown by label only (no `name`), as Drupal shows accounts to anonymous: the sign
/// that Drupal did not accept the service account (Drupal's own anonymous user aside).
pub fn is_label_only(resource: &Value) -> bool {
    is_label_view(resource) && !is_anonymous_label(resource)
}

pub(crate) fn service_account_refused() -> ScimError {
    ScimError::bad_gateway(
        "Drupal refused the gateway's service account: check the Drupal username and password \
         given to the gateway, that the account is active and has the 'administer users' \
         permission, and that Drupal's flood control has not locked it.",
    )
}

/// Feeds what is written into a digest.
struct Digesting(Sha256);

impl std::io::Write for Digesting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A weak ETag from Drupal's `changed` (one-second resolution) and a digest of what SCIM
/// shows (which tells apart two changes within the same second).
pub fn weak_etag(changed: &str, digest: &[u8]) -> String {
    let short = crate::hex::encode(digest.get(..4).unwrap_or(digest));
    let stamp: String = changed
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("W/\"{stamp}-{short}\"")
}

/// An RFC 4122 UUID in Drupal's lower-case hyphenated form. Anything else is not one of
/// ours and is answered 404 without asking Drupal.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

/// The filter group name of the auth guard; the upstream gate renames it per cache epoch
/// (`upstream::access::stamped`).
pub const AUTH_GUARD: &str = "scim_auth";

/// An always-true condition that Drupal lets only `administer users` use: if the service
/// account was refused (Drupal then serves the request as anonymous), a user list is a 403
/// instead of a misleading empty page.
pub fn push_auth_guard(q: &mut DrupalQuery) {
    q.push(&format!("filter[{AUTH_GUARD}][condition][path]"), "status")
        .push(
            &format!("filter[{AUTH_GUARD}][condition][operator]"),
            "IS NOT NULL",
        );
}

/// The conditions of every user list: the auth guard, and no account retired by a SCIM
/// DELETE (renamed `scimretired…`), so that Drupal's positions and counts are SCIM's.
pub fn push_live_users(q: &mut DrupalQuery) {
    push_auth_guard(q);
    q.push("filter[scim_live][group][conjunction]", "OR")
        .push("filter[scim_below][condition][path]", "name")
        .push("filter[scim_below][condition][operator]", "<")
        .push(
            "filter[scim_below][condition][value]",
            crate::scim::user::RETIRED_NAME_PREFIX,
        )
        .push("filter[scim_below][condition][memberOf]", "scim_live")
        .push("filter[scim_above][condition][path]", "name")
        .push("filter[scim_above][condition][operator]", ">=")
        .push("filter[scim_above][condition][value]", "scimretiree")
        .push("filter[scim_above][condition][memberOf]", "scim_live");
}

/// Builds the Drupal calls for users.
pub struct Calls<'a> {
    pub jsonapi: &'a str,
    pub mapping: &'a UserMapping,
    /// When set, reads include the users' group memberships.
    pub groups: Option<&'a crate::config::groups::GroupsConfig>,
}

impl Calls<'_> {
    fn users(&self) -> String {
        format!("{}/user/user", self.jsonapi)
    }

    fn fieldset(&self) -> String {
        let mut fields = BASE_FIELDS.to_string();
        for f in self.mapping.drupal_fields() {
            fields.push(',');
            fields.push_str(f);
        }
        if let Some(g) = self.groups {
            fields.push(',');
            fields.push_str(&g.membership_field);
        }
        fields
    }

    /// The group names, for the users' `groups` (`display`).
    fn include_groups(&self, q: &mut DrupalQuery) {
        if let Some(g) = self.groups {
            q.push("include", &g.membership_field)
                .push(&format!("fields[{}]", g.term_type()), "name");
        }
    }

    pub fn get_user(&self, uuid: &str) -> DrupalCall {
        let mut q = DrupalQuery::new();
        q.push("fields[user--user]", &self.fieldset());
        self.include_groups(&mut q);
        get(format!("{}/{uuid}{}", self.users(), q.build()))
    }

    /// The least a write must know of the user it changes (`fields`: a sparse fieldset),
    /// without group memberships: Drupal loads and serialises only these.
    pub fn get_user_fields(&self, uuid: &str, fields: &str) -> DrupalCall {
        let mut q = DrupalQuery::new();
        q.push("fields[user--user]", fields);
        get(format!("{}/{uuid}{}", self.users(), q.build()))
    }

    /// One page of users in a stable order (the requested sort, then uid), never including
    /// the anonymous user or retired accounts. `conditions` are extra `filter[…]` pairs;
    /// `sort` is Drupal's `sort` value without the uid tie-breaker.
    pub fn list_users(
        &self,
        conditions: &[(String, String)],
        sort: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> DrupalCall {
        let mut q = DrupalQuery::with_conditions(conditions);
        // Any filter also makes Drupal drop the anonymous user (uid 0).
        push_live_users(&mut q);
        q.push_stable_sort(sort, "drupal_internal__uid")
            .push("fields[user--user]", &self.fieldset());
        self.include_groups(&mut q);
        q.push("page[offset]", &offset.to_string())
            .push("page[limit]", &limit.to_string());
        get(format!("{}{}", self.users(), q.build()))
    }

    /// A probe for counting (`paging`): the same users as `list_users`, ids only.
    pub fn count_users(
        &self,
        conditions: &[(String, String)],
        offset: usize,
        limit: usize,
    ) -> DrupalCall {
        let mut q = DrupalQuery::with_conditions(conditions);
        push_live_users(&mut q);
        q.push("fields[user--user]", "drupal_internal__uid")
            .push("page[offset]", &offset.to_string())
            .push("page[limit]", &limit.to_string());
        get(format!("{}{}", self.users(), q.build()))
    }

    pub fn create_user(&self, fields: &Map<String, Value>, password: Option<&str>) -> DrupalCall {
        let mut attributes = fields.clone();
        if let Some(pass) = password {
            attributes.insert("pass".into(), json!({ "value": pass }));
        }
        jsonapi_write(
            "POST",
            self.users(),
            json!({"data": {"type": "user--user", "attributes": attributes}}),
        )
    }

    /// A partial update: only the given fields change, in one save.
    pub fn update_user(
        &self,
        uuid: &str,
        fields: &Map<String, Value>,
        password: Option<&str>,
    ) -> DrupalCall {
        let mut attributes = fields.clone();
        if let Some(pass) = password {
            attributes.insert("pass".into(), json!({ "value": pass }));
        }
        let body = json!({"data": {"type": "user--user", "id": uuid, "attributes": attributes}});
        jsonapi_write("PATCH", format!("{}/{uuid}", self.users()), body)
    }

    pub fn delete_user(&self, uuid: &str) -> DrupalCall {
        DrupalCall {
            method: "DELETE",
            path: format!("{}/{uuid}", self.users()),
            content_type: None,
            body: None,
        }
    }

    /// Renames a cancelled-but-surviving account out of the way: its userName and email
    /// become free, it stays blocked, and lists and lookups no longer see it.
    pub fn retire_user(&self, uuid: &str) -> DrupalCall {
        let compact: String = uuid.chars().filter(|c| *c != '-').collect();
        let mut fields = Map::new();
        fields.insert(
            "name".into(),
            json!(format!("{RETIRED_NAME_PREFIX}{compact}")),
        );
        fields.insert(
            "mail".into(),
            json!(format!("{compact}@scim-retired.invalid")),
        );
        fields.insert("status".into(), json!(false));
        fields.insert("init".into(), json!(RETIRED_MARKER));
        // Profile fields go too: a retired account keeps nothing of the person, and its state
        // is the same every time (see `exchange`'s guard against direct writes).
        for f in self.mapping.drupal_fields() {
            if !fields.contains_key(f) {
                fields.insert(f.to_string(), Value::Null);
            }
        }
        let mut call = self.update_user(uuid, &fields, None);
        if let Some(g) = self.groups {
            // A deleted user is in no group any more.
            let body = json!({"data": {"type": "user--user", "id": uuid, "attributes": fields,
                "relationships": {g.membership_field.as_str(): {"data": []}}}});
            call.body = Some(serde_json::to_vec(&body).unwrap_or_default());
        }
        call
    }
}

fn get(path: String) -> DrupalCall {
    DrupalCall {
        method: "GET",
        path,
        content_type: None,
        body: None,
    }
}

/// Core REST hard delete (`DELETE /user/{uid}`): Drupal deletes the account and its content.
pub fn rest_delete_user(uid: u64) -> DrupalCall {
    DrupalCall {
        method: "DELETE",
        path: format!("/user/{uid}?_format=json"),
        content_type: None,
        body: None,
    }
}

/// What an answer to a REST user DELETE says about core REST's `rest.resource.entity.user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestResource {
    /// The route exists and took the gateway's authentication.
    Ready,
    /// No REST DELETE route for users (module off, or no resource config): 405.
    Missing,
    /// The resource does not list the authentication the gateway uses: Drupal's
    /// authentication subscriber refuses before any access check.
    AuthNotAllowed,
    /// Anything else (Drupal down, 5xx): not known.
    Unknown,
}

pub fn rest_resource(reply: &DrupalReply) -> RestResource {
    match reply {
        DrupalReply::Answer { status: 405, .. } => RestResource::Missing,
        DrupalReply::Answer { status: 403, body }
            if String::from_utf8_lossy(body)
                .contains("authentication method is not allowed on this route") =>
        {
            RestResource::AuthNotAllowed
        }
        DrupalReply::Answer {
            status: 200..=299 | 403 | 404,
            ..
        } => RestResource::Ready,
        _ => RestResource::Unknown,
    }
}

/// The fix for a REST resource that cannot serve `hard_delete`, for logs and 502 details.
pub fn rest_resource_fix(state: RestResource) -> Option<&'static str> {
    match state {
        RestResource::Missing => Some(
            "Drupal has no REST DELETE route for users, which `drupal.user_delete: hard_delete` needs: enable core RESTful Web Services (`rest`) and import scripts/drupal/rest.resource.entity.user.yml (README: The Drupal side).",
        ),
        RestResource::AuthNotAllowed => Some(
            "Drupal's REST user resource does not accept the gateway's authentication: list both `basic_auth` and `cookie` in the authentication of `rest.resource.entity.user` (`cookie` is what `drupal.auth: session` uses), as scripts/drupal/rest.resource.entity.user.yml does.",
        ),
        RestResource::Ready | RestResource::Unknown => None,
    }
}

fn jsonapi_write(method: &'static str, path: String, body: Value) -> DrupalCall {
    DrupalCall {
        method,
        path,
        content_type: Some(JSONAPI_CONTENT_TYPE),
        body: Some(serde_json::to_vec(&body).unwrap_or_default()),
    }
}

/// A successful JSON:API document, or the SCIM error that Drupal's answer means.
pub fn expect_document(reply: &DrupalReply, ok: &[u16]) -> Result<Value, ScimError> {
    match reply {
        DrupalReply::Answer { status, body } if ok.contains(status) => {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(body).map_err(|_| {
                ScimError::bad_gateway(format!(
                    "Drupal answered {status} with a body that is not JSON."
                ))
            })
        }
        other => Err(map_failure(other)),
    }
}

/// Maps an unexpected Drupal answer onto a SCIM error. Drupal's own words are only passed on
/// for validation failures (they tell the client what to fix); never a raw body.
pub fn map_failure(reply: &DrupalReply) -> ScimError {
    let (status, body) = match reply {
        DrupalReply::Answer { status, body } => (*status, body.as_slice()),
        DrupalReply::Failed => {
            return ScimError::bad_gateway("The call to Drupal failed before an answer arrived.")
        }
    };
    let details = error_details(body);
    if let (403, Some(permissions)) = (status, required_permissions(&details)) {
        return ScimError::bad_gateway(format!(
            "Drupal refused the write: the gateway's service account lacks the permission {permissions}; grant it to the account's role in Drupal."
        ));
    }
    match status {
        403 if details.iter().any(|d| d.contains("the selected field")) => ScimError::bad_gateway(
            "Drupal does not let the service account write one of the mapped fields; check the field permissions.",
        ),
        401 | 403 => service_account_refused(),
        404 => ScimError::not_found("The resource does not exist."),
        405 if details.iter().any(|d| d.contains("read operations")) => ScimError::bad_gateway(
            "Drupal's JSON:API accepts only read operations: allow writes at /admin/config/services/jsonapi.",
        ),
        409 => ScimError::conflict("Drupal reports a conflict with an existing resource."),
        422 => validation_error(&details),
        500 if details.iter().any(|d| d.contains("Integrity constraint violation")) => {
            ScimError::conflict(
                "Drupal's database refused the userName as a duplicate: it equals another account's \
in the database's comparison (which may ignore case and accents), or another account was created \
with it at the same time. Choose another userName, or retry.",
            )
        }
        503 if body.starts_with(b"upstream connect error") || body.starts_with(b"no healthy upstream") => {
            ScimError::new(503, None, "Drupal is unreachable.")
        }
        503 => ScimError::new(503, None, "Drupal is unavailable (maintenance mode or overloaded).")
            .with_header("retry-after", "10"),
        504 => ScimError::new(504, None, "Drupal did not answer in time."),
        _ => ScimError::bad_gateway(format!("Drupal answered {status} unexpectedly.")),
    }
}

/// The permissions a 403 names ("The following permissions are required: 'create terms in
/// scim_groups' OR 'administer taxonomy'."), quoted and joined with "or"; `None` when it
/// names none. Drupal gives the same answer to a service account it did not accept, but by
/// then the request has already read through it (or the start-up check has), so the
/// missing permission is the likely cause.
pub fn required_permissions(details: &[String]) -> Option<String> {
    let detail = details
        .iter()
        .find(|d| d.contains("permissions are required") || d.contains("permission is required"))?;
    let names: Vec<&str> = detail.split('\'').skip(1).step_by(2).collect();
    (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(" or ")
    })
}

/// The `detail` texts of a JSON:API error document.
pub fn error_details(body: &[u8]) -> Vec<String> {
    let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    doc.get("errors")
        .and_then(Value::as_array)
        .map(|errs| {
            errs.iter()
                .filter_map(|e| e.get("detail").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Drupal's 422 violations in SCIM terms: "already taken" is a uniqueness conflict,
/// anything else an invalid value, with Drupal's field names replaced by SCIM's.
fn validation_error(details: &[String]) -> ScimError {
    let scim_words: Vec<String> = details.iter().map(|d| scim_wording(d)).collect();
    let text = if scim_words.is_empty() {
        "Drupal rejected the values.".to_string()
    } else {
        scim_words.join(" ")
    };
    if details.iter().any(|d| d.contains("is already taken")) {
        ScimError::conflict(text)
    } else {
        ScimError::new(400, Some(ScimType::InvalidValue), text)
    }
}

fn scim_wording(detail: &str) -> String {
    let (path, message) = detail.split_once(": ").unwrap_or(("", detail));
    let field = path.split('.').next().unwrap_or("");
    let scim = match field {
        "name" => "userName",
        "mail" => "emails",
        "status" => "active",
        "pass" => "password",
        _ => "",
    };
    if scim.is_empty() {
        message.to_string()
    } else {
        format!("{scim}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Value {
        json!({"type": "user--user", "id": "7724f730-7aca-4819-aaee-90673a0141a4",
            "attributes": {"name": "alice", "mail": "alice@example.com", "status": true,
                "created": "2026-11-28T11:44:27+00:00", "changed": "2026-11-28T11:44:27+00:00",
                "drupal_internal__uid": 3, "timezone": "UTC"}})
    }

    #[test]
    fn maps_a_drupal_user_onto_scim() {
        let m = UserMapping::core();
        let u = parse_user(&alice(), &m).unwrap();
        assert!(!u.fields.contains_key("timezone"));
        let s = Value::Object(u.to_scim(&m, "http://gw/scim/v2"));
        assert_eq!(s["schemas"], json!([USER_SCHEMA]));
        assert_eq!(s["id"], "7724f730-7aca-4819-aaee-90673a0141a4");
        assert_eq!(s["userName"], "alice");
        assert_eq!(
            s["emails"],
            json!([{"value": "alice@example.com", "type": "work"}])
        );
        assert_eq!(s["active"], true);
        assert_eq!(
            s["meta"]["location"],
            "http://gw/scim/v2/Users/7724f730-7aca-4819-aaee-90673a0141a4"
        );
        assert!(s["meta"]["version"]
            .as_str()
            .unwrap()
            .starts_with("W/\"20261128114427-"));
        assert!(s.get("password").is_none());
    }

    #[test]
    fn version_changes_with_content_within_the_same_second() {
        let m = UserMapping::core();
        let a = parse_user(&alice(), &m).unwrap();
        let mut b = a.clone();
        b.fields.insert("status".into(), json!(false));
        assert_ne!(a.version(&m), b.version(&m));
    }

    #[test]
    fn label_only_objects_mean_the_service_account_was_refused() {
        let e = parse_user(
            &json!({"type": "user--user", "id": "x", "attributes": {"display_name": "alice"}}),
            &UserMapping::core(),
        )
        .unwrap_err();
        assert_eq!(e.status, 502);
        assert!(e.detail.contains("service account"));
    }

    #[test]
    fn the_anonymous_user_is_recognised_by_its_label() {
        assert!(is_anonymous_label(
            &json!({"id": "x", "attributes": {"display_name": "Anonymous"}})
        ));
        assert!(!is_anonymous_label(
            &json!({"id": "x", "attributes": {"display_name": "alice"}})
        ));
        assert!(!is_anonymous_label(&alice()));
        assert!(is_label_only(
            &json!({"id": "x", "attributes": {"display_name": "alice"}})
        ));
        assert!(!is_label_only(
            &json!({"id": "x", "attributes": {"display_name": "Anonymous"}})
        ));
        assert!(!is_label_only(&alice()));
        // A read of ids only (a counting probe) is no label.
        assert!(!is_label_only(
            &json!({"id": "x", "attributes": {"drupal_internal__uid": 5}})
        ));
    }

    #[test]
    fn uuids_must_be_drupal_shaped() {
        assert!(is_uuid("7724f730-7aca-4819-aaee-90673a0141a4"));
        for s in [
            "123",
            "admin",
            "../jsonapi",
            "7724F730-7aca-4819-aaee-90673a0141a4",
            "7724f730-7aca-4819-aaee-90673a0141a4x",
        ] {
            assert!(!is_uuid(s), "{s}");
        }
    }

    #[test]
    fn drupal_failures_map_to_scim_statuses() {
        let ans = |status: u16, body: &str| DrupalReply::Answer {
            status,
            body: body.as_bytes().to_vec(),
        };
        let dup = r#"{"errors":[{"status":"422","detail":"name: The username alice is already taken."}]}"#;
        let bad = r#"{"errors":[{"status":"422","detail":"mail.0.value: This value is not a valid email address."}]}"#;
        let race = r#"{"errors":[{"status":"500","detail":"SQLSTATE[23000]: Integrity constraint violation: 19 UNIQUE"}]}"#;
        let field = r#"{"errors":[{"status":"403","detail":"The current user is not allowed to PATCH the selected field (field_x)."}]}"#;
        let e = map_failure(&ans(422, dup));
        assert_eq!((e.status, e.scim_type), (409, Some(ScimType::Uniqueness)));
        assert_eq!(e.detail, "userName: The username alice is already taken.");
        let e = map_failure(&ans(422, bad));
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
        assert_eq!(e.detail, "emails: This value is not a valid email address.");
        assert_eq!(map_failure(&ans(500, race)).status, 409);
        assert!(map_failure(&ans(403, field))
            .detail
            .contains("mapped fields"));
        assert_eq!(map_failure(&ans(403, "{}")).status, 502);
        assert_eq!(map_failure(&ans(401, "{}")).status, 502);
        // Drupal 10.6.15's term write refused for a missing permission names it; the
        // password is not blamed.
        for verb in ["create", "edit", "delete"] {
            let body = format!(
                r#"{{"errors":[{{"title":"Forbidden","status":"403","detail":"The following permissions are required: \u0027{verb} terms in scim_groups\u0027 OR \u0027administer taxonomy\u0027."}}]}}"#
            );
            let e = map_failure(&ans(403, &body));
            assert_eq!(e.status, 502);
            assert!(
                e.detail.contains(&format!(
                    "lacks the permission '{verb} terms in scim_groups' or 'administer taxonomy'"
                )),
                "{}",
                e.detail
            );
            assert!(!e.detail.contains("password"), "{}", e.detail);
        }
        assert_eq!(
            map_failure(&ans(500, "boom SELECT * FROM users")).status,
            502
        );
        assert!(!map_failure(&ans(500, "boom SELECT * FROM users"))
            .detail
            .contains("SELECT"));
        assert_eq!(
            map_failure(&ans(
                503,
                "upstream connect error or disconnect/reset before headers"
            ))
            .status,
            503
        );
        assert_eq!(
            map_failure(&ans(504, "upstream request timeout")).status,
            504
        );
        assert_eq!(map_failure(&DrupalReply::Failed).status, 502);
    }

    #[test]
    fn list_queries_encode_sort_and_exclude_retired_accounts() {
        let m = UserMapping::core();
        let calls = Calls {
            jsonapi: "/jsonapi",
            mapping: &m,
            groups: None,
        };
        let c = calls.list_users(
            &[("filter[name]".into(), "a&b".into())],
            Some("-name"),
            50,
            50,
        );
        assert!(c.path.starts_with(
            "/jsonapi/user/user?filter[name]=a%26b&filter[scim_auth][condition][path]=status"
        ));
        assert!(c.path.contains("sort=-name%2Cdrupal_internal__uid"));
        assert!(c.path.contains("fields[user--user]=display_name%2Cdrupal_internal__uid%2Ccreated%2Cchanged%2Cinit%2Croles%2Cname%2Cmail%2Cstatus"));
        assert!(c.path.ends_with("page[offset]=50&page[limit]=50"));
    }

    #[test]
    fn retiring_frees_name_and_mail() {
        let m = UserMapping::core();
        let calls = Calls {
            jsonapi: "/jsonapi",
            mapping: &m,
            groups: None,
        };
        let c = calls.retire_user("7724f730-7aca-4819-aaee-90673a0141a4");
        let body: Value = serde_json::from_slice(c.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body["data"]["attributes"]["name"],
            "scimretired7724f7307aca4819aaee90673a0141a4"
        );
        assert_eq!(body["data"]["id"], "7724f730-7aca-4819-aaee-90673a0141a4");
        let mut u = parse_user(&alice(), &m).unwrap();
        u.fields.insert("name".into(), json!("scimretired7724"));
        assert!(u.is_retired());
    }
}
