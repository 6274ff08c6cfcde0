//! What the contract runners share: loading the recorded transcripts, and turning a record's
//! request into one for a given site (placeholders filled in, recorded UUIDs mapped onto the
//! site's own, learned from its answers).

use crate::json::{parse_ordered, J};
use crate::util::base64_encode;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;

/// The number of exchanges recorded from the real Drupal 10.3.6 in `shared/drupal-transcripts`
/// (its README and `index.json`'s `count`). Checked against the index, so a truncated or
/// partial copy of the transcripts fails instead of passing on what it has. Change it only
/// together with the transcripts (and the runners' site preparation for the new records).
pub const EXPECTED_RECORDS: usize = 351;

pub fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// All UUID-shaped substrings, in order.
pub fn find_uuids(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 36 <= b.len() {
        let cand = &b[i..i + 36];
        let ok = cand.iter().enumerate().all(|(j, c)| match j {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => is_hex(*c),
        });
        let bounded = (i == 0 || !is_hex(b[i - 1])) && (i + 36 == b.len() || !is_hex(b[i + 36]));
        if ok && bounded {
            out.push(String::from_utf8_lossy(cand).into_owned());
            i += 36;
        } else {
            i += 1;
        }
    }
    out
}

pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[..4].iter().all(|c| c.is_ascii_digit())
        && (s.ends_with('Z') || s[19..].starts_with('+') || s[19..].starts_with('-'))
}

/// Replaces every run of exactly ten digits (a unix timestamp) with `<T>`.
pub fn mask_unix_times(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            let ch = s[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        } else {
            if n == 10 {
                out.push_str("<T>");
            } else {
                out.push_str(&s[i..i + n]);
            }
            i += n;
        }
    }
    out
}

pub fn is_placeholder(s: &str) -> bool {
    s.len() > 2
        && s.starts_with('<')
        && s.ends_with('>')
        && s[1..s.len() - 1]
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c == b'_')
}

/// One site's view of the recording: the recorded UUIDs mapped onto the site's own, its session
/// cookie and CSRF token, and the passwords that stand for the redacted ones.
#[derive(Default)]
pub struct Mapper {
    pub map: HashMap<String, String>,
    pub rev: HashMap<String, String>,
    pub session_cookie: Option<String>,
    pub csrf: Option<String>,
    pub admin_pass: String,
    pub limited_pass: String,
}

impl Mapper {
    pub fn new(admin_pass: &str, limited_pass: &str) -> Self {
        Mapper {
            admin_pass: admin_pass.into(),
            limited_pass: limited_pass.into(),
            ..Default::default()
        }
    }

    pub fn rewrite(&self, s: &str) -> String {
        let mut out = s.to_string();
        for u in find_uuids(s) {
            if let Some(m) = self.map.get(&u) {
                out = out.replace(&u, m);
            }
        }
        out
    }

    pub fn rewrite_placeholders(&self, s: &str) -> String {
        let mut out = s
            .replace("<ADMIN_PASSWORD>", &self.admin_pass)
            .replace("<LIMITED_PASSWORD>", &self.limited_pass);
        if let Some(c) = &self.csrf {
            out = out.replace("<CSRF_TOKEN>", c);
        }
        if let Some(c) = &self.session_cookie {
            out = out.replace("<SESSION_COOKIE>", c);
        }
        // Basic <base64(user:PASS)>
        while let Some(start) = out.find("<base64(") {
            let Some(end) = out[start..].find(")>") else {
                break;
            };
            let inner = &out[start + 8..start + end];
            let (user, pass) = inner.split_once(':').unwrap_or((inner, ""));
            let pass = match pass {
                "ADMIN_PASSWORD" => self.admin_pass.as_str(),
                "LIMITED_PASSWORD" => self.limited_pass.as_str(),
                other => other,
            };
            let enc = base64_encode(&format!("{user}:{pass}"));
            out.replace_range(start..start + end + 2, &enc);
        }
        out
    }

