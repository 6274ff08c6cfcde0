//! The startup checks against the real Drupal: one JSON:API query that names every mapped
//! field, so a field Drupal does not have (a typo, a field not yet created) is found when the
//! gateway starts, not when the first IdP write fails; and, with `hard_delete`, one REST call
//! that tells whether core REST's user resource exists and takes the gateway's
//! authentication. The same query asks for accounts holding a role, with their roles: account
//! protection reads each account's roles, so a Drupal that hides them (JSON:API Extras
//! renaming or disabling `roles`, a core without `meta.drupal_internal__target_id`) stops the
//! gateway rather than making every administrator look role-less. In the same round: the
//! permissions of the roles the configuration makes writable (`groups.role_grants`,
//! `allowed_roles`), refused when one lets its holders take over the site, and the service
//! account's uid, which account protection then matches besides its name.

use crate::config::Config;
use crate::drupal::jsonapi::{map_failure, RestResource};
use crate::drupal::query::DrupalQuery;
use crate::http::{DrupalCall, DrupalReply, Response};
use crate::runtime::store::{cas_update, SharedStore};
use crate::scim::error::ScimError;
use serde_json::Value;

/// What the check found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Drupal has not answered the check yet (the gateway just started).
    Pending,
    /// Every mapped field exists, and the service account may filter on them.
    Ready,
    /// Drupal's user entity has no such field: SCIM requests are refused until the
    /// configuration is fixed, rather than half-applied.
    MissingField(String),
    /// Drupal's user resources do not show the accounts' role machine names (why): account
    /// protection cannot tell administrators apart, so SCIM requests are refused.
    RolesUnreadable(String),
    /// A role the configuration makes writable is an administrator role or holds a
    /// take-over permission, or its permissions cannot be read (why): SCIM requests are
    /// refused, as a token would otherwise be enough to take over the site.
    UnsafeRoles(String),
    /// Drupal refused the service account; the check is repeated.
    Refused,
    /// Drupal could not be asked, or gave an answer the check cannot read (why); the check
    /// is repeated.
    Unknown(String),
}

impl Verdict {
    /// Whether the check is settled (no need to ask again).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Verdict::Ready
                | Verdict::MissingField(_)
                | Verdict::RolesUnreadable(_)
                | Verdict::UnsafeRoles(_)
        )
    }
}

/// Seconds a client is asked to wait while the check has not passed: the check is repeated
/// every 2 s.
const RETRY_AFTER_S: &str = "2";

/// Whether a SCIM request may be served, and if not the answer. Nothing is served before the
/// mapping was checked against Drupal: not even discovery, whose schema lists the mapped
/// attributes, so that a client never sees a gateway that later turns out misconfigured.
pub fn admission(verdict: &Verdict) -> Option<Response> {
    let error = match verdict {
        Verdict::Ready => return None,
        Verdict::Pending => ScimError::new(
            503,
            None,
            "The gateway is starting: its start-up check of the attribute mapping against Drupal has not completed yet.",
        ),
        Verdict::MissingField(field) => missing_field(field),
        Verdict::RolesUnreadable(why) => ScimError::bad_gateway(format!(
            "The gateway refuses to serve: {why} Without them it cannot tell which accounts are administrators (read-only to SCIM)."
        )),
        Verdict::UnsafeRoles(why) => {
            ScimError::bad_gateway(format!("The gateway refuses to serve: {why}"))
        }
        // The same answer as a request Drupal refuses: the client's fix is the same.
        Verdict::Refused => ScimError::bad_gateway(format!(
            "{} (The gateway's start-up check of the attribute mapping was refused; it is repeated every {RETRY_AFTER_S} s.)",
            crate::drupal::jsonapi::service_account_refused().detail
        )),
        Verdict::Unknown(why) => ScimError::new(
            503,
            None,
            format!("The gateway could not check its attribute mapping against Drupal yet: {why}"),
        ),
    };
    Some(
        error
            .with_header("retry-after", RETRY_AFTER_S)
            .into_response(),
    )
}

/// The shared-data key under which the verdict for this configuration (Drupal, account and
/// mapping) is published to every worker.
pub fn shared_key(config: &Config, username: &str) -> String {
    let what = format!(
        "{}|{}|{username}|{}",
        config.drupal.cluster,
        config.drupal.authority,
        call(config).path
    );
    let digest = crate::hex::sha256_hex(&what);
    format!("scim.startup_check.{}", digest.get(..16).unwrap_or(&digest))
}

