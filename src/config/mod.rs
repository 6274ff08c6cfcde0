//! Plugin configuration: the JSON in the wasm filter's `configuration`. Parsed and checked
//! once in `on_configure`; any problem is one message naming the field, and the plugin
//! refuses to start (so Envoy never serves with a half-configured filter).

pub mod groups;
pub mod protection;

use crate::config::groups::GroupsConfig;
use crate::scim::mapping::UserMapping;
use base64::Engine;
use serde_json::{Map, Value};

pub const DEFAULT_BASE_PATH: &str = "/scim/v2";
pub const DEFAULT_JSONAPI_PREFIX: &str = "/jsonapi";
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1_048_576;
pub const DEFAULT_SESSION_MAX_AGE_S: u64 = 3_600;

/// How a SCIM DELETE of a user is carried out in Drupal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDelete {
    /// JSON:API DELETE, which runs the site's `user.settings:cancel_method`. If the account
    /// survives it (the default `user_cancel_block`), the gateway retires it: renamed and
    /// re-addressed so its userName and email are free again, blocked, hidden from SCIM.
    Cancel,
    /// Core REST `DELETE /user/{uid}`: the account is deleted, and Drupal deletes its content.
    HardDelete,
}

/// How the request log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `scim request_id=… token=… …`: key=value pairs.
    #[default]
    Text,
    /// One JSON object, for log pipelines.
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenDigest {
    pub label: String,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrupalConfig {
    pub cluster: String,
    pub authority: String,
    pub jsonapi_prefix: String,
    pub timeout_ms: u64,
    pub user_delete: UserDelete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub base_path: String,
    pub tokens: Vec<TokenDigest>,
    pub drupal: DrupalConfig,
    pub max_body_bytes: u64,
    /// Scheme and authority clients use to reach the gateway (for `meta.location`), when it
    /// differs from what Envoy sees, e.g. behind a TLS-terminating load balancer.
    pub public_url: Option<String>,
    /// The Drupal account the gateway acts as (not secret); SCIM may not change it.
    pub service_username: String,
    /// Which accounts SCIM may write (uid 1, the service account and accounts with roles
    /// outside the writable set are read-only).
    pub protection: crate::config::protection::Protection,
    /// Which SCIM attributes live in which Drupal fields.
    pub mapping: UserMapping,
    /// SCIM Groups as taxonomy terms; `None`: no `/Groups`.
    pub groups: Option<GroupsConfig>,
    /// An Envoy cluster that answers after a short delay: how a request waits for a lock.
    /// Without it, waiting re-reads the user from Drupal.
    pub wait_cluster: Option<String>,
    /// Request budgets per token label.
    pub rate_limits: Vec<crate::runtime::rate::RateLimit>,
    pub limits: Limits,
    pub log_format: LogFormat,
    /// Adopting existing accounts by e-mail (`adopt`, `adopt_rename`); off by default.
    pub adopt: Adopt,
}

/// `adopt: "mail"`: the IdP identifies people by e-mail, and an account that already has the
/// address is the person's account (see docs/existing-accounts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adopt {
    pub by_mail: bool,
    /// `adopt_rename: true`: the Drupal login name follows the IdP's userName; otherwise SCIM
    /// never renames an account while adopting is on.
    pub rename: bool,
}

/// Bounds on what one request may make the gateway do (each protects Drupal or the VM).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest `filter` accepted (characters).
    pub max_filter_length: usize,
    /// Largest `count` served (also `/ServiceProviderConfig`'s `filter.maxResults`).
    pub max_count: usize,
    /// Most Drupal pages (50 users each) read to check a filter Drupal cannot answer exactly.
    pub max_checked_pages: usize,
    /// Most member ids in one Group request.
    pub max_members_per_request: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_filter_length: 4096,
            max_count: 1000,
            max_checked_pages: 20,
            max_members_per_request: 1000,
        }
    }
}

