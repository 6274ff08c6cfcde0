//! Behaviours seen only on a real Drupal (`shared/research/real-drupal-faults.md`), each behind
//! its switch: Dynamic Page Cache poisoning, the REST user resource configuration and the
//! flood table.

use drupal_emulator::client::{send, HttpResp};
use drupal_emulator::util::base64_encode;
use drupal_emulator::{spawn, Options};
use serde_json::{json, Value};
use std::net::SocketAddr;

fn start() -> SocketAddr {
    let opts = Options {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    spawn(opts).unwrap().0
}

fn basic(user: &str, pass: &str) -> (String, String) {
    (
        "Authorization".into(),
        format!("Basic {}", base64_encode(&format!("{user}:{pass}"))),
    )
}

fn cookie(sid: &str) -> (String, String) {
    (
        "Cookie".into(),
        format!("{}={sid}", drupal_emulator::app::SESSION_COOKIE),
    )
}

fn get(addr: SocketAddr, path: &str, h: &[(String, String)]) -> HttpResp {
    send(addr, "GET", path, h, None).unwrap()
}

fn control(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> HttpResp {
    let b = body.map(|b| b.to_string());
    send(
        addr,
        method,
        path,
        &[("Content-Type".into(), "application/json".into())],
        b.as_deref().map(|s| s.as_bytes()),
    )
    .unwrap()
}

fn settings(addr: SocketAddr, v: Value) -> Value {
    let r = control(addr, "PUT", "/_emulator/settings", Some(v));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    json(&r)
}

fn json(r: &HttpResp) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn detail(r: &HttpResp) -> String {
    json(r)["errors"][0]["detail"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Logs in over `POST /user/login` and returns (session id, CSRF token).
fn login(addr: SocketAddr, user: &str, pass: &str) -> (String, String) {
    let body = json!({"name": user, "pass": pass}).to_string();
    let r = send(
        addr,
        "POST",
        "/user/login?_format=json",
        &[("Content-Type".into(), "application/json".into())],
        Some(body.as_bytes()),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let set = r.header("Set-Cookie").unwrap();
    let sid = set
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap();
    (sid, json(&r)["csrf_token"].as_str().unwrap().to_string())
}

const STATUS_URL: &str = "/jsonapi/user/user?filter[status]=1&filter[name]=admin";
const STATUS_DENIED: &str =
    "The current user is not authorized to filter by the `status` field, given in the path `status`.";

// -----------------------------------------------------------------------------------------
// 1. Dynamic Page Cache.

#[test]
fn dynamic_page_cache_off_by_default() {
    let addr = start();
    let wrong = [basic("admin", "wrong")];
    let r = get(addr, STATUS_URL, &wrong);
    assert_eq!(r.status, 403);
    assert_eq!(detail(&r), STATUS_DENIED);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), None);
    let r = get(addr, STATUS_URL, &[basic("admin", "admin")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), None);
    assert_eq!(
        json(&control(addr, "GET", "/_emulator/settings", None))["dynamic_page_cache"],
        false
    );
}

#[test]
fn refused_basic_credentials_poison_the_url() {
    let addr = start();
    assert_eq!(
        settings(addr, json!({"dynamic_page_cache": true}))["dynamic_page_cache"],
        true
    );
    let good = [basic("admin", "admin")];

    // No credentials: the uncached 401, nothing stored.
    let r = get(addr, STATUS_URL, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), None);
    // A wrong password: anonymous, 403, stored.
    let r = get(addr, STATUS_URL, &[basic("admin", "wrong")]);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), Some("MISS"));
    let first = json(&r);
    // Everyone now gets it: the right password, a session, no credentials at all.
    for _ in 0..2 {
        let r = get(addr, STATUS_URL, &good);
        assert_eq!(r.status, 403);
        assert_eq!(r.header("X-Drupal-Dynamic-Cache"), Some("HIT"));
        assert_eq!(json(&r), first);
    }
    let (sid, _) = login(addr, "admin", "admin");
    let r = get(addr, STATUS_URL, &[cookie(&sid)]);
    assert_eq!(
        (r.status, r.header("X-Drupal-Dynamic-Cache")),
        (403, Some("HIT"))
    );
    let r = get(addr, STATUS_URL, &[]);
    assert_eq!(
        (r.status, r.header("X-Drupal-Dynamic-Cache")),
        (403, Some("HIT"))
    );
    // The same query spelt another way: Symfony normalises it (encoding, top-level key
    // order), as records 12 and 14 show.
    let r = get(
        addr,
        "/jsonapi/user/user?filter%5Bstatus%5D=1&filter%5Bname%5D=admin",
        &good,
    );
    assert_eq!(
        (r.status, r.header("X-Drupal-Dynamic-Cache")),
        (403, Some("HIT"))
    );
    let r = get(
        addr,
        "/jsonapi/user/user?page[limit]=5&filter[status]=0",
        &[basic("admin", "wrong")],
    );
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), Some("MISS"));
    let r = get(
        addr,
        "/jsonapi/user/user?filter[status]=0&page[limit]=5",
        &good,
    );
    assert_eq!(
        (r.status, r.header("X-Drupal-Dynamic-Cache")),
        (403, Some("HIT"))
    );
    // HEAD shares the entry.
    let r = send(addr, "HEAD", STATUS_URL, &good, None).unwrap();
    assert_eq!(
        (r.status, r.header("X-Drupal-Dynamic-Cache")),
        (403, Some("HIT"))
    );
    // Other URLs are fine.
    let r = get(addr, "/jsonapi/user/user?filter[status]=1", &good);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), None);
    // Writes do not clear it.
    let body =
        json!({"data": {"type": "user--user", "attributes": {"name": "w1", "status": true}}})
            .to_string();
    let mut h = good.to_vec();
    h.push(("Content-Type".into(), "application/vnd.api+json".into()));
    let r = send(
        addr,
        "POST",
        "/jsonapi/user/user",
        &h,
        Some(body.as_bytes()),
    )
    .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(get(addr, STATUS_URL, &good).status, 403);
    let c = json(&control(addr, "GET", "/_emulator/cache", None));
    assert_eq!(
        c["poisoned"],
        json!([
            "/jsonapi/user/user?filter%5Bstatus%5D=0&page%5Blimit%5D=5",
            "/jsonapi/user/user?filter%5Bstatus%5D=1&filter%5Bname%5D=admin"
        ])
    );

    // A cache rebuild.
    let r = control(addr, "DELETE", "/_emulator/cache", None);
    assert_eq!(r.status, 204);
    let r = get(addr, STATUS_URL, &good);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), None);
}

