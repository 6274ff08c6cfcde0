//! SCIM error responses (RFC 7644 §3.12). Every failure in the core becomes one of these
//! values, which already knows its HTTP status and `scimType`.

use crate::http::{Response, SCIM_CONTENT_TYPE};
use serde_json::json;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` keywords of RFC 7644 Table 9 that the gateway produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    InvalidSyntax,
    InvalidValue,
    Uniqueness,
    Mutability,
    InvalidPath,
    NoTarget,
    TooMany,
    InvalidVers,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidValue => "invalidValue",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::TooMany => "tooMany",
            ScimType::InvalidVers => "invalidVers",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
    /// Extra response headers (`WWW-Authenticate`, `Allow`, `Retry-After`).
    pub headers: Vec<(String, String)>,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidFilter, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, Some(ScimType::Uniqueness), detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, None, detail).with_header("www-authenticate", "Bearer realm=\"scim\"")
    }

    pub fn method_not_allowed(allow: &str) -> Self {
        Self::new(405, None, format!("This endpoint supports only {allow}."))
            .with_header("allow", allow)
    }

    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(502, None, detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, None, detail)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".into(), t.as_str().into());
        }
        let mut headers = vec![("content-type".to_string(), SCIM_CONTENT_TYPE.to_string())];
        headers.extend(self.headers);
        Response {
            status: self.status,
            headers,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }
}

/// The `scimType` of an error body the gateway wrote (`into_response`: compact JSON), found
/// without parsing the whole document. Inside a JSON string every `"` is escaped, so the
/// key's pattern only matches the member itself.
pub fn scim_type_in(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"scimType\":\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)?;
    let rest = body.get(at.checked_add(KEY.len())?..)?;
    let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scim_type_is_read_back_from_an_error_body() {
        for t in [
            ScimType::Uniqueness,
            ScimType::InvalidFilter,
            ScimType::TooMany,
        ] {
            let r = ScimError::bad_request(t, "a \"scimType\":\"mutability\" lookalike")
                .into_response();
            assert_eq!(scim_type_in(&r.body), Some(t.as_str()));
        }
        let r = ScimError::not_found("no \"scimType\":\"uniqueness\" here").into_response();
        assert_eq!(scim_type_in(&r.body), None);
        assert_eq!(scim_type_in(b""), None);
        assert_eq!(scim_type_in(br#"{"scimType":"#), None);
    }

    #[test]
    fn error_body_carries_status_as_string_and_scim_type() {
        let r = ScimError::conflict("taken").into_response();
        assert_eq!(r.status, 409);
        assert_eq!(r.header("content-type"), Some(SCIM_CONTENT_TYPE));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["schemas"][0], ERROR_SCHEMA);
        assert_eq!(v["status"], "409");
        assert_eq!(v["scimType"], "uniqueness");
        assert_eq!(v["detail"], "taken");
    }

    #[test]
    fn unauthorized_challenges_with_bearer() {
        let r = ScimError::unauthorized("no").into_response();
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(v.get("scimType").is_none());
    }
}
