//! Reading the members of the groups at hand: one page of a group first, then twice as many
//! each round while it proves larger, within the request's member cap.

use crate::drupal::groups::{GroupCalls, Member, Term};
use crate::drupal::jsonapi::{expect_document, map_failure, DRUPAL_PAGE_MAX};
use crate::flows::groups::protection::ProtectedAccounts;
use crate::http::{DrupalCall, DrupalReply};
use crate::scim::error::ScimError;
use serde_json::Value;

/// Member pages read at once for one group, at most: a walk reads one page, then twice as
/// many each round while the group proves larger (1, 2, 4, 4, …), so a small group costs one
/// call and a large one a fifth of the rounds, at the price of at most 3 reads past its end
/// (and no more of a small Drupal's PHP workers than a few).
pub(crate) const MAX_MEMBER_PAGES_AT_ONCE: usize = 4;
/// Member pages read at once by one request (all its groups together), at most.
pub(crate) const MAX_MEMBER_PAGES_PER_ROUND: usize = 16;

/// Where one group's member walk stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WalkCursor {
    /// Drupal offset of the next page to read.
    pub(crate) next_offset: usize,
    pub(crate) done: bool,
    /// Pages to read in the next round.
    pub(crate) pages_at_once: usize,
}

/// Why a walk stops before its end.
#[derive(Debug)]
pub(crate) enum WalkStop {
    Failed(ScimError),
    /// More members follow than the request may read.
    OverCap,
}

impl From<ScimError> for WalkStop {
    fn from(e: ScimError) -> Self {
        WalkStop::Failed(e)
    }
}

/// The members read so far, and where each group's walk stands.
#[derive(Debug, Default)]
pub(crate) struct MemberWalk {
    /// Members per term, when read.
    pub(crate) members: Vec<Option<Vec<Member>>>,
    /// Per group being read, where its walk stands.
    pub(crate) cursors: Vec<WalkCursor>,
    /// For each call of the round in flight, the group it reads.
    pub(crate) round: Vec<usize>,
    /// Member rows read so far (all groups).
    pub(crate) rows_read: usize,
}

impl MemberWalk {
    pub(crate) fn is_done(&self) -> bool {
        self.cursors.iter().all(|w| w.done)
    }

    /// The member pages to read next: for each group not read through yet, as many pages as
    /// it has earned (see `MAX_MEMBER_PAGES_AT_ONCE`), within the round's budget and no
    /// further than `cap` rows.
    pub(crate) fn calls(
        &mut self,
        terms: &[Term],
        cap: usize,
        concurrency: usize,
        calls: &GroupCalls,
    ) -> Result<Vec<DrupalCall>, WalkStop> {
        if self.cursors.is_empty() {
            let start = WalkCursor {
                next_offset: 0,
                done: false,
                pages_at_once: 1,
            };
            self.cursors = vec![start; terms.len()];
            self.members = vec![Some(Vec::new()); terms.len()];
        }
        // Enough pages to tell whether the groups hold more than the cap, and no more.
        let pages_to_cap = (cap.saturating_sub(self.rows_read) / DRUPAL_PAGE_MAX).saturating_add(1);
        let mut budget = MAX_MEMBER_PAGES_PER_ROUND
            .min(concurrency)
            .min(pages_to_cap)
            .max(1);
        let mut out = Vec::new();
        let mut round = Vec::new();
        for (group, cursor) in self.cursors.iter().enumerate() {
            if cursor.done {
                continue;
            }
            if cursor.next_offset > cap {
                return Err(WalkStop::OverCap);
            }
            let term = terms.get(group).map(|t| t.uuid.as_str()).unwrap_or("");
            let mut offset = cursor.next_offset;
            for _ in 0..cursor.pages_at_once {
                if budget == 0 || offset > cap {
                    break;
                }
                out.push(calls.members_page(term, offset));
                round.push(group);
                budget = budget.saturating_sub(1);
                offset = offset.saturating_add(DRUPAL_PAGE_MAX);
            }
            if budget == 0 {
                break;
            }
        }
        self.round = round;
        Ok(out)
    }