fn parse_limits(value: Option<&Value>) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    let Some(value) = value else {
        return Ok(limits);
    };
    let obj = value
        .as_object()
        .ok_or_else(|| err("limits", "must be an object"))?;
    reject_unknown(
        obj,
        "limits.",
        &[
            "max_filter_length",
            "max_count",
            "max_checked_pages",
            "max_members_per_request",
        ],
    )?;
    let get = |key: &str, max: u64| -> Result<Option<usize>, ConfigError> {
        match opt_u64(obj, "limits.", key)? {
            None => Ok(None),
            Some(n) if (1..=max).contains(&n) => Ok(usize::try_from(n).ok()),
            Some(_) => Err(err(
                &format!("limits.{key}"),
                format!("must be an integer from 1 to {max}"),
            )),
        }
    };
    if let Some(n) = get("max_filter_length", 4096)? {
        limits.max_filter_length = n;
    }
    if let Some(n) = get("max_count", 10_000)? {
        limits.max_count = n;
    }
    if let Some(n) = get("max_checked_pages", 200)? {
        limits.max_checked_pages = n;
    }
    if let Some(n) = get("max_members_per_request", 100_000)? {
        limits.max_members_per_request = n;
    }
    Ok(limits)
}

/// How the gateway proves itself to Drupal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// HTTP Basic on every call (core `basic_auth`): simplest, but Drupal verifies the
    /// password hash on every call (about 43 ms of a ~60 ms call, per the recorded site).
    Basic,
    /// Core's JSON login once, then the session cookie (and `X-CSRF-Token` on writes), shared
    /// by every worker and renewed when it ages or Drupal stops honouring it.
    Session,
}

/// The service account's credentials, kept apart from `Config` so that only the upstream
/// session gate (fed by the host adapter) ever sees them.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// The ready `Authorization` header value (`Basic …`).
    pub authorization: String,
    pub mode: UpstreamAuth,
    /// A session older than this is replaced by a fresh login (ms).
    pub session_max_age_ms: u64,
    /// Names these credentials (a digest) so a session or a login back-off recorded for
    /// other credentials (after a config change) is ignored.
    pub account_tag: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid plugin configuration: field `{}`: {}",
            self.field, self.reason
        )
    }
}

