//! What the audit trail needs from the core: the outcome of a request (the SCIM resource it
//! was about and the Drupal accounts it touched, as values the host prints) and the tracing
//! context its Drupal calls carry, so Drupal's logs and Envoy's tracing tie to the IdP event.

use crate::config::LogFormat;
use crate::drupal::jsonapi::is_uuid;
use crate::http::{Request, Step};
use serde_json::json;
use sha2::{Digest, Sha256};

/// What one request did, for the log line; never an address, a name or a query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The SCIM id the request was about: from the path, or the one a create made.
    pub resource_id: Option<String>,
    /// Drupal uids of the accounts read by id, written, or refused as protected.
    pub uids: Vec<u64>,
    /// Set by a flow that linked an existing Drupal account instead of creating one
    /// (adoption); the host counts `scim.adoptions.on.<create|lookup>` and logs `adopted=1`.
    pub adopted: bool,
}

impl Outcome {
    /// The target named by the path (`/Users/{id}`, `/Groups/{id}`), if it is a valid id.
    pub fn for_path(base_path: &str, path: &str) -> Outcome {
        let path = path.split('?').next().unwrap_or_default();
        let mut outcome = Outcome::default();
        if let Some(rest) = path.strip_prefix(base_path) {
            let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
            if let ["Users" | "Groups", id] = segments.as_slice() {
                outcome.target(id);
            }
        }
        outcome
    }

    /// Names the resource, once; only a UUID (what Drupal's ids are) is kept.
    pub(crate) fn target(&mut self, id: &str) {
        if self.resource_id.is_none() && is_uuid(id) {
            self.resource_id = Some(id.to_ascii_lowercase());
        }
    }

    /// A Drupal account this request read by id or wrote (uid 0 is nobody).
    pub(crate) fn touched(&mut self, uuid: &str, uid: u64) {
        self.target(uuid);
        if uid != 0 && !self.uids.contains(&uid) {
            self.uids.push(uid);
        }
    }

    /// The existing account a request adopted (`adopt: "mail"`) instead of creating one.
    pub fn adopted_account(&mut self, uid: u64) {
        self.adopted = true;
        if uid != 0 && !self.uids.contains(&uid) {
            self.uids.push(uid);
        }
    }

    /// A created resource is named by the answer's `Location`.
    pub(crate) fn answered(&mut self, step: &Step) {
        if let Step::Respond(r) = step {
            if let Some(id) = r.header("location").and_then(|l| l.rsplit('/').next()) {
                self.target(id);
            }
        }
    }
}

/// The W3C trace context (`traceparent`) a request's Drupal calls carry: the incoming trace
/// continued with the gateway's own span, or a new trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// 32 hex digits, also on the log line.
    pub trace_id: String,
    /// `00-<trace id>-<span id>-<flags>`: the header sent to Drupal.
    pub traceparent: String,
}

impl Trace {
    /// Continues a valid incoming `traceparent` (its trace id and sampled flag) with a new
    /// span id, or starts a trace; `seed` must differ per request (ids derive from it). The
    /// incoming header is never passed on as such: only its checked parts are.
    pub fn new(incoming: Option<&str>, seed: &[u8]) -> Trace {
        let digest = Sha256::digest(seed);
        let mut span = [0u8; 8];
        let mut fresh = [0u8; 16];
        for (slot, byte) in span.iter_mut().chain(fresh.iter_mut()).zip(digest.iter()) {
            *slot = *byte;
        }
        // All-zero ids are invalid (W3C trace context §3.2.2).
        if span == [0; 8] {
            span[7] = 1;
        }
        if fresh == [0; 16] {
            fresh[15] = 1;
        }
        let (trace_id, flags) = incoming
            .and_then(parse_traceparent)
            .unwrap_or_else(|| (crate::hex::encode(&fresh), "00".to_string()));
        let traceparent = format!("00-{trace_id}-{}-{flags}", crate::hex::encode(&span));
        Trace {
            trace_id,
            traceparent,
        }
    }

    /// For a request: its `traceparent`, seeded by what makes the request unique here.
    pub fn for_request(req: &Request, seed: &[u8]) -> Trace {
        Trace::new(req.header("traceparent"), seed)
    }
}

