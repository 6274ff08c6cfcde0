//! `POST /Users`: the new user's name and address are locked first (all or none, waiting
//! while another request creates either), then, with adopting on, the person's existing
//! account is looked for; the write checks uniqueness and reads Drupal back when its reply
//! did not say whether Drupal made it (`user_save`).

use crate::drupal::delivery::Expect;
use crate::flows::adopt::{self, AdoptThen};
use crate::flows::adoption::{AdoptFlow, Adoption};
use crate::flows::flow::{Cx, Flow, Report};
use crate::flows::scope::{lock_pause, Held, LockScope};
use crate::flows::user_save::{self, Save, Saved};
use crate::flows::user_view::{user_calls, UserView};
use crate::http::{DrupalReply, Step};
use crate::runtime::intents::SharedIntent;
use crate::scim::error::ScimError;
use crate::scim::user::{self, UserWrite};
use serde_json::Value;

#[derive(Debug)]
pub(crate) struct UserCreate {
    view: UserView,
    held: Held,
    state: State,
    adopted: Option<Adoption>,
}

#[derive(Debug)]
enum State {
    Done,
    /// Waits for another request creating the same name or address.
    Waiting {
        write: UserWrite,
        waits: u32,
        since: u64,
    },
    Adopt(Box<AdoptFlow>),
    Save(Save),
}

/// The locks of a new user: its name and address, ignoring case.
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

impl UserCreate {
    pub(crate) fn start(
        cx: &mut Cx<'_, '_>,
        view: UserView,
        body: &[u8],
    ) -> Result<(Self, Step), ScimError> {
        let mut write = user::parse_user_body(body, &cx.config.mapping, false)?;
        if cx.config.adopt.by_mail {
            crate::drupal::adopt::write_identity(&mut write.fields)?;
        }
        let mut flow = UserCreate {
            view,
            held: Held::default(),
            state: State::Done,
            adopted: None,
        };
        let since = cx.scope.now_ms;
        let first = flow.when_free(cx, write, 0, since);
        let step = flow.held.release_on_error(cx.scope, first)?;
        Ok((flow, step))
    }

    /// Creates the user once its name and address are not being created by another request.
    /// Drupal checks uniqueness only by validation, which concurrent creates slip past
    /// (duplicate addresses, or a 500 from the database).
    fn when_free(
        &mut self,
        cx: &mut Cx<'_, '_>,
        write: UserWrite,
        waits: u32,
        since: u64,
    ) -> Result<Step, ScimError> {
        let config = cx.config;
        if self.held.take_all(cx.scope, create_lock_keys(&write)) {
            if config.adopt.by_mail {
                let (flow, call) = adopt::create(config, write)?;
                self.state = State::Adopt(Box::new(flow));
                return Ok(Step::Call(vec![call]));
            }
            let call = user_calls(config).create_user(&write.fields, write.password.as_deref());
            let expect = Expect::Created(write.fields.clone());
            let (save, call) = user_save::save(config, &write.fields, None, call, 201, expect);
            self.state = State::Save(save);
            return Ok(Step::Call(vec![call]));
        }
        let pause = lock_pause(
            config,
            waits,
            since,
            cx.scope,
            "Another request is creating a user with this name or address; retry.",
        )?;
        self.state = State::Waiting {
            write,
            waits: waits.saturating_add(1),
            since,
        };
        Ok(Step::Call(vec![pause]))
    }
}

impl Flow for UserCreate {
    fn on_replies(
        &mut self,
        cx: &mut Cx<'_, '_>,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError> {
        let first = replies.into_iter().next().unwrap_or(DrupalReply::Failed);
        match std::mem::replace(&mut self.state, State::Done) {
            State::Done => Err(ScimError::internal("The request was already answered.")),
            State::Waiting {
                write,
                waits,
                since,
            } => self.when_free(cx, write, waits, since),
            State::Adopt(flow) => {
                let view = &self.view;
                match adopt::on_reply(flow, cx, view, &first, &mut self.held, &mut self.adopted)? {
                    AdoptThen::Read(flow, call) => {
                        self.state = State::Adopt(flow);
                        Ok(Step::Call(vec![call]))
                    }
                    AdoptThen::Save(save, call) => {
                        self.state = State::Save(save);
                        Ok(Step::Call(vec![call]))
                    }
                    AdoptThen::Answer(step) => Ok(step),
                }
            }
            State::Save(save) => match save.on_reply(cx.config, &self.view, cx.outcome, first)? {
                Saved::Call(save, call) => {
                    self.state = State::Save(save);
                    Ok(Step::Call(vec![call]))
                }
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

    fn report(&mut self) -> Report {
        Report {
            adopted: self.adopted.take(),
            left_out: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::flows::flow::testing::{view, Rig};
    use crate::runtime::locks::Locks;

    const BODY: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName":"bob","emails":[{"value":"bob@example.com","primary":true}]}"#;

    #[test]
    fn a_create_waits_for_its_name_then_holds_it_until_released() {
        let mut rig = Rig::new();
        assert!(rig.locks.try_lock("scim/user-name/bob", "other", 1, 1000));
        let (mut flow, step) = rig
            .with("me", |cx| UserCreate::start(cx, view(), BODY.as_bytes()))
            .unwrap();
        // A pause (a cheap read), holding nothing meanwhile.
        let Step::Call(calls) = step else { panic!() };
        assert_eq!(calls.len(), 1);
        assert!(rig
            .locks
            .try_lock("scim/user-mail/bob@example.com", "x", 1, 1));
        rig.locks.unlock("scim/user-mail/bob@example.com", "x");

        rig.locks.unlock("scim/user-name/bob", "other");
        let step = rig
            .with("me", |cx| flow.on_replies(cx, vec![DrupalReply::Failed]))
            .unwrap();
        assert!(matches!(step, Step::Call(_)));
        assert!(!rig.locks.try_lock("scim/user-name/bob", "other", 1, 1000));
        assert!(!rig
            .locks
            .try_lock("scim/user-mail/bob@example.com", "other", 1, 1000));

        let unlocks = rig.with("me", |cx| flow.release(cx.scope));
        rig.apply(unlocks);
        assert!(rig.locks.try_lock("scim/user-name/bob", "other", 1, 1000));
        assert!(rig
            .locks
            .try_lock("scim/user-mail/bob@example.com", "other", 1, 1000));
    }

    #[test]
    fn an_abandoned_create_keeps_its_locks_for_the_write_grace_only() {
        let mut rig = Rig::new();
        let (mut flow, _) = rig
            .with("me", |cx| UserCreate::start(cx, view(), BODY.as_bytes()))
            .unwrap();
        let kept = rig.with("me", |cx| flow.abandon(cx.scope, 50));
        rig.apply(kept);
        assert!(!rig.locks.try_lock("scim/user-name/bob", "other", 40, 1000));
        assert!(rig.locks.try_lock("scim/user-name/bob", "other", 60, 1000));
    }
}
