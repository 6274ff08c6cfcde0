//! Micro-benchmarks of the three pieces of CPU work the filter does per request: parsing
//! and translating a SCIM filter, applying a PATCH, and mapping JSON:API ↔ SCIM. Each runs
//! on inputs the IdP fixtures send, with the attribute mapping of `scripts/run`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use envoy_scim_drupal::drupal::jsonapi::parse_user;
use envoy_scim_drupal::drupal::user_filter;
use envoy_scim_drupal::scim::filter::parse_filter;
use envoy_scim_drupal::scim::mapping::UserMapping;
use envoy_scim_drupal::scim::patch;
use envoy_scim_drupal::scim::user::parse_user_body;
use serde_json::{json, Value};

const BASE_URL: &str = "https://gateway.example/scim/v2";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn mapping() -> UserMapping {
    let config: Value =
        serde_json::from_str(include_str!("../../../scripts/emulator-attributes.json"))
            .expect("scripts/emulator-attributes.json is JSON");
    let attributes = config.get("attributes").cloned().unwrap_or(config);
    UserMapping::from_config(Some(&attributes)).expect("a valid mapping")
}

fn filters(c: &mut Criterion) {
    let m = mapping();
    let mut g = c.benchmark_group("filter");
    for (name, text) in [
        ("userName eq", r#"userName eq "jane@example.com""#),
        (
            "Okta and/or",
            r#"(userName eq "jane@example.com" or emails[type eq "work" and value co "@example"]) and active eq true"#,
        ),
    ] {
        g.bench_function(format!("parse {name}"), |b| {
            b.iter(|| parse_filter(black_box(text)))
        });
        g.bench_function(format!("translate {name}"), |b| {
            b.iter(|| user_filter::translate(black_box(text), &m))
        });
    }
    g.finish();
}

fn patches(c: &mut Criterion) {
    let m = mapping();
    let user: Value = serde_json::from_str(include_str!("drupal-user-201.json")).expect("JSON");
    let data = user.get("data").cloned().unwrap_or(Value::Null);
    let drupal = parse_user(&data, &m).expect("a Drupal user");
    let mut g = c.benchmark_group("patch");
    for (name, ops) in [
        (
            "active=false",
            json!([{"op": "replace", "path": "active", "value": false}]),
        ),
        (
            "Entra mixed",
            json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"},
                {"op": "replace", "value": {"displayName": "Bjfe", "name.givenName": "Kkom",
                    "name.familyName": "Unua", format!("{ENTERPRISE}:employeeNumber"): "Aklq"}}
            ]),
        ),
    ] {
        let body = json!({"schemas": [patch::PATCH_OP_SCHEMA], "Operations": ops}).to_string();
        g.bench_function(format!("parse+apply+map {name}"), |b| {
            b.iter(|| {
                let ops = patch::parse(black_box(body.as_bytes())).expect("valid");
                let mut resource = drupal.attributes(&m);
                patch::apply(&mut resource, &ops, &m).expect("applies");
                m.from_scim(&resource).expect("maps")
            })
        });
    }
    g.finish();
}

fn mapping_both_ways(c: &mut Criterion) {
    let m = mapping();
    let doc = include_str!("drupal-user-201.json");
    let create = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": "jane@example.com", "active": true, "displayName": "Jane Doe",
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"value": "jane@example.com", "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "+1 555 0111", "type": "work"}],
        ENTERPRISE: {"employeeNumber": "E-1", "department": "Eng"}
    })
    .to_string();
    let mut g = c.benchmark_group("mapping");
    g.bench_function("JSON:API user -> SCIM resource", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_str(black_box(doc)).expect("JSON");
            let data = v.get("data").cloned().unwrap_or(Value::Null);
            let user = parse_user(&data, &m).expect("a user");
            serde_json::to_vec(&user.to_scim(&m, BASE_URL)).expect("serialises")
        })
    });
    g.bench_function("SCIM create body -> Drupal fields", |b| {
        b.iter(|| parse_user_body(black_box(create.as_bytes()), &m, false).expect("valid"))
    });
    g.finish();
}

