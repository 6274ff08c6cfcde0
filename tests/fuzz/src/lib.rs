//! The fuzz harness: what each cargo-fuzz target does with one input. The targets in
//! `fuzz_targets/` are one-line wrappers around these functions, and [`replay`] runs the seed
//! corpus and every saved crash input through them on stable, so a crash found once stays
//! fixed: in the main crate's `cargo test` (`tests/fuzz_replay.rs`, which includes this file,
//! so `scripts/test` and CI run it) and in this crate's `regressions/replay.rs`.
//!
//! The only property checked is the one the gateway promises: no input makes the sans-IO
//! core panic (a panic in Envoy kills the Wasm VM). Every `Err` is also turned into the
//! SCIM response the client would get, so error formatting is covered too.

use envoy_scim_drupal::drupal::groups::{
    parse_group_body, parse_memberships, parse_roles, parse_term,
};
use envoy_scim_drupal::drupal::jsonapi::{
    self, attach_groups, expect_document, map_failure, parse_user,
};
use envoy_scim_drupal::drupal::user_filter;
use envoy_scim_drupal::http::DrupalReply;
use envoy_scim_drupal::scim::error::ScimError;
use envoy_scim_drupal::scim::filter::{parse_attr_path, parse_filter, parse_patch_path};
use envoy_scim_drupal::scim::filter_eval::{element_matches, matches};
use envoy_scim_drupal::scim::mapping::UserMapping;
use envoy_scim_drupal::scim::patch;
use envoy_scim_drupal::scim::user::parse_user_body;
use envoy_scim_drupal::scim::values::get_ci;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::OnceLock;

pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const BASE_URL: &str = "https://gateway.example/scim/v2";
/// The groups configuration's defaults (`group::GroupsConfig`).
const VOCABULARY: &str = "scim_groups";
const MEMBERSHIP_FIELD: &str = "field_scim_groups";

/// Statuses `drupal_response` feeds every body to `map_failure` with: one for each of its
/// branches (several read the body), and one it has no branch for.
pub const FAILURE_STATUSES: &[u16] = &[400, 401, 403, 404, 405, 409, 422, 500, 503, 504];

/// A mapping with every kind of attribute the gateway maps: strings (case-insensitive and
/// case-exact), a boolean, integers, `name.*` sub-attributes, two typed `phoneNumbers`, a
/// typed integer `addresses` entry and enterprise-extension attributes.
pub fn mapping_config() -> Value {
    json!([
        {"scim": "name.givenName", "drupal": "field_given_name"},
        {"scim": "name.familyName", "drupal": "field_family_name"},
        {"scim": "displayName", "drupal": "field_display_name"},
        {"scim": "externalId", "drupal": "field_external_id"},
        {"scim": "title", "drupal": "field_title", "case_exact": true},
        {"scim": "userType", "drupal": "field_contractor", "type": "boolean"},
        {"scim": "phoneNumbers[type eq \"work\"].value", "drupal": "field_phone_work"},
        {"scim": "phoneNumbers[type eq \"mobile\"].value", "drupal": "field_phone_mobile"},
        {"scim": "addresses[type eq \"work\"].postalCode", "drupal": "field_zip", "type": "integer"},
        {"scim": format!("{ENTERPRISE}:employeeNumber"), "drupal": "field_employee_number"},
        {"scim": format!("{ENTERPRISE}:department"), "drupal": "field_department"},
        {"scim": format!("{ENTERPRISE}:costCenter"), "drupal": "field_cost_center", "type": "integer"}
    ])
}

/// The full mapping (built once per process).
pub fn mapping() -> &'static UserMapping {
    static M: OnceLock<UserMapping> = OnceLock::new();
    M.get_or_init(|| match UserMapping::from_config(Some(&mapping_config())) {
        Ok(m) => m,
        // A harness bug, not a finding: fail loudly on the first input.
        Err(e) => panic!("the fuzz mapping is not a valid configuration: {e:?}"),
    })
}

/// The core mapping (userName, emails, active only).
pub fn core_mapping() -> &'static UserMapping {
    static M: OnceLock<UserMapping> = OnceLock::new();
    M.get_or_init(UserMapping::core)
}

/// Drupal attribute values of a realistic, fully populated user.
pub fn full_drupal_user() -> Map<String, Value> {
    obj(json!({
        "name": "pat.patch@example.org",
        "mail": "pat.patch@example.org",
        "status": true,
        "field_given_name": "Pat",
        "field_family_name": "Patch",
        "field_display_name": "Pat Patch",
        "field_external_id": "00ujl29u0le5T6Aj10h7",
        "field_title": "Tester",
        "field_contractor": false,
        "field_phone_work": "+1 555 0111",
        "field_phone_mobile": "+1 555 0122",
        "field_zip": 94105,
        "field_employee_number": "E-100",
        "field_department": "QA",
        "field_cost_center": 4711
    }))
}

/// A user with only the core fields (so PATCH has to create every other attribute), and an
/// empty string where Drupal keeps one.
pub fn minimal_drupal_user() -> Map<String, Value> {
    obj(json!({
        "name": "Ünïcode User",
        "mail": "u@example.org",
        "status": false,
        "field_display_name": ""
    }))
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The SCIM views the filters are evaluated on.
fn scim_users() -> &'static [Map<String, Value>] {
    static U: OnceLock<Vec<Map<String, Value>>> = OnceLock::new();
    U.get_or_init(|| {
        vec![
            mapping().to_scim(&full_drupal_user()),
            mapping().to_scim(&minimal_drupal_user()),
        ]
    })
}

/// What a fuzz target does with one input.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (`fuzz_targets/<name>.rs`, `corpus/<name>/`,
/// `regressions/<name>/`) and what it does with one input.
pub const TARGETS: [(&str, Target); 4] = [
    ("filter_parser", filter_parser),
    ("patch_engine", patch_engine),
    ("request_body", request_body),
    ("drupal_response", drupal_response),
];

