//! Digesting Drupal's replies to group tasks: terms, name checks, member pages and
//! membership outcomes, which queue the next tasks or settle the answer.

use crate::config::groups::GroupsConfig;
use crate::drupal::groups::{parse_roles, parse_term, unknown_members, GroupCalls, Member, Term};
use crate::drupal::jsonapi::{expect_document, map_failure, DRUPAL_PAGE_MAX};
use crate::flows::groups::*;
use crate::flows::membership::{Batch, Change, Outcome};
use crate::flows::scope::LockScope;
use crate::http::DrupalReply;
use crate::scim::error::{ScimError, ScimType};
use serde_json::Value;

impl GroupFlow {
    pub(crate) fn take_replies(
        &mut self,
        groups: &GroupsConfig,
        calls: &GroupCalls,
        env: &mut LockScope,
        replies: &[DrupalReply],
    ) -> Result<(), ScimError> {
        let first = replies.first().cloned().unwrap_or(DrupalReply::Failed);
        let Some(task) = self.tasks.front_mut() else {
            return Ok(());
        };
        match task {
            Task::GetTerm { .. } => {
                if let DrupalReply::Answer { status: 404, .. } = first {
                    return Err(ScimError::not_found("Group not found."));
                }
                let doc = expect_document(&first, &[200])?;
                let term = doc
                    .get("data")
                    .and_then(|d| parse_term(d, &groups.vocabulary))
                    .ok_or_else(|| ScimError::not_found("Group not found."))?;
                if let Some(if_match) = &self.if_match {
                    if !crate::flows::request::etag_matches(if_match, &term.version()) {
                        return Err(crate::flows::request::precondition_failed());
                    }
                }
                self.terms = vec![term];
                self.tasks.pop_front();
            }
            Task::CheckName { name, .. } => {
                if self.name_locked.as_deref() != Some(name.as_str()) {
                    return Ok(()); // still waiting for the lock
                }
                let doc = expect_document(&first, &[200])?;
                let own = self.terms.first().map(|t| t.uuid.clone());
                let taken = doc
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| parse_term(d, &groups.vocabulary))
                    .any(|t| {
                        t.name.to_lowercase() == name.to_lowercase()
                            && Some(&t.uuid) != own.as_ref()
                    });
                if taken {
                    return Err(ScimError::conflict(format!(
                        "A group named `{name}` already exists."
                    )));
                }
                self.tasks.pop_front();
            }
            Task::CreateTerm { name, .. } => {
                let unknown_outcome = matches!(
                    first,
                    DrupalReply::Failed
                        | DrupalReply::Answer {
                            status: 500..=599,
                            ..
                        }
                );
                let doc = match expect_document(&first, &[201]) {
                    Ok(doc) => doc,
                    Err(failure) if unknown_outcome => {
                        let name = name.clone();
                        self.tasks.pop_front();
                        self.tasks.push_front(Task::FindCreated { name, failure });
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                let term = doc
                    .get("data")
                    .and_then(|d| parse_term(d, &groups.vocabulary))
                    .ok_or_else(|| {
                        ScimError::bad_gateway("Drupal's answer to the group create is not a term.")
                    })?;
                self.terms = vec![term.clone()];
                self.release_name(env);
                if !self.plan.is_empty() {
                    self.make_plan()?;
                }
                self.tasks.pop_front();
            }
            Task::FindCreated { name, failure } => {
                let search = format!("filter=displayName eq \"{name}\"");
                let doc = match expect_document(&first, &[200]) {
                    Ok(doc) => doc,
                    Err(_) => {
                        let mut e = failure.clone();
                        e.detail = format!(
                            "{} The group may have been created all the same: look for it (`{search}`) before sending the create again.",
                            e.detail
                        );
                        return Err(e);
                    }
                };
                let created = doc
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| parse_term(d, &groups.vocabulary))
                    .find(|t| t.name.to_lowercase() == name.to_lowercase());
                let Some(term) = created else {
                    let mut e = failure.clone();
                    e.detail = format!(
                        "{} No group of this name exists now, so sending the create again is safe; if Drupal was only slow, the group may still appear: look for it (`{search}`) first.",
                        e.detail
                    );
                    return Err(e);
                };
                // Drupal did create it (the name's lock kept other creates of it out): go on.
                self.terms = vec![term];
                self.release_name(env);
                if !self.plan.is_empty() {
                    self.make_plan()?;
                }
                self.tasks.pop_front();
            }
            Task::SetExternalId { .. } | Task::RenameTerm { .. } => {
                let doc = expect_document(&first, &[200])?;
                if let Some(t) = doc
                    .get("data")
                    .and_then(|d| parse_term(d, &groups.vocabulary))
                {
                    self.terms = vec![t];
                }
                self.term_changed = true;
                self.release_name(env);
                self.tasks.pop_front();
            }
            Task::Walk => {
                self.on_member_pages(groups, replies)?;
                if self.walk.iter().all(|w| w.done) {
                    self.tasks.pop_front();
                }
            }
            Task::CheckAuth => {
                expect_document(&first, &[200])?;
                self.users_read = true;
                self.tasks.pop_front();
            }
            Task::CheckUsers { adds, .. } => {
                let adds = adds.clone();
                let mut found: Vec<String> = Vec::new();
                for r in replies {
                    let doc = expect_document(r, &[200])?;
                    for d in doc
                        .get("data")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(id) = d.get("id").and_then(Value::as_str) {
                            self.note_protected(d);
                            if let Some(p) = self.is_protected(id).filter(|p| p.unreadable()) {
                                return Err(p.refusal());
                            }
                            found.push(id.to_string());
                        }
                    }
                }
                let missing: Vec<String> = adds
                    .iter()
                    .filter(|i| !found.contains(i))
                    .cloned()
                    .collect();
                if !missing.is_empty() {
                    return Err(unknown_members(&missing));
                }
                self.tasks.pop_front();
                self.leave_out_protected();
            }
            Task::LoadRoles => {
                let doc = expect_document(&first, &[200])?;
                self.roles = parse_roles(&doc);
                if let Some((role, why)) =
                    crate::drupal::groups::dangerous_grant(&doc, &groups.managed_roles())
                {
                    return Err(ScimError::new(
                        403,
                        None,
                        format!(
                            "The role `{role}` named in the gateway's role grants {why}: granting it would let the IdP take over the site, so the gateway grants no role until it is removed from `groups.role_grants`. Nothing was changed."
                        ),
                    ));
                }
                if let Some(missing) = groups
                    .managed_roles()
                    .into_iter()
                    .find(|r| !self.roles.iter().any(|(n, _)| n == r))
                {
                    return Err(ScimError::bad_gateway(format!(
                        "The role `{missing}` named in the gateway's role grants does not exist in Drupal (or the service account lacks 'administer permissions')."
                    )));
                }
                if let Some(b) = self.batch.as_mut() {
                    b.set_roles(self.roles.clone());
                }
                self.tasks.pop_front();
            }
            Task::Members => {
                if let Some(b) = self.batch.as_mut() {
                    b.on_replies(groups, calls, env, replies);
                }
            }
            Task::SweepDangling => {
                self.tasks.pop_front();
                let doc = match expect_document(&first, &[200]) {
                    Ok(doc) => doc,
                    // The undone create is answered as it is: a reference left to its deleted
                    // term is repaired at the user's next change.
                    Err(_) if self.undo.is_some() => return Ok(()),
                    Err(e) => return Err(e),
                };
                let users: Vec<(String, Change)> = doc
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    // An account SCIM may not write keeps even its reference to the
                    // deleted term (see docs/groups.md).
                    .filter(|d| {
                        self.protection
                            .as_ref()
                            .and_then(|p| member_refusal(p, d))
                            .is_none()
                    })
                    .filter_map(|d| d.get("id").and_then(Value::as_str))
                    .filter(|id| crate::drupal::jsonapi::is_uuid(id))
                    .map(|id| (id.to_string(), Change::Sync))
                    .collect();
                if !users.is_empty() {
                    let term = term_id(&self.terms);
                    self.batch = Some(Batch::new(&term, users, self.roles.clone()));
                    self.tasks.push_front(Task::Members);
                }
            }
            Task::DeleteTerm => {
                match &first {
                    DrupalReply::Answer {
                        status: 204 | 404, ..
                    } => {}
                    other if self.undo.is_some() => return Err(map_failure(other)),
                    other => {
                        let mut e = map_failure(other);
                        e.detail = format!(
                            "Every member was removed from the group, but deleting it failed: {} It exists with no members; sending the DELETE again is safe.",
                            e.detail
                        );
                        return Err(e);
                    }
                }
                if let Some(undo) = self.undo.as_mut() {
                    undo.term_deleted = true;
                }
                self.tasks.pop_front();
            }
            Task::ListTerms {
                offset,
                count,
                start_index,
                post: true,
                ..
            } => {
                // Drupal's answer is a superset: keep the matches, read on.
                let doc = expect_document(&first, &[200])?;
                let mut terms: Vec<Term> = doc
                    .get("data")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| parse_term(d, &groups.vocabulary))
                    .collect();
                let more = doc.pointer("/links/next").is_some();
                let mapping = group_mapping();
                if let Some(f) = &self.post_filter {
                    terms.retain(|t| {
                        crate::scim::filter_eval::matches(
                            f,
                            &t.to_scim(&self.base_url, None),
                            &mapping,
                        )
                    });
                }
                self.terms.extend(terms);
                if more {
                    if *offset >= self.max_checked_pages.saturating_mul(DRUPAL_PAGE_MAX) {
                        return Err(ScimError::new(400, Some(ScimType::TooMany), "The filter needs more groups checked than the gateway reads for one request; narrow it."));
                    }
                    *offset = offset.saturating_add(DRUPAL_PAGE_MAX);
                    return Ok(());
                }
                self.total = self.terms.len();
                let skip = start_index.saturating_sub(1);
                self.terms = self.terms.iter().skip(skip).take(*count).cloned().collect();
                self.tasks.pop_front();
            }
            Task::ListTerms {
                count,
                pager: Some(pager),
                reads,
                pages,
                ..
            } => {
                let mut round = Vec::with_capacity(reads.len());
                for (read, reply) in reads.iter().zip(replies) {
                    let doc = expect_document(reply, &[200])?;
                    let data = doc.get("data").and_then(Value::as_array);
                    round.push((
                        *read,
                        crate::flows::paging::Found {
                            len: data.map(Vec::len).unwrap_or(0),
                            has_next: doc.pointer("/links/next").is_some(),
                        },
                    ));
                    if read.window {
                        let terms = data
                            .into_iter()
                            .flatten()
                            .filter_map(|d| parse_term(d, &groups.vocabulary))
                            .collect();
                        pages.push((read.offset, terms));
                    }
                }
                match pager.learn(&round) {
                    crate::flows::paging::PagerRound::Read(next) => {
                        *reads = next;
                        return Ok(());
                    }
                    crate::flows::paging::PagerRound::Total(total) => self.total = total,
                    crate::flows::paging::PagerRound::GaveUp => {
                        return Err(ScimError::new(
                            503,
                            None,
                            "The group list kept changing while it was counted; retry.",
                        ))
                    }
                }
                pages.sort_by_key(|(offset, _)| *offset);
                let count = *count;
                self.terms = std::mem::take(pages)
                    .into_iter()
                    .flat_map(|(_, terms)| terms)
                    .take(count)
                    .collect();
                self.tasks.pop_front();
            }
            Task::ListTerms { .. } => {
                return Err(ScimError::internal(
                    "A group list was read before it started.",
                ))
            }
            Task::Plan => {
                self.tasks.pop_front();
            }
        }
        Ok(())
    }

    /// Takes in a round of member pages (the replies to `walk_calls`, in order).
    pub(crate) fn on_member_pages(
        &mut self,
        groups: &GroupsConfig,
        replies: &[DrupalReply],
    ) -> Result<(), ScimError> {
        let round = std::mem::take(&mut self.walk_round);
        for (position, group) in round.iter().copied().enumerate() {
            if self.walk.get(group).is_none_or(|w| w.done) {
                // A page read past the end of a group that the page before it ended.
                continue;
            }
            let reply = replies.get(position).unwrap_or(&DrupalReply::Failed);
            let doc = expect_document(reply, &[200])?;
            self.users_read = true;
            let data = doc
                .get("data")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            self.members_read = self.members_read.saturating_add(data.len());
            for d in data {
                let uuid = d.get("id").and_then(Value::as_str);
                let name = d.pointer("/attributes/name").and_then(Value::as_str);
                match (uuid, name) {
                    // A retired account is no member any more.
                    (Some(_), Some(n))
                        if n.to_ascii_lowercase()
                            .starts_with(crate::scim::user::RETIRED_NAME_PREFIX) => {}
                    (Some(u), Some(n)) => {
                        self.note_protected(d);
                        if let Some(Some(list)) = self.members.get_mut(group) {
                            list.push(Member {
                                uuid: u.to_string(),
                                name: n.to_string(),
                            });
                        }
                    }
                    // Users without an id or a name are not what Drupal shows the service
                    // account: Drupal did not accept it.
                    _ => {
                        return Err(map_failure(&DrupalReply::Answer {
                            status: 403,
                            body: Vec::new(),
                        }))
                    }
                }
            }
            if let Some(cursor) = self.walk.get_mut(group) {
                cursor.next_offset = cursor.next_offset.saturating_add(DRUPAL_PAGE_MAX);
                cursor.done = doc.pointer("/links/next").is_none();
            }
        }
        // A group that filled its pages earns twice as many next round.
        let most = MAX_MEMBER_PAGES_AT_ONCE.min(groups.concurrency).max(1);
        for (group, cursor) in self.walk.iter_mut().enumerate() {
            if !cursor.done && round.contains(&group) {
                cursor.pages_at_once = cursor.pages_at_once.saturating_mul(2).min(most);
            }
        }
        if self.members_read > self.walk_cap() {
            return Err(self.too_many_members());
        }
        Ok(())
    }

    /// Takes the changes to accounts found read-only by the user check out of the batch
    /// (before it starts): they are left out and reported, the rest goes ahead.
    pub(crate) fn leave_out_protected(&mut self) {
        let read_only: Vec<String> = self.read_only.iter().map(|p| p.uuid.clone()).collect();
        let Some(batch) = self.batch.as_mut() else {
            return;
        };
        let dropped = batch.drop_pending(&read_only);
        for (u, c) in dropped {
            if c == Change::Sync {
                continue;
            }
            if c == Change::Add {
                if let Some(Some(list)) = self.members.first_mut() {
                    list.retain(|m| m.uuid != u);
                }
            }
            self.leave_out(&u, c);
        }
    }

    /// Concludes a finished membership batch: every change applied, or an answer that says
    /// what was applied and what failed; a create whose adds failed is undone instead.
    pub(crate) fn finish_members(&mut self) -> Result<(), ScimError> {
        let Some(batch) = self.batch.as_ref() else {
            return Ok(());
        };
        let failures: Vec<String> = batch
            .results
            .iter()
            .filter_map(|(u, _, o)| match o {
                Outcome::Done => None,
                Outcome::NoSuchUser => Some(format!("{u}: no such user")),
                Outcome::NoSuchGroup => Some(format!("{u}: no such group")),
                Outcome::Failed(why) => Some(format!("{u}: {why}")),
            })
            .collect();
        let done = batch.results.len().saturating_sub(failures.len());
        if let Some(undo) = &self.undo {
            if failures.is_empty() || undo.term_deleted {
                // Repairs after the undone term's delete are best effort: a reference left
                // to a deleted term is repaired at the user's next change.
                return Ok(());
            }
            return Err(ScimError::bad_gateway(format!(
                "removing the members added again failed ({})",
                failures.join("; ")
            )));
        }
        if batch
            .results
            .iter()
            .any(|(_, _, o)| matches!(o, Outcome::NoSuchGroup))
        {
            return Err(ScimError::not_found(format!(
                "The group was deleted while its members were being changed ({done} change(s) had been applied)."
            )));
        }
        if failures.is_empty() {
            return Ok(());
        }
        if self.answer == Answer::Created {
            // A retry of the create would meet its own group (409): undo it instead, the
            // adds that may have landed first (a failed add may have landed all the same).
            let added: Vec<String> = batch
                .results
                .iter()
                .filter(|(_, c, o)| *c == Change::Add && !matches!(o, Outcome::NoSuchUser))
                .map(|(u, _, _)| u.clone())
                .collect();
            let removals = added.iter().map(|u| (u.clone(), Change::Remove)).collect();
            self.batch = Some(Batch::new(
                &term_id(&self.terms),
                removals,
                self.roles.clone(),
            ));
            self.undo = Some(Undo {
                failures,
                added,
                term_deleted: false,
            });
            self.tasks.push_front(Task::SweepDangling);
            self.tasks.push_front(Task::DeleteTerm);
            self.tasks.push_front(Task::Members);
            return Ok(());
        }
        let failed = failures.len();
        let listed = failures.join("; ");
        if self.tasks.iter().any(|t| matches!(t, Task::DeleteTerm)) {
            return Err(ScimError::bad_gateway(format!(
                "{done} of the group's members were removed from it, {failed} removal(s) failed ({listed}); the group was not deleted. Sending the DELETE again is safe."
            )));
        }
        let mut detail =
            format!("{done} membership change(s) were applied, {failed} failed ({listed}).");
        if !self.left_out.is_empty() {
            detail.push_str(&format!(
                " {} change(s) to accounts SCIM may not change were left out (they are not failures, and a retry leaves them out again).",
                self.left_out.len()
            ));
        }
        if self.term_changed {
            detail.push_str(" The group's new displayName or externalId was saved.");
            if self.if_match.is_some() {
                detail.push_str(" That changed its version: send the request again with the new version (`GET` it) or without `If-Match`.");
            }
        }
        detail.push_str(" Sending the same request again is safe: adding a member twice or removing a non-member changes nothing.");
        Err(ScimError::bad_gateway(detail))
    }
}