/// Publishes a VM's verdict to the others. A settled verdict is never replaced by an
/// unsettled one (a later blip of Drupal's does not undo another worker's check).
pub fn publish(store: &mut dyn SharedStore, key: &str, verdict: &Verdict) {
    let Some(text) = encode(verdict) else {
        return;
    };
    cas_update(store, key, |current| {
        let current = current.as_deref().and_then(decode);
        if current.as_ref().is_some_and(Verdict::is_final) && !verdict.is_final() {
            return None;
        }
        (current.as_ref() != Some(verdict)).then(|| (text.clone().into_bytes(), ()))
    });
}

/// What a VM goes by: its own verdict when settled, else a settled one another worker
/// published (so that every worker serves as soon as one has checked), else its own, unless
/// it has not heard from Drupal yet and another worker has.
pub fn effective(local: &Verdict, store: &dyn SharedStore, key: &str) -> Verdict {
    if local.is_final() {
        return local.clone();
    }
    let shared = store
        .get(key)
        .ok()
        .and_then(|(bytes, _)| bytes)
        .as_deref()
        .and_then(decode);
    match shared {
        Some(v) if v.is_final() || *local == Verdict::Pending => v,
        _ => local.clone(),
    }
}

fn encode(verdict: &Verdict) -> Option<String> {
    match verdict {
        Verdict::Pending => None,
        Verdict::Ready => Some("ready".into()),
        Verdict::MissingField(f) => Some(format!("missing:{f}")),
        Verdict::RolesUnreadable(why) => Some(format!("roles:{why}")),
        Verdict::UnsafeRoles(why) => Some(format!("unsafe:{why}")),
        Verdict::Refused => Some("refused".into()),
        Verdict::Unknown(why) => Some(format!("unknown:{why}")),
    }
}

fn decode(bytes: &[u8]) -> Option<Verdict> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(match text.split_once(':') {
        None if text == "ready" => Verdict::Ready,
        None if text == "refused" => Verdict::Refused,
        Some(("missing", f)) => Verdict::MissingField(f.to_string()),
        Some(("roles", why)) => Verdict::RolesUnreadable(why.to_string()),
        Some(("unsafe", why)) => Verdict::UnsafeRoles(why.to_string()),
        Some(("unknown", why)) => Verdict::Unknown(why.to_string()),
        _ => return None,
    })
}

/// `GET /jsonapi/user/user` with a condition on every mapped field, or-ed with "holds a role",
/// so that the answer (if any account holds a role) shows how Drupal names roles.
pub fn call(config: &Config) -> DrupalCall {
    let mut q = DrupalQuery::new();
    q.push("filter[scim_probe][group][conjunction]", "OR");
    for (i, field) in config.mapping.drupal_fields().enumerate() {
        let key = format!("filter[scim_probe{i}][condition]");
        q.push(&format!("{key}[path]"), field)
            .push(&format!("{key}[operator]"), "IS NULL")
            .push(&format!("{key}[memberOf]"), "scim_probe");
    }
    q.push("filter[scim_probe_roles][condition][path]", ROLE_ID_PATH)
        .push(
            "filter[scim_probe_roles][condition][operator]",
            "IS NOT NULL",
        )
        .push(
            "filter[scim_probe_roles][condition][memberOf]",
            "scim_probe",
        );
    // The guard makes a refused service account a 403 (the OR group alone is public).
    crate::drupal::jsonapi::push_auth_guard(&mut q);
    q.push("fields[user--user]", "drupal_internal__uid,roles")
        .push("page[limit]", "1");
    DrupalCall {
        method: "GET",
        path: format!("{}/user/user{}", config.drupal.jsonapi_prefix, q.build()),
        content_type: None,
        body: None,
    }
}

/// The filter path of a role's machine name (Drupal 10.3.6 answers it, transcript 030).
const ROLE_ID_PATH: &str = "roles.meta.drupal_internal__target_id";

const ROLES_HIDDEN: &str = "Drupal's user resources do not show the accounts' roles with their machine names (`roles[].meta.drupal_internal__target_id`): the `roles` field is renamed or disabled (JSON:API Extras), or this Drupal core is too old.";