/// The trace id and flags of a valid `traceparent` (version 00, or a later version read as
/// 00 as the specification asks); `None` for anything else.
fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let value = value.trim();
    let parts: Vec<&str> = value.split('-').collect();
    let (version, trace, parent, flags) = match parts.as_slice() {
        [v, t, p, f] => (*v, *t, *p, *f),
        [v, t, p, f, ..] if *v != "00" => (*v, *t, *p, *f),
        _ => return None,
    };
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = lower_hex(version, 2)
        && version != "ff"
        && lower_hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && lower_hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2);
    if !valid {
        return None;
    }
    // Only the sampled bit is defined; the others are not passed on.
    let sampled = crate::hex::decode::<1>(flags)
        .map(|[f]| f & 1)
        .unwrap_or_default();
    Some((trace.to_string(), format!("{sampled:02x}")))
}

/// The `User-Agent` of every Drupal call: the gateway, its version and the token's label
/// (`-` for calls no token made, such as the startup checks).
pub fn user_agent(label: &str) -> String {
    let label = if !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        label
    } else {
        "-"
    };
    format!(
        "envoy-scim-drupal/{} (token={label})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The request log line, as `key=value` text or one JSON object (`log_format`). Every value
/// is from a fixed vocabulary, a number, or checked (`log_request_id`, UUIDs, trace ids):
/// never an address, a query string or a secret. The host decides when to log it.
pub struct RequestLine<'a> {
    pub request_id: &'a str,
    pub trace_id: &'a str,
    pub token: &'a str,
    pub method: &'a str,
    pub resource: &'a str,
    pub op: &'a str,
    pub outcome: &'a Outcome,
    pub status: u16,
    pub scim_type: Option<&'a str>,
    pub drupal_calls: usize,
    pub duration_ms: u64,
}

