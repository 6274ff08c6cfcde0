//! The live contract: replays the requests of the recorded transcripts, in `seq` order, against a
//! real Drupal site and against the emulator (with the matching `--drupal-version`), and lists
//! every way the two answers differ. Differences named in the allow-list (with a reason each) are
//! expected; any other one fails the run.
//!
//! usage: drupal-live-contract TRANSCRIPTS --drupal-url http://127.0.0.1:8950 --docroot DIR
//!          [--php "php"] [--db PATH] [--drupal-version 10.3|10.6|11.4] [--allow FILE]
//!          [--report FILE] [--prepare-script FILE] [--only N-M] [--verbose]
//! env:   DRUPAL_ADMIN_USER (default admin), DRUPAL_ADMIN_PASS (required)
//!
//! The site must be freshly installed (only uid 1, or uid 1 and `limited`): the replay relies on
//! account and term ids running as in the recording. Its SQLite database is copied before the
//! run and copied back afterwards, so the same site can be replayed again (and is left as found).

use drupal_emulator::client::{send, HttpResp};
use drupal_emulator::contract::{
    find_uuids, is_timestamp, load_records, mask_unix_times, name_of, prepare_emulator, seq_of,
    Built, Mapper, EXPECTED_RECORDS,
};
use drupal_emulator::model::DrupalVersion;
use drupal_emulator::{spawn, Options};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Response headers that come from the web server or the transport, not from Drupal.
const SERVER_HEADERS: [&str; 8] = [
    "date",
    "host",
    "connection",
    "x-powered-by",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "server",
];

/// JSON keys whose values are secrets minted per session.
const TOKEN_KEYS: [&str; 2] = ["csrf_token", "logout_token"];

struct Args {
    transcripts: PathBuf,
    url: String,
    docroot: PathBuf,
    php: Vec<String>,
    db: Option<PathBuf>,
    version: Option<DrupalVersion>,
    allow: Option<PathBuf>,
    report: Option<PathBuf>,
    script: PathBuf,
    only: Option<(u64, u64)>,
    verbose: bool,
}

const USAGE: &str =
    "usage: drupal-live-contract TRANSCRIPTS --drupal-url URL --docroot DIR [--php CMD] [--db PATH]
       [--drupal-version 10.3|10.6|11.4] [--allow FILE] [--report FILE] [--prepare-script FILE]
       [--only N-M] [--verbose]
env: DRUPAL_ADMIN_USER (default admin), DRUPAL_ADMIN_PASS";

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args {
        transcripts: PathBuf::new(),
        url: String::new(),
        docroot: PathBuf::new(),
        php: vec!["php".into()],
        db: None,
        version: None,
        allow: None,
        report: None,
        script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../live_contract/prepare.php"),
        only: None,
        verbose: false,
    };
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let mut value = || -> Result<String, String> {
            i += 1;
            argv.get(i).cloned().ok_or(format!("{flag} needs a value"))
        };
        match flag {
            "--drupal-url" => a.url = value()?.trim_end_matches('/').to_string(),
            "--docroot" => a.docroot = PathBuf::from(value()?),
            "--php" => a.php = value()?.split_whitespace().map(String::from).collect(),
            "--db" => a.db = Some(PathBuf::from(value()?)),
            "--drupal-version" => {
                let v = value()?;
                a.version =
                    Some(DrupalVersion::parse(&v).ok_or(format!("unknown Drupal version {v}"))?)
            }
            "--allow" => a.allow = Some(PathBuf::from(value()?)),
            "--report" => a.report = Some(PathBuf::from(value()?)),
            "--prepare-script" => a.script = PathBuf::from(value()?),
            "--only" => {
                let v = value()?;
                let (x, y) = v.split_once('-').unwrap_or((&v, &v));
                a.only = Some((
                    x.parse().map_err(|_| "--only N-M")?,
                    y.parse().map_err(|_| "--only N-M")?,
                ));
            }
            "--verbose" | "-v" => a.verbose = true,
            "-h" | "--help" => return Err(String::new()),
            f if f.starts_with('-') => return Err(format!("unknown argument {f}")),
            _ => a.transcripts = PathBuf::from(flag),
        }
        i += 1;
    }
    if a.transcripts.as_os_str().is_empty() || a.url.is_empty() || a.docroot.as_os_str().is_empty()
    {
        return Err("TRANSCRIPTS, --drupal-url and --docroot are required".into());
    }
    if a.php.is_empty() {
        return Err("--php is empty".into());
    }
    Ok(a)
}