#[test]
fn success_first_does_not_poison_and_reset_clears() {
    let addr = start();
    settings(addr, json!({"dynamic_page_cache": true}));
    let good = [basic("admin", "admin")];
    // Correct credentials first: the URL varies by permissions from then on.
    assert_eq!(get(addr, STATUS_URL, &good).status, 200);
    let r = get(addr, STATUS_URL, &[basic("admin", "wrong")]);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), None);
    assert_eq!(get(addr, STATUS_URL, &good).status, 200);

    // An authenticated caller's own 403 (limited may not filter on mail) is not cached.
    control(
        addr,
        "POST",
        "/_emulator/users",
        Some(json!({"name": "limited", "pass": "limited"})),
    );
    let url = "/jsonapi/user/user?filter[mail]=admin@example.com";
    let r = get(addr, url, &[basic("limited", "limited")]);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), None);
    assert_eq!(get(addr, url, &good).status, 200);

    // A stale session cookie is anonymous too, and poisons.
    let (sid, _) = login(addr, "admin", "admin");
    control(addr, "DELETE", "/_emulator/sessions", None);
    let url = "/jsonapi/user/user?filter[status]=0";
    let r = get(addr, url, &[cookie(&sid)]);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("X-Drupal-Dynamic-Cache"), Some("MISS"));
    assert!(r
        .header("Set-Cookie")
        .is_some_and(|c| c.contains("=deleted")));
    let r = get(addr, url, &good);
    assert_eq!(
        (r.status, r.header("X-Drupal-Dynamic-Cache")),
        (403, Some("HIT"))
    );

    // Switching the module off drops the bin; reset restores the default (off) and clears it.
    control(addr, "POST", "/_emulator/reset", None);
    let s = json(&control(addr, "GET", "/_emulator/settings", None));
    assert_eq!(s["dynamic_page_cache"], false);
    assert_eq!(
        json(&control(addr, "GET", "/_emulator/cache", None)),
        json!({"poisoned": [], "varied": []})
    );
    assert_eq!(get(addr, url, &good).status, 200);
    settings(addr, json!({"dynamic_page_cache": true}));
    assert_eq!(get(addr, url, &[basic("admin", "x")]).status, 403);
    settings(addr, json!({"dynamic_page_cache": false}));
    settings(addr, json!({"dynamic_page_cache": true}));
    assert_eq!(get(addr, url, &good).status, 200);
}

