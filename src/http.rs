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
