//! Second-run features end to end: the lost-update race switch, configurable user fields,
//! taxonomy-term groups with dangling references, and PHP-lenient request lines.

use drupal_emulator::client::{send, HttpResp};
use drupal_emulator::fields::UserField;
use drupal_emulator::util::base64_encode;
use drupal_emulator::{spawn, Options};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

fn start(race_window_ms: u64, extra: &[&str]) -> SocketAddr {
    let mut opts = Options {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    opts.config.settings.second_run_fields = true;
    opts.config.settings.race_window_ms = race_window_ms;
    for spec in extra {
        opts.config
            .settings
            .user_fields
            .push(UserField::parse_spec(spec).unwrap());
    }
    spawn(opts).unwrap().0
}

fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> HttpResp {
    let ct = if path.starts_with("/jsonapi") {
        "application/vnd.api+json"
    } else {
        "application/json"
    };
    let h = vec![
        (
            "Authorization".to_string(),
            format!("Basic {}", base64_encode("admin:admin")),
        ),
        ("Content-Type".to_string(), ct.to_string()),
    ];
    let b = body.map(|b| b.to_string());
    send(addr, method, path, &h, b.as_deref().map(|s| s.as_bytes())).unwrap()
}

fn json(r: &HttpResp) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

/// Creates a user and five scim_groups terms through the control API.
fn seed(addr: SocketAddr, user: &str) -> (String, Vec<String>) {
    let u = json(&call(
        addr,
        "POST",
        "/_emulator/users",
        Some(json!({"name": user, "mail": format!("{user}@example.com")})),
    ));
    let terms = json(&call(
        addr,
        "POST",
        "/_emulator/terms",
        Some(json!((1..=5)
            .map(|i| json!({"name": format!("{user} team {i}")}))
            .collect::<Vec<_>>())),
    ));
    let ids = terms
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uuid"].as_str().unwrap().to_string())
        .collect();
    (u["uuid"].as_str().unwrap().to_string(), ids)
}

/// Five concurrent relationship adds, one group each; returns (statuses, groups kept).
fn five_adds(addr: SocketAddr, user: &str, terms: &[String]) -> (Vec<u16>, usize) {
    let path = format!("/jsonapi/user/user/{user}/relationships/field_scim_groups");
    let handles: Vec<_> = terms
        .iter()
        .map(|t| {
            let (path, t) = (path.clone(), t.clone());
            std::thread::spawn(move || {
                call(
                    addr,
                    "POST",
                    &path,
                    Some(json!({"data": [{"type": "taxonomy_term--scim_groups", "id": t}]})),
                )
                .status
            })
        })
        .collect();
    let statuses = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let kept = json(&call(addr, "GET", &path, None))["data"]
        .as_array()
        .unwrap()
        .len();
    (statuses, kept)
}

#[test]
fn concurrent_relationship_adds_lose_updates_only_with_the_race_switch() {
    let addr = start(150, &[]);
    let (user, terms) = seed(addr, "racer");
    let (statuses, kept) = five_adds(addr, &user, &terms);
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 204),
        "{statuses:?}"
    );
    assert!(kept < 5, "race on: {kept} of 5 kept");
    assert!(kept >= 1);

    // Switched off live: writes are serialised again and every add is kept.
    let r = call(
        addr,
        "PUT",
        "/_emulator/settings",
        Some(json!({"race_window_ms": 0})),
    );
    assert_eq!(json(&r)["race_window_ms"], 0);
    let (user, terms) = seed(addr, "calm");
    let (statuses, kept) = five_adds(addr, &user, &terms);
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 204),
        "{statuses:?}"
    );
    assert_eq!(kept, 5);
}

#[test]
fn concurrent_creates_hit_the_unique_index_or_duplicate_mails() {
    let addr = start(150, &[]);
    let burst = |bodies: Vec<Value>| -> Vec<HttpResp> {
        let hs: Vec<_> = bodies
            .into_iter()
            .map(|b| std::thread::spawn(move || call(addr, "POST", "/jsonapi/user/user", Some(b))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    };
    let same_name = burst(
        (1..=5)
            .map(|i| json!({"data": {"type": "user--user", "attributes": {"name": "dup", "mail": format!("dup{i}@example.com"), "status": true}}}))
            .collect(),
    );
    let created = same_name.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1);
    let unique: Vec<&HttpResp> = same_name.iter().filter(|r| r.status == 500).collect();
    assert!(!unique.is_empty());
    let detail = json(unique[0])["errors"][0]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.starts_with("SQLSTATE[23000]: Integrity constraint violation: 19 UNIQUE constraint failed: users_field_data.name, users_field_data.langcode: INSERT INTO \"users_field_data\""),
        "{detail}"
    );
    let list = json(&call(
        addr,
        "GET",
        "/jsonapi/user/user?filter[name]=dup",
        None,
    ));
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let same_mail = burst(
        (1..=4)
            .map(|i| json!({"data": {"type": "user--user", "attributes": {"name": format!("mail{i}"), "mail": "same@example.com", "status": true}}}))
            .collect(),
    );
    assert!(same_mail.iter().all(|r| r.status == 201));
    let list = json(&call(
        addr,
        "GET",
        "/jsonapi/user/user?filter[mail]=same@example.com",
        None,
    ));
    assert_eq!(list["data"].as_array().unwrap().len(), 4);
}