fn err(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Parses the plugin configuration. `env` looks up VM environment variables.
pub fn parse(
    bytes: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Credentials), ConfigError> {
    let root: Value = serde_json::from_slice(bytes)
        .map_err(|e| err("(configuration)", format!("not valid JSON: {e}")))?;
    let root = root
        .as_object()
        .ok_or_else(|| err("(configuration)", "must be a JSON object"))?;
    reject_unknown(
        root,
        "",
        &[
            "base_path",
            "tokens",
            "drupal",
            "max_body_bytes",
            "public_url",
            "attributes",
            "groups",
            "wait_cluster",
            "rate_limits",
            "limits",
            "allowed_roles",
            "log_format",
            "adopt",
            "adopt_rename",
        ],
    )?;

    let base_path = opt_str(root, "", "base_path")?.unwrap_or_else(|| DEFAULT_BASE_PATH.into());
    check_path("base_path", &base_path)?;
    let base_path = base_path.trim_end_matches('/').to_string();
    if base_path.is_empty() {
        return Err(err("base_path", "must not be `/` alone"));
    }

    let tokens = parse_tokens(root.get("tokens"))?;

    let drupal_obj = root
        .get("drupal")
        .ok_or_else(|| err("drupal", "is required"))?
        .as_object()
        .ok_or_else(|| err("drupal", "must be an object"))?;
    reject_unknown(
        drupal_obj,
        "drupal.",
        &[
            "cluster",
            "authority",
            "jsonapi_prefix",
            "username_env",
            "password_env",
            "timeout_ms",
            "user_delete",
            "auth",
            "session_max_age_s",
        ],
    )?;
    let cluster = req_str(drupal_obj, "drupal.", "cluster")?;
    let authority = req_str(drupal_obj, "drupal.", "authority")?;
    if authority.contains('/') || authority.contains(char::is_whitespace) {
        return Err(err(
            "drupal.authority",
            "must be a host[:port] (the Host header Drupal expects), without scheme or path",
        ));
    }
    let jsonapi_prefix = opt_str(drupal_obj, "drupal.", "jsonapi_prefix")?
        .unwrap_or_else(|| DEFAULT_JSONAPI_PREFIX.into());
    check_path("drupal.jsonapi_prefix", &jsonapi_prefix)?;
    let jsonapi_prefix = jsonapi_prefix.trim_end_matches('/').to_string();
    let timeout_ms = opt_u64(drupal_obj, "drupal.", "timeout_ms")?.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=300_000).contains(&timeout_ms) {
        return Err(err("drupal.timeout_ms", "must be between 1 and 300000"));
    }
    let user_delete = match opt_str(drupal_obj, "drupal.", "user_delete")?.as_deref() {
        None | Some("cancel") => UserDelete::Cancel,
        Some("hard_delete") => UserDelete::HardDelete,
        Some(other) => {
            return Err(err(
                "drupal.user_delete",
                format!("`{other}` is not one of `cancel`, `hard_delete`"),
            ))
        }
    };

    let mode = match opt_str(drupal_obj, "drupal.", "auth")?.as_deref() {
        None | Some("basic") => UpstreamAuth::Basic,
        Some("session") => UpstreamAuth::Session,
        Some(other) => {
            return Err(err(
                "drupal.auth",
                format!("`{other}` is not one of `basic`, `session`"),
            ))
        }
    };
    let session_max_age_s =
        opt_u64(drupal_obj, "drupal.", "session_max_age_s")?.unwrap_or(DEFAULT_SESSION_MAX_AGE_S);
    // Drupal collects sessions idle for longer than `session.gc_maxlifetime` (200000 s by
    // default); staying far below it means a session in use is never collected.
    if !(60..=86_400).contains(&session_max_age_s) {
        return Err(err(
            "drupal.session_max_age_s",
            "must be between 60 and 86400",
        ));
    }

    let username_env =
        opt_str(drupal_obj, "drupal.", "username_env")?.unwrap_or_else(|| "DRUPAL_USERNAME".into());
    let password_env =
        opt_str(drupal_obj, "drupal.", "password_env")?.unwrap_or_else(|| "DRUPAL_PASSWORD".into());
    let username = env(&username_env).filter(|v| !v.is_empty()).ok_or_else(|| {
        err(
            "drupal.username_env",
            format!("VM environment variable `{username_env}` is not set (list it in vm_config.environment_variables)"),
        )
    })?;
    if username.contains(':') {
        return Err(err(
            "drupal.username_env",
            format!("the username in `{username_env}` must not contain `:`"),
        ));
    }
    let password = env(&password_env).filter(|v| !v.is_empty()).ok_or_else(|| {
        err(
            "drupal.password_env",
            format!("VM environment variable `{password_env}` is not set (list it in vm_config.environment_variables)"),
        )
    })?;

    let max_body_bytes = opt_u64(root, "", "max_body_bytes")?.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if !(1024..=33_554_432).contains(&max_body_bytes) {
        return Err(err("max_body_bytes", "must be between 1024 and 33554432"));
    }

    let public_url = opt_str(root, "", "public_url")?.map(|u| u.trim_end_matches('/').to_string());
    if let Some(u) = &public_url {
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains('/') => {}
            _ => {
                return Err(err(
                    "public_url",
                    "must be `http(s)://host[:port]` without a path",
                ))
            }
        }
    }

    let mapping = UserMapping::from_config(root.get("attributes"))
        .map_err(|(field, reason)| err(&field, reason))?;
    let groups = GroupsConfig::from_config(root.get("groups"))
        .map_err(|(field, reason)| err(&field, reason))?;
    let wait_cluster = opt_str(root, "", "wait_cluster")?;
    let labels: Vec<&str> = tokens.iter().map(|t| t.label.as_str()).collect();
    let rate_limits = crate::runtime::rate::from_config(root.get("rate_limits"), &labels)
        .map_err(|(field, reason)| err(&field, reason))?;
    let limits = parse_limits(root.get("limits"))?;
    let log_format = match opt_str(root, "", "log_format")?.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(err(
                "log_format",
                format!("`{other}` is not one of `text`, `json`"),
            ))
        }
    };
    let allowed_roles = parse_allowed_roles(root.get("allowed_roles"))?;
    let adopt = parse_adopt(root)?;
    let managed_roles = groups
        .as_ref()
        .map(GroupsConfig::managed_roles)
        .unwrap_or_default();
    let protection = crate::config::protection::Protection {
        service_username: username.clone(),
        writable_roles: crate::config::protection::writable_roles(&allowed_roles, &managed_roles),
        service_uid: Default::default(),
    };

    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    );
    let account_tag = crate::hex::sha256_hex(&authorization)
        .get(..16)
        .unwrap_or_default()
        .to_string();
    Ok((
        Config {
            base_path,
            tokens,
            drupal: DrupalConfig {
                cluster,
                authority,
                jsonapi_prefix,
                timeout_ms,
                user_delete,
            },
            max_body_bytes,
            public_url,
            service_username: username.clone(),
            protection,
            mapping,
            groups,
            wait_cluster,
            rate_limits,
            limits,
            log_format,
            adopt,
        },
        Credentials {
            username,
            password,
            authorization,
            mode,
            session_max_age_ms: session_max_age_s.saturating_mul(1000),
            account_tag,
        },
    ))
}

