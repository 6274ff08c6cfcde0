//! An in-memory emulator of a Drupal 10.3 site's user-account HTTP APIs (JSON:API and core REST),
//! built to answer exactly as the recorded real site does (see `shared/drupal-transcripts`).

pub mod app;
pub mod client;
pub mod contract;
pub mod cost;
pub mod fields;
pub mod filter;
pub mod json;
pub mod jsonapi;
pub mod model;
pub mod query;
pub mod quirks;
pub mod rest;
pub mod server;
pub mod sql;
pub mod taxonomy;
pub mod users;
pub mod util;

use app::App;
use model::{Config, Settings};
use std::net::SocketAddr;
use std::sync::Arc;

/// Command-line options.
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: String,
    pub config: Config,
    pub log_limit: usize,
}

pub const USAGE: &str = "usage: drupal-emulator --listen 127.0.0.1:8080 [--admin-user admin]
       [--admin-pass-env VAR | --admin-pass-file PATH | --admin-pass admin-pass (shows in ps)]
       [--cancel-method user_cancel_block|user_cancel_block_unpublish|user_cancel_reassign|user_cancel_delete]
       [--mail-case-insensitive] [--collation sqlite|general_ci] [--read-only] [--latency-ms N] [--cost-model none|drupal] [--seed-limited]
       [--seed-users FILE (JSON array of {name, mail, roles, status, field_…})]
       [--site-name NAME] [--request-log-limit N]
       [--user-field NAME[:string|boolean|integer]]... [--second-run-fields] [--race-window-ms N]
       [--dynamic-page-cache] [--rest-user-resource basic_auth,cookie|basic_auth|cookie|off]
       [--drupal-version 10.3|10.6|11.4]";

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "127.0.0.1:8080".into(),
            config: Config {
                drupal_version: model::DrupalVersion::V10_3,
                admin_user: "admin".into(),
                admin_pass: "admin".into(),
                seed_limited: false,
                seed_users: Vec::new(),
                site_name: "RealDrupal".into(),
                settings: Settings {
                    cancel_method: "user_cancel_block".into(),
                    mail_case_insensitive: false,
                    read_only: false,
                    latency_ms: 0,
                    cost_model: cost::CostModel::None,
                    race_window_ms: 0,
                    second_run_fields: false,
                    user_fields: Vec::new(),
                    dynamic_page_cache: false,
                    rest_user_resource: rest::RestUserResource::BasicAuthAndCookie,
                    withheld_term_permissions: Vec::new(),
                    reverse_proxy_addresses: Vec::new(),
                    general_ci: false,
                    idle_close_ms: 0,
                    quirks: quirks::Quirks::default(),
                },
            },
            log_limit: 100_000,
        }
    }
}

pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a, None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i).cloned().ok_or(format!("{flag} needs a value"))
        };
        match flag {
            "--listen" => o.listen = value()?,
            "--admin-user" => o.config.admin_user = value()?,
            // On the command line the password is in /proc/PID/cmdline, which every local
            // user can read (`ps`): for manual use only. Scripts pass it with one of the next two.
            "--admin-pass" => o.config.admin_pass = value()?,
            "--admin-pass-env" => {
                let var = value()?;
                o.config.admin_pass =
                    std::env::var(&var).map_err(|e| format!("--admin-pass-env {var}: {e}"))?;
            }
            "--admin-pass-file" => {
                let path = value()?;
                o.config.admin_pass = read_secret_file(&path)
                    .map_err(|e| format!("--admin-pass-file {path}: {e}"))?;
            }
            "--cancel-method" => {
                let v = value()?;
                if !model::CANCEL_METHODS.contains(&v.as_str()) {
                    return Err(format!("unknown cancel method {v}"));
                }
                o.config.settings.cancel_method = v;
            }
            "--mail-case-insensitive" => o.config.settings.mail_case_insensitive = true,
            "--collation" => match value()?.as_str() {
                "sqlite" => o.config.settings.general_ci = false,
                "general_ci" => o.config.settings.general_ci = true,
                v => return Err(format!("unknown collation {v} (sqlite, general_ci)")),
            },
            "--read-only" => o.config.settings.read_only = true,
            "--latency-ms" => {
                o.config.settings.latency_ms = value()?
                    .parse()
                    .map_err(|_| "--latency-ms needs a number")?
            }
            "--cost-model" => {
                let v = value()?;
                o.config.settings.cost_model = cost::CostModel::parse(&v)
                    .ok_or(format!("unknown cost model {v} (none or drupal)"))?
            }
            "--seed-limited" => o.config.seed_limited = true,
            "--seed-users" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("--seed-users {path}: {e}"))?;
                o.config.seed_users = match serde_json::from_str(&text) {
                    Ok(serde_json::Value::Array(a)) => a,
                    _ => {
                        return Err(format!(
                            "--seed-users {path}: a JSON array of users expected"
                        ))
                    }
                };
            }
            "--user-field" => {
                let f = fields::UserField::parse_spec(&value()?)?;
                if f.is_ref() {
                    return Err("--user-field types are string, boolean and integer".into());
                }
                let list = &mut o.config.settings.user_fields;
                list.retain(|x| x.name != f.name);
                list.push(f);
            }
            "--second-run-fields" => o.config.settings.second_run_fields = true,
            "--race-window-ms" => {
                o.config.settings.race_window_ms = value()?
                    .parse()
                    .map_err(|_| "--race-window-ms needs a number")?
            }
            "--dynamic-page-cache" => o.config.settings.dynamic_page_cache = true,
            "--rest-user-resource" => {
                let v = value()?;
                o.config.settings.rest_user_resource =
                    rest::RestUserResource::parse(&v).ok_or(format!(
                    "unknown REST user resource {v} (basic_auth,cookie, basic_auth, cookie or off)"
                ))?
            }
            "--site-name" => o.config.site_name = value()?,
            "--drupal-version" => {
                let v = value()?;
                o.config.drupal_version = model::DrupalVersion::parse(&v)
                    .ok_or(format!("unknown Drupal version {v} (10.3, 10.6 or 11.4)"))?
            }
            "--request-log-limit" => {
                o.log_limit = value()?
                    .parse()
                    .map_err(|_| "--request-log-limit needs a number")?
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
        i += 1;
    }
    Ok(o)
}

/// A secret kept in a file: its content without one trailing line break (`\n` or `\r\n`).
fn read_secret_file(path: &str) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

/// Starts the emulator on its own thread and runtime (used by the contract runner).
/// Returns the bound address.
pub fn spawn(opts: Options) -> std::io::Result<(SocketAddr, Arc<App>)> {
    let app = Arc::new(App::new(opts.config.clone(), opts.log_limit));
    let std_listener = std::net::TcpListener::bind(&opts.listen)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let app2 = app.clone();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(_) => return,
        };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            server::serve(app2, listener, std::future::pending::<()>()).await;
        });
    });
    Ok((addr, app))
}
