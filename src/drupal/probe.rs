//! The startup checks against the real Drupal: one JSON:API query that names every mapped
//! field, so a field Drupal does not have (a typo, a field not yet created) is found when the
//! gateway starts, not when the first IdP write fails; and, with `hard_delete`, one REST call
//! that tells whether core REST's user resource exists and takes the gateway's
//! authentication.

use crate::config::Config;
use crate::drupal::jsonapi::{map_failure, RestResource};
use crate::drupal::query::DrupalQuery;
use crate::http::{DrupalCall, DrupalReply, Response};
use crate::scim::error::ScimError;
use serde_json::Value;

/// What the check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not known yet (not run, or Drupal could not be asked): SCIM requests are served.
    Unknown,
    /// Every mapped field exists, and the service account may filter on them.
    Ready,
    /// Drupal's user entity has no such field: SCIM requests are refused until the
    /// configuration is fixed, rather than half-applied.
    MissingField(String),
    /// Drupal refused the service account; requests are served (and fail with 502 one by
    /// one), the check is repeated.
    Refused,
}

impl Verdict {
    /// Whether the check is settled (no need to ask again).
    pub fn is_final(&self) -> bool {
        matches!(self, Verdict::Ready | Verdict::MissingField(_))
    }
}

/// `GET /jsonapi/user/user` with an always-true condition on every mapped field.
pub fn call(config: &Config) -> DrupalCall {
    let mut q = DrupalQuery::new();
    q.push("filter[scim_probe][group][conjunction]", "OR");
    for (i, field) in config.mapping.drupal_fields().enumerate() {
        let key = format!("filter[scim_probe{i}][condition]");
        q.push(&format!("{key}[path]"), field)
            .push(&format!("{key}[operator]"), "IS NULL")
            .push(&format!("{key}[memberOf]"), "scim_probe");
    }
    // The guard makes a refused service account a 403 (the OR group alone is public).
    crate::drupal::jsonapi::push_auth_guard(&mut q);
    q.push("fields[user--user]", "drupal_internal__uid")
        .push("page[limit]", "1");
    DrupalCall {
        method: "GET",
        path: format!("{}/user/user{}", config.drupal.jsonapi_prefix, q.build()),
        content_type: None,
        body: None,
    }
}

pub fn read(reply: &DrupalReply) -> Verdict {
    match reply {
        DrupalReply::Answer { status: 200, .. } => Verdict::Ready,
        DrupalReply::Answer { status: 400, body } => {
            let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let detail = doc
                .pointer("/errors/0/detail")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // "Invalid nested filtering. The field `field_x`, given in the path `field_x`, does not exist."
            match detail.split('`').nth(1) {
                Some(field) if detail.contains("does not exist") => {
                    Verdict::MissingField(field.to_string())
                }
                _ => Verdict::Unknown,
            }
        }
        DrupalReply::Answer {
            status: 401 | 403, ..
        } => Verdict::Refused,
        _ => Verdict::Unknown,
    }
}

/// A log line for a verdict.
pub fn describe(verdict: &Verdict, reply: &DrupalReply) -> String {
    match verdict {
        Verdict::Ready => "attribute mapping checked against Drupal: every mapped user field exists".into(),
        Verdict::MissingField(f) => format!(
            "invalid plugin configuration: field `attributes`: Drupal's user entity has no field `{f}`; SCIM requests are refused until it exists or the mapping is fixed"
        ),
        Verdict::Refused => "Drupal refused the gateway's service account while checking the attribute mapping; check DRUPAL_USERNAME/DRUPAL_PASSWORD, the 'administer users' permission and flood control".into(),
        Verdict::Unknown => format!("could not check the attribute mapping against Drupal yet: {}", map_failure(reply).detail),
    }
}

/// `DELETE /user/0?_format=json`: Drupal never deletes its anonymous account (every operation
/// on it is forbidden), so the answer only tells whether the REST route exists (405 without
/// it) and whether it accepts the gateway's authentication (403 naming the authentication
/// method if not).
pub fn rest_call() -> DrupalCall {
    crate::drupal::jsonapi::rest_delete_user(0)
}

/// A log line for the REST check; `None` while it is not known.
pub fn describe_rest(state: RestResource) -> Option<(log::Level, String)> {
    match state {
        RestResource::Ready => Some((
            log::Level::Info,
            "hard_delete: Drupal's REST user resource accepts the gateway's DELETE".into(),
        )),
        RestResource::Unknown => None,
        missing => crate::drupal::jsonapi::rest_resource_fix(missing)
            .map(|fix| (log::Level::Error, format!("hard_delete will fail: {fix}"))),
    }
}

/// The answer to every SCIM request while the mapping names a missing field.
pub fn refusal(field: &str) -> Response {
    ScimError::new(
        503,
        None,
        format!("The gateway is misconfigured: its attribute mapping names the Drupal user field `{field}`, which does not exist."),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn config() -> Config {
        let json = serde_json::json!({"tokens": [{"label": "a", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
            "drupal": {"cluster": "d", "authority": "a"}, "attributes": [{"scim": "title", "drupal": "field_title"}]});
        let env = |_: &str| Some("x".to_string());
        parse(&serde_json::to_vec(&json).unwrap(), &env).unwrap().0
    }

    #[test]
    fn the_probe_names_every_mapped_field() {
        let c = call(&config());
        for f in [
            "[path]=name",
            "[path]=mail",
            "[path]=status",
            "[path]=field_title",
        ] {
            assert!(c.path.contains(f), "{}", c.path);
        }
    }

    #[test]
    fn verdicts() {
        let ans = |status: u16, body: &str| DrupalReply::Answer {
            status,
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(read(&ans(200, "{}")), Verdict::Ready);
        let missing = r#"{"errors":[{"detail":"Invalid nested filtering. The field `field_title`, given in the path `field_title`, does not exist."}]}"#;
        assert_eq!(
            read(&ans(400, missing)),
            Verdict::MissingField("field_title".into())
        );
        assert_eq!(read(&ans(403, "{}")), Verdict::Refused);
        assert_eq!(read(&ans(503, "x")), Verdict::Unknown);
        assert_eq!(read(&DrupalReply::Failed), Verdict::Unknown);
        assert!(Verdict::Ready.is_final() && !Verdict::Refused.is_final());
        assert_eq!(refusal("field_title").status, 503);
    }

    #[test]
    fn the_rest_check_names_the_fix() {
        let ans = |status: u16, body: &str| DrupalReply::Answer {
            status,
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(rest_call().path, "/user/0?_format=json");
        let read = |r| crate::drupal::jsonapi::rest_resource(&r);
        assert_eq!(read(ans(405, "{}")), RestResource::Missing);
        let auth = r#"{"message":"The used authentication method is not allowed on this route."}"#;
        assert_eq!(read(ans(403, auth)), RestResource::AuthNotAllowed);
        assert_eq!(read(ans(403, r#"{"message":""}"#)), RestResource::Ready);
        assert_eq!(read(ans(503, "x")), RestResource::Unknown);
        let (level, line) = describe_rest(RestResource::Missing).unwrap();
        assert_eq!(level, log::Level::Error);
        assert!(line.contains("rest.resource.entity.user.yml"));
        assert!(describe_rest(RestResource::AuthNotAllowed)
            .unwrap()
            .1
            .contains("`cookie`"));
        assert!(describe_rest(RestResource::Unknown).is_none());
    }
}
