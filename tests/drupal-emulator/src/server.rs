//! HTTP/1.1 server (hyper) plus the `/_emulator/` control API: request log, reset, seeding,
//! live settings and injected faults.

use crate::app::{App, Fault, FaultKind, Req, Resp};
use crate::fields::{FVal, FieldKind, UserField};
use crate::json::J;
use crate::model::{Term, User, CANCEL_METHODS};
use crate::users::clean_roles;
use crate::util::parse_rfc3339;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

type Body = Full<Bytes>;

/// Serves until `shutdown` resolves.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                tokio::spawn(async move {
                    let io = TokioIo::new(Lenient::new(stream));
                    let idle_since = Arc::new(std::sync::Mutex::new(None));
                    let svc = service_fn(move |req| {
                        handle_on_connection(app.clone(), req, peer, idle_since.clone())
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(io, svc)
                        .await;
                });
            }
        }
    }
}

/// PHP's built-in server takes `"`, `<` and `>` raw in a request target (record 294 sends
/// `operator]=>`); hyper refuses them with a 400. This reader percent-encodes them in request
/// lines before hyper parses them. It follows request boundaries through `Content-Length`; after
/// a chunked request body it just passes bytes through.
struct Lenient<S> {
    inner: S,
    out: Vec<u8>,
    pos: usize,
    st: LineState,
    header: Vec<u8>,
    content_length: u64,
    chunked: bool,
}

#[derive(Clone, Copy)]
enum LineState {
    RequestLine,
    Headers,
    Body(u64),
    Pass,
}

impl<S> Lenient<S> {
    fn new(inner: S) -> Self {
        Lenient {
            inner,
            out: Vec::new(),
            pos: 0,
            st: LineState::RequestLine,
            header: Vec::new(),
            content_length: 0,
            chunked: false,
        }
    }

