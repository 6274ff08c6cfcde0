//! One SCIM request from start to finish, as a small state machine that never performs IO:
//! `begin` takes the request and returns the Drupal calls to make (or the answer); `resume`
//! takes Drupal's replies and returns the next calls or the final answer.

use crate::auth;
use crate::config::{Config, UserDelete};
use crate::discovery::{self, MAX_RESULTS};
use crate::drupal::{self, Calls, DrupalUser, DRUPAL_PAGE_MAX};
use crate::error::{ScimError, SCIM_CONTENT_TYPE};
use crate::http::{DrupalCall, DrupalReply, Request, Response, Step};
use crate::query::{parse_query, split_path};
use crate::user;
use crate::user_filter::{self, UserQuery};
use serde_json::Value;

#[derive(Debug)]
pub struct Exchange {
    /// The label of the token that authenticated the request (for logs and metrics).
    pub token_label: String,
    base_url: String,
    state: State,
}

#[derive(Debug)]
enum State {
    Done,
    GetUser,
    CreateUser,
    ListWindow(ListWindow),
    ListWalk(ListWalk),
    DeleteLookup { uuid: String },
    DeleteCancelled { uuid: String },
    DeleteRetired,
    DeleteHard,
}

#[derive(Debug)]
struct ListWindow {
    start_index: usize,
    offset: usize,
    count: usize,
}

/// Lookups whose result the gateway checks itself (exact, collation-independent matching)
/// read every candidate page from the start, then cut the requested window.
#[derive(Debug)]
struct ListWalk {
    query: UserQuery,
    start_index: usize,
    count: usize,
    next_offset: usize,
    matches: Vec<DrupalUser>,
}

/// Most candidate pages a post-filtered lookup may read (50 users each).
const MAX_WALK_PAGES: usize = 20;

