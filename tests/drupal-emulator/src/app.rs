//! The emulated site: shared state, authentication, routing and response helpers.

use crate::json::J;
use crate::model::{Config, Db, DrupalVersion, SeedIds};
use crate::query::{normalized_query, parse_query, Q};
use crate::util::{now, php_base64_decode, rfc3339};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};

/// The session cookie name (Drupal: `SESS` + a hash of the cookie domain).
pub const SESSION_COOKIE: &str = "SESS12ca17b49af2289436f303e0166030a2";
pub const JSONAPI_CT: &str = "application/vnd.api+json";

pub struct Req {
    pub method: String,
    /// Raw path (no query).
    pub path: String,
    /// Raw query string (without `?`), if any.
    pub query: Option<String>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer_ip: String,
    /// The race window for this request (ms; 0 = writes are atomic). Set by the server when the
    /// race switch is on; the request then runs on a blocking thread, so it may sleep.
    pub race_ms: u64,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Resp {
        let mut headers = drupal_headers();
        if !content_type.is_empty() {
            headers.push(("Content-Type".into(), content_type.into()));
        }
        Resp {
            status,
            headers,
            body: body.into(),
        }
    }
    pub fn json(status: u16, content_type: &str, doc: &J) -> Resp {
        Resp::new(status, content_type, doc.to_php_json())
    }
    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: drupal_headers(),
            body: Vec::new(),
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

/// Headers every Drupal response carries (see the transcripts' README).
pub fn drupal_headers() -> Vec<(String, String)> {
    vec![
        (
            "Cache-Control".into(),
            "must-revalidate, no-cache, private".into(),
        ),
        ("Expires".into(), "Sun, 19 Nov 1978 05:00:00 GMT".into()),
        (
            "X-Generator".into(),
            "Drupal 10 (https://www.drupal.org)".into(),
        ),
        ("X-Content-Type-Options".into(), "nosniff".into()),
        ("X-Frame-Options".into(), "SAMEORIGIN".into()),
        ("Content-language".into(), "en".into()),
    ]
}

/// Who is making the request.
#[derive(Clone, Debug)]
pub struct Actor {
    /// 0 = anonymous.
    pub uid: i64,
    pub roles: Vec<String>,
    /// An authentication provider applied (Basic credentials or a session cookie were sent).
    pub provider_applied: bool,
    /// The provider that applied is `basic_auth` (a `Basic` header that decodes to
    /// `user:pass`; it wins over a session cookie), whether or not its credentials were
    /// accepted. Otherwise, when `provider_applied`, it is `cookie`.
    pub basic_auth: bool,
    /// The request carries a session cookie (CSRF is then enforced on writes).
    pub session_cookie: Option<String>,
    /// Authenticated through the session cookie.
    pub via_cookie: bool,
}

impl Actor {
    pub fn anonymous() -> Actor {
        Actor {
            uid: 0,
            roles: Vec::new(),
            provider_applied: false,
            basic_auth: false,
            session_cookie: None,
            via_cookie: false,
        }
    }
    pub fn is_auth(&self) -> bool {
        self.uid != 0
    }
}

/// `user.flood` (Drupal's defaults): per IP, 50 failures an hour; per account and IP, 5 in 6 h.
pub const FLOOD_IP_LIMIT: usize = 50;
pub const FLOOD_IP_WINDOW: i64 = 3600;
pub const FLOOD_USER_LIMIT: usize = 5;
pub const FLOOD_USER_WINDOW: i64 = 21600;

/// The flood events core registers on this site, in the order `GET /_emulator/flood` lists
/// them: `basic_auth`'s (`BasicAuth::authenticate`) and the JSON login's
/// (`UserAuthenticationController::login`; the login form's `user.failed_login_user` is not
/// reachable over HTTP here).
pub const FLOOD_EVENTS: [&str; 4] = [
    "basic_auth.failed_login_ip",
    "basic_auth.failed_login_user",
    "user.failed_login_ip",
    "user.http_login",
];

/// Drupal's `flood` table (`DatabaseBackend`): one row per registered event, with its
/// expiration (registration time + window).
#[derive(Default)]
pub struct Flood {
    /// (event, identifier) -> rows as (timestamp, expiration).
    rows: HashMap<(String, String), Vec<(i64, i64)>>,
}

impl Flood {
    /// Fewer than `limit` rows registered within the last `window` seconds.
    pub fn is_allowed(&self, event: &str, id: &str, limit: usize, window: i64, t: i64) -> bool {
        self.rows
            .get(&(event.to_string(), id.to_string()))
            .map(|v| v.iter().filter(|(ts, _)| *ts > t - window).count() < limit)
            .unwrap_or(true)
    }
    pub fn register(&mut self, event: &str, id: &str, window: i64, t: i64) {
        let rows = self
            .rows
            .entry((event.to_string(), id.to_string()))
            .or_default();
        // Cron's garbage collection, for this key.
        rows.retain(|(_, exp)| *exp >= t);
        rows.push((t, t + window));
    }
    pub fn clear(&mut self, event: &str, id: &str) {
        self.rows.remove(&(event.to_string(), id.to_string()));
    }
    pub fn clear_all(&mut self) {
        self.rows.clear();
    }
    /// The rows the table holds at `t`, once expired ones are garbage-collected:
    /// `{"rows": N, "events": {event: n}, "identifiers": {event: {identifier: n}}}`.
    pub fn to_json(&self, t: i64) -> J {
        let mut keys: Vec<&(String, String)> = self.rows.keys().collect();
        keys.sort();
        let mut total = 0usize;
        let mut events = J::obj();
        let mut idents = J::obj();
        let mut names: Vec<&str> = FLOOD_EVENTS.to_vec();
        for (e, _) in &keys {
            if !names.contains(&e.as_str()) {
                names.push(e.as_str());
            }
        }
        for name in names {
            let mut per_id = J::obj();
            let mut n = 0usize;
            for key in keys.iter().filter(|(e, _)| e == name) {
                let live = self.rows[*key].iter().filter(|(_, exp)| *exp >= t).count();
                if live > 0 {
                    per_id.push(&key.1, live as i64);
                    n += live;
                }
            }
            total += n;
            events.push(name, n as i64);
            idents.push(name, per_id);
        }
        J::obj()
            .with("rows", total as i64)
            .with("events", events)
            .with("identifiers", idents)
    }
}

pub struct Fault {
    pub count: u64,
    pub path_prefix: Option<String>,
    pub method: Option<String>,
    pub kind: FaultKind,
}

pub enum FaultKind {
    Respond {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
        process: bool,
    },
    Drop {
        process: bool,
    },
    Delay {
        ms: u64,
    },
}

pub struct App {
    pub cfg: Config,
    /// `cache_dynamic_page_cache`, by [`App::dynamic_cache_key`] (only with the
    /// `dynamic_page_cache` setting): `Some` is a stored refused-credentials filter 403,
    /// served to everyone; `None` marks a URL whose first cached answer was a success, so it
    /// varies by permissions and a later refused 403 cannot take it over.
    pub page_cache: Mutex<HashMap<String, Option<Resp>>>,
    pub seed_ids: SeedIds,
    pub db: RwLock<Db>,
    pub flood: Mutex<Flood>,
    pub log: Mutex<VecDeque<J>>,
    pub log_limit: usize,
    pub faults: Mutex<Vec<Fault>>,
    /// PHP_CLI_SERVER_WORKERS=4: the worker slots used while the race switch is on.
    pub workers: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Per-request context.
pub struct Ctx {
    /// `http://host:port`
    pub base: String,
    pub query: Vec<(String, Q)>,
    pub actor: Actor,
    pub now: i64,
    /// Extra response headers to add (e.g. Set-Cookie).
    pub extra_headers: Vec<(String, String)>,
    /// The answer is a JSON:API 403 for a filter on a field the caller may not see (what
    /// Dynamic Page Cache wrongly keeps for refused credentials).
    pub filter_denied: std::cell::Cell<bool>,
}

impl Ctx {
    pub fn param(&self, key: &str) -> Option<&Q> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn has_param(&self, key: &str) -> bool {
        self.query.iter().any(|(k, _)| k == key)
    }
}

pub fn status_title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn info_anchor(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "sec10.4.1",
        401 => "sec10.4.2",
        403 => "sec10.4.4",
        404 => "sec10.4.5",
        405 => "sec10.4.6",
        406 => "sec10.4.7",
        409 => "sec10.4.10",
        415 => "sec10.4.16",
        500 => "sec10.5.1",
        503 => "sec10.5.4",
        _ => return None,
    })
}

