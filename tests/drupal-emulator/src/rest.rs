//! Core REST (`entity:user` resource, `json` format), cookie login and CSRF tokens.

use crate::app::{html_page, session_cookie_header, App, Ctx, Req, Resp};
use crate::json::J;
use crate::model::{User, Violation};
use crate::users::{clean_roles, set_custom_field, set_patch_field, CustomIn, InErr, Patch, View};
use crate::util::token;
use serde_json::Value;

const JSON_CT: &str = "application/json";

fn msg(status: u16, m: &str) -> Resp {
    Resp::json(status, JSON_CT, &J::obj().with("message", m))
}

impl App {
    fn rest_forbidden(&self, ctx: &Ctx, m: &str) -> Resp {
        if !ctx.actor.provider_applied {
            return msg(401, "No authentication credentials provided.")
                .with_header("WWW-Authenticate", &self.realm());
        }
        msg(403, m)
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
        if path == "/entity/user" {
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
            // The HTML route wins; it does not allow basic_auth.
            return html_page(403, "Access denied", &self.cfg.site_name);
        }
        if let Some(f) = &format {
            if f != "json" {
                if ctx.actor.provider_applied && !ctx.actor.via_cookie {
                    return Resp::new(
                        403,
                        "text/plain; charset=UTF-8",
                        "The used authentication method is not allowed on this route.",
                    );
                }
                return self.wrong_format(ctx);
            }
        }
        if !matches!(m, "GET" | "HEAD" | "PATCH" | "DELETE") {
            return msg(
                405,
                &format!(
                    "No route found for \"{m} {}{path}\": Method Not Allowed (Allow: GET, PATCH, DELETE)",
                    ctx.base
                ),
            )
            .with_header("Allow", "GET, PATCH, DELETE");
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

    fn rest_write_access(&self, ctx: &Ctx, req: &Req, target: &User, op: &str) -> Option<Resp> {
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
        if let Some(m) = denied {
            return Some(self.rest_forbidden(ctx, &m));
        }
        self.csrf_failure(ctx, req).map(|reason| msg(403, reason))
    }

    fn rest_patch(&self, ctx: &mut Ctx, req: &Req, target: User) -> Resp {
        if let Some(r) = self.rest_write_access(ctx, req, &target, "update") {
            return r;
        }
        let (p, extra) = match self.rest_body(req) {
            Ok(x) => x,
            Err(r) => return r,
        };
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
        if let Some(r) = self.rest_write_access(ctx, req, &target, "delete") {
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
        if !flood.is_allowed("user.failed_login_ip", &ip, 50, 3600, t) {
            return msg(403, "Too many failed login attempts from your IP address. This IP address is temporarily blocked.");
        }
        let found = self.read().user_by_name(&name).cloned();
        let ident = found.as_ref().map(|u| format!("{}-{ip}", u.uid));
        if let Some(id) = &ident {
            if !flood.is_allowed("user.http_login", id, 5, 21600, t) {
                return msg(403, "There have been more than 5 failed login attempts for this account. It is temporarily blocked. Try again later or request a new password.");
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
            flood.register("user.http_login", id, t);
        }
        flood.register("user.failed_login_ip", &ip, t);
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
