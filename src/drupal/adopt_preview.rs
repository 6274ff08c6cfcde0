//! The report of `scim-config adopt-preview`: for each person of an IdP's export, what an
//! `adopt: "mail"` gateway would do on the site, decided by the gateway's own rules
//! (`adopt::write_identity`, `adopt::classify`) over the site's accounts as JSON:API lists
//! them. No IO here: the command reads the files, `scripts/adopt-preview` reads the site.

use crate::config::protection::Protection;
use crate::drupal::adopt::{self, Verdict};
use crate::drupal::jsonapi::{self, DrupalUser};
use crate::scim::mapping::UserMapping;
use serde_json::{json, Map, Value};

/// One person of the IdP's export, as the IdP would send them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub user_name: String,
    pub email: Option<String>,
}

/// What the gateway would do with one person.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Verdict(Verdict),
    /// The gateway would refuse the person's requests (400), e.g. a userName that is not
    /// their e-mail address.
    Invalid(String),
}

impl Outcome {
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Verdict(v) => v.word(),
            Outcome::Invalid(_) => "invalid",
        }
    }
}

/// The words of the report, in the order of its counts.
pub const WORDS: &[&str] = &[
    "adopt",
    "linked",
    "create",
    "protected",
    "collide",
    "invalid",
];

/// An IdP export: a JSON array of SCIM users (or a ListResponse), or a CSV file with a header
/// naming an `email` column (JumpCloud's user export; JumpCloud sends the e-mail as
/// userName, so its `username` column is not what SCIM sees) and optionally `userName`.
pub fn parse_export(text: &str) -> Result<Vec<Person>, String> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let v: Value = serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON: {e}"))?;
        let list = match &v {
            Value::Array(a) => a,
            Value::Object(o) => o
                .get("Resources")
                .and_then(Value::as_array)
                .ok_or("a JSON export must be an array of SCIM users or a ListResponse")?,
            _ => return Err("a JSON export must be an array of SCIM users".into()),
        };
        return list
            .iter()
            .enumerate()
            .map(|(i, u)| scim_person(i, u))
            .collect();
    }
    parse_csv(trimmed)
}

fn scim_person(i: usize, u: &Value) -> Result<Person, String> {
    let user_name = u
        .get("userName")
        .and_then(Value::as_str)
        .ok_or(format!("user {i} has no userName"))?
        .to_string();
    let emails = u.get("emails").and_then(Value::as_array);
    let primary = emails.and_then(|list| {
        list.iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| list.first())
    });
    let email = primary
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Person { user_name, email })
}

fn parse_csv(text: &str) -> Result<Vec<Person>, String> {
    let mut rows = csv_rows(text).into_iter();
    let header = rows.next().ok_or("the CSV export is empty")?;
    let col = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    };
    let email_col = col(&["email", "e-mail", "mail", "email address"])
        .ok_or("the CSV export has no `email` column")?;
    // Exact case: JumpCloud's `username` is its own login, not the SCIM userName.
    let name_col = header.iter().position(|h| h.trim() == "userName");
    let mut out = Vec::new();
    for row in rows {
        if row.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let email = row
            .get(email_col)
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty());
        let user_name = name_col
            .and_then(|c| row.get(c))
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .or_else(|| email.clone())
            .unwrap_or_default();
        out.push(Person { user_name, email });
    }
    Ok(out)
}