/// Runs every input saved for `target` under `fuzz_dir` (this crate's directory) through
/// `run`: the seed corpus `corpus/<target>/`, then the crash inputs `regressions/<target>/`,
/// each in file-name order. Returns how many it ran. Each input's path goes to stderr before it
/// runs, so the test output names the one that panicked; an unreadable input panics too.
pub fn replay(fuzz_dir: &Path, target: &str, run: Target) -> usize {
    let mut count: usize = 0;
    for dir in [
        fuzz_dir.join("corpus").join(target),
        fuzz_dir.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files.iter().filter(|f| f.is_file()) {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            eprintln!("{target}: {}", file.display());
            run(&data);
            count = count.saturating_add(1);
        }
    }
    count
}

/// Formats an error the way the client would get it.
fn respond(e: ScimError) {
    let _ = e.into_response();
}

/// `filter_parser`: the three SCIM path/filter parsers, the User filter translation into
/// Drupal conditions, and evaluation of what parses on SCIM users.
pub fn filter_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = parse_filter(text) {
        for user in scim_users() {
            let _ = matches(&f, user, mapping());
        }
        if let Some(user) = scim_users().first() {
            let _ = matches(&f, user, core_mapping());
        }
    }
    if let Ok(p) = parse_patch_path(text) {
        // A value-filter path (`phoneNumbers[type eq "work"]`): evaluate it on the elements of
        // the attribute it names, as PATCH does.
        if let Some(f) = &p.filter {
            for user in scim_users() {
                if let Some(Value::Array(list)) = get_ci(user, &p.attr.attr) {
                    for e in list.iter().filter_map(Value::as_object) {
                        let _ = element_matches(f, e, &p.attr.attr, mapping());
                    }
                }
            }
        }
        let _ = p.is_bare_schema();
        let _ = p.attr.to_string();
    }
    if let Ok(a) = parse_attr_path(text) {
        let _ = mapping().lookup(&a);
        let _ = a.to_string();
    }
    for m in [mapping(), core_mapping()] {
        match user_filter::translate(text, m) {
            Ok(q) => {
                if let Some(f) = &q.post_filter {
                    for user in scim_users() {
                        let _ = matches(f, user, m);
                    }
                }
            }
            Err(e) => respond(e),
        }
    }
}

/// `patch_engine`: a PatchOp body parsed, applied to realistic SCIM users, and the result read
/// back into Drupal fields, as `PATCH /Users/{id}` does.
pub fn patch_engine(data: &[u8]) {
    let ops = match patch::parse(data) {
        Ok(ops) => ops,
        Err(e) => return respond(e),
    };
    let cases = [
        (mapping(), full_drupal_user()),
        (mapping(), minimal_drupal_user()),
        (core_mapping(), full_drupal_user()),
    ];
    for (m, drupal_fields) in cases {
        let mut resource = m.to_scim(&drupal_fields);
        match patch::apply(&mut resource, &ops, m) {
            Ok(_applied) => match m.from_scim(&resource) {
                Ok(_fields) => {}
                Err(e) => respond(e),
            },
            Err(e) => respond(e),
        }
    }
}

/// `request_body`: `POST /Users` and `PUT /Users/{id}` bodies (both mappings), and
/// `POST`/`PUT /Groups` bodies.
pub fn request_body(data: &[u8]) {
    for m in [mapping(), core_mapping()] {
        for replace in [false, true] {
            if let Err(e) = parse_user_body(data, m, replace) {
                respond(e);
            }
        }
    }
    if let Err(e) = parse_group_body(data) {
        respond(e);
    }
}

/// `drupal_response`: a Drupal answer body through `map_failure` with each of
/// `FAILURE_STATUSES` and through `expect_document` as a success; if it is JSON, every
/// resource of `data` through `parse_user` (and the SCIM view, ETag and group membership
/// built from it) and the group/role readers.
pub fn drupal_response(data: &[u8]) {
    respond(map_failure(&DrupalReply::Failed));
    let mut reply = DrupalReply::Answer {
        status: 0,
        body: data.to_vec(),
    };
    for &s in FAILURE_STATUSES {
        if let DrupalReply::Answer { status, .. } = &mut reply {
            *status = s;
        }
        respond(map_failure(&reply));
    }
    // The success paths: a document expected (200/201), and a body-less answer (204).
    for (s, ok) in [(200u16, &[200u16, 201][..]), (204, &[204])] {
        if let DrupalReply::Answer { status, .. } = &mut reply {
            *status = s;
        }
        if let Err(e) = expect_document(&reply, ok) {
            respond(e);
        }
    }
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let included: Vec<Value> = doc
        .get("included")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let resources: Vec<&Value> = match doc.get("data") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    for resource in resources {
        let _ = jsonapi::is_anonymous_label(resource);
        for m in [mapping(), core_mapping()] {
            match parse_user(resource, m) {
                Ok(mut user) => {
                    let _ = user.is_retired();
                    let _ = user.version(m);
                    attach_groups(&mut user, resource, MEMBERSHIP_FIELD, &included);
                    let scim = user.to_scim(m, BASE_URL);
                    // What a PATCH would read back from this user.
                    if let Err(e) = m.from_scim(&scim) {
                        respond(e);
                    }
                }
                Err(e) => respond(e),
            }
        }
        if let Some(term) = parse_term(resource, VOCABULARY) {
            let _ = term.to_scim(BASE_URL, Some(&[]));
        }
    }
    let memberships = parse_memberships(&doc, MEMBERSHIP_FIELD);
    let _ = memberships.group_names();
    let _ = parse_roles(&doc);
}