    /// Learns/checks the UUIDs of a recorded string against the actual one, position by position.
    pub fn uuid_pairs(&mut self, rec: &str, act: &str) -> Result<String, String> {
        let ru = find_uuids(rec);
        let au = find_uuids(act);
        if ru.len() != au.len() {
            return Err(format!("uuid count differs: {rec:?} vs {act:?}"));
        }
        let mut mapped = rec.to_string();
        for (r, a) in ru.iter().zip(au.iter()) {
            match self.map.get(r) {
                Some(m) if m == a => {}
                Some(m) => return Err(format!("uuid {r} maps to {m}, got {a}")),
                None => {
                    if let Some(other) = self.rev.get(a) {
                        return Err(format!(
                            "emulator uuid {a} already stands for recorded {other}, not {r}"
                        ));
                    }
                    self.map.insert(r.clone(), a.clone());
                    self.rev.insert(a.clone(), r.clone());
                }
            }
            mapped = mapped.replace(r, a);
        }
        Ok(mapped)
    }

    /// The request of a record, rewritten for the emulator: (method, path, headers, body).
    pub fn build_request(&self, rec: &Value, ordered: Option<&J>) -> Built {
        let req = &rec["request"];
        let method = req["method"].as_str().unwrap_or("GET").to_string();
        let path = self.rewrite(req["path"].as_str().unwrap_or("/"));
        let mut headers = Vec::new();
        if let Some(h) = req["headers"].as_object() {
            for (k, v) in h {
                let v = v.as_str().unwrap_or("");
                headers.push((k.clone(), self.rewrite(&self.rewrite_placeholders(v))));
            }
        }
        let body: Option<Vec<u8>> = if let Some(raw) = req.get("body_raw").and_then(|b| b.as_str())
        {
            Some(raw.as_bytes().to_vec())
        } else {
            match &req["body"] {
                Value::Null => None,
                Value::String(s) => Some(s.as_bytes().to_vec()),
                v => {
                    // Re-serialise in the recorded key order (PHP walks objects in that order).
                    let text = ordered
                        .and_then(|o| o.get("request"))
                        .and_then(|r| r.get("body"))
                        .map(|b| b.to_plain_json())
                        .unwrap_or_else(|| v.to_string());
                    Some(self.rewrite(&self.rewrite_placeholders(&text)).into_bytes())
                }
            }
        };
        let body = body.or_else(|| req["headers"].get("Content-Length").map(|_| Vec::new()));
        Built {
            method,
            path,
            headers,
            body,
        }
    }
}

