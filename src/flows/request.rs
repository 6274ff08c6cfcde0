//! What is checked and parsed of a SCIM request before any Drupal call: the base path and
//! URL, headers and content type, ETags, list parameters (`startIndex`, `count`, `sortBy`)
//! and `.search` bodies.

use crate::config::Config;
use crate::flows::auth;
use crate::http::{Request, Response, Step};
use crate::scim::error::ScimError;
use crate::scim::filter::parse_attr_path;
use crate::scim::mapping::{Target, UserMapping};
use crate::scim::projection::Projection;
use crate::scim::user::{self};
use crate::scim::values::get_ci;
use percent_encoding::percent_decode_str;
use serde_json::Value;

pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// A list request, from the query string or a `.search` body.
#[derive(Debug)]
pub(crate) struct ListRequest {
    pub(crate) filter: Option<String>,
    pub(crate) start_index: usize,
    pub(crate) count: usize,
    pub(crate) sort: Option<String>,
}

/// The page size used when a client gives no `count`.
pub(crate) const DEFAULT_COUNT: usize = 100;

/// Whether a path belongs to the gateway.
pub fn is_scim_path(config: &Config, path: &str) -> bool {
    let (path, _) = split_path(path);
    match path.strip_prefix(config.base_path.as_str()) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The resource and operation of a request, for metrics and logs: a small fixed vocabulary
/// (never user input), so metric names stay bounded.
pub fn classify(config: &Config, method: &str, path: &str) -> (&'static str, &'static str) {
    let (path, _) = split_path(path);
    let rest = path
        .get(config.base_path.len()..)
        .unwrap_or_default()
        .trim_end_matches('/');
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let resource = match segments.first().copied() {
        Some("Users") => "users",
        Some("Groups") => "groups",
        Some(".search") => "search",
        Some("ServiceProviderConfig" | "ResourceTypes" | "Schemas") => "discovery",
        _ => "other",
    };
    let op = match (resource, segments.len(), method) {
        ("discovery", _, _) => "discovery",
        ("other", _, _) => "other",
        ("search", _, _) | (_, 2, "POST")
            if segments.get(1) == Some(&".search") || resource == "search" =>
        {
            "search"
        }
        (_, 1, "GET" | "HEAD") => "list",
        (_, 1, "POST") => "create",
        (_, 2, "GET" | "HEAD") => "get",
        (_, 2, "PUT") => "replace",
        (_, 2, "PATCH") => "patch",
        (_, 2, "DELETE") => "delete",
        _ => "other",
    };
    (resource, op)
}

/// Checks made as soon as the headers are in, before any body is read: authentication and
/// the declared body size. `Some` is the answer to send at once.
pub fn check_headers(config: &Config, req: &Request) -> Option<Response> {
    if let Err(e) = auth::authenticate(req.header("authorization"), &config.tokens) {
        return Some(e.into_response());
    }
    let declared = req
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if declared > config.max_body_bytes {
        return Some(too_large(config).into_response());
    }
    None
}

pub fn too_large(config: &Config) -> ScimError {
    ScimError::new(
        413,
        None,
        format!(
            "Request body exceeds the {}-byte limit.",
            config.max_body_bytes
        ),
    )
}

/// The absolute SCIM base URL clients reach the gateway at: `public_url`, else the request's
/// scheme and `Host`, which must then be a plain `host[:port]` (it is written into every
/// `meta.location` and `Location`, so nothing else a client sends may get there).
pub(crate) fn base_url(config: &Config, req: &Request) -> Result<String, ScimError> {
    if let Some(u) = &config.public_url {
        return Ok(format!("{u}{}", config.base_path));
    }
    let scheme = req
        .header("x-forwarded-proto")
        .or_else(|| req.header(":scheme"))
        .filter(|s| *s == "http" || *s == "https")
        .unwrap_or("http");
    let host = req
        .header(":authority")
        .or_else(|| req.header("host"))
        .unwrap_or("localhost");
    if !is_plain_authority(host) {
        return Err(ScimError::invalid_value(
            "The Host header is not a plain host[:port]; the gateway's `public_url` setting names the address clients use.",
        ));
    }
    Ok(format!("{scheme}://{host}{}", config.base_path))
}

/// `name[:port]`, `IPv4[:port]` or `[IPv6][:port]`: DNS characters (and `_`, as container
/// service names have) only, no user info, path, query or spaces.
pub(crate) fn is_plain_authority(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, Some(p)),
        _ => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        }
        None => {
            !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        }
    };
    port_ok && name_ok
}