    fn end_of_header_line(&mut self) {
        let line = String::from_utf8_lossy(&self.header);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            self.st = if self.chunked {
                LineState::Pass
            } else if self.content_length > 0 {
                LineState::Body(self.content_length)
            } else {
                LineState::RequestLine
            };
        } else if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            if k.eq_ignore_ascii_case("content-length") {
                self.content_length = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                self.chunked = v.to_ascii_lowercase().contains("chunked");
            }
        }
        self.header.clear();
    }

    /// Transforms freshly read bytes into `out`.
    fn transform(&mut self, data: &[u8]) {
        self.out.clear();
        self.pos = 0;
        let mut i = 0;
        while i < data.len() {
            match self.st {
                LineState::Pass => {
                    self.out.extend_from_slice(&data[i..]);
                    return;
                }
                LineState::Body(n) => {
                    let take = (n as usize).min(data.len() - i);
                    self.out.extend_from_slice(&data[i..i + take]);
                    i += take;
                    let left = n - take as u64;
                    self.st = if left == 0 {
                        LineState::RequestLine
                    } else {
                        LineState::Body(left)
                    };
                }
                LineState::RequestLine => {
                    let b = data[i];
                    i += 1;
                    match b {
                        b'"' => self.out.extend_from_slice(b"%22"),
                        b'<' => self.out.extend_from_slice(b"%3C"),
                        b'>' => self.out.extend_from_slice(b"%3E"),
                        // Empty lines before a request line are skipped by HTTP parsers.
                        b'\n' if self.header.is_empty() => self.out.push(b),
                        b'\n' => {
                            self.out.push(b);
                            self.st = LineState::Headers;
                            self.header.clear();
                            self.content_length = 0;
                            self.chunked = false;
                        }
                        b => {
                            self.out.push(b);
                            if b != b'\r' && self.header.is_empty() {
                                // Marks the request line as started.
                                self.header.push(b);
                            }
                        }
                    }
                }
                LineState::Headers => {
                    let b = data[i];
                    i += 1;
                    self.out.push(b);
                    if b == b'\n' {
                        self.end_of_header_line();
                    } else if self.header.len() < 8192 {
                        self.header.push(b);
                    }
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Lenient<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.pos >= this.out.len() {
            let mut tmp = [0u8; 8192];
            let mut rb = tokio::io::ReadBuf::new(&mut tmp);
            match std::pin::Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                std::task::Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let filled = rb.filled().len();
            if filled == 0 {
                return std::task::Poll::Ready(Ok(()));
            }
            this.transform(&tmp[..filled]);
        }
        let n = (this.out.len() - this.pos).min(buf.remaining());
        buf.put_slice(&this.out[this.pos..this.pos + n]);
        this.pos += n;
        std::task::Poll::Ready(Ok(()))
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Lenient<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[derive(Debug)]
struct DropConnection;
impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault: connection dropped")
    }
}
impl std::error::Error for DropConnection {}

fn to_hyper(resp: Resp, head: bool) -> Response<Body> {
    let mut b = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = if head { Vec::new() } else { resp.body };
    b.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// One request on a connection; with `idle_close_ms` set, a request arriving on a
/// connection idle that long is dropped unseen (the server closed it as it came).
async fn handle_on_connection(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
    idle_since: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
) -> Result<Response<Body>, DropConnection> {
    let idle_close_ms = app.read().settings.idle_close_ms;
    let idle = *idle_since.lock().unwrap_or_else(|e| e.into_inner());
    let control = req.uri().path().starts_with("/_emulator");
    if idle_close_ms > 0
        && !control
        && idle.is_some_and(|t| t.elapsed() >= Duration::from_millis(idle_close_ms))
    {
        return Err(DropConnection);
    }
    let out = handle(app, req, peer).await;
    *idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    out
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(|q| q.to_string());
    let method = parts.method.as_str().to_string();
    if path.starts_with("/_emulator/") || path == "/_emulator" {
        return Ok(to_hyper(control(&app, &method, &path, &body), false));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for (k, v) in parts.headers.iter() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if let Some(slot) = headers.iter_mut().find(|(n, _)| n == k.as_str()) {
            slot.1.push_str(", ");
            slot.1.push_str(&v);
        } else {
            headers.push((k.as_str().to_string(), v));
        }
    }
    if !headers.iter().any(|(k, _)| k == "host") {
        if let Some(a) = parts.uri.authority() {
            headers.push(("host".into(), a.to_string()));
        }
    }
    let (latency, race_ms, cost_model, peer_ip) = {
        let db = app.read();
        let forwarded = headers
            .iter()
            .find(|(k, _)| k == "x-forwarded-for")
            .map(|(_, v)| v.as_str());
        (
            db.settings.latency_ms,
            db.settings.race_window_ms,
            db.settings.cost_model,
            db.settings.client_ip(&peer.ip().to_string(), forwarded),
        )
    };
    let cost_us = crate::cost::delay_us(cost_model, &method, &path, &headers);
    let req = Arc::new(Req {
        method,
        path,
        query,
        headers,
        body,
        peer_ip,
        race_ms,
    });
    app.record(&req);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    // With the race switch on, the site behaves like PHP's built-in server with 4 workers: at
    // most 4 requests are processed at a time (FIFO), each on its own thread.
    let _worker = if race_ms > 0 {
        app.workers.clone().acquire_owned().await.ok()
    } else {
        None
    };
    // The `cost_model` delay: Drupal's own time for this kind of request (a sleep: latency,
    // not CPU). Paid inside the worker slot when the race switch is on, as PHP would.
    if cost_us > 0 {
        tokio::time::sleep(Duration::from_micros(cost_us)).await;
    }
    let head = req.method == "HEAD";
    match app.take_fault(&req) {
        Some(FaultKind::Drop { process }) => {
            if process {
                let _ = run(&app, &req).await;
            }
            Err(DropConnection)
        }
        Some(FaultKind::Respond {
            status,
            body,
            headers,
            process,
        }) => {
            if process {
                let _ = run(&app, &req).await;
            }
            let ct = if serde_json::from_str::<Value>(&body).is_ok() {
                if req.path.starts_with("/jsonapi") {
                    "application/vnd.api+json"
                } else {
                    "application/json"
                }
            } else {
                "text/plain; charset=UTF-8"
            };
            let mut resp = Resp::new(status, "", body);
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                resp.headers.push(("Content-Type".into(), ct.into()));
            }
            resp.headers.extend(headers);
            Ok(to_hyper(resp, head))
        }
        Some(FaultKind::Delay { ms }) => {
            let resp = run(&app, &req).await;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(to_hyper(resp, head))
        }
        None => Ok(to_hyper(run(&app, &req).await, head)),
    }
}

/// Runs a Drupal request: inline, or on a blocking thread when it may sleep in a race window.
async fn run(app: &Arc<App>, req: &Arc<Req>) -> Resp {
    if req.race_ms == 0 {
        return app.handle(req);
    }
    let (a, r) = (app.clone(), req.clone());
    tokio::task::spawn_blocking(move || a.handle(&r))
        .await
        .unwrap_or_else(|_| Resp::empty(500))
}

fn ok_json(status: u16, v: &J) -> Resp {
    let mut r = Resp::json(status, "application/json", v);
    r.headers.retain(|(k, _)| k == "Content-Type");
    r
}

fn bad(m: &str) -> Resp {
    ok_json(400, &J::obj().with("error", m))
}

/// Seeds one item, or each of a list (the first failure answers 400).
fn seed(v: &Value, mut one: impl FnMut(&Value) -> Result<J, String>) -> Resp {
    match v {
        Value::Array(items) => match items.iter().map(&mut one).collect::<Result<Vec<J>, _>>() {
            Ok(out) => ok_json(200, &J::Arr(out)),
            Err(e) => bad(&e),
        },
        _ => match one(v) {
            Ok(j) => ok_json(200, &j),
            Err(e) => bad(&e),
        },
    }
}

impl App {
    pub fn record(&self, req: &Req) {
        let path = match &req.query {
            Some(q) => format!("{}?{}", req.path, q),
            None => req.path.clone(),
        };
        let mut headers = J::obj();
        for (k, v) in &req.headers {
            headers.push(k, v.as_str());
        }
        let entry = J::obj()
            .with("method", req.method.as_str())
            .with("path", path)
            .with("headers", headers)
            .with("client_ip", req.peer_ip.as_str())
            .with("body", String::from_utf8_lossy(&req.body).into_owned());
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push_back(entry);
        while log.len() > self.log_limit {
            log.pop_front();
        }
    }

    fn take_fault(&self, req: &Req) -> Option<FaultKind> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let idx = faults.iter().position(|f| {
            f.count > 0
                && f.path_prefix
                    .as_ref()
                    .map(|p| req.path.starts_with(p.as_str()))
                    .unwrap_or(true)
                && f.method
                    .as_ref()
                    .map(|m| m.eq_ignore_ascii_case(&req.method))
                    .unwrap_or(true)
        })?;
        let f = &mut faults[idx];
        f.count -= 1;
        let kind = match &f.kind {
            FaultKind::Respond {
                status,
                body,
                headers,
                process,
            } => FaultKind::Respond {
                status: *status,
                body: body.clone(),
                headers: headers.clone(),
                process: *process,
            },
            FaultKind::Drop { process } => FaultKind::Drop { process: *process },
            FaultKind::Delay { ms } => FaultKind::Delay { ms: *ms },
        };
        if f.count == 0 {
            faults.remove(idx);
        }
        Some(kind)
    }

    /// Creates or updates (by name) one account from a control-API document.
    pub(crate) fn upsert_user(&self, v: &Value) -> Result<J, String> {
        let name = v
            .get("name")
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
            .ok_or("\"name\" is required")?;
        let mut db = self.write();
        let roles = match v.get("roles") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let mut out = Vec::new();
                for r in a {
                    let r = r.as_str().ok_or("roles must be strings")?;
                    if db.role(r).is_none() {
                        return Err(format!("unknown role {r}"));
                    }
                    out.push(r.to_string());
                }
                Some(clean_roles(&out))
            }
            Some(_) => return Err("roles must be an array".into()),
        };
        let created = match v.get("created") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => Some(parse_rfc3339(s).ok_or("bad created")?),
            Some(_) => return Err("bad created".into()),
        };
        let t = crate::util::now();
        let existing = db.user_by_name(name).cloned();
        let is_new = existing.is_none();
        let mut u = existing.unwrap_or_else(|| {
            let mut u = User::new(db.next_uid, name, t);
            u.status = true;
            u
        });
        if let Some(m) = v.get("mail") {
            u.mail = m.as_str().filter(|s| !s.is_empty()).map(|s| s.to_string());
        }
        if let Some(s) = v.get("status").and_then(|s| s.as_bool()) {
            u.status = s;
        }
        if let Some(p) = v.get("pass") {
            u.pass = p
                .as_str()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
        }
        if let Some(tz) = v.get("timezone").and_then(|s| s.as_str()) {
            u.timezone = Some(tz.to_string());
        }
        if let Some(r) = roles {
            u.roles = r;
        }
        if let Value::Object(o) = v {
            for (k, val) in o {
                let Some(def) = db.user_field(k) else {
                    if k.starts_with("field_") {
                        return Err(format!("user field {k} is not configured"));
                    }
                    continue;
                };
                let fv = match (&def.kind, val) {
                    (_, Value::Null) => None,
                    (FieldKind::String, Value::String(s)) => {
                        Some(FVal::Str(s.clone())).filter(|_| !s.is_empty())
                    }
                    (FieldKind::Integer, Value::Number(n)) => n.as_i64().map(FVal::Int),
                    (FieldKind::Boolean, Value::Bool(b)) => Some(FVal::Bool(*b)),
                    (FieldKind::TermRef(_), Value::Array(items)) => {
                        let mut tids = Vec::new();
                        for it in items {
                            match it {
                                Value::Number(n) => tids.push(n.as_i64().ok_or("bad tid")?),
                                Value::String(s) => tids.push(
                                    db.term_by_uuid(s)
                                        .map(|t| t.tid)
                                        .ok_or(format!("unknown term {s}"))?,
                                ),
                                _ => return Err(format!("{k}: tids or term uuids expected")),
                            }
                        }
                        Some(FVal::Refs(tids))
                    }
                    _ => {
                        return Err(format!(
                            "{k}: wrong value type for a {} field",
                            def.type_name()
                        ))
                    }
                };
                u.set_field(k, fv);
            }
        }
        if let Some(c) = created {
            u.created = c;
            if is_new {
                u.changed = c.max(u.changed.min(c));
            }
        }
        if is_new {
            if let Some(id) = v.get("uuid").and_then(|s| s.as_str()) {
                if db.user_by_uuid(id).is_some() {
                    return Err(format!("uuid {id} already exists"));
                }
                u.uuid = id.to_string();
            }
        }
        u.saved();
        let out = J::obj().with("uuid", u.uuid.as_str()).with("uid", u.uid);
        if is_new {
            db.insert(u);
        } else {
            db.replace(u);
        }
        Ok(out)
    }

    /// Creates one taxonomy term from a control-API document.
    fn create_term_ctl(&self, v: &Value) -> Result<J, String> {
        let name = v
            .get("name")
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
            .ok_or("\"name\" is required")?;
        let vid = v
            .get("vocabulary")
            .and_then(|n| n.as_str())
            .unwrap_or("scim_groups");
        let mut db = self.write();
        if db.vocab(vid).is_none() {
            return Err(format!("unknown vocabulary {vid}"));
        }
        let t = crate::util::now();
        let uuid = match v.get("uuid").and_then(|s| s.as_str()) {
            Some(id) => {
                if db.term_by_uuid(id).is_some() {
                    return Err(format!("uuid {id} already exists"));
                }
                id.to_string()
            }
            None => crate::util::new_uuid(),
        };
        let term = Term {
            tid: db.next_tid,
            uuid,
            vid: vid.to_string(),
            revision_id: db.next_revision,
            name: name.to_string(),
            description: v
                .get("description")
                .and_then(|d| d.as_str())
                .map(|d| (d.to_string(), None)),
            weight: v.get("weight").and_then(|w| w.as_i64()).unwrap_or(0),
            status: v.get("status").and_then(|s| s.as_bool()).unwrap_or(true),
            langcode: "en".into(),
            created: t,
            changed: t,
            parent: vec![0],
        };
        let out = J::obj()
            .with("uuid", term.uuid.as_str())
            .with("tid", term.tid);
        db.insert_term(term);
        Ok(out)
    }

    fn set_faults(&self, v: &Value) -> Result<usize, String> {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(_) => vec![v],
            _ => return Err("expected an object or an array".into()),
        };
        let mut out = Vec::new();
        for f in items {
            let count = f.get("count").and_then(|c| c.as_u64()).unwrap_or(1);
            let process = f.get("process").and_then(|p| p.as_bool()).unwrap_or(false);
            let kind = if f.get("drop").and_then(|d| d.as_bool()).unwrap_or(false) {
                FaultKind::Drop { process }
            } else if let Some(status) = f.get("status").and_then(|s| s.as_u64()) {
                let status = u16::try_from(status)
                    .ok()
                    .filter(|s| (100..600).contains(s))
                    .ok_or("bad status")?;
                let body = match f.get("body") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                let headers = f
                    .get("headers")
                    .and_then(|h| h.as_object())
                    .map(|h| {
                        h.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                FaultKind::Respond {
                    status,
                    body,
                    headers,
                    process,
                }
            } else if let Some(ms) = f.get("delay_ms").and_then(|d| d.as_u64()) {
                FaultKind::Delay { ms }
            } else {
                return Err("a fault needs \"status\", \"drop\": true or \"delay_ms\"".into());
            };
            out.push(Fault {
                count,
                path_prefix: f
                    .get("path_prefix")
                    .and_then(|p| p.as_str())
                    .map(|s| s.to_string()),
                method: f
                    .get("method")
                    .and_then(|p| p.as_str())
                    .map(|s| s.to_string()),
                kind,
            });
        }
        let n = out.len();
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = out;
        Ok(n)
    }
}

