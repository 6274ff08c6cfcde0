//! `PUT`, `PATCH` and `DELETE /Users/{id}`: the user's lock first (membership changes take
//! it too, so neither overwrites the other's save: Drupal saves whole entities), then the
//! read that checks SCIM may write the account (and `If-Match`), then one write
//! (`user_save`), or for a DELETE the configured delete mode.

use crate::config::UserDelete;
use crate::drupal::delivery::{outcome_unknown, Expect};
use crate::drupal::jsonapi::{self, DrupalUser};
use crate::flows::flow::{Cx, Flow};
use crate::flows::request::empty_response;
use crate::flows::scope::{lock_pause, Held, LockScope};
use crate::flows::user_save::{self, Save, Saved};
use crate::flows::user_view::{user_calls, writable_user, UserView};
use crate::http::{DrupalReply, Request, Step};
use crate::runtime::intents::SharedIntent;
use crate::scim::error::ScimError;
use crate::scim::patch::{self, Operation};
use crate::scim::user::{self, UserWrite};
use serde_json::{Map, Value};

/// A write to an existing user, before its lookup.
#[derive(Debug)]
pub(crate) enum EditKind {
    Put {
        write: UserWrite,
        if_match: Option<String>,
    },
    Patch {
        ops: Vec<Operation>,
        if_match: Option<String>,
    },
    Delete {
        if_match: Option<String>,
    },
}