pub(crate) fn empty_response(status: u16, headers: Vec<(String, String)>) -> Step {
    Step::Respond(Response {
        status,
        headers,
        body: Vec::new(),
    })
}

pub(crate) fn only_get(method: &str) -> Result<(), ScimError> {
    if method == "GET" || method == "HEAD" {
        Ok(())
    } else {
        Err(ScimError::method_not_allowed("GET"))
    }
}

pub(crate) fn not_implemented(what: &str) -> ScimError {
    ScimError::new(
        501,
        None,
        format!("{what} is not supported by this server."),
    )
}

/// Whether an `If-Match` / `If-None-Match` value names this version (weak comparison).
pub(crate) fn etag_matches(header: &str, version: &str) -> bool {
    let opaque = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_start_matches("w/")
            .to_string()
    };
    let mine = opaque(version);
    header
        .split(',')
        .any(|t| t.trim() == "*" || opaque(t) == mine)
}

pub(crate) fn precondition_failed() -> ScimError {
    ScimError::new(
        412,
        None,
        "The resource has changed: its version does not match `If-Match`.",
    )
}

pub(crate) fn parse_int(name: &str, value: &str) -> Result<i64, ScimError> {
    value.trim().parse::<i64>().map_err(|_| {
        ScimError::invalid_value(format!("`{name}` must be an integer, not `{value}`."))
    })
}

/// RFC 7644 §3.4.2.4: startIndex below 1 means 1; a negative count means 0; counts above
/// the advertised maximum are clamped.
pub(crate) fn window(
    start_index: Option<i64>,
    count: Option<i64>,
    max_count: usize,
) -> (usize, usize) {
    let start = usize::try_from(start_index.unwrap_or(1).max(1)).unwrap_or(1);
    let count = match count {
        None => DEFAULT_COUNT,
        Some(c) => usize::try_from(c.max(0)).unwrap_or(0),
    };
    (start, count.min(max_count))
}

/// The window a list's query string asks for (`startIndex`, `count`), capped at `max_count`.
pub(crate) fn query_window(
    params: &[(String, String)],
    max_count: usize,
) -> Result<(usize, usize), ScimError> {
    let number = |name: &str| {
        query_param(params, name)
            .map(|v| parse_int(name, v))
            .transpose()
    };
    Ok(window(number("startIndex")?, number("count")?, max_count))
}

/// Drupal's `sort` for `sortBy`/`sortOrder`, on the mapped attributes.
pub(crate) fn drupal_sort(
    mapping: &UserMapping,
    sort_by: Option<&str>,
    order: Option<&str>,
) -> Result<Option<String>, ScimError> {
    let descending = match order.map(str::to_ascii_lowercase).as_deref() {
        None | Some("ascending") => false,
        Some("descending") => true,
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "`sortOrder` must be `ascending` or `descending`, not `{other}`."
            )))
        }
    };
    let Some(sort_by) = sort_by.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let path = parse_attr_path(sort_by).map_err(|e| {
        ScimError::invalid_value(format!("`sortBy` is not an attribute path: {e}."))
    })?;
    let field = if path.is("id") {
        "id".to_string()
    } else if path.is_sub("meta", "created") {
        "created".to_string()
    } else if path.is_sub("meta", "lastModified") {
        "changed".to_string()
    } else if let Some(f) = mapping.lookup(&path) {
        f.field.clone()
    } else {
        // A multi-valued attribute sorts by its primary value (RFC 7644 §3.4.2.3): here,
        // the first mapped type.
        let typed = mapping.typed(&path.attr);
        let wanted = path.sub_attr.as_deref().unwrap_or("value");
        typed
            .iter()
            .find(|f| matches!(&f.target, Target::Typed { sub, .. } if sub.eq_ignore_ascii_case(wanted)))
            .map(|f| f.field.clone())
            .ok_or_else(|| ScimError::invalid_value(format!("Cannot sort by `{sort_by}`: this server does not store it.")))?
    };
    Ok(Some(if descending {
        format!("-{field}")
    } else {
        field
    }))
}

