//! Patching a group (`PATCH /Groups/{id}`): the operations read into a new name, a new
//! `externalId` and a member plan, and the tasks that apply them after the group is read.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{check_display_name, external_id_value, member_ids};
use crate::flows::groups::changes::MemberPlan;
use crate::flows::groups::members::push_membership_tasks;
use crate::flows::groups::state::GroupState;
use crate::flows::groups::task::{GroupAnswer, GroupTask};
use crate::flows::membership::Change;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::{CompValue, CompareOp, Filter};
use crate::scim::patch::{self, OpKind, Operation};
use crate::scim::projection::Projection;
use serde_json::Value;
use std::collections::VecDeque;

/// What a patch's operations ask for.
#[derive(Default)]
struct PatchAsked {
    rename: Option<String>,
    /// `Some(None)`: the `externalId` is removed.
    external_id: Option<Option<String>>,
    plan: MemberPlan,
}

pub(crate) fn start(
    base_url: &str,
    projection: Projection,
    groups: &GroupsConfig,
    id: &str,
    body: &[u8],
) -> Result<(VecDeque<GroupTask>, GroupState), ScimError> {
    let mut asked = PatchAsked::default();
    for op in &patch::parse(body)? {
        asked.take(op)?;
    }
    // Unknown members are found (Plan) before the rename, so a bad request changes nothing.
    let mut tasks = VecDeque::from([GroupTask::GetTerm { id: id.to_string() }]);
    let mut state = GroupState::new(base_url, projection, GroupAnswer::NoContent);
    // A rename may change the roles the group grants: its members are then all visited.
    let resync = asked.rename.is_some() && !groups.role_grants.is_empty();
    if asked.plan.needs_current() || resync {
        tasks.push_back(GroupTask::Walk);
    }
    let has_members = !asked.plan.is_empty() || resync;
    state.changes.resync_roles = resync;
    state.group.new_name = asked.rename.clone();
    state.changes.plan = asked.plan;
    if has_members {
        tasks.push_back(GroupTask::Plan);
    }
    if let Some(name) = asked.rename {
        tasks.push_back(GroupTask::RenameTerm { name });
    }
    if let Some(value) = asked.external_id {
        tasks.push_back(GroupTask::SetExternalId { value });
    }
    if has_members {
        push_membership_tasks(&mut tasks, groups);
    }
    Ok((tasks, state))
}

impl PatchAsked {
    fn take(&mut self, op: &Operation) -> Result<(), ScimError> {
        let Some(p) = &op.path else {
            let Some(Value::Object(values)) = &op.value else {
                return Ok(());
            };
            for (k, v) in values {
                if k.eq_ignore_ascii_case("displayName") {
                    self.rename = Some(display_name(Some(v))?);
                } else if k.eq_ignore_ascii_case("externalId") {
                    self.external_id = Some(external_id_value(v)?);
                } else if k.eq_ignore_ascii_case("members") {
                    member_op(&mut self.plan, op.op, Some(v))?;
                }
            }
            return Ok(());
        };
        if p.attr.is("externalId") {
            self.external_id = Some(match (op.op, &op.value) {
                (OpKind::Remove, _) | (_, None) => None,
                (_, Some(v)) => external_id_value(v)?,
            });
        } else if p.attr.is("displayName") {
            if op.op == OpKind::Remove {
                return Err(ScimError::new(
                    400,
                    Some(ScimType::Mutability),
                    "`displayName` is required and cannot be removed.",
                ));
            }
            self.rename = Some(display_name(op.value.as_ref())?);
        } else if p.attr.attr.eq_ignore_ascii_case("members") {
            self.take_members_path(op)?;
        }
        // Other attributes are not stored for groups: ignored, like unmapped User attributes.
        Ok(())
    }

    /// An operation on `members` or `members[value eq "…"]`.
    fn take_members_path(&mut self, op: &Operation) -> Result<(), ScimError> {
        let Some(p) = &op.path else {
            return Ok(());
        };
        match (&p.filter, op.op) {
            (None, _) if p.sub_attr.is_none() && p.attr.sub_attr.is_none() => {
                member_op(&mut self.plan, op.op, op.value.as_ref())
            }
            (
                Some(Filter::Compare {
                    path,
                    op: CompareOp::Eq,
                    value: CompValue::Str(v),
                }),
                OpKind::Remove,
            ) if path.is("value") => {
                let ids = member_ids(Some(&serde_json::json!([{ "value": v }])))?;
                self.plan.ops.push((Change::Remove, Some(ids)));
                Ok(())
            }
            _ => Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!(
                    "Unsupported members path `{}`; use `members` or `members[value eq \"…\"]` with remove.",
                    op.raw_path.as_deref().unwrap_or("")
                ),
            )),
        }
    }
}

fn display_name(v: Option<&Value>) -> Result<String, ScimError> {
    match v {
        Some(Value::String(s)) => {
            check_display_name(s)?;
            Ok(s.clone())
        }
        _ => Err(ScimError::invalid_value("`displayName` must be a string.")),
    }
}

fn member_op(plan: &mut MemberPlan, op: OpKind, value: Option<&Value>) -> Result<(), ScimError> {
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn take(ops: Value) -> Result<PatchAsked, ScimError> {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": ops});
        let mut asked = PatchAsked::default();
        for op in &patch::parse(body.to_string().as_bytes()).unwrap() {
            asked.take(op)?;
        }
        Ok(asked)
    }

    #[test]
    fn a_patch_reads_into_a_rename_an_external_id_and_a_member_plan() {
        let asked = take(json!([
            {"op": "replace", "value": {"displayName": "Platform", "externalId": "x1"}},
            {"op": "add", "path": "members", "value": [{"value": "u1"}]},
            {"op": "remove", "path": "members[value eq \"u2\"]"},
            {"op": "remove", "path": "externalId"},
            {"op": "replace", "path": "title", "value": "not stored"}
        ]))
        .unwrap();
        assert_eq!(asked.rename.as_deref(), Some("Platform"));
        assert_eq!(asked.external_id, Some(None));
        assert_eq!(
            asked.plan.ops,
            vec![
                (Change::Add, Some(vec!["u1".to_string()])),
                (Change::Remove, Some(vec!["u2".to_string()]))
            ]
        );
        assert!(asked.plan.replace.is_none() && !asked.plan.needs_current());
        // `replace` of the members drops the operations before it; `remove` without a value
        // removes everyone.
        let asked = take(json!([
            {"op": "add", "path": "members", "value": [{"value": "u1"}]},
            {"op": "replace", "path": "members", "value": [{"value": "u3"}]},
            {"op": "remove", "path": "members"}
        ]))
        .unwrap();
        assert_eq!(asked.plan.replace, Some(vec!["u3".to_string()]));
        assert_eq!(asked.plan.ops, vec![(Change::Remove, None)]);
        // Refused: removing the name, a name that is no string, a sub-attribute of members.
        for op in [
            json!({"op": "remove", "path": "displayName"}),
            json!({"op": "replace", "path": "displayName", "value": 7}),
            json!({"op": "add", "path": "members.value", "value": "u1"}),
        ] {
            assert!(take(json!([op.clone()])).is_err(), "{op}");
        }
    }
}
