//! Plain values for what crosses the host boundary: the SCIM request as Envoy handed it
//! over, the calls the core wants made to Drupal, Drupal's answers, and the final response.
//! Nothing here talks to the host; `host.rs` converts to and from proxy-wasm calls.

/// The media type of every SCIM body (RFC 7644 §8.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// An inbound SCIM request, complete with its body.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Path including the raw query string, exactly as received (`:path`).
    pub path: String,
    /// Header names are lower case (Envoy normalises them).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `x-request-id` as the log line may print it: the client chooses this header, and a
    /// value with spaces or `=` would forge fields of the key=value line (`abc token=x`), so
    /// anything but a short plain token is shown as `-`.
    pub fn log_request_id(&self) -> &str {
        self.header("x-request-id")
            .filter(|v| is_safe_request_id(v))
            .unwrap_or("-")
    }
}

/// 1–64 characters of `[A-Za-z0-9._:-]`: Envoy's UUIDs and common tracing ids fit.
fn is_safe_request_id(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A call to Drupal. The host adapter adds `:authority`, the service credentials and the
/// timeout; the core never sees credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct DrupalCall {
    pub method: &'static str,
    /// Path with query, already encoded.
    pub path: String,
    pub content_type: Option<&'static str>,
    pub body: Option<Vec<u8>>,
}

/// The path of a pause: a call that Envoy itself answers after a short delay (see
/// `wait_cluster`), so a request can wait for a lock without busying Drupal.
const WAIT_PATH: &str = "/scim-gateway/wait";

impl DrupalCall {
    /// A pause of one round trip to Envoy's wait listener.
    pub fn wait() -> Self {
        DrupalCall {
            method: "GET",
            path: WAIT_PATH.to_string(),
            content_type: None,
            body: None,
        }
    }

    pub fn is_wait(&self) -> bool {
        self.path == WAIT_PATH
    }
}

/// What came back from one Drupal call.
#[derive(Debug, Clone, PartialEq)]
pub enum DrupalReply {
    /// Any HTTP answer, including the 503/504 that Envoy itself produces when Drupal is
    /// unreachable or too slow.
    Answer { status: u16, body: Vec<u8> },
    /// The call never produced a response (dispatch refused, reset, oversize body).
    Failed,
}

#[cfg(test)]
impl DrupalReply {
    /// An answer with this JSON body (`null`: no body at all, as Drupal's 204s).
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        DrupalReply::Answer {
            status,
            body: if body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&body).unwrap()
            },
        }
    }
}

/// The final answer to the SCIM client.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A SCIM JSON answer.
pub fn scim_json(status: u16, body: &serde_json::Value, extra: Vec<(String, String)>) -> Step {
    let mut headers = vec![("content-type".to_string(), SCIM_CONTENT_TYPE.to_string())];
    headers.extend(extra);
    Step::Respond(Response {
        status,
        headers,
        body: serde_json::to_vec(body).unwrap_or_default(),
    })
}

/// What the host must do next for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Dispatch all these calls concurrently; when every one has a reply, feed the replies
    /// back in the same order.
    Call(Vec<DrupalCall>),
    Respond(Response),
}

#[cfg(test)]
mod request_id_tests {
    use super::Request;

    fn with_id(v: &str) -> Request {
        Request {
            headers: vec![("x-request-id".to_string(), v.to_string())],
            ..Request::default()
        }
    }

    #[test]
    fn plain_ids_are_logged_as_sent() {
        let uuid = "0b5c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d";
        assert_eq!(with_id(uuid).log_request_id(), uuid);
        assert_eq!(with_id("req:42.a_b").log_request_id(), "req:42.a_b");
    }

    #[test]
    fn ids_that_could_forge_log_fields_are_replaced() {
        for bad in [
            "abc token=jumpcloud method=DELETE",
            "a=b",
            "a b",
            "x\ny",
            "",
            "é",
            &"a".repeat(65),
        ] {
            assert_eq!(with_id(bad).log_request_id(), "-", "{bad:?}");
        }
        assert_eq!(Request::default().log_request_id(), "-");
    }
}