fn parse_tokens(value: Option<&Value>) -> Result<Vec<TokenDigest>, ConfigError> {
    let list = value
        .ok_or_else(|| err("tokens", "is required"))?
        .as_array()
        .ok_or_else(|| err("tokens", "must be a list of {label, sha256}"))?;
    if list.is_empty() {
        return Err(err("tokens", "must hold at least one token"));
    }
    let mut tokens: Vec<TokenDigest> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let prefix = format!("tokens[{i}].");
        let obj = item
            .as_object()
            .ok_or_else(|| err(&format!("tokens[{i}]"), "must be an object"))?;
        reject_unknown(obj, &prefix, &["label", "sha256"])?;
        let label = req_str(obj, &prefix, "label")?;
        // Labels appear in metric names and logs.
        if label.len() > 64
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(
                &format!("{prefix}label"),
                "must be 1-64 letters, digits, `_` or `-`",
            ));
        }
        if tokens.iter().any(|t| t.label == label) {
            return Err(err(
                &format!("{prefix}label"),
                format!("`{label}` is used twice"),
            ));
        }
        let hex = req_str(obj, &prefix, "sha256")?;
        let sha256 = crate::hex::decode::<32>(&hex).ok_or_else(|| {
            err(
                &format!("{prefix}sha256"),
                "must be the 64 hex digits of the token's SHA-256 digest",
            )
        })?;
        if hex.eq_ignore_ascii_case(EXAMPLE_TOKEN_SHA256) {
            return Err(err(
                &format!("{prefix}sha256"),
                "is the published example token's digest (\"change-me\"); generate your own token (scim-config token LABEL)",
            ));
        }
        tokens.push(TokenDigest { label, sha256 });
    }
    Ok(tokens)
}

/// The digest of `change-me`, the token the shipped example configurations name: anyone can
/// read it, so no gateway may accept it.
const EXAMPLE_TOKEN_SHA256: &str =
    "e2186dbdb1bb4193608605e84f33208765b5693b55edd4f730a719a100eeea6f";

