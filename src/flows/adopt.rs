//! Adopting existing accounts (`adopt: "mail"`): an IdP's lookup or create of a person
//! resolves, by e-mail, to the Drupal account the person already has (`drupal::adopt`
//! decides which), and every user's SCIM userName is its e-mail address, so the IdP keeps
//! seeing its own userName while the Drupal login name stays what it was.

use crate::config::Config;
use crate::drupal::adopt::{self, Verdict};
use crate::drupal::jsonapi::{self, DrupalUser, DRUPAL_PAGE_MAX};
use crate::drupal::user_filter;
use crate::flows::discovery;
use crate::flows::exchange::{Exchange, State};
use crate::flows::lists::read_page;
use crate::flows::membership::{user_lock_key, Env};
use crate::flows::request::ListRequest;
use crate::flows::users::read_user;
use crate::http::{scim_json as json_response, DrupalReply, Step};
use crate::scim::error::ScimError;
use crate::scim::filter::parse_filter;
use crate::scim::user::UserWrite;
use serde_json::{Map, Value};

/// Where a request resolved an IdP identity to an existing account by e-mail: what the host
/// counts and logs as an adoption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adoption {
    pub uid: u64,
    pub on: AdoptedOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdoptedOn {
    /// A lookup answered with an account whose login name is not the IdP's userName.
    Lookup,
    /// A create landed on an existing account and wrote the IdP's attributes to it.
    Create,
}

impl AdoptedOn {
    pub fn as_str(self) -> &'static str {
        match self {
            AdoptedOn::Lookup => "lookup",
            AdoptedOn::Create => "create",
        }
    }
}

#[derive(Debug)]
pub(crate) struct AdoptFlow {
    identity: String,
    purpose: Purpose,
    conditions: Vec<(String, String)>,
    next_offset: usize,
    candidates: Vec<DrupalUser>,
}

#[derive(Debug)]
enum Purpose {
    Lookup {
        start_index: usize,
        count: usize,
    },
    Create {
        write: UserWrite,
    },
    /// The create's attributes are being written to the existing account.
    Writing {
        uid: u64,
    },
}

/// The SCIM userName of a user while adopting is on: its e-mail address (its login name
/// when it has none).
pub fn user_name_of(user: &DrupalUser) -> &str {
    user.fields
        .get("mail")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| user.name())
}

/// Shows the userName the IdP knows (`scim_user`, PATCH's starting point).
pub(crate) fn present(user: &DrupalUser, resource: &mut Map<String, Value>) {
    if resource.contains_key("userName") {
        resource.insert("userName".into(), Value::String(user_name_of(user).into()));
    }
}

/// A PUT: the address is the identity, and the login name is kept (or follows, with
/// `adopt_rename`).
pub(crate) fn shape_put(config: &Config, write: &mut UserWrite) -> Result<(), ScimError> {
    if !config.adopt.by_mail {
        return Ok(());
    }
    let identity = adopt::write_identity(&mut write.fields)?;
    adopt::keep_login_name(&mut write.fields, identity.as_deref(), config.adopt.rename);
    Ok(())
}

/// A PATCH applied to the view (`present`): a changed userName or e-mail moves the address,
/// both changed must agree, and the login name stays unless renaming is on.
pub(crate) fn shape_patch(
    config: &Config,
    user: &DrupalUser,
    target: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    if !config.adopt.by_mail {
        return Ok(());
    }
    let text =
        |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let old_mail = text(&user.fields, "mail").filter(|m| !m.is_empty());
    let new_name = text(target, "name");
    let new_mail = text(target, "mail");
    let name_changed = new_name.as_deref() != Some(user_name_of(user));
    let mail_changed = new_mail != old_mail;
    let keep = |target: &mut Map<String, Value>| {
        target.insert("name".into(), Value::String(user.name().into()));
    };
    if !name_changed && !mail_changed {
        keep(target);
        return Ok(());
    }
    let mut fields = Map::new();
    if let Some(n) = new_name.filter(|_| name_changed) {
        fields.insert("name".into(), Value::String(n));
    }
    if let Some(m) = new_mail.filter(|_| mail_changed) {
        fields.insert("mail".into(), Value::String(m));
    }
    let identity = adopt::write_identity(&mut fields)?;
    if let Some(id) = &identity {
        target.insert("mail".into(), Value::String(id.clone()));
    }
    if config.adopt.rename {
        if let Some(id) = identity {
            target.insert("name".into(), Value::String(id));
            return Ok(());
        }
    }
    keep(target);
    Ok(())
}