impl EditKind {
    /// What the read before the write needs of the user, where that is less than all of it:
    /// who the account is (uid, `name`, `init` for the retired mark, `roles` for
    /// `protection`, the label that tells Drupal's anonymous view of an account and its
    /// anonymous user apart), and for a PUT the address too (only a changed name or address takes the
    /// uniqueness read). With `If-Match` the version needs every mapped field, and a PATCH
    /// applies its operations to the whole resource.
    pub(crate) fn read_fields(&self) -> Option<&'static str> {
        match self {
            EditKind::Put { if_match: None, .. } => {
                Some("display_name,drupal_internal__uid,name,mail,init,roles")
            }
            EditKind::Delete { if_match: None } => {
                Some("display_name,drupal_internal__uid,name,init,roles")
            }
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct UserEdit {
    view: UserView,
    held: Held,
    state: State,
}

#[derive(Debug)]
enum State {
    Done,
    /// Waits for another request writing the same user.
    Waiting {
        id: String,
        edit: EditKind,
        waits: u32,
        since: u64,
    },
    PutLookup {
        write: UserWrite,
        if_match: Option<String>,
    },
    PatchLookup {
        ops: Vec<Operation>,
        if_match: Option<String>,
    },
    DeleteLookup {
        uuid: String,
        if_match: Option<String>,
    },
    DeleteCancelled {
        uuid: String,
    },
    DeleteRetired {
        uuid: String,
    },
    DeleteHard {
        uuid: String,
    },
    Save(Save),
}

impl UserEdit {
    /// PUT replaces the user in one Drupal write, after a read that checks the account may
    /// be written (and `If-Match`, when given).
    pub(crate) fn put(
        cx: &mut Cx<'_, '_>,
        view: UserView,
        id: &str,
        req: &Request,
    ) -> Result<(Self, Step), ScimError> {
        let mut write = user::parse_user_body(&req.body, &cx.config.mapping, true)?;
        crate::flows::adoption::shape_put(cx.config, &mut write)?;
        let if_match = req.header("if-match").map(str::to_string);
        Self::start(cx, view, id, EditKind::Put { write, if_match })
    }

    /// PATCH is applied to the current user (read first: it also tells whether SCIM may
    /// write the account) and written back in one Drupal write.
    pub(crate) fn patch(
        cx: &mut Cx<'_, '_>,
        view: UserView,
        id: &str,
        req: &Request,
    ) -> Result<(Self, Step), ScimError> {
        let ops = patch::parse(&req.body)?;
        let if_match = req.header("if-match").map(str::to_string);
        Self::start(cx, view, id, EditKind::Patch { ops, if_match })
    }

    pub(crate) fn delete(
        cx: &mut Cx<'_, '_>,
        view: UserView,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(Self, Step), ScimError> {
        let if_match = if_match.map(str::to_string);
        Self::start(cx, view, id, EditKind::Delete { if_match })
    }

    fn start(
        cx: &mut Cx<'_, '_>,
        view: UserView,
        id: &str,
        edit: EditKind,
    ) -> Result<(Self, Step), ScimError> {
        let mut flow = UserEdit {
            view,
            held: Held::default(),
            state: State::Done,
        };
        let since = cx.scope.now_ms;
        let first = flow.when_free(cx, id.to_string(), edit, 0, since);
        let step = flow.held.release_on_error(cx.scope, first)?;
        Ok((flow, step))
    }

    /// Reads the user for a write once no other request writes it: the read and the write
    /// hold the user's lock.
    fn when_free(
        &mut self,
        cx: &mut Cx<'_, '_>,
        id: String,
        edit: EditKind,
        waits: u32,
        since: u64,
    ) -> Result<Step, ScimError> {
        let config = cx.config;
        let key = crate::flows::membership::user_lock_key(&id);
        if self.held.take(cx.scope, key) {
            let read = match edit.read_fields() {
                Some(fields) => user_calls(config).get_user_fields(&id, fields),
                None => user_calls(config).get_user(&id),
            };
            self.state = match edit {
                EditKind::Put { write, if_match } => State::PutLookup { write, if_match },
                EditKind::Patch { ops, if_match } => State::PatchLookup { ops, if_match },
                EditKind::Delete { if_match } => State::DeleteLookup { uuid: id, if_match },
            };
            return Ok(Step::Call(vec![read]));
        }
        let pause = lock_pause(
            config,
            waits,
            since,
            cx.scope,
            "Another request is changing this user; retry.",
        )?;
        self.state = State::Waiting {
            id,
            edit,
            waits: waits.saturating_add(1),
            since,
        };
        Ok(Step::Call(vec![pause]))
    }

    fn save(&mut self, (save, call): (Save, crate::http::DrupalCall)) -> Result<Step, ScimError> {
        self.state = State::Save(save);
        Ok(Step::Call(vec![call]))
    }

    fn next(&mut self, state: State, call: crate::http::DrupalCall) -> Result<Step, ScimError> {
        self.state = state;
        Ok(Step::Call(vec![call]))
    }

    /// The PATCH's operations applied to the user as read: the changed Drupal fields and
    /// the password, if one is set.
    fn patch_changes(
        &self,
        cx: &Cx<'_, '_>,
        user: &DrupalUser,
        ops: &[Operation],
    ) -> Result<(Map<String, Value>, Option<String>), ScimError> {
        let config = cx.config;
        let mapping = &config.mapping;
        let mut resource = user.attributes(mapping);
        if self.view.adopt_view {
            crate::flows::adoption::present(user, &mut resource);
        }
        let applied = patch::apply(&mut resource, ops, mapping)?;
        let mut target = mapping.from_scim(&resource)?;
        crate::flows::adoption::shape_patch(config, user, &mut target)?;
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
            Some(_) => return Err(ScimError::invalid_value("`userName` cannot be removed.")),
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
        Ok((changes, applied.password))
    }
}

impl Flow for UserEdit {
    fn on_replies(
        &mut self,
        cx: &mut Cx<'_, '_>,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError> {
        let first = replies.into_iter().next().unwrap_or(DrupalReply::Failed);
        let config = cx.config;
        let mapping = &config.mapping;
        let calls = user_calls(config);
        match std::mem::replace(&mut self.state, State::Done) {
            State::Done => Err(ScimError::internal("The request was already answered.")),
            State::Waiting {
                id,
                edit,
                waits,
                since,
            } => self.when_free(cx, id, edit, waits, since),
            State::PutLookup { write, if_match } => {
                let user = writable_user(&first, config, if_match.as_deref(), cx.outcome)?;
                let call = calls.update_user(&user.uuid, &write.fields, write.password.as_deref());
                let expect = Expect::Updated(user.uuid.clone(), write.fields.clone());
                self.save(user_save::save(
                    config,
                    &write.fields,
                    Some(&user),
                    call,
                    200,
                    expect,
                ))
            }
            State::PatchLookup { ops, if_match } => {
                let user = writable_user(&first, config, if_match.as_deref(), cx.outcome)?;
                let (changes, password) = self.patch_changes(cx, &user, &ops)?;
                if changes.is_empty() && password.is_none() {
                    // Nothing to change: no Drupal write.
                    return Ok(self.view.user_response(200, &user, mapping));
                }
                let call = calls.update_user(&user.uuid, &changes, password.as_deref());
                let expect = Expect::Updated(user.uuid.clone(), changes.clone());
                self.save(user_save::save(
                    config,
                    &changes,
                    Some(&user),
                    call,
                    200,
                    expect,
                ))
            }
            State::DeleteLookup { uuid, if_match } => {
                let user = writable_user(&first, config, if_match.as_deref(), cx.outcome)?;
                match config.drupal.user_delete {
                    UserDelete::Cancel => {
                        let call = calls.delete_user(&uuid);
                        self.next(State::DeleteCancelled { uuid }, call)
                    }
                    UserDelete::HardDelete => self.next(
                        State::DeleteHard { uuid },
                        jsonapi::rest_delete_user(user.uid),
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
                self.next(State::DeleteRetired { uuid }, call)
            }
            State::DeleteRetired { uuid } => match &first {
                DrupalReply::Answer { status: 404, .. } => Ok(empty_response(204, vec![])),
                other if outcome_unknown(other) => {
                    self.save(user_save::read_back(config, Expect::Gone(uuid), first))
                }
                other => {
                    jsonapi::expect_document(other, &[200])?;
                    Ok(empty_response(204, vec![]))
                }
            },
            State::DeleteHard { uuid } => {
                if outcome_unknown(&first) {
                    return self.save(user_save::read_back(config, Expect::Gone(uuid), first));
                }
                if let Some(fix) = jsonapi::rest_resource_fix(jsonapi::rest_resource(&first)) {
                    return Err(ScimError::bad_gateway(fix));
                }
                jsonapi::expect_document(&first, &[204, 200])?;
                Ok(empty_response(204, vec![]))
            }
            State::Save(save) => match save.on_reply(config, &self.view, cx.outcome, first)? {
                Saved::Call(save, call) => self.save((save, call)),
                Saved::Answer(step) => Ok(step),
            },
        }
    }

    fn release(&mut self, scope: &LockScope) -> Vec<SharedIntent> {
        self.held.release(scope)
    }

    fn abandon(&mut self, scope: &LockScope, write_grace_ms: u64) -> Vec<SharedIntent> {
        self.held.keep_for(scope, write_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::flows::flow::testing::{user, view, Rig};
    use crate::flows::membership::user_lock_key;
    use crate::runtime::locks::Locks;

    const ALICE: &str = "7724f730-7aca-4819-aaee-90673a0141a4";

    #[test]
    fn a_delete_holds_the_user_lock_from_its_read_to_its_answer() {
        let mut rig = Rig::new();
        let (mut flow, step) = rig
            .with("me", |cx| UserEdit::delete(cx, view(), ALICE, None))
            .unwrap();
        let Step::Call(calls) = step else { panic!() };
        assert_eq!(calls[0].method, "GET");
        assert!(!rig.locks.try_lock(&user_lock_key(ALICE), "other", 1, 1000));
        let read = vec![DrupalReply::json(200, user(ALICE, 7, "alice"))];
        let Step::Call(calls) = rig.with("me", |cx| flow.on_replies(cx, read)).unwrap() else {
            panic!()
        };
        assert_eq!(calls[0].method, "DELETE");
        let cancelled = vec![DrupalReply::json(204, serde_json::Value::Null)];
        let step = rig.with("me", |cx| flow.on_replies(cx, cancelled)).unwrap();
        assert!(matches!(step, Step::Call(_)), "then the account is retired");
        let retired = vec![DrupalReply::json(404, serde_json::json!({}))];
        let Step::Respond(r) = rig.with("me", |cx| flow.on_replies(cx, retired)).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 204);
        assert_eq!(rig.outcome.uids, vec![7]);
        let unlocks = rig.with("me", |cx| flow.release(cx.scope));
        rig.apply(unlocks);
        assert!(rig.locks.try_lock(&user_lock_key(ALICE), "other", 1, 1000));
    }
}
