//! Core REST (`entity:user` resource, `json` format), cookie login and CSRF tokens.

use crate::app::{
    html_page, session_cookie_header, App, Ctx, Req, Resp, FLOOD_IP_LIMIT, FLOOD_IP_WINDOW,
    FLOOD_USER_LIMIT, FLOOD_USER_WINDOW,
};
use crate::json::J;
use crate::model::{User, Violation};
use crate::users::{clean_roles, set_custom_field, set_patch_field, CustomIn, InErr, Patch, View};
use crate::util::token;
use serde_json::Value;

const JSON_CT: &str = "application/json";

/// `AuthenticationSubscriber::onKernelRequestFilterProvider`'s answer to a provider the route
/// does not list.
pub const AUTH_METHOD_NOT_ALLOWED: &str =
    "The used authentication method is not allowed on this route.";

fn msg(status: u16, m: &str) -> Resp {
    Resp::json(status, JSON_CT, &J::obj().with("message", m))
}

/// The `rest.resource.entity.user` configuration (setting `rest_user_resource`, flag
/// `--rest-user-resource`): absent (`off`: no REST user routes), or the authentication
/// providers its routes list in `_auth`. The recorded site allowed both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestUserResource {
    #[default]
    BasicAuthAndCookie,
    BasicAuth,
    Cookie,
    Off,
}

impl RestUserResource {
    /// `off`, or a comma-separated list of `basic_auth` and `cookie` (any order).
    pub fn parse(s: &str) -> Option<RestUserResource> {
        let s = s.trim();
        if s == "off" {
            return Some(RestUserResource::Off);
        }
        let (mut basic, mut cookie) = (false, false);
        for p in s.split(',').map(str::trim) {
            match p {
                "basic_auth" if !basic => basic = true,
                "cookie" if !cookie => cookie = true,
                _ => return None,
            }
        }
        Some(match (basic, cookie) {
            (true, true) => RestUserResource::BasicAuthAndCookie,
            (true, false) => RestUserResource::BasicAuth,
            (false, true) => RestUserResource::Cookie,
            (false, false) => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RestUserResource::BasicAuthAndCookie => "basic_auth,cookie",
            RestUserResource::BasicAuth => "basic_auth",
            RestUserResource::Cookie => "cookie",
            RestUserResource::Off => "off",
        }
    }
    /// Whether the REST user routes exist.
    pub fn enabled(self) -> bool {
        self != RestUserResource::Off
    }
    /// Whether the routes' `_auth` lists `basic_auth`.
    pub fn basic_auth(self) -> bool {
        matches!(
            self,
            RestUserResource::BasicAuthAndCookie | RestUserResource::BasicAuth
        )
    }
    /// Whether the routes' `_auth` lists `cookie`.
    pub fn cookie(self) -> bool {
        matches!(
            self,
            RestUserResource::BasicAuthAndCookie | RestUserResource::Cookie
        )
    }
    /// The `Allow` header of `OPTIONS /user/{uid}` (`OptionsRequestSubscriber`): the methods
    /// of every route on that path, in the route provider's order (fit, then name):
    /// `entity.user.canonical` (GET, POST: `RouteMethodSubscriber`'s default), then
    /// `rest.entity.user.DELETE`, `.GET` and `.PATCH`.
    pub fn user_path_options(self) -> &'static str {
        if self.enabled() {
            "GET, POST, DELETE, PATCH"
        } else {
            "GET, POST"
        }
    }
    /// The `Allow` of a routing 405 on `/user/{uid}`. `MethodFilter` adds HEAD to every GET
    /// route and prepends each later route's methods: canonical [GET, POST, HEAD], then
    /// DELETE, then [GET, HEAD], then PATCH.
    pub fn user_path_405_allow(self) -> &'static str {
        if self.enabled() {
            "PATCH, GET, HEAD, DELETE, POST"
        } else {
            "GET, POST, HEAD"
        }
    }
}