pub fn jsonapi_member() -> J {
    J::obj().with("version", "1.0").with(
        "meta",
        J::obj().with(
            "links",
            J::obj().with(
                "self",
                J::obj().with("href", "http://jsonapi.org/format/1.0/"),
            ),
        ),
    )
}

pub fn href(h: &str) -> J {
    J::obj().with("href", h)
}

impl App {
    pub fn new(cfg: Config, log_limit: usize) -> App {
        let db = Db::seed(&cfg, None);
        let seed_ids = db.seed_ids();
        let app = App {
            cfg,
            page_cache: Mutex::new(HashMap::new()),
            seed_ids,
            db: RwLock::new(db),
            flood: Mutex::new(Flood::default()),
            log: Mutex::new(VecDeque::new()),
            log_limit,
            faults: Mutex::new(Vec::new()),
            workers: std::sync::Arc::new(tokio::sync::Semaphore::new(4)),
        };
        app.seed_site_users();
        app
    }

    pub fn reset(&self) {
        let db = Db::seed(&self.cfg, Some(&self.seed_ids));
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = db;
        self.flood
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear_all();
        self.clear_page_cache();
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.seed_site_users();
    }

    /// The accounts of `--seed-users`, as the control API would create them.
    fn seed_site_users(&self) {
        for u in &self.cfg.seed_users {
            if let Err(e) = self.upsert_user(u) {
                eprintln!("drupal-emulator: --seed-users: {e}");
            }
        }
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Db> {
        self.db.read().unwrap_or_else(|e| e.into_inner())
    }
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Db> {
        self.db.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Basic auth (with flood control) and session cookies, as Drupal's providers do it.
    pub fn authenticate(&self, req: &Req, t: i64) -> Actor {
        let mut actor = Actor::anonymous();
        let session_cookie = req.header("cookie").and_then(|c| {
            c.split(';').find_map(|kv| {
                let kv = kv.trim();
                kv.strip_prefix(SESSION_COOKIE)
                    .and_then(|r| r.strip_prefix('='))
                    .map(|v| v.to_string())
            })
        });
        actor.session_cookie = session_cookie.clone();
        let basic = req.header("authorization").and_then(|h| {
            if h.len() >= 6 && h[..6].eq_ignore_ascii_case("basic ") {
                let raw = php_base64_decode(&h[6..]);
                let s = String::from_utf8_lossy(&raw).into_owned();
                s.find(':')
                    .map(|i| (s[..i].to_string(), s[i + 1..].to_string()))
            } else {
                None
            }
        });
        if let Some((user, pass)) = basic {
            actor.provider_applied = true;
            actor.basic_auth = true;
            let ip = req.peer_ip.as_str();
            let mut flood = self.flood.lock().unwrap_or_else(|e| e.into_inner());
            let mut ok_uid = None;
            // BasicAuth::authenticate(): the per-user event only for an active account below
            // its limit, the per-IP event on every failure (also when already blocked).
            if flood.is_allowed(
                "basic_auth.failed_login_ip",
                ip,
                FLOOD_IP_LIMIT,
                FLOOD_IP_WINDOW,
                t,
            ) {
                let db = self.read();
                if let Some(u) = db.user_by_name(&user).filter(|u| u.status && u.uid != 0) {
                    let ident = format!("{}-{}", u.uid, ip);
                    if flood.is_allowed(
                        "basic_auth.failed_login_user",
                        &ident,
                        FLOOD_USER_LIMIT,
                        FLOOD_USER_WINDOW,
                        t,
                    ) {
                        if !user.is_empty() && !pass.is_empty() && u.pass.as_deref() == Some(&pass)
                        {
                            flood.clear("basic_auth.failed_login_user", &ident);
                            ok_uid = Some(u.uid);
                        } else {
                            flood.register(
                                "basic_auth.failed_login_user",
                                &ident,
                                FLOOD_USER_WINDOW,
                                t,
                            );
                        }
                    }
                }
            }
            match ok_uid {
                Some(uid) => {
                    drop(flood);
                    self.fill_actor(&mut actor, uid, t);
                }
                None => flood.register("basic_auth.failed_login_ip", ip, FLOOD_IP_WINDOW, t),
            }
            return actor;
        }
        if let Some(sid) = session_cookie {
            actor.provider_applied = true;
            let uid = {
                let db = self.read();
                db.sessions
                    .get(&sid)
                    .and_then(|s| db.users.get(&s.uid))
                    .filter(|u| u.status)
                    .map(|u| u.uid)
            };
            if let Some(uid) = uid {
                actor.via_cookie = true;
                self.fill_actor(&mut actor, uid, t);
            }
        }
        actor
    }

    fn fill_actor(&self, actor: &mut Actor, uid: i64, t: i64) {
        let needs_access_update = {
            let db = self.read();
            match db.users.get(&uid) {
                Some(u) => {
                    actor.uid = uid;
                    actor.roles = u.roles.clone();
                    t - u.access > 180
                }
                None => false,
            }
        };
        // Drupal's UserRequestSubscriber updates `access` at most every 180 s, behind the
        // entity cache's back.
        if needs_access_update {
            if let Some(u) = self.write().users.get_mut(&uid) {
                u.access = t;
            }
        }
    }

    pub fn has_perm(&self, db: &Db, actor: &Actor, perm: &str) -> bool {
        let mut roles: Vec<&str> = vec![if actor.is_auth() {
            "authenticated"
        } else {
            "anonymous"
        }];
        roles.extend(actor.roles.iter().map(|s| s.as_str()));
        roles.iter().any(|r| {
            db.role(r)
                .map(|role| role.is_admin || role.permissions.contains(&perm))
                .unwrap_or(false)
        })
    }

    pub fn ctx(&self, req: &Req, actor: Actor) -> Ctx {
        let host = req.header("host").unwrap_or("localhost");
        Ctx {
            base: format!("http://{host}"),
            query: req.query.as_deref().map(parse_query).unwrap_or_default(),
            actor,
            now: now(),
            extra_headers: Vec::new(),
            filter_denied: std::cell::Cell::new(false),
        }
    }

    /// Symfony's normalised request URI (links.self, errors' links.via).
    pub fn self_uri(&self, ctx: &Ctx, req: &Req) -> String {
        let q = normalized_query(&ctx.query);
        if q.is_empty() {
            format!("{}{}", ctx.base, req.path)
        } else {
            format!("{}{}?{}", ctx.base, req.path, q)
        }
    }

    // -------------------------------------------------------------------------------------
    // JSON:API error documents.

    pub fn jerr_doc(
        status: u16,
        detail: &str,
        via: Option<&str>,
        pointer: Option<&str>,
        info: Option<&str>,
    ) -> J {
        let mut e = J::obj()
            .with("title", status_title(status))
            .with("status", status.to_string())
            .with("detail", detail);
        if let Some(v) = via {
            let mut links = J::obj().with("via", href(v));
            if let Some(scheme) = info {
                if let Some(a) = info_anchor(status) {
                    links.push(
                        "info",
                        href(&format!(
                            "{scheme}://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#{a}"
                        )),
                    );
                }
            }
            e.push("links", links);
        }
        if let Some(p) = pointer {
            e.push("source", J::obj().with("pointer", p));
        }
        J::obj()
            .with("jsonapi", jsonapi_member())
            .with("errors", J::Arr(vec![e]))
    }

    /// An exception-style JSON:API error (links.via + links.info).
    pub fn jerr(&self, ctx: &Ctx, req: &Req, status: u16, detail: &str) -> Resp {
        let via = self.self_uri(ctx, req);
        Resp::json(
            status,
            JSONAPI_CT,
            &Self::jerr_doc(status, detail, Some(&via), None, Some(self.info_scheme())),
        )
    }

    pub fn jerr_ptr(&self, ctx: &Ctx, req: &Req, status: u16, detail: &str, pointer: &str) -> Resp {
        let via = self.self_uri(ctx, req);
        Resp::json(
            status,
            JSONAPI_CT,
            &Self::jerr_doc(
                status,
                detail,
                Some(&via),
                Some(pointer),
                Some(self.info_scheme()),
            ),
        )
    }

    /// 422 from a denormalisation exception: links.via, no info, no pointer.
    pub fn jerr_422(&self, ctx: &Ctx, req: &Req, detail: &str) -> Resp {
        let via = self.self_uri(ctx, req);
        Resp::json(
            422,
            JSONAPI_CT,
            &Self::jerr_doc(422, detail, Some(&via), None, None),
        )
    }

    /// An access-denied error; a request without any credentials gets Basic auth's 401 challenge.
    pub fn jforbidden(&self, ctx: &Ctx, req: &Req, detail: &str, pointer: Option<&str>) -> Resp {
        if !ctx.actor.provider_applied {
            return self
                .jerr(ctx, req, 401, "No authentication credentials provided.")
                .with_header("WWW-Authenticate", &self.realm());
        }
        match pointer {
            Some(p) => self.jerr_ptr(ctx, req, 403, detail, p),
            None => self.jerr(ctx, req, 403, detail),
        }
    }

    /// The scheme of errors' `links.info` (the RFC 2616 section): `http` up to 10.3, `https`
    /// from 10.6 on (seen on 10.6.15 and 11.4.5 by the live contract).
    pub fn info_scheme(&self) -> &'static str {
        if self.cfg.drupal_version >= DrupalVersion::V10_6 {
            "https"
        } else {
            "http"
        }
    }

    pub fn realm(&self) -> String {
        format!("Basic realm=\"{}\"", self.cfg.site_name)
    }

    /// CSRF check for writes when a session cookie is present and the caller is authenticated.
    pub fn csrf_failure(&self, ctx: &Ctx, req: &Req) -> Option<&'static str> {
        if !ctx.actor.is_auth() {
            return None;
        }
        let sid = ctx.actor.session_cookie.as_ref()?;
        let Some(token) = req.header("x-csrf-token") else {
            return Some("X-CSRF-Token request header is missing");
        };
        let db = self.read();
        match db.sessions.get(sid) {
            Some(s) if s.csrf == token => None,
            _ => Some("X-CSRF-Token request header is invalid"),
        }
    }

