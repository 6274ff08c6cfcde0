//! Users as the user flows read them from Drupal's documents and show them to the IdP: one
//! user or a page of them, live or retired, writable by SCIM or not, and the SCIM resource
//! and response with the request's projection and, with adopting on, the address as userName.

use crate::config::Config;
use crate::drupal::jsonapi::{self, Calls, DrupalUser};
use crate::flows::audit::Outcome;
use crate::flows::paging::Found;
use crate::flows::request::{etag_matches, precondition_failed};
use crate::http::{scim_json as json_response, DrupalReply, Step};
use crate::scim::error::ScimError;
use crate::scim::mapping::UserMapping;
use crate::scim::projection::Projection;
use serde_json::{Map, Value};

/// How a request shows users: where they live, which attributes, and whose userName.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserView {
    pub(crate) base_url: String,
    pub(crate) projection: Projection,
    /// `adopt: "mail"`: users show their e-mail address as userName.
    pub(crate) adopt_view: bool,
}

impl UserView {
    pub(crate) fn scim_user(&self, user: &DrupalUser, mapping: &UserMapping) -> Value {
        self.scim_user_at(user, mapping, user.version(mapping))
    }

    fn scim_user_at(&self, user: &DrupalUser, mapping: &UserMapping, version: String) -> Value {
        self.finish_user(user, user.to_scim_at(mapping, &self.base_url, version))
    }

    /// The answer's resource from the user's `to_scim` view.
    pub(crate) fn finish_user(&self, user: &DrupalUser, mut resource: Map<String, Value>) -> Value {
        if self.adopt_view {
            crate::flows::adoption::present(user, &mut resource);
        }
        self.projection.apply(&mut resource);
        Value::Object(resource)
    }

    pub(crate) fn user_response(
        &self,
        status: u16,
        user: &DrupalUser,
        mapping: &UserMapping,
    ) -> Step {
        self.user_response_at(status, user, mapping, user.version(mapping))
    }

    /// `user_response` with the user's version computed already.
    pub(crate) fn user_response_at(
        &self,
        status: u16,
        user: &DrupalUser,
        mapping: &UserMapping,
        version: String,
    ) -> Step {
        let mut headers = vec![("etag".to_string(), version.clone())];
        if status == 201 {
            headers.push((
                "location".to_string(),
                format!("{}/Users/{}", self.base_url, user.uuid),
            ));
        }
        json_response(status, &self.scim_user_at(user, mapping, version), headers)
    }
}

/// The Drupal calls on users.
pub(crate) fn user_calls(config: &Config) -> Calls<'_> {
    Calls {
        jsonapi: &config.drupal.jsonapi_prefix,
        mapping: &config.mapping,
        groups: config.groups.as_ref(),
    }
}

/// Reads one user of a document, with its groups when they are configured.
pub(crate) fn read_user(
    doc: &Value,
    resource: &Value,
    config: &Config,
) -> Result<DrupalUser, ScimError> {
    let mut user = jsonapi::parse_user(resource, &config.mapping)?;
    if let Some(g) = &config.groups {
        let included = doc
            .get("included")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        jsonapi::attach_groups(&mut user, resource, &g.membership_field, included);
    }
    Ok(user)
}

/// A user read by id, where a retired account or Drupal's 404 both mean "no such user".
pub(crate) fn live_user(reply: &DrupalReply, config: &Config) -> Result<DrupalUser, ScimError> {
    if let DrupalReply::Answer { status: 404, .. } = reply {
        return Err(ScimError::not_found("User not found."));
    }
    let doc = jsonapi::expect_document(reply, &[200])?;
    let data = doc.get("data").unwrap_or(&Value::Null);
    // Drupal's anonymous user (uid 0) is no SCIM user, whatever its label.
    if jsonapi::is_label_view(data) {
        return Err(ScimError::not_found("User not found."));
    }
    let user = read_user(&doc, data, config)?;
    if user.is_retired() {
        return Err(ScimError::not_found("User not found."));
    }
    Ok(user)
}

/// The user a PUT, PATCH or DELETE is about to write: live, one SCIM may write (`protection`),
/// and at the version `If-Match` names, if any.
pub(crate) fn writable_user(
    reply: &DrupalReply,
    config: &Config,
    if_match: Option<&str>,
    outcome: &mut Outcome,
) -> Result<DrupalUser, ScimError> {
    let user = live_user(reply, config)?;
    outcome.touched(&user.uuid, user.uid);
    config
        .protection
        .check(user.uid, user.name(), user.roles.as_deref())?;
    if if_match.is_some_and(|t| !etag_matches(t, &user.version(&config.mapping))) {
        return Err(precondition_failed());
    }
    Ok(user)
}

pub(crate) struct Page {
    /// The live users of the page (a retired account Drupal listed anyway is dropped).
    pub(crate) users: Vec<DrupalUser>,
    /// How many resources Drupal's page held.
    pub(crate) places: usize,
    pub(crate) has_next: bool,
}

impl Page {
    pub(crate) fn found(&self) -> Found {
        Found {
            len: self.places,
            has_next: self.has_next,
        }
    }
}

pub(crate) fn read_page(reply: &DrupalReply, config: &Config) -> Result<Page, ScimError> {
    let doc = jsonapi::expect_document(reply, &[200])?;
    let data = doc
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad_gateway("Drupal's user list has no `data` array."))?;
    let all = data
        .iter()
        .map(|d| read_user(&doc, d, config))
        .collect::<Result<Vec<_>, _>>()?;
    let places = all.len();
    let users = all.into_iter().filter(|u| !u.is_retired()).collect();
    let has_next = doc.get("links").and_then(|l| l.get("next")).is_some();
    Ok(Page {
        users,
        places,
        has_next,
    })
}