impl Exchange {
    /// With adopting on, a lookup by identity resolves like a create would (`Some`: the
    /// candidate read is planned); any other filter naming userName is about the address.
    pub(crate) fn start_adopt_lookup(
        &mut self,
        config: &Config,
        list: &mut ListRequest,
    ) -> Result<Option<Step>, ScimError> {
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
        if let Some(identity) = adopt::identity_lookup(&parsed) {
            let purpose = Purpose::Lookup {
                start_index: list.start_index,
                count: list.count,
            };
            return self
                .start_candidates(config, identity.to_string(), purpose)
                .map(Some);
        }
        if let Some(rewritten) = adopt::filter_on_mail(&parsed) {
            list.filter = Some(rewritten);
        }
        Ok(None)
    }

    /// A create, once its name and address locks are held: which account is the person's.
    pub(crate) fn start_adopt_create(
        &mut self,
        config: &Config,
        write: UserWrite,
    ) -> Result<Step, ScimError> {
        let identity = write
            .fields
            .get("mail")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.start_candidates(config, identity, Purpose::Create { write })
    }

    fn start_candidates(
        &mut self,
        config: &Config,
        identity: String,
        purpose: Purpose,
    ) -> Result<Step, ScimError> {
        let query = user_filter::translate(&adopt::candidates_filter(&identity), &config.mapping)?;
        let call = Self::calls(config).list_users(&query.conditions, None, 0, DRUPAL_PAGE_MAX);
        let flow = AdoptFlow {
            identity,
            purpose,
            conditions: query.conditions,
            next_offset: DRUPAL_PAGE_MAX,
            candidates: Vec::new(),
        };
        self.call(State::Adopt(Box::new(flow)), vec![call])
    }

    pub(crate) fn continue_adopt(
        &mut self,
        config: &Config,
        mut flow: Box<AdoptFlow>,
        replies: &[DrupalReply],
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        let reply = replies.first().unwrap_or(&DrupalReply::Failed);
        if let Purpose::Writing { uid } = flow.purpose {
            let doc = jsonapi::expect_document(reply, &[200])?;
            let user = read_user(&doc, doc.get("data").unwrap_or(&Value::Null), config)?;
            self.adopted = Some(Adoption {
                uid,
                on: AdoptedOn::Create,
            });
            return Ok(self.user_response(201, &user, &config.mapping));
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
            let call = Self::calls(config).list_users(
                &flow.conditions,
                None,
                flow.next_offset,
                DRUPAL_PAGE_MAX,
            );
            flow.next_offset = flow.next_offset.saturating_add(DRUPAL_PAGE_MAX);
            return self.call(State::Adopt(flow), vec![call]);
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
                        self.adopted = Some(Adoption {
                            uid: user.uid,
                            on: AdoptedOn::Lookup,
                        });
                    }
                    if start_index <= 1 && count > 0 {
                        resources.push(self.scim_user(user, &config.mapping));
                    }
                }
                let total = usize::from(found.is_some());
                Ok(json_response(
                    200,
                    &discovery::list_response(resources, total, start_index),
                    vec![],
                ))
            }
            Purpose::Create { write } => {
                let calls = Self::calls(config);
                let Some(user) = found else {
                    let call = calls.create_user(&write.fields, write.password.as_deref());
                    return self.call(State::Written { status: 201 }, vec![call]);
                };
                let key = user_lock_key(&user.uuid);
                if !env
                    .locks
                    .try_lock(&key, env.owner, env.now_ms, env.lock_ttl_ms)
                {
                    return Err(ScimError::new(
                        503,
                        None,
                        "Another request is changing the account with this address; retry.",
                    )
                    .with_header("retry-after", "1"));
                }
                self.held.push(key);
                let mut fields = write.fields;
                adopt::keep_login_name(&mut fields, Some(&flow.identity), config.adopt.rename);
                // The person keeps the password they sign in with; later writes may set one.
                let call = calls.update_user(&user.uuid, &fields, None);
                flow.purpose = Purpose::Writing { uid: user.uid };
                self.call(State::Adopt(flow), vec![call])
            }
            Purpose::Writing { .. } => {
                Err(ScimError::internal("The adoption was already written."))
            }
        }
    }
}