    /// A session started during a request (Drupal stores messages in the session on some
    /// writes, which sends a session cookie).
    pub fn start_session_cookie(&self, ctx: &mut Ctx) {
        if ctx.actor.session_cookie.is_some() || !ctx.actor.is_auth() {
            return;
        }
        let sid = self.write().new_session(ctx.actor.uid);
        ctx.extra_headers
            .push(("Set-Cookie".into(), session_cookie_header(&sid, ctx.now)));
    }

    // -------------------------------------------------------------------------------------
    // Dispatch.

    pub fn handle(&self, req: &Req) -> Resp {
        // OptionsRequestSubscriber (priority 1000) answers before authentication (300).
        if req.method == "OPTIONS" {
            if let Some(r) = self.options(req) {
                return r;
            }
        }
        let t = now();
        let actor = self.authenticate(req, t);
        let mut ctx = self.ctx(req, actor);
        let cache_key = self.dynamic_cache_key(&ctx, req);
        let hit = cache_key.as_ref().and_then(|k| {
            self.page_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(k)
                .cloned()
                .flatten()
        });
        let path = req.path.as_str();
        let mut resp = if let Some(cached) = hit {
            cached.with_header("X-Drupal-Dynamic-Cache", "HIT")
        } else {
            let resp = if path == "/jsonapi" || path.starts_with("/jsonapi/") {
                self.handle_jsonapi(&mut ctx, req)
            } else if path == "/entity/user"
                || path.starts_with("/user/")
                || path == "/session/token"
            {
                self.handle_rest(&mut ctx, req)
            } else {
                html_page(404, "Page not found", &self.cfg.site_name)
            };
            match cache_key {
                Some(k) => self.store_dynamic_cache(&ctx, k, resp),
                None => resp,
            }
        };
        resp.headers.append(&mut ctx.extra_headers);
        let sets_cookie = resp
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("set-cookie"));
        if ctx.actor.session_cookie.is_some() && !ctx.actor.is_auth() && !sets_cookie {
            // A cookie for a session Drupal does not know: the request ran as anonymous, and
            // SessionManager::save() destroys the empty session, deleting the cookie (PHP's
            // setcookie() with an empty value writes `deleted` and a 1970 expiry).
            resp.headers.push((
                "Set-Cookie".into(),
                format!("{SESSION_COOKIE}=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; path=/; HttpOnly; SameSite=Lax"),
            ));
        }
        if self.cfg.drupal_version >= DrupalVersion::V11_4 {
            resp = drupal_11_answer(resp);
        }
        if self.cfg.drupal_version >= DrupalVersion::V10_6
            && (req.method == "GET" || req.method == "HEAD")
            && php_auth_user(req)
        {
            // From 10.6 on, Page Cache says why it passed a request by: basic_auth's
            // DisallowBasicAuthRequests policy refuses every request PHP gave PHP_AUTH_USER.
            resp.headers.push((
                "X-Drupal-Cache".into(),
                "UNCACHEABLE (request policy)".into(),
            ));
        }
        resp
    }
}