impl App {
    /// A 403 on a REST route; without credentials Basic auth's 401 challenge instead, when
    /// the resource lists `basic_auth` (with only `cookie` there is no challenger).
    fn rest_forbidden(&self, ctx: &Ctx, m: &str) -> Resp {
        if !ctx.actor.provider_applied && self.read().settings.rest_user_resource.basic_auth() {
            return msg(401, "No authentication credentials provided.")
                .with_header("WWW-Authenticate", &self.realm());
        }
        msg(403, m)
    }

    /// Drupal's provider filter on a REST user route: the provider that applied (basic_auth,
    /// priority 100, before cookie, priority 0; also when its credentials were refused) must
    /// be in the resource's list. It runs right after routing (405, 406, 415 and the
    /// parameter-conversion 404 come first) and, through `onExceptionAccessDenied`, it also
    /// replaces every 403 raised by route access (CSRF), so it is checked before those.
    fn rest_auth_filter(&self, ctx: &Ctx, resource: RestUserResource) -> Option<Resp> {
        let allowed = if ctx.actor.basic_auth {
            resource.basic_auth()
        } else if ctx.actor.provider_applied {
            resource.cookie()
        } else {
            true
        };
        (!allowed).then(|| msg(403, AUTH_METHOD_NOT_ALLOWED))
    }

    /// Symfony's `RouterListener` 404 for a path without routes.
    fn no_route(&self, ctx: &Ctx, req: &Req, json: bool) -> Resp {
        if !json {
            return html_page(404, "Page not found", &self.cfg.site_name);
        }
        msg(
            404,
            &format!(
                "No route found for \"{} {}{}\"",
                req.method, ctx.base, req.path
            ),
        )
    }

    /// `entity.user.canonical` (`/user/{user}`, methods GET and POST, `_entity_access:
    /// user.view`, no `_auth`, so only the global `cookie` provider). It answers every GET,
    /// HEAD and POST on `/user/{uid}` that no REST route takes. With `?_format=json` its
    /// errors are JSON, and a successful match ends in `AcceptNegotiation406` (the controller
    /// returns a render array): 406 "Not acceptable format: json".
    fn canonical_user(&self, ctx: &Ctx, uid_s: &str, json: bool) -> Resp {
        let site = &self.cfg.site_name;
        let target = uid_s
            .parse::<i64>()
            .ok()
            .and_then(|uid| self.read().users.get(&uid).cloned());
        let Some(target) = target else {
            if !json {
                return html_page(404, "Page not found", site);
            }
            return msg(
                404,
                "The \"user\" parameter was not converted for the path \"/user/{user}\" (route name: \"entity.user.canonical\")",
            );
        };
        // Route access, then the provider filter, which turns any 403 into its own.
        let denied = if ctx.actor.basic_auth {
            Some(AUTH_METHOD_NOT_ALLOWED)
        } else if target.uid == 0 {
            // UserAccessControlHandler: AccessResult::forbidden(), no reason.
            Some("")
        } else if self.user_view(&self.read(), &ctx.actor, &target) == View::Label {
            Some("The 'access user profiles' permission is required.")
        } else {
            None
        };
        // No 401: basic_auth is not allowed on this route, so nothing can challenge.
        match (denied, json) {
            (Some(m), true) => msg(403, m),
            (Some(_), false) => html_page(403, "Access denied", site),
            (None, true) => msg(406, "Not acceptable format: json"),
            (None, false) => html_page(200, &target.name, site),
        }
    }