/// RFC 4180 rows: quoted fields may hold commas, quotes (doubled) and line breaks.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The site's accounts from JSON:API list documents (`{"data": [...]}` each, or one array of
/// them); label-only entries (Drupal's anonymous user) are skipped.
pub fn site_accounts(pages: &Value) -> Result<Vec<DrupalUser>, String> {
    let docs: Vec<&Value> = match pages {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mapping = UserMapping::core();
    let mut out = Vec::new();
    for doc in docs {
        let data = doc
            .get("data")
            .and_then(Value::as_array)
            .ok_or("a Drupal page has no `data` array")?;
        for resource in data {
            if jsonapi::is_label_view(resource) {
                continue;
            }
            let user = jsonapi::parse_user(resource, &mapping).map_err(|e| e.detail)?;
            out.push(user);
        }
    }
    Ok(out)
}

/// What the gateway would do with each person.
pub fn preview(
    people: &[Person],
    accounts: &[DrupalUser],
    protection: &Protection,
) -> Vec<(String, Outcome)> {
    people
        .iter()
        .map(|p| {
            let mut fields = Map::new();
            fields.insert("name".into(), Value::String(p.user_name.clone()));
            if let Some(e) = &p.email {
                fields.insert("mail".into(), Value::String(e.clone()));
            }
            let shown = p.email.clone().unwrap_or_else(|| p.user_name.clone());
            match adopt::write_identity(&mut fields) {
                Ok(Some(identity)) => (
                    identity.clone(),
                    Outcome::Verdict(adopt::classify(&identity, accounts, protection)),
                ),
                Ok(None) => (shown, Outcome::Invalid("no userName or e-mail".into())),
                Err(e) => (shown, Outcome::Invalid(e.detail)),
            }
        })
        .collect()
}

/// The report as JSON: one entry per person and the counts per outcome.
pub fn report_json(rows: &[(String, Outcome)], accounts: &[DrupalUser]) -> Value {
    let name_of = |uid: u64| {
        accounts
            .iter()
            .find(|a| a.uid == uid)
            .map(|a| a.name().to_string())
    };
    let people: Vec<Value> = rows
        .iter()
        .map(|(identity, o)| {
            let mut v = Map::new();
            v.insert("identity".into(), json!(identity));
            v.insert("outcome".into(), json!(o.word()));
            let (uid, reason) = match o {
                Outcome::Verdict(Verdict::Adopt { uid } | Verdict::Linked { uid }) => {
                    (Some(*uid), None)
                }
                Outcome::Verdict(Verdict::Protected { uid, reason }) => {
                    (Some(*uid), Some(reason.clone()))
                }
                Outcome::Verdict(Verdict::Conflict { detail }) => (None, Some(detail.clone())),
                Outcome::Invalid(why) => (None, Some(why.clone())),
                Outcome::Verdict(Verdict::Create) => (None, None),
            };
            if let Some(uid) = uid {
                v.insert("uid".into(), json!(uid));
                v.insert("drupal_name".into(), json!(name_of(uid)));
            }
            if let Some(r) = reason {
                v.insert("reason".into(), json!(r));
            }
            Value::Object(v)
        })
        .collect();
    let counts: Map<String, Value> = WORDS
        .iter()
        .map(|w| {
            let n = rows.iter().filter(|(_, o)| o.word() == *w).count();
            (w.to_string(), json!(n))
        })
        .collect();
    json!({"people": people, "counts": counts, "site_accounts": accounts.len()})
}

/// The report as text: one line per person, then the counts.
pub fn report_text(report: &Value) -> String {
    let mut out = String::new();
    for p in report
        .get("people")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
        let mut line = format!("{:<10} {}", s("outcome"), s("identity"));
        if let Some(uid) = p.get("uid").and_then(Value::as_u64) {
            line.push_str(&format!(" -> uid {uid} ({})", s("drupal_name")));
        }
        if !s("reason").is_empty() {
            line.push_str(&format!(": {}", s("reason")));
        }
        out.push_str(&line);
        out.push('\n');
    }
    let counts = report.get("counts").and_then(Value::as_object);
    let summary: Vec<String> = WORDS
        .iter()
        .map(|w| {
            let n = counts
                .and_then(|c| c.get(*w))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            format!("{w}={n}")
        })
        .collect();
    out.push_str(&format!(
        "counts: {} (site accounts read: {})\n",
        summary.join(" "),
        report
            .get("site_accounts")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_in_csv_and_json() {
        let csv = "firstname,lastname,username,email\r\nJohn,Smith,jsmith,JSmith@corp.example\n\"Doe, Jane\",x,jd,\"jane@corp.example\"\n,,,\n";
        let people = parse_export(csv).unwrap();
        assert_eq!(
            people,
            vec![
                Person {
                    user_name: "JSmith@corp.example".into(),
                    email: Some("JSmith@corp.example".into())
                },
                Person {
                    user_name: "jane@corp.example".into(),
                    email: Some("jane@corp.example".into())
                },
            ]
        );
        let list = r#"{"Resources": [{"userName": "a@x.example", "emails": [{"value": "b@x.example"}, {"value": "a@x.example", "primary": true}]}]}"#;
        assert_eq!(
            parse_export(list).unwrap(),
            vec![Person {
                user_name: "a@x.example".into(),
                email: Some("a@x.example".into())
            }]
        );
        assert!(parse_export("name\nx\n").is_err());
    }

    #[test]
    fn the_report_uses_the_gateways_rules() {
        let resource = |uid: u64, name: &str, mail: &str, roles: &[&str]| {
            json!({"type": "user--user", "id": format!("00000000-0000-4000-8000-00000000000{uid}"),
                "attributes": {"drupal_internal__uid": uid, "name": name, "mail": mail, "status": true,
                    "created": "2020-01-01T00:00:00+00:00", "changed": "2020-01-01T00:00:00+00:00"},
                "relationships": {"roles": {"data": roles.iter().map(|r| json!({"type": "user_role--user_role", "id": "x", "meta": {"drupal_internal__target_id": r}})).collect::<Vec<_>>()}}})
        };
        let pages = json!([{"data": [
            {"type": "user--user", "id": "a", "attributes": {"display_name": "Anonymous"}},
            resource(1, "admin", "Admin@corp.example", &[]),
            resource(5, "jsmith", "jsmith@corp.example", &[]),
        ]}]);
        let accounts = site_accounts(&pages).unwrap();
        assert_eq!(accounts.len(), 2);
        let protection = Protection {
            service_username: "scim-service".into(),
            writable_roles: vec!["authenticated".into()],
            service_uid: Default::default(),
        };
        let people = [
            Person {
                user_name: "JSMITH@corp.example".into(),
                email: None,
            },
            Person {
                user_name: "admin@corp.example".into(),
                email: Some("admin@corp.example".into()),
            },
            Person {
                user_name: "new@corp.example".into(),
                email: None,
            },
            Person {
                user_name: "jdoe".into(),
                email: Some("jdoe@corp.example".into()),
            },
        ];
        let rows = preview(&people, &accounts, &protection);
        let report = report_json(&rows, &accounts);
        let words: Vec<&str> = report["people"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(words, ["adopt", "protected", "create", "invalid"]);
        assert_eq!(report["people"][0]["drupal_name"], "jsmith");
        assert_eq!(report["counts"]["adopt"], 1);
        let text = report_text(&report);
        assert!(
            text.contains("adopt      JSMITH@corp.example -> uid 5 (jsmith)"),
            "{text}"
        );
        assert!(
            text.contains("counts: adopt=1 linked=0 create=1 protected=1 collide=0 invalid=1"),
            "{text}"
        );
    }
}