/// IdPs send `application/scim+json` (with or without a charset), `application/json`, or no
/// Content-Type at all: all are read as JSON. Anything else is refused.
pub(crate) fn check_content_type(value: Option<&str>) -> Result<(), ScimError> {
    let Some(value) = value else {
        return Ok(());
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media.is_empty() || media == "application/scim+json" || media == "application/json" {
        Ok(())
    } else {
        Err(ScimError::new(
            415,
            None,
            format!("Content-Type `{media}` is not supported: send application/scim+json or application/json."),
        ))
    }
}

pub(crate) fn check_filter_length(filter: &str, config: &Config) -> Result<(), ScimError> {
    let n = filter.chars().count();
    if n > config.limits.max_filter_length {
        return Err(ScimError::invalid_filter(format!(
            "The filter is {n} characters long; at most {} are accepted.",
            config.limits.max_filter_length
        )));
    }
    Ok(())
}

pub(crate) fn no_groups() -> ScimError {
    ScimError::not_found(
        "This server has no /Groups: the gateway's `groups` configuration is not set.",
    )
}

/// A SearchRequest body (RFC 7644 §3.4.3).
#[derive(Debug)]
pub(crate) struct Search {
    pub(crate) projection: Projection,
    pub(crate) filter: Option<String>,
    pub(crate) sort_by: Option<String>,
    pub(crate) sort_order: Option<String>,
    pub(crate) start_index: Option<i64>,
    pub(crate) count: Option<i64>,
}

pub(crate) fn parse_search(body: &[u8]) -> Result<Search, ScimError> {
    let obj = user::parse_json_object(body)?;
    match get_ci(&obj, "schemas") {
        Some(Value::Array(list))
            if list.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA))
            }) => {}
        _ => {
            return Err(ScimError::invalid_value(format!(
                "`schemas` must be [\"{SEARCH_REQUEST_SCHEMA}\"]."
            )))
        }
    }
    let strings = |name: &str| -> Result<Vec<String>, ScimError> {
        match get_ci(&obj, name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        ScimError::invalid_value(format!("`{name}` must list strings."))
                    })
                })
                .collect(),
            Some(_) => Err(ScimError::invalid_value(format!(
                "`{name}` must be a list of attribute paths."
            ))),
        }
    };
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match get_ci(&obj, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ScimError::invalid_value(format!(
                "`{name}` must be a string."
            ))),
        }
    };
    let int = |name: &str| -> Result<Option<i64>, ScimError> {
        match get_ci(&obj, name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ScimError::invalid_value(format!("`{name}` must be an integer."))),
        }
    };
    Ok(Search {
        projection: Projection::from_lists(
            &strings("attributes")?,
            &strings("excludedAttributes")?,
        )?,
        filter: text("filter")?,
        sort_by: text("sortBy")?,
        sort_order: text("sortOrder")?,
        start_index: int("startIndex")?,
        count: int("count")?,
    })
}

pub(crate) fn user_not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("User `{id}` not found."))
}

/// A query parameter by name, ignoring case.
pub(crate) fn query_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Splits `path?query` into the path and decoded `(name, value)` pairs.
pub fn split_path(raw: &str) -> (&str, &str) {
    match raw.split_once('?') {
        Some((p, q)) => (p, q),
        None => (raw, ""),
    }
}

/// Decodes a query string. `+` means space (HTML form encoding, as Entra sends it).
/// Invalid UTF-8 after decoding is an error, not a silent replacement.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        out.push((decode_component(name)?, decode_component(value)?));
    }
    Ok(out)
}

fn decode_component(s: &str) -> Result<String, String> {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("query parameter `{s}` is not valid UTF-8 once decoded"))
}

/// How many member ids a Group request body names (`members` lists, and PATCH operations on
/// `members`), to bound what one request can make the gateway do.
pub fn member_count(body: &[u8]) -> usize {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    let len = |v: Option<&Value>| v.and_then(Value::as_array).map(Vec::len).unwrap_or(0);
    let Some(obj) = doc.as_object() else {
        return 0;
    };
    let mut n = len(get_ci(obj, "members"));
    for op in get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(op) = op.as_object() else { continue };
        let on_members = get_ci(op, "path")
            .and_then(Value::as_str)
            .is_some_and(|p| p.trim().to_ascii_lowercase().starts_with("members"));
        let value = get_ci(op, "value");
        n = n.saturating_add(if on_members { len(value) } else { 0 });
        if let Some(Value::Object(v)) = value {
            n = n.saturating_add(len(get_ci(v, "members")));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent_spaces_alike() {
        let a = parse_query("filter=userName+eq+%22jane%40example.com%22").unwrap();
        let b = parse_query("filter=userName%20eq%20%22jane@example.com%22").unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].1, "userName eq \"jane@example.com\"");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert!(parse_query("filter=%FF").is_err());
    }
}
