//! Replays the recorded Drupal transcripts against the emulator and compares the answers.
//!
//! usage: drupal-contract /path/to/drupal-transcripts [--verbose]
//!
//! It refuses to run (exit 2) unless it read every record: the directory's `index.json` must list
//! exactly EXPECTED_RECORDS exchanges, and exactly the numbered `.json` files the directory holds,
//! each readable, valid JSON and carrying the `seq` and `name` the index gives it.

use drupal_emulator::client::{send, HttpResp};
use drupal_emulator::contract::{
    control, is_placeholder, is_timestamp, load_records, mask_unix_times, name_of,
    prepare_emulator, seq_of, Built, Mapper, EXPECTED_RECORDS,
};
use drupal_emulator::json::J;
use drupal_emulator::{spawn, Options};
use serde_json::Value;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const ADMIN_PASSWORD: &str = "ADMIN_PASSWORD";
const LIMITED_PASSWORD: &str = "LIMITED_PASSWORD";

/// Records that are not replayed, with the reason.
fn skip_reason(_seq: u64) -> Option<&'static str> {
    None
}

/// The race window used for the concurrency bursts (ms).
const RACE_WINDOW_MS: u64 = 300;

/// The recorded concurrency bursts (`PHP_CLI_SERVER_WORKERS=4`): each record's start offset in
/// ms. They are replayed with the race switch on (4 FIFO workers; a write validates, waits
/// RACE_WINDOW_MS without the lock, then saves). The offsets are the arrival order under which
/// that model yields the recorded outcome (the real server's order came from its timing jitter):
/// - 322–326 and 328–332: the winner first; the others validate after it committed (422).
/// - 340–344: four adds load the empty list at once and overwrite each other; the fifth waits
///   for a worker, loads the first one's result and keeps it (200 with two groups).
/// - 346–350: the winner and three others pass validation together (three 500s from the
///   UNIQUE index); the fifth validates after the commit (422).
fn burst_schedule(seq: u64) -> Option<(u64, u64)> {
    let w = RACE_WINDOW_MS;
    let after = w + 150;
    let offset = match seq {
        322 => 0,
        323..=326 => after,
        332 => 0,
        328..=331 => after,
        340 => 0,
        341 => 30,
        343 => 60,
        344 => 90,
        342 => 120,
        350 => 0,
        347 => 30,
        348 => 60,
        349 => 90,
        346 => after,
        _ => return None,
    };
    let first = match seq {
        322..=326 => 322,
        328..=332 => 328,
        340..=344 => 340,
        _ => 346,
    };
    Some((first, offset))
}

struct Runner {
    addr: SocketAddr,
    m: Mapper,
    verbose: bool,
}

impl Runner {
    fn compare(&mut self, rec: &Value, act: &Value, path: &str, errs: &mut Vec<String>) {
        if errs.len() > 8 {
            return;
        }
        match (rec, act) {
            (Value::Object(r), Value::Object(a)) => {
                for (k, rv) in r {
                    match a.get(k) {
                        Some(av) => self.compare(rv, av, &format!("{path}/{k}"), errs),
                        None => errs.push(format!("{path}/{k}: missing")),
                    }
                }
                for k in a.keys() {
                    if !r.contains_key(k) {
                        errs.push(format!("{path}/{k}: unexpected"));
                    }
                }
            }
            // PHP encodes an empty map as [].
            (Value::Array(r), Value::Object(a)) | (Value::Object(a), Value::Array(r))
                if r.is_empty() && a.is_empty() => {}
            (Value::Array(r), Value::Array(a)) => {
                if r.len() != a.len() {
                    errs.push(format!(
                        "{path}: {} items recorded, {} returned",
                        r.len(),
                        a.len()
                    ));
                }
                for (i, (rv, av)) in r.iter().zip(a.iter()).enumerate() {
                    self.compare(rv, av, &format!("{path}/{i}"), errs);
                }
            }
            (Value::String(r), Value::String(a)) => {
                if is_placeholder(r) && !a.is_empty() {
                    return;
                }
                if r.starts_with("SQLSTATE[23000]") && a.starts_with("SQLSTATE[23000]") {
                    // The INSERT's arguments hold unix timestamps of the request.
                    if mask_unix_times(r) != mask_unix_times(a) {
                        errs.push(format!("{path}: recorded {r:?}, got {a:?}"));
                    }
                    return;
                }
                if is_timestamp(r) && is_timestamp(a) {
                    return;
                }
                match self.m.uuid_pairs(r, a) {
                    Ok(mapped) => {
                        if mapped != *a {
                            errs.push(format!("{path}: recorded {r:?}, got {a:?}"));
                        }
                    }
                    Err(e) => errs.push(format!("{path}: {e}")),
                }
            }
            (r, a) => {
                if r != a {
                    errs.push(format!("{path}: recorded {r}, got {a}"));
                }
            }
        }
    }