/// `allowed_roles`: Drupal role machine names an account may hold and stay writable.
fn parse_allowed_roles(value: Option<&Value>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = value
        .as_array()
        .ok_or_else(|| err("allowed_roles", "must be a list of role machine names"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let role = item
            .as_str()
            .filter(|r| {
                !r.is_empty()
                    && r.len() <= 64
                    && r.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .ok_or_else(|| {
                err(
                    &format!("allowed_roles[{i}]"),
                    "must be a Drupal role machine name (a-z, 0-9, _)",
                )
            })?;
        if matches!(role, "administrator" | "anonymous") {
            return Err(err(
                &format!("allowed_roles[{i}]"),
                format!("`{role}` can never be written through SCIM"),
            ));
        }
        out.push(role.to_string());
    }
    Ok(out)
}

fn parse_adopt(root: &Map<String, Value>) -> Result<Adopt, ConfigError> {
    let by_mail = match opt_str(root, "", "adopt")?.as_deref() {
        None | Some("off") => false,
        Some("mail") => true,
        Some(other) => {
            return Err(err(
                "adopt",
                format!("`{other}` is not one of `off`, `mail`"),
            ))
        }
    };
    let rename = match root.get("adopt_rename") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(err("adopt_rename", "must be true or false")),
    };
    if rename && !by_mail {
        return Err(err("adopt_rename", "only applies with `adopt: \"mail\"`"));
    }
    Ok(Adopt { by_mail, rename })
}

fn check_path(field: &str, path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') {
        return Err(err(field, "must start with `/`"));
    }
    if path.contains(['?', '#', ' ']) || path.contains("//") {
        return Err(err(
            field,
            "must be a plain path (no query, fragment, spaces or `//`)",
        ));
    }
    Ok(())
}

fn reject_unknown(
    obj: &Map<String, Value>,
    prefix: &str,
    known: &[&str],
) -> Result<(), ConfigError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(err(
            &format!("{prefix}{k}"),
            format!("unknown field (expected one of: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn opt_str(
    obj: &Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(err(&format!("{prefix}{key}"), "must not be empty")),
        Some(_) => Err(err(&format!("{prefix}{key}"), "must be a string")),
    }
}

fn req_str(obj: &Map<String, Value>, prefix: &str, key: &str) -> Result<String, ConfigError> {
    opt_str(obj, prefix, key)?.ok_or_else(|| err(&format!("{prefix}{key}"), "is required"))
}

fn opt_u64(obj: &Map<String, Value>, prefix: &str, key: &str) -> Result<Option<u64>, ConfigError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| err(&format!("{prefix}{key}"), "must be a non-negative integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn env(name: &str) -> Option<String> {
        match name {
            "DRUPAL_USERNAME" => Some("svc".into()),
            "DRUPAL_PASSWORD" => Some("pw".into()),
            _ => None,
        }
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "tokens": [{"label": "jc", "sha256": HASH}],
            "drupal": {"cluster": "drupal", "authority": "drupal.local"}
        })
    }

    fn parse_value(v: &serde_json::Value) -> Result<(Config, Credentials), ConfigError> {
        parse(&serde_json::to_vec(v).unwrap(), &env)
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let (c, creds) = parse_value(&minimal()).unwrap();
        assert_eq!(c.base_path, "/scim/v2");
        assert_eq!(c.drupal.jsonapi_prefix, "/jsonapi");
        assert_eq!(c.drupal.timeout_ms, 5000);
        assert_eq!(c.drupal.user_delete, UserDelete::Cancel);
        assert_eq!(c.max_body_bytes, 1_048_576);
        assert_eq!(c.tokens[0].label, "jc");
        assert_eq!(c.tokens[0].sha256[0], 0x9f);
        assert_eq!(creds.authorization, "Basic c3ZjOnB3");
        assert!(!format!("{creds:?}").contains("c3Zj"));
    }

    #[test]
    fn the_published_example_token_is_refused() {
        let mut v = minimal();
        v["tokens"][0]["sha256"] = EXAMPLE_TOKEN_SHA256.to_uppercase().into();
        let e = parse_value(&v).unwrap_err();
        assert_eq!(e.field, "tokens[0].sha256");
        assert!(e.reason.contains("change-me"), "{}", e.reason);
    }

    #[test]
    fn writable_roles_are_authenticated_role_grants_and_allowed_roles() {
        let (c, _) = parse_value(&minimal()).unwrap();
        assert_eq!(c.protection.writable_roles, vec!["authenticated"]);
        assert_eq!(c.protection.service_username, "svc");
        let mut v = minimal();
        v["allowed_roles"] = serde_json::json!(["content_editor"]);
        v["groups"] = serde_json::json!({"role_grants": {"Eng": ["developer"]}});
        let (c, _) = parse_value(&v).unwrap();
        assert_eq!(
            c.protection.writable_roles,
            vec!["authenticated", "developer", "content_editor"]
        );
        for bad in [
            serde_json::json!("content_editor"),
            serde_json::json!(["Bad Role"]),
            serde_json::json!(["administrator"]),
        ] {
            let mut v = minimal();
            v["allowed_roles"] = bad;
            assert!(parse_value(&v)
                .unwrap_err()
                .field
                .starts_with("allowed_roles"));
        }
    }

    #[test]
    fn adopting_is_off_by_default_and_renaming_needs_it() {
        let (c, _) = parse_value(&minimal()).unwrap();
        assert_eq!(c.adopt, Adopt::default());
        let mut v = minimal();
        v["adopt"] = "mail".into();
        let (c, _) = parse_value(&v).unwrap();
        assert!(c.adopt.by_mail && !c.adopt.rename);
        v["adopt_rename"] = true.into();
        assert!(parse_value(&v).unwrap().0.adopt.rename);
        v["adopt"] = "off".into();
        assert_eq!(parse_value(&v).unwrap_err().field, "adopt_rename");
        v["adopt"] = "username".into();
        assert_eq!(parse_value(&v).unwrap_err().field, "adopt");
        let mut v = minimal();
        v["adopt_rename"] = "yes".into();
        assert_eq!(parse_value(&v).unwrap_err().field, "adopt_rename");
    }

    #[test]
    fn unknown_field_is_named() {
        let mut v = minimal();
        v["drupal"]["clustr"] = "x".into();
        let e = parse_value(&v).unwrap_err();
        assert_eq!(e.field, "drupal.clustr");
        let mut v = minimal();
        v["extra"] = 1.into();
        assert_eq!(parse_value(&v).unwrap_err().field, "extra");
    }

    #[test]
    fn bad_values_are_named() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            (
                "tokens[0].sha256",
                serde_json::json!({"tokens": [{"label": "a", "sha256": "abc"}]}),
            ),
            ("tokens", serde_json::json!({"tokens": []})),
            ("base_path", serde_json::json!({"base_path": "scim"})),
            (
                "drupal.timeout_ms",
                serde_json::json!({"drupal": {"cluster": "d", "authority": "a", "timeout_ms": -1}}),
            ),
            (
                "drupal.user_delete",
                serde_json::json!({"drupal": {"cluster": "d", "authority": "a", "user_delete": "nuke"}}),
            ),
            (
                "drupal.password_env",
                serde_json::json!({"drupal": {"cluster": "d", "authority": "a", "password_env": "NOPE"}}),
            ),
            ("max_body_bytes", serde_json::json!({"max_body_bytes": 1})),
            ("public_url", serde_json::json!({"public_url": "ftp://x"})),
            (
                "drupal.authority",
                serde_json::json!({"drupal": {"cluster": "d", "authority": "http://a/"}}),
            ),
        ];
        for (field, patch) in cases {
            let mut v = minimal();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let e = parse_value(&v).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(field));
        }
    }

    #[test]
    fn attribute_mapping_errors_are_named() {
        let mut v = minimal();
        v["attributes"] = serde_json::json!([{"scim": "displayName", "drupal": "field_display_name"}, {"scim": "nope", "drupal": "field_x"}]);
        assert_eq!(parse_value(&v).unwrap_err().field, "attributes[1].scim");
        v["attributes"] =
            serde_json::json!([{"scim": "displayName", "drupal": "field_display_name"}]);
        assert_eq!(parse_value(&v).unwrap().0.mapping.fields.len(), 4);
    }

    #[test]
    fn log_format_is_text_or_json() {
        let mut v = minimal();
        assert_eq!(parse_value(&v).unwrap().0.log_format, LogFormat::Text);
        v["log_format"] = serde_json::json!("json");
        assert_eq!(parse_value(&v).unwrap().0.log_format, LogFormat::Json);
        v["log_format"] = serde_json::json!("xml");
        assert_eq!(parse_value(&v).unwrap_err().field, "log_format");
    }

    #[test]
    fn limits_are_configurable_and_checked() {
        let mut v = minimal();
        v["limits"] = serde_json::json!({"max_count": 200, "max_members_per_request": 50});
        let l = parse_value(&v).unwrap().0.limits;
        assert_eq!(
            (
                l.max_count,
                l.max_members_per_request,
                l.max_filter_length,
                l.max_checked_pages
            ),
            (200, 50, 4096, 20)
        );
        v["limits"] = serde_json::json!({"max_filter_length": 5000});
        assert_eq!(
            parse_value(&v).unwrap_err().field,
            "limits.max_filter_length"
        );
        v["limits"] = serde_json::json!({"max_pages": 1});
        assert_eq!(parse_value(&v).unwrap_err().field, "limits.max_pages");
        v["limits"] = serde_json::json!({});
        v["tokens"] = serde_json::json!([{"label": "has space", "sha256": HASH}]);
        assert_eq!(parse_value(&v).unwrap_err().field, "tokens[0].label");
    }

    #[test]
    fn duplicate_token_labels_are_rejected() {
        let mut v = minimal();
        v["tokens"] =
            serde_json::json!([{"label": "a", "sha256": HASH}, {"label": "a", "sha256": HASH}]);
        assert_eq!(parse_value(&v).unwrap_err().field, "tokens[1].label");
    }
}
