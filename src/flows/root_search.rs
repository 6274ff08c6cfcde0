//! Root `/.search` across both resource types: one index space, Users then Groups, with one
//! total.

use crate::config::Config;
use crate::flows::discovery;
use crate::flows::exchange::*;
use crate::flows::groups::GroupFlow;
use crate::flows::scope::LockScope;
use crate::http::{scim_json as json_response, Step};
use serde_json::Value;

impl Exchange {
    /// For a search across types: when the Users part has answered, search the Groups for
    /// the rest of the window; when they have, answer with both.
    pub(crate) fn across_types(
        &mut self,
        config: &Config,
        env: &mut LockScope,
        step: Step,
    ) -> Step {
        let Step::Respond(response) = &step else {
            return step;
        };
        let Some(root) = self.root_search.as_mut() else {
            return step;
        };
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if response.status != 200 {
            // A filter Groups cannot take (e.g. on userName) matches no group.
            if root.users.is_some() && response.status == 400 {
                let (users, total) = root.users.take().unwrap_or_default();
                let start = root.start_index;
                self.root_search = None;
                return json_response(200, &discovery::list_response(users, total, start), vec![]);
            }
            self.root_search = None;
            return step;
        }
        let resources = body
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = body
            .get("totalResults")
            .and_then(Value::as_u64)
            .and_then(|t| usize::try_from(t).ok())
            .unwrap_or(0);
        match root.users.take() {
            None => {
                // Users come first, then groups: the groups' part of the window starts where
                // the users end (their total is exact), and the groups are always counted,
                // even when the window holds no group.
                let rest = root.count.saturating_sub(resources.len());
                let group_start = root.start_index.saturating_sub(total).max(1);
                let filter = root.filter.clone();
                root.users = Some((resources, total));
                let flow = GroupFlow::list(
                    &self.base_url,
                    self.projection.clone(),
                    filter.as_deref(),
                    None,
                    None,
                    group_start,
                    rest,
                );
                // The users just read prove Drupal accepted the service account.
                let flow = flow.map(GroupFlow::service_account_proven);
                match flow.and_then(|f| self.start_group(config, env, f)) {
                    Ok(step) => self.across_types(config, env, step),
                    Err(_) => {
                        let (users, total) = self
                            .root_search
                            .as_mut()
                            .and_then(|r| r.users.take())
                            .unwrap_or_default();
                        let start = self
                            .root_search
                            .as_ref()
                            .map(|r| r.start_index)
                            .unwrap_or(1);
                        self.root_search = None;
                        json_response(200, &discovery::list_response(users, total, start), vec![])
                    }
                }
            }
            Some((mut users, users_total)) => {
                let start = root.start_index;
                self.root_search = None;
                users.extend(resources);
                json_response(
                    200,
                    &discovery::list_response(users, users_total.saturating_add(total), start),
                    vec![],
                )
            }
        }
    }
}
