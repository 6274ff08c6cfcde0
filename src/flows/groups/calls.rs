//! The Drupal calls each queued group task makes (read the term, check the name, walk the
//! members, write memberships, undo a failed create), one round at a time.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{unknown_members, GroupCalls};
use crate::drupal::jsonapi::DRUPAL_PAGE_MAX;
use crate::flows::groups::*;
use crate::flows::membership::{Change, Outcome};
use crate::flows::scope::LockScope;
use crate::http::{DrupalCall, Step};
use crate::scim::error::ScimError;

impl GroupFlow {
    pub(crate) fn next_step(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
    ) -> Result<Step, ScimError> {
        loop {
            let Some(task) = self.tasks.front_mut() else {
                return Ok(self.answer_step(env));
            };
            let out: Vec<DrupalCall> = match task {
                Task::GetTerm { id } => vec![calls.get_term(id)],
                Task::CheckName { name, waits, since } => {
                    if env.locks.try_lock(
                        &name_lock_key(name),
                        env.owner,
                        env.now_ms,
                        env.lock_ttl_ms,
                    ) {
                        self.name_locked = Some(name.clone());
                    } else {
                        *waits = waits.saturating_add(1);
                        crate::runtime::tally::note(crate::runtime::tally::Event::LockWait);
                        let started = *since.get_or_insert(env.now_ms);
                        if *waits > MAX_NAME_WAITS
                            || env.now_ms.saturating_sub(started) > env.lock_ttl_ms
                        {
                            return Err(ScimError::new(
                                503,
                                None,
                                "Another request is creating a group with this name; retry.",
                            )
                            .with_header("retry-after", "1"));
                        }
                    }
                    if self.name_locked.as_deref() == Some(name.as_str()) {
                        vec![calls.terms_named(name)]
                    } else {
                        vec![calls.pause(calls.terms_named(name))]
                    }
                }
                Task::CreateTerm { name, external_id } => {
                    vec![calls.create_term(name, external_id.as_deref())]
                }
                Task::FindCreated { name, .. } => vec![calls.terms_named(name)],
                Task::SetExternalId { value } => {
                    let current = self.terms.first().and_then(|t| t.external_id.clone());
                    if current == *value {
                        self.tasks.pop_front();
                        continue;
                    }
                    let id = term_id(&self.terms);
                    vec![calls.set_external_id(&id, value.as_deref())]
                }
                Task::RenameTerm { name } => {
                    let current = self
                        .terms
                        .first()
                        .map(|t| t.name.clone())
                        .unwrap_or_default();
                    if current == *name {
                        self.tasks.pop_front();
                        continue;
                    }
                    // A new name (not just new capitals) must be free: check it first.
                    if !current.eq_ignore_ascii_case(name)
                        && self.name_locked.as_deref() != Some(name.as_str())
                    {
                        let name = name.clone();
                        self.tasks.push_front(Task::CheckName {
                            name,
                            waits: 0,
                            since: None,
                        });
                        continue;
                    }
                    let id = term_id(&self.terms);
                    vec![calls.rename_term(&id, name)]
                }
                Task::Walk => {
                    let out = self.walk_calls(groups, calls)?;
                    if out.is_empty() {
                        self.tasks.pop_front();
                        continue;
                    }
                    out
                }
                Task::CheckAuth => {
                    if self.users_read {
                        self.tasks.pop_front();
                        continue;
                    }
                    vec![calls.check_service_account()]
                }
                Task::CheckUsers { adds, removes } => {
                    let ours: Vec<String> = adds
                        .iter()
                        .chain(removes.iter())
                        .filter(|i| crate::drupal::jsonapi::is_uuid(i))
                        .cloned()
                        .collect();
                    if ours.is_empty() {
                        if !adds.is_empty() {
                            // Not one of them could be a user: no need to ask Drupal.
                            return Err(unknown_members(adds));
                        }
                        self.tasks.pop_front();
                        continue;
                    }
                    ours.chunks(DRUPAL_PAGE_MAX)
                        .map(|c| calls.users_with_ids(c))
                        .collect()
                }
                Task::Plan => {
                    self.tasks.pop_front();
                    self.make_plan()?;
                    continue;
                }
                Task::LoadRoles => vec![calls.list_roles()],
                Task::Members => {
                    let Some(batch) = self.batch.as_mut() else {
                        self.tasks.pop_front();
                        continue;
                    };
                    if batch.is_finished() {
                        self.tasks.pop_front();
                        self.finish_members()?;
                        continue;
                    }
                    batch.next_calls(groups, calls, env)
                }
                Task::DeleteTerm => {
                    let id = term_id(&self.terms);
                    vec![calls.delete_term(&id)]
                }
                Task::SweepDangling => match self.terms.first().and_then(|t| t.tid) {
                    Some(tid) => vec![calls.users_referencing_tid(tid)],
                    None => {
                        self.tasks.pop_front();
                        continue;
                    }
                },
                Task::ListTerms {
                    conditions,
                    sort,
                    offset,
                    count,
                    post,
                    pager,
                    reads,
                    ..
                } => {
                    if *post {
                        vec![calls.list_terms(
                            conditions,
                            sort.as_deref(),
                            *offset,
                            DRUPAL_PAGE_MAX,
                        )]
                    } else {
                        if pager.is_none() {
                            let (p, first) =
                                crate::flows::paging::Pager::start(*offset, *count, None);
                            *pager = Some(p);
                            *reads = first;
                        }
                        reads
                            .iter()
                            .map(|r| {
                                if r.window {
                                    calls.list_terms(conditions, sort.as_deref(), r.offset, r.limit)
                                } else {
                                    calls.count_terms(conditions, r.offset, r.limit)
                                }
                            })
                            .collect()
                    }
                }
            };
            return Ok(Step::Call(out));
        }
    }

    /// An error while undoing a create: the group exists after all, and the answer says so.
    pub(crate) fn while_undoing(&self, mut e: ScimError) -> ScimError {
        let Some(undo) = &self.undo else {
            return e;
        };
        if undo.term_deleted {
            return e;
        }
        let term = self.terms.first();
        let name = term.map(|t| t.name.as_str()).unwrap_or("");
        let id = term.map(|t| t.uuid.as_str()).unwrap_or("");
        // Who may still be a member: the adds that landed, less the removals that did.
        let removed: Vec<&str> = self
            .batch
            .iter()
            .flat_map(|b| b.results.iter())
            .filter(|(_, c, o)| *c == Change::Remove && *o == Outcome::Done)
            .map(|(u, _, _)| u.as_str())
            .collect();
        let left: Vec<&str> = undo
            .added
            .iter()
            .map(String::as_str)
            .filter(|u| !removed.contains(u))
            .collect();
        let members = if left.is_empty() {
            "no members".to_string()
        } else {
            format!("these members or some of them: {}", left.join(", "))
        };
        e.detail = format!(
            "Adding the members of the new group `{name}` failed ({}), and undoing the create failed too: {}. The group exists (id `{id}`) with {members}; delete it (`DELETE /Groups/{id}`) before sending the create again, or add the missing members with PATCH.",
            undo.failures.join("; "),
            e.detail.trim_end_matches('.')
        );
        if e.status < 500 {
            e.status = 502;
            e.scim_type = None;
        }
        e
    }
}
