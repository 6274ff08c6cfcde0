//! `scim-config`: checks a gateway plugin configuration with the filter's own code, and makes
//! bearer tokens.
//!
//!     scim-config check FILE|-     every problem of a plugin configuration (JSON), one a line
//!     scim-config token [LABEL]    a new token, and its `tokens` entry for the configuration
//!     scim-config adopt-preview …  who an `adopt: "mail"` gateway would adopt (`adopt_preview`)
//!
//! For an Envoy config (YAML), `scripts/check-config` extracts the plugin configuration and
//! runs `check` on it, then Envoy's own `--mode validate`.

use envoy_scim_drupal::config::{self, ConfigError};
use envoy_scim_drupal::hex::sha256_hex;
use serde_json::Value;
use std::io::Read;
use std::process::ExitCode;

/// Problems reported at most (each found by parsing again without the previous one).
const MAX_PROBLEMS: usize = 50;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check") => check(args.get(1).map(String::as_str).unwrap_or("-")),
        Some("token") => token(args.get(1).map(String::as_str).unwrap_or("default")),
        Some("adopt-preview") => adopt_preview(args.get(1..).unwrap_or_default()),
        _ => {
            eprintln!("usage: scim-config check FILE|-   |   scim-config token [LABEL]   |   scim-config adopt-preview --help");
            ExitCode::from(2)
        }
    }
}

fn read_input(path: &str) -> std::io::Result<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path)?;
    }
    Ok(text)
}

