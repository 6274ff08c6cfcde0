//! The request log line, as `key=value` text or one JSON object (`log_format`). Every value
//! is either from a fixed vocabulary, a number, or checked (`log_request_id`, UUIDs, trace
//! ids): never an address, a query string or a secret.

use crate::config::LogFormat;
use crate::flows::audit::Outcome;
use serde_json::json;

pub(super) struct RequestLine<'a> {
    pub(super) request_id: &'a str,
    pub(super) trace_id: &'a str,
    pub(super) token: &'a str,
    pub(super) method: &'a str,
    pub(super) resource: &'a str,
    pub(super) op: &'a str,
    pub(super) outcome: &'a Outcome,
    pub(super) status: u16,
    pub(super) scim_type: Option<&'a str>,
    pub(super) drupal_calls: usize,
    pub(super) duration_ms: u64,
}

impl RequestLine<'_> {
    pub(super) fn render(&self, format: LogFormat) -> String {
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
            "scim request_id={} trace_id={} token={} method={} resource={} op={} id={} uids={uids} adopted={} status={} scim_type={} drupal_calls={} duration_ms={}",
            self.request_id,
            self.trace_id,
            self.token,
            self.method,
            self.resource,
            self.op,
            self.outcome.resource_id.as_deref().unwrap_or("-"),
            u8::from(self.outcome.adopted),
            self.status,
            self.scim_type.unwrap_or("-"),
            self.drupal_calls,
            self.duration_ms
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
            "scim request_id=req-1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 token=jumpcloud method=PATCH resource=users op=patch id=7724f730-7aca-4819-aaee-90673a0141a4 uids=7,9 adopted=0 status=200 scim_type=- drupal_calls=2 duration_ms=64"
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
