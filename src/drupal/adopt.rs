//! Adopting existing accounts by e-mail (`adopt: "mail"`): which Drupal account an IdP's
//! person is, decided from the accounts that carry the address as mail or as login name.
//! Pure, so the gateway's flow and `scim-config adopt-preview` apply the same rules: the
//! preview can never promise what the gateway would then refuse.

use crate::config::protection::Protection;
use crate::drupal::jsonapi::DrupalUser;
use crate::scim::error::ScimError;
use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::USER_SCHEMA;
use serde_json::{Map, Value};

/// What the gateway does with one IdP identity (an e-mail address).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No account has the address: a create makes one, a lookup finds nobody.
    Create,
    /// The account whose login name and mail both are the address (made by SCIM, or named
    /// so by hand): the IdP's person, nothing to adopt.
    Linked { uid: u64 },
    /// An account with another login name has the address: it is the person's account.
    Adopt { uid: u64 },
    /// The account with the address may not be written by SCIM (uid 1, the service account,
    /// roles the gateway does not manage): never adopted.
    Protected { uid: u64, reason: String },
    /// More than one account could be meant: never a guess.
    Conflict { detail: String },
}

impl Verdict {
    /// The account the identity resolves to, when it may be managed.
    pub fn uid(&self) -> Option<u64> {
        match self {
            Verdict::Linked { uid } | Verdict::Adopt { uid } => Some(*uid),
            _ => None,
        }
    }

    /// The 409 a lookup or create gets for a protected account or a conflict.
    pub fn refusal(&self) -> Option<ScimError> {
        match self {
            Verdict::Protected { uid, reason } => Some(ScimError::conflict(format!(
                "The e-mail address belongs to Drupal account uid {uid}, which is never adopted: {reason}"
            ))),
            Verdict::Conflict { detail } => Some(ScimError::conflict(detail.clone())),
            _ => None,
        }
    }

    /// The report word of `scim-config adopt-preview`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Create => "create",
            Verdict::Linked { .. } => "linked",
            Verdict::Adopt { .. } => "adopt",
            Verdict::Protected { .. } => "protected",
            Verdict::Conflict { .. } => "collide",
        }
    }
}

fn mail_of(u: &DrupalUser) -> &str {
    u.fields
        .get("mail")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// SCIM compares userName and e-mails without case; accents stay significant.
pub fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && a.to_lowercase() == b.to_lowercase()
}

/// Decides which account `identity` (the IdP's userName, an e-mail address) is, among
/// `accounts` (any superset of the accounts whose mail or login name is the address; retired
/// accounts are ignored).
pub fn classify(identity: &str, accounts: &[DrupalUser], protection: &Protection) -> Verdict {
    let live = || accounts.iter().filter(|u| !u.is_retired());
    let by_mail: Vec<&DrupalUser> = live().filter(|u| same(mail_of(u), identity)).collect();
    let by_name: Vec<&DrupalUser> = live().filter(|u| same(u.name(), identity)).collect();
    let found = match (by_mail.as_slice(), by_name.as_slice()) {
        ([], []) => return Verdict::Create,
        ([a, b, ..], _) => {
            return Verdict::Conflict {
                detail: format!(
                    "Drupal accounts uid {} and uid {} both have this e-mail address (ignoring case); the gateway does not guess which is the person's: give one of them another address in Drupal.",
                    a.uid, b.uid
                ),
            }
        }
        ([m], names) => match names.iter().find(|n| n.uid != m.uid) {
            Some(n) => {
                return Verdict::Conflict {
                    detail: format!(
                        "The e-mail address is the mail of Drupal account uid {} and the login name of account uid {}; the gateway does not guess which is the person's: rename or re-address one of them in Drupal.",
                        m.uid, n.uid
                    ),
                }
            }
            None => *m,
        },
        ([], [n, ..]) if !mail_of(n).is_empty() => {
            return Verdict::Conflict {
                detail: format!(
                    "Drupal account uid {} has this address as its login name but another e-mail address; the gateway does not guess whether it is the person's: change its name or mail in Drupal.",
                    n.uid
                ),
            }
        }
        // An account named with the address and no mail at all: nobody else claims it.
        ([], [n, ..]) => *n,
    };
    if let Some(reason) = protection.refusal(found.uid, found.name(), found.roles.as_deref()) {
        return Verdict::Protected {
            uid: found.uid,
            reason,
        };
    }
    if same(found.name(), identity) {
        Verdict::Linked { uid: found.uid }
    } else {
        Verdict::Adopt { uid: found.uid }
    }
}

