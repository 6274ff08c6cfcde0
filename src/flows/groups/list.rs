//! Listing groups (`GET /Groups`): the filter and sort in Drupal's terms, then either a
//! window read and counted exactly (`paging`), or, for a filter Drupal cannot answer
//! exactly, every candidate read and checked in the gateway.

use crate::drupal::groups::{parse_term, GroupCalls, Term};
use crate::drupal::jsonapi::{expect_document, DRUPAL_PAGE_MAX};
use crate::drupal::user_filter;
use crate::flows::groups::state::GroupState;
use crate::flows::groups::task::{GroupAnswer, GroupTask, QueueChange, TaskCalls, TermListing};
use crate::flows::paging::{Found, Pager, PagerRound};
use crate::http::DrupalReply;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::parse_attr_path;
use crate::scim::mapping::{FieldMap, Kind, Target, UserMapping};
use crate::scim::projection::Projection;
use serde_json::Value;
use std::collections::VecDeque;

/// The filterable attributes of a Group, as a mapping onto term fields.
pub(crate) fn group_mapping() -> UserMapping {
    UserMapping {
        fields: vec![FieldMap {
            target: Target::Top {
                attr: "displayName".into(),
            },
            field: "name".into(),
            kind: Kind::String,
            case_exact: false,
        }],
    }
}

/// The page a list request asks for.
pub(crate) struct PageAsked<'a> {
    pub(crate) filter: Option<&'a str>,
    pub(crate) sort_by: Option<&'a str>,
    pub(crate) order: Option<&'a str>,
    pub(crate) start_index: usize,
    pub(crate) count: usize,
}

pub(crate) fn start(
    base_url: &str,
    projection: Projection,
    page: &PageAsked,
) -> Result<(VecDeque<GroupTask>, GroupState), ScimError> {
    let query = match page.filter {
        None => user_filter::UserQuery::default(),
        Some(f) => {
            user_filter::translate_in(f, &group_mapping(), crate::scim::schema::GROUP_SCHEMA)?
        }
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
    let sort = drupal_sort(page.sort_by, page.order)?;
    let mut state = GroupState::new(base_url, projection, GroupAnswer::List);
    state.answer.start_index = page.start_index;
    let mut tasks = VecDeque::new();
    if query.matches_nothing {
        tasks.push_back(GroupTask::CheckAuth);
        return Ok((tasks, state));
    }
    tasks.push_back(GroupTask::ListTerms(Box::new(TermListing {
        conditions,
        sort,
        // A superset is read from the start and cut in the gateway.
        offset: if query.post_filter.is_some() {
            0
        } else {
            page.start_index.saturating_sub(1)
        },
        count: page.count,
        start_index: page.start_index,
        post_filter: query.post_filter,
        pager: None,
        reads: Vec::new(),
        pages: Vec::new(),
    })));
    if state.answer.want_members {
        tasks.push_back(GroupTask::Walk);
    }
    tasks.push_back(GroupTask::CheckAuth);
    Ok((tasks, state))
}

/// `sortBy`/`sortOrder` as Drupal's `sort` parameter.
fn drupal_sort(sort_by: Option<&str>, order: Option<&str>) -> Result<Option<String>, ScimError> {
    let Some(s) = sort_by else {
        return Ok(None);
    };
    let p = parse_attr_path(s).map_err(|e| ScimError::invalid_value(format!("`sortBy`: {e}.")))?;
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
    Ok(Some(if descending {
        format!("-{field}")
    } else {
        field.to_string()
    }))
}

pub(crate) fn calls(listing: &mut TermListing, calls: &GroupCalls) -> TaskCalls {
    let TermListing {
        conditions,
        sort,
        offset,
        count,
        post_filter,
        pager,
        reads,
        ..
    } = listing;
    if post_filter.is_some() {
        return TaskCalls::Send(vec![calls.list_terms(
            conditions,
            sort.as_deref(),
            *offset,
            DRUPAL_PAGE_MAX,
        )]);
    }
    if pager.is_none() {
        let (p, first) = Pager::start(*offset, *count, None);
        *pager = Some(p);
        *reads = first;
    }
    TaskCalls::Send(
        reads
            .iter()
            .map(|r| {
                if r.window {
                    calls.list_terms(conditions, sort.as_deref(), r.offset, r.limit)
                } else {
                    calls.count_terms(conditions, r.offset, r.limit)
                }
            })
            .collect(),
    )
}

pub(crate) fn on_replies(
    st: &mut GroupState,
    listing: &mut TermListing,
    vocabulary: &str,
    replies: &[DrupalReply],
) -> Result<QueueChange, ScimError> {
    if listing.post_filter.is_some() {
        let first = replies.first().unwrap_or(&DrupalReply::Failed);
        return on_superset_page(st, listing, vocabulary, first);
    }
    if listing.pager.is_some() {
        return on_window_round(st, listing, vocabulary, replies);
    }
    Err(ScimError::internal(
        "A group list was read before it started.",
    ))
}

/// A page of a superset (a filter Drupal cannot answer exactly): keep the matches, read on.
fn on_superset_page(
    st: &mut GroupState,
    listing: &mut TermListing,
    vocabulary: &str,
    reply: &DrupalReply,
) -> Result<QueueChange, ScimError> {
    let doc = expect_document(reply, &[200])?;
    let mut terms: Vec<Term> = doc
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| parse_term(d, vocabulary))
        .collect();
    let more = doc.pointer("/links/next").is_some();
    let mapping = group_mapping();
    if let Some(f) = &listing.post_filter {
        let base_url = &st.answer.base_url;
        terms
            .retain(|t| crate::scim::filter_eval::matches(f, &t.to_scim(base_url, None), &mapping));
    }
    st.group.terms.extend(terms);
    if more {
        if listing.offset >= st.limits.max_checked_pages.saturating_mul(DRUPAL_PAGE_MAX) {
            return Err(ScimError::new(400, Some(ScimType::TooMany), "The filter needs more groups checked than the gateway reads for one request; narrow it."));
        }
        listing.offset = listing.offset.saturating_add(DRUPAL_PAGE_MAX);
        return Ok(QueueChange::Stay);
    }
    st.answer.total = st.group.terms.len();
    let skip = listing.start_index.saturating_sub(1);
    st.group.terms = st
        .group
        .terms
        .iter()
        .skip(skip)
        .take(listing.count)
        .cloned()
        .collect();
    Ok(QueueChange::Done)
}