impl RequestLine<'_> {
    pub fn render(&self, format: LogFormat) -> String {
        match format {
            LogFormat::Text => self.text(),
            LogFormat::Json => self.json(),
        }
    }

    fn text(&self) -> String {
        let uids = if self.outcome.uids.is_empty() {
            "-".to_string()
        } else {
            self.outcome
                .uids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "scim request_id={} token={} method={} resource={} op={} id={} uids={uids} adopted={} status={} scim_type={} drupal_calls={} duration_ms={} trace_id={}",
            self.request_id,
            self.token,
            self.method,
            self.resource,
            self.op,
            self.outcome.resource_id.as_deref().unwrap_or("-"),
            u8::from(self.outcome.adopted),
            self.status,
            self.scim_type.unwrap_or("-"),
            self.drupal_calls,
            self.duration_ms,
            self.trace_id
        )
    }

    fn json(&self) -> String {
        let dash_null = |v: &str| (v != "-").then(|| v.to_string());
        json!({
            "msg": "scim request",
            "request_id": dash_null(self.request_id),
            "trace_id": dash_null(self.trace_id),
            "token": dash_null(self.token),
            "method": self.method,
            "resource": self.resource,
            "op": self.op,
            "id": self.outcome.resource_id,
            "uids": self.outcome.uids,
            "adopted": self.outcome.adopted,
            "status": self.status,
            "scim_type": self.scim_type,
            "drupal_calls": self.drupal_calls,
            "duration_ms": self.duration_ms,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Response, Step};

    const ID: &str = "7724f730-7aca-4819-aaee-90673a0141a4";

    #[test]
    fn the_path_names_the_target_only_when_it_is_an_id() {
        let o = Outcome::for_path("/scim/v2", &format!("/scim/v2/Users/{ID}?attributes=x"));
        assert_eq!(o.resource_id.as_deref(), Some(ID));
        let o = Outcome::for_path("/scim/v2", &format!("/scim/v2/Groups/{ID}"));
        assert_eq!(o.resource_id.as_deref(), Some(ID));
        for path in [
            "/scim/v2/Users",
            "/scim/v2/Users/alice@example.com",
            "/scim/v2/Users/.search",
            "/scim/v2/Schemas/urn:x",
        ] {
            assert_eq!(
                Outcome::for_path("/scim/v2", path).resource_id,
                None,
                "{path}"
            );
        }
    }

    #[test]
    fn touched_accounts_are_listed_once_and_a_create_is_named_by_its_location() {
        let mut o = Outcome::default();
        o.touched(ID, 7);
        o.touched(ID, 7);
        o.touched(ID, 0);
        assert_eq!(o.uids, vec![7]);
        let mut o = Outcome::default();
        o.answered(&Step::Respond(Response {
            status: 201,
            headers: vec![(
                "location".into(),
                format!("https://gw.example/scim/v2/Users/{ID}"),
            )],
            body: Vec::new(),
        }));
        assert_eq!(o.resource_id.as_deref(), Some(ID));
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = Trace::new(Some(incoming), b"seed-1");
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let parts: Vec<&str> = t.traceparent.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], t.trace_id);
        assert_eq!(parts[2].len(), 16);
        assert_ne!(parts[2], "00f067aa0ba902b7");
        assert_eq!(parts[3], "01");
        // A later version's extra fields are dropped; unknown flags are not passed on.
        let t = Trace::new(
            Some("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-what"),
            b"seed-1",
        );
        assert!(t
            .traceparent
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(t.traceparent.ends_with("-01"));
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 token=x",
        ] {
            let t = Trace::new(Some(bad), b"seed-2");
            assert_ne!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
            assert_eq!(t.trace_id.len(), 32);
            assert!(t.traceparent.ends_with("-00"), "{bad:?}");
        }
        // Different requests get different traces.
        assert_ne!(
            Trace::new(None, b"a").traceparent,
            Trace::new(None, b"b").traceparent
        );
    }

    #[test]
    fn the_user_agent_names_the_gateway_its_version_and_the_label() {
        let ua = user_agent("jumpcloud");
        assert!(ua.starts_with("envoy-scim-drupal/"));
        assert!(ua.ends_with(" (token=jumpcloud)"));
        assert!(user_agent("").ends_with("(token=-)"));
        assert!(user_agent("a b").ends_with("(token=-)"));
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;
    use serde_json::json;

    fn line(outcome: &Outcome) -> RequestLine<'_> {
        RequestLine {
            request_id: "req-1",
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
            token: "jumpcloud",
            method: "PATCH",
            resource: "users",
            op: "patch",
            outcome,
            status: 200,
            scim_type: None,
            drupal_calls: 2,
            duration_ms: 64,
        }
    }

    #[test]
    fn text_and_json_carry_the_same_fields() {
        let outcome = Outcome {
            resource_id: Some("7724f730-7aca-4819-aaee-90673a0141a4".into()),
            uids: vec![7, 9],
            adopted: false,
        };
        assert_eq!(
            line(&outcome).render(LogFormat::Text),
            "scim request_id=req-1 token=jumpcloud method=PATCH resource=users op=patch id=7724f730-7aca-4819-aaee-90673a0141a4 uids=7,9 adopted=0 status=200 scim_type=- drupal_calls=2 duration_ms=64 trace_id=4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let v: serde_json::Value =
            serde_json::from_str(&line(&outcome).render(LogFormat::Json)).unwrap();
        assert_eq!(v["id"], "7724f730-7aca-4819-aaee-90673a0141a4");
        assert_eq!(v["uids"], json!([7, 9]));
        assert_eq!(v["status"], 200);
        assert_eq!(v["scim_type"], serde_json::Value::Null);
        assert_eq!(v["request_id"], "req-1");
    }

    #[test]
    fn nothing_known_reads_as_dash_or_null() {
        let outcome = Outcome::default();
        let mut l = line(&outcome);
        l.request_id = "-";
        assert!(l.render(LogFormat::Text).contains(" id=- uids=- "));
        let v: serde_json::Value = serde_json::from_str(&l.render(LogFormat::Json)).unwrap();
        assert_eq!(v["id"], serde_json::Value::Null);
        assert_eq!(v["request_id"], serde_json::Value::Null);
        assert_eq!(v["uids"], json!([]));
    }
}
