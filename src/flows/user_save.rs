//! One user write to Drupal, shared by create, PUT, PATCH and DELETE: the read of the
//! accounts whose name or address could clash (`drupal::unique`), the write, the read-back
//! when a reply did not say whether Drupal made it, and undoing an update that landed on an
//! account the gateway retired meanwhile.

use crate::config::Config;
use crate::drupal::delivery::{holds, outcome_unknown, Expect};
use crate::drupal::jsonapi::{self, DrupalUser};
use crate::drupal::unique::Claim;
use crate::flows::audit::Outcome;
use crate::flows::request::empty_response;
use crate::flows::user_view::{live_user, read_user, user_calls, UserView};
use crate::http::{DrupalCall, DrupalReply, Step};
use crate::scim::error::ScimError;
use serde_json::{Map, Value};

#[derive(Debug)]
pub(crate) enum Save {
    /// The write waits for the read of the accounts whose name or address could clash.
    UniqueCheck {
        claim: Claim,
        write: DrupalCall,
        status: u16,
        expect: Box<Expect>,
    },
    Written {
        status: u16,
        expect: Box<Expect>,
    },
    /// A write's reply did not say whether Drupal made it: Drupal is read back.
    ReadBack {
        expect: Box<Expect>,
        failure: DrupalReply,
    },
    /// An update landed on an account the gateway retired after it was read (a DELETE in
    /// another Envoy): it was put back into its retired state; the answer is 404.
    Reretired,
}

/// What a save does next.
pub(crate) enum Saved {
    Call(Save, DrupalCall),
    Answer(Step),
}

/// Sends `write` once no other account holds the name or address it sets, ignoring case
/// (`drupal::unique`): one read first when a create or update sets a new one.
pub(crate) fn save(
    config: &Config,
    fields: &Map<String, Value>,
    current: Option<&DrupalUser>,
    write: DrupalCall,
    status: u16,
    expect: Expect,
) -> (Save, DrupalCall) {
    let expect = Box::new(expect);
    let Some(claim) = Claim::of(fields, current) else {
        return (Save::Written { status, expect }, write);
    };
    let read = claim.candidates(&config.drupal.jsonapi_prefix);
    let state = Save::UniqueCheck {
        claim,
        write,
        status,
        expect,
    };
    (state, read)
}

/// Reads Drupal back after a write whose reply did not say whether Drupal made it.
pub(crate) fn read_back(
    config: &Config,
    expect: Expect,
    failure: DrupalReply,
) -> (Save, DrupalCall) {
    let calls = user_calls(config);
    let call = match &expect {
        Expect::Created(fields) => {
            let name = fields.get("name").and_then(Value::as_str).unwrap_or("");
            calls.list_users(&[("filter[name]".into(), name.into())], None, 0, 50)
        }
        Expect::Updated(uuid, _) | Expect::Gone(uuid) => calls.get_user(uuid),
    };
    let expect = Box::new(expect);
    (Save::ReadBack { expect, failure }, call)
}

impl Save {
    pub(crate) fn on_reply(
        self,
        config: &Config,
        view: &UserView,
        outcome: &mut Outcome,
        first: DrupalReply,
    ) -> Result<Saved, ScimError> {
        let mapping = &config.mapping;
        match self {
            Save::Written { status, expect } => {
                if outcome_unknown(&first) {
                    let (state, call) = read_back(config, *expect, first);
                    return Ok(Saved::Call(state, call));
                }
                let doc = jsonapi::expect_document(&first, &[status])?;
                let written = read_user(&doc, doc.get("data").unwrap_or(&Value::Null), config)?;
                outcome.touched(&written.uuid, written.uid);
                if written.is_retired() {
                    let call = user_calls(config).retire_user(&written.uuid);
                    return Ok(Saved::Call(Save::Reretired, call));
                }
                let user = read_user(&doc, doc.get("data").unwrap_or(&Value::Null), config)?;
                Ok(Saved::Answer(view.user_response(status, &user, mapping)))
            }
            Save::UniqueCheck {
                claim,
                write,
                status,
                expect,
            } => {
                claim.verdict(&first)?;
                Ok(Saved::Call(Save::Written { status, expect }, write))
            }
            Save::ReadBack { expect, failure } => {
                judge_read_back(config, view, *expect, &failure, &first).map(Saved::Answer)
            }
            Save::Reretired => Err(ScimError::not_found("User not found.")),
        }
    }
}

/// The answer once Drupal was read back: the write's success if Drupal holds what it
/// wrote, else the write's own error, saying that the change is not there.
fn judge_read_back(
    config: &Config,
    view: &UserView,
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
            .map(|user| view.user_response(200, &user, mapping)),
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
                .map(|user| view.user_response(201, &user, mapping))
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