/// One request through the whole core, as the host drives it in `basic` mode once Drupal has
/// accepted the credentials: the exchange plans the Drupal call, the gate authenticates it,
/// the reply goes back through the gate and the exchange answers. What V8 runs per request,
/// minus the host calls.
fn whole_requests(c: &mut Criterion) {
    use envoy_scim_drupal::drupal::upstream::{Arrival, Gate, GateEnv, Next};
    use envoy_scim_drupal::flows::exchange;
    use envoy_scim_drupal::flows::scope::LockScope as Env;
    use envoy_scim_drupal::http::{DrupalReply, Request, Step};
    use envoy_scim_drupal::runtime::intents::Applier;
    use envoy_scim_drupal::runtime::locks::MemoryLocks;
    use envoy_scim_drupal::runtime::session::{SessionSlot, SESSION_SLOT};
    use envoy_scim_drupal::runtime::store::SharedStore;

    let attributes: Value =
        serde_json::from_str(include_str!("../../../scripts/emulator-attributes.json"))
            .expect("scripts/emulator-attributes.json is JSON");
    let attributes = attributes.get("attributes").cloned().unwrap_or(attributes);
    let plugin = json!({
        "tokens": [{"label": "bench", "sha256": envoy_scim_drupal::hex::sha256_hex("bench-token")}],
        "drupal": {"cluster": "drupal", "authority": "drupal.local"},
        "attributes": attributes,
    });
    let env_vars = |name: &str| match name {
        "DRUPAL_USERNAME" => Some("svc".to_string()),
        "DRUPAL_PASSWORD" => Some("pw".to_string()),
        _ => None,
    };
    let (config, credentials) =
        envoy_scim_drupal::config::parse(&serde_json::to_vec(&plugin).expect("JSON"), &env_vars)
            .expect("a valid configuration");
    let doc: Value = serde_json::from_str(include_str!("drupal-user-201.json")).expect("JSON");
    let uuid = doc["data"]["id"].as_str().expect("an id").to_string();
    let one = serde_json::to_vec(&doc).expect("JSON");
    let list = serde_json::to_vec(&json!({
        "jsonapi": doc["jsonapi"], "data": [doc["data"]],
        "links": {"self": {"href": "http://127.0.0.1:8888/jsonapi/user/user"}}
    }))
    .expect("JSON");
    let request = |path: String| Request {
        method: "GET".into(),
        path,
        headers: vec![
            (":authority".into(), "gw.example:10000".into()),
            (":scheme".into(), "http".into()),
            ("authorization".into(), "Bearer bench-token".into()),
            ("x-request-id".into(), "0f3c1d2e-bench".into()),
        ],
        body: Vec::new(),
    };
    let run = |req: &Request, body: &[u8]| -> usize {
        let mut locks = MemoryLocks::default();
        let slot = SessionSlot {
            account: credentials.account_tag.clone(),
            basic_ok: true,
            epoch: 7,
            ..SessionSlot::default()
        };
        let slot = serde_json::to_vec(&slot).expect("JSON");
        locks.0.set(SESSION_SLOT, &slot, None).expect("a memory store");
        let mut env = Env::new(&mut locks, 1_000_000, "vm:1", 21_000);
        let (mut ex, step) = exchange::begin(&config, req, &mut env).expect("a SCIM path");
        let Step::Call(calls) = step else {
            panic!("expected a Drupal call")
        };
        let mut gate = Gate::new();
        let mut shared = Applier::new(&mut locks.0);
        let mut gate_env = GateEnv {
            credentials: &credentials,
            shared: &mut shared,
            now_ms: 1_000_000,
            owner: "vm:1",
            lock_ttl_ms: 21_000,
            can_pause: false,
            cache_epoch: 7,
            jsonapi: "/jsonapi",
        };
        let Next::Send(round) = gate.send(calls, &mut gate_env) else {
            panic!("expected a send")
        };
        let arrivals = round
            .iter()
            .map(|_| {
                Arrival::plain(DrupalReply::Answer {
                    status: 200,
                    body: body.to_vec(),
                })
            })
            .collect();
        let Next::Deliver(replies) = gate.receive(arrivals, &mut gate_env) else {
            panic!("expected replies")
        };
        let mut env = Env::new(&mut locks, 1_000_001, "vm:1", 21_000);
        match ex.resume(&config, replies, &mut env) {
            Step::Respond(r) => {
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                r.body.len()
            }
            Step::Call(c) => panic!("expected an answer, got {c:?}"),
        }
    };
    let get = request(format!("/scim/v2/Users/{uuid}"));
    let lookup = request(format!(
        "/scim/v2/Users?filter={}",
        "userName%20eq%20%22alice%22"
    ));
    let mut g = c.benchmark_group("request");
    g.bench_function("GET /Users/{id}", |b| b.iter(|| run(black_box(&get), &one)));
    g.bench_function("GET /Users?filter=userName eq", |b| {
        b.iter(|| run(black_box(&lookup), &list))
    });
    g.finish();
}

criterion_group!(benches, filters, patches, mapping_both_ways, whole_requests);
criterion_main!(benches);
