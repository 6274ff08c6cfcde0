//! Rate limits per token label: a token bucket per label, kept in the shared store (so every
//! worker draws from the same bucket) and drawn from through its compare-and-swap.

use crate::runtime::store::{cas_update, SharedStore};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub label: String,
    /// Sustained requests per second.
    pub per_second: u64,
    /// Requests allowed in a burst (the bucket's size).
    pub burst: u64,
}

/// A bucket: tokens left (in thousandths, so refills are smooth) and when it was last filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub milli_tokens: u64,
    pub at_ms: u64,
}

impl Bucket {
    pub fn encode(&self) -> Vec<u8> {
        format!("{},{}", self.milli_tokens, self.at_ms).into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<Bucket> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (tokens, at) = text.split_once(',')?;
        Some(Bucket {
            milli_tokens: tokens.parse().ok()?,
            at_ms: at.parse().ok()?,
        })
    }
}

/// Takes one request from the bucket. `Err(retry_after_seconds)` when it is empty.
pub fn take(limit: &RateLimit, bucket: Option<Bucket>, now_ms: u64) -> (Result<(), u64>, Bucket) {
    let capacity = limit.burst.saturating_mul(1000);
    let mut b = bucket.unwrap_or(Bucket {
        milli_tokens: capacity,
        at_ms: now_ms,
    });
    // Tokens come back at `per_second` a second: per_second thousandths a millisecond.
    let elapsed = now_ms.saturating_sub(b.at_ms);
    b.milli_tokens = b
        .milli_tokens
        .saturating_add(elapsed.saturating_mul(limit.per_second))
        .min(capacity);
    b.at_ms = now_ms;
    if b.milli_tokens >= 1000 {
        b.milli_tokens = b.milli_tokens.saturating_sub(1000);
        (Ok(()), b)
    } else {
        let missing = 1000u64.saturating_sub(b.milli_tokens);
        let wait_ms = missing.checked_div(limit.per_second.max(1)).unwrap_or(1000);
        (Err(wait_ms.div_ceil(1000).max(1)), b)
    }
}

/// Takes one request from `label`'s shared bucket (key `envoy-scim-drupal/rate/{label}`, the
/// bucket as `milli_tokens,at_ms`). `Some(Err(retry_after_seconds))` when it is empty; `None`
/// when the store could not be read or written (then the request is not limited).
pub fn draw<S: SharedStore + ?Sized>(
    store: &mut S,
    limit: &RateLimit,
    now_ms: u64,
) -> Option<Result<(), u64>> {
    let key = format!("envoy-scim-drupal/rate/{}", limit.label);
    cas_update(store, &key, |bytes| {
        let bucket = bytes.as_deref().and_then(Bucket::decode);
        let (decision, next) = take(limit, bucket, now_ms);
        Some((next.encode(), decision))
    })
}

/// Parses `rate_limits`: `{"<token label>": {"requests_per_second": n, "burst": n}}`.
pub fn from_config(
    value: Option<&Value>,
    labels: &[&str],
) -> Result<Vec<RateLimit>, (String, String)> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let obj = value.as_object().ok_or_else(|| {
        (
            "rate_limits".to_string(),
            "must be an object: {\"<token label>\": {\"requests_per_second\": n, \"burst\": n}}"
                .to_string(),
        )
    })?;
    let mut out = Vec::new();
    for (label, spec) in obj {
        let field = format!("rate_limits.{label}");
        if !labels.contains(&label.as_str()) {
            return Err((field, "names no token label in `tokens`".into()));
        }
        let spec = spec
            .as_object()
            .ok_or_else(|| (field.clone(), "must be an object".to_string()))?;
        if let Some(k) = spec
            .keys()
            .find(|k| *k != "requests_per_second" && *k != "burst")
        {
            return Err((
                format!("{field}.{k}"),
                "unknown field (expected requests_per_second, burst)".into(),
            ));
        }
        let num = |k: &str| {
            spec.get(k)
                .and_then(Value::as_u64)
                .filter(|n| (1..=1_000_000).contains(n))
        };
        let per_second = num("requests_per_second").ok_or_else(|| {
            (
                format!("{field}.requests_per_second"),
                "must be an integer from 1 to 1000000".to_string(),
            )
        })?;
        let burst = match spec.get("burst") {
            None => per_second,
            Some(_) => num("burst").ok_or_else(|| {
                (
                    format!("{field}.burst"),
                    "must be an integer from 1 to 1000000".to_string(),
                )
            })?,
        };
        out.push(RateLimit {
            label: label.clone(),
            per_second,
            burst,
        });
    }
    Ok(out)
}

/// The answer when a token's budget is spent (RFC 7644 §3.12 has no scimType for it).
pub fn too_many_requests(retry_after_s: u64) -> crate::http::Response {
    crate::scim::error::ScimError::new(429, None, "Too many requests for this token; retry later.")
        .with_header("retry-after", &retry_after_s.to_string())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bucket_allows_the_burst_then_refills_at_the_rate() {
        let limit = RateLimit {
            label: "jc".into(),
            per_second: 2,
            burst: 3,
        };
        let mut b = None;
        for _ in 0..3 {
            let (r, nb) = take(&limit, b, 1000);
            assert!(r.is_ok());
            b = Some(nb);
        }
        let (r, nb) = take(&limit, b, 1000);
        assert_eq!(r, Err(1));
        let (r, _) = take(&limit, Some(nb), 1500);
        assert!(r.is_ok(), "half a second brings one token back at 2/s");
        assert_eq!(Bucket::decode(&nb.encode()), Some(nb));
    }

    #[test]
    fn config_errors_are_named() {
        assert_eq!(
            from_config(Some(&json!({"x": {"requests_per_second": 1}})), &["jc"])
                .unwrap_err()
                .0,
            "rate_limits.x"
        );
        assert_eq!(
            from_config(Some(&json!({"jc": {"requests_per_second": 0}})), &["jc"])
                .unwrap_err()
                .0,
            "rate_limits.jc.requests_per_second"
        );
        assert_eq!(
            from_config(Some(&json!({"jc": {"rps": 1}})), &["jc"])
                .unwrap_err()
                .0,
            "rate_limits.jc.rps"
        );
        let l = from_config(Some(&json!({"jc": {"requests_per_second": 5}})), &["jc"]).unwrap();
        assert_eq!((l[0].per_second, l[0].burst), (5, 5));
        assert_eq!(too_many_requests(2).header("retry-after"), Some("2"));
    }

    #[test]
    fn draws_share_one_bucket_per_label_in_the_store() {
        let mut s = crate::runtime::store::MemoryStore::default();
        let limit = RateLimit {
            label: "jc".into(),
            per_second: 1,
            burst: 2,
        };
        assert_eq!(draw(&mut s, &limit, 0), Some(Ok(())));
        s.lose_next = 3;
        assert_eq!(draw(&mut s, &limit, 0), Some(Ok(())));
        assert_eq!(draw(&mut s, &limit, 0), Some(Err(1)));
        let (bytes, _) = s.get("envoy-scim-drupal/rate/jc").unwrap();
        assert_eq!(bytes.unwrap(), b"0,0".to_vec());
        s.fail_all = true;
        assert_eq!(draw(&mut s, &limit, 0), None);
    }
}