/// One difference between the live site's answer and the emulator's.
struct Diff {
    seq: u64,
    name: String,
    /// `status`, `header <lower-case name>` or `body <JSON path>`.
    what: String,
    live: String,
    emulator: String,
    recorded: String,
    allowed: Option<String>,
}

struct AllowRule {
    versions: Vec<String>,
    seqs: Option<Vec<u64>>,
    what: String,
    live: Option<String>,
    reason: String,
    used: usize,
}

fn load_allow(path: &Path) -> Result<Vec<AllowRule>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, r) in v["allow"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let reason = r["reason"].as_str().unwrap_or("").to_string();
        let what = r["what"].as_str().unwrap_or("").to_string();
        if reason.is_empty() || what.is_empty() {
            return Err(format!(
                "{}: rule {i} needs \"what\" and \"reason\"",
                path.display()
            ));
        }
        let seqs = match &r["seq"] {
            Value::Null => None,
            Value::Array(a) => Some(a.iter().filter_map(|x| x.as_u64()).collect()),
            Value::String(s) => {
                let mut v = Vec::new();
                for part in s.split(',') {
                    let (x, y) = part
                        .trim()
                        .split_once('-')
                        .unwrap_or((part.trim(), part.trim()));
                    let (x, y): (u64, u64) = (
                        x.parse().map_err(|_| format!("rule {i}: bad seq {s}"))?,
                        y.parse().map_err(|_| format!("rule {i}: bad seq {s}"))?,
                    );
                    v.extend(x..=y);
                }
                Some(v)
            }
            n => Some(n.as_u64().into_iter().collect()),
        };
        let versions = match &r["versions"] {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec!["*".into()],
        };
        out.push(AllowRule {
            versions,
            seqs,
            what,
            live: r["live"].as_str().map(String::from),
            reason,
            used: 0,
        });
    }
    Ok(out)
}

/// One side of the replay: where it is, and its view of the recording.
struct Side {
    addr: SocketAddr,
    m: Mapper,
}