pub fn read(reply: &DrupalReply) -> Verdict {
    match reply {
        DrupalReply::Answer { status: 200, body } => read_roles(body),
        DrupalReply::Answer { status: 400, body } => {
            let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let detail = doc
                .pointer("/errors/0/detail")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // "Invalid nested filtering. The field `field_x`, given in the path `field_x`, does not exist."
            match detail.split('`').nth(1) {
                // Drupal names the first segment of the path it cannot resolve.
                _ if detail.contains("`roles") => {
                    Verdict::RolesUnreadable(format!("{ROLES_HIDDEN} (Drupal: {detail})"))
                }
                Some(field) if detail.contains("does not exist") => {
                    Verdict::MissingField(field.to_string())
                }
                _ => Verdict::Unknown(map_failure(reply).detail),
            }
        }
        DrupalReply::Answer {
            status: 401 | 403, ..
        } => Verdict::Refused,
        _ => Verdict::Unknown(map_failure(reply).detail),
    }
}

/// A 200: every full account shown must show its roles by machine name.
fn read_roles(body: &[u8]) -> Verdict {
    let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let hidden = doc
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|u| u.pointer("/attributes/drupal_internal__uid").is_some())
        .any(|u| crate::config::protection::roles_of(u).is_none());
    if hidden {
        Verdict::RolesUnreadable(ROLES_HIDDEN.into())
    } else {
        Verdict::Ready
    }
}

/// A log line for a verdict.
pub fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Ready => "attribute mapping checked against Drupal: every mapped user field exists".into(),
        Verdict::MissingField(f) => format!(
            "invalid plugin configuration: field `attributes`: Drupal's user entity has no field `{f}`; SCIM requests are refused until it exists or the mapping is fixed"
        ),
        Verdict::RolesUnreadable(why) => format!(
            "account protection cannot work: {why} SCIM requests are refused until Drupal's user resources show `roles` with `meta.drupal_internal__target_id`"
        ),
        Verdict::UnsafeRoles(why) => format!(
            "account protection refuses the configuration: {why} SCIM requests are refused until it is fixed (a restart is needed)"
        ),
        Verdict::Refused => "Drupal refused the gateway's service account while checking the attribute mapping; check DRUPAL_USERNAME/DRUPAL_PASSWORD, the 'administer users' permission and flood control".into(),
        Verdict::Unknown(why) => format!("could not check the attribute mapping against Drupal yet: {why}"),
        Verdict::Pending => "the attribute mapping has not been checked against Drupal yet".into(),
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

/// With `groups`: what the start-up check learnt of the service account's right to create
/// groups (terms of the vocabulary).
#[derive(Debug, Clone, PartialEq)]
pub enum TermAccess {
    /// Not known yet (not asked, or no answer the check can read): asked again.
    Unknown,
    Ready,
    /// Drupal names the permission(s) the account lacks.
    MissingPermission(String),
    /// No JSON:API resource for the vocabulary: it does not exist.
    MissingVocabulary,
}

/// `POST /jsonapi/taxonomy_term/{vocabulary}` with an empty document. JSON:API checks create
/// access on the route before it reads the body (Drupal 10.6.15: 403 "The following
/// permissions are required: 'create terms in scim_groups' OR 'administer taxonomy'." without
/// it, 400 "Resource object must include a \"type\"." with it), so nothing is created.
pub fn vocabulary_call(config: &Config, vocabulary: &str) -> DrupalCall {
    DrupalCall {
        method: "POST",
        path: format!(
            "{}/taxonomy_term/{vocabulary}",
            config.drupal.jsonapi_prefix
        ),
        content_type: Some(crate::drupal::jsonapi::JSONAPI_CONTENT_TYPE),
        body: Some(b"{}".to_vec()),
    }
}

pub fn read_vocabulary(reply: &DrupalReply) -> TermAccess {
    match reply {
        DrupalReply::Answer { status: 400, .. } => TermAccess::Ready,
        DrupalReply::Answer { status: 404, .. } => TermAccess::MissingVocabulary,
        DrupalReply::Answer { status: 403, body } => {
            match crate::drupal::jsonapi::required_permissions(
                &crate::drupal::jsonapi::error_details(body),
            ) {
                Some(p) => TermAccess::MissingPermission(p),
                None => TermAccess::Unknown,
            }
        }
        _ => TermAccess::Unknown,
    }
}

