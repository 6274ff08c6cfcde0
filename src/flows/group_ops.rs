//! The group flows (`groups::GroupFlow`) behind the `Flow` trait, and the routing of the
//! `/Groups` endpoints to their constructors.

use crate::config::Config;
use crate::drupal::groups::GroupCalls;
use crate::drupal::jsonapi;
use crate::flows::flow::{Cx, Flow, Report};
use crate::flows::groups::GroupFlow;
use crate::flows::request::{no_groups, parse_search, query_param, query_window, window};
use crate::flows::scope::LockScope;
use crate::flows::user_view::UserView;
use crate::http::{DrupalReply, Request, Step};
use crate::runtime::intents::SharedIntent;
use crate::scim::error::ScimError;

#[derive(Debug)]
pub(crate) struct GroupOps {
    flow: Box<GroupFlow>,
}

pub(crate) fn group_calls(config: &Config) -> Option<GroupCalls<'_>> {
    config.groups.as_ref().map(|groups| GroupCalls {
        jsonapi: &config.drupal.jsonapi_prefix,
        groups,
        can_wait: config.wait_cluster.is_some(),
    })
}

impl GroupOps {
    /// Sets the flow up with the configured limits and takes its first step. A flow that
    /// fails at once lets go of what it took.
    pub(crate) fn start(cx: &mut Cx<'_, '_>, flow: GroupFlow) -> Result<(Self, Step), ScimError> {
        let config = cx.config;
        let (Some(groups), Some(calls)) = (config.groups.as_ref(), group_calls(config)) else {
            return Err(no_groups());
        };
        let mut flow = Box::new(flow);
        flow.set_max_checked_pages(config.limits.max_checked_pages);
        flow.set_protection(config.protection.clone());
        flow.set_member_limits(
            groups.max_members_read,
            config.limits.max_members_per_request,
        );
        match flow.step(groups, &calls, cx.scope) {
            Ok(step) => Ok((GroupOps { flow }, step)),
            Err(e) => {
                flow.abandon(cx.scope);
                Err(e)
            }
        }
    }

    /// `/Groups`, `/Groups/.search` and `/Groups/{id}` (`segments` after the base path).
    pub(crate) fn route(
        cx: &mut Cx<'_, '_>,
        view: &UserView,
        segments: &[&str],
        req: &Request,
        params: &[(String, String)],
    ) -> Result<(Self, Step), ScimError> {
        let config = cx.config;
        let groups = config.groups.as_ref().ok_or_else(no_groups)?;
        let base = &view.base_url;
        let projection = || view.projection.clone();
        let method = req.method.as_str();
        let param = |name: &str| query_param(params, name);
        let flow = match segments {
            ["Groups"] => match method {
                "GET" | "HEAD" => {
                    let (start_index, count) = query_window(params, config.limits.max_count)?;
                    GroupFlow::list(
                        base,
                        projection(),
                        param("filter"),
                        param("sortBy"),
                        param("sortOrder"),
                        start_index,
                        count,
                    )?
                }
                "POST" => GroupFlow::create(base, projection(), groups, &req.body)?,
                _ => return Err(ScimError::method_not_allowed("GET, POST")),
            },
            ["Groups", ".search"] => match method {
                "POST" => {
                    let search = parse_search(&req.body)?;
                    let (start_index, count) =
                        window(search.start_index, search.count, config.limits.max_count);
                    GroupFlow::list(
                        base,
                        search.projection,
                        search.filter.as_deref(),
                        search.sort_by.as_deref(),
                        search.sort_order.as_deref(),
                        start_index,
                        count,
                    )?
                }
                _ => return Err(ScimError::method_not_allowed("POST")),
            },
            ["Groups", id] => {
                if !jsonapi::is_uuid(id) {
                    return match method {
                        "GET" | "HEAD" | "PUT" | "PATCH" | "DELETE" => {
                            Err(ScimError::not_found(format!("Group `{id}` not found.")))
                        }
                        _ => Err(ScimError::method_not_allowed("GET, PUT, PATCH, DELETE")),
                    };
                }
                let mut flow = match method {
                    "GET" | "HEAD" => GroupFlow::get(base, projection(), id),
                    "PUT" => GroupFlow::replace(base, projection(), groups, id, &req.body)?,
                    "PATCH" => GroupFlow::patch(base, projection(), groups, id, &req.body)?,
                    "DELETE" => GroupFlow::delete(base, groups, id),
                    _ => return Err(ScimError::method_not_allowed("GET, PUT, PATCH, DELETE")),
                };
                if method != "GET" && method != "HEAD" {
                    // The group's version covers its name and externalId (see `Term::version`).
                    flow.set_if_match(req.header("if-match"));
                }
                flow
            }
            _ => return Err(ScimError::internal("Not a Groups endpoint.")),
        };
        Self::start(cx, flow)
    }
}

impl Flow for GroupOps {
    fn on_replies(
        &mut self,
        cx: &mut Cx<'_, '_>,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError> {
        let config = cx.config;
        let flow = &mut self.flow;
        let result = match (config.groups.as_ref(), group_calls(config)) {
            (Some(groups), Some(calls)) => flow
                .on_replies(groups, &calls, cx.scope, &replies)
                .and_then(|()| flow.step(groups, &calls, cx.scope)),
            _ => Err(no_groups()),
        };
        // An answer releases what the group flow holds; a failure lets go here.
        if result.is_err() {
            let releases = flow.abandon(cx.scope);
            cx.scope.later(releases);
        }
        result
    }

    fn abandon(&mut self, scope: &LockScope, write_grace_ms: u64) -> Vec<SharedIntent> {
        self.flow.abandon_mid_flight(scope, write_grace_ms)
    }

    fn report(&mut self) -> Report {
        Report {
            adopted: None,
            left_out: self.flow.take_left_out(),
        }
    }
}