impl Side {
    fn send(&self, b: &Built) -> Result<HttpResp, String> {
        let mut last = String::new();
        // The wasm server closes idle connections; a fresh connection per request, retried once
        // when the connection itself fails (no answer was read, so nothing was processed twice
        // unless the server processed it and dropped the answer, which it does not do).
        for _ in 0..2 {
            match send(self.addr, &b.method, &b.path, &b.headers, b.body.as_deref()) {
                Ok(r) => return Ok(r),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = e.to_string();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(last)
    }

    /// Learns the recorded UUIDs' counterparts from an answer, position by position, and the
    /// session cookie and CSRF token it hands out.
    fn learn(&mut self, rec: &Value, rec_body: &Value, resp: &HttpResp, path: &str) {
        let want = &rec["response"];
        if let (Some(w), Some(g)) = (
            header_of(want, "Location"),
            resp.header("Location").map(String::from),
        ) {
            let _ = self.m.uuid_pairs(&w, &g);
        }
        if path.starts_with("/user/login") {
            if let Some(c) = resp.header("Set-Cookie") {
                self.m.session_cookie = c.split(';').next().map(String::from);
            }
        }
        if let Some(g) = json_body(resp, path) {
            if let Some(t) = g.get("csrf_token").and_then(|t| t.as_str()) {
                self.m.csrf = Some(t.to_string());
            }
            learn_uuids(&mut self.m, rec_body, &g);
        }
    }
}

/// A body put in a form where only meaningful differences remain: the role collection comes
/// in the order the config factory's caches happen to load the roles (anonymous first on a
/// fresh 10.6 site, content_editor first on the recorded one), so it is sorted by role id.
///
/// From 11.4 on, an unfiltered, unsorted user collection comes in UUID order (SQLite reads the
/// users table through its uuid index), and UUIDs are random per site: such lists are put in
/// account order (uid, then display name or name for callers or fieldsets without uids) on both
/// sides.
fn canonical(path: &str, mut v: Value) -> Value {
    if path.starts_with("/jsonapi/user_role/user_role") && !path.contains("/user_role/user_role/") {
        if let Some(data) = v.get_mut("data").and_then(|d| d.as_array_mut()) {
            data.sort_by(|a, b| {
                let k = |x: &Value| {
                    x["attributes"]["drupal_internal__id"]
                        .as_str()
                        .map(String::from)
                };
                k(a).cmp(&k(b))
            });
        }
    }
    if UUID_ORDER.load(std::sync::atomic::Ordering::Relaxed) && unsorted_user_list(path) {
        if let Some(data) = v.get_mut("data").and_then(|d| d.as_array_mut()) {
            data.sort_by(|a, b| {
                let k = |x: &Value| {
                    (
                        x["attributes"]["drupal_internal__uid"]
                            .as_i64()
                            .unwrap_or(-1),
                        x["attributes"]["display_name"]
                            .as_str()
                            .or(x["attributes"]["name"].as_str())
                            .map(String::from),
                    )
                };
                k(a).cmp(&k(b))
            });
        }
    }
    v
}

/// Whether user lists come in UUID order (the emulator runs as 11.4).
static UUID_ORDER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn unsorted_user_list(path: &str) -> bool {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    p.trim_end_matches('/') == "/jsonapi/user/user"
        && !q.split('&').any(|kv| {
            let k = kv.split('=').next().unwrap_or("");
            k == "sort" || k.starts_with("filter")
        })
}

fn json_body(resp: &HttpResp, path: &str) -> Option<Value> {
    serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .map(|v| canonical(path, v))
}

fn learn_uuids(m: &mut Mapper, rec: &Value, act: &Value) {
    match (rec, act) {
        (Value::Object(r), Value::Object(a)) => {
            for (k, rv) in r {
                if let Some(av) = a.get(k) {
                    learn_uuids(m, rv, av);
                }
            }
        }
        (Value::Array(r), Value::Array(a)) => {
            // Resource objects are paired by the account or term they stand for: a page of a list need not hold the same accounts on both sides
            // (11.4's UUID order), and pairing by position would then learn wrong UUIDs.
            let rk: Vec<_> = r.iter().map(resource_key).collect();
            let ak: Vec<_> = a.iter().map(resource_key).collect();
            if rk.iter().chain(ak.iter()).any(Option::is_some) {
                // Items without a key (the anonymous user in a sparse fieldset) teach nothing.
                for (rv, k) in r.iter().zip(rk.iter()) {
                    if let Some(i) = k
                        .as_ref()
                        .and_then(|k| ak.iter().position(|x| x.as_ref() == Some(k)))
                    {
                        learn_uuids(m, rv, &a[i]);
                    }
                }
            } else {
                for (rv, av) in r.iter().zip(a.iter()) {
                    learn_uuids(m, rv, av);
                }
            }
        }
        (Value::String(r), Value::String(a)) => {
            let _ = m.uuid_pairs(r, a);
        }
        _ => {}
    }
}

/// What a resource object stands for, where it says: its type and uid, name or display name.
fn resource_key(v: &Value) -> Option<(String, String)> {
    let t = v.get("type")?.as_str()?;
    let at = v.get("attributes")?;
    let id = at
        .get("drupal_internal__uid")
        .or(at.get("drupal_internal__tid"))
        .map(|x| x.to_string())
        .or(at.get("name").and_then(|x| x.as_str()).map(String::from))
        .or(at
            .get("display_name")
            .and_then(|x| x.as_str())
            .map(String::from))?;
    Some((t.to_string(), id))
}

fn header_of(resp: &Value, name: &str) -> Option<String> {
    resp["headers"].as_object().and_then(|h| {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str().map(String::from))
    })
}

/// Compares the live answer with the emulator's: UUIDs through each side's map to the recorded
/// ones (or, for UUIDs the recording never showed, through a live↔emulator bijection learned
/// here), any two timestamps equal, tokens masked.
struct Cmp<'a> {
    live: &'a Mapper,
    emu: &'a Mapper,
    le: &'a mut HashMap<String, String>,
    el: &'a mut HashMap<String, String>,
    out: Vec<(String, String, String)>,
}