/// The texts Drupal 11.4 words differently from 10.x (seen on 11.4.5 by the live contract):
/// the generator, the JSON:API version (1.1 since 11.3) and one username message.
fn drupal_11_answer(mut resp: Resp) -> Resp {
    for (k, v) in resp.headers.iter_mut() {
        if k.eq_ignore_ascii_case("x-generator") {
            *v = "Drupal 11 (https://www.drupal.org)".into();
        }
    }
    const SWAPS: [(&str, &str); 3] = [
        (
            r#""jsonapi":{"version":"1.0","meta":{"links":{"self":{"href":"http:\/\/jsonapi.org\/format\/1.0\/"}}}}"#,
            r#""jsonapi":{"version":"1.1","meta":{"links":{"self":{"href":"https:\/\/jsonapi.org\/format\/1.1\/"}}}}"#,
        ),
        (
            "The username contains an illegal character.",
            "The username contains an invalid character.",
        ),
        (
            "content=\"Drupal 10 (https://www.drupal.org)\"",
            "content=\"Drupal 11 (https://www.drupal.org)\"",
        ),
    ];
    for (from, to) in SWAPS {
        resp.body = replace_bytes(&resp.body, from.as_bytes(), to.as_bytes());
    }
    resp
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Whether PHP would set `PHP_AUTH_USER`: a `Basic` header whose credentials hold a colon.
fn php_auth_user(req: &Req) -> bool {
    req.header("authorization")
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| crate::util::php_base64_decode(rest.trim()))
        })
        .is_some_and(|d| d.contains(&b':'))
}