/// A log line for the vocabulary check; `None` while it is not known.
pub fn describe_vocabulary(access: &TermAccess, vocabulary: &str) -> Option<(log::Level, String)> {
    match access {
        TermAccess::Unknown => None,
        TermAccess::Ready => Some((
            log::Level::Info,
            format!("groups: the service account may create terms in the vocabulary `{vocabulary}`"),
        )),
        TermAccess::MissingPermission(p) => Some((
            log::Level::Error,
            format!("groups: the service account lacks the permission {p}: POST /Groups will fail with 502 until it is granted (also check 'edit terms in {vocabulary}' and 'delete terms in {vocabulary}')"),
        )),
        TermAccess::MissingVocabulary => Some((
            log::Level::Error,
            format!("groups: Drupal has no vocabulary `{vocabulary}` (JSON:API answered 404); create it or fix `groups.vocabulary`"),
        )),
    }
}

/// The roles the configuration makes writable besides `authenticated`, each with the setting
/// that names it.
pub fn named_roles(config: &Config) -> Vec<(&str, &'static str)> {
    let granted = config
        .groups
        .as_ref()
        .map(crate::config::groups::GroupsConfig::managed_roles)
        .unwrap_or_default();
    config
        .protection
        .writable_roles
        .iter()
        .map(String::as_str)
        .filter(|r| *r != "authenticated")
        .map(|r| {
            let setting = if granted.contains(&r) {
                "groups.role_grants"
            } else {
                "allowed_roles"
            };
            (r, setting)
        })
        .collect()
}

/// `GET /jsonapi/user_role/user_role` with each role's machine name, `is_admin` and
/// `permissions` (config entities: readable with 'administer permissions' only; without it
/// Drupal 10.6.15 and 11.4.5 answer 200 with no data and every role under `meta.omitted`).
pub fn roles_call(config: &Config) -> DrupalCall {
    DrupalCall {
        method: "GET",
        path: crate::drupal::groups::roles_path(&config.drupal.jsonapi_prefix),
        content_type: None,
        body: None,
    }
}