/// A filter that asks for one person by identity (`userName eq X`, `emails eq X`,
/// `emails.value eq X`, `emails[value eq X]`): the address.
pub fn identity_lookup(filter: &Filter) -> Option<&str> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::Str(v),
        } if is_core(path) => {
            let user_name = path.attr.eq_ignore_ascii_case("userName") && path.sub_attr.is_none();
            let email = path.attr.eq_ignore_ascii_case("emails")
                && path
                    .sub_attr
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("value"));
            (user_name || email).then_some(v.as_str())
        }
        Filter::ValuePath { attr, filter }
            if is_core(attr)
                && attr.attr.eq_ignore_ascii_case("emails")
                && attr.sub_attr.is_none() =>
        {
            match filter.as_ref() {
                Filter::Compare {
                    path,
                    op: CompareOp::Eq,
                    value: CompValue::Str(v),
                } if path.schema.is_none()
                    && path.attr.eq_ignore_ascii_case("value")
                    && path.sub_attr.is_none() =>
                {
                    Some(v.as_str())
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn is_core(path: &AttrPath) -> bool {
    path.schema
        .as_deref()
        .is_none_or(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
}

/// With adopting on, a user's SCIM userName is its e-mail address: every other filter
/// naming `userName` is about the address (`emails.value`), so that a filter and the
/// resources it returns agree. Returns the filter in SCIM syntax, or `None` when it names no
/// userName (then it is used as given).
pub fn filter_on_mail(filter: &Filter) -> Option<String> {
    fn walk(f: &Filter, changed: &mut bool) -> Filter {
        let path = |p: &AttrPath, changed: &mut bool| {
            if is_core(p) && p.attr.eq_ignore_ascii_case("userName") && p.sub_attr.is_none() {
                *changed = true;
                AttrPath {
                    schema: None,
                    attr: "emails".into(),
                    sub_attr: Some("value".into()),
                }
            } else {
                p.clone()
            }
        };
        match f {
            Filter::Compare { path: p, op, value } => Filter::Compare {
                path: path(p, changed),
                op: *op,
                value: value.clone(),
            },
            Filter::Present(p) => Filter::Present(path(p, changed)),
            Filter::And(a, b) => {
                Filter::And(Box::new(walk(a, changed)), Box::new(walk(b, changed)))
            }
            Filter::Or(a, b) => Filter::Or(Box::new(walk(a, changed)), Box::new(walk(b, changed))),
            Filter::Not(a) => Filter::Not(Box::new(walk(a, changed))),
            // Paths inside a value filter name sub-attributes, never userName.
            Filter::ValuePath { .. } => f.clone(),
        }
    }
    let mut changed = false;
    let out = walk(filter, &mut changed);
    changed.then(|| render(&out))
}

/// A filter back in SCIM syntax (fully parenthesised).
pub fn render(f: &Filter) -> String {
    match f {
        Filter::Compare { path, op, value } => {
            let v = match value {
                CompValue::Str(s) => serde_json::to_string(s).unwrap_or_default(),
                CompValue::Num(n) => n.clone(),
                CompValue::Bool(b) => b.to_string(),
                CompValue::Null => "null".into(),
            };
            format!("{path} {} {v}", op.as_str())
        }
        Filter::Present(p) => format!("{p} pr"),
        Filter::And(a, b) => format!("({}) and ({})", render(a), render(b)),
        Filter::Or(a, b) => format!("({}) or ({})", render(a), render(b)),
        Filter::Not(a) => format!("not ({})", render(a)),
        Filter::ValuePath { attr, filter } => format!("{attr}[{}]", render(filter)),
    }
}

/// The query that finds every account an identity could be: its login name or its mail is
/// the address (Drupal may return more; `classify` decides).
pub fn candidates_filter(identity: &str) -> String {
    let v = serde_json::to_string(identity).unwrap_or_default();
    format!("userName eq {v} or emails eq {v}")
}

/// The identity of a SCIM write with adopting on: the primary e-mail, which must be the
/// userName (ignoring case) when both are given; it becomes the `mail` of the write.
pub fn write_identity(fields: &mut Map<String, Value>) -> Result<Option<String>, ScimError> {
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mail = fields
        .get("mail")
        .and_then(Value::as_str)
        .map(str::to_string);
    let identity = match (name, mail) {
        (Some(n), Some(m)) if !same(&n, &m) => {
            return Err(ScimError::invalid_value(
                "With `adopt: mail` the gateway identifies people by e-mail: `userName` must be the primary e-mail address.",
            ))
        }
        (_, Some(m)) => m,
        (Some(n), None) => n,
        (None, None) => return Ok(None),
    };
    crate::scim::user::check_mail(&identity)?;
    let looks_like_mail = identity
        .rsplit_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if !looks_like_mail {
        return Err(ScimError::invalid_value(
            "With `adopt: mail` the gateway identifies people by e-mail: `userName` must be an e-mail address.",
        ));
    }
    fields.insert("mail".into(), Value::String(identity.clone()));
    Ok(Some(identity))
}

/// Shapes the Drupal fields of a write to an existing account: the login name stays what it
/// is unless the site opted in to renaming (then it follows the identity).
pub fn keep_login_name(fields: &mut Map<String, Value>, identity: Option<&str>, rename: bool) {
    match identity {
        Some(id) if rename => {
            fields.insert("name".into(), Value::String(id.to_string()));
        }
        _ => {
            fields.remove("name");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_filter;
    use serde_json::json;

    fn user(uid: u64, name: &str, mail: &str, roles: &[&str]) -> DrupalUser {
        let mut fields = Map::new();
        fields.insert("name".into(), json!(name));
        if !mail.is_empty() {
            fields.insert("mail".into(), json!(mail));
        }
        DrupalUser {
            uuid: format!("u{uid}"),
            uid,
            created: String::new(),
            changed: String::new(),
            fields,
            groups: None,
            retired_marker: false,
            roles: Some(roles.iter().map(|r| r.to_string()).collect()),
        }
    }

    fn protection() -> Protection {
        Protection {
            service_username: "scim-service".into(),
            writable_roles: vec!["authenticated".into()],
            service_uid: Default::default(),
        }
    }

    #[test]
    fn an_account_with_the_address_is_adopted_whatever_its_name_and_case() {
        let site = [
            user(5, "jsmith", "JSmith@Corp.example", &[]),
            user(6, "other", "other@corp.example", &[]),
        ];
        let p = protection();
        assert_eq!(
            classify("jsmith@corp.example", &site, &p),
            Verdict::Adopt { uid: 5 }
        );
        assert_eq!(classify("nobody@corp.example", &site, &p), Verdict::Create);
        let made = [user(7, "new@corp.example", "new@corp.example", &[])];
        assert_eq!(
            classify("NEW@corp.example", &made, &p),
            Verdict::Linked { uid: 7 }
        );
        // Accents are not case.
        assert_eq!(
            classify(
                "jose@corp.example",
                &[user(8, "jose", "josé@corp.example", &[])],
                &p
            ),
            Verdict::Create
        );
    }

    #[test]
    fn protected_accounts_are_never_adopted() {
        let p = protection();
        let v = classify(
            "admin@corp.example",
            &[user(1, "admin", "Admin@Corp.example", &[])],
            &p,
        );
        assert!(matches!(v, Verdict::Protected { uid: 1, .. }), "{v:?}");
        let e = v.refusal().unwrap();
        assert_eq!(e.status, 409);
        assert!(e.detail.contains("uid 1"), "{}", e.detail);
        let v = classify(
            "ed@corp.example",
            &[user(9, "ed", "ed@corp.example", &["administrator"])],
            &p,
        );
        assert!(matches!(v, Verdict::Protected { uid: 9, .. }), "{v:?}");
        let v = classify(
            "svc@corp.example",
            &[user(3, "scim-service", "svc@corp.example", &[])],
            &p,
        );
        assert!(matches!(v, Verdict::Protected { uid: 3, .. }), "{v:?}");
    }

    #[test]
    fn ambiguities_are_conflicts_naming_both_accounts() {
        let p = protection();
        let two_mails = [
            user(5, "a", "x@corp.example", &[]),
            user(6, "b", "X@CORP.example", &[]),
        ];
        let v = classify("x@corp.example", &two_mails, &p);
        let Verdict::Conflict { detail } = &v else {
            panic!("{v:?}")
        };
        assert!(
            detail.contains("uid 5") && detail.contains("uid 6"),
            "{detail}"
        );
        assert_eq!(v.refusal().unwrap().status, 409);
        let split = [
            user(5, "a", "x@corp.example", &[]),
            user(6, "X@corp.example", "b@corp.example", &[]),
        ];
        let v = classify("x@corp.example", &split, &p);
        assert!(
            matches!(&v, Verdict::Conflict { detail } if detail.contains("login name of account uid 6")),
            "{v:?}"
        );
        let name_only = [user(6, "x@corp.example", "b@corp.example", &[])];
        assert!(matches!(
            classify("x@corp.example", &name_only, &p),
            Verdict::Conflict { .. }
        ));
        let no_mail = [user(6, "x@corp.example", "", &[])];
        assert_eq!(
            classify("x@corp.example", &no_mail, &p),
            Verdict::Linked { uid: 6 }
        );
    }

    #[test]
    fn lookups_by_identity_are_recognised() {
        for f in [
            r#"userName eq "a@b.example""#,
            r#"emails eq "a@b.example""#,
            r#"emails.value eq "a@b.example""#,
            r#"emails[value eq "a@b.example"]"#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a@b.example""#,
        ] {
            assert_eq!(
                identity_lookup(&parse_filter(f).unwrap()),
                Some("a@b.example"),
                "{f}"
            );
        }
        for f in [
            r#"userName sw "a""#,
            r#"userName eq "a" and active eq true"#,
            r#"emails[type eq "work"]"#,
            r#"externalId eq "a@b.example""#,
        ] {
            assert_eq!(identity_lookup(&parse_filter(f).unwrap()), None, "{f}");
        }
    }

    #[test]
    fn other_filters_on_user_name_are_about_the_address() {
        let f = parse_filter(r#"userName sw "j" and not (userName pr) or active eq true"#).unwrap();
        let out = filter_on_mail(&f).unwrap();
        assert_eq!(
            out,
            r#"((emails.value sw "j") and (not (emails.value pr))) or (active eq true)"#
        );
        assert!(parse_filter(&out).is_ok());
        assert_eq!(
            filter_on_mail(&parse_filter("active eq true").unwrap()),
            None
        );
        let q = candidates_filter("a\"b@c.example");
        assert!(parse_filter(&q).is_ok(), "{q}");
    }

    #[test]
    fn writes_carry_the_address_and_keep_the_login_name() {
        let mut f = Map::new();
        f.insert("name".into(), json!("J@corp.example"));
        f.insert("mail".into(), json!("j@corp.example"));
        assert_eq!(
            write_identity(&mut f).unwrap().as_deref(),
            Some("j@corp.example")
        );
        keep_login_name(&mut f, Some("j@corp.example"), false);
        assert!(!f.contains_key("name"));
        keep_login_name(&mut f, Some("j@corp.example"), true);
        assert_eq!(f["name"], "j@corp.example");
        let mut f = Map::new();
        f.insert("name".into(), json!("k@corp.example"));
        write_identity(&mut f).unwrap();
        assert_eq!(f["mail"], "k@corp.example");
        let mut f = Map::new();
        f.insert("name".into(), json!("jsmith"));
        assert_eq!(write_identity(&mut f).unwrap_err().status, 400);
        let mut f = Map::new();
        f.insert("name".into(), json!("a@corp.example"));
        f.insert("mail".into(), json!("b@corp.example"));
        assert_eq!(write_identity(&mut f).unwrap_err().status, 400);
    }
}
