//! `--drupal-version`: the answers that differ between the recorded 10.3.6 and the releases the
//! live contract (tests/live_contract/) replayed the transcripts against, 10.6.15 and 11.4.5.

use drupal_emulator::client::{send, HttpResp};
use drupal_emulator::model::DrupalVersion;
use drupal_emulator::util::base64_encode;
use drupal_emulator::{parse_args, spawn, Options};
use serde_json::{json, Value};
use std::net::SocketAddr;

fn start(v: DrupalVersion) -> SocketAddr {
    let mut opts = Options {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    opts.config.drupal_version = v;
    opts.config.settings.second_run_fields = true;
    spawn(opts).unwrap().0
}

fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> HttpResp {
    let h = vec![
        (
            "Authorization".to_string(),
            format!("Basic {}", base64_encode("admin:admin")),
        ),
        (
            "Content-Type".to_string(),
            "application/vnd.api+json".to_string(),
        ),
    ];
    let b = body.map(|b| b.to_string());
    send(addr, method, path, &h, b.as_deref().map(|s| s.as_bytes())).unwrap()
}

fn json(r: &HttpResp) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn create_user(addr: SocketAddr, name: &str, mail: &str) -> HttpResp {
    call(
        addr,
        "POST",
        "/jsonapi/user/user",
        Some(json!({"data": {"type": "user--user", "attributes": {"name": name, "mail": mail}}})),
    )
}

#[test]
fn the_flag_takes_the_three_versions_and_defaults_to_the_recorded_one() {
    let args = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        args(&[]).unwrap().config.drupal_version,
        DrupalVersion::V10_3
    );
    assert_eq!(
        args(&["--drupal-version", "10.6"])
            .unwrap()
            .config
            .drupal_version,
        DrupalVersion::V10_6
    );
    assert_eq!(
        args(&["--drupal-version=11.4"])
            .unwrap()
            .config
            .drupal_version,
        DrupalVersion::V11_4
    );
    assert!(args(&["--drupal-version", "9.5"]).is_err());
}

#[test]
fn a_case_different_duplicate_mail_is_taken_from_10_6_on() {
    for (v, want) in [
        (DrupalVersion::V10_3, 201),
        (DrupalVersion::V10_6, 422),
        (DrupalVersion::V11_4, 422),
    ] {
        let addr = start(v);
        assert_eq!(create_user(addr, "alice", "alice@example.com").status, 201);
        let r = create_user(addr, "alice2", "ALICE@EXAMPLE.COM");
        assert_eq!(r.status, want, "{v:?}");
        if want == 422 {
            assert_eq!(
                json(&r)["errors"][0]["detail"],
                "mail: The email address ALICE@EXAMPLE.COM is already taken."
            );
        }
        // filter[mail] stays case-sensitive on SQLite in every version.
        let found = call(
            addr,
            "GET",
            "/jsonapi/user/user?filter[mail]=Alice@Example.com",
            None,
        );
        assert_eq!(json(&found)["data"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
fn error_info_links_use_https_from_10_6_on() {
    for (v, scheme) in [
        (DrupalVersion::V10_3, "http"),
        (DrupalVersion::V10_6, "https"),
        (DrupalVersion::V11_4, "https"),
    ] {
        let addr = start(v);
        let r = call(addr, "GET", "/jsonapi/user/user?filter[pass]=x", None);
        assert_eq!(r.status, 403);
        assert_eq!(
            json(&r)["errors"][0]["links"]["info"]["href"],
            format!("{scheme}://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.4")
        );
    }
}

#[test]
fn terms_carry_a_working_copy_link_from_10_6_on() {
    for v in [
        DrupalVersion::V10_3,
        DrupalVersion::V10_6,
        DrupalVersion::V11_4,
    ] {
        let addr = start(v);
        let r = call(
            addr,
            "POST",
            "/jsonapi/taxonomy_term/scim_groups",
            Some(
                json!({"data": {"type": "taxonomy_term--scim_groups", "attributes": {"name": "Eng"}}}),
            ),
        );
        assert_eq!(r.status, 201);
        let doc = json(&r);
        let id = doc["data"]["id"].as_str().unwrap().to_string();
        let wc = &doc["data"]["links"]["working-copy"]["href"];
        if v == DrupalVersion::V10_3 {
            assert!(wc.is_null(), "{doc}");
        } else {
            assert!(
                wc.as_str().unwrap().ends_with(&format!(
                    "/jsonapi/taxonomy_term/scim_groups/{id}?resourceVersion=rel%3Aworking-copy"
                )),
                "{doc}"
            );
        }
    }
}

#[test]
fn basic_auth_gets_say_page_cache_passed_them_from_10_6_on() {
    for (v, want) in [
        (DrupalVersion::V10_3, None),
        (DrupalVersion::V10_6, Some("UNCACHEABLE (request policy)")),
    ] {
        let addr = start(v);
        let r = call(addr, "GET", "/jsonapi/user/user", None);
        assert_eq!(r.header("X-Drupal-Cache"), want, "{v:?}");
        // Not on writes, and not without Basic credentials.
        let w = create_user(addr, "bob", "bob@example.com");
        assert_eq!(w.header("X-Drupal-Cache"), None);
        let anon = send(addr, "GET", "/jsonapi", &[], None).unwrap();
        assert_eq!(anon.header("X-Drupal-Cache"), None);
    }
}
