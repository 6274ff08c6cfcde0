//! User lists (`GET /Users`, `POST /Users/.search`): an exact window read page by page with
//! its total (the flow owns the `paging::Pager`), or, where the gateway checks the filter
//! itself, a walk over every candidate; with adopting on, a lookup by identity (`adopt`).

use crate::config::Config;
use crate::drupal::jsonapi::{self, DrupalUser, DRUPAL_PAGE_MAX};
use crate::drupal::user_filter::{self, UserQuery};
use crate::flows::adopt::{self, AdoptThen};
use crate::flows::adoption::{AdoptFlow, Adoption};
use crate::flows::discovery;
use crate::flows::flow::{Cx, Flow, Report};
use crate::flows::paging::{Found, Pager, PagerRound, Read};
use crate::flows::request::{check_filter_length, drupal_sort, parse_search, window, ListRequest};
use crate::flows::scope::Held;
use crate::flows::user_view::{read_page, user_calls, UserView};
use crate::http::{scim_json as json_response, DrupalCall, DrupalReply, Step};
use crate::runtime::intents::SharedIntent;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::Filter;
use crate::scim::filter_eval;
use serde_json::Value;

#[derive(Debug)]
pub(crate) struct UserList {
    view: UserView,
    state: State,
    adopted: Option<Adoption>,
}

#[derive(Debug)]
enum State {
    Done,
    Window(Box<ListWindow>),
    Walk(Box<ListWalk>),
    Adopt(Box<AdoptFlow>),
}

/// A window of a list that Drupal can answer exactly: its pages are read concurrently, and
/// the total is counted exactly alongside (`paging`).
#[derive(Debug)]
struct ListWindow {
    start_index: usize,
    count: usize,
    conditions: Vec<(String, String)>,
    sort: Option<String>,
    pager: Pager,
    /// The reads of the round in flight, in the order of its calls.
    reads: Vec<Read>,
    /// The window's pages: (offset, users).
    pages: Vec<(usize, Vec<DrupalUser>)>,
}

/// Queries whose result the gateway checks itself (Drupal's answer is a superset) read every
/// candidate page from the start, then cut the requested window.
#[derive(Debug)]
struct ListWalk {
    query: UserQuery,
    post_filter: Filter,
    sort: Option<String>,
    start_index: usize,
    count: usize,
    next_offset: usize,
    /// How many users matched so far.
    matched: usize,
    /// The matches inside the window, with the resource the filter was checked on.
    window: Vec<(DrupalUser, serde_json::Map<String, Value>)>,
}

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

/// The calls of a window's round: its own pages in full, probes with ids only.
fn window_calls(config: &Config, w: &ListWindow) -> Vec<DrupalCall> {
    let calls = user_calls(config);
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

impl UserList {
    /// `POST /Users/.search` (and `/.search`): the list the body asks for, shown with its
    /// projection.
    pub(crate) fn search(
        cx: &mut Cx<'_, '_>,
        mut view: UserView,
        body: &[u8],
    ) -> Result<(Self, Step), ScimError> {
        let config = cx.config;
        let search = parse_search(body)?;
        if let Some(f) = &search.filter {
            check_filter_length(f, config)?;
        }
        view.projection = search.projection;
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
        Self::start(cx, view, list)
    }

    pub(crate) fn start(
        cx: &mut Cx<'_, '_>,
        view: UserView,
        mut list: ListRequest,
    ) -> Result<(Self, Step), ScimError> {
        let config = cx.config;
        let mut flow = UserList {
            view,
            state: State::Done,
            adopted: None,
        };
        if let Some((adopt, call)) = adopt::lookup(config, &mut list)? {
            flow.state = State::Adopt(Box::new(adopt));
            return Ok((flow, Step::Call(vec![call])));
        }
        let query = match &list.filter {
            None => UserQuery::default(),
            Some(f) => user_filter::translate(f, &config.mapping)?,
        };
        if query.matches_nothing {
            let empty = discovery::list_response(Vec::new(), 0, list.start_index);
            return Ok((flow, json_response(200, &empty, vec![])));
        }
        let calls = user_calls(config);
        let offset = list.start_index.saturating_sub(1);
        if let Some(post_filter) = query.post_filter.clone() {
            let call =
                calls.list_users(&query.conditions, list.sort.as_deref(), 0, DRUPAL_PAGE_MAX);
            flow.state = State::Walk(Box::new(ListWalk {
                query,
                post_filter,
                sort: list.sort,
                start_index: list.start_index,
                count: list.count,
                next_offset: DRUPAL_PAGE_MAX,
                matched: 0,
                window: Vec::new(),
            }));
            return Ok((flow, Step::Call(vec![call])));
        }
        let hint = cx.scope.remembered_total(&total_key(&query.conditions));
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
        let round = window_calls(config, &w);
        flow.state = State::Window(Box::new(w));
        Ok((flow, Step::Call(round)))
    }

    /// How the list shows users (a search's projection included).
    pub(crate) fn view(&self) -> &UserView {
        &self.view
    }

    fn continue_window(
        &mut self,
        cx: &mut Cx<'_, '_>,
        mut w: Box<ListWindow>,
        replies: &[DrupalReply],
    ) -> Result<Step, ScimError> {
        let config = cx.config;
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
                let probes = window_calls(config, &w);
                self.state = State::Window(w);
                return Ok(Step::Call(probes));
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
            // Nothing waits for it: returned with the step.
            cx.scope.later([SharedIntent::RememberTotal {
                query: total_key(&w.conditions),
                total,
            }]);
        }
        w.pages.sort_by_key(|(offset, _)| *offset);
        let resources = w
            .pages
            .iter()
            .flat_map(|(_, users)| users)
            .take(w.count)
            .map(|u| self.view.scim_user(u, &config.mapping))
            .collect();
        Ok(json_response(
            200,
            &discovery::list_response(resources, total, w.start_index),
            vec![],
        ))
    }

    fn continue_walk(
        &mut self,
        config: &Config,
        mut walk: Box<ListWalk>,
        reply: &DrupalReply,
    ) -> Result<Step, ScimError> {
        let mapping = &config.mapping;
        let page = read_page(reply, config)?;
        let first = walk.start_index.saturating_sub(1);
        for u in page.users {
            let resource = u.to_scim(mapping, &self.view.base_url);
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
            let call = user_calls(config).list_users(
                &walk.query.conditions,
                walk.sort.as_deref(),
                walk.next_offset,
                DRUPAL_PAGE_MAX,
            );
            walk.next_offset = walk.next_offset.saturating_add(DRUPAL_PAGE_MAX);
            self.state = State::Walk(walk);
            return Ok(Step::Call(vec![call]));
        }
        let total = walk.matched;
        let resources = walk
            .window
            .into_iter()
            .map(|(u, resource)| self.view.finish_user(&u, resource))
            .collect();
        Ok(json_response(
            200,
            &discovery::list_response(resources, total, walk.start_index),
            vec![],
        ))
    }
}