/// A round of window pages and count probes: the pager reads on, or the window is known.
fn on_window_round(
    st: &mut GroupState,
    listing: &mut TermListing,
    vocabulary: &str,
    replies: &[DrupalReply],
) -> Result<QueueChange, ScimError> {
    let mut round = Vec::with_capacity(listing.reads.len());
    for (read, reply) in listing.reads.iter().zip(replies) {
        let doc = expect_document(reply, &[200])?;
        let data = doc.get("data").and_then(Value::as_array);
        round.push((
            *read,
            Found {
                len: data.map(Vec::len).unwrap_or(0),
                has_next: doc.pointer("/links/next").is_some(),
            },
        ));
        if read.window {
            let terms = data
                .into_iter()
                .flatten()
                .filter_map(|d| parse_term(d, vocabulary))
                .collect();
            listing.pages.push((read.offset, terms));
        }
    }
    let Some(pager) = listing.pager.as_mut() else {
        return Err(ScimError::internal(
            "A group list was read before it started.",
        ));
    };
    match pager.learn(&round) {
        PagerRound::Read(next) => {
            listing.reads = next;
            return Ok(QueueChange::Stay);
        }
        PagerRound::Total(total) => st.answer.total = total,
        PagerRound::GaveUp => {
            return Err(ScimError::new(
                503,
                None,
                "The group list kept changing while it was counted; retry.",
            ))
        }
    }
    listing.pages.sort_by_key(|(offset, _)| *offset);
    st.group.terms = std::mem::take(&mut listing.pages)
        .into_iter()
        .flat_map(|(_, terms)| terms)
        .take(listing.count)
        .collect();
    Ok(QueueChange::Done)
}