fn control(app: &App, method: &str, path: &str, body: &[u8]) -> Resp {
    let parsed = || -> Result<Value, Resp> {
        serde_json::from_slice::<Value>(body).map_err(|e| bad(&format!("invalid JSON: {e}")))
    };
    match (method, path) {
        ("GET", "/_emulator/health") => ok_json(200, &J::obj().with("ok", true)),
        ("GET", "/_emulator/requests") => {
            let log = app.log.lock().unwrap_or_else(|e| e.into_inner());
            ok_json(200, &J::Arr(log.iter().cloned().collect()))
        }
        ("DELETE", "/_emulator/requests") => {
            app.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
            Resp {
                status: 204,
                headers: vec![],
                body: vec![],
            }
        }
        ("POST", "/_emulator/reset") => {
            app.reset();
            ok_json(200, &J::obj().with("ok", true))
        }
        ("DELETE", "/_emulator/sessions") => {
            // Every session ends at once, as after a password change or a sessions purge.
            app.write().sessions.clear();
            ok_json(200, &J::obj().with("ok", true))
        }
        ("GET", "/_emulator/flood") => {
            let t = crate::util::now();
            let flood = app.flood.lock().unwrap_or_else(|e| e.into_inner());
            ok_json(200, &flood.to_json(t))
        }
        ("GET", "/_emulator/cache") => ok_json(200, &app.page_cache_json()),
        ("DELETE", "/_emulator/cache") => {
            // A cache rebuild (`drush cr`).
            app.clear_page_cache();
            Resp {
                status: 204,
                headers: vec![],
                body: vec![],
            }
        }
        ("DELETE", "/_emulator/flood") => {
            app.flood
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear_all();
            ok_json(200, &J::obj().with("ok", true))
        }
        ("POST", "/_emulator/users") => match parsed() {
            Ok(v) => seed(&v, |item| app.upsert_user(item)),
            Err(r) => r,
        },
        ("POST", "/_emulator/terms") => match parsed() {
            Ok(v) => seed(&v, |item| app.create_term_ctl(item)),
            Err(r) => r,
        },
        ("GET", "/_emulator/settings") => ok_json(200, &app.read().settings.to_json()),
        ("PUT", "/_emulator/settings") | ("PATCH", "/_emulator/settings") => {
            let v = match parsed() {
                Ok(v) => v,
                Err(r) => return r,
            };
            let mut db = app.write();
            let mut s = db.settings.clone();
            if let Some(c) = v.get("cancel_method") {
                let c = c.as_str().unwrap_or("");
                if !CANCEL_METHODS.contains(&c) {
                    return bad(&format!("unknown cancel_method {c}"));
                }
                s.cancel_method = c.to_string();
            }
            if let Some(b) = v.get("mail_case_insensitive").and_then(|b| b.as_bool()) {
                s.mail_case_insensitive = b;
            }
            match v.get("collation").map(|c| c.as_str()) {
                None => {}
                Some(Some("sqlite")) => s.general_ci = false,
                Some(Some("general_ci")) => s.general_ci = true,
                Some(_) => return bad("unknown collation (sqlite, general_ci)"),
            }
            if let Some(b) = v.get("read_only").and_then(|b| b.as_bool()) {
                s.read_only = b;
            }
            if let Some(n) = v.get("latency_ms").and_then(|b| b.as_u64()) {
                s.latency_ms = n;
            }
            if let Some(c) = v.get("cost_model") {
                let c = c.as_str().unwrap_or("");
                match crate::cost::CostModel::parse(c) {
                    Some(m) => s.cost_model = m,
                    None => return bad(&format!("unknown cost_model {c} (none or drupal)")),
                }
            }
            if let Some(n) = v.get("idle_close_ms").and_then(|b| b.as_u64()) {
                s.idle_close_ms = n;
            }
            if let Some(n) = v.get("race_window_ms").and_then(|b| b.as_u64()) {
                s.race_window_ms = n;
            }
            if let Some(b) = v.get("second_run_fields").and_then(|b| b.as_bool()) {
                s.second_run_fields = b;
            }
            if let Some(b) = v.get("dynamic_page_cache").and_then(|b| b.as_bool()) {
                s.dynamic_page_cache = b;
            }
            if let Some(r) = v.get("rest_user_resource") {
                let r = r.as_str().unwrap_or("");
                match crate::rest::RestUserResource::parse(r) {
                    Some(x) => s.rest_user_resource = x,
                    None => {
                        return bad(&format!(
                            "unknown rest_user_resource {r} (basic_auth,cookie, basic_auth, cookie or off)"
                        ))
                    }
                }
            }
            if let Some(list) = v.get("reverse_proxy_addresses") {
                let Some(items) = list.as_array() else {
                    return bad("reverse_proxy_addresses must be an array of IP addresses");
                };
                s.reverse_proxy_addresses = items
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect();
            }
            if let Some(list) = v.get("withheld_term_permissions") {
                let Some(items) = list.as_array() else {
                    return bad("withheld_term_permissions must be an array of permission names");
                };
                s.withheld_term_permissions = items
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect();
            }
            if let Some(list) = v.get("user_fields") {
                let Some(items) = list.as_array() else {
                    return bad("user_fields must be an array");
                };
                let mut out: Vec<UserField> = Vec::new();
                for it in items {
                    match UserField::from_json(it) {
                        Ok(f) => {
                            out.retain(|x| x.name != f.name);
                            out.push(f);
                        }
                        Err(e) => return bad(&e),
                    }
                }
                s.user_fields = out;
            }
            if let Err(e) = s.quirks.update(&v) {
                return bad(&e);
            }
            let cache_off = !s.dynamic_page_cache;
            s.quirks.apply_to_roles(&mut db.roles);
            crate::filter::set_general_ci(s.general_ci);
            db.settings = s;
            db.refresh_fields();
            let out = ok_json(200, &db.settings.to_json());
            drop(db);
            if cache_off {
                // Without the module there is no cache bin: nothing survives to a later switch-on.
                app.clear_page_cache();
            }
            out
        }
        ("PUT", "/_emulator/faults") | ("POST", "/_emulator/faults") => {
            let v = match parsed() {
                Ok(v) => v,
                Err(r) => return r,
            };
            match app.set_faults(&v) {
                Ok(n) => ok_json(200, &J::obj().with("faults", n as i64)),
                Err(e) => bad(&e),
            }
        }
        ("DELETE", "/_emulator/faults") => {
            app.faults.lock().unwrap_or_else(|e| e.into_inner()).clear();
            ok_json(200, &J::obj().with("faults", 0i64))
        }
        _ => ok_json(
            404,
            &J::obj().with("error", format!("no control endpoint {method} {path}")),
        ),
    }
}
