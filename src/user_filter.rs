//! SCIM filters on Users, translated into Drupal JSON:API filter conditions. What Drupal
//! cannot answer faithfully (its collations differ per database) is also checked by the
//! gateway on the rows Drupal returns. A filter that cannot be translated is an
//! `invalidFilter` error, never a silently empty list: IdPs read "no such user" and create
//! duplicates.

use crate::discovery::USER_SCHEMA;
use crate::drupal::{is_uuid, DrupalUser};
use crate::error::ScimError;
use crate::filter::{parse_filter, AttrPath, CompValue, CompareOp, Filter};

/// The Drupal side of a user query.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UserQuery {
    /// `filter[…]` query pairs for Drupal (top-level conditions are ANDed by Drupal).
    pub conditions: Vec<(String, String)>,
    /// Checks the gateway applies to Drupal's rows.
    pub post: Vec<PostCheck>,
    /// The filter can match no user at all (e.g. an id that is not a Drupal UUID).
    pub matches_nothing: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PostCheck {
    /// `userName` is `caseExact: false`: equal ignoring case, in any script.
    NameEquals(String),
    /// `emails.value` is `caseExact: false`; Drupal's `mail` comparison depends on the database.
    MailEquals(String),
}

impl UserQuery {
    pub fn needs_post_filter(&self) -> bool {
        !self.post.is_empty()
    }

    pub fn post_filter_accepts(&self, user: &DrupalUser) -> bool {
        self.post.iter().all(|check| match check {
            PostCheck::NameEquals(v) => caseless_eq(&user.name, v),
            PostCheck::MailEquals(v) => user.mail.as_deref().is_some_and(|m| caseless_eq(m, v)),
        })
    }

    fn add_condition(&mut self, path: &str, operator: &str, value: &str) {
        let key = format!("scim_c{}", self.conditions.len());
        for (part, v) in [("path", path), ("operator", operator), ("value", value)] {
            self.conditions
                .push((format!("filter[{key}][condition][{part}]"), v.to_string()));
        }
    }
}

fn caseless_eq(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// Translates the `filter` query parameter.
pub fn translate(filter: &str) -> Result<UserQuery, ScimError> {
    let parsed = parse_filter(filter)
        .map_err(|e| ScimError::invalid_filter(format!("The filter is not valid: {e}.")))?;
    let mut query = UserQuery::default();
    add(&mut query, &parsed)?;
    Ok(query)
}

const SUPPORTED: &str = "supported are `userName eq`, `emails eq` (or `emails.value eq`, \
`emails[value eq …]`), `id eq` and `active eq`, combined with `and`";

fn unsupported(what: &str) -> ScimError {
    ScimError::invalid_filter(format!(
        "The filter part `{what}` cannot be translated for Drupal; {SUPPORTED}."
    ))
}

fn check_schema(path: &AttrPath) -> Result<(), ScimError> {
    match &path.schema {
        Some(s) if !s.eq_ignore_ascii_case(USER_SCHEMA) => Err(ScimError::invalid_filter(format!(
            "The filter names schema `{s}`, which has no attributes on this server."
        ))),
        _ => Ok(()),
    }
}

fn describe(path: &AttrPath) -> String {
    match &path.sub_attr {
        Some(sub) => format!("{}.{sub}", path.attr),
        None => path.attr.clone(),
    }
}

fn add(query: &mut UserQuery, filter: &Filter) -> Result<(), ScimError> {
    match filter {
        Filter::And(a, b) => {
            add(query, a)?;
            add(query, b)
        }
        Filter::Compare { path, op, value } => {
            check_schema(path)?;
            add_comparison(query, path, *op, value)
        }
        Filter::ValuePath { attr, filter } if attr.is("emails") => match filter.as_ref() {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::Str(v),
            } if path.is("value") => {
                add_mail_equals(query, v);
                Ok(())
            }
            _ => Err(unsupported(&format!("{}[…]", attr.attr))),
        },
        Filter::ValuePath { attr, .. } => Err(unsupported(&format!("{}[…]", attr.attr))),
        Filter::Or(..) => Err(unsupported("or")),
        Filter::Not(..) => Err(unsupported("not")),
        Filter::Present(path) => Err(unsupported(&format!("{} pr", describe(path)))),
    }
}

fn add_mail_equals(query: &mut UserQuery, value: &str) {
    // STARTS_WITH is a LIKE on every database (case-insensitive); the gateway then keeps
    // exact (caseless) matches only.
    query.add_condition("mail", "STARTS_WITH", value);
    query.post.push(PostCheck::MailEquals(value.to_string()));
}