/// Whether a path belongs to the gateway.
pub fn is_scim_path(config: &Config, path: &str) -> bool {
    let (path, _) = split_path(path);
    match path.strip_prefix(config.base_path.as_str()) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Checks made as soon as the headers are in, before any body is read: authentication and
/// the declared body size. `Some` is the answer to send at once.
pub fn check_headers(config: &Config, req: &Request) -> Option<Response> {
    if let Err(e) = auth::authenticate(req.header("authorization"), &config.tokens) {
        return Some(e.into_response());
    }
    let declared = req
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if declared > config.max_body_bytes {
        return Some(too_large(config).into_response());
    }
    None
}

pub fn too_large(config: &Config) -> ScimError {
    ScimError::new(
        413,
        None,
        format!(
            "Request body exceeds the {}-byte limit.",
            config.max_body_bytes
        ),
    )
}

/// Takes up a complete request. `None`: not under the SCIM base path, so not ours.
pub fn begin(config: &Config, req: &Request) -> Option<(Exchange, Step)> {
    if !is_scim_path(config, &req.path) {
        return None;
    }
    let token_label = match auth::authenticate(req.header("authorization"), &config.tokens) {
        Ok(label) => label.to_string(),
        Err(e) => return respond_without_exchange(e.into_response()),
    };
    let mut exchange = Exchange {
        token_label,
        base_url: base_url(config, req),
        state: State::Done,
    };
    let step = match exchange.route(config, req) {
        Ok(step) => step,
        Err(e) => {
            exchange.state = State::Done;
            Step::Respond(e.into_response())
        }
    };
    Some((exchange, step))
}

fn respond_without_exchange(response: Response) -> Option<(Exchange, Step)> {
    let exchange = Exchange {
        token_label: String::new(),
        base_url: String::new(),
        state: State::Done,
    };
    Some((exchange, Step::Respond(response)))
}

/// The absolute SCIM base URL clients reach the gateway at.
fn base_url(config: &Config, req: &Request) -> String {
    match &config.public_url {
        Some(u) => format!("{u}{}", config.base_path),
        None => {
            let scheme = req
                .header("x-forwarded-proto")
                .or_else(|| req.header(":scheme"))
                .filter(|s| *s == "http" || *s == "https")
                .unwrap_or("http");
            let host = req
                .header(":authority")
                .or_else(|| req.header("host"))
                .unwrap_or("localhost");
            format!("{scheme}://{host}{}", config.base_path)
        }
    }
}

fn json_response(status: u16, body: &Value, extra: Vec<(String, String)>) -> Step {
    let mut headers = vec![("content-type".to_string(), SCIM_CONTENT_TYPE.to_string())];
    headers.extend(extra);
    Step::Respond(Response {
        status,
        headers,
        body: serde_json::to_vec(body).unwrap_or_default(),
    })
}

fn no_content() -> Step {
    Step::Respond(Response {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    })
}

fn only_get(method: &str) -> Result<(), ScimError> {
    if method == "GET" || method == "HEAD" {
        Ok(())
    } else {
        Err(ScimError::method_not_allowed("GET"))
    }
}

fn not_implemented(what: &str) -> ScimError {
    ScimError::new(
        501,
        None,
        format!("{what} is not supported by this server."),
    )
}

impl Exchange {
    fn route(&mut self, config: &Config, req: &Request) -> Result<Step, ScimError> {
        let (path, query) = split_path(&req.path);
        let rest = path
            .get(config.base_path.len()..)
            .unwrap_or_default()
            .trim_end_matches('/');
        let segments: Vec<&str> = rest.split('/').skip(1).collect();
        let method = req.method.as_str();
        let base = self.base_url.clone();
        match segments.as_slice() {
            ["ServiceProviderConfig"] => {
                only_get(method)?;
                Ok(json_response(
                    200,
                    &discovery::service_provider_config(&base),
                    vec![],
                ))
            }
            ["ResourceTypes"] => {
                only_get(method)?;
                Ok(json_response(
                    200,
                    &discovery::resource_types(&base),
                    vec![],
                ))
            }
            ["ResourceTypes", id] => {
                only_get(method)?;
                Ok(json_response(
                    200,
                    &discovery::resource_type(&base, id)?,
                    vec![],
                ))
            }
            ["Schemas"] => {
                only_get(method)?;
                Ok(json_response(200, &discovery::schemas(&base), vec![]))
            }
            ["Schemas", id] => {
                only_get(method)?;
                Ok(json_response(200, &discovery::schema(&base, id)?, vec![]))
            }
            ["Users"] => match method {
                "GET" | "HEAD" => self.start_list(config, query),
                "POST" => self.start_create(config, &req.body),
                _ => Err(ScimError::method_not_allowed("GET, POST")),
            },
            ["Users", ".search"] | [".search"] => Err(not_implemented("POST .search")),
            ["Users", id] => match method {
                "GET" | "HEAD" => self.start_get(config, id),
                "DELETE" => self.start_delete(config, id),
                "PUT" | "PATCH" => Err(not_implemented(&format!("{method} on Users"))),
                _ => Err(ScimError::method_not_allowed("GET, PUT, PATCH, DELETE")),
            },
            ["Me"] => Err(not_implemented("/Me")),
            ["Bulk"] => Err(not_implemented("/Bulk")),
            _ => Err(ScimError::not_found(format!(
                "There is no SCIM endpoint at `{path}`; see {base}/ResourceTypes."
            ))),
        }
    }

    fn calls<'a>(config: &'a Config) -> Calls<'a> {
        Calls {
            jsonapi: &config.drupal.jsonapi_prefix,
        }
    }

    fn call(&mut self, state: State, calls: Vec<DrupalCall>) -> Result<Step, ScimError> {
        self.state = state;
        Ok(Step::Call(calls))
    }

    fn start_get(&mut self, config: &Config, id: &str) -> Result<Step, ScimError> {
        if !drupal::is_uuid(id) {
            return Err(user_not_found(id));
        }
        let call = Self::calls(config).get_user(id);
        self.call(State::GetUser, vec![call])
    }

    fn start_create(&mut self, config: &Config, body: &[u8]) -> Result<Step, ScimError> {
        let new_user = user::parse_new_user(body)?;
        let call = Self::calls(config).create_user(&new_user);
        self.call(State::CreateUser, vec![call])
    }

    fn start_delete(&mut self, config: &Config, id: &str) -> Result<Step, ScimError> {
        if !drupal::is_uuid(id) {
            return Err(user_not_found(id));
        }
        let call = Self::calls(config).get_user(id);
        self.call(
            State::DeleteLookup {
                uuid: id.to_string(),
            },
            vec![call],
        )
    }

    fn start_list(&mut self, config: &Config, query: &str) -> Result<Step, ScimError> {
        let params = parse_query(query).map_err(ScimError::invalid_value)?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let start_index = match param("startIndex") {
            None => 1,
            Some(v) => parse_int("startIndex", v)?.max(1),
        };
        let start_index = usize::try_from(start_index).unwrap_or(1);
        let count = match param("count") {
            None => MAX_RESULTS,
            Some(v) => usize::try_from(parse_int("count", v)?.max(0)).unwrap_or(0),
        }
        .min(MAX_RESULTS);
        let offset = start_index.saturating_sub(1);
        let query = match param("filter") {
            None => UserQuery::default(),
            Some(f) => user_filter::translate(f)?,
        };
        if query.matches_nothing {
            let list = discovery::list_response(Vec::new(), 0, start_index);
            return Ok(json_response(200, &list, vec![]));
        }
        let calls = Self::calls(config);
        if query.needs_post_filter() {
            let call = calls.list_users(&query.conditions, 0, DRUPAL_PAGE_MAX);
            return self.call(
                State::ListWalk(ListWalk {
                    query,
                    start_index,
                    count,
                    next_offset: DRUPAL_PAGE_MAX,
                    matches: Vec::new(),
                }),
                vec![call],
            );
        }
        // count=0 still asks Drupal for one user, to tell "none" from "some".
        let wanted = count.max(1);
        let pages = wanted.div_ceil(DRUPAL_PAGE_MAX);
        let mut page_calls = Vec::with_capacity(pages);
        for page in 0..pages {
            let skip = page.saturating_mul(DRUPAL_PAGE_MAX);
            let limit = wanted.saturating_sub(skip).min(DRUPAL_PAGE_MAX);
            page_calls.push(calls.list_users(
                &query.conditions,
                offset.saturating_add(skip),
                limit,
            ));
        }
        self.call(
            State::ListWindow(ListWindow {
                start_index,
                offset,
                count,
            }),
            page_calls,
        )
    }

    /// Feeds Drupal's replies (in the order of the calls) and returns what to do next.
    pub fn resume(&mut self, config: &Config, replies: Vec<DrupalReply>) -> Step {
        let state = std::mem::replace(&mut self.state, State::Done);
        match self.advance(config, state, replies) {
            Ok(step) => step,
            Err(e) => {
                self.state = State::Done;
                Step::Respond(e.into_response())
            }
        }
    }

    fn advance(
        &mut self,
        config: &Config,
        state: State,
        replies: Vec<DrupalReply>,
    ) -> Result<Step, ScimError> {
        let first = replies.first().cloned().unwrap_or(DrupalReply::Failed);
        match state {
            State::Done => Err(ScimError::internal("The request was already answered.")),
            State::GetUser => {
                let user = live_user(&first)?;
                Ok(self.user_response(200, &user))
            }
            State::CreateUser => {
                let doc = drupal::expect_document(&first, &[201])?;
                let user = drupal::parse_user(doc.get("data").unwrap_or(&Value::Null))?;
                Ok(self.user_response(201, &user))
            }
            State::DeleteLookup { uuid } => {
                let user = live_user(&first)?;
                if user.name.eq_ignore_ascii_case(&config.service_username) {
                    return Err(ScimError::new(
                        403,
                        None,
                        "The gateway's own Drupal service account cannot be deleted through SCIM.",
                    ));
                }
                let calls = Self::calls(config);
                match config.drupal.user_delete {
                    UserDelete::Cancel => self.call(
                        State::DeleteCancelled { uuid: uuid.clone() },
                        vec![calls.delete_user(&uuid)],
                    ),
                    UserDelete::HardDelete => {
                        self.call(State::DeleteHard, vec![drupal::rest_delete_user(user.uid)])
                    }
                }
            }
            State::DeleteCancelled { uuid } => {
                drupal::expect_document(&first, &[204, 200])?;
                // The site's cancel method may have kept the account (it only blocks by
                // default): retire it. If the account is gone, the PATCH answers 404.
                let call = Self::calls(config).retire_user(&uuid);
                self.call(State::DeleteRetired, vec![call])
            }
            State::DeleteRetired => match &first {
                DrupalReply::Answer { status: 404, .. } => Ok(no_content()),
                other => {
                    drupal::expect_document(other, &[200])?;
                    Ok(no_content())
                }
            },
            State::DeleteHard => {
                drupal::expect_document(&first, &[204, 200])?;
                Ok(no_content())
            }
            State::ListWindow(w) => self.finish_window(&w, &replies),
            State::ListWalk(walk) => self.continue_walk(config, walk, &first),
        }
    }

    fn user_response(&self, status: u16, user: &DrupalUser) -> Step {
        let resource = user.to_scim(&self.base_url);
        let location = format!("{}/Users/{}", self.base_url, user.uuid);
        let mut headers = vec![("etag".to_string(), user.version())];
        if status == 201 {
            headers.push(("location".to_string(), location));
        }
        json_response(status, &resource, headers)
    }

    fn finish_window(&self, w: &ListWindow, replies: &[DrupalReply]) -> Result<Step, ScimError> {
        let mut users: Vec<DrupalUser> = Vec::new();
        let mut more = false;
        for reply in replies {
            let page = read_page(reply)?;
            users.extend(page.users);
            more = page.has_next;
            if !page.has_next {
                break;
            }
        }
        // Drupal gives no count. totalResults is exact once the end was reached; while more
        // users exist it is one more than what has been seen, so clients keep paging.
        let seen = w.offset.saturating_add(users.len());
        let total = if more { seen.saturating_add(1) } else { seen };
        users.truncate(w.count);
        let resources = users.iter().map(|u| u.to_scim(&self.base_url)).collect();
        Ok(json_response(
            200,
            &discovery::list_response(resources, total, w.start_index),
            vec![],
        ))
    }

    fn continue_walk(
        &mut self,
        config: &Config,
        mut walk: ListWalk,
        reply: &DrupalReply,
    ) -> Result<Step, ScimError> {
        let page = read_page(reply)?;
        walk.matches.extend(
            page.users
                .into_iter()
                .filter(|u| walk.query.post_filter_accepts(u)),
        );
        if page.has_next {
            if walk.next_offset >= MAX_WALK_PAGES.saturating_mul(DRUPAL_PAGE_MAX) {
                return Err(ScimError::new(
                    400,
                    Some(crate::error::ScimType::TooMany),
                    "The filter matches too many Drupal users to check; narrow it.",
                ));
            }
            let call = Self::calls(config).list_users(
                &walk.query.conditions,
                walk.next_offset,
                DRUPAL_PAGE_MAX,
            );
            walk.next_offset = walk.next_offset.saturating_add(DRUPAL_PAGE_MAX);
            return self.call(State::ListWalk(walk), vec![call]);
        }
        let total = walk.matches.len();
        let resources = walk
            .matches
            .iter()
            .skip(walk.start_index.saturating_sub(1))
            .take(walk.count)
            .map(|u| u.to_scim(&self.base_url))
            .collect();
        Ok(json_response(
            200,
            &discovery::list_response(resources, total, walk.start_index),
            vec![],
        ))
    }
}