impl Cmp<'_> {
    fn strings(&mut self, path: &str, l: &str, e: &str) {
        if l.starts_with("SQLSTATE[") && e.starts_with("SQLSTATE[") {
            if mask_unix_times(l) != mask_unix_times(e) {
                self.out.push((path.into(), l.into(), e.into()));
            }
            return;
        }
        if is_timestamp(l) && is_timestamp(e) {
            return;
        }
        let (lu, eu) = (find_uuids(l), find_uuids(e));
        let mut same = lu.len() == eu.len();
        if same {
            let (mut ln, mut en) = (l.to_string(), e.to_string());
            for (a, b) in lu.iter().zip(eu.iter()) {
                ln = ln.replacen(a.as_str(), "<uuid>", 1);
                en = en.replacen(b.as_str(), "<uuid>", 1);
                let ra = self.live.rev.get(a);
                let rb = self.emu.rev.get(b);
                let ok = match (ra, rb) {
                    (Some(x), Some(y)) => x == y,
                    _ => match (self.le.get(a), self.el.get(b)) {
                        (Some(x), _) => x == b,
                        (None, Some(y)) => y == a,
                        (None, None) => {
                            self.le.insert(a.clone(), b.clone());
                            self.el.insert(b.clone(), a.clone());
                            true
                        }
                    },
                };
                same &= ok;
            }
            same &= ln == en;
        }
        if !same {
            self.out.push((path.into(), l.into(), e.into()));
        }
    }

    fn values(&mut self, path: &str, l: &Value, e: &Value) {
        match (l, e) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, lv) in a {
                    let p = format!("{path}/{k}");
                    match b.get(k) {
                        Some(_) if TOKEN_KEYS.contains(&k.as_str()) => {}
                        Some(ev) => self.values(&p, lv, ev),
                        None => self.out.push((p, short(lv), "(absent)".into())),
                    }
                }
                for (k, ev) in b {
                    if !a.contains_key(k) {
                        self.out
                            .push((format!("{path}/{k}"), "(absent)".into(), short(ev)));
                    }
                }
            }
            (Value::Array(a), Value::Object(b)) | (Value::Object(b), Value::Array(a))
                if a.is_empty() && b.is_empty() => {}
            (Value::Array(a), Value::Array(b)) => {
                if a.len() != b.len() {
                    self.out.push((
                        format!("{path}#len"),
                        a.len().to_string(),
                        b.len().to_string(),
                    ));
                }
                for (i, (lv, ev)) in a.iter().zip(b.iter()).enumerate() {
                    self.values(&format!("{path}/{i}"), lv, ev);
                }
            }
            (Value::String(a), Value::String(b)) => self.strings(path, a, b),
            (a, b) => {
                if a != b {
                    self.out.push((path.into(), short(a), short(b)));
                }
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if s.len() > 400 {
        let mut end = 400;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

/// `Set-Cookie` without its secret parts: the session id and the cookie name's hash.
fn mask_cookie(v: &str) -> String {
    v.split(';')
        .map(|part| {
            let p = part.trim();
            match p.split_once('=') {
                Some((k, val)) if k.starts_with("SESS") || k.starts_with("SSESS") => {
                    let name = if k.starts_with("SSESS") {
                        "SSESS…"
                    } else {
                        "SESS…"
                    };
                    if val == "deleted" {
                        format!("{name}=deleted")
                    } else {
                        format!("{name}=<id>")
                    }
                }
                Some((k, _)) if k.eq_ignore_ascii_case("expires") => format!("{k}=<date>"),
                _ => p.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The value at a `/a/b/0` path of a JSON document.
fn at_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path
        .trim_end_matches("#len")
        .split('/')
        .filter(|p| !p.is_empty())
    {
        cur = match cur {
            Value::Object(o) => o.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn compare(
    rec: &Value,
    live: &HttpResp,
    emu: &HttpResp,
    lm: &Mapper,
    em: &Mapper,
    le: &mut HashMap<String, String>,
    el: &mut HashMap<String, String>,
) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let recorded = &rec["response"];
    if live.status != emu.status {
        out.push((
            "status".into(),
            live.status.to_string(),
            emu.status.to_string(),
            recorded["status"].to_string(),
        ));
    }
    // Headers: every one Drupal sets, by lower-case name (repeated ones joined).
    let collect = |r: &HttpResp| {
        let mut h: Vec<(String, String)> = Vec::new();
        for (k, v) in &r.headers {
            let k = k.to_ascii_lowercase();
            if SERVER_HEADERS.contains(&k.as_str()) {
                continue;
            }
            let v = if k == "set-cookie" {
                mask_cookie(v)
            } else {
                v.clone()
            };
            match h.iter_mut().find(|(x, _)| *x == k) {
                // A repeated header is the same as one whose values are joined by commas
                // (RFC 9110 §5.3); the recording keeps them joined.
                Some((_, old)) => {
                    old.push_str(if k == "set-cookie" { " | " } else { ", " });
                    old.push_str(&v);
                }
                None => h.push((k, v)),
            }
        }
        h
    };
    let (lh, eh) = (collect(live), collect(emu));
    let mut names: Vec<&String> = lh.iter().map(|x| &x.0).collect();
    for (k, _) in &eh {
        if !names.contains(&k) {
            names.push(k);
        }
    }
    let get = |h: &[(String, String)], k: &str| h.iter().find(|x| x.0 == k).map(|x| x.1.clone());
    for k in names {
        let (l, e) = (get(&lh, k), get(&eh, k));
        let same = match (&l, &e) {
            (Some(a), Some(b)) if k == "location" => {
                let mut c = Cmp {
                    live: lm,
                    emu: em,
                    le: &mut *le,
                    el: &mut *el,
                    out: Vec::new(),
                };
                c.strings("", a, b);
                c.out.is_empty()
            }
            (a, b) => a == b,
        };
        if !same {
            out.push((
                format!("header {k}"),
                l.unwrap_or_else(|| "(absent)".into()),
                e.unwrap_or_else(|| "(absent)".into()),
                header_of(recorded, k).unwrap_or_else(|| "(absent)".into()),
            ));
        }
    }
    // Bodies.
    let ct = live.header("Content-Type").unwrap_or("");
    let rpath = rec["request"]["path"].as_str().unwrap_or("");
    let rec_body = canonical(rpath, recorded["body"].clone());
    match (json_body(live, rpath), json_body(emu, rpath)) {
        (Some(a), Some(b)) => {
            let mut c = Cmp {
                live: lm,
                emu: em,
                le,
                el,
                out: Vec::new(),
            };
            c.values("", &a, &b);
            for (p, l, e) in c.out {
                let r = at_path(&rec_body, &p)
                    .map(|v| {
                        if p.ends_with("#len") {
                            v.as_array()
                                .map(|a| a.len().to_string())
                                .unwrap_or_default()
                        } else {
                            short(v)
                        }
                    })
                    .unwrap_or_else(|| "(absent)".into());
                out.push((format!("body {p}"), l, e, r));
            }
        }
        _ if ct.starts_with("text/html") => {
            // HTML pages: the emulator's are minimal by design; status and headers are compared.
        }
        _ => {
            let (l, e) = (
                String::from_utf8_lossy(&live.body).into_owned(),
                String::from_utf8_lossy(&emu.body).into_owned(),
            );
            // GET /session/token: a token each, compared by presence.
            let token = rec["request"]["path"]
                .as_str()
                .unwrap_or("")
                .starts_with("/session/token");
            let same = if token {
                l.is_empty() == e.is_empty()
            } else {
                l == e
            };
            if !same {
                out.push((
                    "body".into(),
                    short(&Value::String(l)),
                    short(&Value::String(e)),
                    short(&recorded["body"]),
                ));
            }
        }
    }
    out
}

/// Runs one step of `prepare.php` on the live site.
fn php_step(a: &Args, limited_pass: &str, step: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(&a.php[0]);
    cmd.args(&a.php[1..])
        .arg(&a.script)
        .arg(&a.docroot)
        .args(step)
        .env("LIVE_CONTRACT_LIMITED_PASS", limited_pass);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", a.php.join(" ")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !stdout.contains("PREPARE-OK") {
        return Err(format!(
            "prepare.php {} failed ({}): {}{}",
            step.join(" "),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(12)
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    Ok(stdout)
}

/// The live site's share of the changes the recording made outside HTTP.
fn live_step(seq: u64) -> Option<Vec<&'static str>> {
    Some(match seq {
        118 => vec!["cancel-method", "user_cancel_delete"],
        122 => vec!["cancel-method", "user_cancel_block"],
        139 => vec!["read-only", "1"],
        144 => vec!["read-only", "0"],
        180 => vec!["bulk"],
        190 => vec!["second-run"],
        284 => vec!["members"],
        _ => return None,
    })
}

fn random_pass() -> String {
    format!("lc-{}", uuid::Uuid::new_v4().simple())
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("drupal-live-contract: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&a) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("drupal-live-contract: {e}");
            std::process::exit(2);
        }
    }
}

fn run(a: &Args) -> Result<i32, String> {
    let t0 = Instant::now();
    let admin_user = std::env::var("DRUPAL_ADMIN_USER").unwrap_or_else(|_| "admin".into());
    let admin_pass = std::env::var("DRUPAL_ADMIN_PASS")
        .map_err(|_| "DRUPAL_ADMIN_PASS is not set".to_string())?;
    if admin_user != "admin" {
        return Err("the recording's admin is `admin`; DRUPAL_ADMIN_USER must be admin".into());
    }
    let records = load_records(&a.transcripts, EXPECTED_RECORDS).map_err(|e| e.join("\n"))?;
    let mut allow = match &a.allow {
        Some(p) => load_allow(p)?,
        None => Vec::new(),
    };
    let hostport = a
        .url
        .strip_prefix("http://")
        .ok_or("--drupal-url must be http://HOST:PORT")?;
    let live_addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or(format!("{hostport}: no address"))?;
    let limited_pass = random_pass();
    let full_version = php_step(a, &limited_pass, &["version"])?
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let version = match a.version {
        Some(v) => v,
        None => {
            let mm: String = full_version
                .split('.')
                .take(2)
                .collect::<Vec<_>>()
                .join(".");
            DrupalVersion::parse(&mm).ok_or(format!(
                "live Drupal {full_version}: no emulator version for it; pass --drupal-version"
            ))?
        }
    };
    println!(
        "live-contract: {} records; live Drupal {full_version} at {}, emulator --drupal-version {}",
        records.len(),
        a.url,
        version.as_str()
    );
    // Snapshot the database, so that the site is left as found.
    let db =
        a.db.clone()
            .unwrap_or_else(|| a.docroot.join("sites/default/files/.sqlite"));
    let snapshot =
        std::env::temp_dir().join(format!("live-contract-{}.sqlite", std::process::id()));
    std::fs::copy(&db, &snapshot).map_err(|e| format!("cannot snapshot {}: {e}", db.display()))?;
    let result = replay(
        a,
        &records,
        version,
        &admin_pass,
        &limited_pass,
        live_addr,
        &mut allow,
    );
    let restored = std::fs::copy(&snapshot, &db);
    let _ = std::fs::remove_file(&snapshot);
    if let Err(e) = restored {
        eprintln!(
            "drupal-live-contract: could not restore {}: {e}",
            db.display()
        );
    }
    let (diffs, replayed) = result?;
    let unexpected = diffs.iter().filter(|d| d.allowed.is_none()).count();
    let allowed = diffs.len() - unexpected;
    let secs = t0.elapsed().as_secs_f64();
    for d in &diffs {
        let tag = if d.allowed.is_some() {
            "ALLOWED"
        } else {
            "DIFF"
        };
        println!(
            "{tag} {:03} {} {}: live {:?} | emulator {:?} | recorded 10.3.6 {:?}",
            d.seq, d.name, d.what, d.live, d.emulator, d.recorded
        );
    }
    let unused: Vec<&AllowRule> = allow
        .iter()
        .filter(|r| r.used == 0 && applies(r, version))
        .collect();
    for r in &unused {
        println!("note: allow-list rule not used: {} ({})", r.what, r.reason);
    }
    println!(
        "live-contract: {replayed} exchanges replayed against Drupal {full_version} and the emulator ({}); {} differences: {unexpected} unexpected, {allowed} allowed; {secs:.0} s",
        version.as_str(),
        diffs.len()
    );
    if let Some(p) = &a.report {
        let report = json!({
            "drupal_version": full_version,
            "emulator_version": version.as_str(),
            "drupal_url": a.url,
            "exchanges_replayed": replayed,
            "seconds": (secs * 10.0).round() / 10.0,
            "summary": {"differences": diffs.len(), "unexpected": unexpected, "allowed": allowed},
            "differences": diffs.iter().map(|d| json!({
                "seq": d.seq, "name": d.name, "what": d.what, "live": d.live,
                "emulator": d.emulator, "recorded": d.recorded, "allowed": d.allowed,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(p, serde_json::to_string_pretty(&report).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(if unexpected == 0 { 0 } else { 1 })
}

/// Whether `text` starts with `pattern`, where `*` in the pattern stands for any run of
/// characters.
fn glob_prefix(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => text.starts_with(pattern),
        Some((head, rest)) => {
            text.starts_with(head)
                && (head.len()..=text.len())
                    .any(|i| text.is_char_boundary(i) && glob_prefix(rest, &text[i..]))
        }
    }
}

fn applies(r: &AllowRule, v: DrupalVersion) -> bool {
    r.versions.iter().any(|x| x == "*" || x == v.as_str())
}

#[allow(clippy::too_many_arguments)]
fn replay(
    a: &Args,
    records: &[(Value, Option<drupal_emulator::json::J>)],
    version: DrupalVersion,
    admin_pass: &str,
    limited_pass: &str,
    live_addr: SocketAddr,
    allow: &mut [AllowRule],
) -> Result<(Vec<Diff>, usize), String> {
    php_step(a, limited_pass, &["init"])?;
    let mut opts = Options {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    opts.config.admin_pass = admin_pass.into();
    opts.config.seed_limited = true;
    opts.config.drupal_version = version;
    UUID_ORDER.store(
        version >= DrupalVersion::V11_4,
        std::sync::atomic::Ordering::Relaxed,
    );
    let (emu_addr, _app) = spawn(opts).map_err(|e| format!("cannot start the emulator: {e}"))?;
    for _ in 0..100 {
        if TcpStream::connect(emu_addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drupal_emulator::contract::control(
        emu_addr,
        "POST",
        "/_emulator/users",
        &json!({"name": "limited", "pass": limited_pass}),
    )?;
    let mut live = Side {
        addr: live_addr,
        m: Mapper::new(admin_pass, limited_pass),
    };
    let mut emu = Side {
        addr: emu_addr,
        m: Mapper::new(admin_pass, limited_pass),
    };
    let (mut le, mut el) = (HashMap::new(), HashMap::new());
    let mut diffs = Vec::new();
    let mut replayed = 0;
    for (rec, ordered) in records {
        let seq = seq_of(rec);
        let name = name_of(rec);
        // Site changes happen whether or not the exchange is in --only's range.
        if let Some(step) = live_step(seq) {
            php_step(a, limited_pass, &step)?;
            prepare_emulator(emu_addr, seq)?;
        }
        let bl = live.m.build_request(rec, ordered.as_ref());
        let be = emu.m.build_request(rec, ordered.as_ref());
        let lr = live
            .send(&bl)
            .map_err(|e| format!("{seq:03} {name}: live: {e}"))?;
        let er = emu
            .send(&be)
            .map_err(|e| format!("{seq:03} {name}: emulator: {e}"))?;
        let path = rec["request"]["path"].as_str().unwrap_or("");
        let rec_body = canonical(path, rec["response"]["body"].clone());
        live.learn(rec, &rec_body, &lr, path);
        emu.learn(rec, &rec_body, &er, path);
        replayed += 1;
        // --only N-M: every exchange is replayed (state carries on), only those are compared.
        let in_range = a.only.is_none_or(|(x, y)| seq >= x && seq <= y);
        if !in_range {
            continue;
        }
        let found = compare(rec, &lr, &er, &live.m, &emu.m, &mut le, &mut el);
        if a.verbose && !found.is_empty() {
            eprintln!(
                "--- {seq:03} {} {} live {}:\n{}\n--- emulator {}:\n{}",
                bl.method,
                bl.path,
                lr.status,
                String::from_utf8_lossy(&lr.body)
                    .chars()
                    .take(3000)
                    .collect::<String>(),
                er.status,
                String::from_utf8_lossy(&er.body)
                    .chars()
                    .take(3000)
                    .collect::<String>()
            );
        }
        for (what, l, e, r) in found {
            let allowed = allow.iter_mut().find(|rule| {
                applies(rule, version)
                    && rule.seqs.as_ref().is_none_or(|s| s.contains(&seq))
                    && glob_prefix(&rule.what, &what)
                    && rule.live.as_ref().is_none_or(|x| *x == l)
            });
            let allowed = allowed.map(|rule| {
                rule.used += 1;
                rule.reason.clone()
            });
            diffs.push(Diff {
                seq,
                name: name.clone(),
                what,
                live: l,
                emulator: e,
                recorded: r,
                allowed,
            });
        }
    }
    Ok((diffs, replayed))
}