fn add_comparison(
    query: &mut UserQuery,
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
) -> Result<(), ScimError> {
    let what = describe(path);
    match (op, value) {
        (CompareOp::Eq, CompValue::Str(v)) if path.is("userName") => {
            query.add_condition("name", "=", v);
            query.post.push(PostCheck::NameEquals(v.clone()));
            Ok(())
        }
        (CompareOp::Eq, CompValue::Str(v))
            if path.is("emails") || path.is_sub("emails", "value") =>
        {
            add_mail_equals(query, v);
            Ok(())
        }
        (CompareOp::Eq, CompValue::Str(v)) if path.is("id") => {
            if is_uuid(v) {
                query.add_condition("id", "=", v);
            } else {
                query.matches_nothing = true;
            }
            Ok(())
        }
        (CompareOp::Eq, CompValue::Bool(b)) if path.is("active") => {
            query.add_condition("status", "=", if *b { "1" } else { "0" });
            Ok(())
        }
        (CompareOp::Eq, _) if path.is("userName") || path.is("emails") || path.is("id") => Err(
            ScimError::invalid_filter(format!("`{what}` must be compared with a string.")),
        ),
        (CompareOp::Eq, _) if path.is("active") => Err(ScimError::invalid_filter(
            "`active` must be compared with true or false.",
        )),
        (op, _) => Err(unsupported(&format!("{what} {}", op_name(op)))),
    }
}

fn op_name(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "eq",
        CompareOp::Ne => "ne",
        CompareOp::Co => "co",
        CompareOp::Sw => "sw",
        CompareOp::Ew => "ew",
        CompareOp::Gt => "gt",
        CompareOp::Ge => "ge",
        CompareOp::Lt => "lt",
        CompareOp::Le => "le",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScimType;

    fn user(name: &str, mail: Option<&str>) -> DrupalUser {
        DrupalUser {
            uuid: "u".into(),
            uid: 5,
            name: name.into(),
            mail: mail.map(str::to_string),
            status: true,
            created: String::new(),
            changed: String::new(),
        }
    }

    #[test]
    fn username_lookup_uses_drupal_and_a_caseless_check() {
        let q = translate(r#"userName eq "Jane@Example.com""#).unwrap();
        assert_eq!(
            q.conditions,
            vec![
                ("filter[scim_c0][condition][path]".into(), "name".into()),
                ("filter[scim_c0][condition][operator]".into(), "=".into()),
                (
                    "filter[scim_c0][condition][value]".into(),
                    "Jane@Example.com".into()
                ),
            ]
        );
        assert!(q.post_filter_accepts(&user("jane@example.com", None)));
        assert!(!q.post_filter_accepts(&user("jane@example.co", None)));
    }

    #[test]
    fn email_lookups_do_not_depend_on_the_database_collation() {
        for f in [
            r#"emails eq "A@B.org""#,
            r#"emails.value eq "A@B.org""#,
            r#"emails[value eq "A@B.org"]"#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:emails.value eq "A@B.org""#,
        ] {
            let q = translate(f).unwrap();
            assert_eq!(q.conditions[1].1, "STARTS_WITH", "{f}");
            assert!(q.post_filter_accepts(&user("x", Some("a@b.org"))), "{f}");
            assert!(
                !q.post_filter_accepts(&user("x", Some("a@b.org.uk"))),
                "{f}"
            );
            assert!(!q.post_filter_accepts(&user("x", None)), "{f}");
        }
    }

    #[test]
    fn ids_that_are_not_ours_match_nothing() {
        assert!(translate(r#"id eq "123""#).unwrap().matches_nothing);
        assert!(
            !translate(r#"id eq "7724f730-7aca-4819-aaee-90673a0141a4""#)
                .unwrap()
                .matches_nothing
        );
    }

    #[test]
    fn and_combines_conditions() {
        let q = translate(r#"userName eq "a" and active eq true"#).unwrap();
        assert_eq!(q.conditions.len(), 6);
        assert_eq!(q.conditions[5].1, "1");
    }

    #[test]
    fn untranslatable_filters_are_invalid_filter_errors() {
        for f in [
            r#"userName co "a""#,
            r#"userName eq "a" or userName eq "b""#,
            r#"not (userName eq "a")"#,
            r#"title pr"#,
            r#"displayName eq "x""#,
            r#"userName eq 5"#,
            r#"active eq "yes""#,
            r#"emails[type eq "work"]"#,
            r#"urn:example:x:userName eq "a""#,
            r#"userName eq"#,
            r#"userName eq "a"#,
        ] {
            let e = translate(f).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidFilter)),
                "{f}"
            );
        }
    }
}