#[test]
fn dynamic_page_cache_cli_flag() {
    let opts = drupal_emulator::parse_args(&["--dynamic-page-cache".to_string()]).unwrap();
    assert!(opts.config.settings.dynamic_page_cache);
    let opts = drupal_emulator::parse_args(&[]).unwrap();
    assert!(!opts.config.settings.dynamic_page_cache);
}

// -----------------------------------------------------------------------------------------
// 2. The core REST user resource.

fn rest(
    addr: SocketAddr,
    method: &str,
    path: &str,
    h: &[(String, String)],
    body: Option<Value>,
) -> HttpResp {
    let mut h = h.to_vec();
    h.push(("Content-Type".into(), "application/json".into()));
    let b = body.map(|b| b.to_string());
    send(addr, method, path, &h, b.as_deref().map(|s| s.as_bytes())).unwrap()
}

fn message(r: &HttpResp) -> String {
    json(r)["message"].as_str().unwrap().to_string()
}

fn new_user(addr: SocketAddr, name: &str) -> i64 {
    let r = control(
        addr,
        "POST",
        "/_emulator/users",
        Some(json!({"name": name, "pass": "pw"})),
    );
    json(&r)["uid"].as_i64().unwrap()
}

const NOT_ALLOWED: &str = "The used authentication method is not allowed on this route.";

#[test]
fn rest_resource_settings_and_flag() {
    let addr = start();
    let s = json(&control(addr, "GET", "/_emulator/settings", None));
    assert_eq!(s["rest_user_resource"], "basic_auth,cookie");
    assert_eq!(
        settings(addr, json!({"rest_user_resource": "cookie,basic_auth"}))["rest_user_resource"],
        "basic_auth,cookie"
    );
    for v in ["basic_auth", "cookie", "off"] {
        assert_eq!(
            settings(addr, json!({"rest_user_resource": v}))["rest_user_resource"],
            v
        );
    }
    for bad in ["", "oauth2", "cookie,cookie", "basic"] {
        let r = control(
            addr,
            "PUT",
            "/_emulator/settings",
            Some(json!({"rest_user_resource": bad})),
        );
        assert_eq!(r.status, 400, "{bad}");
    }
    control(addr, "POST", "/_emulator/reset", None);
    let s = json(&control(addr, "GET", "/_emulator/settings", None));
    assert_eq!(s["rest_user_resource"], "basic_auth,cookie");

    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let o = drupal_emulator::parse_args(&args(&["--rest-user-resource", "off"])).unwrap();
    assert_eq!(o.config.settings.rest_user_resource.as_str(), "off");
    let o = drupal_emulator::parse_args(&args(&["--rest-user-resource=basic_auth"])).unwrap();
    assert_eq!(o.config.settings.rest_user_resource.as_str(), "basic_auth");
    assert!(drupal_emulator::parse_args(&args(&["--rest-user-resource", "x"])).is_err());
}