/// The verdict on the named roles: `Ready`, `UnsafeRoles` (settled) or `Unknown` (asked again).
pub fn read_roles_check(reply: &DrupalReply, config: &Config) -> Verdict {
    let named = named_roles(config);
    let doc = match reply {
        DrupalReply::Answer { status: 200, body } => {
            serde_json::from_slice::<Value>(body).unwrap_or(Value::Null)
        }
        DrupalReply::Answer {
            status: 403 | 404, ..
        } => {
            return Verdict::UnsafeRoles(unreadable_roles(
                &named,
                "JSON:API has no readable `user_role` resource",
            ));
        }
        _ => return Verdict::Unknown(map_failure(reply).detail),
    };
    let names: Vec<&str> = named.iter().map(|(r, _)| *r).collect();
    if let Some((role, why)) = crate::drupal::groups::dangerous_grant(&doc, &names) {
        let setting = named
            .iter()
            .find(|(r, _)| *r == role)
            .map_or("allowed_roles", |(_, s)| *s);
        return Verdict::UnsafeRoles(format!(
            "the Drupal role `{role}` named in `{setting}` {why}: accounts holding it would be writable through SCIM{}, so a SCIM token would be enough to take over the site. Remove it from `{setting}`, or take the permission from the role.",
            if setting == "groups.role_grants" { " and the IdP could grant it" } else { "" }
        ));
    }
    let data = doc.get("data").and_then(Value::as_array);
    let shown = |role: &str| {
        data.into_iter().flatten().find(|r| {
            r.pointer("/attributes/drupal_internal__id")
                .and_then(Value::as_str)
                == Some(role)
        })
    };
    let withheld = doc.pointer("/meta/omitted").is_some();
    let unreadable: Vec<(&str, &'static str)> = named
        .iter()
        .copied()
        .filter(|(role, _)| match shown(role) {
            // Shown: both answers must be there to clear it.
            Some(r) => {
                r.pointer("/attributes/is_admin")
                    .and_then(Value::as_bool)
                    .is_none()
                    || r.pointer("/attributes/permissions")
                        .and_then(Value::as_array)
                        .is_none()
            }
            // Not shown: a role Drupal does not have holds nothing, unless Drupal withheld
            // roles from the service account.
            None => withheld,
        })
        .collect();
    if unreadable.is_empty() {
        Verdict::Ready
    } else {
        Verdict::UnsafeRoles(unreadable_roles(
            &unreadable,
            "Drupal withholds them from the service account ('administer permissions' is required)",
        ))
    }
}

fn unreadable_roles(roles: &[(&str, &'static str)], why: &str) -> String {
    let list: Vec<String> = roles.iter().map(|(r, s)| format!("`{r}` ({s})")).collect();
    format!(
        "the gateway cannot read the permissions of the role(s) {} that its configuration makes writable: {why}. It must check that none lets its holders take over the site (is_admin, 'administer users', 'administer permissions'): give the service account's role 'administer permissions' (scripts/drupal-setup does with role grants), or remove the roles from the configuration.",
        list.join(", ")
    )
}

/// `GET /jsonapi/user/user?filter[name]=…` for the service account's uid.
pub fn service_call(config: &Config) -> DrupalCall {
    let mut q = DrupalQuery::new();
    q.push("filter[name]", &config.protection.service_username)
        .push("fields[user--user]", "drupal_internal__uid,name");
    DrupalCall {
        method: "GET",
        path: format!("{}/user/user{}", config.drupal.jsonapi_prefix, q.build()),
        content_type: None,
        body: None,
    }
}

/// The service account's uid: the one account of the answer whose name is the configured
/// one (Drupal compares names case-insensitively; the database's collation may match more).
pub fn read_service_uid(reply: &DrupalReply, username: &str) -> Option<u64> {
    let DrupalReply::Answer { status: 200, body } = reply else {
        return None;
    };
    let doc: Value = serde_json::from_slice(body).ok()?;
    let want = username.to_lowercase();
    let mut found = doc
        .get("data")?
        .as_array()?
        .iter()
        .filter(|u| {
            u.pointer("/attributes/name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.to_lowercase() == want)
        })
        .filter_map(|u| u.pointer("/attributes/drupal_internal__uid")?.as_u64());
    let uid = found.next()?;
    found.next().is_none().then_some(uid)
}

/// The shared-data key of the service account's uid, beside the verdict's.
pub fn service_uid_key(startup_key: &str) -> String {
    format!("{startup_key}.service_uid")
}

fn missing_field(field: &str) -> ScimError {
    ScimError::new(
        503,
        None,
        format!("The gateway is misconfigured: its attribute mapping names the Drupal user field `{field}`, which does not exist."),
    )
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
        assert!(c
            .path
            .contains("[path]=roles.meta.drupal_internal__target_id&"));
        assert!(c
            .path
            .contains("fields[user--user]=drupal_internal__uid%2Croles&"));
    }

    #[test]
    fn roles_without_machine_names_stop_the_gateway() {
        let ans = |status: u16, body: serde_json::Value| DrupalReply::Answer {
            status,
            body: body.to_string().into_bytes(),
        };
        let user = |roles: serde_json::Value| {
            serde_json::json!({"data": [{"type": "user--user", "id": "u",
                "attributes": {"drupal_internal__uid": 1}, "relationships": roles}]})
        };
        let named = serde_json::json!({"roles": {"data": [
            {"type": "user_role--user_role", "id": "r", "meta": {"drupal_internal__target_id": "administrator"}}]}});
        assert_eq!(read(&ans(200, user(named))), Verdict::Ready);
        assert_eq!(
            read(&ans(200, serde_json::json!({"data": []}))),
            Verdict::Ready
        );
        let unnamed =
            serde_json::json!({"roles": {"data": [{"type": "user_role--user_role", "id": "r"}]}});
        let renamed = serde_json::json!({"user_roles": {"data": []}});
        for rel in [unnamed, renamed] {
            let v = read(&ans(200, user(rel)));
            assert!(
                matches!(&v, Verdict::RolesUnreadable(w) if w.contains("JSON:API Extras")),
                "{v:?}"
            );
            assert!(v.is_final());
        }
        let gone = serde_json::json!({"errors": [{"detail": "Invalid nested filtering. The field `roles`, given in the path `roles.meta.drupal_internal__target_id`, does not exist."}]});
        let v = read(&ans(400, gone));
        assert!(
            matches!(&v, Verdict::RolesUnreadable(w) if w.contains("does not exist")),
            "{v:?}"
        );
        let r = admission(&v).unwrap();
        assert_eq!(r.status, 502);
        assert!(detail(&r).contains("administrators"), "{}", detail(&r));
        assert!(describe(&v).starts_with("account protection cannot work"));
        // Shared with the other workers as it is.
        let mut store = crate::runtime::store::MemoryStore::default();
        publish(&mut store, "k", &v);
        assert_eq!(effective(&Verdict::Pending, &store, "k"), v);
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
        assert!(
            matches!(read(&ans(503, "x")), Verdict::Unknown(why) if why.contains("unavailable"))
        );
        assert!(
            matches!(read(&DrupalReply::Failed), Verdict::Unknown(why) if why.contains("failed"))
        );
        assert!(Verdict::Ready.is_final() && !Verdict::Refused.is_final());
    }

    fn detail(r: &Response) -> String {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        v["detail"].as_str().unwrap().to_string()
    }

    #[test]
    fn nothing_is_served_before_the_check_passed() {
        assert!(admission(&Verdict::Ready).is_none());
        for (verdict, status, says) in [
            (Verdict::Pending, 503, "has not completed yet"),
            (
                Verdict::MissingField("field_title".into()),
                503,
                "`field_title`",
            ),
            (Verdict::Refused, 502, "service account"),
            (
                Verdict::Unknown("Drupal is unreachable.".into()),
                503,
                "Drupal is unreachable.",
            ),
        ] {
            let r = admission(&verdict).unwrap();
            assert_eq!(r.status, status, "{verdict:?}");
            assert!(detail(&r).contains(says), "{verdict:?}: {}", detail(&r));
            assert!(
                r.headers
                    .iter()
                    .any(|(n, v)| n == "retry-after" && v == "2"),
                "{verdict:?}"
            );
        }
    }

    #[test]
    fn a_settled_verdict_is_shared_with_every_worker() {
        use crate::runtime::store::MemoryStore;
        let mut store = MemoryStore::default();
        let key = shared_key(&config(), "svc");
        assert!(key.starts_with("scim.startup_check.") && key.len() == 35);
        assert_ne!(key, shared_key(&config(), "other"));
        // Nothing published: a VM goes by its own verdict.
        assert_eq!(effective(&Verdict::Pending, &store, &key), Verdict::Pending);
        // A VM that has not heard from Drupal takes another's unsettled verdict (and its why).
        let down = Verdict::Unknown("Drupal is unreachable.".into());
        publish(&mut store, &key, &down);
        assert_eq!(effective(&Verdict::Pending, &store, &key), down);
        assert_eq!(effective(&Verdict::Refused, &store, &key), Verdict::Refused);
        // A settled verdict wins over any unsettled one, and is not undone by a later blip.
        publish(&mut store, &key, &Verdict::Ready);
        publish(&mut store, &key, &Verdict::Refused);
        for local in [Verdict::Pending, Verdict::Refused, down.clone()] {
            assert_eq!(effective(&local, &store, &key), Verdict::Ready);
        }
        // A VM's own settled verdict stands.
        let missing = Verdict::MissingField("field_x".into());
        assert_eq!(effective(&missing, &store, &key), missing);
        publish(&mut store, &key, &missing);
        assert_eq!(effective(&Verdict::Pending, &store, &key), missing);
        // An unreadable store changes nothing.
        store.fail_all = true;
        publish(&mut store, &key, &Verdict::Ready);
        assert_eq!(effective(&Verdict::Pending, &store, &key), Verdict::Pending);
    }

    #[test]
    fn the_vocabulary_check_names_the_missing_permission() {
        let ans = |status: u16, body: &str| DrupalReply::Answer {
            status,
            body: body.as_bytes().to_vec(),
        };
        let c = vocabulary_call(&config(), "scim_groups");
        assert_eq!(
            (c.method, c.path.as_str(), c.body.as_deref()),
            (
                "POST",
                "/jsonapi/taxonomy_term/scim_groups",
                Some(&b"{}"[..])
            )
        );
        // Drupal 10.6.15's answers, verbatim.
        let allowed = r#"{"jsonapi":{"version":"1.0"},"errors":[{"title":"Bad Request","status":"400","detail":"Resource object must include a \u0022type\u0022."}]}"#;
        let refused = r#"{"jsonapi":{"version":"1.0"},"errors":[{"title":"Forbidden","status":"403","detail":"The following permissions are required: \u0027create terms in scim_groups\u0027 OR \u0027administer taxonomy\u0027."}]}"#;
        assert_eq!(read_vocabulary(&ans(400, allowed)), TermAccess::Ready);
        let missing = read_vocabulary(&ans(403, refused));
        assert_eq!(
            missing,
            TermAccess::MissingPermission(
                "'create terms in scim_groups' or 'administer taxonomy'".into()
            )
        );
        let (level, line) = describe_vocabulary(&missing, "scim_groups").unwrap();
        assert_eq!(level, log::Level::Error);
        assert!(line.contains("'create terms in scim_groups'"), "{line}");
        assert_eq!(
            read_vocabulary(&ans(404, "<html>")),
            TermAccess::MissingVocabulary
        );
        assert_eq!(read_vocabulary(&ans(403, "{}")), TermAccess::Unknown);
        assert_eq!(read_vocabulary(&DrupalReply::Failed), TermAccess::Unknown);
        assert!(describe_vocabulary(&TermAccess::Unknown, "v").is_none());
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

    fn config_with(more: serde_json::Value) -> Config {
        let mut json = serde_json::json!({"tokens": [{"label": "a", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
            "drupal": {"cluster": "d", "authority": "a"}});
        for (k, v) in more.as_object().unwrap() {
            json[k] = v.clone();
        }
        let env = |n: &str| {
            Some(
                if n == "DRUPAL_USERNAME" {
                    "scim-service"
                } else {
                    "x"
                }
                .to_string(),
            )
        };
        parse(&serde_json::to_vec(&json).unwrap(), &env).unwrap().0
    }

    fn roles_doc(roles: serde_json::Value, omitted: bool) -> DrupalReply {
        let mut doc = serde_json::json!({"data": roles});
        if omitted {
            doc["meta"] = serde_json::json!({"omitted": {"detail": "Some resources have been omitted because of insufficient authorization."}});
        }
        DrupalReply::Answer {
            status: 200,
            body: doc.to_string().into_bytes(),
        }
    }

    fn role(id: &str, is_admin: bool, perms: &[&str]) -> serde_json::Value {
        serde_json::json!({"type": "user_role--user_role", "id": format!("u-{id}"),
            "attributes": {"drupal_internal__id": id, "is_admin": is_admin, "permissions": perms}})
    }

    #[test]
    fn the_roles_the_configuration_names_are_checked_with_the_setting_that_names_them() {
        assert!(named_roles(&config()).is_empty());
        let c = config_with(serde_json::json!({"allowed_roles": ["content_editor"],
            "groups": {"role_grants": {"Eng": ["developer"]}}}));
        assert_eq!(
            named_roles(&c),
            [
                ("developer", "groups.role_grants"),
                ("content_editor", "allowed_roles")
            ]
        );
        assert!(roles_call(&c).path.starts_with(
            "/jsonapi/user_role/user_role?fields[user_role--user_role]=drupal_internal__id%2Cis_admin%2Cpermissions"
        ));
    }

    #[test]
    fn a_writable_role_that_can_take_over_the_site_stops_the_gateway() {
        let c = config_with(serde_json::json!({"allowed_roles": ["content_editor"],
            "groups": {"role_grants": {"Eng": ["developer"]}}}));
        let safe = serde_json::json!([
            role("developer", false, &["access content"]),
            role("content_editor", false, &["edit any article content"]),
            role("administrator", true, &[])
        ]);
        assert_eq!(
            read_roles_check(&roles_doc(safe, false), &c),
            Verdict::Ready
        );
        for (roles, role_name, setting, why) in [
            (
                serde_json::json!([
                    role("developer", false, &["administer users"]),
                    role("content_editor", false, &[])
                ]),
                "developer",
                "groups.role_grants",
                "holds 'administer users'",
            ),
            (
                serde_json::json!([
                    role("developer", false, &[]),
                    role("content_editor", false, &["administer permissions"])
                ]),
                "content_editor",
                "allowed_roles",
                "holds 'administer permissions'",
            ),
            (
                serde_json::json!([
                    role("developer", false, &[]),
                    role("content_editor", true, &[])
                ]),
                "content_editor",
                "allowed_roles",
                "is_admin",
            ),
        ] {
            let v = read_roles_check(&roles_doc(roles, false), &c);
            let Verdict::UnsafeRoles(text) = &v else {
                panic!("{v:?}")
            };
            assert!(
                text.contains(&format!("`{role_name}` named in `{setting}`")) && text.contains(why),
                "{text}"
            );
            assert!(v.is_final());
            let answer = admission(&v).unwrap();
            assert_eq!(answer.status, 502);
        }
    }

    #[test]
    fn roles_whose_permissions_cannot_be_read_stop_the_gateway_too() {
        let c = config_with(serde_json::json!({"allowed_roles": ["content_editor"]}));
        // Drupal 10.6.15 / 11.4.5 without 'administer permissions': no data, all omitted.
        let v = read_roles_check(&roles_doc(serde_json::json!([]), true), &c);
        assert!(
            matches!(&v, Verdict::UnsafeRoles(t) if t.contains("`content_editor` (allowed_roles)") && t.contains("'administer permissions' is required")),
            "{v:?}"
        );
        // Shown without its permissions (a sparse fieldset Drupal ignored, an override).
        let bare = serde_json::json!([{"type": "user_role--user_role", "id": "r",
            "attributes": {"drupal_internal__id": "content_editor"}}]);
        assert!(matches!(
            read_roles_check(&roles_doc(bare, false), &c),
            Verdict::UnsafeRoles(_)
        ));
        // No user_role resource at all.
        let gone = DrupalReply::Answer {
            status: 404,
            body: b"{}".to_vec(),
        };
        assert!(matches!(
            read_roles_check(&gone, &c),
            Verdict::UnsafeRoles(_)
        ));
        // A role the site does not have holds nothing; a failed call is asked again.
        assert_eq!(
            read_roles_check(&roles_doc(serde_json::json!([]), false), &c),
            Verdict::Ready
        );
        assert!(matches!(
            read_roles_check(&DrupalReply::Failed, &c),
            Verdict::Unknown(_)
        ));
        // Shared with the other workers as it is.
        let mut store = crate::runtime::store::MemoryStore::default();
        let v = Verdict::UnsafeRoles("the role `x` …".into());
        publish(&mut store, "k", &v);
        assert_eq!(effective(&Verdict::Pending, &store, "k"), v);
    }

    #[test]
    fn the_service_accounts_uid_is_the_one_account_of_that_name() {
        let c = config_with(serde_json::json!({}));
        let call = service_call(&c);
        assert!(
            call.path.contains("filter[name]=scim-service&"),
            "{}",
            call.path
        );
        let ans = |users: serde_json::Value| DrupalReply::Answer {
            status: 200,
            body: serde_json::json!({"data": users}).to_string().into_bytes(),
        };
        let user = |uid: u64, name: &str| {
            serde_json::json!({"type": "user--user", "id": "u",
            "attributes": {"drupal_internal__uid": uid, "name": name}})
        };
        assert_eq!(
            read_service_uid(
                &ans(serde_json::json!([user(7, "SCIM-Service")])),
                "scim-service"
            ),
            Some(7)
        );
        // An accent-insensitive collation's extra match is no match.
        assert_eq!(
            read_service_uid(
                &ans(serde_json::json!([
                    user(8, "scim-sérvice"),
                    user(7, "scim-service")
                ])),
                "scim-service"
            ),
            Some(7)
        );
        assert_eq!(
            read_service_uid(&ans(serde_json::json!([])), "scim-service"),
            None
        );
        // Label-only (refused) or two of the name: not known.
        let label = serde_json::json!([{"type": "user--user", "id": "u", "attributes": {"display_name": "x"}}]);
        assert_eq!(read_service_uid(&ans(label), "scim-service"), None);
        assert_eq!(
            read_service_uid(&ans(serde_json::json!([user(7, "a"), user(9, "A")])), "a"),
            None
        );
        assert_eq!(read_service_uid(&DrupalReply::Failed, "a"), None);
    }
}
