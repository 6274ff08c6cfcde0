//! The emulated site: shared state, authentication, routing and response helpers.

use crate::json::J;
use crate::model::{Config, Db, SeedIds};
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

#[derive(Debug)]
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
            session_cookie: None,
            via_cookie: false,
        }
    }
    pub fn is_auth(&self) -> bool {
        self.uid != 0
    }
}

#[derive(Default)]
pub struct Flood {
    /// event name + identifier -> timestamps.
    events: HashMap<String, Vec<i64>>,
}

impl Flood {
    pub fn is_allowed(&mut self, event: &str, id: &str, limit: usize, window: i64, t: i64) -> bool {
        let key = format!("{event}\u{0}{id}");
        match self.events.get_mut(&key) {
            Some(v) => {
                v.retain(|x| *x > t - window);
                v.len() < limit
            }
            None => true,
        }
    }
    pub fn register(&mut self, event: &str, id: &str, t: i64) {
        self.events
            .entry(format!("{event}\u{0}{id}"))
            .or_default()
            .push(t);
    }
    pub fn clear(&mut self, event: &str, id: &str) {
        self.events.remove(&format!("{event}\u{0}{id}"));
    }
    pub fn clear_all(&mut self) {
        self.events.clear();
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
        App {
            cfg,
            seed_ids,
            db: RwLock::new(db),
            flood: Mutex::new(Flood::default()),
            log: Mutex::new(VecDeque::new()),
            log_limit,
            faults: Mutex::new(Vec::new()),
            workers: std::sync::Arc::new(tokio::sync::Semaphore::new(4)),
        }
    }

    pub fn reset(&self) {
        let db = Db::seed(&self.cfg, Some(&self.seed_ids));
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = db;
        self.flood
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear_all();
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
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
            let ip = req.peer_ip.as_str();
            let mut flood = self.flood.lock().unwrap_or_else(|e| e.into_inner());
            let mut ok_uid = None;
            if flood.is_allowed("basic_auth.failed_login_ip", ip, 50, 3600, t) {
                let db = self.read();
                if let Some(u) = db.user_by_name(&user).filter(|u| u.status && u.uid != 0) {
                    let ident = format!("{}-{}", u.uid, ip);
                    if flood.is_allowed("basic_auth.failed_login_user", &ident, 5, 21600, t) {
                        if !user.is_empty() && !pass.is_empty() && u.pass.as_deref() == Some(&pass)
                        {
                            flood.clear("basic_auth.failed_login_user", &ident);
                            ok_uid = Some(u.uid);
                        } else {
                            flood.register("basic_auth.failed_login_user", &ident, t);
                        }
                    }
                }
            }
            match ok_uid {
                Some(uid) => {
                    drop(flood);
                    self.fill_actor(&mut actor, uid, t);
                }
                None => flood.register("basic_auth.failed_login_ip", ip, t),
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
        info: bool,
    ) -> J {
        let mut e = J::obj()
            .with("title", status_title(status))
            .with("status", status.to_string())
            .with("detail", detail);
        if let Some(v) = via {
            let mut links = J::obj().with("via", href(v));
            if info {
                if let Some(a) = info_anchor(status) {
                    links.push(
                        "info",
                        href(&format!(
                            "http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#{a}"
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
            &Self::jerr_doc(status, detail, Some(&via), None, true),
        )
    }

    pub fn jerr_ptr(&self, ctx: &Ctx, req: &Req, status: u16, detail: &str, pointer: &str) -> Resp {
        let via = self.self_uri(ctx, req);
        Resp::json(
            status,
            JSONAPI_CT,
            &Self::jerr_doc(status, detail, Some(&via), Some(pointer), true),
        )
    }

    /// 422 from a denormalisation exception: links.via, no info, no pointer.
    pub fn jerr_422(&self, ctx: &Ctx, req: &Req, detail: &str) -> Resp {
        let via = self.self_uri(ctx, req);
        Resp::json(
            422,
            JSONAPI_CT,
            &Self::jerr_doc(422, detail, Some(&via), None, false),
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
        let t = now();
        let actor = self.authenticate(req, t);
        let mut ctx = self.ctx(req, actor);
        let path = req.path.as_str();
        let mut resp = if path == "/jsonapi" || path.starts_with("/jsonapi/") {
            self.handle_jsonapi(&mut ctx, req)
        } else if path == "/entity/user" || path.starts_with("/user/") || path == "/session/token" {
            self.handle_rest(&mut ctx, req)
        } else {
            html_page(404, "Page not found", &self.cfg.site_name)
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
        resp
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