impl Flow for UserList {
    fn on_replies(
        &mut self,
        cx: &mut Cx<'_, '_>,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Done => Err(ScimError::internal("The request was already answered.")),
            State::Window(w) => self.continue_window(cx, w, &replies),
            State::Walk(walk) => {
                let first = replies.first().unwrap_or(&DrupalReply::Failed);
                self.continue_walk(cx.config, walk, first)
            }
            State::Adopt(flow) => {
                let first = replies.first().unwrap_or(&DrupalReply::Failed);
                // A lookup takes no lock.
                let mut held = Held::default();
                let view = &self.view;
                match adopt::on_reply(flow, cx, view, first, &mut held, &mut self.adopted)? {
                    AdoptThen::Read(flow, call) => {
                        self.state = State::Adopt(flow);
                        Ok(Step::Call(vec![call]))
                    }
                    AdoptThen::Answer(step) => Ok(step),
                    AdoptThen::Save(..) => Err(ScimError::internal("A lookup does not write.")),
                }
            }
        }
    }

    fn report(&mut self) -> Report {
        Report {
            adopted: self.adopted.take(),
            left_out: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::flows::flow::testing::{user, view, Rig};
    use serde_json::json;

    fn list(filter: Option<&str>) -> ListRequest {
        ListRequest {
            filter: filter.map(str::to_string),
            start_index: 1,
            count: 10,
            sort: None,
        }
    }

    #[test]
    fn a_short_list_is_one_read_with_its_exact_total() {
        let mut rig = Rig::new();
        let (mut flow, step) = rig
            .with("me", |cx| UserList::start(cx, view(), list(None)))
            .unwrap();
        let Step::Call(calls) = step else { panic!() };
        assert_eq!(calls.len(), 1);
        let rows: Vec<Value> = [("a1", 2, "ann"), ("b2", 3, "ben")]
            .iter()
            .map(|(id, uid, name)| user(id, *uid, name)["data"].clone())
            .collect();
        let page = vec![DrupalReply::json(
            200,
            json!({"data": rows, "links": {"self": {"href": "x"}}}),
        )];
        let Step::Respond(r) = rig.with("me", |cx| flow.on_replies(cx, page)).unwrap() else {
            panic!()
        };
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["totalResults"], 2);
        assert_eq!(body["Resources"][1]["userName"], "ben");
    }

    #[test]
    fn a_filter_that_matches_nothing_answers_without_a_call() {
        let mut rig = Rig::new();
        let (_, step) = rig
            .with("me", |cx| {
                UserList::start(cx, view(), list(Some("id eq \"nope\"")))
            })
            .unwrap();
        let Step::Respond(r) = step else {
            panic!("no call expected")
        };
        assert_eq!(r.status, 200);
    }
}
