//! Case-insensitive uniqueness of `userName` and e-mail, whatever the database. Drupal's own
//! check compares with LIKE and then PHP's ASCII `strtolower` (10.2+; `=` on `mail` before),
//! so SQLite lets `JOSÉ@x` beside `josé@x` (and 10.3 `ADMIN@x` beside `admin@x`), while
//! MariaDB's accent-insensitive unique key on `name` turns `jose` beside `José` into a 500.
//! Before a write that gives an account a new name or address, the gateway reads the
//! accounts that could clash (one Drupal call, a superset under every collation) and refuses
//! with 409 `uniqueness` what SCIM calls equal (case-insensitive, never accent-insensitive)
//! and what the database's unique key would refuse anyway.

use crate::drupal::jsonapi::{self, DrupalUser};
use crate::drupal::query::DrupalQuery;
use crate::drupal::user_filter::any_equal_ignoring_case;
use crate::http::{DrupalCall, DrupalReply};
use crate::scim::error::ScimError;
use serde_json::{Map, Value};

/// The name and address a write would give an account, where they change other than in
/// case (a case change of one's own value cannot create a clash that was not there).
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The account being written (`None` for a create): it never clashes with itself.
    pub uid: Option<u64>,
    pub name: Option<String>,
    pub mail: Option<String>,
}

impl Claim {
    /// What `fields` (Drupal attributes of a create or update) claim against `current`, the
    /// account as read before an update; `None` when nothing needs checking.
    pub fn of(fields: &Map<String, Value>, current: Option<&DrupalUser>) -> Option<Claim> {
        let changed = |field: &str| {
            let new = fields.get(field).and_then(Value::as_str)?;
            let old = current
                .and_then(|u| u.fields.get(field))
                .and_then(Value::as_str);
            (old.map(str::to_lowercase) != Some(new.to_lowercase())).then(|| new.to_string())
        };
        let claim = Claim {
            uid: current.map(|u| u.uid),
            name: changed("name"),
            mail: changed("mail"),
        };
        (claim.name.is_some() || claim.mail.is_some()).then_some(claim)
    }

    /// One page of the accounts whose name or address could equal the claim's: names by
    /// `=` (LIKE) and `IN` (the column's collation), addresses by LIKE patterns. Retired
    /// and blocked accounts count too: their names and addresses are still taken in Drupal.
    pub fn candidates(&self, jsonapi: &str) -> DrupalCall {
        let mut pairs = Vec::new();
        if let Some(n) = &self.name {
            pairs.push(("name", n.as_str()));
        }
        if let Some(m) = &self.mail {
            pairs.push(("mail", m.as_str()));
        }
        let mut q = DrupalQuery::with_conditions(&any_equal_ignoring_case(&pairs));
        jsonapi::push_auth_guard(&mut q);
        q.push("fields[user--user]", "name,mail,drupal_internal__uid")
            .push("page[limit]", &jsonapi::DRUPAL_PAGE_MAX.to_string());
        DrupalCall {
            method: "GET",
            path: format!("{jsonapi}/user/user{}", q.build()),
            content_type: None,
            body: None,
        }
    }

    /// The 409 for the first candidate the claim clashes with, if any. Drupal's page holds
    /// at most 50 candidates, far more than equal names and addresses can produce; should
    /// a very unspecific address (no ASCII besides `@` and the domain) match more, the
    /// first 50 are checked and Drupal's own check stands behind the rest.
    pub fn verdict(&self, reply: &DrupalReply) -> Result<(), ScimError> {
        let doc = jsonapi::expect_document(reply, &[200])?;
        let rows = doc
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| ScimError::bad_gateway("Drupal's user list has no `data` array."))?;
        let mut collated = false;
        for row in rows {
            let attr = |k: &str| row.pointer(&format!("/attributes/{k}"));
            let uid = attr("drupal_internal__uid").and_then(Value::as_u64);
            if uid.is_none() || uid == self.uid || uid == Some(0) {
                continue;
            }
            let text = |k: &str| attr(k).and_then(Value::as_str).unwrap_or_default();
            if let Some(n) = &self.name {
                if let Some(e) = clash("userName", n, text("name")) {
                    return Err(e);
                }
                collated |= same_letters(n, text("name"));
            }
            if let Some(m) = &self.mail {
                if let Some(e) = clash("emails", m, text("mail")) {
                    return Err(e);
                }
            }
        }
        match (&self.name, collated) {
            (Some(n), true) => Err(ScimError::conflict(format!(
                "userName `{n}`: another account's userName differs from it only in accents (and perhaps case); \
SCIM tells them apart, but Drupal's database compares names without accents and cannot hold both. Choose another userName."
            ))),
            _ => Ok(()),
        }
    }
}

/// The 409 when `existing` equals `wanted` ignoring case.
fn clash(attribute: &str, wanted: &str, existing: &str) -> Option<ScimError> {
    if existing.is_empty() || existing.to_lowercase() != wanted.to_lowercase() {
        return None;
    }
    let how = if existing == wanted {
        "already has it"
    } else {
        "has it in another case"
    };
    Some(ScimError::conflict(format!(
        "{attribute} `{wanted}`: another account {how}; {attribute} values are unique regardless of case."
    )))
}

/// Whether two names are equal once accents are taken off their letters (and case ignored):
/// what MariaDB's `utf8mb4_general_ci` does for the Latin letters below. Names that differ
/// otherwise are left to Drupal, whose unique key answers for the rest.
fn same_letters(a: &str, b: &str) -> bool {
    let bare = |s: &str| -> String {
        s.chars()
            .flat_map(char::to_lowercase)
            .map(base_letter)
            .collect()
    };
    !b.is_empty() && bare(a) == bare(b)
}

