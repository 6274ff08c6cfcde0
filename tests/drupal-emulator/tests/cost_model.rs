//! The `cost_model` setting: accepted by the flag and the control API, and it switches the
//! per-request delay between "none" and Drupal's Basic/session costs. Asserts on the computed
//! delay (`cost::delay_us`), never on wall time.

use drupal_emulator::client::send;
use drupal_emulator::cost::{self, Auth, CostModel, Kind};
use drupal_emulator::{parse_args, spawn, Options};
use serde_json::{json, Value};
use std::net::SocketAddr;

fn start(extra: &[&str]) -> SocketAddr {
    let mut args: Vec<String> = vec!["--listen".into(), "127.0.0.1:0".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let opts: Options = parse_args(&args).unwrap();
    spawn(opts).unwrap().0
}

fn settings(addr: SocketAddr, method: &str, body: Option<Value>) -> (u16, Value) {
    let h = vec![("Content-Type".to_string(), "application/json".to_string())];
    let b = body.map(|b| b.to_string());
    let r = send(
        addr,
        method,
        "/_emulator/settings",
        &h,
        b.as_deref().map(|s| s.as_bytes()),
    )
    .unwrap();
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn flag_and_control_api() {
    // Default: off.
    let addr = start(&[]);
    assert_eq!(settings(addr, "GET", None).1["cost_model"], "none");
    let (st, s) = settings(addr, "PUT", Some(json!({"cost_model": "drupal"})));
    assert_eq!(st, 200);
    assert_eq!(s["cost_model"], "drupal");
    assert_eq!(settings(addr, "GET", None).1["cost_model"], "drupal");
    let (st, _) = settings(addr, "PUT", Some(json!({"cost_model": "php"})));
    assert_eq!(st, 400);
    assert_eq!(settings(addr, "GET", None).1["cost_model"], "drupal");
    let (st, s) = settings(addr, "PATCH", Some(json!({"cost_model": "none"})));
    assert_eq!(st, 200);
    assert_eq!(s["cost_model"], "none");

    // The flag, and reset keeps the configured model.
    let addr = start(&["--cost-model", "drupal"]);
    assert_eq!(settings(addr, "GET", None).1["cost_model"], "drupal");
    let h: Vec<(String, String)> = vec![];
    assert_eq!(
        send(addr, "POST", "/_emulator/reset", &h, None)
            .unwrap()
            .status,
        200
    );
    assert_eq!(settings(addr, "GET", None).1["cost_model"], "drupal");
    assert!(parse_args(&["--cost-model".into(), "fast".into()]).is_err());
    assert!(parse_args(&["--cost-model=none".into()]).is_ok());
}

#[test]
fn the_setting_changes_the_timing_class() {
    let basic = vec![(
        "authorization".to_string(),
        "Basic YWRtaW46d3Jvbmc=".to_string(), // admin:wrong: a wrong password pays too
    )];
    let cookie = vec![(
        "cookie".to_string(),
        "SESS12ca17b49af2289436f303e0166030a2=abc".to_string(),
    )];
    let id = "/jsonapi/user/user/0b5a1c3e-0000-4000-8000-000000000001";
    // Off: no delay whatever the request.
    for h in [&basic, &cookie] {
        assert_eq!(cost::delay_us(CostModel::None, "GET", id, h), 0);
        assert_eq!(cost::delay_us(CostModel::None, "POST", "/user/login", h), 0);
    }
    // On: Basic pays the 42.6 ms hash, the session does not.
    let b = cost::delay_us(CostModel::Drupal, "GET", id, &basic);
    let s = cost::delay_us(CostModel::Drupal, "GET", id, &cookie);
    assert_eq!(b, cost::cost_us(Kind::GetIndividual, Auth::Basic));
    assert_eq!(s, cost::cost_us(Kind::GetIndividual, Auth::Session));
    assert_eq!(cost::cost_ms(Kind::GetIndividual, Auth::Basic), 53);
    assert_eq!(cost::cost_ms(Kind::GetIndividual, Auth::Session), 7);
    assert_eq!(cost::cost_ms(Kind::Patch, Auth::Basic), 67);
    assert_eq!(cost::cost_ms(Kind::Patch, Auth::Session), 22);
    assert!(b >= s + cost::BCRYPT_US);
    // Login verifies the posted password's hash even without Basic credentials.
    assert!(cost::delay_us(CostModel::Drupal, "POST", "/user/login", &[]) >= cost::BCRYPT_US);
}