    pub fn handle_rest(&self, ctx: &mut Ctx, req: &Req) -> Resp {
        let path = req.path.as_str();
        let m = req.method.as_str();
        match path {
            "/session/token" => {
                let t = ctx
                    .actor
                    .session_cookie
                    .as_ref()
                    .and_then(|sid| self.read().sessions.get(sid).map(|s| s.csrf.clone()))
                    .unwrap_or_else(token);
                return Resp::new(200, "text/plain; charset=UTF-8", t);
            }
            "/user/login" => return self.login(ctx, req),
            "/user/logout" => return self.logout(ctx, req),
            "/user/login_status" => {
                let v = if ctx.actor.is_auth() { "1" } else { "0" };
                return Resp::new(200, JSON_CT, v);
            }
            _ => {}
        }
        let format = ctx
            .param("_format")
            .and_then(|f| f.as_str())
            .map(|s| s.to_string());
        let json = format.as_deref() == Some("json");
        let resource = self.read().settings.rest_user_resource;
        if path == "/entity/user" {
            if !resource.enabled() {
                // Only the REST POST route lives on this path.
                return self.no_route(ctx, req, json);
            }
            if m != "POST" {
                return msg(
                    405,
                    &format!(
                        "No route found for \"{m} {}{path}\": Method Not Allowed (Allow: POST)",
                        ctx.base
                    ),
                )
                .with_header("Allow", "POST");
            }
            if let Some(f) = &format {
                if f != "json" {
                    return self.wrong_format(ctx);
                }
            }
            if let Some(r) = self.rest_content_type(req) {
                return r;
            }
            if let Some(r) = self.rest_auth_filter(ctx, resource) {
                return r;
            }
            return self.rest_post(ctx, req);
        }
        let Some(uid_s) = path.strip_prefix("/user/") else {
            return html_page(404, "Page not found", &self.cfg.site_name);
        };
        if uid_s.contains('/') {
            return html_page(404, "Page not found", &self.cfg.site_name);
        }
        let is_get = m == "GET" || m == "HEAD";
        if is_get && format.is_none() {
            // The HTML route wins.
            return self.canonical_user(ctx, uid_s, false);
        }
        // MethodFilter over the routes on /user/{user}: the REST routes (GET, PATCH, DELETE)
        // when the resource exists, and the canonical HTML route (GET, POST).
        let rest_route = resource.enabled() && matches!(m, "GET" | "HEAD" | "PATCH" | "DELETE");
        let canonical_route = matches!(m, "GET" | "HEAD" | "POST");
        if !(rest_route || canonical_route) {
            let allow = resource.user_path_405_allow();
            if !json {
                return html_page(405, "Client error", &self.cfg.site_name)
                    .with_header("Allow", allow);
            }
            return msg(
                405,
                &format!(
                    "No route found for \"{m} {}{path}\": Method Not Allowed (Allow: {allow})",
                    ctx.base
                ),
            )
            .with_header("Allow", allow);
        }
        if let Some(f) = &format {
            if f != "json" {
                if ctx.actor.basic_auth {
                    return Resp::new(403, "text/plain; charset=UTF-8", AUTH_METHOD_NOT_ALLOWED);
                }
                return self.wrong_format(ctx);
            }
        }
        // The REST routes' only format, json, is their default format, so PATCH and DELETE
        // need no `_format`. Everything else goes to the canonical route.
        if !rest_route {
            return self.canonical_user(ctx, uid_s, json);
        }
        if m == "PATCH" {
            if let Some(r) = self.rest_content_type(req) {
                return r;
            }
        }
        let target = uid_s
            .parse::<i64>()
            .ok()
            .and_then(|uid| self.read().users.get(&uid).cloned());
        let Some(target) = target else {
            let method = if is_get { "GET" } else { m };
            return msg(
                404,
                &format!("The \"user\" parameter was not converted for the path \"/user/{{user}}\" (route name: \"rest.entity.user.{method}\")"),
            );
        };
        if let Some(r) = self.rest_auth_filter(ctx, resource) {
            return r;
        }
        match m {
            "PATCH" => self.rest_patch(ctx, req, target),
            "DELETE" => self.rest_delete(ctx, req, target),
            _ => self.rest_get(ctx, target),
        }
    }

    fn wrong_format(&self, _ctx: &Ctx) -> Resp {
        msg(
            406,
            "No route found for the specified format. Supported formats: json.",
        )
    }

    fn rest_content_type(&self, req: &Req) -> Option<Resp> {
        match req.header("content-type") {
            None => Some(msg(415, "No \"Content-Type\" request header specified")),
            Some(ct) => {
                let mime = ct.split(';').next().unwrap_or("").trim();
                if mime == JSON_CT {
                    None
                } else {
                    Some(msg(
                        415,
                        &format!("No route found that matches \"Content-Type: {ct}\""),
                    ))
                }
            }
        }
    }