    /// Takes in a round of member pages (the replies to `calls`, in order); `users_read` is
    /// set once a page proves Drupal accepted the service account.
    pub(crate) fn take_pages(
        &mut self,
        replies: &[DrupalReply],
        concurrency: usize,
        cap: usize,
        protected: &mut ProtectedAccounts,
        users_read: &mut bool,
    ) -> Result<(), WalkStop> {
        let round = std::mem::take(&mut self.round);
        for (position, group) in round.iter().copied().enumerate() {
            if self.cursors.get(group).is_none_or(|w| w.done) {
                // A page read past the end of a group that the page before it ended.
                continue;
            }
            let reply = replies.get(position).unwrap_or(&DrupalReply::Failed);
            let doc = expect_document(reply, &[200])?;
            *users_read = true;
            self.take_page(group, &doc, protected)?;
        }
        // A group that filled its pages earns twice as many next round.
        let most = MAX_MEMBER_PAGES_AT_ONCE.min(concurrency).max(1);
        for (group, cursor) in self.cursors.iter_mut().enumerate() {
            if !cursor.done && round.contains(&group) {
                cursor.pages_at_once = cursor.pages_at_once.saturating_mul(2).min(most);
            }
        }
        if self.rows_read > cap {
            return Err(WalkStop::OverCap);
        }
        Ok(())
    }

    /// One page of one group's members.
    fn take_page(
        &mut self,
        group: usize,
        doc: &Value,
        protected: &mut ProtectedAccounts,
    ) -> Result<(), ScimError> {
        let data = doc
            .get("data")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.rows_read = self.rows_read.saturating_add(data.len());
        for d in data {
            let uuid = d.get("id").and_then(Value::as_str);
            let name = d.pointer("/attributes/name").and_then(Value::as_str);
            match (uuid, name) {
                // A retired account is no member any more.
                (Some(_), Some(n))
                    if n.to_ascii_lowercase()
                        .starts_with(crate::scim::user::RETIRED_NAME_PREFIX) => {}
                (Some(u), Some(n)) => {
                    protected.note(d);
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
        if let Some(cursor) = self.cursors.get_mut(group) {
            cursor.next_offset = cursor.next_offset.saturating_add(DRUPAL_PAGE_MAX);
            cursor.done = doc.pointer("/links/next").is_none();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::groups::GroupsConfig;
    use serde_json::json;

    /// A full page of members from `from` (a next link: more follow).
    fn full_page(from: usize) -> DrupalReply {
        let data: Vec<Value> = (from..from.saturating_add(DRUPAL_PAGE_MAX))
            .map(|i| json!({"id": format!("u{i}"), "attributes": {"name": format!("user{i}")}}))
            .collect();
        DrupalReply::json(
            200,
            json!({"data": data, "links": {"next": {"href": "https://drupal/next"}}}),
        )
    }

    #[test]
    fn a_walk_reads_twice_the_pages_each_round_and_stops_past_the_cap() {
        let cfg = GroupsConfig::from_config(Some(&json!({})))
            .unwrap()
            .unwrap();
        let calls = GroupCalls {
            jsonapi: "/jsonapi",
            groups: &cfg,
            can_wait: false,
        };
        let terms = vec![Term {
            uuid: "t1".into(),
            tid: Some(1),
            name: "Eng".into(),
            external_id: None,
            changed: String::new(),
            created: String::new(),
        }];
        let (mut walk, mut protected, mut users_read) =
            (MemberWalk::default(), ProtectedAccounts::default(), false);
        let mut rounds = Vec::new();
        for _ in 0..4 {
            let out = walk.calls(&terms, 10_000, 16, &calls).unwrap();
            rounds.push(out.len());
            let replies: Vec<DrupalReply> = (0..out.len())
                .map(|k| full_page(walk.rows_read.saturating_add(k * DRUPAL_PAGE_MAX)))
                .collect();
            walk.take_pages(&replies, 16, 10_000, &mut protected, &mut users_read)
                .unwrap();
        }
        assert_eq!(rounds, [1, 2, 4, 4]);
        assert!(users_read && !walk.is_done());
        assert_eq!(walk.rows_read, 11 * DRUPAL_PAGE_MAX);
        assert_eq!(walk.members[0].as_ref().map(Vec::len), Some(walk.rows_read));
        // A cap of 600 rows: pages up to it are read, then the walk stops.
        let out = walk.calls(&terms, 600, 16, &calls).unwrap();
        assert_eq!(out.len(), 2);
        let replies = vec![full_page(550), full_page(600)];
        let stop = walk.take_pages(&replies, 16, 600, &mut protected, &mut users_read);
        assert!(matches!(stop, Err(WalkStop::OverCap)), "{stop:?}");
    }
}
