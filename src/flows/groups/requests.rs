//! What each `/Groups` request plans before any Drupal call: the tasks of a read, list,
//! create, replace, patch or delete, from the request's validated body and parameters.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{check_display_name, member_ids, parse_group_body};
use crate::drupal::user_filter;
use crate::flows::groups::*;
use crate::flows::membership::Change;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::parse_attr_path;
use crate::scim::patch::{self, OpKind};
use crate::scim::projection::Projection;
use serde_json::Value;

impl GroupFlow {
    pub fn get(base_url: &str, projection: Projection, id: &str) -> Self {
        let mut tasks = vec![Task::GetTerm { id: id.to_string() }];
        if projection.wants("members") {
            tasks.push(Task::Walk);
        }
        tasks.push(Task::CheckAuth);
        Self::new(base_url, projection, tasks, Answer::Resource)
    }

    pub fn list(
        base_url: &str,
        projection: Projection,
        filter: Option<&str>,
        sort_by: Option<&str>,
        order: Option<&str>,
        start_index: usize,
        count: usize,
    ) -> Result<Self, ScimError> {
        let mapping = group_mapping();
        let query = match filter {
            None => user_filter::UserQuery::default(),
            Some(f) => user_filter::translate_in(f, &mapping, crate::scim::schema::GROUP_SCHEMA)?,
        };
        let conditions: Vec<(String, String)> = query
            .conditions
            .iter()
            .map(|(k, v)| {
                // Terms have no `created`; their first revision's time stands in for it.
                let v = if k.ends_with("[path]") && v == "created" {
                    "revision_created".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect();
        let sort = match sort_by {
            None => None,
            Some(s) => {
                let p = parse_attr_path(s)
                    .map_err(|e| ScimError::invalid_value(format!("`sortBy`: {e}.")))?;
                let field = if p.is("displayName") {
                    "name"
                } else if p.is_sub("meta", "lastModified") {
                    "changed"
                } else {
                    return Err(ScimError::invalid_value(format!(
                        "Cannot sort groups by `{s}`."
                    )));
                };
                let descending = order.is_some_and(|o| o.eq_ignore_ascii_case("descending"));
                Some(if descending {
                    format!("-{field}")
                } else {
                    field.to_string()
                })
            }
        };
        let mut flow = Self::new(base_url, projection, Vec::new(), Answer::List);
        flow.start_index = start_index;
        if query.matches_nothing {
            flow.tasks.push_back(Task::CheckAuth);
            return Ok(flow);
        }
        flow.post_filter = query.post_filter.clone();
        flow.tasks.push_back(Task::ListTerms {
            conditions,
            sort,
            // A superset is read from the start and cut in the gateway.
            offset: if query.post_filter.is_some() {
                0
            } else {
                start_index.saturating_sub(1)
            },
            count,
            start_index,
            post: query.post_filter.is_some(),
            pager: None,
            reads: Vec::new(),
            pages: Vec::new(),
        });
        if flow.want_members {
            flow.tasks.push_back(Task::Walk);
        }
        flow.tasks.push_back(Task::CheckAuth);
        Ok(flow)
    }

    pub fn create(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        let write = parse_group_body(body)?;
        let members = write.members.unwrap_or_default();
        let mut tasks = Vec::new();
        if !members.is_empty() {
            tasks.push(Task::CheckUsers {
                adds: members.clone(),
                removes: Vec::new(),
            });
        }
        tasks.push(Task::CheckName {
            name: write.display_name.clone(),
            waits: 0,
            since: None,
        });
        tasks.push(Task::CreateTerm {
            name: write.display_name,
            external_id: write.external_id.flatten(),
        });
        let mut flow = Self::new(base_url, projection, tasks, Answer::Created);
        if !members.is_empty() {
            flow.plan.ops.push((Change::Add, Some(members)));
            flow.push_membership_tasks(groups);
        }
        flow.members = vec![Some(Vec::new())];
        Ok(flow)
    }

    pub fn replace(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        id: &str,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        let write = parse_group_body(body)?;
        let resync_roles = !groups.role_grants.is_empty();
        // Members are checked before anything changes; a PUT without `members` keeps them
        // (clearing a group because an IdP left the list out would lose data), and reads
        // them only when the answer shows them or a rename may change their roles.
        let mut tasks = vec![Task::GetTerm { id: id.to_string() }];
        if write.members.is_some() || resync_roles || projection.wants("members") {
            tasks.push(Task::Walk);
        }
        tasks.push(Task::Plan);
        let mut flow = Self::new(base_url, projection, tasks, Answer::Resource);
        if let Some(members) = write.members {
            flow.plan.replace = Some(members);
        }
        flow.resync_roles = resync_roles;
        flow.new_name = Some(write.display_name.clone());
        flow.tasks.push_back(Task::RenameTerm {
            name: write.display_name,
        });
        // PUT replaces: an absent externalId is cleared.
        flow.tasks.push_back(Task::SetExternalId {
            value: write.external_id.flatten(),
        });
        flow.push_membership_tasks(groups);
        Ok(flow)
    }

    pub fn patch(
        base_url: &str,
        projection: Projection,
        groups: &GroupsConfig,
        id: &str,
        body: &[u8],
    ) -> Result<Self, ScimError> {
        let ops = patch::parse(body)?;
        let mut rename: Option<String> = None;
        let mut plan = MemberPlan::default();
        let member_op =
            |plan: &mut MemberPlan, op: OpKind, value: Option<&Value>| -> Result<(), ScimError> {
                match op {
                    OpKind::Add => plan.ops.push((Change::Add, Some(member_ids(value)?))),
                    OpKind::Replace => {
                        plan.ops.clear();
                        plan.replace = Some(member_ids(value)?);
                    }
                    OpKind::Remove => match value {
                        Some(v @ (Value::Array(_) | Value::Object(_))) => {
                            plan.ops.push((Change::Remove, Some(member_ids(Some(v))?)))
                        }
                        _ => plan.ops.push((Change::Remove, None)),
                    },
                }
                Ok(())
            };
        let mut set_name = |v: Option<&Value>| -> Result<(), ScimError> {
            match v {
                Some(Value::String(s)) => {
                    check_display_name(s)?;
                    rename = Some(s.clone());
                    Ok(())
                }
                _ => Err(ScimError::invalid_value("`displayName` must be a string.")),
            }
        };
        let mut external_id: Option<Option<String>> = None;
        for op in &ops {
            match &op.path {
                None => {
                    let Some(Value::Object(values)) = &op.value else { continue };
                    for (k, v) in values {
                        if k.eq_ignore_ascii_case("displayName") {
                            set_name(Some(v))?;
                        } else if k.eq_ignore_ascii_case("externalId") {
                            external_id = Some(crate::drupal::groups::external_id_value(v)?);
                        } else if k.eq_ignore_ascii_case("members") {
                            member_op(&mut plan, op.op, Some(v))?;
                        }
                    }
                }
                                Some(p) if p.attr.is("externalId") => {
                    external_id = Some(match (op.op, &op.value) {
                        (OpKind::Remove, _) | (_, None) => None,
                        (_, Some(v)) => crate::drupal::groups::external_id_value(v)?,
                    });
                }
                Some(p) if p.attr.is("displayName") => {
                    if op.op == OpKind::Remove {
                        return Err(ScimError::new(400, Some(ScimType::Mutability), "`displayName` is required and cannot be removed."));
                    }
                    set_name(op.value.as_ref())?;
                }
                Some(p) if p.attr.attr.eq_ignore_ascii_case("members") => match (&p.filter, op.op) {
                    (None, _) if p.sub_attr.is_none() && p.attr.sub_attr.is_none() => member_op(&mut plan, op.op, op.value.as_ref())?,
                    (Some(crate::scim::filter::Filter::Compare { path, op: crate::scim::filter::CompareOp::Eq, value: crate::scim::filter::CompValue::Str(v) }), OpKind::Remove)
                        if path.is("value") =>
                    {
                        let ids = member_ids(Some(&serde_json::json!([{ "value": v }])))?;
                        plan.ops.push((Change::Remove, Some(ids)));
                    }
                    _ => {
                        return Err(ScimError::bad_request(
                            ScimType::InvalidPath,
                            format!("Unsupported members path `{}`; use `members` or `members[value eq \"…\"]` with remove.", op.raw_path.as_deref().unwrap_or("")),
                        ))
                    }
                },
                                // Not stored for groups: ignored, like unmapped User attributes.
                Some(_) => {}
            }
        }
        // Unknown members are found (Plan) before the rename, so a bad request changes nothing.
        let mut flow = Self::new(
            base_url,
            projection,
            vec![Task::GetTerm { id: id.to_string() }],
            Answer::NoContent,
        );
        // A rename may change the roles the group grants: its members are then all visited.
        let resync = rename.is_some() && !groups.role_grants.is_empty();
        if plan.needs_current() || resync {
            flow.tasks.push_back(Task::Walk);
        }
        let has_members = !plan.is_empty() || resync;
        flow.resync_roles = resync;
        flow.new_name = rename.clone();
        flow.plan = plan;
        if has_members {
            flow.tasks.push_back(Task::Plan);
        }
        if let Some(name) = rename {
            flow.tasks.push_back(Task::RenameTerm { name });
        }
        if let Some(value) = external_id {
            flow.tasks.push_back(Task::SetExternalId { value });
        }
        if has_members {
            flow.push_membership_tasks(groups);
        }
        Ok(flow)
    }

    pub fn delete(base_url: &str, groups: &GroupsConfig, id: &str) -> Self {
        let mut flow = Self::new(
            base_url,
            Projection::default(),
            vec![Task::GetTerm { id: id.to_string() }, Task::Walk],
            Answer::NoContent,
        );
        flow.plan.ops.push((Change::Remove, None));
        flow.tasks.push_back(Task::Plan);
        flow.push_membership_tasks(groups);
        flow.tasks.push_back(Task::DeleteTerm);
        flow.tasks.push_back(Task::SweepDangling);
        flow
    }

    pub(crate) fn push_membership_tasks(&mut self, groups: &GroupsConfig) {
        if !groups.role_grants.is_empty() {
            // The role table is read before anything changes (right after the group itself),
            // so that failing to read it leaves nothing half-done.
            let at = usize::from(matches!(self.tasks.front(), Some(Task::GetTerm { .. })));
            self.tasks.insert(at, Task::LoadRoles);
        }
        self.tasks.push_back(Task::Members);
    }
}
