//! The router: one SCIM request from start to finish, never performing IO. `begin` takes the
//! request, authenticates it, checks it (`request`) and starts the flow of its operation
//! (`user_read`, `user_create`, `user_edit`, `user_list`, `root_search`, `group_ops`; the
//! discovery documents answer at once), returning the Drupal calls to make or the answer;
//! `resume` feeds Drupal's replies to the flow until it answers, then releases what it held.

use crate::config::Config;
use crate::drupal::jsonapi;
use crate::flows::adoption::Adoption;
use crate::flows::audit::Outcome;
use crate::flows::auth;
use crate::flows::discovery;
use crate::flows::flow::{started, Cx, Flow, Started};
use crate::flows::group_ops::GroupOps;
use crate::flows::groups::LeftOutReport;
use crate::flows::request::{
    base_url, check_content_type, check_filter_length, drupal_sort, is_scim_path, member_count,
    no_groups, not_implemented, only_get, parse_query, query_param, query_window, split_path,
    user_not_found, ListRequest,
};
use crate::flows::root_search::RootSearch;
use crate::flows::scope::LockScope;
use crate::flows::user_create::UserCreate;
use crate::flows::user_edit::UserEdit;
use crate::flows::user_list::UserList;
use crate::flows::user_read::UserRead;
use crate::flows::user_view::UserView;
use crate::http::{scim_json as json_response, DrupalReply, Request, Step};
use crate::runtime::intents::SharedIntent;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::projection::Projection;

pub struct Exchange {
    /// The label of the token that authenticated the request (for logs and metrics).
    pub token_label: String,
    /// Group membership changes left out because the accounts are read-only to SCIM (for
    /// the site's log line and counter; the IdP sees a `Warning` header).
    pub left_out: Option<LeftOutReport>,
    /// What the request was about and did, for the host's log line.
    pub outcome: Outcome,
    /// An existing account this request adopted (`adopt: "mail"`), for metrics and logs.
    pub adopted: Option<Adoption>,
    /// The operation's flow until it answers.
    flow: Option<Box<dyn Flow>>,
    /// The shared-state intents the last step returned (`take_intents`).
    intents: Vec<SharedIntent>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("token_label", &self.token_label)
            .field("outcome", &self.outcome)
            .field("answered", &self.flow.is_none())
            .finish_non_exhaustive()
    }
}

/// Takes up a complete request. `None`: not under the SCIM base path, so not ours.
pub fn begin(config: &Config, req: &Request, scope: &mut LockScope) -> Option<(Exchange, Step)> {
    if !is_scim_path(config, &req.path) {
        return None;
    }
    let mut exchange = Exchange {
        token_label: String::new(),
        left_out: None,
        outcome: Outcome::for_path(&config.base_path, &req.path),
        adopted: None,
        flow: None,
        intents: Vec::new(),
    };
    let step = match auth::authenticate(req.header("authorization"), &config.tokens) {
        Err(e) => Step::Respond(e.into_response()),
        Ok(label) => {
            exchange.token_label = label.to_string();
            let mut cx = Cx {
                config,
                scope,
                outcome: &mut exchange.outcome,
            };
            let step = match base_url(config, req).and_then(|base| route(&mut cx, req, base)) {
                Ok((flow, step)) => {
                    exchange.flow = flow;
                    step
                }
                Err(e) => Step::Respond(e.into_response()),
            };
            exchange.settle(scope, step)
        }
    };
    Some((exchange, step))
}

impl Exchange {
    /// Feeds Drupal's replies (in the order of the calls) and returns what to do next.
    pub fn resume(
        &mut self,
        config: &Config,
        replies: Vec<DrupalReply>,
        scope: &mut LockScope,
    ) -> Step {
        let step = match self.flow.as_mut() {
            None => Step::Respond(
                ScimError::internal("The request was already answered.").into_response(),
            ),
            Some(flow) => {
                let mut cx = Cx {
                    config,
                    scope,
                    outcome: &mut self.outcome,
                };
                flow.on_replies(&mut cx, replies)
                    .unwrap_or_else(|e| Step::Respond(e.into_response()))
            }
        };
        self.settle(scope, step)
    }

    /// The shared-state intents the last step returned, whose outcome nothing waits for
    /// (unlocks, remembered totals): the host applies them, once the step is over, through
    /// the port the step took its locks with.
    pub fn take_intents(&mut self) -> Vec<SharedIntent> {
        std::mem::take(&mut self.intents)
    }

    /// The stream ended before the answer (the client went away, or Envoy's stream timeout):
    /// releases what the request holds at once, rather than at the lock time-out. A lock
    /// whose Drupal write may still be in flight is kept `write_grace_ms` more (the longest
    /// that write takes), so no other request writes the same user meanwhile.
    /// Returns the intents that do so, for the host to apply.
    pub fn abandon(&mut self, scope: &LockScope, write_grace_ms: u64) -> Vec<SharedIntent> {
        let mut intents = self.take_intents();
        if let Some(mut flow) = self.flow.take() {
            intents.extend(flow.abandon(scope, write_grace_ms));
        }
        intents
    }

    /// Once the flow answers: it lets go of its locks, and its report is kept for the host.
    fn settle(&mut self, scope: &mut LockScope, step: Step) -> Step {
        self.outcome.answered(&step);
        // In the order they came about: the step's own, then the release of what it held.
        self.intents.extend(scope.take_returned());
        if matches!(step, Step::Respond(_)) {
            if let Some(mut flow) = self.flow.take() {
                self.intents.extend(flow.release(scope));
                let report = flow.report();
                self.adopted = report.adopted.or(self.adopted);
                self.left_out = report.left_out;
            }
        }
        step
    }
}

/// Starts the flow the request's method and path name (discovery documents answer at once).
fn route(cx: &mut Cx<'_, '_>, req: &Request, base: String) -> Result<Started, ScimError> {
    let config = cx.config;
    let (path, query) = split_path(&req.path);
    let rest = path
        .get(config.base_path.len()..)
        .unwrap_or_default()
        .trim_end_matches('/');
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let method = req.method.as_str();
    if matches!(method, "POST" | "PUT" | "PATCH") {
        check_content_type(req.header("content-type"))?;
    }
    if segments.first() == Some(&"Groups") {
        let n = member_count(&req.body);
        if n > config.limits.max_members_per_request {
            return Err(ScimError::new(
                400,
                Some(ScimType::TooMany),
                format!(
                    "The request names {n} members; at most {} are accepted in one request.",
                    config.limits.max_members_per_request
                ),
            ));
        }
    }
    let params = parse_query(query).map_err(ScimError::invalid_value)?;
    let param = |name: &str| query_param(&params, name);
    if let Some(f) = param("filter") {
        check_filter_length(f, config)?;
    }
    let view = UserView {
        projection: Projection::from_query(param("attributes"), param("excludedAttributes"))?,
        base_url: base,
        adopt_view: config.adopt.by_mail,
    };
    let base = &view.base_url;
    let discovery_doc = match segments.as_slice() {
        ["ServiceProviderConfig"] => Some(Ok(discovery::service_provider_config(
            base,
            config.limits.max_count,
        ))),
        ["ResourceTypes"] => Some(Ok(discovery::resource_types(base, config))),
        ["ResourceTypes", id] => Some(discovery::resource_type(base, config, id)),
        ["Schemas"] => Some(Ok(discovery::schemas(base, config))),
        ["Schemas", id] => Some(discovery::schema(base, config, id)),
        _ => None,
    };
    if let Some(doc) = discovery_doc {
        only_get(method)?;
        return Ok((None, json_response(200, &doc?, vec![])));
    }
    match segments.as_slice() {
        ["Users"] | ["Users", _] | [".search"] => users_route(cx, req, view, &segments, &params),
        ["Groups"] | ["Groups", _] if config.groups.is_none() => Err(no_groups()),
        ["Groups"] | ["Groups", _] => started(GroupOps::route(cx, &view, &segments, req, &params)),
        ["Me"] => Err(not_implemented("/Me")),
        ["Bulk"] => Err(not_implemented("/Bulk")),
        _ => Err(ScimError::not_found(format!(
            "There is no SCIM endpoint at `{path}`; see {base}/ResourceTypes."
        ))),
    }
}