impl App {
    /// `OPTIONS` on the user paths, as core's `OptionsRequestSubscriber` answers it: 200, an
    /// empty body and `Allow` with the methods of every route on the path, before
    /// authentication and access checks. `/user/{uid}` (digits only: `/user/login` and the
    /// like have routes of their own) and `/entity/user` (only while the REST resource
    /// exists). Other paths are left to the normal handling.
    fn options(&self, req: &Req) -> Option<Resp> {
        let resource = self.read().settings.rest_user_resource;
        let allow = if req.path == "/entity/user" {
            if !resource.enabled() {
                return None;
            }
            "POST"
        } else {
            let uid = req.path.strip_prefix("/user/")?;
            if uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            resource.user_path_options()
        };
        // Symfony's Response::prepare(): the request format's MIME type (`_format=json`), or
        // text/html.
        let query = req.query.as_deref().map(parse_query).unwrap_or_default();
        let json = query
            .iter()
            .any(|(k, v)| k == "_format" && v.as_str() == Some("json"));
        let ct = if json {
            "application/json"
        } else {
            "text/html; charset=UTF-8"
        };
        Some(Resp::new(200, ct, Vec::new()).with_header("Allow", allow))
    }

    // -------------------------------------------------------------------------------------
    // Dynamic Page Cache (the `dynamic_page_cache` setting).

