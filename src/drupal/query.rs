//! Query strings: decoding what SCIM clients send (both `%20` and form-style `+`) and
//! encoding values into Drupal query strings so no input can add or change a parameter.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

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

/// Characters left as they are in a query value: RFC 3986 unreserved only. Everything
/// else, including `&`, `=`, `[`, `]`, `+`, `%` and `#`, is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Builds a Drupal query string from `(name, value)` pairs; names use literal brackets
/// (`filter[name]`), which Drupal and Envoy both accept.
#[derive(Debug, Default, Clone)]
pub struct DrupalQuery {
    parts: Vec<String>,
}

impl DrupalQuery {
    pub fn new() -> Self {
        Self::default()
    }

    /// A query starting with these `filter[…]` pairs.
    pub fn with_conditions(conditions: &[(String, String)]) -> Self {
        let mut q = Self::new();
        for (k, v) in conditions {
            q.push(k, v);
        }
        q
    }

    /// `sort`, made a stable order by the `tie_breaker` field (Drupal pages by offset, so
    /// equal keys must not trade places between pages).
    pub fn push_stable_sort(&mut self, sort: Option<&str>, tie_breaker: &str) -> &mut Self {
        let sort = match sort {
            Some(s) => format!("{s},{tie_breaker}"),
            None => tie_breaker.to_string(),
        };
        self.push("sort", &sort)
    }

    /// `name` is a trusted constant or built from trusted parts; `value` is encoded.
    pub fn push(&mut self, name: &str, value: &str) -> &mut Self {
        self.parts
            .push(format!("{}={}", encode_name(name), encode(value)));
        self
    }

    pub fn build(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!("?{}", self.parts.join("&"))
        }
    }
}

/// Names keep `[` and `]` readable (Drupal and Envoy accept them) and encode anything else
/// unusual.
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '[' | ']' | '_' | '-' | '.') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            out.push_str(&encode(c.encode_utf8(&mut buf)));
        }
    }
    out
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
    fn encoded_values_cannot_inject_parameters() {
        let mut q = DrupalQuery::new();
        q.push("filter[name]", "a&filter[mail]=x#y+z%");
        assert_eq!(
            q.build(),
            "?filter[name]=a%26filter%5Bmail%5D%3Dx%23y%2Bz%25"
        );
    }

    #[test]
    fn names_keep_brackets() {
        let mut q = DrupalQuery::new();
        q.push("filter[g][condition][path]", "name")
            .push("page[limit]", "50");
        assert_eq!(q.build(), "?filter[g][condition][path]=name&page[limit]=50");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert!(parse_query("filter=%FF").is_err());
    }
}