#[test]
fn rest_resource_off_has_no_rest_routes() {
    let addr = start();
    let uid = new_user(addr, "victim");
    settings(addr, json!({"rest_user_resource": "off"}));
    let admin = [basic("admin", "admin")];
    let host = addr.to_string();

    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &admin,
        None,
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, POST, HEAD"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        message(&r),
        format!(
            "No route found for \"DELETE http://{host}/user/{uid}\": Method Not Allowed (Allow: GET, POST, HEAD)"
        )
    );
    let r = rest(
        addr,
        "PATCH",
        &format!("/user/{uid}?_format=json"),
        &admin,
        Some(json!({"name": [{"value": "x"}]})),
    );
    assert_eq!(r.status, 405);
    // No `_format`: the 405 is an HTML page.
    let r = rest(addr, "DELETE", &format!("/user/{uid}"), &admin, None);
    assert_eq!(r.status, 405);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    // Nothing was deleted.
    let r = get(addr, "/jsonapi/user/user?filter[name]=victim", &admin);
    assert_eq!(json(&r)["data"].as_array().unwrap().len(), 1);

    // POST /entity/user: no route at all.
    let r = rest(
        addr,
        "POST",
        "/entity/user?_format=json",
        &admin,
        Some(json!({"name": [{"value": "x"}]})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        message(&r),
        format!("No route found for \"POST http://{host}/entity/user\"")
    );

    // GET: the canonical HTML route. Basic is not allowed there; a session may view, but the
    // controller's render array cannot be served as json.
    let r = get(addr, &format!("/user/{uid}?_format=json"), &admin);
    assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
    let (sid, _) = login(addr, "admin", "admin");
    let r = get(addr, &format!("/user/{uid}?_format=json"), &[cookie(&sid)]);
    assert_eq!(
        (r.status, message(&r)),
        (406, "Not acceptable format: json".to_string())
    );
    let r = get(addr, &format!("/user/{uid}?_format=json"), &[]);
    assert_eq!(
        (r.status, message(&r)),
        (
            403,
            "The 'access user profiles' permission is required.".to_string()
        )
    );
    assert_eq!(r.header("WWW-Authenticate"), None);
    let r = get(addr, "/user/99999?_format=json", &[cookie(&sid)]);
    assert_eq!(r.status, 404);
    assert!(message(&r).contains("entity.user.canonical"));

    // OPTIONS: only the canonical route's methods.
    let r = send(
        addr,
        "OPTIONS",
        &format!("/user/{uid}?_format=json"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Allow"), Some("GET, POST"));
    assert!(r.body.is_empty());
}

#[test]
fn options_lists_the_routes_without_authentication() {
    let addr = start();
    for path in ["/user/1", "/user/1?_format=json", "/user/0", "/user/424242"] {
        let r = send(addr, "OPTIONS", path, &[], None).unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("Allow"), Some("GET, POST, DELETE, PATCH"));
        assert!(r.body.is_empty());
    }
    let r = send(addr, "OPTIONS", "/user/1?_format=json", &[], None).unwrap();
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let r = send(addr, "OPTIONS", "/user/1", &[], None).unwrap();
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=UTF-8"));
    let r = send(addr, "OPTIONS", "/entity/user?_format=json", &[], None).unwrap();
    assert_eq!((r.status, r.header("Allow")), (200, Some("POST")));
    // Not authenticated: a wrong password leaves no flood rows.
    for _ in 0..3 {
        let r = send(addr, "OPTIONS", "/user/1", &[basic("admin", "bad")], None).unwrap();
        assert_eq!(r.status, 200);
    }
    let f = json(&control(addr, "GET", "/_emulator/flood", None));
    assert_eq!(f["rows"], 0);
    // The allowed list follows the resource, whatever its authentication.
    settings(addr, json!({"rest_user_resource": "cookie"}));
    let r = send(addr, "OPTIONS", "/user/7", &[], None).unwrap();
    assert_eq!(r.header("Allow"), Some("GET, POST, DELETE, PATCH"));
    settings(addr, json!({"rest_user_resource": "off"}));
    let r = send(addr, "OPTIONS", "/user/7", &[], None).unwrap();
    assert_eq!(r.header("Allow"), Some("GET, POST"));
    let r = send(addr, "OPTIONS", "/entity/user", &[], None).unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn rest_resource_authentication_filter() {
    let addr = start();
    let admin = [basic("admin", "admin")];
    let (sid, csrf) = login(addr, "admin", "admin");
    let session = [cookie(&sid), ("X-CSRF-Token".to_string(), csrf.clone())];

    // Cookie only: Basic is refused before any access check, right or wrong password.
    settings(addr, json!({"rest_user_resource": "cookie"}));
    let uid = new_user(addr, "c1");
    for h in [admin.to_vec(), vec![basic("admin", "wrong")]] {
        let r = rest(
            addr,
            "DELETE",
            &format!("/user/{uid}?_format=json"),
            &h,
            None,
        );
        assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
        let r = get(addr, &format!("/user/{uid}?_format=json"), &h);
        assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
    }
    let r = rest(
        addr,
        "POST",
        "/entity/user?_format=json",
        &admin,
        Some(json!({"name": [{"value": "c2"}]})),
    );
    assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
    // Basic wins over a cookie sent alongside.
    let mut both = session.to_vec();
    both.push(admin[0].clone());
    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &both,
        None,
    );
    assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
    // Routing errors come first.
    let r = rest(addr, "DELETE", "/user/99999?_format=json", &admin, None);
    assert_eq!(r.status, 404);
    // Without credentials nothing can challenge: a plain 403.
    let r = get(addr, &format!("/user/{uid}?_format=json"), &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("WWW-Authenticate"), None);
    // The session works.
    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &session,
        None,
    );
    assert_eq!(r.status, 204);

    // Basic only: a session cookie is refused (also a stale one), even before CSRF.
    settings(addr, json!({"rest_user_resource": "basic_auth"}));
    let uid = new_user(addr, "b1");
    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &session,
        None,
    );
    assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &[cookie(&sid)],
        None,
    );
    assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &[cookie("no-such-session")],
        None,
    );
    assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
    let r = get(addr, &format!("/user/{uid}?_format=json"), &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_some());
    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &admin,
        None,
    );
    assert_eq!(r.status, 204);

    // Both (the recorded site): CSRF is still checked for sessions.
    settings(addr, json!({"rest_user_resource": "basic_auth,cookie"}));
    let uid = new_user(addr, "d1");
    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &[cookie(&sid)],
        None,
    );
    assert_eq!(
        (r.status, message(&r)),
        (403, "X-CSRF-Token request header is missing".to_string())
    );
    let r = rest(
        addr,
        "DELETE",
        &format!("/user/{uid}?_format=json"),
        &session,
        None,
    );
    assert_eq!(r.status, 204);
}