    fn control(&self, method: &str, path: &str, body: &Value) -> Result<Value, String> {
        control(self.addr, method, path, body)
    }

    /// Site changes the recording made outside HTTP (see the transcripts' README).
    fn prepare(&self, seq: u64) -> Result<(), String> {
        prepare_emulator(self.addr, seq)
    }

    fn run_record(&mut self, rec: &Value, ordered: Option<&J>) -> Result<Vec<String>, String> {
        let b = self.m.build_request(rec, ordered);
        let resp = send(self.addr, &b.method, &b.path, &b.headers, b.body.as_deref())
            .map_err(|e| format!("request failed: {e}"))?;
        Ok(self.check(rec, &b, &resp))
    }

    /// Compares an answer with the recorded one.
    fn check(&mut self, rec: &Value, b: &Built, resp: &HttpResp) -> Vec<String> {
        let req = &rec["request"];
        let want = &rec["response"];
        let (method, path) = (&b.method, &b.path);
        let mut errs = Vec::new();
        let want_status = want["status"].as_u64().unwrap_or(0) as u16;
        if resp.status != want_status {
            errs.push(format!(
                "status: recorded {want_status}, got {}",
                resp.status
            ));
        }
        let wh = want["headers"].as_object().cloned().unwrap_or_default();
        let wget = |name: &str| -> Option<String> {
            wh.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str().map(|s| s.to_string()))
        };
        for name in ["Content-Type", "Allow"] {
            let (w, g) = (wget(name), resp.header(name).map(|s| s.to_string()));
            if w != g {
                errs.push(format!("header {name}: recorded {w:?}, got {g:?}"));
            }
        }
        if wget("WWW-Authenticate").is_some() != resp.header("WWW-Authenticate").is_some() {
            errs.push(format!(
                "header WWW-Authenticate: recorded {:?}, got {:?}",
                wget("WWW-Authenticate"),
                resp.header("WWW-Authenticate")
            ));
        }
        match (
            wget("Location"),
            resp.header("Location").map(|s| s.to_string()),
        ) {
            (Some(w), Some(g)) => match self.m.uuid_pairs(&w, &g) {
                Ok(m) if m == g => {}
                Ok(m) => errs.push(format!("header Location: recorded {m:?}, got {g:?}")),
                Err(e) => errs.push(format!("header Location: {e}")),
            },
            (None, None) => {}
            (w, g) => errs.push(format!("header Location: recorded {w:?}, got {g:?}")),
        }
        // Cookie sessions: remember what the login handed out.
        if let Some(c) = resp.header("Set-Cookie") {
            if req["path"]
                .as_str()
                .unwrap_or("")
                .starts_with("/user/login")
            {
                self.m.session_cookie = c.split(';').next().map(|s| s.to_string());
            }
        }
        let ct = wget("Content-Type").unwrap_or_default();
        match &want["body"] {
            Value::String(s) => {
                let got = String::from_utf8_lossy(&resp.body).into_owned();
                if ct.starts_with("text/html") {
                    // Recorded HTML pages are cut; the status and type are what matter.
                } else if is_placeholder(s) {
                    if got.is_empty() {
                        errs.push("body: expected a token".into());
                    }
                } else if *s != got {
                    errs.push(format!("body: recorded {s:?}, got {got:?}"));
                }
            }
            Value::Null => {}
            w => match serde_json::from_slice::<Value>(&resp.body) {
                Ok(g) => {
                    if let Some(t) = g.get("csrf_token").and_then(|t| t.as_str()) {
                        self.m.csrf = Some(t.to_string());
                    }
                    self.compare(w, &g, "", &mut errs)
                }
                Err(_) => errs.push(format!(
                    "body: not JSON: {:?}",
                    String::from_utf8_lossy(&resp.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
            },
        }
        if self.verbose && !errs.is_empty() {
            eprintln!(
                "--- {} {} -> {}\n{}",
                method,
                path,
                resp.status,
                String::from_utf8_lossy(&resp.body)
                    .chars()
                    .take(3000)
                    .collect::<String>()
            );
        }
        errs
    }

    /// Replays one concurrency burst with the race switch on, each request on its own thread at
    /// its scheduled offset, then compares every answer and the burst's status multiset.
    fn run_burst(&mut self, burst: &[(&Value, Option<&J>)]) -> Vec<(u64, String, Vec<String>)> {
        let mut out = Vec::new();
        if let Err(e) = self.control(
            "PUT",
            "/_emulator/settings",
            &serde_json::json!({"race_window_ms": RACE_WINDOW_MS}),
        ) {
            for (rec, _) in burst {
                out.push((seq_of(rec), name_of(rec), vec![format!("setup: {e}")]));
            }
            return out;
        }
        let built: Vec<Built> = burst
            .iter()
            .map(|(rec, ordered)| self.m.build_request(rec, *ordered))
            .collect();
        let start = std::time::Instant::now() + Duration::from_millis(20);
        let handles: Vec<_> = built
            .iter()
            .zip(burst.iter())
            .map(|(b, (rec, _))| {
                let offset = burst_schedule(seq_of(rec)).map(|x| x.1).unwrap_or(0);
                let (addr, b) = (self.addr, b.clone());
                std::thread::spawn(move || {
                    let at = start + Duration::from_millis(offset);
                    let now = std::time::Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    send(addr, &b.method, &b.path, &b.headers, b.body.as_deref())
                })
            })
            .collect();
        let answers: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("thread panicked")))
            })
            .collect();
        let _ = self.control(
            "PUT",
            "/_emulator/settings",
            &serde_json::json!({"race_window_ms": 0}),
        );
        let mut want: Vec<u64> = burst
            .iter()
            .map(|(r, _)| r["response"]["status"].as_u64().unwrap_or(0))
            .collect();
        let mut got: Vec<u64> = answers
            .iter()
            .map(|a| a.as_ref().map(|r| r.status as u64).unwrap_or(0))
            .collect();
        want.sort_unstable();
        got.sort_unstable();
        for ((rec, _), (b, answer)) in burst.iter().zip(built.iter().zip(answers.iter())) {
            let mut errs = match answer {
                Ok(resp) => self.check(rec, b, resp),
                Err(e) => vec![format!("request failed: {e}")],
            };
            if want != got {
                errs.push(format!("burst statuses: recorded {want:?}, got {got:?}"));
            }
            out.push((seq_of(rec), name_of(rec), errs));
        }
        out
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "--verbose" || a == "-v");
    let Some(dir) = args.iter().find(|a| !a.starts_with('-')) else {
        eprintln!("usage: drupal-contract /path/to/drupal-transcripts [--verbose]");
        std::process::exit(2);
    };
    let records = match load_records(Path::new(dir), EXPECTED_RECORDS) {
        Ok(r) => r,
        Err(errors) => {
            for e in errors.iter().take(20) {
                eprintln!("drupal-contract: {e}");
            }
            if errors.len() > 20 {
                eprintln!("drupal-contract: … and {} more", errors.len() - 20);
            }
            eprintln!(
                "drupal-contract: {dir} is not the complete transcripts ({EXPECTED_RECORDS} records); not replaying"
            );
            std::process::exit(2);
        }
    };
    println!(
        "contract: {} records read from {dir} (index.json lists {EXPECTED_RECORDS})",
        records.len()
    );

    let mut opts = Options {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    opts.config.admin_pass = ADMIN_PASSWORD.into();
    opts.config.seed_limited = true;
    let (addr, _app) = match spawn(opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("drupal-contract: cannot start the emulator: {e}");
            std::process::exit(2);
        }
    };
    let mut runner = Runner {
        addr,
        m: Mapper::new(ADMIN_PASSWORD, LIMITED_PASSWORD),
        verbose,
    };
    // Wait until it answers, then give `limited` the recorded password.
    for _ in 0..100 {
        if TcpStream::connect(addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Err(e) = runner.control(
        "POST",
        "/_emulator/users",
        &serde_json::json!({"name": "limited", "pass": LIMITED_PASSWORD}),
    ) {
        eprintln!("drupal-contract: cannot seed: {e}");
        std::process::exit(2);
    }

    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut skips = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let (rec, ordered) = &records[i];
        i += 1;
        let seq = rec["seq"].as_u64().unwrap_or(0);
        let name = rec["name"].as_str().unwrap_or("?").to_string();
        if let Some((first, _)) = burst_schedule(seq) {
            if first == seq {
                let mut burst: Vec<(&Value, Option<&J>)> = vec![(rec, ordered.as_ref())];
                while i < records.len()
                    && burst_schedule(seq_of(&records[i].0)).map(|x| x.0) == Some(first)
                {
                    burst.push((&records[i].0, records[i].1.as_ref()));
                    i += 1;
                }
                for (s, n, errs) in runner.run_burst(&burst) {
                    if errs.is_empty() {
                        passed += 1;
                    } else {
                        failed += 1;
                        println!("FAIL {s:03} {n}: {}", errs.join("; "));
                    }
                }
                continue;
            }
        }
        if let Some(reason) = skip_reason(seq) {
            skipped += 1;
            skips.push(format!("{seq:03} {name}: {reason}"));
            continue;
        }
        if let Err(e) = runner.prepare(seq) {
            println!("FAIL {seq:03} {name}: setup: {e}");
            failed += 1;
            continue;
        }
        match runner.run_record(rec, ordered.as_ref()) {
            Ok(errs) if errs.is_empty() => passed += 1,
            Ok(errs) => {
                failed += 1;
                println!("FAIL {seq:03} {name}: {}", errs.join("; "));
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {seq:03} {name}: {e}");
            }
        }
    }
    if !skips.is_empty() {
        println!("skipped records:");
        for s in &skips {
            println!("  {s}");
        }
    }
    println!("contract: {passed} passed, {failed} failed, {skipped} skipped");
    let replayed = passed + failed + skipped;
    if replayed != records.len() {
        println!(
            "FAIL: {replayed} of the {} records were replayed or skipped",
            records.len()
        );
        std::process::exit(1);
    }
    std::process::exit(if failed > 0 { 1 } else { 0 });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    /// A fresh directory holding `n` records and the index listing them.
    fn transcripts(n: usize) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "drupal-contract-test-{}-{:x}",
            std::process::id(),
            uuid::Uuid::new_v4().as_u128()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut exchanges = Vec::new();
        for seq in 1..=n {
            let file = format!("{seq:03}-record_{seq}.json");
            let rec =
                json!({"name": format!("record_{seq}"), "seq": seq, "request": {}, "response": {}});
            std::fs::write(dir.join(&file), rec.to_string()).unwrap();
            exchanges.push(json!({"file": file, "name": format!("record_{seq}")}));
        }
        let index = json!({"count": n, "exchanges": exchanges});
        std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
        std::fs::write(dir.join("README.md"), "not a record").unwrap();
        dir
    }

    fn errors(dir: &Path, expected: usize) -> String {
        let e = load_records(dir, expected)
            .err()
            .unwrap_or_default()
            .join("\n");
        let _ = std::fs::remove_dir_all(dir);
        e
    }

    #[test]
    fn the_complete_set_loads_in_seq_order() {
        let dir = transcripts(3);
        let recs = load_records(&dir, 3).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let seqs: Vec<u64> = recs.iter().map(|r| seq_of(&r.0)).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn a_set_of_another_size_is_refused() {
        let dir = transcripts(3);
        assert!(errors(&dir, 4).contains("lists 3 exchanges, expected 4"));
    }

    #[test]
    fn an_empty_or_missing_directory_is_refused() {
        let dir = transcripts(0);
        assert!(errors(&dir, 351).contains("lists 0 exchanges, expected 351"));
        let gone = std::env::temp_dir().join("drupal-contract-test-no-such-dir");
        assert!(errors(&gone, 351).contains("index.json"));
    }

    #[test]
    fn missing_unlisted_and_broken_files_are_refused() {
        let dir = transcripts(3);
        std::fs::remove_file(dir.join("002-record_2.json")).unwrap();
        std::fs::write(dir.join("003-record_3.json"), "{not json").unwrap();
        std::fs::write(dir.join("004-extra.json"), "{}").unwrap();
        let e = errors(&dir, 3);
        assert!(
            e.contains("002-record_2.json: listed in index.json but missing"),
            "{e}"
        );
        assert!(e.contains("003-record_3.json: key must be a string"), "{e}");
        assert!(
            e.contains("004-extra.json: not listed in index.json"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_count_or_seq_is_refused() {
        let dir = transcripts(2);
        let index = json!({"count": 3, "exchanges": [
            {"file": "001-record_1.json", "name": "record_1"},
            {"file": "002-record_2.json", "name": "record_1"}
        ]});
        std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
        let e = errors(&dir, 2);
        assert!(e.contains("\"count\" is 3, but it lists 2"), "{e}");
        assert!(
            e.contains("002-record_2.json: seq 2 name \"record_2\""),
            "{e}"
        );
    }
}
