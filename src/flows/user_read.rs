//! `GET` and `HEAD /Users/{id}`: one read, answered with the user and its version, or 304
//! when `If-None-Match` names that version.

use crate::config::Config;
use crate::flows::flow::{Cx, Flow};
use crate::flows::request::{empty_response, etag_matches};
use crate::flows::user_view::{live_user, user_calls, UserView};
use crate::http::{DrupalReply, Step};
use crate::scim::error::ScimError;

#[derive(Debug)]
pub(crate) struct UserRead {
    view: UserView,
    if_none_match: Option<String>,
}

impl UserRead {
    pub(crate) fn start(
        config: &Config,
        view: UserView,
        id: &str,
        if_none_match: Option<&str>,
    ) -> (Self, Step) {
        let flow = UserRead {
            view,
            if_none_match: if_none_match.map(str::to_string),
        };
        (flow, Step::Call(vec![user_calls(config).get_user(id)]))
    }
}

impl Flow for UserRead {
    fn on_replies(
        &mut self,
        cx: &mut Cx<'_, '_>,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError> {
        let first = replies.into_iter().next().unwrap_or(DrupalReply::Failed);
        let mapping = &cx.config.mapping;
        let user = live_user(&first, cx.config)?;
        cx.outcome.touched(&user.uuid, user.uid);
        let version = user.version(mapping);
        if self
            .if_none_match
            .as_deref()
            .is_some_and(|t| etag_matches(t, &version))
        {
            return Ok(empty_response(304, vec![("etag".to_string(), version)]));
        }
        Ok(self.view.user_response_at(200, &user, mapping, version))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::flows::flow::testing::{user, view, Rig};

    const ALICE: &str = "7724f730-7aca-4819-aaee-90673a0141a4";

    #[test]
    fn one_read_then_the_user_or_304_for_its_version() {
        let mut rig = Rig::new();
        let (mut flow, step) = UserRead::start(&rig.config, view(), ALICE, None);
        let Step::Call(calls) = step else { panic!() };
        assert_eq!(calls.len(), 1);
        assert!(calls[0].path.contains(ALICE));
        let reply = || vec![DrupalReply::json(200, user(ALICE, 7, "alice"))];
        let Step::Respond(r) = rig.with("a", |cx| flow.on_replies(cx, reply())).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 200);
        let etag = r.header("etag").unwrap().to_string();

        let (mut flow, _) = UserRead::start(&rig.config, view(), ALICE, Some(&etag));
        let Step::Respond(r) = rig.with("a", |cx| flow.on_replies(cx, reply())).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 304);
        let gone = vec![DrupalReply::json(404, serde_json::json!({}))];
        let (mut flow, _) = UserRead::start(&rig.config, view(), ALICE, None);
        let e = rig.with("a", |cx| flow.on_replies(cx, gone)).unwrap_err();
        assert_eq!(e.status, 404);
    }
}
