//! The `/Users` flows by id: read, create, replace, patch and delete one user, each waiting
//! for the locks it needs and answering with the user as Drupal stored it.

use crate::config::{Config, UserDelete};
use crate::drupal::delivery::{holds, outcome_unknown, Expect};
use crate::drupal::jsonapi::{self, DrupalUser};
use crate::drupal::unique::Claim;
use crate::flows::audit::Outcome;
use crate::flows::exchange::*;
use crate::flows::membership::Env;
use crate::flows::request::*;
use crate::http::{scim_json as json_response, DrupalCall, DrupalReply, Request, Step};
use crate::runtime::intents::{Outcome::Locked, SharedIntent};
use crate::scim::error::ScimError;
use crate::scim::mapping::UserMapping;
use crate::scim::patch::{self};
use crate::scim::user::{self, UserWrite};
use serde_json::{Map, Value};

/// A pause while another request holds a lock (Envoy's wait listener, else a cheap Drupal
/// read), or the 503 once the wait outlasts any lock.
pub(crate) fn lock_pause(
    config: &Config,
    waits: u32,
    since: u64,
    env: &Env,
    busy: &str,
) -> Result<DrupalCall, ScimError> {
    if env.now_ms.saturating_sub(since) > env.lock_ttl_ms || waits > 10_000 {
        return Err(ScimError::new(503, None, busy).with_header("retry-after", "1"));
    }
    crate::runtime::tally::note(crate::runtime::tally::Event::LockWait);
    Ok(match &config.wait_cluster {
        Some(_) => DrupalCall::wait(),
        None => Exchange::calls(config).count_users(&[], 0, 1),
    })
}

pub(crate) fn create_lock_keys(write: &UserWrite) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(name) = write.fields.get("name").and_then(Value::as_str) {
        keys.push(format!("scim/user-name/{}", name.to_lowercase()));
    }
    if let Some(mail) = write.fields.get("mail").and_then(Value::as_str) {
        keys.push(format!("scim/user-mail/{}", mail.to_lowercase()));
    }
    keys
}

/// A user read by id, where a retired account or Drupal's 404 both mean "no such user".
pub(crate) fn live_user(reply: &DrupalReply, config: &Config) -> Result<DrupalUser, ScimError> {
    if let DrupalReply::Answer { status: 404, .. } = reply {
        return Err(ScimError::not_found("User not found."));
    }
    let doc = jsonapi::expect_document(reply, &[200])?;
    let data = doc.get("data").unwrap_or(&Value::Null);
    // Drupal's anonymous user (uid 0) is no SCIM user, whatever its label.
    if jsonapi::is_label_view(data) {
        return Err(ScimError::not_found("User not found."));
    }
    let user = read_user(&doc, data, config)?;
    if user.is_retired() {
        return Err(ScimError::not_found("User not found."));
    }
    Ok(user)
}

/// The user a PUT, PATCH or DELETE is about to write: live, one SCIM may write (`protection`),
/// and at the version `If-Match` names, if any.
fn writable_user(
    reply: &DrupalReply,
    config: &Config,
    if_match: Option<&str>,
    outcome: &mut Outcome,
) -> Result<DrupalUser, ScimError> {
    let user = live_user(reply, config)?;
    outcome.touched(&user.uuid, user.uid);
    config
        .protection
        .check(user.uid, user.name(), user.roles.as_deref())?;
    if if_match.is_some_and(|t| !etag_matches(t, &user.version(&config.mapping))) {
        return Err(precondition_failed());
    }
    Ok(user)
}

/// Reads one user of a document, with its groups when they are configured.
pub(crate) fn read_user(
    doc: &Value,
    resource: &Value,
    config: &Config,
) -> Result<DrupalUser, ScimError> {
    let mut user = jsonapi::parse_user(resource, &config.mapping)?;
    if let Some(g) = &config.groups {
        let included = doc
            .get("included")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        jsonapi::attach_groups(&mut user, resource, &g.membership_field, included);
    }
    Ok(user)
}