#[test]
fn anonymous_account_cannot_be_deleted() {
    let addr = start();
    let admin = [basic("admin", "admin")];
    let (sid, csrf) = login(addr, "admin", "admin");
    let session = [cookie(&sid), ("X-CSRF-Token".to_string(), csrf)];
    for h in [&admin[..], &session[..]] {
        let r = rest(addr, "DELETE", "/user/0?_format=json", h, None);
        assert_eq!(r.status, 403);
        assert_eq!(
            message(&r),
            "You are not authorized to delete this user entity."
        );
    }
    // A session without the token fails on CSRF first (route access).
    let r = rest(
        addr,
        "DELETE",
        "/user/0?_format=json",
        &[cookie(&sid)],
        None,
    );
    assert_eq!(
        message(&r),
        "X-CSRF-Token request header is missing".to_string()
    );
    // JSON:API cannot either, whatever the cancel method.
    settings(addr, json!({"cancel_method": "user_cancel_delete"}));
    let list = json(&get(addr, "/jsonapi/user/user", &admin));
    let anon = list["data"][0]["id"].as_str().unwrap().to_string();
    let r = send(
        addr,
        "DELETE",
        &format!("/jsonapi/user/user/{anon}"),
        &admin,
        None,
    )
    .unwrap();
    assert_eq!(r.status, 403);
    // uid 0 is still there (label-only, first in the unfiltered list).
    let list = json(&get(addr, "/jsonapi/user/user", &admin));
    assert_eq!(list["data"][0]["id"], anon.as_str());
    // A restricted resource refuses the other method before the uid-0 check.
    settings(addr, json!({"rest_user_resource": "basic_auth"}));
    let r = rest(addr, "DELETE", "/user/0?_format=json", &session, None);
    assert_eq!((r.status, message(&r)), (403, NOT_ALLOWED.to_string()));
}

// -----------------------------------------------------------------------------------------
// 3. Flood rows.

fn flood(addr: SocketAddr) -> Value {
    let r = control(addr, "GET", "/_emulator/flood", None);
    assert_eq!(r.status, 200);
    json(&r)
}