    fn rest_links(&self, ctx: &Ctx, uid: i64) -> String {
        let b = &ctx.base;
        format!("<{b}/user/{uid}>; rel=\"canonical\", <{b}/user/{uid}/edit>; rel=\"edit-form\", <{b}/user/{uid}/cancel>; rel=\"https://drupal.org/link-relations/cancel-form\", <{b}/admin/people>; rel=\"collection\"")
    }

    fn rest_get(&self, ctx: &Ctx, target: User) -> Resp {
        let db = self.read();
        if target.uid == 0 {
            drop(db);
            return self.rest_forbidden(ctx, "You are not authorized to view this user entity.");
        }
        let view = self.user_view(&db, &ctx.actor, &target);
        if view == View::Label {
            drop(db);
            return self.rest_forbidden(ctx, "The 'access user profiles' permission is required.");
        }
        let body = self.render_user_rest(&db, &target, view);
        Resp::json(200, JSON_CT, &body).with_header("Link", &self.rest_links(ctx, target.uid))
    }

    /// Decodes a REST body into a Patch (and role problems as violations).
    fn rest_body(&self, req: &Req) -> Result<(Patch, Vec<Violation>), Resp> {
        if req.body.is_empty() {
            return Err(msg(400, "No entity content received."));
        }
        let v: Value = match std::str::from_utf8(&req.body)
            .ok()
            .and_then(|t| serde_json::from_str(t).ok())
        {
            Some(v) => v,
            None => return Err(msg(400, "Syntax error")),
        };
        let Some(obj) = v.as_object() else {
            return Err(msg(400, "No entity content received."));
        };
        let mut p = Patch::default();
        let mut extra = Vec::new();
        let order = crate::json::key_order(&req.body, &[]);
        for k in &order {
            let Some(val) = obj.get(k) else {
                continue;
            };
            let def = self.read().user_field(k).cloned();
            if !crate::fields::USER_BASE_FIELDS.contains(&k.as_str()) && def.is_none() {
                return Err(Resp::new(
                    500,
                    "text/plain; charset=UTF-8",
                    "The website encountered an unexpected error. Try again later.",
                ));
            }
            let Some(items) = val.as_array() else {
                return Err(msg(
                    422,
                    &format!("Field values for \"{k}\" must use an array structure"),
                ));
            };
            if let Some(def) = def {
                if def.is_ref() {
                    let db = self.read();
                    let mut tids = Vec::new();
                    for it in items {
                        let by_id = it.get("target_id").and_then(|x| match x {
                            Value::Number(n) => n.as_i64(),
                            Value::String(s) => s.trim().parse().ok(),
                            _ => None,
                        });
                        let by_uuid = it.get("target_uuid").and_then(|x| x.as_str());
                        match (by_id, by_uuid) {
                            (Some(id), _) => tids.push(id),
                            (None, Some(u)) => match db.term_by_uuid(u) {
                                Some(t) => tids.push(t.tid),
                                None => {
                                    return Err(msg(
                                        422,
                                        &format!("No \"taxonomy_term\" entity found with UUID \"{u}\" for field \"{k}\"."),
                                    ))
                                }
                            },
                            _ => {}
                        }
                    }
                    p.set_custom(k, CustomIn::Refs(tids));
                } else {
                    let item = items.first().cloned().unwrap_or(Value::Null);
                    if let Err(e) = set_custom_field(&mut p, &def, &item) {
                        let text = match e {
                            InErr::Bad(t) | InErr::Unprocessable(t) | InErr::NotFound(t) => t,
                        };
                        return Err(msg(422, &text));
                    }
                }
                continue;
            }
            match k.as_str() {
                "roles" => {
                    let db = self.read();
                    let mut ids = Vec::new();
                    for (i, it) in items.iter().enumerate() {
                        let by_id = it.get("target_id").and_then(|x| x.as_str());
                        let by_uuid = it.get("target_uuid").and_then(|x| x.as_str());
                        let found = match (by_id, by_uuid) {
                            (Some(id), _) => db.role(id).map(|r| r.id.to_string()),
                            (None, Some(u)) => db.role_by_uuid(u).map(|r| r.id.to_string()),
                            _ => None,
                        };
                        match found {
                            Some(id) => ids.push(id),
                            None => extra.push(Violation::new(
                                "roles",
                                &format!("roles.{i}.target_id"),
                                format!(
                                    "The referenced entity (user_role: {}) does not exist.",
                                    by_id.or(by_uuid).unwrap_or("")
                                ),
                            )),
                        }
                    }
                    p.roles = Some(ids);
                    p.fields.push("roles".into());
                }
                "user_picture" | "uuid" => {
                    if k == "uuid" {
                        if let Some(u) = items
                            .first()
                            .and_then(|i| i.get("value"))
                            .and_then(|x| x.as_str())
                        {
                            p.uuid = Some(u.to_string());
                        }
                    }
                    p.fields.push(k.to_string());
                }
                field => {
                    let item = items.first().cloned().unwrap_or(Value::Null);
                    let item = if let Value::Object(mut o) = item {
                        o.remove("format");
                        Value::Object(o)
                    } else {
                        item
                    };
                    if let Err(e) = set_patch_field(&mut p, field, &item) {
                        let text = match e {
                            InErr::Bad(t) | InErr::Unprocessable(t) | InErr::NotFound(t) => t,
                        };
                        return Err(msg(422, &text));
                    }
                }
            }
        }
        Ok((p, extra))
    }

