//! Adopting existing accounts (`adopt: "mail"`): an IdP's lookup or create of a person
//! resolves, by e-mail, to the Drupal account the person already has (`drupal::adopt`
//! decides which; `adoption` holds the flow's state and how users are shown and written).
//! The steps here serve the user list (a lookup) and the user create.

use crate::config::Config;
use crate::drupal::adopt::{self, Verdict};
use crate::drupal::delivery::Expect;
use crate::drupal::jsonapi::{self, DRUPAL_PAGE_MAX};
use crate::drupal::user_filter;
use crate::flows::adoption::{AdoptFlow, AdoptedOn, Adoption, Purpose};
use crate::flows::discovery;
use crate::flows::flow::Cx;
use crate::flows::membership::user_lock_key;
use crate::flows::request::ListRequest;
use crate::flows::scope::Held;
use crate::flows::user_save::{self, Save};
use crate::flows::user_view::{read_page, read_user, user_calls, UserView};
use crate::http::{scim_json as json_response, DrupalCall, DrupalReply, Step};
use crate::scim::error::ScimError;
use crate::scim::filter::parse_filter;
use crate::scim::user::UserWrite;
use serde_json::Value;

/// What an adoption does next.
pub(crate) enum AdoptThen {
    /// Another page of candidates, or the write to the adopted account.
    Read(Box<AdoptFlow>, DrupalCall),
    /// Nobody to adopt: the create goes ahead as a new account.
    Save(Save, DrupalCall),
    Answer(Step),
}

/// With adopting on, a lookup by identity resolves like a create would (`Some`: the
/// candidate read is planned); any other filter naming userName is about the address.
pub(crate) fn lookup(
    config: &Config,
    list: &mut ListRequest,
) -> Result<Option<(AdoptFlow, DrupalCall)>, ScimError> {
    if !config.adopt.by_mail {
        return Ok(None);
    }
    let Some(text) = list.filter.as_deref() else {
        return Ok(None);
    };
    // A filter that does not parse is reported by the list's own translation.
    let Ok(parsed) = parse_filter(text) else {
        return Ok(None);
    };
    // Only an address can be an identity; `userName eq "bob"` is about addresses as any
    // other userName filter is (and finds nobody with the address "bob").
    if let Some(identity) = adopt::identity_lookup(&parsed).filter(|i| i.contains('@')) {
        let purpose = Purpose::Lookup {
            start_index: list.start_index,
            count: list.count,
        };
        return candidates(config, identity.to_string(), purpose).map(Some);
    }
    if let Some(rewritten) = adopt::filter_on_mail(&parsed) {
        list.filter = Some(rewritten);
    }
    Ok(None)
}

/// A create, once its name and address locks are held: which account is the person's.
pub(crate) fn create(
    config: &Config,
    write: UserWrite,
) -> Result<(AdoptFlow, DrupalCall), ScimError> {
    let identity = write
        .fields
        .get("mail")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    candidates(config, identity, Purpose::Create { write })
}

fn candidates(
    config: &Config,
    identity: String,
    purpose: Purpose,
) -> Result<(AdoptFlow, DrupalCall), ScimError> {
    let query = user_filter::translate(&adopt::candidates_filter(&identity), &config.mapping)?;
    let call = user_calls(config).list_users(&query.conditions, None, 0, DRUPAL_PAGE_MAX);
    let flow = AdoptFlow {
        identity,
        purpose,
        conditions: query.conditions,
        next_offset: DRUPAL_PAGE_MAX,
        candidates: Vec::new(),
    };
    Ok((flow, call))
}

