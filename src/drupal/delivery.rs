//! What a failed call proves about whether it reached Drupal.
//!
//! Envoy's `httpCall` sets no retry policy (only a timeout and a hash policy), and a cluster
//! has none of its own, so nothing below the filter retries. A call that fails before any
//! answer comes back as Envoy's own local reply: a 503 whose body names the reset reason
//! (`upstream connect error or disconnect/reset before headers. reset reason: …`), a 503
//! `no healthy upstream`, or a 504 `upstream request timeout`; a reset after the headers
//! arrives without headers (`Failed`). Only a connection that was never made, or a request
//! Envoy never sent (overflow, no host), proves Drupal did not see it; a reset of a reused
//! connection (`connection termination`, the keep-alive race) or a time-out does not.

use crate::drupal::jsonapi::DrupalUser;
use crate::http::{DrupalCall, DrupalReply};
use serde_json::{Map, Value};

/// What the reply says about the call's fate in Drupal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Drupal answered (any status of its own).
    Answered,
    /// Envoy never sent it: Drupal did not see it.
    NotSent,
    /// The connection broke before an answer: Drupal may or may not have carried it out.
    Reset,
    /// No answer within `timeout_ms`: Drupal may still carry it out.
    TimedOut,
    /// It broke after Drupal's answer had begun, or the host could not send it.
    Lost,
}

const RESET_PREFIX: &[u8] = b"upstream connect error or disconnect/reset before headers.";
/// Reset reasons (Envoy's `resetReasonToString`) for a request that never left Envoy.
const NOT_SENT_REASONS: [&str; 5] = [
    "connection failure",
    "remote connection failure",
    "local connection failure",
    "connection timeout",
    "overflow",
];

pub fn delivery(reply: &DrupalReply) -> Delivery {
    let (status, body) = match reply {
        DrupalReply::Failed => return Delivery::Lost,
        DrupalReply::Answer { status, body } => (*status, body.as_slice()),
    };
    match status {
        503 if body.starts_with(b"no healthy upstream") => Delivery::NotSent,
        503 if body.starts_with(RESET_PREFIX) => {
            let text = String::from_utf8_lossy(body);
            let reason = text
                .split("reset reason: ")
                .nth(1)
                .unwrap_or_default()
                .split(',')
                .next()
                .unwrap_or_default()
                .trim();
            if NOT_SENT_REASONS.contains(&reason) {
                Delivery::NotSent
            } else {
                Delivery::Reset
            }
        }
        504 if body.starts_with(b"upstream request timeout") => Delivery::TimedOut,
        _ => Delivery::Answered,
    }
}

/// Sent once more at once: what Drupal provably never saw, and reads broken by a reset (a
/// read changes nothing). Not a time-out: a slow Drupal would get twice the load.
pub fn retry_once(call: &DrupalCall, reply: &DrupalReply) -> bool {
    match delivery(reply) {
        Delivery::NotSent => true,
        Delivery::Reset => matches!(call.method, "GET" | "HEAD"),
        Delivery::Answered | Delivery::TimedOut | Delivery::Lost => false,
    }
}

/// A write's reply that does not tell whether Drupal made it: the flows read back before
/// answering.
pub fn outcome_unknown(reply: &DrupalReply) -> bool {
    matches!(
        delivery(reply),
        Delivery::Reset | Delivery::TimedOut | Delivery::Lost
    )
}

/// What a write was to leave in Drupal, read back when its reply did not say whether Drupal
/// made it (a reset, a time-out: `delivery::outcome_unknown`).
#[derive(Debug)]
pub enum Expect {
    /// A new account with these fields (found by name).
    Created(Map<String, Value>),
    /// This account holds these fields.
    Updated(String, Map<String, Value>),
    /// This account is deleted or retired.
    Gone(String),
}

/// Drupal holds every written value (an empty string reads as no value). A write of nothing
/// but a password proves nothing: Drupal never shows one.
pub fn holds(user: &DrupalUser, fields: &Map<String, Value>) -> bool {
    let norm = |v: Option<&Value>| match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(v) => v.clone(),
    };
    !fields.is_empty()
        && fields
            .iter()
            .all(|(k, v)| norm(user.fields.get(k)) == norm(Some(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envoy(status: u16, body: &str) -> DrupalReply {
        DrupalReply::Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    fn call(method: &'static str) -> DrupalCall {
        DrupalCall {
            method,
            path: "/jsonapi/user/user".into(),
            content_type: None,
            body: None,
        }
    }

    #[test]
    fn envoy_local_replies_are_told_apart_from_drupal_answers() {
        let reset = |reason: &str| {
            envoy(
                503,
                &format!("upstream connect error or disconnect/reset before headers. reset reason: {reason}"),
            )
        };
        let cases = [
            (reset("remote connection failure, transport failure reason: delayed connect error: Connection refused"), Delivery::NotSent),
            (reset("connection failure"), Delivery::NotSent),
            (reset("overflow"), Delivery::NotSent),
            (envoy(503, "no healthy upstream"), Delivery::NotSent),
            (reset("connection termination"), Delivery::Reset),
            (reset("remote reset"), Delivery::Reset),
            (envoy(504, "upstream request timeout"), Delivery::TimedOut),
            (DrupalReply::Failed, Delivery::Lost),
            // Drupal's own 503 (maintenance mode) and 504 (a proxy's page) were answers.
            (envoy(503, "<html>Site under maintenance</html>"), Delivery::Answered),
            (envoy(504, ""), Delivery::Answered),
            (envoy(200, "{}"), Delivery::Answered),
        ];
        for (reply, want) in cases {
            assert_eq!(delivery(&reply), want, "{reply:?}");
        }
    }

    #[test]
    fn a_read_back_confirms_written_values_and_never_a_password_alone() {
        let mut user = DrupalUser {
            uuid: "u".into(),
            uid: 2,
            created: String::new(),
            changed: String::new(),
            fields: Map::new(),
            groups: None,
            retired_marker: false,
            roles: Some(Vec::new()),
        };
        user.fields
            .insert("field_given_name".into(), Value::String(String::new()));
        let mut written = Map::new();
        written.insert("status".into(), Value::Bool(false));
        written.insert("field_given_name".into(), Value::Null);
        assert!(!holds(&user, &written));
        user.fields.insert("status".into(), Value::Bool(false));
        assert!(holds(&user, &written), "an empty string reads as no value");
        assert!(!holds(&user, &Map::new()), "a password-only write");
    }

    #[test]
    fn writes_are_retried_only_when_drupal_never_saw_them() {
        let termination = envoy(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        );
        let refused = envoy(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        );
        let timeout = envoy(504, "upstream request timeout");
        assert!(retry_once(&call("GET"), &termination));
        assert!(!retry_once(&call("GET"), &timeout));
        for write in ["POST", "PATCH", "DELETE"] {
            assert!(retry_once(&call(write), &refused), "{write}");
            assert!(!retry_once(&call(write), &termination), "{write}");
            assert!(!retry_once(&call(write), &timeout), "{write}");
        }
        assert!(outcome_unknown(&termination) && outcome_unknown(&timeout));
        assert!(!outcome_unknown(&refused));
        assert!(outcome_unknown(&DrupalReply::Failed));
    }
}