    fn rest_violations(&self, v: &[Violation]) -> Resp {
        let mut text = String::from("Unprocessable Entity: validation failed.\n");
        for x in v {
            text.push_str(&format!("{}: {}\n", x.path, x.message));
        }
        msg(422, &text)
    }

    fn rest_post(&self, ctx: &mut Ctx, req: &Req) -> Resp {
        if let Some(reason) = self.csrf_failure(ctx, req) {
            return msg(403, reason);
        }
        let (p, extra) = match self.rest_body(req) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let mut db = self.write();
        if !self.has_perm(&db, &ctx.actor, "administer users") {
            drop(db);
            return self.rest_forbidden(ctx, "The 'administer users' permission is required.");
        }
        for f in &p.fields {
            if self.edit_access(&db, &ctx.actor, None, f).is_err() {
                drop(db);
                return msg(403, &format!("Access denied on creating field '{f}'."));
            }
        }
        let t = ctx.now;
        let mut u = User::new(db.next_uid, "", t);
        if let Some(id) = &p.uuid {
            u.uuid = id.clone();
        }
        let fields = p.fields.clone();
        self.apply_patch(&mut u, &p, &fields);
        if p.created.is_none() {
            u.created = t;
        }
        u.changed = t;
        let mut violations = self.validate_user(&db, &ctx.actor, &u, None, &p, None);
        violations.extend(extra);
        violations.sort_by_key(|x| x.order);
        if !violations.is_empty() {
            drop(db);
            return self.rest_violations(&violations);
        }
        if db.user_by_uuid(&u.uuid).is_some() {
            drop(db);
            return Resp::new(500, "text/plain; charset=UTF-8", "Internal Server Error");
        }
        u.roles = clean_roles(&u.roles);
        u.saved();
        let uid = u.uid;
        db.insert(u);
        let Some(u) = db.users.get(&uid) else {
            return Resp::empty(500);
        };
        let view = self.user_view(&db, &ctx.actor, u);
        let body = self.render_user_rest(&db, u, view);
        Resp::json(201, JSON_CT, &body).with_header("Location", &format!("{}/user/{uid}", ctx.base))
    }

    /// `EntityResource`'s entity access check, in the controller (so after the CSRF route
    /// access and, for PATCH, after the body was decoded). uid 0 is forbidden without a
    /// reason, hence the fallback message.
    fn rest_entity_access(&self, ctx: &Ctx, target: &User, op: &str) -> Option<Resp> {
        let db = self.read();
        let admin = self.has_perm(&db, &ctx.actor, "administer users");
        let own = ctx.actor.is_auth() && ctx.actor.uid == target.uid;
        let denied = if target.uid == 0 {
            Some(format!("You are not authorized to {op} this user entity."))
        } else if admin {
            None
        } else if op == "update" {
            (!own).then(|| "Users can only update their own account, unless they have the 'administer users' permission.".to_string())
        } else if own && self.has_perm(&db, &ctx.actor, "cancel account") {
            None
        } else {
            Some("The 'cancel account' permission is required.".to_string())
        };
        drop(db);
        denied.map(|m| self.rest_forbidden(ctx, &m))
    }