fn check(path: &str) -> ExitCode {
    let text = match read_input(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            println!("invalid plugin configuration: field `(configuration)`: not valid JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The VM environment variables are Envoy's: here every name counts as set, and the names
    // needed are listed.
    let needed = std::cell::RefCell::new(Vec::<String>::new());
    let env = |name: &str| {
        if let Ok(mut n) = needed.try_borrow_mut() {
            n.push(name.to_string());
        }
        Some("set-in-envoy".to_string())
    };
    let mut problems: Vec<ConfigError> = Vec::new();
    loop {
        match config::parse(value.to_string().as_bytes(), &env) {
            Ok(_) => break,
            Err(e) => {
                let removed = remove_field(&mut value, &e.field);
                problems.push(e);
                if !removed || problems.len() >= MAX_PROBLEMS {
                    break;
                }
            }
        }
    }
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        let mut names = needed.into_inner();
        names.dedup();
        println!(
            "configuration OK; Envoy's VM environment must provide: {}",
            names.join(", ")
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Removes the field a problem names (`drupal.timeout_ms`, `tokens[1].label`, `attributes[0]`…)
/// so the next parse can find the next problem. False when it cannot go (a required field).
fn remove_field(value: &mut Value, field: &str) -> bool {
    if ["tokens", "drupal", "(configuration)"].contains(&field) {
        return false;
    }
    // Required strings get a stand-in, so the rest can still be checked.
    if let Some(key) = field
        .strip_prefix("drupal.")
        .filter(|k| *k == "cluster" || *k == "authority")
    {
        if let Some(d) = value.get_mut("drupal").and_then(Value::as_object_mut) {
            d.insert(key.to_string(), Value::String("stand-in".into()));
            return true;
        }
        return false;
    }
    // `tokens[1].sha256` → drop the whole entry `tokens[1]`.
    let (parent_path, last) = match field.split_once('[') {
        Some((list, rest)) => {
            let index: Option<usize> = rest.split(']').next().and_then(|i| i.parse().ok());
            let Some(list_value) = value.get_mut(list).and_then(Value::as_array_mut) else {
                return false;
            };
            return match (index, list) {
                // A bad token is replaced by a well-formed stand-in (at least one is required).
                (Some(i), "tokens") => match list_value.get_mut(i) {
                    Some(slot) => {
                        *slot = serde_json::json!({"label": format!("stand-in-{i}"), "sha256": "0".repeat(64)});
                        true
                    }
                    None => false,
                },
                (Some(i), _) if i < list_value.len() => {
                    list_value.remove(i);
                    true
                }
                _ => false,
            };
        }
        None => match field.rsplit_once('.') {
            Some((parent, last)) => (Some(parent), last),
            None => (None, field),
        },
    };
    let target = match parent_path {
        None => Some(&mut *value),
        Some(p) => p.split('.').try_fold(&mut *value, |v, k| v.get_mut(k)),
    };
    match target.and_then(Value::as_object_mut) {
        Some(obj) => obj.remove(last).is_some(),
        None => false,
    }
}

fn token(label: &str) -> ExitCode {
    let mut bytes = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if let Err(e) = read {
        eprintln!("cannot read /dev/urandom: {e}");
        return ExitCode::FAILURE;
    }
    use base64::Engine;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    println!("token: {token}");
    println!(
        "{}",
        serde_json::json!({"label": label, "sha256": sha256_hex(&token)})
    );
    ExitCode::SUCCESS
}

const PREVIEW_USAGE: &str = "usage: scim-config adopt-preview --site-users FILE --idp-export FILE [--config PLUGIN.json] [--service-username NAME] [--json]
  --site-users   the site's JSON:API user list pages (a JSON array of documents), as scripts/adopt-preview reads them
  --idp-export   the IdP's users: a CSV export with an `email` column (JumpCloud's), or a JSON array of SCIM users
  --config       the gateway's plugin configuration (its allowed_roles and role_grants decide which accounts are protected)
  --service-username  the service account (default: $DRUPAL_USERNAME, else scim-service)";

/// Who an `adopt: "mail"` gateway would adopt, create, refuse as protected, or see collide;
/// the rules are the filter's own (`drupal::adopt`). Reads files only; writes nothing.
fn adopt_preview(args: &[String]) -> ExitCode {
    use envoy_scim_drupal::drupal::adopt_preview as preview;
    let mut opts = std::collections::HashMap::new();
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--site-users" | "--idp-export" | "--config" | "--service-username" => {
                let Some(v) = it.next() else {
                    eprintln!("{a} needs a value\n{PREVIEW_USAGE}");
                    return ExitCode::from(2);
                };
                opts.insert(a.trim_start_matches('-').to_string(), v.clone());
            }
            _ => {
                eprintln!("{PREVIEW_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(site), Some(export)) = (opts.get("site-users"), opts.get("idp-export")) else {
        eprintln!("{PREVIEW_USAGE}");
        return ExitCode::from(2);
    };
    let service = opts
        .get("service-username")
        .cloned()
        .or_else(|| {
            std::env::var("DRUPAL_USERNAME")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| "scim-service".into());
    let protection = match opts.get("config") {
        None => config::protection::Protection {
            service_username: service.clone(),
            writable_roles: config::protection::writable_roles(&[], &[]),
            service_uid: Default::default(),
        },
        Some(path) => {
            let env = |name: &str| {
                Some(if name.contains("USER") {
                    service.clone()
                } else {
                    "unused".to_string()
                })
            };
            let parsed = read_input(path)
                .map_err(|e| e.to_string())
                .and_then(|t| config::parse(t.as_bytes(), &env).map_err(|e| e.to_string()));
            match parsed {
                Ok((c, _)) => c.protection,
                Err(e) => {
                    eprintln!("{path}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let site_doc = read_input(site)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        .and_then(|v| preview::site_accounts(&v));
    let accounts = match site_doc {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{site}: {e}");
            return ExitCode::from(2);
        }
    };
    let people = match read_input(export)
        .map_err(|e| e.to_string())
        .and_then(|t| preview::parse_export(&t))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{export}: {e}");
            return ExitCode::from(2);
        }
    };
    let rows = preview::preview(&people, &accounts, &protection);
    let report = preview::report_json(&rows, &accounts);
    if json {
        println!("{report:#}");
    } else {
        print!("{}", preview::report_text(&report));
    }
    ExitCode::SUCCESS
}
