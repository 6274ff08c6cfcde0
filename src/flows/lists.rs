//! User lists (`GET /Users`, `POST /Users/.search`): an exact window read page by page with
//! its total, or, where the gateway checks the filter itself, a walk over every candidate.

use crate::config::Config;
use crate::drupal::jsonapi::{self, DrupalUser, DRUPAL_PAGE_MAX};
use crate::drupal::user_filter::{self, UserQuery};
use crate::flows::discovery;
use crate::flows::exchange::*;
use crate::flows::paging::{Found, Pager, PagerRound};
use crate::flows::request::*;
use crate::flows::scope::LockScope;
use crate::flows::users::read_user;
use crate::http::{scim_json as json_response, DrupalCall, DrupalReply, Step};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter_eval;
use serde_json::Value;

/// What a counting probe found: how many resources, and whether more follow.
pub(crate) fn count_page(reply: &DrupalReply) -> Result<Found, ScimError> {
    let doc = jsonapi::expect_document(reply, &[200])?;
    let len = doc
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::len)
        .ok_or_else(|| ScimError::bad_gateway("Drupal's list has no `data` array."))?;
    Ok(Found {
        len,
        has_next: doc.pointer("/links/next").is_some(),
    })
}

/// Names a user query for the remembered totals (`paging`): its conditions.
pub(crate) fn total_key(conditions: &[(String, String)]) -> String {
    let mut key = String::from("users");
    for (k, v) in conditions {
        key.push('&');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

pub(crate) struct Page {
    /// The live users of the page (a retired account Drupal listed anyway is dropped).
    pub(crate) users: Vec<DrupalUser>,
    /// How many resources Drupal's page held.
    pub(crate) places: usize,
    pub(crate) has_next: bool,
}

impl Page {
    pub(crate) fn found(&self) -> Found {
        Found {
            len: self.places,
            has_next: self.has_next,
        }
    }
}

pub(crate) fn read_page(reply: &DrupalReply, config: &Config) -> Result<Page, ScimError> {
    let doc = jsonapi::expect_document(reply, &[200])?;
    let data = doc
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad_gateway("Drupal's user list has no `data` array."))?;
    let all = data
        .iter()
        .map(|d| read_user(&doc, d, config))
        .collect::<Result<Vec<_>, _>>()?;
    let places = all.len();
    let users = all.into_iter().filter(|u| !u.is_retired()).collect();
    let has_next = doc.get("links").and_then(|l| l.get("next")).is_some();
    Ok(Page {
        users,
        places,
        has_next,
    })
}

impl Exchange {
    pub(crate) fn start_search(
        &mut self,
        config: &Config,
        body: &[u8],
        env: &mut LockScope,
    ) -> Result<Step, ScimError> {
        let search = parse_search(body)?;
        if let Some(f) = &search.filter {
            check_filter_length(f, config)?;
        }
        self.projection = search.projection;
        let (start_index, count) =
            window(search.start_index, search.count, config.limits.max_count);
        let list = ListRequest {
            filter: search.filter,
            start_index,
            count,
            sort: drupal_sort(
                &config.mapping,
                search.sort_by.as_deref(),
                search.sort_order.as_deref(),
            )?,
        };
        self.start_list(config, list, env)
    }

    pub(crate) fn start_list(
        &mut self,
        config: &Config,
        mut list: ListRequest,
        env: &mut LockScope,
    ) -> Result<Step, ScimError> {
        if let Some(step) = self.start_adopt_lookup(config, &mut list)? {
            return Ok(step);
        }
        let query = match &list.filter {
            None => UserQuery::default(),
            Some(f) => user_filter::translate(f, &config.mapping)?,
        };
        if query.matches_nothing {
            return Ok(json_response(
                200,
                &discovery::list_response(Vec::new(), 0, list.start_index),
                vec![],
            ));
        }
        let calls = Self::calls(config);
        let offset = list.start_index.saturating_sub(1);
        if let Some(post_filter) = query.post_filter.clone() {
            let call =
                calls.list_users(&query.conditions, list.sort.as_deref(), 0, DRUPAL_PAGE_MAX);
            return self.call(
                State::ListWalk(Box::new(ListWalk {
                    query,
                    post_filter,
                    sort: list.sort,
                    start_index: list.start_index,
                    count: list.count,
                    next_offset: DRUPAL_PAGE_MAX,
                    matched: 0,
                    window: Vec::new(),
                })),
                vec![call],
            );
        }
        let hint = env.locks.remembered_total(&total_key(&query.conditions));
        let (pager, reads) = Pager::start(offset, list.count, hint);
        let w = ListWindow {
            start_index: list.start_index,
            count: list.count,
            conditions: query.conditions,
            sort: list.sort,
            pager,
            reads,
            pages: Vec::new(),
        };
        let round = self.window_calls(config, &w);
        self.call(State::ListWindow(Box::new(w)), round)
    }

    /// The calls of a window's round: its own pages in full, probes with ids only.
    pub(crate) fn window_calls(&self, config: &Config, w: &ListWindow) -> Vec<DrupalCall> {
        let calls = Self::calls(config);
        w.reads
            .iter()
            .map(|r| {
                if r.window {
                    calls.list_users(&w.conditions, w.sort.as_deref(), r.offset, r.limit)
                } else {
                    calls.count_users(&w.conditions, r.offset, r.limit)
                }
            })
            .collect()
    }

    pub(crate) fn continue_window(
        &mut self,
        config: &Config,
        mut w: Box<ListWindow>,
        replies: &[DrupalReply],
        env: &mut LockScope,
    ) -> Result<Step, ScimError> {
        let mut round = Vec::with_capacity(replies.len());
        for (read, reply) in w.reads.iter().zip(replies) {
            if read.window {
                let page = read_page(reply, config)?;
                round.push((*read, page.found()));
                w.pages.push((read.offset, page.users));
            } else {
                round.push((*read, count_page(reply)?));
            }
        }
        let total = match w.pager.learn(&round) {
            PagerRound::Read(reads) => {
                w.reads = reads;
                let probes = self.window_calls(config, &w);
                return self.call(State::ListWindow(w), probes);
            }
            PagerRound::Total(total) => total,
            PagerRound::GaveUp => {
                return Err(ScimError::new(
                    503,
                    None,
                    "The user list kept changing while it was counted; retry.",
                )
                .with_header("retry-after", "1"))
            }
        };
        if total > DRUPAL_PAGE_MAX {
            // Worth remembering: the next page of this list checks it with one read.
            env.locks.remember_total(&total_key(&w.conditions), total);
        }
        w.pages.sort_by_key(|(offset, _)| *offset);
        let resources = w
            .pages
            .iter()
            .flat_map(|(_, users)| users)
            .take(w.count)
            .map(|u| self.scim_user(u, &config.mapping))
            .collect();
        Ok(json_response(
            200,
            &discovery::list_response(resources, total, w.start_index),
            vec![],
        ))
    }

    pub(crate) fn continue_walk(
        &mut self,
        config: &Config,
        mut walk: Box<ListWalk>,
        reply: &DrupalReply,
    ) -> Result<Step, ScimError> {
        let mapping = &config.mapping;
        let page = read_page(reply, config)?;
        let first = walk.start_index.saturating_sub(1);
        for u in page.users {
            let resource = u.to_scim(mapping, &self.base_url);
            if filter_eval::matches(&walk.post_filter, &resource, mapping) {
                // The resource checked is the one answered: made once.
                if walk.matched >= first && walk.window.len() < walk.count {
                    walk.window.push((u, resource));
                }
                walk.matched = walk.matched.saturating_add(1);
            }
        }
        if page.has_next {
            if walk.next_offset
                >= config
                    .limits
                    .max_checked_pages
                    .saturating_mul(DRUPAL_PAGE_MAX)
            {
                return Err(ScimError::new(
                    400,
                    Some(ScimType::TooMany),
                    "The filter needs more Drupal users checked than the gateway reads for one request; narrow it.",
                ));
            }
            let call = Self::calls(config).list_users(
                &walk.query.conditions,
                walk.sort.as_deref(),
                walk.next_offset,
                DRUPAL_PAGE_MAX,
            );
            walk.next_offset = walk.next_offset.saturating_add(DRUPAL_PAGE_MAX);
            return self.call(State::ListWalk(walk), vec![call]);
        }
        let total = walk.matched;
        let resources = walk
            .window
            .into_iter()
            .map(|(u, resource)| self.finish_user(&u, resource))
            .collect();
        Ok(json_response(
            200,
            &discovery::list_response(resources, total, walk.start_index),
            vec![],
        ))
    }
}
