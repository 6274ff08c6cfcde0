//! Envoy stats through proxy-wasm metrics. Names are dotted (Envoy's convention); the shipped
//! envoy.yaml turns their `token.`, `resource.`, `op.`, `status.`, `method.` and `scim_type.`
//! parts into tags (Prometheus labels). Ids are defined once per VM and name.

use crate::flows::adoption::AdoptedOn;
use proxy_wasm::types::MetricType;
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static IDS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn id(kind: MetricType, name: &str) -> Option<u32> {
    IDS.with(|ids| {
        let mut ids = ids.try_borrow_mut().ok()?;
        if let Some(id) = ids.get(name) {
            return Some(*id);
        }
        let id = proxy_wasm::hostcalls::define_metric(kind, name).ok()?;
        ids.insert(name.to_string(), id);
        Some(id)
    })
}

pub fn count(name: &str) {
    if let Some(id) = id(MetricType::Counter, name) {
        let _ = proxy_wasm::hostcalls::increment_metric(id, 1);
    }
}

/// Token label, resource, op and status.
type RequestKey = (String, &'static str, &'static str, u16);

/// The ids of the two counters every request adds to, by their parts: found without
/// formatting their names (a request pays a linear scan of the few seen so far).
#[derive(Default)]
struct Known {
    requests: Vec<(RequestKey, u32)>,
    calls: Vec<((&'static str, u16), u32)>,
}

thread_local! {
    static KNOWN: RefCell<Known> = RefCell::new(Known::default());
}

/// `scim.requests.token.{label}.resource.{resource}.op.{op}.status.{status}`.
pub fn count_request(label: &str, resource: &'static str, op: &'static str, status: u16) {
    let id = KNOWN.with(|k| {
        let mut k = k.try_borrow_mut().ok()?;
        let found = k
            .requests
            .iter()
            .find(|((l, r, o, s), _)| *s == status && *r == resource && *o == op && l == label)
            .map(|(_, id)| *id);
        if found.is_some() {
            return found;
        }
        let name =
            format!("scim.requests.token.{label}.resource.{resource}.op.{op}.status.{status}");
        let id = id(MetricType::Counter, &name)?;
        k.requests
            .push(((label.to_string(), resource, op, status), id));
        Some(id)
    });
    if let Some(id) = id {
        let _ = proxy_wasm::hostcalls::increment_metric(id, 1);
    }
}

/// `scim.drupal_calls.method.{method}.status.{status}`.
pub fn count_call(method: &'static str, status: u16) {
    let id = KNOWN.with(|k| {
        let mut k = k.try_borrow_mut().ok()?;
        let found = k
            .calls
            .iter()
            .find(|((m, s), _)| *s == status && *m == method)
            .map(|(_, id)| *id);
        if found.is_some() {
            return found;
        }
        let id = id(
            MetricType::Counter,
            &format!("scim.drupal_calls.method.{method}.status.{status}"),
        )?;
        k.calls.push(((method, status), id));
        Some(id)
    });
    if let Some(id) = id {
        let _ = proxy_wasm::hostcalls::increment_metric(id, 1);
    }
}

pub fn count_by(name: &str, n: u32) {
    if let Some(id) = id(MetricType::Counter, name) {
        let _ = proxy_wasm::hostcalls::increment_metric(id, i64::from(n));
    }
}

/// Stats for whether a request did something: defined at start-up so they read 0 until it
/// happens.
pub const BACKOFF_ACTIVE: &str = "scim.upstream_backoff_active";

pub fn declare() {
    let _ = id(MetricType::Gauge, BACKOFF_ACTIVE);
    for on in [AdoptedOn::Create, AdoptedOn::Lookup] {
        let _ = id(MetricType::Counter, on.metric());
    }
    for event in crate::runtime::tally::EVENTS {
        let _ = id(MetricType::Counter, event.metric());
    }
}

/// Turns the events the core counted since the last call into Envoy counters, and logs the
/// failures on the shared state it kept (a lock not released, an update given up).
pub fn drain_tally() {
    for (event, n) in crate::runtime::tally::drain() {
        count_by(event.metric(), n);
    }
    for line in crate::runtime::tally::drain_failures() {
        log::warn!("scim shared state: {line}");
    }
}

pub fn record(name: &str, value: u64) {
    if let Some(id) = id(MetricType::Histogram, name) {
        let _ = proxy_wasm::hostcalls::record_metric(id, value);
    }
}

/// Sets a gauge (every worker's VM sets the one Envoy stat).
pub fn gauge(name: &str, value: u64) {
    if let Some(id) = id(MetricType::Gauge, name) {
        let _ = proxy_wasm::hostcalls::record_metric(id, value);
    }
}

/// Keeps a value fit for a metric name part.
pub fn safe(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect()
}