#[test]
fn configurable_fields_validate_filter_and_sort() {
    let addr = start(0, &["field_age:integer", "field_vip:boolean"]);
    let long = "x".repeat(256);
    let r = call(
        addr,
        "POST",
        "/jsonapi/user/user",
        Some(
            json!({"data": {"type": "user--user", "attributes": {"name": "zed", "field_age": "abc", "field_family_name": long}}}),
        ),
    );
    assert_eq!(r.status, 422);
    let errs: Vec<(String, String)> = json(&r)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["detail"].as_str().unwrap().to_string(),
                e["source"]["pointer"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        errs,
        vec![
            (
                "field_age.0.value: This value should be of the correct primitive type.".into(),
                "/data/attributes/field_age/value".into()
            ),
            (
                "field_family_name.0.value: Family name: may not be longer than 255 characters."
                    .into(),
                "/data/attributes/field_family_name/value".into()
            ),
        ]
    );
    for (name, age, vip) in [("ann", 31, true), ("bob", 7, false), ("cy", 19, true)] {
        let r = call(
            addr,
            "POST",
            "/jsonapi/user/user",
            Some(
                json!({"data": {"type": "user--user", "attributes": {"name": name, "field_age": age, "field_vip": vip, "field_given_name": name.to_uppercase()}}}),
            ),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(json(&r)["data"]["attributes"]["field_age"], age);
    }
    let names = |path: &str| -> Vec<String> {
        json(&call(addr, "GET", path, None))["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["attributes"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        names("/jsonapi/user/user?filter[a][condition][path]=field_age&filter[a][condition][operator]=%3E%3D&filter[a][condition][value]=18&sort=-field_age&fields[user--user]=name"),
        ["ann", "cy"]
    );
    assert_eq!(
        names("/jsonapi/user/user?filter[field_vip]=0&fields[user--user]=name"),
        ["bob"]
    );
    // String fields compare like the recorded field_given_name: `=` ignores case.
    assert_eq!(
        names("/jsonapi/user/user?filter[field_given_name]=cy&fields[user--user]=name"),
        ["cy"]
    );
    let r = call(addr, "GET", "/jsonapi/user/user?filter[nickname]=x", None);
    assert_eq!(r.status, 400);
    // Settable live, too.
    let r = call(
        addr,
        "PUT",
        "/_emulator/settings",
        Some(json!({"user_fields": [{"name": "field_code", "type": "string"}]})),
    );
    assert_eq!(r.status, 200);
    let me = json(&call(addr, "GET", "/jsonapi", None))["meta"]["links"]["me"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let path = me.split("127.0.0.1").nth(1).unwrap();
    let path = &path[path.find('/').unwrap()..];
    let attrs = json(&call(addr, "GET", path, None))["data"]["attributes"].clone();
    assert!(attrs.get("field_code").is_some());
    assert!(attrs.get("field_age").is_none());
}

#[test]
fn deleted_group_leaves_a_dangling_reference() {
    let addr = start(0, &[]);
    let (user, terms) = seed(addr, "dangle");
    let rel = format!("/jsonapi/user/user/{user}/relationships/field_scim_groups");
    let item = |t: &str| json!({"type": "taxonomy_term--scim_groups", "id": t});
    let r = call(
        addr,
        "PATCH",
        &rel,
        Some(json!({"data": [item(&terms[0]), item(&terms[1])]})),
    );
    assert_eq!(r.status, 204);
    let r = call(
        addr,
        "DELETE",
        &format!("/jsonapi/taxonomy_term/scim_groups/{}", terms[0]),
        None,
    );
    assert_eq!(r.status, 204);
    let data = json(&call(addr, "GET", &rel, None))["data"].clone();
    assert_eq!(data[0]["id"], "missing");
    let r = call(addr, "POST", &rel, Some(json!({"data": [item(&terms[2])]})));
    assert_eq!(r.status, 422);
    assert_eq!(
        json(&r)["errors"][0]["source"]["pointer"],
        "/data/attributes/field_scim_groups/0/target_id"
    );
    let r = call(
        addr,
        "PATCH",
        &rel,
        Some(json!({"data": [item(&terms[2])]})),
    );
    assert_eq!(r.status, 204);
    let r = call(addr, "POST", &rel, Some(json!({"data": [item(&terms[3])]})));
    assert_eq!(r.status, 200);
}

#[test]
fn raw_angle_brackets_in_the_request_line_on_a_kept_alive_connection() {
    let addr = start(0, &[]);
    let auth = format!("Basic {}", base64_encode("admin:admin"));
    let body = r#"{"data":{"type":"taxonomy_term--scim_groups","attributes":{"name":"a>b"}}}"#;
    let mut s = TcpStream::connect(addr).unwrap();
    let reqs = format!(
        "POST /jsonapi/taxonomy_term/scim_groups HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/vnd.api+json\r\nContent-Length: {}\r\n\r\n{body}\
         GET /jsonapi/user/user?filter[k][condition][path]=drupal_internal__uid&filter[k][condition][operator]=>&filter[k][condition][value]=0&fields[user--user]=name HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(reqs.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    assert!(out.contains("a\\u003Eb"), "{out}");
    let second = &out[out.rfind("HTTP/1.1 ").unwrap()..];
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(second.contains("\"name\":\"admin\""), "{second}");
}
