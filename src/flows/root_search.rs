//! Root `/.search` across both resource types: one index space, Users then Groups, with one
//! total. It runs the users' list (`user_list`), then the groups' list (`group_ops`) for the
//! rest of the window.

use crate::flows::adoption::Adoption;
use crate::flows::discovery;
use crate::flows::flow::{Cx, Flow, Report};
use crate::flows::group_ops::GroupOps;
use crate::flows::groups::{GroupFlow, LeftOutReport};
use crate::flows::request::{parse_search, window};
use crate::flows::scope::LockScope;
use crate::flows::user_list::UserList;
use crate::flows::user_view::UserView;
use crate::http::{scim_json as json_response, DrupalReply, Step};
use crate::runtime::intents::SharedIntent;
use crate::scim::error::ScimError;
use serde_json::Value;

#[derive(Debug)]
pub(crate) struct RootSearch {
    start_index: usize,
    count: usize,
    filter: Option<String>,
    part: Part,
    adopted: Option<Adoption>,
    left_out: Option<LeftOutReport>,
}

#[derive(Debug)]
enum Part {
    Done,
    Users(UserList),
    /// The users' part answered: its resources and exact total.
    Groups {
        ops: GroupOps,
        users: Vec<Value>,
        total: usize,
    },
}

impl RootSearch {
    pub(crate) fn start(
        cx: &mut Cx<'_, '_>,
        view: UserView,
        body: &[u8],
    ) -> Result<(Self, Step), ScimError> {
        let search = parse_search(body)?;
        let (start_index, count) =
            window(search.start_index, search.count, cx.config.limits.max_count);
        let (list, step) = UserList::search(cx, view, body)?;
        let mut flow = RootSearch {
            start_index,
            count,
            filter: search.filter,
            part: Part::Users(list),
            adopted: None,
            left_out: None,
        };
        let step = flow.after(cx, step);
        Ok((flow, step))
    }

    fn users_only(&self, users: Vec<Value>, total: usize) -> Step {
        let list = discovery::list_response(users, total, self.start_index);
        json_response(200, &list, vec![])
    }

    /// When the Users part has answered, search the Groups for the rest of the window; when
    /// they have, answer with both.
    fn after(&mut self, cx: &mut Cx<'_, '_>, step: Step) -> Step {
        let Step::Respond(response) = &step else {
            return step;
        };
        let status = response.status;
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let resources = body
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let found = body
            .get("totalResults")
            .and_then(Value::as_u64)
            .and_then(|t| usize::try_from(t).ok())
            .unwrap_or(0);
        match std::mem::replace(&mut self.part, Part::Done) {
            Part::Done => step,
            Part::Users(mut list) => {
                self.adopted = list.report().adopted;
                if status != 200 {
                    return step;
                }
                // Users come first, then groups: the groups' part of the window starts where
                // the users end (their total is exact), and the groups are always counted,
                // even when the window holds no group.
                let rest = self.count.saturating_sub(resources.len());
                let group_start = self.start_index.saturating_sub(found).max(1);
                let view = list.view();
                let flow = GroupFlow::list(
                    &view.base_url,
                    view.projection.clone(),
                    self.filter.as_deref(),
                    None,
                    None,
                    group_start,
                    rest,
                );
                // The users just read prove Drupal accepted the service account.
                let flow = flow.map(GroupFlow::service_account_proven);
                match flow.and_then(|f| GroupOps::start(cx, f)) {
                    Ok((ops, step)) => {
                        self.part = Part::Groups {
                            ops,
                            users: resources,
                            total: found,
                        };
                        self.after(cx, step)
                    }
                    Err(_) => self.users_only(resources, found),
                }
            }
            Part::Groups {
                mut ops,
                mut users,
                total,
            } => {
                self.left_out = ops.report().left_out;
                match status {
                    200 => {
                        users.extend(resources);
                        self.users_only(users, total.saturating_add(found))
                    }
                    // A filter Groups cannot take (e.g. on userName) matches no group.
                    400 => self.users_only(users, total),
                    _ => step,
                }
            }
        }
    }
}

impl Flow for RootSearch {
    fn on_replies(
        &mut self,
        cx: &mut Cx<'_, '_>,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError> {
        let step = match &mut self.part {
            Part::Done => return Err(ScimError::internal("The request was already answered.")),
            Part::Users(list) => list.on_replies(cx, replies)?,
            Part::Groups { ops, .. } => ops
                .on_replies(cx, replies)
                .unwrap_or_else(|e| Step::Respond(e.into_response())),
        };
        Ok(self.after(cx, step))
    }

    fn release(&mut self, scope: &LockScope) -> Vec<SharedIntent> {
        match &mut self.part {
            Part::Users(list) => list.release(scope),
            Part::Groups { ops, .. } => ops.release(scope),
            Part::Done => Vec::new(),
        }
    }

    fn abandon(&mut self, scope: &LockScope, write_grace_ms: u64) -> Vec<SharedIntent> {
        match &mut self.part {
            Part::Users(list) => list.abandon(scope, write_grace_ms),
            Part::Groups { ops, .. } => ops.abandon(scope, write_grace_ms),
            Part::Done => Vec::new(),
        }
    }

    fn report(&mut self) -> Report {
        let inner = match &mut self.part {
            Part::Users(list) => list.report(),
            Part::Groups { ops, .. } => ops.report(),
            Part::Done => Report::default(),
        };
        Report {
            adopted: self.adopted.take().or(inner.adopted),
            left_out: self.left_out.take().or(inner.left_out),
        }
    }
}