    fn rest_patch(&self, ctx: &mut Ctx, req: &Req, target: User) -> Resp {
        // Route access (CSRF), then RequestHandler decodes the body, then the controller
        // checks entity access.
        if let Some(reason) = self.csrf_failure(ctx, req) {
            return msg(403, reason);
        }
        let (p, extra) = match self.rest_body(req) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if let Some(r) = self.rest_entity_access(ctx, &target, "update") {
            return r;
        }
        let mut db = self.write();
        let Some(orig) = db.users.get(&target.uid).cloned() else {
            return Resp::empty(500);
        };
        let mut apply = Vec::new();
        for f in &p.fields {
            let viewable = self.can_view_field(&db, &ctx.actor, Some(&orig), f);
            let edit = self.edit_access(&db, &ctx.actor, Some(&orig), f);
            let changed = {
                let mut probe = orig.clone();
                self.apply_patch(&mut probe, &p, std::slice::from_ref(f));
                probe.values_key() != orig.values_key()
                    || (f == "uid" && p.uid.as_ref().and_then(|v| v.as_i64()) != Some(orig.uid))
            };
            if !viewable {
                if edit.is_err() {
                    drop(db);
                    return msg(403, &format!("Access denied on updating field '{f}'."));
                }
            } else if changed {
                if let Err(reason) = edit {
                    let mut m = format!("Access denied on updating field '{f}'.");
                    if let Some(r) = reason {
                        m.push(' ');
                        m.push_str(&r);
                    }
                    drop(db);
                    return msg(403, &m);
                }
            }
            apply.push(f.clone());
        }
        let mut u = orig.clone();
        self.apply_patch(&mut u, &p, &apply);
        let mut violations =
            self.validate_user(&db, &ctx.actor, &u, Some(&orig), &p, Some(&p.fields));
        violations.extend(extra);
        violations.sort_by_key(|x| x.order);
        if !violations.is_empty() {
            drop(db);
            return self.rest_violations(&violations);
        }
        u.roles = clean_roles(&u.roles);
        let activated = !orig.status && u.status;
        self.save_user(&mut db, ctx, &orig, u);
        let Some(saved) = db.users.get(&orig.uid) else {
            return Resp::empty(500);
        };
        let view = self.user_view(&db, &ctx.actor, saved);
        let body = self.render_user_rest(&db, saved, view);
        drop(db);
        if activated {
            self.start_session_cookie(ctx);
        }
        Resp::json(200, JSON_CT, &body)
    }

    fn rest_delete(&self, ctx: &mut Ctx, req: &Req, target: User) -> Resp {
        if let Some(reason) = self.csrf_failure(ctx, req) {
            return msg(403, reason);
        }
        if let Some(r) = self.rest_entity_access(ctx, &target, "delete") {
            return r;
        }
        self.write().remove(target.uid);
        Resp::empty(204)
    }