/// `/Users`, `/Users/.search`, `/Users/{id}` and the root `/.search`.
fn users_route(
    cx: &mut Cx<'_, '_>,
    req: &Request,
    view: UserView,
    segments: &[&str],
    params: &[(String, String)],
) -> Result<Started, ScimError> {
    let config = cx.config;
    let method = req.method.as_str();
    let param = |name: &str| query_param(params, name);
    match segments {
        ["Users"] => match method {
            "GET" | "HEAD" => {
                let (start_index, count) = query_window(params, config.limits.max_count)?;
                let list = ListRequest {
                    filter: param("filter").map(str::to_string),
                    start_index,
                    count,
                    sort: drupal_sort(&config.mapping, param("sortBy"), param("sortOrder"))?,
                };
                started(UserList::start(cx, view, list))
            }
            "POST" => started(UserCreate::start(cx, view, &req.body)),
            _ => Err(ScimError::method_not_allowed("GET, POST")),
        },
        [".search"] if config.groups.is_some() => match method {
            "POST" => started(RootSearch::start(cx, view, &req.body)),
            _ => Err(ScimError::method_not_allowed("POST")),
        },
        ["Users", ".search"] | [".search"] => match method {
            "POST" => started(UserList::search(cx, view, &req.body)),
            _ => Err(ScimError::method_not_allowed("POST")),
        },
        ["Users", id] => {
            let known = jsonapi::is_uuid(id);
            match method {
                "GET" | "HEAD" if known => started(Ok(UserRead::start(
                    config,
                    view,
                    id,
                    req.header("if-none-match"),
                ))),
                "PUT" if known => started(UserEdit::put(cx, view, id, req)),
                "PATCH" if known => started(UserEdit::patch(cx, view, id, req)),
                "DELETE" if known => {
                    started(UserEdit::delete(cx, view, id, req.header("if-match")))
                }
                "GET" | "HEAD" | "PUT" | "PATCH" | "DELETE" => Err(user_not_found(id)),
                _ => Err(ScimError::method_not_allowed("GET, PUT, PATCH, DELETE")),
            }
        }
        _ => Err(ScimError::internal("Not a Users endpoint.")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;
    use crate::config::UserDelete;
    use crate::flows::request::{check_headers, classify, SEARCH_REQUEST_SCHEMA};
    use crate::http::DrupalCall;
    use serde_json::Value;

    use crate::config::{Config, DrupalConfig, TokenDigest};
    use crate::http::Response;
    use crate::runtime::locks::Locks;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    const ALICE: &str = "7724f730-7aca-4819-aaee-90673a0141a4";

    fn begin_t(config: &Config, req: &Request) -> Option<(Exchange, Step)> {
        let mut locks = crate::runtime::locks::MemoryLocks::default();
        let mut env = LockScope::new(&mut locks, 1, "test", 1000);
        begin(config, req, &mut env)
    }

    impl Exchange {
        fn resume_t(&mut self, config: &Config, replies: Vec<DrupalReply>) -> Step {
            let mut locks = crate::runtime::locks::MemoryLocks::default();
            let mut env = LockScope::new(&mut locks, 1, "test", 1000);
            self.resume(config, replies, &mut env)
        }
    }

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
            protection: crate::config::protection::Protection {
                service_username: "scim-service".into(),
                writable_roles: crate::config::protection::writable_roles(&[], &[]),
                service_uid: Default::default(),
            },
            groups: None,
            wait_cluster: None,
            adopt: Default::default(),
            rate_limits: Vec::new(),
            limits: crate::config::Limits::default(),
            log_format: crate::config::LogFormat::Text,
            mapping: crate::scim::mapping::UserMapping::from_config(Some(&json!([
                {"scim": "name.givenName", "drupal": "field_given_name"},
                {"scim": "externalId", "drupal": "field_external_id"}
            ])))
            .unwrap(),
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
            "changed": "2026-11-28T11:44:27+00:00", "drupal_internal__uid": uid,
            "field_given_name": "Alice", "field_external_id": null},
            "relationships": {"roles": {"data": []}}})
    }

    fn answer(status: u16, body: Value) -> DrupalReply {
        DrupalReply::json(status, body)
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

    /// The read of the accounts a write's new name or address could clash with (`unique`).
    fn unique_read(step: &Step) -> bool {
        let c = &calls(step)[0];
        c.method == "GET" && c.path.contains("name%2Cmail%2Cdrupal_internal__uid")
    }

    fn run(request: Request) -> (Exchange, Step) {
        begin_t(&config(), &request).expect("a SCIM path")
    }

    #[test]
    fn requests_are_classified_for_metrics() {
        let c = config();
        let cases = [
            ("GET", "/scim/v2/Users?filter=x", ("users", "list")),
            ("POST", "/scim/v2/Users", ("users", "create")),
            ("POST", "/scim/v2/Users/.search", ("users", "search")),
            ("POST", "/scim/v2/.search", ("search", "search")),
            ("PATCH", "/scim/v2/Groups/abc", ("groups", "patch")),
            ("DELETE", "/scim/v2/Users/abc/", ("users", "delete")),
            ("GET", "/scim/v2/Schemas/urn:x", ("discovery", "discovery")),
            ("GET", "/scim/v2/evil%2Fname", ("other", "other")),
        ];
        for (m, p, want) in cases {
            assert_eq!(classify(&c, m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn paths_outside_the_base_path_are_not_ours() {
        assert!(begin_t(&config(), &req("GET", "/jsonapi/user/user", "")).is_none());
        assert!(begin_t(&config(), &req("GET", "/scim/v2x/Users", "")).is_none());
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
        assert_eq!(response(step).1["patch"]["supported"], true);
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
                    json!({"data": {"type": "user--user", "id": ALICE, "attributes": {"display_name": "Guest"}}}),
                ),
                // Drupal's anonymous user on a site that renamed it: still uid 0, no SCIM
                // user. (A refused account's label-only view never gets here: the upstream
                // gate confirms it with a guarded read and answers 502.)
                404,
            ),
            (answer(403, json!({})), 502),
            (DrupalReply::Failed, 502),
            (answer(504, Value::Null), 504),
        ];
        for (reply, status) in cases {
            let (mut ex, step) = run(req("GET", &format!("/scim/v2/Users/{ALICE}"), ""));
            assert_eq!(calls(&step)[0].path, format!("/jsonapi/user/user/{ALICE}?fields[user--user]=display_name%2Cdrupal_internal__uid%2Ccreated%2Cchanged%2Cinit%2Croles%2Cname%2Cmail%2Cstatus%2Cfield_given_name%2Cfield_external_id"));
            let (resp, body) = response(ex.resume_t(&config(), vec![reply]));
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
        let body = json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": "alice",
            "emails": [{"value": "a@x.org", "primary": true}], "password": "S3cret!"});
        let (mut ex, step) = run(req("POST", "/scim/v2/Users", &body.to_string()));
        assert!(unique_read(&step));
        let step = ex.resume_t(&config(), vec![page(vec![], false)]);
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
        let (resp, out) = response(ex.resume_t(
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
        let body = json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": "alice"});
        let (mut ex, _) = run(req("POST", "/scim/v2/Users", &body.to_string()));
        let dup = json!({"errors": [{"status": "422", "detail": "name: The username alice is already taken."}]});
        let (resp, out) = response(ex.resume_t(&config(), vec![answer(422, dup)]));
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
        let step = ex.resume_t(
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
        let step = ex.resume_t(&config(), vec![answer(204, Value::Null)]);
        assert_eq!(calls(&step)[0].method, "PATCH");
        let (resp, _) = response(ex.resume_t(
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
        ex.resume_t(
            &config(),
            vec![answer(
                200,
                json!({"data": drupal_user(ALICE, 3, "alice", "a@x.org")}),
            )],
        );
        ex.resume_t(&config(), vec![answer(204, Value::Null)]);
        let (resp, _) = response(ex.resume_t(&config(), vec![answer(404, json!({"errors": []}))]));
        assert_eq!(resp.status, 204);
    }

    #[test]
    fn writes_whose_fate_is_unknown_are_read_back_before_the_answer() {
        let timeout = DrupalReply::Answer {
            status: 504,
            body: b"upstream request timeout".to_vec(),
        };
        let reset = DrupalReply::Answer {
            status: 503,
            body: b"upstream connect error or disconnect/reset before headers. reset reason: connection termination".to_vec(),
        };
        // A create that timed out but landed: found by name, holding what was sent.
        let body = json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": "alice",
            "emails": [{"value": "a@x.org", "primary": true}]});
        let (mut ex, _) = run(req("POST", "/scim/v2/Users", &body.to_string()));
        ex.resume_t(&config(), vec![page(vec![], false)]); // the uniqueness read
        let step = ex.resume_t(&config(), vec![timeout.clone()]);
        assert!(calls(&step)[0].path.contains("filter[name]=alice"));
        let found = page(vec![drupal_user(ALICE, 3, "alice", "a@x.org")], false);
        let (resp, out) = response(ex.resume_t(&config(), vec![found]));
        assert_eq!((resp.status, out["id"].as_str()), (201, Some(ALICE)));
        // Not there (or another account of that name): the write's own error, saying so.
        let (mut ex, _) = run(req("POST", "/scim/v2/Users", &body.to_string()));
        ex.resume_t(&config(), vec![page(vec![], false)]);
        ex.resume_t(&config(), vec![timeout.clone()]);
        let other = page(vec![drupal_user(ALICE, 3, "alice", "other@x.org")], false);
        let (resp, out) = response(ex.resume_t(&config(), vec![other]));
        assert_eq!(resp.status, 504);
        assert!(out["detail"]
            .as_str()
            .unwrap()
            .contains("does not show the change"));

        // A PATCH reset after it was sent: the read shows it made, or not.
        let deactivate = patch_body(json!([{"op": "replace", "path": "active", "value": false}]));
        for (shown, status) in [(false, 200), (true, 503)] {
            let (mut ex, _) = run(req(
                "PATCH",
                &format!("/scim/v2/Users/{ALICE}"),
                &deactivate,
            ));
            ex.resume_t(&config(), vec![answer(200, alice_doc())]);
            let step = ex.resume_t(&config(), vec![reset.clone()]);
            assert_eq!(calls(&step)[0].method, "GET");
            let mut after = alice_doc();
            after["data"]["attributes"]["status"] = json!(shown);
            let (resp, _) = response(ex.resume_t(&config(), vec![answer(200, after)]));
            assert_eq!(resp.status, status, "status shown as {shown}");
        }

        // DELETE: a cancel of unknown fate goes on to the retirement; a retirement of
        // unknown fate is done when the account reads as gone.
        let (mut ex, _) = run(req("DELETE", &format!("/scim/v2/Users/{ALICE}"), ""));
        ex.resume_t(&config(), vec![answer(200, alice_doc())]);
        let step = ex.resume_t(&config(), vec![timeout.clone()]);
        assert_eq!(calls(&step)[0].method, "PATCH");
        let step = ex.resume_t(&config(), vec![reset.clone()]);
        assert_eq!(calls(&step)[0].method, "GET");
        let (resp, _) = response(ex.resume_t(&config(), vec![answer(404, json!({"errors": []}))]));
        assert_eq!(resp.status, 204);
    }

    #[test]
    fn hard_delete_uses_core_rest_by_uid() {
        let mut c = config();
        c.drupal.user_delete = UserDelete::HardDelete;
        let (mut ex, _) =
            begin_t(&c, &req("DELETE", &format!("/scim/v2/Users/{ALICE}"), "")).unwrap();
        let step = ex.resume_t(
            &c,
            vec![answer(
                200,
                json!({"data": drupal_user(ALICE, 42, "alice", "a@x.org")}),
            )],
        );
        assert_eq!(calls(&step)[0].path, "/user/42?_format=json");
        let (resp, _) = response(ex.resume_t(&c, vec![answer(204, Value::Null)]));
        assert_eq!(resp.status, 204);
    }

    #[test]
    fn deleting_the_service_account_or_a_missing_user_is_refused() {
        let (mut ex, _) = run(req("DELETE", &format!("/scim/v2/Users/{ALICE}"), ""));
        let (resp, _) = response(ex.resume_t(
            &config(),
            vec![answer(
                200,
                json!({"data": drupal_user(ALICE, 1, "SCIM-service", "s@x.org")}),
            )],
        ));
        assert_eq!(resp.status, 403);
        let (mut ex, _) = run(req("DELETE", &format!("/scim/v2/Users/{ALICE}"), ""));
        let (resp, _) = response(ex.resume_t(&config(), vec![answer(404, json!({"errors": []}))]));
        assert_eq!(resp.status, 404);
    }

    #[test]
    fn list_reads_the_first_page_then_the_window_and_counts_exactly() {
        let users = |n: u64, from: u64| {
            (0..n)
                .map(|i| drupal_user(ALICE, from + i, &format!("u{}", from + i), "m@x.org"))
                .collect::<Vec<_>>()
        };
        let (mut ex, step) = run(req("GET", "/scim/v2/Users?startIndex=11&count=120", ""));
        assert_eq!(calls(&step).len(), 1);
        assert!(calls(&step)[0]
            .path
            .ends_with("page[offset]=10&page[limit]=50"));
        assert!(calls(&step)[0]
            .path
            .contains("filter[scim_below][condition][value]=scimretired"));
        let step = ex.resume_t(&config(), vec![page(users(50, 11), true)]);
        let c = calls(&step);
        assert_eq!(c.len(), 2);
        assert!(c[0].path.ends_with("page[offset]=60&page[limit]=50"));
        assert!(c[1].path.ends_with("page[offset]=110&page[limit]=50"));
        let (resp, out) = response(ex.resume_t(
            &config(),
            vec![page(users(50, 61), true), page(users(21, 111), false)],
        ));
        assert_eq!(resp.status, 200);
        assert_eq!(out["itemsPerPage"], 120);
        assert_eq!(out["startIndex"], 11);
        assert_eq!(out["totalResults"], 131);

        // The window does not reach the end: probes of ids count the rest.
        let (mut ex, _) = run(req("GET", "/scim/v2/Users?startIndex=1&count=2", ""));
        let mut step = ex.resume_t(&config(), vec![page(users(50, 1), true)]);
        // 130 users, answered as Drupal would, until the count is settled.
        let mut rounds = 0;
        while let Step::Call(probes) = &step {
            rounds += 1;
            assert!(probes
                .iter()
                .all(|c| c.path.contains("fields[user--user]=drupal_internal__uid&")));
            let replies = probes
                .iter()
                .map(|c| {
                    let off: usize = c
                        .path
                        .split("page[offset]=")
                        .nth(1)
                        .unwrap()
                        .split('&')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    let len = 130usize.saturating_sub(off).min(50);
                    page(vec![json!({"id": "x"}); len], off + 50 < 130)
                })
                .collect();
            step = ex.resume_t(&config(), replies);
        }
        assert!(rounds <= 4, "{rounds} rounds of probes");
        let (_, out) = response(step);
        assert_eq!(
            (out["itemsPerPage"].as_u64(), out["totalResults"].as_u64()),
            (Some(2), Some(130))
        );

        // A small directory is one Drupal call, whatever the count.
        let (mut ex, step) = run(req("GET", "/scim/v2/Users", ""));
        assert!(calls(&step)[0]
            .path
            .ends_with("page[offset]=0&page[limit]=50"));
        let (_, out) = response(ex.resume_t(&config(), vec![page(users(7, 1), false)]));
        assert_eq!(
            (out["itemsPerPage"].as_u64(), out["totalResults"].as_u64()),
            (Some(7), Some(7))
        );
    }

    #[test]
    fn count_zero_returns_no_resources_and_the_exact_total() {
        let (mut ex, step) = run(req("GET", "/scim/v2/Users?count=0", ""));
        assert!(calls(&step)[0]
            .path
            .ends_with("fields[user--user]=drupal_internal__uid&page[offset]=0&page[limit]=50"));
        let (_, out) =
            response(ex.resume_t(&config(), vec![page(vec![json!({"id": "x"}); 7], false)]));
        assert_eq!(out["Resources"], json!([]));
        assert_eq!(out["totalResults"], 7);
    }

    #[test]
    fn bad_paging_parameters_are_400() {
        for q in ["startIndex=abc", "count=1.5"] {
            let (_, step) = run(req("GET", &format!("/scim/v2/Users?{q}"), ""));
            assert_eq!(response(step).0.status, 400, "{q}");
        }
    }

    #[test]
    fn username_lookups_are_answered_by_drupal_in_one_call() {
        let (mut ex, step) = run(req(
            "GET",
            "/scim/v2/Users?filter=userName+eq+%22Jane%40Example.com%22",
            "",
        ));
        assert_eq!(calls(&step).len(), 1);
        assert!(calls(&step)[0].path.contains("[value]=Jane%40Example.com"));
        let rows = vec![drupal_user(ALICE, 5, "jane@example.com", "j@x.org")];
        let (_, out) = response(ex.resume_t(&config(), vec![page(rows, false)]));
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
        let step = ex.resume_t(
            &config(),
            vec![page(vec![drupal_user(ALICE, 5, "u5", "a@x.org.uk")], true)],
        );
        assert!(calls(&step)[0]
            .path
            .ends_with("page[offset]=50&page[limit]=50"));
        let (_, out) = response(ex.resume_t(
            &config(),
            vec![page(vec![drupal_user(ALICE, 60, "u60", "A@X.org")], false)],
        ));
        assert_eq!(out["totalResults"], 1);
    }

    #[test]
    fn invalid_filters_are_400_invalid_filter_without_a_call() {
        let (_, step) = run(req("GET", "/scim/v2/Users?filter=title+sw+%22j%22", ""));
        let (resp, out) = response(step);
        assert_eq!(
            (resp.status, out["scimType"].as_str()),
            (400, Some("invalidFilter"))
        );
        let (_, step) = run(req("GET", "/scim/v2/Users?filter=id+eq+%22nope%22", ""));
        assert_eq!(response(step).1["totalResults"], 0);
    }

    fn patch_body(ops: Value) -> String {
        json!({"schemas": [crate::scim::patch::PATCH_OP_SCHEMA], "Operations": ops}).to_string()
    }

    fn with_header(mut r: Request, name: &str, value: &str) -> Request {
        r.headers.push((name.into(), value.into()));
        r
    }

    fn alice_doc() -> Value {
        json!({"data": drupal_user(ALICE, 3, "alice", "a@x.org")})
    }

    #[test]
    fn deactivation_patch_reads_then_writes_once() {
        let (mut ex, step) = run(req(
            "PATCH",
            &format!("/scim/v2/Users/{ALICE}"),
            &patch_body(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        ));
        assert_eq!(calls(&step)[0].method, "GET");
        let step = ex.resume_t(&config(), vec![answer(200, alice_doc())]);
        let c = &calls(&step)[0];
        assert_eq!(c.method, "PATCH");
        let sent: Value = serde_json::from_slice(c.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            sent["data"],
            json!({"type": "user--user", "id": ALICE, "attributes": {"status": false}})
        );
        let (resp, out) = response(ex.resume_t(&config(), vec![answer(200, alice_doc())]));
        assert_eq!(resp.status, 200);
        assert_eq!(out["userName"], "alice");
    }

    #[test]
    fn patch_with_value_filters_reads_then_writes_only_the_changes() {
        let ops = json!([{"op": "remove", "path": "name.givenName"}, {"op": "add", "path": "emails[type eq \"work\"].value", "value": "new@x.org"}]);
        let (mut ex, step) = run(req(
            "PATCH",
            &format!("/scim/v2/Users/{ALICE}"),
            &patch_body(ops),
        ));
        assert_eq!(calls(&step)[0].method, "GET");
        let step = ex.resume_t(&config(), vec![answer(200, alice_doc())]);
        assert!(unique_read(&step), "the new address is checked first");
        let step = ex.resume_t(&config(), vec![page(vec![], false)]);
        let sent: Value = serde_json::from_slice(calls(&step)[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            sent["data"]["attributes"],
            json!({"mail": "new@x.org", "field_given_name": null})
        );
        let (resp, _) = response(ex.resume_t(&config(), vec![answer(200, alice_doc())]));
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn patch_that_changes_nothing_writes_nothing() {
        let ops = json!([{"op": "remove", "path": "externalId"}]);
        let (mut ex, _) = run(req(
            "PATCH",
            &format!("/scim/v2/Users/{ALICE}"),
            &patch_body(ops),
        ));
        let (resp, out) = response(ex.resume_t(&config(), vec![answer(200, alice_doc())]));
        assert_eq!((resp.status, out["id"].as_str()), (200, Some(ALICE)));
    }

    #[test]
    fn if_match_guards_writes_and_if_none_match_gives_304() {
        let (mut ex, _) = run(req("GET", &format!("/scim/v2/Users/{ALICE}"), ""));
        let (resp, _) = response(ex.resume_t(&config(), vec![answer(200, alice_doc())]));
        let etag = resp.header("etag").unwrap().to_string();

        let (mut ex, _) = run(with_header(
            req("GET", &format!("/scim/v2/Users/{ALICE}"), ""),
            "if-none-match",
            &etag,
        ));
        let (resp, _) = response(ex.resume_t(&config(), vec![answer(200, alice_doc())]));
        assert_eq!((resp.status, resp.body.len()), (304, 0));

        let body = patch_body(json!([{"op": "replace", "path": "active", "value": false}]));
        let (mut ex, step) = run(with_header(
            req("PATCH", &format!("/scim/v2/Users/{ALICE}"), &body),
            "if-match",
            "W/\"stale\"",
        ));
        assert_eq!(calls(&step)[0].method, "GET");
        let (resp, _) = response(ex.resume_t(&config(), vec![answer(200, alice_doc())]));
        assert_eq!(resp.status, 412);

        let (mut ex, _) = run(with_header(
            req("PATCH", &format!("/scim/v2/Users/{ALICE}"), &body),
            "if-match",
            &etag,
        ));
        let step = ex.resume_t(&config(), vec![answer(200, alice_doc())]);
        assert_eq!(calls(&step)[0].method, "PATCH");

        let (mut ex, _) = run(with_header(
            req("DELETE", &format!("/scim/v2/Users/{ALICE}"), ""),
            "if-match",
            "W/\"stale\"",
        ));
        assert_eq!(
            response(ex.resume_t(&config(), vec![answer(200, alice_doc())]))
                .0
                .status,
            412
        );
    }

    #[test]
    fn reads_before_a_write_ask_drupal_for_what_the_write_needs() {
        let fieldset = |step: &Step| {
            let path = calls(step)[0].path.clone();
            let (_, query) = path.split_once('?').unwrap();
            query
                .split('&')
                .find_map(|p| p.strip_prefix("fields[user--user]="))
                .map(|f| f.replace("%2C", ","))
                .unwrap()
        };
        let put = json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": "x",
            "emails": [{"value": "x@x.org"}]})
        .to_string();
        let patch = patch_body(json!([{"op": "replace", "path": "active", "value": false}]));
        let user = format!("/scim/v2/Users/{ALICE}");
        let full = fieldset(&run(req("GET", &user, "")).1);
        assert!(full.contains("field_given_name") && full.contains("changed"));
        let cases = [
            (
                "PUT",
                put.as_str(),
                None,
                "display_name,drupal_internal__uid,name,mail,init,roles",
            ),
            (
                "DELETE",
                "",
                None,
                "display_name,drupal_internal__uid,name,init,roles",
            ),
            // The version needs every mapped field; a PATCH works on the whole resource.
            ("PUT", put.as_str(), Some("W/\"x\""), full.as_str()),
            ("DELETE", "", Some("W/\"x\""), full.as_str()),
            ("PATCH", patch.as_str(), None, full.as_str()),
        ];
        for (method, body, if_match, expected) in cases {
            let mut request = req(method, &user, body);
            if let Some(tag) = if_match {
                request = with_header(request, "if-match", tag);
            }
            let (_, step) = run(request);
            assert_eq!(fieldset(&step), expected, "{method} if-match={if_match:?}");
        }
        // What the narrow read brings back is enough for the write.
        let narrow = |mail: &str| {
            answer(
                200,
                json!({"data": {"type": "user--user", "id": ALICE,
                "attributes": {"name": "x", "mail": mail, "drupal_internal__uid": 7, "init": "x@x.org"},
                "relationships": {"roles": {"data": []}}}}),
            )
        };
        let (mut ex, _) = run(req("PUT", &user, &put));
        let step = ex.resume_t(&config(), vec![narrow("x@x.org")]);
        assert_eq!(
            (calls(&step).len(), calls(&step)[0].method),
            (1, "PATCH"),
            "same name and address: no uniqueness read"
        );
        let (mut ex, _) = run(req("DELETE", &user, ""));
        let step = ex.resume_t(&config(), vec![narrow("x@x.org")]);
        assert_eq!(calls(&step)[0].method, "DELETE");
    }

    #[test]
    fn accounts_scim_may_not_write_are_refused_after_the_read() {
        let with_roles = |uid: u64, name: &str, roles: &[&str]| {
            let mut user = drupal_user(ALICE, uid, name, "x@x.org");
            user["relationships"] = json!({"roles": {"data": roles.iter().map(|r| json!(
                {"type": "user_role--user_role", "id": "r", "meta": {"drupal_internal__target_id": r}})).collect::<Vec<_>>()}});
            answer(200, json!({ "data": user }))
        };
        let patch = patch_body(json!([{"op": "replace", "path": "active", "value": false}]));
        let put = json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": "x",
            "emails": [{"value": "x@x.org"}]})
        .to_string();
        for (method, body) in [
            ("PATCH", patch.as_str()),
            ("PUT", put.as_str()),
            ("DELETE", ""),
        ] {
            for (reply, why) in [
                (with_roles(1, "admin", &[]), "uid 1"),
                (with_roles(5, "SCIM-service", &[]), "service account"),
                (with_roles(6, "eve", &["administrator"]), "`administrator`"),
            ] {
                let (mut ex, step) = run(req(method, &format!("/scim/v2/Users/{ALICE}"), body));
                assert_eq!(calls(&step)[0].method, "GET", "{method}");
                let (resp, out) = response(ex.resume_t(&config(), vec![reply]));
                assert_eq!(resp.status, 403, "{method} {out}");
                assert!(out["detail"].as_str().unwrap().contains(why), "{out}");
            }
        }
        // An account with only roles the gateway manages or allows is written.
        let (mut ex, _) = run(req("PATCH", &format!("/scim/v2/Users/{ALICE}"), &patch));
        let step = ex.resume_t(&config(), vec![with_roles(6, "alice", &[])]);
        assert_eq!(calls(&step)[0].method, "PATCH");
    }

    #[test]
    fn without_public_url_only_a_plain_host_reaches_locations() {
        let get = |host: &str| {
            let mut r = req("GET", "/scim/v2/ServiceProviderConfig", "");
            r.headers.retain(|(n, _)| n != "host" && n != ":authority");
            r.headers.push((":authority".into(), host.into()));
            response(run(r).1)
        };
        for good in [
            "scim.example.org",
            "127.0.0.1:10000",
            "[::1]:8443",
            "localhost",
        ] {
            assert_eq!(get(good).0.status, 200, "{good}");
        }
        for bad in ["evil.org/x?", "a@b", "x y", "h:port", "\"<x>\"", ""] {
            let (resp, out) = get(bad);
            assert_eq!(resp.status, 400, "{bad}");
            assert_eq!(out["scimType"], "invalidValue");
        }
    }

    #[test]
    fn put_replaces_in_one_call_and_clears_what_is_left_out() {
        let body = json!({"schemas": [crate::scim::schema::USER_SCHEMA], "id": "ignored", "userName": "alice2",
            "emails": [{"value": "a2@x.org", "type": "work"}], "meta": {"version": "x"}, "groups": []});
        let (mut ex, step) = run(req(
            "PUT",
            &format!("/scim/v2/Users/{ALICE}"),
            &body.to_string(),
        ));
        assert_eq!(calls(&step)[0].method, "GET");
        let step = ex.resume_t(&config(), vec![answer(200, alice_doc())]);
        assert!(unique_read(&step));
        let step = ex.resume_t(&config(), vec![page(vec![], false)]);
        let c = &calls(&step)[0];
        assert_eq!(
            (c.method, c.path.as_str()),
            ("PATCH", format!("/jsonapi/user/user/{ALICE}").as_str())
        );
        let sent: Value = serde_json::from_slice(c.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            sent["data"]["attributes"],
            json!({"name": "alice2", "mail": "a2@x.org", "field_given_name": null, "field_external_id": null})
        );
        let (resp, _) = response(ex.resume_t(&config(), vec![answer(200, alice_doc())]));
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn rename_collision_is_409() {
        let body = patch_body(json!([{"op": "replace", "path": "userName", "value": "bob"}]));
        let (mut ex, _) = run(req("PATCH", &format!("/scim/v2/Users/{ALICE}"), &body));
        let dup = json!({"errors": [{"status": "422", "detail": "name: The username bob is already taken."}]});
        let (resp, out) = response(ex.resume_t(&config(), vec![answer(422, dup)]));
        assert_eq!(
            (resp.status, out["scimType"].as_str()),
            (409, Some("uniqueness"))
        );
    }

    #[test]
    fn search_sorts_and_projects() {
        let body = json!({"schemas": [SEARCH_REQUEST_SCHEMA], "filter": "userName sw \"a\"", "sortBy": "name.givenName",
            "sortOrder": "descending", "attributes": ["userName"], "count": 10});
        for path in ["/scim/v2/Users/.search", "/scim/v2/.search"] {
            let (mut ex, step) = run(req("POST", path, &body.to_string()));
            let c = &calls(&step)[0];
            assert!(
                c.path
                    .contains("sort=-field_given_name%2Cdrupal_internal__uid"),
                "{}",
                c.path
            );
            assert!(c.path.contains("[operator]=STARTS_WITH"));
            let (_, out) = response(ex.resume_t(
                &config(),
                vec![page(vec![drupal_user(ALICE, 3, "alice", "a@x.org")], false)],
            ));
            assert_eq!(
                out["Resources"][0],
                json!({"schemas": [crate::scim::schema::USER_SCHEMA], "id": ALICE, "userName": "alice"})
            );
        }
        let (_, step) = run(req("POST", "/scim/v2/.search", "{\"filter\": \"x\"}"));
        assert_eq!(response(step).0.status, 400);
        let (_, step) = run(req("GET", "/scim/v2/Users?sortBy=title", ""));
        assert_eq!(response(step).0.status, 400);
    }

    #[test]
    fn excluded_attributes_apply_to_reads() {
        let (mut ex, _) = run(req(
            "GET",
            &format!("/scim/v2/Users/{ALICE}?excludedAttributes=emails,name"),
            "",
        ));
        let (_, out) = response(ex.resume_t(&config(), vec![answer(200, alice_doc())]));
        assert!(
            out.get("emails").is_none()
                && out.get("name").is_none()
                && out.get("userName").is_some()
        );
    }

    // ---- Groups ----

    const ENG: &str = "32a595e5-cfd9-4ce7-945f-9b04077da756";
    const BOB: &str = "5c2dc370-24e6-415e-b8be-fabcb39fad8d";

    fn group_config() -> Config {
        let mut c = config();
        c.groups =
            crate::config::groups::GroupsConfig::from_config(Some(&json!({"concurrency": 4})))
                .unwrap();
        c
    }

    fn term(uuid: &str, name: &str) -> Value {
        json!({"type": "taxonomy_term--scim_groups", "id": uuid, "attributes": {"name": name, "changed": "2026-11-28T11:51:50+00:00",
            "revision_created": "2026-11-28T11:51:50+00:00"},
            "relationships": {"vid": {"data": {"meta": {"drupal_internal__target_id": "scim_groups"}}}}})
    }

    fn memberships(terms: &[&str]) -> DrupalReply {
        answer(
            200,
            json!({"data": {"relationships": {"field_scim_groups": {"data": terms.iter().map(|t| json!({"id": t})).collect::<Vec<_>>()}, "roles": {"data": []}}}}),
        )
    }

    /// The shared confirming read of several users: `(user, their terms)`.
    fn memberships_of(users: &[(&str, &[&str])]) -> DrupalReply {
        let data: Vec<Value> = users
            .iter()
            .map(|(id, terms)| json!({"id": id, "relationships": {"field_scim_groups": {"data": terms.iter().map(|t| json!({"id": t})).collect::<Vec<_>>()}, "roles": {"data": []}}}))
            .collect();
        answer(200, json!({"data": data}))
    }

    /// What the host does once a step is over: applies the intents it returned.
    fn host_applies(port: &mut dyn crate::runtime::intents::SharedPort, ex: &mut Exchange) {
        for intent in ex.take_intents() {
            port.apply(intent);
        }
    }

    struct GroupRig {
        config: Config,
        locks: crate::runtime::locks::MemoryLocks,
    }

    impl GroupRig {
        fn new() -> Self {
            GroupRig {
                config: group_config(),
                locks: crate::runtime::locks::MemoryLocks::default(),
            }
        }
        fn begin(&mut self, r: Request) -> (Exchange, Step) {
            let mut env = LockScope::new(&mut self.locks, 1, "t", 1000);
            let (mut ex, step) = begin(&self.config, &r, &mut env).unwrap();
            host_applies(&mut self.locks, &mut ex);
            (ex, step)
        }
        fn resume(&mut self, ex: &mut Exchange, replies: Vec<DrupalReply>) -> Step {
            let mut env = LockScope::new(&mut self.locks, 1, "t", 1000);
            let step = ex.resume(&self.config, replies, &mut env);
            host_applies(&mut self.locks, ex);
            step
        }
    }

    #[test]
    fn group_create_checks_members_and_name_then_adds_each_member() {
        let mut rig = GroupRig::new();
        let body = json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "Engineering", "members": [{"value": ALICE}, {"value": BOB}]});
        let (mut ex, step) = rig.begin(req("POST", "/scim/v2/Groups", &body.to_string()));
        assert!(
            calls(&step)[0].path.contains("[operator]=IN"),
            "members are checked first"
        );
        let step = rig.resume(
            &mut ex,
            vec![page(
                vec![
                    drupal_user(ALICE, 3, "alice", "a@x"),
                    drupal_user(BOB, 4, "bob", "b@x"),
                ],
                false,
            )],
        );
        assert!(calls(&step)[0]
            .path
            .starts_with("/jsonapi/taxonomy_term/scim_groups?filter[name]=Engineering"));
        let step = rig.resume(&mut ex, vec![page(vec![], false)]);
        assert_eq!(calls(&step)[0].method, "POST");
        let step = rig.resume(
            &mut ex,
            vec![answer(201, json!({"data": term(ENG, "Engineering")}))],
        );
        let c = calls(&step);
        assert_eq!(c.len(), 2);
        assert!(c
            .iter()
            .all(|c| c.method == "POST" && c.path.ends_with("/relationships/field_scim_groups")));
        let step = rig.resume(
            &mut ex,
            vec![answer(204, Value::Null), answer(204, Value::Null)],
        );
        let c = calls(&step);
        assert!(
            c.len() == 1 && c[0].method == "GET" && c[0].path.contains("[operator]=IN"),
            "confirmed by reading both back at once"
        );
        let (resp, out) = response(rig.resume(
            &mut ex,
            vec![memberships_of(&[(ALICE, &[ENG]), (BOB, &[ENG])])],
        ));
        assert_eq!(resp.status, 201);
        assert_eq!(resp.header("location"), out["meta"]["location"].as_str());
        assert_eq!(out["members"].as_array().unwrap().len(), 2);
        assert_eq!(
            out["members"][0],
            json!({"value": ALICE, "$ref": format!("http://gw.example:10000/scim/v2/Users/{ALICE}"), "type": "User"})
        );
    }

    #[test]
    fn group_names_are_unique_without_case() {
        let mut rig = GroupRig::new();
        let body =
            json!({"schemas": [crate::scim::schema::GROUP_SCHEMA], "displayName": "engineering"});
        let (mut ex, _) = rig.begin(req("POST", "/scim/v2/Groups", &body.to_string()));
        let (resp, out) =
            response(rig.resume(&mut ex, vec![page(vec![term(ENG, "Engineering")], false)]));
        assert_eq!(
            (resp.status, out["scimType"].as_str()),
            (409, Some("uniqueness"))
        );
        assert!(
            rig.locks
                .try_lock("scim/group-name/engineering", "other", 1, 1000),
            "the name lock was released"
        );
    }

    #[test]
    fn group_patch_forms() {
        // Entra default: remove with a value list; JumpCloud: add with a value list.
        let mut rig = GroupRig::new();
        let ops = json!([{"op": "Remove", "path": "members", "value": [{"value": BOB}]}, {"op": "Add", "path": "members", "value": [{"value": ALICE}]}]);
        let (mut ex, _) = rig.begin(req(
            "PATCH",
            &format!("/scim/v2/Groups/{ENG}"),
            &patch_body(ops),
        ));
        let step = rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        assert!(
            calls(&step)[0].path.contains("[operator]=IN"),
            "the new member is checked, no member walk needed"
        );
        let step = rig.resume(
            &mut ex,
            vec![page(vec![drupal_user(ALICE, 3, "alice", "a@x")], false)],
        );
        let c = calls(&step);
        assert_eq!((c[0].method, c[1].method), ("DELETE", "POST"));
        rig.resume(
            &mut ex,
            vec![answer(204, Value::Null), answer(204, Value::Null)],
        );
        let (resp, _) = response(rig.resume(
            &mut ex,
            vec![memberships_of(&[(BOB, &[]), (ALICE, &[ENG])])],
        ));
        assert_eq!(resp.status, 204);

        // Okta: path-less replace with id and displayName renames (after a name check).
        let ops = json!([{"op": "replace", "value": {"id": ENG, "displayName": "Platform"}}]);
        let (mut ex, _) = rig.begin(req(
            "PATCH",
            &format!("/scim/v2/Groups/{ENG}"),
            &patch_body(ops),
        ));
        let step = rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        assert!(calls(&step)[0].path.contains("filter[name]=Platform"));
        let step = rig.resume(&mut ex, vec![page(vec![], false)]);
        assert_eq!(calls(&step)[0].method, "PATCH");
        let (resp, _) = response(rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Platform")}))],
        ));
        assert_eq!(resp.status, 204);
    }

    #[test]
    fn unknown_members_change_nothing() {
        let mut rig = GroupRig::new();
        let ops = json!([{"op": "replace", "path": "displayName", "value": "New"}, {"op": "add", "path": "members", "value": [{"value": ALICE}, {"value": BOB}]}]);
        let (mut ex, _) = rig.begin(req(
            "PATCH",
            &format!("/scim/v2/Groups/{ENG}"),
            &patch_body(ops),
        ));
        let step = rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        assert!(
            calls(&step)[0].path.contains("[operator]=IN"),
            "members are checked before the rename"
        );
        let (resp, out) = response(rig.resume(
            &mut ex,
            vec![page(vec![drupal_user(ALICE, 3, "alice", "a@x")], false)],
        ));
        assert_eq!(
            (resp.status, out["scimType"].as_str()),
            (400, Some("invalidValue"))
        );
        assert!(out["detail"].as_str().unwrap().contains(BOB));
        let (mut ex, _) = rig.begin(req(
            "PATCH",
            &format!("/scim/v2/Groups/{ENG}"),
            &patch_body(json!([{"op": "add", "path": "members", "value": [{"value": "42"}]}])),
        ));
        let step = rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        assert_eq!(
            response(step).0.status,
            400,
            "ids that are not ours need no user lookup"
        );
    }

    #[test]
    fn membership_changes_of_accounts_scim_may_not_write_are_left_out_the_rest_applied() {
        let mut rig = GroupRig::new();
        let admin = || drupal_user(BOB, 1, "admin", "admin@x");
        let warning = |r: &Response| r.header("warning").unwrap_or_default().to_string();
        // JumpCloud's batch: uid 1 and Alice. Alice is added; uid 1 is left as it is, and
        // the IdP is told so (no error: a retry would change nothing).
        let ops =
            json!([{"op": "add", "path": "members", "value": [{"value": ALICE}, {"value": BOB}]}]);
        let (mut ex, _) = rig.begin(req(
            "PATCH",
            &format!("/scim/v2/Groups/{ENG}"),
            &patch_body(ops),
        ));
        rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        let step = rig.resume(
            &mut ex,
            vec![page(
                vec![drupal_user(ALICE, 3, "alice", "a@x"), admin()],
                false,
            )],
        );
        let writes = calls(&step);
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!(writes[0].method, "POST");
        assert!(writes[0].path.contains(ALICE), "{}", writes[0].path);
        rig.resume(&mut ex, vec![answer(204, Value::Null)]);
        let (resp, _) = response(rig.resume(&mut ex, vec![memberships(&[ENG])]));
        assert_eq!(resp.status, 204);
        let w = warning(&resp);
        assert!(
            w.starts_with("299 ") && w.contains(BOB) && !w.contains(ALICE),
            "{w}"
        );
        let report = ex.left_out.clone().expect("a report for the log");
        assert_eq!(report.group, ENG);
        assert_eq!(report.changes.len(), 1);
        assert_eq!(
            (report.changes[0].member.uid, report.changes[0].change),
            (1, crate::flows::membership::Change::Add)
        );
        assert!(
            report.describe().contains("uids=1:add"),
            "{}",
            report.describe()
        );

        // Removing it by id: nothing to write, and the same answer.
        let ops = json!([{"op": "remove", "path": format!("members[value eq \"{BOB}\"]")}]);
        let (mut ex, _) = rig.begin(req(
            "PATCH",
            &format!("/scim/v2/Groups/{ENG}"),
            &patch_body(ops),
        ));
        let step = rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        assert!(calls(&step)[0].path.contains("[operator]=IN"));
        let (resp, _) = response(rig.resume(&mut ex, vec![page(vec![admin()], false)]));
        assert_eq!(resp.status, 204);
        assert!(warning(&resp).contains(BOB));

        // Deleting a group that holds uid 1: Alice leaves it, the term goes, uid 1 keeps
        // everything (even its reference to the deleted term: the sweep passes it by).
        let (mut ex, _) = rig.begin(req("DELETE", &format!("/scim/v2/Groups/{ENG}"), ""));
        let mut with_tid = term(ENG, "Engineering");
        with_tid["attributes"]["drupal_internal__tid"] = json!(7);
        rig.resume(&mut ex, vec![answer(200, json!({ "data": with_tid }))]);
        let step = rig.resume(
            &mut ex,
            vec![page(
                vec![drupal_user(ALICE, 3, "alice", "a@x"), admin()],
                false,
            )],
        );
        let writes = calls(&step);
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!(writes[0].method, "DELETE");
        assert!(writes[0].path.contains(ALICE));
        rig.resume(&mut ex, vec![answer(204, Value::Null)]);
        let step = rig.resume(&mut ex, vec![memberships(&[])]);
        assert!(calls(&step)[0].path.ends_with(ENG), "the term is deleted");
        let step = rig.resume(&mut ex, vec![answer(204, Value::Null)]);
        assert!(calls(&step)[0].path.contains("scim_tid"), "the sweep");
        let (resp, _) = response(rig.resume(&mut ex, vec![page(vec![admin()], false)]));
        assert_eq!(resp.status, 204);
        assert!(warning(&resp).contains(BOB));
        assert_eq!(
            ex.left_out.as_ref().map(|r| r.changes[0].change),
            Some(crate::flows::membership::Change::Remove)
        );
    }

    #[test]
    fn a_member_whose_roles_drupal_hides_still_refuses_the_whole_request() {
        let mut rig = GroupRig::new();
        let mut hidden = drupal_user(BOB, 9, "bob", "b@x");
        hidden["relationships"] = json!({});
        let ops =
            json!([{"op": "add", "path": "members", "value": [{"value": ALICE}, {"value": BOB}]}]);
        let (mut ex, _) = rig.begin(req(
            "PATCH",
            &format!("/scim/v2/Groups/{ENG}"),
            &patch_body(ops),
        ));
        rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        let (resp, out) = response(rig.resume(
            &mut ex,
            vec![page(
                vec![drupal_user(ALICE, 3, "alice", "a@x"), hidden],
                false,
            )],
        ));
        assert_eq!(resp.status, 403, "{out}");
        assert!(out["detail"]
            .as_str()
            .unwrap()
            .contains("Nothing was changed"));
    }

    #[test]
    fn group_delete_removes_every_membership_then_the_term() {
        let mut rig = GroupRig::new();
        let (mut ex, _) = rig.begin(req("DELETE", &format!("/scim/v2/Groups/{ENG}"), ""));
        let step = rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        assert_eq!(calls(&step).len(), 1, "a small group is one member page");
        let step = rig.resume(
            &mut ex,
            vec![page(vec![drupal_user(ALICE, 3, "alice", "a@x")], false)],
        );
        assert_eq!(calls(&step)[0].method, "DELETE");
        rig.resume(&mut ex, vec![answer(204, Value::Null)]);
        let step = rig.resume(&mut ex, vec![memberships(&[])]);
        assert_eq!(
            (calls(&step)[0].method, calls(&step)[0].path.as_str()),
            (
                "DELETE",
                format!("/jsonapi/taxonomy_term/scim_groups/{ENG}").as_str()
            )
        );
        let (resp, _) = response(rig.resume(&mut ex, vec![answer(204, Value::Null)]));
        assert_eq!(resp.status, 204);
    }

    #[test]
    fn excluded_members_are_never_read() {
        let mut rig = GroupRig::new();
        let (mut ex, step) = rig.begin(req(
            "GET",
            &format!("/scim/v2/Groups/{ENG}?excludedAttributes=members"),
            "",
        ));
        assert_eq!(calls(&step).len(), 1);
        let step = rig.resume(
            &mut ex,
            vec![answer(200, json!({"data": term(ENG, "Engineering")}))],
        );
        // Terms are public: a read that touches no user checks the service account.
        let check = calls(&step);
        assert_eq!(check.len(), 1);
        assert!(check[0].path.starts_with("/jsonapi/user/user?"));
        assert!(
            check[0].path.contains("page%5Blimit%5D=1") || check[0].path.contains("page[limit]=1")
        );
        let (resp, out) = response(rig.resume(&mut ex, vec![page(vec![], false)]));
        assert_eq!(resp.status, 200);
        assert!(out.get("members").is_none());
        let (mut ex, step) = rig.begin(req(
            "GET",
            "/scim/v2/Groups?filter=displayName+eq+%22Engineering%22&excludedAttributes=members",
            "",
        ));
        assert_eq!(calls(&step).len(), 1);
        let step = rig.resume(&mut ex, vec![page(vec![term(ENG, "Engineering")], false)]);
        assert_eq!(calls(&step).len(), 1);
        let (_, out) = response(rig.resume(&mut ex, vec![page(vec![], false)]));
        assert_eq!(out["totalResults"], 1);
        assert!(out["Resources"][0].get("members").is_none());
    }

    #[test]
    fn group_reads_without_users_still_notice_a_refused_service_account() {
        let mut rig = GroupRig::new();
        let (mut ex, step) = rig.begin(req(
            "GET",
            "/scim/v2/Groups?filter=displayName+eq+%22Nobody%22",
            "",
        ));
        assert_eq!(calls(&step).len(), 1);
        let step = rig.resume(&mut ex, vec![page(vec![], false)]);
        assert!(calls(&step)[0].path.starts_with("/jsonapi/user/user?"));
        let (resp, out) = response(rig.resume(&mut ex, vec![answer(403, json!({"errors": []}))]));
        assert_eq!(resp.status, 502);
        assert!(out["detail"].as_str().unwrap().contains("service account"));
    }

    #[test]
    fn root_search_lists_users_then_groups() {
        let mut rig = GroupRig::new();
        let body = json!({"schemas": [SEARCH_REQUEST_SCHEMA], "excludedAttributes": ["members"]});
        let (mut ex, step) = rig.begin(req("POST", "/scim/v2/.search", &body.to_string()));
        assert!(calls(&step)[0].path.starts_with("/jsonapi/user/user?"));
        let step = rig.resume(
            &mut ex,
            vec![page(vec![drupal_user(ALICE, 3, "alice", "a@x")], false)],
        );
        assert!(calls(&step)[0]
            .path
            .starts_with("/jsonapi/taxonomy_term/scim_groups?"));
        let (_, out) =
            response(rig.resume(&mut ex, vec![page(vec![term(ENG, "Engineering")], false)]));
        assert_eq!(out["totalResults"], 2);
        assert_eq!(out["Resources"][0]["userName"], "alice");
        assert_eq!(out["Resources"][1]["displayName"], "Engineering");

        // A filter only Users have: no groups match.
        let body = json!({"schemas": [SEARCH_REQUEST_SCHEMA], "filter": "userName eq \"alice\""});
        let (mut ex, _) = rig.begin(req("POST", "/scim/v2/.search", &body.to_string()));
        let (_, out) = response(rig.resume(
            &mut ex,
            vec![page(vec![drupal_user(ALICE, 3, "alice", "a@x")], false)],
        ));
        assert_eq!(out["totalResults"], 1);
    }

    #[test]
    fn a_direct_write_that_lands_on_a_retired_account_is_undone() {
        let body = patch_body(
            json!([{"op": "replace", "value": {"userName": "lazarus", "active": true}}]),
        );
        let (mut ex, step) = run(req("PATCH", &format!("/scim/v2/Users/{ALICE}"), &body));
        assert_eq!(calls(&step)[0].method, "GET");
        let step = ex.resume_t(&config(), vec![answer(200, alice_doc())]);
        assert!(unique_read(&step));
        let step = ex.resume_t(&config(), vec![page(vec![], false)]);
        assert_eq!(calls(&step)[0].method, "PATCH");
        let mut doc = alice_doc();
        doc["data"]["attributes"]["init"] = json!(crate::drupal::jsonapi::RETIRED_MARKER);
        let step = ex.resume_t(&config(), vec![answer(200, doc)]);
        let c = &calls(&step)[0];
        let sent: Value = serde_json::from_slice(c.body.as_ref().unwrap()).unwrap();
        assert_eq!(sent["data"]["attributes"]["status"], false);
        assert!(sent["data"]["attributes"]["name"]
            .as_str()
            .unwrap()
            .starts_with("scimretired"));
        assert_eq!(
            response(ex.resume_t(&config(), vec![answer(200, alice_doc())]))
                .0
                .status,
            404
        );
    }

    #[test]
    fn writes_to_one_user_wait_for_each_other_and_for_membership_changes() {
        let mut locks = crate::runtime::locks::MemoryLocks::default();
        let c = config();
        let patch = patch_body(json!([{"op": "replace", "path": "active", "value": false}]));
        let path = format!("/scim/v2/Users/{ALICE}");
        // A membership change holds the user.
        let key = crate::flows::membership::user_lock_key(ALICE);
        assert!(locks.try_lock(&key, "group-request", 0, 1000));
        let mut e1 = LockScope::new(&mut locks, 1, "one", 1000);
        let (mut first, step) = begin(&c, &req("PATCH", &path, &patch), &mut e1).unwrap();
        let is_pause = |step: &Step| {
            calls(step)[0]
                .path
                .ends_with("page[offset]=0&page[limit]=1")
        };
        assert!(is_pause(&step), "it waits, nothing read yet");
        locks.unlock(&key, "group-request");
        let mut e1 = LockScope::new(&mut locks, 2, "one", 1000);
        let step = first.resume(&c, vec![answer(204, Value::Null)], &mut e1);
        assert_eq!(
            calls(&step)[0].method,
            "GET",
            "then reads, holding the user"
        );
        let mut e2 = LockScope::new(&mut locks, 3, "two", 1000);
        let (mut second, step) = begin(
            &c,
            &req(
                "PUT",
                &path,
                &json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": "alice"})
                    .to_string(),
            ),
            &mut e2,
        )
        .unwrap();
        assert!(is_pause(&step));
        let mut e1 = LockScope::new(&mut locks, 4, "one", 1000);
        let step = first.resume(&c, vec![answer(200, alice_doc())], &mut e1);
        assert_eq!(calls(&step)[0].method, "PATCH");
        let mut e1 = LockScope::new(&mut locks, 5, "one", 1000);
        assert_eq!(
            response(first.resume(&c, vec![answer(200, alice_doc())], &mut e1))
                .0
                .status,
            200
        );
        let mut e2 = LockScope::new(&mut locks, 6, "two", 1000);
        let step = second.resume(&c, vec![answer(204, Value::Null)], &mut e2);
        assert!(is_pause(&step), "its unlock is returned, not applied yet");
        host_applies(&mut locks, &mut first);
        let mut e2 = LockScope::new(&mut locks, 7, "two", 1000);
        let step = second.resume(&c, vec![answer(204, Value::Null)], &mut e2);
        assert_eq!(
            calls(&step)[0].method,
            "GET",
            "the lock was released with the answer"
        );
        assert!(!is_pause(&step));
    }

    #[test]
    fn concurrent_creates_of_one_name_or_address_wait_for_each_other() {
        let mut locks = crate::runtime::locks::MemoryLocks::default();
        let c = config();
        let body = |name: &str, mail: &str| {
            json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": name, "emails": [{"value": mail}]}).to_string()
        };
        let mut env1 = LockScope::new(&mut locks, 1, "one", 1000);
        let (mut first, step) = begin(
            &c,
            &req("POST", "/scim/v2/Users", &body("Racer", "r@x.org")),
            &mut env1,
        )
        .unwrap();
        assert!(unique_read(&step));
        let step = first.resume(&c, vec![page(vec![], false)], &mut env1);
        assert_eq!(calls(&step)[0].method, "POST");
        let mut env2 = LockScope::new(&mut locks, 2, "two", 1000);
        let (mut second, step) = begin(
            &c,
            &req("POST", "/scim/v2/Users", &body("other", "R@X.org")),
            &mut env2,
        )
        .unwrap();
        assert_eq!(
            calls(&step)[0].method,
            "GET",
            "same address: the second waits"
        );
        let mut env1 = LockScope::new(&mut locks, 3, "one", 1000);
        let (resp, _) = response(first.resume(
            &c,
            vec![answer(
                201,
                json!({"data": drupal_user(ALICE, 3, "racer", "r@x.org")}),
            )],
            &mut env1,
        ));
        assert_eq!(resp.status, 201);
        host_applies(&mut locks, &mut first);
        let mut env2 = LockScope::new(&mut locks, 4, "two", 1000);
        let step = second.resume(&c, vec![page(vec![], false)], &mut env2);
        assert!(
            unique_read(&step),
            "the first answered: the second goes ahead"
        );
        let step = second.resume(&c, vec![page(vec![], false)], &mut env2);
        assert_eq!(calls(&step)[0].method, "POST");
        let mut env2 = LockScope::new(&mut locks, 5, "two", 1000);
        let dup = json!({"errors": [{"status": "422", "detail": "mail: The email address R@X.org is already taken."}]});
        assert_eq!(
            response(second.resume(&c, vec![answer(422, dup)], &mut env2))
                .0
                .status,
            409
        );
        host_applies(&mut locks, &mut second);
        assert!(
            locks.try_lock("scim/user-mail/r@x.org", "three", 6, 1000),
            "locks are released"
        );
    }

    #[test]
    fn unsupported_content_types_are_415() {
        let body =
            json!({"schemas": [crate::scim::schema::USER_SCHEMA], "userName": "a"}).to_string();
        for ct in [
            "text/plain",
            "application/xml",
            "application/x-www-form-urlencoded",
        ] {
            let (_, step) = run(with_header(
                req("POST", "/scim/v2/Users", &body),
                "content-type",
                ct,
            ));
            assert_eq!(response(step).0.status, 415, "{ct}");
        }
        for ct in [
            "application/json",
            "application/scim+json; charset=utf-8",
            "Application/SCIM+JSON",
        ] {
            let (_, step) = run(with_header(
                req("POST", "/scim/v2/Users", &body),
                "content-type",
                ct,
            ));
            assert!(unique_read(&step), "{ct}");
        }
    }
}