fn user_not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("User `{id}` not found."))
}

/// A user read by id, where a retired account or Drupal's 404 both mean "no such user".
fn live_user(reply: &DrupalReply) -> Result<DrupalUser, ScimError> {
    if let DrupalReply::Answer { status: 404, .. } = reply {
        return Err(ScimError::not_found("User not found."));
    }
    let doc = drupal::expect_document(reply, &[200])?;
    let data = doc.get("data").unwrap_or(&Value::Null);
    if drupal::is_anonymous_label(data) {
        return Err(ScimError::not_found("User not found."));
    }
    let user = drupal::parse_user(data)?;
    if user.is_retired() {
        return Err(ScimError::not_found("User not found."));
    }
    Ok(user)
}

struct Page {
    users: Vec<DrupalUser>,
    has_next: bool,
}

fn read_page(reply: &DrupalReply) -> Result<Page, ScimError> {
    let doc = drupal::expect_document(reply, &[200])?;
    let data = doc
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad_gateway("Drupal's user list has no `data` array."))?;
    let users = data
        .iter()
        .map(drupal::parse_user)
        .collect::<Result<Vec<_>, _>>()?;
    let has_next = doc.get("links").and_then(|l| l.get("next")).is_some();
    Ok(Page { users, has_next })
}

fn parse_int(name: &str, value: &str) -> Result<i64, ScimError> {
    value.trim().parse::<i64>().map_err(|_| {
        ScimError::invalid_value(format!("`{name}` must be an integer, not `{value}`."))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;
    use crate::config::{Config, DrupalConfig, TokenDigest};
    use serde_json::json;
    use sha2::{Digest, Sha256};

    const ALICE: &str = "7724f730-7aca-4819-aaee-90673a0141a4";

    fn config() -> Config {
        Config {
            base_path: "/scim/v2".into(),
            tokens: vec![TokenDigest {
                label: "jc".into(),
                sha256: Sha256::digest(b"secret").into(),
            }],
            drupal: DrupalConfig {
                cluster: "drupal".into(),
                authority: "drupal.local".into(),
                jsonapi_prefix: "/jsonapi".into(),
                timeout_ms: 1000,
                user_delete: UserDelete::Cancel,
            },
            max_body_bytes: 1_048_576,
            public_url: None,
            service_username: "scim-service".into(),
        }
    }

    fn req(method: &str, path: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            headers: vec![
                (":authority".into(), "gw.example:10000".into()),
                (":scheme".into(), "http".into()),
                ("authorization".into(), "Bearer secret".into()),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    fn drupal_user(uuid: &str, uid: u64, name: &str, mail: &str) -> Value {
        json!({"type": "user--user", "id": uuid, "attributes": {"display_name": name, "name": name,
            "mail": mail, "status": true, "created": "2026-11-28T11:44:27+00:00",
            "changed": "2026-11-28T11:44:27+00:00", "drupal_internal__uid": uid}})
    }

    fn answer(status: u16, body: Value) -> DrupalReply {
        DrupalReply::Answer {
            status,
            body: if body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&body).unwrap()
            },
        }
    }

    fn page(users: Vec<Value>, next: bool) -> DrupalReply {
        let links = if next {
            json!({"next": {"href": "x"}, "self": {"href": "x"}})
        } else {
            json!({"self": {"href": "x"}})
        };
        answer(200, json!({"data": users, "links": links}))
    }

    fn calls(step: &Step) -> &[DrupalCall] {
        match step {
            Step::Call(c) => c,
            Step::Respond(r) => panic!(
                "expected calls, got {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
        }
    }

    fn response(step: Step) -> (Response, Value) {
        match step {
            Step::Respond(r) => {
                let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                (r, v)
            }
            Step::Call(c) => panic!("expected a response, got calls {c:?}"),
        }
    }

    fn run(request: Request) -> (Exchange, Step) {
        begin(&config(), &request).expect("a SCIM path")
    }

    #[test]
    fn paths_outside_the_base_path_are_not_ours() {
        assert!(begin(&config(), &req("GET", "/jsonapi/user/user", "")).is_none());
        assert!(begin(&config(), &req("GET", "/scim/v2x/Users", "")).is_none());
        assert!(is_scim_path(&config(), "/scim/v2?x=1"));
    }

    #[test]
    fn unauthenticated_requests_get_401_and_no_drupal_call() {
        let mut r = req("GET", "/scim/v2/Users", "");
        r.headers.retain(|(n, _)| n != "authorization");
        let (_, step) = run(r);
        let (resp, body) = response(step);
        assert_eq!(resp.status, 401);
        assert_eq!(body["status"], "401");
    }

    #[test]
    fn oversized_declared_bodies_are_refused_before_reading() {
        let mut r = req("POST", "/scim/v2/Users", "");
        r.headers.push(("content-length".into(), "1048577".into()));
        assert_eq!(check_headers(&config(), &r).unwrap().status, 413);
        r.headers.pop();
        assert!(check_headers(&config(), &r).is_none());
    }

    #[test]
    fn discovery_is_read_only_and_unknown_paths_are_404() {
        let (_, step) = run(req("GET", "/scim/v2/ServiceProviderConfig", ""));
        assert_eq!(response(step).1["patch"]["supported"], false);
        for m in ["POST", "PUT", "PATCH", "DELETE"] {
            for p in [
                "/scim/v2/ServiceProviderConfig",
                "/scim/v2/ResourceTypes",
                "/scim/v2/Schemas",
            ] {
                let (_, step) = run(req(m, p, "{}"));
                let (resp, _) = response(step);
                assert_eq!(
                    (resp.status, resp.header("allow")),
                    (405, Some("GET")),
                    "{m} {p}"
                );
            }
        }
        let (_, step) = run(req("GET", "/scim/v2/Nope", ""));
        assert_eq!(response(step).0.status, 404);
        let (_, step) = run(req(
            "GET",
            "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            "",
        ));
        assert_eq!(
            response(step).1["meta"]["location"],
            "http://gw.example:10000/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"
        );
    }

    #[test]
    fn get_user_maps_drupal_answers() {
        let cases = [
            (
                answer(
                    200,
                    json!({"data": drupal_user(ALICE, 3, "alice", "a@x.org")}),
                ),
                200,
            ),
            (answer(404, json!({"errors": []})), 404),
            (
                answer(
                    200,
                    json!({"data": {"type": "user--user", "id": ALICE, "attributes": {"display_name": "Anonymous"}}}),
                ),
                404,
            ),
            (
                answer(
                    200,
                    json!({"data": drupal_user(ALICE, 3, "scimretiredabc", "x@scim-retired.invalid")}),
                ),
                404,
            ),
            (
                answer(
                    200,
                    json!({"data": {"type": "user--user", "id": ALICE, "attributes": {"display_name": "alice"}}}),
                ),
                502,
            ),
            (answer(403, json!({})), 502),
            (DrupalReply::Failed, 502),
            (answer(504, Value::Null), 504),
        ];
        for (reply, status) in cases {
            let (mut ex, step) = run(req("GET", &format!("/scim/v2/Users/{ALICE}"), ""));
            assert_eq!(calls(&step)[0].path, format!("/jsonapi/user/user/{ALICE}?fields[user--user]=display_name%2Cname%2Cmail%2Cstatus%2Ccreated%2Cchanged%2Cdrupal_internal__uid"));
            let (resp, body) = response(ex.resume(&config(), vec![reply]));
            assert_eq!(resp.status, status, "{body}");
            if status == 200 {
                assert_eq!(resp.header("etag"), body["meta"]["version"].as_str());
                assert_eq!(body["id"], ALICE);
            }
        }
    }

    #[test]
    fn ids_that_are_not_drupal_uuids_are_404_without_a_call() {
        for id in [
            "123",
            "admin",
            "..%2Fjsonapi",
            "7724F730-7ACA-4819-AAEE-90673A0141A4",
        ] {
            for m in ["GET", "DELETE"] {
                let (_, step) = run(req(m, &format!("/scim/v2/Users/{id}"), ""));
                assert_eq!(response(step).0.status, 404, "{m} {id}");
            }
        }
    }

    #[test]
    fn create_sends_status_and_answers_201_with_location() {
        let body = json!({"schemas": [crate::discovery::USER_SCHEMA], "userName": "alice",
            "emails": [{"value": "a@x.org", "primary": true}], "password": "S3cret!"});
        let (mut ex, step) = run(req("POST", "/scim/v2/Users", &body.to_string()));
        let call = &calls(&step)[0];
        assert_eq!(
            (call.method, call.path.as_str(), call.content_type),
            (
                "POST",
                "/jsonapi/user/user",
                Some("application/vnd.api+json")
            )
        );
        let sent: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            sent["data"]["attributes"],
            json!({"name": "alice", "mail": "a@x.org", "status": true, "pass": {"value": "S3cret!"}})
        );
        let (resp, out) = response(ex.resume(
            &config(),
            vec![answer(
                201,
                json!({"data": drupal_user(ALICE, 3, "alice", "a@x.org")}),
            )],
        ));
        assert_eq!(resp.status, 201);
        assert_eq!(resp.header("location"), out["meta"]["location"].as_str());
        assert_eq!(
            out["meta"]["location"],
            format!("http://gw.example:10000/scim/v2/Users/{ALICE}")
        );
        assert!(out.get("password").is_none());
    }

    #[test]
    fn duplicate_create_is_409_uniqueness() {
        let body = json!({"schemas": [crate::discovery::USER_SCHEMA], "userName": "alice"});
        let (mut ex, _) = run(req("POST", "/scim/v2/Users", &body.to_string()));
        let dup = json!({"errors": [{"status": "422", "detail": "name: The username alice is already taken."}]});
        let (resp, out) = response(ex.resume(&config(), vec![answer(422, dup)]));
        assert_eq!(
            (resp.status, out["scimType"].as_str()),
            (409, Some("uniqueness"))
        );
    }

    #[test]
    fn invalid_create_bodies_make_no_call() {
        for body in ["{", "{\"userName\": \"a\"}", "[]"] {
            let (_, step) = run(req("POST", "/scim/v2/Users", body));
            assert_eq!(response(step).0.status, 400, "{body}");
        }
    }

    #[test]
    fn delete_cancels_then_retires_a_surviving_account() {
        let (mut ex, step) = run(req("DELETE", &format!("/scim/v2/Users/{ALICE}"), ""));
        assert_eq!(calls(&step)[0].method, "GET");
        let step = ex.resume(
            &config(),
            vec![answer(
                200,
                json!({"data": drupal_user(ALICE, 3, "alice", "a@x.org")}),
            )],
        );
        assert_eq!(
            (calls(&step)[0].method, calls(&step)[0].path.clone()),
            ("DELETE", format!("/jsonapi/user/user/{ALICE}"))
        );
        let step = ex.resume(&config(), vec![answer(204, Value::Null)]);
        assert_eq!(calls(&step)[0].method, "PATCH");
        let (resp, _) = response(ex.resume(
            &config(),
            vec![answer(
                200,
                json!({"data": drupal_user(ALICE, 3, "scimretired", "x")}),
            )],
        ));
        assert_eq!(resp.status, 204);
        assert!(resp.body.is_empty());
    }

    #[test]
    fn delete_on_a_site_that_deletes_needs_no_retirement() {
        let (mut ex, _) = run(req("DELETE", &format!("/scim/v2/Users/{ALICE}"), ""));
        ex.resume(
            &config(),
            vec![answer(
                200,
                json!({"data": drupal_user(ALICE, 3, "alice", "a@x.org")}),
            )],
        );
        ex.resume(&config(), vec![answer(204, Value::Null)]);
        let (resp, _) = response(ex.resume(&config(), vec![answer(404, json!({"errors": []}))]));
        assert_eq!(resp.status, 204);
    }

    #[test]
    fn hard_delete_uses_core_rest_by_uid() {
        let mut c = config();
        c.drupal.user_delete = UserDelete::HardDelete;
        let (mut ex, _) =
            begin(&c, &req("DELETE", &format!("/scim/v2/Users/{ALICE}"), "")).unwrap();
        let step = ex.resume(
            &c,
            vec![answer(
                200,
                json!({"data": drupal_user(ALICE, 42, "alice", "a@x.org")}),
            )],
        );
        assert_eq!(calls(&step)[0].path, "/user/42?_format=json");
        let (resp, _) = response(ex.resume(&c, vec![answer(204, Value::Null)]));
        assert_eq!(resp.status, 204);
    }

    #[test]
    fn deleting_the_service_account_or_a_missing_user_is_refused() {
        let (mut ex, _) = run(req("DELETE", &format!("/scim/v2/Users/{ALICE}"), ""));
        let (resp, _) = response(ex.resume(
            &config(),
            vec![answer(
                200,
                json!({"data": drupal_user(ALICE, 1, "SCIM-service", "s@x.org")}),
            )],
        ));
        assert_eq!(resp.status, 403);
        let (mut ex, _) = run(req("DELETE", &format!("/scim/v2/Users/{ALICE}"), ""));
        let (resp, _) = response(ex.resume(&config(), vec![answer(404, json!({"errors": []}))]));
        assert_eq!(resp.status, 404);
    }

    #[test]
    fn list_fetches_the_window_concurrently_and_reports_a_growing_total() {
        let (mut ex, step) = run(req("GET", "/scim/v2/Users?startIndex=11&count=120", ""));
        let c = calls(&step);
        assert_eq!(c.len(), 3);
        assert!(c[0].path.ends_with("page[offset]=10&page[limit]=50"));
        assert!(c[1].path.ends_with("page[offset]=60&page[limit]=50"));
        assert!(c[2].path.ends_with("page[offset]=110&page[limit]=20"));
        let users = |n: u64, from: u64| {
            (0..n)
                .map(|i| drupal_user(ALICE, from + i, &format!("u{}", from + i), "m@x.org"))
                .collect::<Vec<_>>()
        };
        let (resp, out) = response(ex.resume(
            &config(),
            vec![
                page(users(50, 11), true),
                page(users(50, 61), true),
                page(users(20, 111), true),
            ],
        ));
        assert_eq!(resp.status, 200);
        assert_eq!(out["itemsPerPage"], 120);
        assert_eq!(out["startIndex"], 11);
        assert_eq!(out["totalResults"], 131);
        let (mut ex, _) = run(req("GET", "/scim/v2/Users?startIndex=11&count=120", ""));
        let (_, out) = response(ex.resume(
            &config(),
            vec![
                page(users(50, 11), true),
                page(users(5, 61), false),
                page(vec![], false),
            ],
        ));
        assert_eq!(
            (out["itemsPerPage"].as_u64(), out["totalResults"].as_u64()),
            (Some(55), Some(65))
        );
    }

    #[test]
    fn count_zero_returns_no_resources() {
        let (mut ex, step) = run(req("GET", "/scim/v2/Users?count=0", ""));
        assert!(calls(&step)[0]
            .path
            .ends_with("page[offset]=0&page[limit]=1"));
        let (_, out) = response(ex.resume(
            &config(),
            vec![page(vec![drupal_user(ALICE, 1, "a", "a@x")], true)],
        ));
        assert_eq!(out["Resources"], json!([]));
        assert_eq!(out["totalResults"], 2);
    }

    #[test]
    fn bad_paging_parameters_are_400() {
        for q in ["startIndex=abc", "count=1.5"] {
            let (_, step) = run(req("GET", &format!("/scim/v2/Users?{q}"), ""));
            assert_eq!(response(step).0.status, 400, "{q}");
        }
    }

    #[test]
    fn lookups_check_matches_in_the_gateway() {
        let (mut ex, step) = run(req(
            "GET",
            "/scim/v2/Users?filter=userName+eq+%22Jane%40Example.com%22",
            "",
        ));
        assert!(calls(&step)[0].path.contains("[value]=Jane%40Example.com"));
        let rows = vec![
            drupal_user(ALICE, 5, "jane@example.com", "j@x.org"),
            drupal_user(ALICE, 6, "jane@example.co", "k@x.org"),
        ];
        let (_, out) = response(ex.resume(&config(), vec![page(rows, false)]));
        assert_eq!(out["totalResults"], 1);
        assert_eq!(out["Resources"][0]["userName"], "jane@example.com");
    }

    #[test]
    fn lookups_walk_every_candidate_page() {
        let (mut ex, _) = run(req(
            "GET",
            "/scim/v2/Users?filter=emails+eq+%22a%40x.org%22",
            "",
        ));
        let step = ex.resume(
            &config(),
            vec![page(vec![drupal_user(ALICE, 5, "u5", "a@x.org.uk")], true)],
        );
        assert!(calls(&step)[0]
            .path
            .ends_with("page[offset]=50&page[limit]=50"));
        let (_, out) = response(ex.resume(
            &config(),
            vec![page(vec![drupal_user(ALICE, 60, "u60", "A@X.org")], false)],
        ));
        assert_eq!(out["totalResults"], 1);
    }

    #[test]
    fn invalid_filters_are_400_invalid_filter_without_a_call() {
        let (_, step) = run(req("GET", "/scim/v2/Users?filter=userName+sw+%22j%22", ""));
        let (resp, out) = response(step);
        assert_eq!(
            (resp.status, out["scimType"].as_str()),
            (400, Some("invalidFilter"))
        );
        let (_, step) = run(req("GET", "/scim/v2/Users?filter=id+eq+%22nope%22", ""));
        assert_eq!(response(step).1["totalResults"], 0);
    }
}