impl Exchange {
    pub(crate) fn start_get(
        &mut self,
        config: &Config,
        id: &str,
        if_none_match: Option<&str>,
    ) -> Result<Step, ScimError> {
        let call = Self::calls(config).get_user(id);
        self.call(
            State::GetUser {
                if_none_match: if_none_match.map(str::to_string),
            },
            vec![call],
        )
    }

    pub(crate) fn start_create(
        &mut self,
        config: &Config,
        body: &[u8],
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        let mut write = user::parse_user_body(body, &config.mapping, false)?;
        if config.adopt.by_mail {
            crate::drupal::adopt::write_identity(&mut write.fields)?;
        }
        self.create_when_free(config, write, 0, env.now_ms, env)
    }

    /// Creates the user once its name and address are not being created by another request.
    pub(crate) fn create_when_free(
        &mut self,
        config: &Config,
        write: UserWrite,
        waits: u32,
        since: u64,
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        if self.try_create_locks(&write, env) {
            if config.adopt.by_mail {
                return self.start_adopt_create(config, write);
            }
            let call = Self::calls(config).create_user(&write.fields, write.password.as_deref());
            let expect = Expect::Created(write.fields.clone());
            return self.write_when_unique(config, &write.fields, None, call, 201, expect);
        }
        let pause = lock_pause(
            config,
            waits,
            since,
            env,
            "Another request is creating a user with this name or address; retry.",
        )?;
        self.call(
            State::CreateWaiting {
                write,
                waits: waits.saturating_add(1),
                since,
            },
            vec![pause],
        )
    }

    /// PUT replaces the user in one Drupal write, after a read that checks the account may
    /// be written (and `If-Match`, when given).
    pub(crate) fn start_put(
        &mut self,
        config: &Config,
        id: &str,
        req: &Request,
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        let mut write = user::parse_user_body(&req.body, &config.mapping, true)?;
        crate::flows::adoption::shape_put(config, &mut write)?;
        let if_match = req.header("if-match").map(str::to_string);
        let edit = UserEdit::Put { write, if_match };
        self.edit_when_free(config, id.to_string(), edit, 0, env.now_ms, env)
    }

    /// PATCH is applied to the current user (read first: it also tells whether SCIM may
    /// write the account) and written back in one Drupal write.
    pub(crate) fn start_patch(
        &mut self,
        config: &Config,
        id: &str,
        req: &Request,
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        let ops = patch::parse(&req.body)?;
        let if_match = req.header("if-match").map(str::to_string);
        let edit = UserEdit::Patch { ops, if_match };
        self.edit_when_free(config, id.to_string(), edit, 0, env.now_ms, env)
    }

    pub(crate) fn start_delete(
        &mut self,
        config: &Config,
        id: &str,
        if_match: Option<&str>,
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        let edit = UserEdit::Delete {
            if_match: if_match.map(str::to_string),
        };
        self.edit_when_free(config, id.to_string(), edit, 0, env.now_ms, env)
    }

    /// Reads the user for a write once no other request writes it: the read and the write
    /// hold the user's lock, which membership changes take too, so neither overwrites the
    /// other's save (Drupal saves whole entities).
    pub(crate) fn edit_when_free(
        &mut self,
        config: &Config,
        id: String,
        edit: UserEdit,
        waits: u32,
        since: u64,
        env: &mut Env,
    ) -> Result<Step, ScimError> {
        let key = crate::flows::membership::user_lock_key(&id);
        // PROTOTYPE (issue 20 item 2): the lock as an intent value, applied through the port.
        let take = SharedIntent::lock(&key, env.owner, env.now_ms, env.lock_ttl_ms);
        if env.locks.apply(take) == Locked(true) {
            self.held.push(key);
            let read = match edit.read_fields() {
                Some(fields) => Self::calls(config).get_user_fields(&id, fields),
                None => Self::calls(config).get_user(&id),
            };
            let state = match edit {
                UserEdit::Put { write, if_match } => State::PutLookup { write, if_match },
                UserEdit::Patch { ops, if_match } => State::PatchLookup { ops, if_match },
                UserEdit::Delete { if_match } => State::DeleteLookup { uuid: id, if_match },
            };
            return self.call(state, vec![read]);
        }
        let pause = lock_pause(
            config,
            waits,
            since,
            env,
            "Another request is changing this user; retry.",
        )?;
        self.call(
            State::EditWaiting {
                id,
                edit,
                waits: waits.saturating_add(1),
                since,
            },
            vec![pause],
        )
    }