    fn login(&self, ctx: &mut Ctx, req: &Req) -> Resp {
        if req.method != "POST" {
            return msg(405, "Method Not Allowed").with_header("Allow", "POST");
        }
        if ctx.actor.is_auth() {
            return msg(403, "This route can only be accessed by anonymous users.");
        }
        let creds: Value = std::str::from_utf8(&req.body)
            .ok()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let name = creds
            .get("name")
            .and_then(|v| v.as_str())
            .map(|s| s.to_string());
        let pass = creds
            .get("pass")
            .and_then(|v| v.as_str())
            .map(|s| s.to_string());
        let (name, pass) = match (name, pass) {
            (None, None) => return msg(400, "Missing credentials."),
            (None, _) => return msg(400, "Missing credentials.name."),
            (_, None) => return msg(400, "Missing credentials.pass."),
            (Some(n), Some(p)) => (n, p),
        };
        let t = ctx.now;
        let ip = req.peer_ip.clone();
        let mut flood = self.flood.lock().unwrap_or_else(|e| e.into_inner());
        // UserAuthenticationController::floodControl(): 403s (the exception code 429 is not
        // the status). With `uid_only` off (the default) the per-account block names the IP.
        if !flood.is_allowed(
            "user.failed_login_ip",
            &ip,
            FLOOD_IP_LIMIT,
            FLOOD_IP_WINDOW,
            t,
        ) {
            return msg(
                403,
                "Access is blocked because of IP based flood prevention.",
            );
        }
        let found = self.read().user_by_name(&name).cloned();
        // getLoginFloodIdentifier(): only an active account has one.
        let ident = found
            .as_ref()
            .filter(|u| u.status && u.uid != 0)
            .map(|u| format!("{}-{ip}", u.uid));
        if let Some(id) = &ident {
            if !flood.is_allowed(
                "user.http_login",
                id,
                FLOOD_USER_LIMIT,
                FLOOD_USER_WINDOW,
                t,
            ) {
                return msg(
                    403,
                    "Too many failed login attempts from your IP address. This IP address is temporarily blocked.",
                );
            }
        }
        if let Some(u) = &found {
            if !u.status {
                return msg(400, "The user has not been activated or is blocked.");
            }
            if !pass.is_empty() && u.pass.as_deref() == Some(pass.as_str()) {
                if let Some(id) = &ident {
                    flood.clear("user.http_login", id);
                }
                drop(flood);
                let mut db = self.write();
                let sid = db.new_session(u.uid);
                if let Some(stored) = db.users.get_mut(&u.uid) {
                    stored.login = t;
                    stored.access = t;
                    stored.saved();
                }
                let (csrf, logout) = db
                    .sessions
                    .get(&sid)
                    .map(|s| (s.csrf.clone(), s.logout.clone()))
                    .unwrap_or_default();
                let actor = crate::app::Actor {
                    uid: u.uid,
                    roles: u.roles.clone(),
                    provider_applied: true,
                    basic_auth: false,
                    session_cookie: Some(sid.clone()),
                    via_cookie: true,
                };
                let mut current = J::obj().with("uid", u.uid.to_string());
                if self.can_view_field(&db, &actor, Some(u), "roles") {
                    let mut roles = vec![J::Str("authenticated".into())];
                    roles.extend(u.roles.iter().map(|r| J::Str(r.clone())));
                    current.push("roles", J::Arr(roles));
                }
                current.push("name", u.name.as_str());
                let body = J::obj()
                    .with("current_user", current)
                    .with("csrf_token", csrf)
                    .with("logout_token", logout);
                return Resp::json(200, JSON_CT, &body)
                    .with_header("Set-Cookie", &session_cookie_header(&sid, t));
            }
        }
        if let Some(id) = &ident {
            flood.register("user.http_login", id, FLOOD_USER_WINDOW, t);
        }
        // Always register an IP-based failed login event.
        flood.register("user.failed_login_ip", &ip, FLOOD_IP_WINDOW, t);
        msg(400, "Sorry, unrecognized username or password.")
    }

    fn logout(&self, ctx: &mut Ctx, _req: &Req) -> Resp {
        if !ctx.actor.is_auth() || !ctx.actor.via_cookie {
            return msg(403, "");
        }
        let Some(sid) = ctx.actor.session_cookie.clone() else {
            return msg(403, "");
        };
        let given = ctx
            .param("token")
            .and_then(|t| t.as_str())
            .map(|s| s.to_string());
        let mut db = self.write();
        let ok = db
            .sessions
            .get(&sid)
            .map(|s| Some(&s.logout) == given.as_ref());
        match (given, ok) {
            (None, _) => msg(403, "'csrf_token' URL query argument is missing."),
            (_, Some(true)) => {
                db.sessions.remove(&sid);
                Resp::empty(204)
            }
            _ => msg(403, "'csrf_token' URL query argument is invalid."),
        }
    }
}
