//! Drupal query strings: values encoded so no input can add or change a parameter (SCIM's
//! own query strings are decoded in `flows::request`).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

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
}