/// The unaccented letter of a lower-case Latin letter with a diacritic (Latin-1 Supplement
/// and Latin Extended-A), `ß` as `s` as MariaDB has it; any other character unchanged.
fn base_letter(c: char) -> char {
    const TABLE: &[(&str, char)] = &[
        ("àáâãäåāăą", 'a'),
        ("çćĉċč", 'c'),
        ("ďđ", 'd'),
        ("èéêëēĕėęě", 'e'),
        ("ĝğġģ", 'g'),
        ("ĥħ", 'h'),
        ("ìíîïĩīĭįı", 'i'),
        ("ĵ", 'j'),
        ("ķ", 'k'),
        ("ĺļľŀł", 'l'),
        ("ñńņňŉ", 'n'),
        ("òóôõöøōŏő", 'o'),
        ("ŕŗř", 'r'),
        ("śŝşšſß", 's'),
        ("ţťŧ", 't'),
        ("ùúûüũūŭůűų", 'u'),
        ("ŵ", 'w'),
        ("ýÿŷ", 'y'),
        ("źżž", 'z'),
    ];
    TABLE
        .iter()
        .find(|(accented, _)| accented.contains(c))
        .map_or(c, |(_, base)| *base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use serde_json::json;

    fn claim(name: Option<&str>, mail: Option<&str>) -> Claim {
        Claim {
            uid: Some(7),
            name: name.map(str::to_string),
            mail: mail.map(str::to_string),
        }
    }

    fn rows(rows: &[(u64, &str, &str)]) -> DrupalReply {
        let data: Vec<Value> = rows
            .iter()
            .map(|(uid, name, mail)| json!({"type": "user--user", "attributes": {"drupal_internal__uid": uid, "name": name, "mail": mail}}))
            .collect();
        DrupalReply::Answer {
            status: 200,
            body: serde_json::to_vec(&json!({"data": data})).unwrap(),
        }
    }

    #[test]
    fn only_values_that_change_other_than_in_case_are_claimed() {
        let mut fields = Map::new();
        fields.insert("name".into(), json!("Jane"));
        fields.insert("mail".into(), json!("JANE@x.org"));
        let create = Claim::of(&fields, None).unwrap();
        assert_eq!(
            (create.name.as_deref(), create.mail.as_deref()),
            (Some("Jane"), Some("JANE@x.org"))
        );
        let user = DrupalUser {
            uuid: "u".into(),
            uid: 7,
            created: String::new(),
            changed: String::new(),
            fields: fields.clone(),
            groups: None,
            retired_marker: false,
            roles: None,
        };
        let mut same = Map::new();
        same.insert("name".into(), json!("JANE"));
        same.insert("mail".into(), json!("jane@x.org"));
        assert_eq!(Claim::of(&same, Some(&user)), None);
        same.insert("mail".into(), json!("j@x.org"));
        assert_eq!(
            Claim::of(&same, Some(&user)),
            Some(claim(None, Some("j@x.org")))
        );
    }

    #[test]
    fn a_value_equal_ignoring_case_in_another_account_is_409() {
        let c = claim(Some("José.x"), Some("ADMIN@EXAMPLE.COM"));
        let e = c
            .verdict(&rows(&[(1, "admin", "admin@example.com")]))
            .unwrap_err();
        assert_eq!((e.status, e.scim_type), (409, Some(ScimType::Uniqueness)));
        assert!(
            e.detail.contains("emails") && e.detail.contains("another case"),
            "{}",
            e.detail
        );
        let e = c.verdict(&rows(&[(3, "JOSÉ.X", "j@x")])).unwrap_err();
        assert!(
            e.detail.starts_with("userName") && e.detail.contains("another case"),
            "{}",
            e.detail
        );
        // The account itself, and Drupal's supersets (another address, an accented address).
        assert!(c
            .verdict(&rows(&[(7, "josé.x", "admin@example.com")]))
            .is_ok());
        assert!(c
            .verdict(&rows(&[
                (4, "other", "admin@example.com.au"),
                (5, "x", "ädmin@example.com")
            ]))
            .is_ok());
    }

    #[test]
    fn a_name_equal_only_without_accents_is_409_naming_the_database() {
        let c = claim(Some("jose.x"), None);
        let e = c.verdict(&rows(&[(3, "José.X", "a@x")])).unwrap_err();
        assert_eq!(e.status, 409);
        assert!(
            e.detail.contains("accents") && !e.detail.contains("same time"),
            "{}",
            e.detail
        );
        assert!(claim(Some("strase"), None)
            .verdict(&rows(&[(3, "straße", "a@x")]))
            .is_err());
        assert!(claim(Some("jose.y"), None)
            .verdict(&rows(&[(3, "José.X", "a@x")]))
            .is_ok());
    }

    #[test]
    fn the_candidates_query_asks_for_names_and_addresses_at_once() {
        let call = claim(Some("JOSÉ"), Some("a@b.org")).candidates("/jsonapi");
        let path = call.path.replace("%5B", "[").replace("%5D", "]");
        assert!(path.starts_with("/jsonapi/user/user?"), "{path}");
        for part in [
            "[conjunction]=OR",
            "[operator]=IN",
            "[value][0]=JOS",
            "[operator]=STARTS_WITH",
            "page[limit]=50",
        ] {
            assert!(path.contains(part), "{part} in {path}");
        }
    }
}