#[test]
fn basic_auth_flood_rows() {
    let addr = start();
    let f = flood(addr);
    assert_eq!(f["rows"], 0);
    assert_eq!(
        f["events"],
        json!({"basic_auth.failed_login_ip": 0, "basic_auth.failed_login_user": 0, "user.failed_login_ip": 0, "user.http_login": 0})
    );
    // 60 wrong passwords for admin: a per-IP row every time, a per-user row only for the
    // first 5 (the account is then blocked and not even checked).
    for _ in 0..60 {
        get(addr, "/jsonapi", &[basic("admin", "wrong")]);
    }
    let f = flood(addr);
    assert_eq!(f["rows"], 65);
    assert_eq!(f["events"]["basic_auth.failed_login_ip"], 60);
    assert_eq!(f["events"]["basic_auth.failed_login_user"], 5);
    assert_eq!(
        f["identifiers"]["basic_auth.failed_login_user"],
        json!({"1-127.0.0.1": 5})
    );
    assert_eq!(
        f["identifiers"]["basic_auth.failed_login_ip"],
        json!({"127.0.0.1": 60})
    );
    // Past the IP limit, every Basic request from the IP is refused, and each one adds a row,
    // the right password included.
    let r = get(addr, "/jsonapi", &[basic("admin", "admin")]);
    assert!(json(&r)["meta"].is_null());
    assert_eq!(flood(addr)["events"]["basic_auth.failed_login_ip"], 61);

    // Unknown and blocked accounts add only the per-IP row.
    control(addr, "DELETE", "/_emulator/flood", None);
    control(
        addr,
        "POST",
        "/_emulator/users",
        Some(json!({"name": "blocked", "pass": "pw", "status": false})),
    );
    get(addr, "/jsonapi", &[basic("nobody", "x")]);
    get(addr, "/jsonapi", &[basic("blocked", "pw")]);
    let f = flood(addr);
    assert_eq!(f["rows"], 2);
    assert_eq!(f["events"]["basic_auth.failed_login_ip"], 2);
    // A success clears the account's per-user rows, not the per-IP ones.
    get(addr, "/jsonapi", &[basic("admin", "wrong")]);
    assert_eq!(flood(addr)["events"]["basic_auth.failed_login_user"], 1);
    let r = get(addr, "/jsonapi", &[basic("admin", "admin")]);
    assert!(json(&r)["meta"]["links"]["me"].is_object());
    let f = flood(addr);
    assert_eq!(f["events"]["basic_auth.failed_login_user"], 0);
    assert_eq!(f["events"]["basic_auth.failed_login_ip"], 3);
    // DELETE and reset clear it.
    assert_eq!(
        control(addr, "DELETE", "/_emulator/flood", None).status,
        200
    );
    assert_eq!(flood(addr)["rows"], 0);
    get(addr, "/jsonapi", &[basic("admin", "wrong")]);
    control(addr, "POST", "/_emulator/reset", None);
    assert_eq!(flood(addr)["rows"], 0);
}

#[test]
fn json_login_flood_rows() {
    let addr = start();
    let post = |name: &str, pass: &str| {
        let body = json!({"name": name, "pass": pass}).to_string();
        send(
            addr,
            "POST",
            "/user/login?_format=json",
            &[("Content-Type".into(), "application/json".into())],
            Some(body.as_bytes()),
        )
        .unwrap()
    };
    for _ in 0..5 {
        let r = post("admin", "wrong");
        assert_eq!(
            (r.status, message(&r)),
            (400, "Sorry, unrecognized username or password.".to_string())
        );
    }
    let f = flood(addr);
    assert_eq!(f["events"]["user.failed_login_ip"], 5);
    assert_eq!(f["events"]["user.http_login"], 5);
    assert_eq!(
        f["identifiers"]["user.http_login"],
        json!({"1-127.0.0.1": 5})
    );
    assert_eq!(f["rows"], 10);
    // The account is blocked for this IP (the message names the IP, as `uid_only` is off);
    // a blocked attempt registers nothing.
    let r = post("admin", "admin");
    assert_eq!(
        (r.status, message(&r)),
        (
            403,
            "Too many failed login attempts from your IP address. This IP address is temporarily blocked."
                .to_string()
        )
    );
    assert_eq!(flood(addr)["rows"], 10);
    // Unknown names add only the per-IP row; up to the IP limit of 50.
    for _ in 0..45 {
        assert_eq!(post("nobody", "x").status, 400);
    }
    let f = flood(addr);
    assert_eq!(f["events"]["user.failed_login_ip"], 50);
    assert_eq!(f["events"]["user.http_login"], 5);
    let r = post("nobody", "x");
    assert_eq!(
        (r.status, message(&r)),
        (
            403,
            "Access is blocked because of IP based flood prevention.".to_string()
        )
    );
    assert_eq!(flood(addr)["rows"], 55);
    // The login flood is separate from basic_auth's.
    let r = get(addr, "/jsonapi", &[basic("admin", "admin")]);
    assert!(json(&r)["meta"]["links"]["me"].is_object());
}
