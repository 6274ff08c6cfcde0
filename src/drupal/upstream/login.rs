//! Logging in to Drupal and keeping its session: the login and login-status calls, the lock
//! one request logs in under while the others pause, reading the login's answer, and the
//! session cookie and CSRF token on later calls.

use crate::config::Credentials;
use crate::drupal::upstream::messages::{Arrival, Outbound, Purpose};
use crate::http::{DrupalCall, DrupalReply};
use serde_json::Value;

pub(crate) const LOGIN_PATH: &str = "/user/login?_format=json";
pub(crate) const LOGIN_STATUS_PATH: &str = "/user/login_status?_format=json";
pub(crate) const LOGIN_LOCK: &str = "scim/drupal-login";
/// Pauses a request spends waiting for another request's login at most.
pub(crate) const MAX_WAITS: u32 = 400;

pub(crate) fn login_call(credentials: &Credentials) -> Outbound {
    let body = serde_json::json!({"name": credentials.username, "pass": credentials.password});
    Outbound {
        call: DrupalCall {
            method: "POST",
            path: LOGIN_PATH.to_string(),
            content_type: Some("application/json"),
            body: Some(serde_json::to_vec(&body).unwrap_or_default()),
        },
        headers: Vec::new(),
        purpose: Purpose::Login,
    }
}

/// A pause: Envoy's wait listener, or else an anonymous, cheap Drupal read.
pub(crate) fn pause(can_pause: bool) -> Outbound {
    let call = if can_pause {
        DrupalCall::wait()
    } else {
        DrupalCall {
            method: "GET",
            path: LOGIN_STATUS_PATH.to_string(),
            content_type: None,
            body: None,
        }
    };
    Outbound {
        call,
        headers: Vec::new(),
        purpose: Purpose::Pause,
    }
}

pub(crate) enum LoginResult {
    Opened {
        cookie: String,
        csrf: String,
    },
    /// Drupal answered and said no (wrong password, blocked account, flood control).
    Refused(String),
    /// No usable answer (Drupal down, 5xx): not a refusal, so no back-off.
    Unavailable(DrupalReply),
}

pub(crate) fn read_login(arrival: &Arrival) -> LoginResult {
    let DrupalReply::Answer { status, body } = &arrival.reply else {
        return LoginResult::Unavailable(DrupalReply::Failed);
    };
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if *status == 200 {
        let csrf = json
            .as_ref()
            .and_then(|j| j.get("csrf_token"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let cookie = arrival.set_cookie.as_deref().and_then(session_cookie);
        return match (cookie, csrf) {
            (Some(cookie), Some(csrf)) => LoginResult::Opened { cookie, csrf },
            _ => LoginResult::Unavailable(DrupalReply::Answer {
                status: 502,
                body: b"Drupal's login answer had no session cookie or CSRF token".to_vec(),
            }),
        };
    }
    if matches!(status, 400 | 401 | 403) {
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
            .chars()
            .take(200)
            .collect();
        return LoginResult::Refused(message);
    }
    LoginResult::Unavailable(arrival.reply.clone())
}

/// `SESS…=value` from a `Set-Cookie` header (Drupal's session cookies are `SESS`/`SSESS`
/// followed by a hash of the cookie domain).
pub(crate) fn session_cookie(set_cookie: &str) -> Option<String> {
    set_cookie.lines().find_map(|one| {
        let pair = one.split(';').next()?.trim();
        let (name, value) = pair.split_once('=')?;
        let ours = name.starts_with("SESS") || name.starts_with("SSESS");
        (ours && !value.is_empty() && value != "deleted").then(|| pair.to_string())
    })
}

/// Drupal deletes the cookie of a session it no longer knows (the request ran as anonymous).
pub(crate) fn deletes_session(set_cookie: Option<&str>) -> bool {
    set_cookie.is_some_and(|h| {
        h.lines().any(|one| {
            let mut parts = one.split(';').map(str::trim);
            let pair = parts.next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                return false;
            };
            let ours = name.starts_with("SESS") || name.starts_with("SSESS");
            let expired = value.is_empty()
                || value == "deleted"
                || parts.any(|p| p.eq_ignore_ascii_case("max-age=0"));
            ours && expired
        })
    })
}

pub(crate) fn mentions_csrf(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("X-CSRF-Token")
}

pub(crate) fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}