/// A reply to an adoption's read or write. A create that adopts takes the account's lock
/// into `held`; an adoption made is set in `adopted`.
pub(crate) fn on_reply(
    mut flow: Box<AdoptFlow>,
    cx: &mut Cx<'_, '_>,
    view: &UserView,
    reply: &DrupalReply,
    held: &mut Held,
    adopted: &mut Option<Adoption>,
) -> Result<AdoptThen, ScimError> {
    let config = cx.config;
    if let Purpose::Writing { uid } = flow.purpose {
        let doc = jsonapi::expect_document(reply, &[200])?;
        let user = read_user(&doc, doc.get("data").unwrap_or(&Value::Null), config)?;
        *adopted = Some(Adoption {
            uid,
            on: AdoptedOn::Create,
        });
        return Ok(AdoptThen::Answer(view.user_response(
            201,
            &user,
            &config.mapping,
        )));
    }
    let page = read_page(reply, config)?;
    flow.candidates.extend(page.users);
    if page.has_next {
        if flow.next_offset
            >= config
                .limits
                .max_checked_pages
                .saturating_mul(DRUPAL_PAGE_MAX)
        {
            return Err(ScimError::conflict(
                "Too many Drupal accounts look like this address to decide which is the person's.",
            ));
        }
        let call = user_calls(config).list_users(
            &flow.conditions,
            None,
            flow.next_offset,
            DRUPAL_PAGE_MAX,
        );
        flow.next_offset = flow.next_offset.saturating_add(DRUPAL_PAGE_MAX);
        return Ok(AdoptThen::Read(flow, call));
    }
    let verdict = adopt::classify(&flow.identity, &flow.candidates, &config.protection);
    if let Some(e) = verdict.refusal() {
        return Err(e);
    }
    let found = verdict
        .uid()
        .and_then(|uid| flow.candidates.iter().find(|u| u.uid == uid).cloned());
    match std::mem::replace(&mut flow.purpose, Purpose::Writing { uid: 0 }) {
        Purpose::Lookup { start_index, count } => {
            let mut resources = Vec::new();
            if let Some(user) = &found {
                if matches!(verdict, Verdict::Adopt { .. }) {
                    *adopted = Some(Adoption {
                        uid: user.uid,
                        on: AdoptedOn::Lookup,
                    });
                }
                if start_index <= 1 && count > 0 {
                    resources.push(view.scim_user(user, &config.mapping));
                }
            }
            let total = usize::from(found.is_some());
            Ok(AdoptThen::Answer(json_response(
                200,
                &discovery::list_response(resources, total, start_index),
                vec![],
            )))
        }
        Purpose::Create { write } => {
            let calls = user_calls(config);
            let Some(user) = found else {
                // The candidates' read folds case as the database does; the uniqueness
                // read also catches non-ASCII case variants (`drupal::unique`).
                let call = calls.create_user(&write.fields, write.password.as_deref());
                let expect = Expect::Created(write.fields.clone());
                let (save, call) = user_save::save(config, &write.fields, None, call, 201, expect);
                return Ok(AdoptThen::Save(save, call));
            };
            if !held.take(cx.scope, user_lock_key(&user.uuid)) {
                return Err(ScimError::new(
                    503,
                    None,
                    "Another request is changing the account with this address; retry.",
                )
                .with_header("retry-after", "1"));
            }
            let mut fields = write.fields;
            adopt::keep_login_name(&mut fields, Some(&flow.identity), config.adopt.rename);
            // The person keeps the password they sign in with; later writes may set one.
            let call = calls.update_user(&user.uuid, &fields, None);
            flow.purpose = Purpose::Writing { uid: user.uid };
            Ok(AdoptThen::Read(flow, call))
        }
        Purpose::Writing { .. } => Err(ScimError::internal("The adoption was already written.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::exchange::{begin, Exchange};
    use crate::flows::scope::LockScope;
    use crate::http::{DrupalCall, Request, Response};
    use crate::runtime::locks::MemoryLocks;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    const JSMITH: &str = "7724f730-7aca-4819-aaee-90673a0141a4";
    const BOSS: &str = "8824f730-7aca-4819-aaee-90673a0141a5";

    fn config(rename: bool) -> Config {
        let digest: [u8; 32] = Sha256::digest(b"secret").into();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let cfg = json!({"tokens": [{"label": "jc", "sha256": hex}],
            "drupal": {"cluster": "drupal", "authority": "drupal.local"},
            "adopt": "mail", "adopt_rename": rename,
            "attributes": [{"scim": "name.givenName", "drupal": "field_given_name"}]});
        let env = |n: &str| {
            Some(
                if n.contains("USER") {
                    "scim-service"
                } else {
                    "pw"
                }
                .to_string(),
            )
        };
        crate::config::parse(cfg.to_string().as_bytes(), &env)
            .unwrap()
            .0
    }

    fn req(method: &str, path: &str, body: Value) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            headers: vec![
                (":authority".into(), "gw.example".into()),
                (":scheme".into(), "http".into()),
                ("authorization".into(), "Bearer secret".into()),
                ("content-type".into(), "application/scim+json".into()),
            ],
            body: if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            },
        }
    }

    fn user(uuid: &str, uid: u64, name: &str, mail: &str, roles: &[&str]) -> Value {
        let roles: Vec<Value> = roles
            .iter()
            .map(|r| json!({"type": "user_role--user_role", "id": "r", "meta": {"drupal_internal__target_id": r}}))
            .collect();
        json!({"type": "user--user", "id": uuid, "attributes": {"display_name": name, "name": name,
            "mail": mail, "status": true, "created": "2026-11-28T11:44:27+00:00",
            "changed": "2026-11-28T11:44:27+00:00", "drupal_internal__uid": uid,
            "field_given_name": "Old"},
            "relationships": {"roles": {"data": roles}}})
    }

    fn page(users: Vec<Value>) -> DrupalReply {
        DrupalReply::json(
            200,
            json!({"data": users, "links": {"self": {"href": "x"}}}),
        )
    }

    struct Rig {
        config: Config,
        locks: MemoryLocks,
    }

    impl Rig {
        fn new(rename: bool) -> Self {
            Rig {
                config: config(rename),
                locks: MemoryLocks::default(),
            }
        }
        fn env(&mut self) -> LockScope<'_> {
            LockScope::new(&mut self.locks, 1, "test", 1000)
        }
        fn begin(&mut self, r: Request) -> (Exchange, Step) {
            let config = self.config.clone();
            begin(&config, &r, &mut self.env()).unwrap()
        }
        fn resume(&mut self, ex: &mut Exchange, replies: Vec<DrupalReply>) -> Step {
            let config = self.config.clone();
            ex.resume(&config, replies, &mut self.env())
        }
    }

    fn calls(step: &Step) -> Vec<DrupalCall> {
        match step {
            Step::Call(c) => c.clone(),
            Step::Respond(r) => panic!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
        }
    }

    fn response(step: Step) -> (Response, Value) {
        match step {
            Step::Respond(r) => {
                let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                (r, v)
            }
            Step::Call(c) => panic!("expected a response, got {c:?}"),
        }
    }

    /// Whether the call has a condition of the SCIM filter (not the gateway's own guards) on
    /// this Drupal field.
    fn on_field(call: &DrupalCall, field: &str) -> bool {
        call.path.split(['?', '&']).any(|pair| {
            pair.starts_with("filter[scim_c")
                && pair.ends_with(&format!("[condition][path]={field}"))
        })
    }

    fn create(mail: &str) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": mail,
            "emails": [{"value": mail, "type": "work", "primary": true}], "active": true,
            "password": "Idp-Sent-1!", "name": {"givenName": "Jane"}})
    }

    #[test]
    fn a_lookup_finds_the_account_with_the_address_and_shows_it_as_user_name() {
        let mut rig = Rig::new(false);
        let (mut ex, step) = rig.begin(req(
            "GET",
            "/scim/v2/Users?filter=userName%20eq%20%22jsmith%40corp.example%22",
            Value::Null,
        ));
        let c = calls(&step);
        assert_eq!(c.len(), 1);
        assert!(
            on_field(&c[0], "mail") && on_field(&c[0], "name"),
            "{}",
            c[0].path
        );
        let step = rig.resume(
            &mut ex,
            vec![page(vec![user(
                JSMITH,
                5,
                "jsmith",
                "JSmith@Corp.example",
                &[],
            )])],
        );
        let (r, v) = response(step);
        assert_eq!(r.status, 200);
        assert_eq!(v["totalResults"], 1);
        assert_eq!(v["Resources"][0]["id"], JSMITH);
        assert_eq!(v["Resources"][0]["userName"], "JSmith@Corp.example");
        assert_eq!(
            ex.adopted,
            Some(Adoption {
                uid: 5,
                on: AdoptedOn::Lookup
            })
        );
    }

    #[test]
    fn a_create_adopts_without_renaming_or_setting_the_password() {
        let mut rig = Rig::new(false);
        let (mut ex, step) =
            rig.begin(req("POST", "/scim/v2/Users", create("jsmith@corp.example")));
        assert_eq!(calls(&step)[0].method, "GET");
        let step = rig.resume(
            &mut ex,
            vec![page(vec![user(
                JSMITH,
                5,
                "jsmith",
                "JSmith@Corp.example",
                &[],
            )])],
        );
        let c = calls(&step);
        assert_eq!((c[0].method, c[0].path.ends_with(JSMITH)), ("PATCH", true));
        let body: Value = serde_json::from_slice(c[0].body.as_deref().unwrap()).unwrap();
        let attrs = &body["data"]["attributes"];
        assert!(
            attrs.get("name").is_none() && attrs.get("pass").is_none(),
            "{attrs}"
        );
        assert_eq!(attrs["mail"], "jsmith@corp.example");
        assert_eq!(attrs["field_given_name"], "Jane");
        let written = user(JSMITH, 5, "jsmith", "jsmith@corp.example", &[]);
        let step = rig.resume(
            &mut ex,
            vec![DrupalReply::json(200, json!({"data": written}))],
        );
        let (r, v) = response(step);
        assert_eq!(r.status, 201);
        assert_eq!(v["id"], JSMITH);
        assert_eq!(v["userName"], "jsmith@corp.example");
        assert_eq!(
            ex.adopted.map(|a| (a.uid, a.on)),
            Some((5, AdoptedOn::Create))
        );
        // Every lock was released.
        let (_, step) = rig.begin(req("POST", "/scim/v2/Users", create("jsmith@corp.example")));
        assert_eq!(calls(&step)[0].method, "GET");
    }

    #[test]
    fn renaming_is_opt_in() {
        let mut rig = Rig::new(true);
        let (mut ex, _) = rig.begin(req("POST", "/scim/v2/Users", create("jsmith@corp.example")));
        let step = rig.resume(
            &mut ex,
            vec![page(vec![user(
                JSMITH,
                5,
                "jsmith",
                "JSmith@Corp.example",
                &[],
            )])],
        );
        let body: Value = serde_json::from_slice(calls(&step)[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(body["data"]["attributes"]["name"], "jsmith@corp.example");
    }

    #[test]
    fn a_new_person_is_created_and_protected_or_shared_addresses_are_409() {
        let mut rig = Rig::new(false);
        let (mut ex, _) = rig.begin(req("POST", "/scim/v2/Users", create("new@corp.example")));
        let step = rig.resume(&mut ex, vec![page(vec![])]);
        // Nobody to adopt: the uniqueness read (non-ASCII case too), then the create.
        assert_eq!(calls(&step)[0].method, "GET");
        let step = rig.resume(&mut ex, vec![page(vec![])]);
        let c = calls(&step);
        assert_eq!(c[0].method, "POST");
        let body: Value = serde_json::from_slice(c[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(body["data"]["attributes"]["name"], "new@corp.example");

        let (mut ex, _) = rig.begin(req("POST", "/scim/v2/Users", create("boss@corp.example")));
        let step = rig.resume(
            &mut ex,
            vec![page(vec![user(
                BOSS,
                3,
                "site-boss",
                "Boss@Corp.example",
                &["administrator"],
            )])],
        );
        let (r, v) = response(step);
        assert_eq!(r.status, 409);
        assert!(v["detail"].as_str().unwrap().contains("uid 3"), "{v}");
        assert!(ex.adopted.is_none());

        let (mut ex, _) = rig.begin(req(
            "GET",
            "/scim/v2/Users?filter=emails%20eq%20%22twin%40corp.example%22",
            Value::Null,
        ));
        let step = rig.resume(
            &mut ex,
            vec![page(vec![
                user(JSMITH, 7, "a", "twin@corp.example", &[]),
                user(BOSS, 8, "b", "TWIN@corp.example", &[]),
            ])],
        );
        let (r, v) = response(step);
        assert_eq!(r.status, 409);
        let d = v["detail"].as_str().unwrap();
        assert!(d.contains("uid 7") && d.contains("uid 8"), "{d}");
    }

    #[test]
    fn patches_move_the_address_and_keep_the_login_name() {
        let mut rig = Rig::new(false);
        let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": "j.smith@corp.example"}]});
        let (mut ex, _) = rig.begin(req("PATCH", &format!("/scim/v2/Users/{JSMITH}"), ops));
        let step = rig.resume(
            &mut ex,
            vec![DrupalReply::json(
                200,
                json!({"data": user(JSMITH, 5, "jsmith", "jsmith@corp.example", &[])}),
            )],
        );
        // A new address: the uniqueness read, then the write.
        assert_eq!(calls(&step)[0].method, "GET");
        let step = rig.resume(&mut ex, vec![page(vec![])]);
        let c = calls(&step);
        let body: Value = serde_json::from_slice(c[0].body.as_deref().unwrap()).unwrap();
        let attrs = &body["data"]["attributes"];
        assert_eq!(attrs["mail"], "j.smith@corp.example");
        assert!(attrs.get("name").is_none(), "{attrs}");

        // Replacing with what the IdP already sees changes nothing.
        let ops = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": "jsmith@corp.example"}]});
        let (mut ex, _) = rig.begin(req("PATCH", &format!("/scim/v2/Users/{JSMITH}"), ops));
        let step = rig.resume(
            &mut ex,
            vec![DrupalReply::json(
                200,
                json!({"data": user(JSMITH, 5, "jsmith", "jsmith@corp.example", &[])}),
            )],
        );
        let (r, v) = response(step);
        assert_eq!(r.status, 200);
        assert_eq!(v["userName"], "jsmith@corp.example");
    }

    #[test]
    fn a_user_name_that_is_no_address_finds_nobody_by_address() {
        let mut rig = Rig::new(false);
        let (_, step) = rig.begin(req(
            "GET",
            "/scim/v2/Users?filter=userName%20eq%20%22jsmith%22",
            Value::Null,
        ));
        let c = calls(&step);
        assert!(c.iter().all(|c| !on_field(c, "name")), "{c:?}");
        assert!(c.iter().any(|c| on_field(c, "mail")), "{c:?}");
    }

    #[test]
    fn other_user_name_filters_are_about_the_address() {
        let mut rig = Rig::new(false);
        let (_, step) = rig.begin(req(
            "GET",
            "/scim/v2/Users?filter=userName%20sw%20%22js%22",
            Value::Null,
        ));
        let c = calls(&step);
        assert!(c.iter().all(|c| !on_field(c, "name")), "{c:?}");
        assert!(c.iter().any(|c| on_field(c, "mail")), "{c:?}");
    }
}