    /// The entry a request reads and writes: with the switch on, GET and HEAD under
    /// `/jsonapi/`, by path and Symfony's normalised query string (the `url.query_args` cache
    /// context), so `filter%5Bname%5D=alice` and `filter[name]=alice` are the same entry
    /// (records 12 and 14).
    pub fn dynamic_cache_key(&self, ctx: &Ctx, req: &Req) -> Option<String> {
        if !matches!(req.method.as_str(), "GET" | "HEAD") || !req.path.starts_with("/jsonapi/") {
            return None;
        }
        if !self.read().settings.dynamic_page_cache {
            return None;
        }
        let q = normalized_query(&ctx.query);
        Some(if q.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, q)
        })
    }

    /// Stores what Drupal's cache stores wrongly: the 403 for a filter on a field the caller
    /// may not see, when credentials were sent but refused (a wrong Basic password, a
    /// flood-blocked account, a session cookie for no session), so the request ran as
    /// anonymous. It goes out with `X-Drupal-Dynamic-Cache: MISS`. Only a URL's first
    /// cached answer counts: after a success (correct credentials first) the entry varies by
    /// permissions and nothing is poisoned. No credentials give the uncached 401, and
    /// authenticated callers' 403s are uncacheable (record 134).
    fn store_dynamic_cache(&self, ctx: &Ctx, key: String, resp: Resp) -> Resp {
        let poison = ctx.filter_denied.get()
            && resp.status == 403
            && ctx.actor.provider_applied
            && !ctx.actor.is_auth();
        let success = (200..300).contains(&resp.status);
        if !poison && !success {
            return resp;
        }
        let mut cache = self.page_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.contains_key(&key) {
            return resp;
        }
        if success {
            cache.insert(key, None);
            return resp;
        }
        cache.insert(key, Some(resp.clone()));
        resp.with_header("X-Drupal-Dynamic-Cache", "MISS")
    }

    /// A cache rebuild (`drush cr`): empties `cache_dynamic_page_cache`.
    pub fn clear_page_cache(&self) {
        self.page_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// `{"poisoned": [URL…], "varied": [URL…]}`, sorted.
    pub fn page_cache_json(&self) -> J {
        let cache = self.page_cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut poisoned: Vec<&String> = cache
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k)
            .collect();
        let mut varied: Vec<&String> = cache
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        poisoned.sort();
        varied.sort();
        let list = |v: Vec<&String>| J::Arr(v.into_iter().map(|k| J::Str(k.clone())).collect());
        J::obj()
            .with("poisoned", list(poisoned))
            .with("varied", list(varied))
    }
}

pub fn session_cookie_header(sid: &str, t: i64) -> String {
    let exp = http_date(t + 2_000_000);
    format!(
        "{SESSION_COOKIE}={sid}; expires={exp}; Max-Age=2000000; path=/; HttpOnly; SameSite=Lax"
    )
}

pub fn http_date(t: i64) -> String {
    // rfc3339 gives "YYYY-MM-DDTHH:MM:SS+00:00"; reformat as an IMF-fixdate.
    let s = rfc3339(t);
    let days = t.div_euclid(86400);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m: usize = s[5..7].parse().unwrap_or(1);
    format!(
        "{wd}, {} {} {} {} GMT",
        &s[8..10],
        months[(m - 1) % 12],
        &s[0..4],
        &s[11..19]
    )
}

pub fn html_page(status: u16, title: &str, site: &str) -> Resp {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\" dir=\"ltr\">\n  <head>\n    <meta charset=\"utf-8\" />\n<meta name=\"Generator\" content=\"Drupal 10 (https://www.drupal.org)\" />\n    <title>{title} | {site}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n  </body>\n</html>\n"
    );
    Resp::new(status, "text/html; charset=UTF-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1795866267), "Sat, 28 Nov 2026 11:44:27 GMT");
    }
}
