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

criterion_group!(benches, filters, patches, mapping_both_ways);
criterion_main!(benches);