#[derive(Clone)]
pub struct Built {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

pub fn seq_of(rec: &Value) -> u64 {
    rec["seq"].as_u64().unwrap_or(0)
}

pub fn name_of(rec: &Value) -> String {
    rec["name"].as_str().unwrap_or("?").to_string()
}

/// A recorded exchange: the record, and its body in document order.
pub type Record = (Value, Option<J>);

/// Reads every record of the transcripts in `dir`, in `seq` order, or says everything that keeps
/// it from being the complete set of `expected` records `index.json` lists.
pub fn load_records(dir: &Path, expected: usize) -> Result<Vec<Record>, Vec<String>> {
    let index_path = dir.join("index.json");
    let index: Value = std::fs::read_to_string(&index_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| vec![format!("{}: {e}", index_path.display())])?;
    let Some(listed) = index["exchanges"].as_array() else {
        return Err(vec![format!(
            "{}: no \"exchanges\" list",
            index_path.display()
        )]);
    };
    let mut errors = Vec::new();
    if index["count"].as_u64() != Some(listed.len() as u64) {
        errors.push(format!(
            "index.json: \"count\" is {}, but it lists {} exchanges",
            index["count"],
            listed.len()
        ));
    }
    if listed.len() != expected {
        errors.push(format!(
            "index.json lists {} exchanges, expected {expected}",
            listed.len()
        ));
    }
    // The numbered record files present, against those the index names.
    let mut present = BTreeSet::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                match e {
                    Ok(e) => {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.ends_with(".json")
                            && name.as_bytes().first().is_some_and(u8::is_ascii_digit)
                        {
                            present.insert(name);
                        }
                    }
                    Err(err) => errors.push(format!("{}: {err}", dir.display())),
                }
            }
        }
        Err(err) => return Err(vec![format!("cannot read {}: {err}", dir.display())]),
    }
    let mut records = Vec::with_capacity(listed.len());
    let mut named = BTreeSet::new();
    for (i, entry) in listed.iter().enumerate() {
        let seq = i as u64 + 1;
        let Some(file) = entry["file"].as_str() else {
            errors.push(format!("index.json: exchange {seq} names no file"));
            continue;
        };
        if !named.insert(file.to_string()) {
            errors.push(format!("index.json: {file} is listed twice"));
            continue;
        }
        if !present.contains(file) {
            errors.push(format!("{file}: listed in index.json but missing"));
            continue;
        }
        let text = match std::fs::read_to_string(dir.join(file)) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{file}: {e}"));
                continue;
            }
        };
        let rec = match serde_json::from_str::<Value>(&text) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{file}: {e}"));
                continue;
            }
        };
        if rec["seq"].as_u64() != Some(seq) || rec["name"] != entry["name"] {
            errors.push(format!(
                "{file}: seq {} name {} where index.json has exchange {seq} named {}",
                rec["seq"], rec["name"], entry["name"]
            ));
            continue;
        }
        let ordered = parse_ordered(text.as_bytes());
        records.push((rec, ordered));
    }
    for file in present.difference(&named) {
        errors.push(format!("{file}: not listed in index.json"));
    }
    if errors.is_empty() {
        Ok(records)
    } else {
        Err(errors)
    }
}

/// A request to the emulator's control API; its JSON answer.
pub fn control(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Result<Value, String> {
    let b = body.to_string();
    let r = crate::client::send(
        addr,
        method,
        path,
        &[("Content-Type".into(), "application/json".into())],
        Some(b.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    if r.status >= 300 {
        return Err(format!(
            "{method} {path} -> {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    serde_json::from_slice(&r.body).map_err(|e| e.to_string())
}

/// Site changes the recording made outside HTTP (see the transcripts' README).
pub fn prepare_emulator(addr: SocketAddr, seq: u64) -> Result<(), String> {
    let settings = |v: Value| control(addr, "PUT", "/_emulator/settings", &v).map(|_| ());
    match seq {
        118 => settings(serde_json::json!({"cancel_method": "user_cancel_delete"})),
        122 => settings(serde_json::json!({"cancel_method": "user_cancel_block"})),
        139 => settings(serde_json::json!({"read_only": true})),
        144 => settings(serde_json::json!({"read_only": false})),
        180 => {
            let users: Vec<Value> = (1..=55)
                .map(|i| {
                    serde_json::json!({"name": format!("bulk{i:02}"), "mail": format!("bulk{i:02}@example.com"), "status": true})
                })
                .collect();
            control(addr, "POST", "/_emulator/users", &Value::Array(users)).map(|_| ())
        }
        // The second run: vocabulary scim_groups and the three user fields were added
        // through the entity API (the unrecorded role/uuid lookups changed nothing).
        190 => settings(serde_json::json!({"second_run_fields": true})),
        // member01…member60, created through the entity API, all in Engineering (tid 1).
        284 => {
            let users: Vec<Value> = (1..=60)
                .map(|i| {
                    serde_json::json!({
                        "name": format!("member{i:02}"),
                        "mail": format!("member{i:02}@example.com"),
                        "status": true,
                        "field_given_name": "Member",
                        "field_family_name": format!("Number{i:02}"),
                        "field_scim_groups": [1]
                    })
                })
                .collect();
            control(addr, "POST", "/_emulator/users", &Value::Array(users)).map(|_| ())
        }
        _ => Ok(()),
    }
}
