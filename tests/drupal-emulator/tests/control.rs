//! The control API and a few Drupal behaviours, end to end over HTTP.

use drupal_emulator::client::{send, HttpResp};
use drupal_emulator::util::base64_encode;
use drupal_emulator::{spawn, Options};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Instant;

fn start() -> SocketAddr {
    let opts = Options {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    spawn(opts).unwrap().0
}

fn admin() -> (String, String) {
    (
        "Authorization".into(),
        format!("Basic {}", base64_encode("admin:admin")),
    )
}

fn call(addr: SocketAddr, method: &str, path: &str, auth: bool, body: Option<Value>) -> HttpResp {
    let mut h = vec![];
    if auth {
        h.push(admin());
    }
    let ct = if path.starts_with("/jsonapi") {
        "application/vnd.api+json"
    } else {
        "application/json"
    };
    h.push(("Content-Type".to_string(), ct.to_string()));
    let b = body.map(|b| b.to_string());
    send(addr, method, path, &h, b.as_deref().map(|s| s.as_bytes())).unwrap()
}

fn json(r: &HttpResp) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn seeding_listing_and_reset() {
    let addr = start();
    let r = call(
        addr,
        "POST",
        "/_emulator/users",
        false,
        Some(
            json!([{"name": "ann", "mail": "ann@example.com", "pass": "pw"}, {"name": "ben", "roles": ["content_editor"], "status": false}]),
        ),
    );
    assert_eq!(r.status, 200);
    let created = json(&r);
    assert_eq!(created[0]["uid"], 2);
    assert_eq!(created[1]["uid"], 3);
    // Upsert by name: a new password.
    let r = call(
        addr,
        "POST",
        "/_emulator/users",
        false,
        Some(json!({"name": "ANN", "pass": "pw2"})),
    );
    assert_eq!(json(&r)["uid"], 2);
    let r = send(
        addr,
        "GET",
        "/jsonapi",
        &[(
            "Authorization".into(),
            format!("Basic {}", base64_encode("ann:pw2")),
        )],
        None,
    )
    .unwrap();
    assert_eq!(
        json(&r)["meta"]["links"]["me"]["meta"]["id"],
        created[0]["uuid"]
    );

    let r = call(
        addr,
        "GET",
        "/jsonapi/user/user?filter[status]=1&sort=-name",
        true,
        None,
    );
    let names: Vec<String> = json(&r)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attributes"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["ann", "admin"]);

    let log = json(&call(addr, "GET", "/_emulator/requests", false, None));
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(
        log[1]["path"],
        "/jsonapi/user/user?filter[status]=1&sort=-name"
    );
    assert_eq!(
        log[1]["headers"]["content-type"],
        "application/vnd.api+json"
    );

    let admin_uuid = json(&call(addr, "GET", "/jsonapi", true, None))["meta"]["links"]["me"]
        ["meta"]["id"]
        .clone();
    assert_eq!(
        call(addr, "POST", "/_emulator/reset", false, None).status,
        200
    );
    let r = call(addr, "GET", "/jsonapi/user/user", true, None);
    assert_eq!(json(&r)["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        json(&r)["data"][1]["id"],
        admin_uuid,
        "reset keeps the seed UUIDs"
    );
    assert_eq!(
        json(&call(addr, "GET", "/_emulator/requests", false, None))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn settings_switch_live() {
    let addr = start();
    let r = call(
        addr,
        "PUT",
        "/_emulator/settings",
        false,
        Some(json!({"cancel_method": "user_cancel_delete", "read_only": true})),
    );
    assert_eq!(json(&r)["cancel_method"], "user_cancel_delete");
    let r = call(
        addr,
        "POST",
        "/jsonapi/user/user",
        true,
        Some(json!({"data": {"type": "user--user", "attributes": {"name": "x"}}})),
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET"));
    call(
        addr,
        "PUT",
        "/_emulator/settings",
        false,
        Some(json!({"read_only": false})),
    );
    let r = call(
        addr,
        "POST",
        "/jsonapi/user/user",
        true,
        Some(json!({"data": {"type": "user--user", "attributes": {"name": "x", "status": true}}})),
    );
    assert_eq!(r.status, 201);
    let id = json(&r)["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            addr,
            "DELETE",
            &format!("/jsonapi/user/user/{id}"),
            true,
            None
        )
        .status,
        204
    );
    assert_eq!(
        call(addr, "GET", &format!("/jsonapi/user/user/{id}"), true, None).status,
        404
    );
    assert_eq!(
        call(
            addr,
            "PUT",
            "/_emulator/settings",
            false,
            Some(json!({"cancel_method": "nope"}))
        )
        .status,
        400
    );
    let s = json(&call(addr, "GET", "/_emulator/settings", false, None));
    assert_eq!(
        s,
        json!({"cancel_method": "user_cancel_delete", "mail_case_insensitive": false, "read_only": false, "latency_ms": 0, "cost_model": "none", "race_window_ms": 0, "second_run_fields": false, "user_fields": [], "dynamic_page_cache": false, "rest_user_resource": "basic_auth,cookie"})
    );
}

#[test]
fn faults() {
    let addr = start();
    let r = call(
        addr,
        "PUT",
        "/_emulator/faults",
        false,
        Some(
            json!({"status": 500, "body": "{\"message\":\"boom\"}", "count": 2, "path_prefix": "/jsonapi/user/user", "method": "GET"}),
        ),
    );
    assert_eq!(r.status, 200);
    assert_eq!(call(addr, "GET", "/jsonapi", true, None).status, 200);
    for _ in 0..2 {
        let r = call(addr, "GET", "/jsonapi/user/user", true, None);
        assert_eq!(r.status, 500);
        assert_eq!(json(&r)["message"], "boom");
    }
    assert_eq!(
        call(addr, "GET", "/jsonapi/user/user", true, None).status,
        200
    );

    call(
        addr,
        "PUT",
        "/_emulator/faults",
        false,
        Some(json!({"drop": true, "count": 1})),
    );
    let h = vec![admin()];
    assert!(
        send(addr, "GET", "/jsonapi", &h, None).is_err(),
        "connection closed without an answer"
    );
    assert_eq!(call(addr, "GET", "/jsonapi", true, None).status, 200);

    call(
        addr,
        "PUT",
        "/_emulator/faults",
        false,
        Some(json!({"delay_ms": 300, "count": 1})),
    );
    let t = Instant::now();
    assert_eq!(call(addr, "GET", "/jsonapi", true, None).status, 200);
    assert!(t.elapsed().as_millis() >= 300);
    call(
        addr,
        "PUT",
        "/_emulator/faults",
        false,
        Some(json!({"status": 503, "count": 5})),
    );
    assert_eq!(
        call(addr, "DELETE", "/_emulator/faults", false, None).status,
        200
    );
    assert_eq!(call(addr, "GET", "/jsonapi", true, None).status, 200);
}

#[test]
fn flood_control_and_mail_case() {
    let addr = start();
    let wrong = vec![(
        "Authorization".to_string(),
        format!("Basic {}", base64_encode("admin:bad")),
    )];
    for _ in 0..5 {
        let r = send(addr, "GET", "/jsonapi", &wrong, None).unwrap();
        assert!(json(&r).get("meta").is_none());
    }
    let r = call(addr, "GET", "/jsonapi", true, None);
    assert!(
        json(&r).get("meta").is_none(),
        "locked out after 5 failures"
    );
    call(addr, "DELETE", "/_emulator/flood", false, None);
    let r = call(addr, "GET", "/jsonapi", true, None);
    assert!(json(&r).get("meta").is_some());

    let mk = |name: &str, mail: &str| json!({"data": {"type": "user--user", "attributes": {"name": name, "mail": mail}}});
    assert_eq!(
        call(
            addr,
            "POST",
            "/jsonapi/user/user",
            true,
            Some(mk("a1", "a@example.com"))
        )
        .status,
        201
    );
    assert_eq!(
        call(
            addr,
            "POST",
            "/jsonapi/user/user",
            true,
            Some(mk("a2", "A@EXAMPLE.COM"))
        )
        .status,
        201
    );
    call(
        addr,
        "PUT",
        "/_emulator/settings",
        false,
        Some(json!({"mail_case_insensitive": true})),
    );
    let r = call(
        addr,
        "POST",
        "/jsonapi/user/user",
        true,
        Some(mk("a3", "a@Example.com")),
    );
    assert_eq!(r.status, 422);
    let r = call(
        addr,
        "GET",
        "/jsonapi/user/user?filter[mail]=A@example.com",
        true,
        None,
    );
    assert_eq!(json(&r)["data"].as_array().unwrap().len(), 2);
}