    /// Takes the locks on a new user's name and address (in that order, all or none, so two
    /// requests never wait on each other): Drupal checks uniqueness only by validation, which
    /// concurrent creates slip past (duplicate addresses, or a 500 from the database).
    pub(crate) fn try_create_locks(&mut self, write: &UserWrite, env: &mut Env) -> bool {
        let keys = create_lock_keys(write);
        // PROTOTYPE (issue 20 item 2): one intent takes the set all or none in one table
        // write, where the loop took them one by one and released them on a miss.
        let take = SharedIntent::TryLockAll {
            keys: keys.clone(),
            owner: env.owner.to_string(),
            now_ms: env.now_ms,
            ttl_ms: env.lock_ttl_ms,
        };
        if keys.is_empty() || env.locks.apply(take) == Locked(true) {
            self.held.extend(keys);
            return true;
        }
        false
    }

    pub(crate) fn advance(
        &mut self,
        config: &Config,
        state: State,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError> {
        let first = replies.first().cloned().unwrap_or(DrupalReply::Failed);
        let mapping = &config.mapping;
        let calls = Self::calls(config);
        match state {
            State::Done => Err(ScimError::internal("The request was already answered.")),
            State::GetUser { if_none_match } => {
                let user = live_user(&first, config)?;
                self.outcome.touched(&user.uuid, user.uid);
                let version = user.version(mapping);
                if if_none_match
                    .as_deref()
                    .is_some_and(|t| etag_matches(t, &version))
                {
                    return Ok(empty_response(304, vec![("etag".to_string(), version)]));
                }
                Ok(self.user_response_at(200, &user, mapping, version))
            }
            State::Written { status, expect } => {
                if outcome_unknown(&first) {
                    return self.read_back(config, *expect, first);
                }
                let doc = jsonapi::expect_document(&first, &[status])?;
                let written = read_user(&doc, doc.get("data").unwrap_or(&Value::Null), config)?;
                self.outcome.touched(&written.uuid, written.uid);
                if written.is_retired() {
                    return self.call(State::Reretired, vec![calls.retire_user(&written.uuid)]);
                }
                let user = read_user(&doc, doc.get("data").unwrap_or(&Value::Null), config)?;
                Ok(self.user_response(status, &user, mapping))
            }
            State::UniqueCheck {
                claim,
                write,
                status,
                expect,
            } => {
                claim.verdict(&first)?;
                self.call(State::Written { status, expect }, vec![write])
            }
            State::PutLookup { write, if_match } => {
                let user = writable_user(&first, config, if_match.as_deref(), &mut self.outcome)?;
                let call = calls.update_user(&user.uuid, &write.fields, write.password.as_deref());
                let expect = Expect::Updated(user.uuid.clone(), write.fields.clone());
                self.write_when_unique(config, &write.fields, Some(&user), call, 200, expect)
            }
            State::PatchLookup { ops, if_match } => {
                let user = writable_user(&first, config, if_match.as_deref(), &mut self.outcome)?;
                let mut resource = user.attributes(mapping);
                if self.adopt_view {
                    crate::flows::adoption::present(&user, &mut resource);
                }
                let applied = patch::apply(&mut resource, &ops, mapping)?;
                let mut target = mapping.from_scim(&resource)?;
                crate::flows::adoption::shape_patch(config, &user, &mut target)?;
                let mut changes = Map::new();
                for field in mapping.drupal_fields() {
                    let new = target.get(field).cloned().unwrap_or(Value::Null);
                    let old = user.fields.get(field).cloned().unwrap_or(Value::Null);
                    let old = if old.as_str() == Some("") {
                        Value::Null
                    } else {
                        old
                    };
                    if new != old {
                        changes.insert(field.to_string(), new);
                    }
                }
                match changes.get("name") {
                    Some(Value::String(name)) => user::check_user_name(name)?,
                    Some(_) => {
                        return Err(ScimError::invalid_value("`userName` cannot be removed."))
                    }
                    None => {}
                }
                match changes.get("mail") {
                    Some(Value::String(mail)) => user::check_mail(mail)?,
                    Some(Value::Null) => {
                        return Err(ScimError::invalid_value(
                            "`emails`: Drupal keeps a user's address once set; replace it instead of removing it.",
                        ))
                    }
                    _ => {}
                }
                if changes.get("status").is_some_and(Value::is_null) {
                    return Err(ScimError::invalid_value(
                        "`active` cannot be removed; set it to false instead.",
                    ));
                }
                if changes.is_empty() && applied.password.is_none() {
                    // Nothing to change: no Drupal write.
                    return Ok(self.user_response(200, &user, mapping));
                }
                let call = calls.update_user(&user.uuid, &changes, applied.password.as_deref());
                let expect = Expect::Updated(user.uuid.clone(), changes.clone());
                self.write_when_unique(config, &changes, Some(&user), call, 200, expect)
            }
            State::DeleteLookup { uuid, if_match } => {
                let user = writable_user(&first, config, if_match.as_deref(), &mut self.outcome)?;
                match config.drupal.user_delete {
                    UserDelete::Cancel => self.call(
                        State::DeleteCancelled { uuid: uuid.clone() },
                        vec![calls.delete_user(&uuid)],
                    ),
                    UserDelete::HardDelete => self.call(
                        State::DeleteHard { uuid },
                        vec![jsonapi::rest_delete_user(user.uid)],
                    ),
                }
            }
            State::DeleteCancelled { uuid } => {
                // A cancel whose fate is unknown needs no read-back: retiring comes next
                // either way.
                if !outcome_unknown(&first) {
                    jsonapi::expect_document(&first, &[204, 200])?;
                }
                // The site's cancel method may have kept the account (it only blocks by
                // default): retire it. If the account is gone, the PATCH answers 404.
                let call = calls.retire_user(&uuid);
                self.call(State::DeleteRetired { uuid }, vec![call])
            }
            State::Reretired => Err(ScimError::not_found("User not found.")),
            State::CreateWaiting { .. } | State::EditWaiting { .. } => Err(ScimError::internal(
                "A waiting write is resumed separately.",
            )),
            State::DeleteRetired { uuid } => match &first {
                DrupalReply::Answer { status: 404, .. } => Ok(empty_response(204, vec![])),
                other if outcome_unknown(other) => {
                    self.read_back(config, Expect::Gone(uuid), first)
                }
                other => {
                    jsonapi::expect_document(other, &[200])?;
                    Ok(empty_response(204, vec![]))
                }
            },
            State::DeleteHard { uuid } => {
                if outcome_unknown(&first) {
                    return self.read_back(config, Expect::Gone(uuid), first);
                }
                if let Some(fix) = jsonapi::rest_resource_fix(jsonapi::rest_resource(&first)) {
                    return Err(ScimError::bad_gateway(fix));
                }
                jsonapi::expect_document(&first, &[204, 200])?;
                Ok(empty_response(204, vec![]))
            }
            State::ReadBack { expect, failure } => {
                self.judge_read_back(config, *expect, &failure, &first)
            }
            State::ListWindow(_) => {
                Err(ScimError::internal("A list window is resumed separately."))
            }
            State::ListWalk(walk) => self.continue_walk(config, walk, &first),
            State::Group(_) => Err(ScimError::internal(
                "Group requests are resumed separately.",
            )),
            State::Adopt(_) => Err(ScimError::internal("Adoptions are resumed separately.")),
        }
    }

    /// Sends `write` once no other account holds the name or address it sets, ignoring case
    /// (`drupal::unique`): one read first when a create or update sets a new one.
    pub(crate) fn write_when_unique(
        &mut self,
        config: &Config,
        fields: &Map<String, Value>,
        current: Option<&DrupalUser>,
        write: DrupalCall,
        status: u16,
        expect: Expect,
    ) -> Result<Step, ScimError> {
        let Some(claim) = Claim::of(fields, current) else {
            let expect = Box::new(expect);
            return self.call(State::Written { status, expect }, vec![write]);
        };
        let read = claim.candidates(&config.drupal.jsonapi_prefix);
        self.call(
            State::UniqueCheck {
                claim,
                write,
                status,
                expect: Box::new(expect),
            },
            vec![read],
        )
    }

    /// Reads Drupal back after a write whose reply did not say whether Drupal made it.
    fn read_back(
        &mut self,
        config: &Config,
        expect: Expect,
        failure: DrupalReply,
    ) -> Result<Step, ScimError> {
        let calls = Self::calls(config);
        let call = match &expect {
            Expect::Created(fields) => {
                let name = fields.get("name").and_then(Value::as_str).unwrap_or("");
                calls.list_users(&[("filter[name]".into(), name.into())], None, 0, 50)
            }
            Expect::Updated(uuid, _) | Expect::Gone(uuid) => calls.get_user(uuid),
        };
        let expect = Box::new(expect);
        self.call(State::ReadBack { expect, failure }, vec![call])
    }

    /// The answer once Drupal was read back: the write's success if Drupal holds what it
    /// wrote, else the write's own error, saying that the change is not there.
    fn judge_read_back(
        &mut self,
        config: &Config,
        expect: Expect,
        failure: &DrupalReply,
        reply: &DrupalReply,
    ) -> Result<Step, ScimError> {
        let mapping = &config.mapping;
        let done = match expect {
            Expect::Gone(_) => match live_user(reply, config) {
                Err(e) if e.status == 404 => Some(empty_response(204, vec![])),
                _ => None,
            },
            Expect::Updated(_, fields) => live_user(reply, config)
                .ok()
                .filter(|user| holds(user, &fields))
                .map(|user| self.user_response(200, &user, mapping)),
            Expect::Created(fields) => {
                let doc = jsonapi::expect_document(reply, &[200]).unwrap_or(Value::Null);
                let rows = doc.get("data").and_then(Value::as_array);
                // Only an account SCIM may write, holding every value sent: on a
                // case-insensitive database the lookup also finds near-namesakes.
                rows.into_iter()
                    .flatten()
                    .filter_map(|row| read_user(&doc, row, config).ok())
                    .find(|u| {
                        !u.is_retired()
                            && holds(u, &fields)
                            && config
                                .protection
                                .check(u.uid, u.name(), u.roles.as_deref())
                                .is_ok()
                    })
                    .map(|user| self.user_response(201, &user, mapping))
            }
        };
        done.ok_or_else(|| {
            let mut e = jsonapi::map_failure(failure);
            e.detail = format!(
                "{} Reading Drupal back does not show the change: it was not made (or not yet); sending the request again is safe.",
                e.detail
            );
            e
        })
    }

    pub(crate) fn scim_user(&self, user: &DrupalUser, mapping: &UserMapping) -> Value {
        self.scim_user_at(user, mapping, user.version(mapping))
    }

    fn scim_user_at(&self, user: &DrupalUser, mapping: &UserMapping, version: String) -> Value {
        self.finish_user(user, user.to_scim_at(mapping, &self.base_url, version))
    }

    /// The answer's resource from the user's `to_scim` view.
    pub(crate) fn finish_user(&self, user: &DrupalUser, mut resource: Map<String, Value>) -> Value {
        if self.adopt_view {
            crate::flows::adoption::present(user, &mut resource);
        }
        self.projection.apply(&mut resource);
        Value::Object(resource)
    }

    pub(crate) fn user_response(
        &self,
        status: u16,
        user: &DrupalUser,
        mapping: &UserMapping,
    ) -> Step {
        self.user_response_at(status, user, mapping, user.version(mapping))
    }

    /// `user_response` with the user's version computed already.
    pub(crate) fn user_response_at(
        &self,
        status: u16,
        user: &DrupalUser,
        mapping: &UserMapping,
        version: String,
    ) -> Step {
        let mut headers = vec![("etag".to_string(), version.clone())];
        if status == 201 {
            headers.push((
                "location".to_string(),
                format!("{}/Users/{}", self.base_url, user.uuid),
            ));
        }
        json_response(status, &self.scim_user_at(user, mapping, version), headers)
    }
}
