//! JSON:API routes for `user--user` and `user_role--user_role`.

use crate::app::{href, jsonapi_member, App, Ctx, Req, Resp, JSONAPI_CT};
use crate::fields::{
    dedupe, requires_body, term_idents, with_arity, FVal, FieldKind, Ident, UserField,
};
use crate::filter::{self, check_sql, eval, parse_sort, sort_cmp, FErr, Mode, Node, Resolver, Val};
use crate::json::J;
use crate::model::{Db, DrupalVersion, User, Violation};
use crate::query::{pager_query, with_page, Q};
use crate::users::{
    clean_roles, internal_name, is_user_attribute, is_user_relationship, set_custom_field,
    set_patch_field, CustomIn, InErr, Patch, View,
};
use serde_json::Value;
use std::time::Duration;

const RESOURCE_TYPES: [&str; 37] = [
    "action--action",
    "base_field_override--base_field_override",
    "block--block",
    "block_content--basic",
    "block_content_type--block_content_type",
    "comment--comment",
    "comment_type--comment_type",
    "contact_form--contact_form",
    "contact_message--feedback",
    "contact_message--personal",
    "date_format--date_format",
    "editor--editor",
    "entity_form_display--entity_form_display",
    "entity_form_mode--entity_form_mode",
    "entity_view_display--entity_view_display",
    "entity_view_mode--entity_view_mode",
    "field_config--field_config",
    "field_storage_config--field_storage_config",
    "file--file",
    "filter_format--filter_format",
    "image_style--image_style",
    "menu--menu",
    "menu_link_content--menu_link_content",
    "node--article",
    "node--page",
    "node_type--node_type",
    "path_alias--path_alias",
    "rest_resource_config--rest_resource_config",
    "search_page--search_page",
    "shortcut--default",
    "shortcut_set--shortcut_set",
    "taxonomy_term--tags",
    "taxonomy_vocabulary--taxonomy_vocabulary",
    "user--user",
    "user_role--user_role",
    "view--view",
    "self",
];

/// The JSON:API resource types of the site, in the entry point's order.
pub fn resource_types(db: &Db) -> Vec<&'static str> {
    let mut out = Vec::with_capacity(RESOURCE_TYPES.len() + 1);
    for t in RESOURCE_TYPES {
        if t == "taxonomy_term--tags" && db.vocab_enabled("scim_groups") {
            out.push("taxonomy_term--scim_groups");
        }
        out.push(t);
    }
    out
}

impl App {
    pub fn resource_type_exists(&self, db: &Db, ty: &str) -> bool {
        ty != "self"
            && (RESOURCE_TYPES.contains(&ty)
                || (ty == "taxonomy_term--scim_groups" && db.vocab_enabled("scim_groups")))
    }

    /// Fieldset for a resource type from `fields[type]=a,b`.
    pub fn fieldset(&self, ctx: &Ctx, ty: &str) -> Option<Vec<String>> {
        fieldset(ctx, ty)
    }
}

fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// Filter/sort path resolution for users.
struct UserResolver<'a> {
    app: &'a App,
    db: &'a Db,
    ctx: &'a Ctx,
}

impl Resolver for UserResolver<'_> {
    fn resolve(&self, path: &str) -> Result<(String, Mode), FErr> {
        let parts: Vec<&str> = path.split('.').collect();
        let first = parts[0];
        let mail_mode = if self.db.settings.mail_case_insensitive {
            Mode::Ci
        } else {
            Mode::Cs
        };
        let simple = match first {
            "id" => Some(("uuid", Mode::Ci)),
            "drupal_internal__uid" => Some(("uid", Mode::Num)),
            "name" => Some(("name", Mode::Ci)),
            "mail" => Some(("mail", mail_mode)),
            "init" => Some(("init", mail_mode)),
            "timezone" => Some(("timezone", Mode::Ci)),
            "langcode" | "preferred_langcode" | "preferred_admin_langcode" => {
                Some((first, Mode::Cs))
            }
            "status" | "created" | "changed" | "access" | "login" | "default_langcode" => {
                Some((first, Mode::Num))
            }
            "pass" => Some(("pass", Mode::Cs)),
            _ => match self.db.user_field(first) {
                Some(f) if !f.is_ref() => Some((
                    f.name.as_str(),
                    if f.kind == FieldKind::String {
                        Mode::Ci
                    } else {
                        Mode::Num
                    },
                )),
                _ => None,
            },
        };
        let denied = |field: &str| -> FErr {
            (
                403,
                format!(
                    "The current user is not authorized to filter by the `{field}` field, given in the path `{path}`."
                ),
            )
        };
        if let Some((field, mode)) = simple {
            if !self
                .app
                .can_view_field(self.db, &self.ctx.actor, None, internal_name(field))
            {
                return Err(denied(field));
            }
            if parts.len() > 1 {
                let prop = parts[1];
                if first == "id" || first == "drupal_internal__uid" {
                    return Err((400, format!("Invalid nested filtering. The field `{prop}`, given in the path `{path}`, does not exist.")));
                }
                return Err((400, format!(
                    "Invalid nested filtering. The property `{prop}`, given in the path `{path}`, does not exist. Filter by `{first}`, not `{first}.{prop}` (the JSON:API module elides property names from single-property fields)."
                )));
            }
            return Ok((field.to_string(), mode));
        }
        match first {
            "roles" | "user_picture" => {
                if !self
                    .app
                    .can_view_field(self.db, &self.ctx.actor, None, first)
                {
                    return Err(denied(first));
                }
                let rest = parts[1..].join(".");
                if rest.is_empty() {
                    return Err((400, format!(
                        "Invalid nested filtering. The field `{first}`, given in the path `{path}` is incomplete, it must end with one of the following specifiers: `id`, `meta.drupal_internal__target_id`."
                    )));
                }
                if first == "roles" {
                    if rest == "meta.drupal_internal__target_id" {
                        return Ok(("roles".to_string(), Mode::Cs));
                    }
                    return Err((400, "Filtering on config entities is not supported by Drupal's entity API. You tried to filter on a Role config entity.".to_string()));
                }
                Ok(("user_picture".to_string(), Mode::Num))
            }
            name if self.db.user_field(name).is_some_and(|f| f.is_ref()) => {
                let rest = parts[1..].join(".");
                match rest.as_str() {
                    "" => Err((400, format!(
                        "Invalid nested filtering. The field `{first}`, given in the path `{path}` is incomplete, it must end with one of the following specifiers: `id`, `meta.drupal_internal__target_id`."
                    ))),
                    "id" => Ok((format!("ref:{name}:uuid"), Mode::Ci)),
                    "meta.drupal_internal__target_id" => {
                        Ok((format!("ref:{name}:target"), Mode::Num))
                    }
                    _ => {
                        let (key, mode) = crate::taxonomy::resolve_term_path(&parts[1..], path)?;
                        Ok((format!("ref:{name}:{key}"), mode))
                    }
                }
            }
            _ => Err((
                400,
                format!(
                    "Invalid nested filtering. The field `{first}`, given in the path `{path}`, does not exist."
                ),
            )),
        }
    }
}

fn user_values(db: &Db, u: &User, field: &str) -> Vec<Val> {
    let s = |o: &Option<String>| match o {
        Some(x) if !x.is_empty() => Val::Str(x.clone()),
        _ => Val::Null,
    };
    if let Some(rest) = field.strip_prefix("ref:") {
        let (name, key) = rest.split_once(':').unwrap_or((rest, "uuid"));
        let targets = u.refs(name);
        return match key {
            "target" => targets.iter().map(|t| Val::Int(*t)).collect(),
            "uuid" => targets
                .iter()
                .filter_map(|t| db.terms.get(t))
                .map(|t| Val::Str(t.uuid.clone()))
                .collect(),
            _ => {
                let key = key.strip_prefix("t:").unwrap_or(key);
                targets
                    .iter()
                    .filter_map(|t| db.terms.get(t))
                    .flat_map(|t| crate::taxonomy::term_values(db, t, key))
                    .collect()
            }
        };
    }
    if let Some(v) = u.field(field) {
        return vec![match v {
            FVal::Str(x) if !x.is_empty() => Val::Str(x.clone()),
            FVal::Int(i) => Val::Int(*i),
            FVal::Bool(b) => Val::Int(*b as i64),
            _ => Val::Null,
        }];
    }
    match field {
        "uuid" => vec![Val::Str(u.uuid.clone())],
        "uid" => vec![Val::Int(u.uid)],
        "name" => vec![Val::Str(u.name.clone())],
        "mail" => vec![s(&u.mail)],
        "init" => vec![s(&u.init)],
        "timezone" => vec![s(&u.timezone)],
        "langcode" => vec![Val::Str(u.langcode.clone())],
        "preferred_langcode" => vec![s(&u.preferred_langcode)],
        "preferred_admin_langcode" => vec![s(&u.preferred_admin_langcode)],
        "status" => vec![Val::Int(u.status as i64)],
        "created" => vec![Val::Int(u.created)],
        "changed" => vec![Val::Int(u.changed)],
        "access" => vec![Val::Int(u.access)],
        "login" => vec![Val::Int(u.login)],
        "default_langcode" => vec![Val::Int(1)],
        "roles" => u.roles.iter().map(|r| Val::Str(r.clone())).collect(),
        _ => vec![Val::Null],
    }
}

struct RoleResolver;

impl Resolver for RoleResolver {
    fn resolve(&self, path: &str) -> Result<(String, Mode), FErr> {
        match path {
            "id" => Ok(("uuid".into(), Mode::Ci)),
            "drupal_internal__id" | "label" | "langcode" => Ok((path.into(), Mode::Ci)),
            "weight" | "is_admin" | "status" => Ok((path.into(), Mode::Num)),
            _ => Err((
                400,
                format!(
                    "Invalid nested filtering. The field `{path}`, given in the path `{path}`, does not exist."
                ),
            )),
        }
    }
}

/// Fieldset for a resource type from `fields[type]=a,b`.
fn fieldset(ctx: &Ctx, ty: &str) -> Option<Vec<String>> {
    ctx.param("fields")
        .and_then(|f| f.get(ty))
        .and_then(|v| v.as_str())
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
}

enum Route<'a> {
    Entry,
    Collection,
    Individual(&'a str),
    Relationship(&'a str, &'a str),
    Related(&'a str, &'a str),
    Roles,
    Role(&'a str),
    Terms(&'a str),
    Term(&'a str, &'a str),
    TermRelationship(&'a str, &'a str, &'a str),
    TermRelated(&'a str, &'a str, &'a str),
    Unknown,
}

impl App {
    pub fn handle_jsonapi(&self, ctx: &mut Ctx, req: &Req) -> Resp {
        let rest = req.path.trim_start_matches("/jsonapi");
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let route = match segs.as_slice() {
            [] => Route::Entry,
            ["user", "user"] => Route::Collection,
            ["user", "user", id] => Route::Individual(id),
            ["user", "user", id, "relationships", rel] => Route::Relationship(id, rel),
            ["user", "user", id, rel] => Route::Related(id, rel),
            ["user_role", "user_role"] => Route::Roles,
            ["user_role", "user_role", id] => Route::Role(id),
            ["taxonomy_term", b] => Route::Terms(b),
            ["taxonomy_term", b, id] => Route::Term(b, id),
            ["taxonomy_term", b, id, "relationships", rel] => Route::TermRelationship(b, id, rel),
            ["taxonomy_term", b, id, rel] => Route::TermRelated(b, id, rel),
            _ => Route::Unknown,
        };
        let m = req.method.as_str();
        let (read_only, allowed) = {
            let db = self.read();
            let term_rel = |b: &str, rel: &str| {
                db.vocab_enabled(b) && crate::taxonomy::TERM_RELATIONSHIPS.contains(&rel)
            };
            let allowed: &str = match &route {
                Route::Entry | Route::Roles | Route::Role(_) => "GET, HEAD",
                Route::Collection => "GET, HEAD, POST",
                Route::Individual(_) => "GET, HEAD, PATCH, DELETE",
                Route::Relationship(_, rel) if is_user_relationship(&db.fields, rel) => {
                    "GET, HEAD, POST, PATCH, DELETE"
                }
                Route::Related(_, rel) if is_user_relationship(&db.fields, rel) => "GET, HEAD",
                Route::Terms(b) if db.vocab_enabled(b) => "GET, HEAD, POST",
                Route::Term(b, _) if db.vocab_enabled(b) => "GET, HEAD, PATCH, DELETE",
                Route::TermRelationship(b, _, rel) | Route::TermRelated(b, _, rel)
                    if term_rel(b, rel) =>
                {
                    "GET, HEAD"
                }
                _ => return crate::app::html_page(404, "Page not found", &self.cfg.site_name),
            };
            (db.settings.read_only, allowed)
        };
        let user_route = !matches!(route, Route::Entry | Route::Roles | Route::Role(_));
        if read_only && user_route && !is_read(m) {
            let detail = format!(
                "JSON:API is configured to accept only read operations. Site administrators can configure this at {}/admin/config/services/jsonapi.",
                ctx.base
            );
            return self
                .jerr(ctx, req, 405, &detail)
                .with_header("Allow", "GET");
        }
        let method_ok = allowed.split(", ").any(|a| a == m);
        if !method_ok {
            let detail = format!(
                "No route found for \"{m} {}{}\": Method Not Allowed (Allow: {allowed})",
                ctx.base, req.path
            );
            return self
                .jerr(ctx, req, 405, &detail)
                .with_header("Allow", allowed);
        }
        if m == "POST" || m == "PATCH" {
            match req.header("content-type") {
                None => {
                    return self.jerr(
                        ctx,
                        req,
                        415,
                        "No \"Content-Type\" request header specified",
                    )
                }
                Some(ct) => {
                    let mime = ct.split(';').next().unwrap_or("").trim();
                    if mime != JSONAPI_CT {
                        return self.jerr(
                            ctx,
                            req,
                            415,
                            &format!("No route found that matches \"Content-Type: {ct}\""),
                        );
                    }
                }
            }
        }
        match route {
            Route::Entry => self.entry_point(ctx, req),
            Route::Collection => match m {
                "POST" => self.create_user(ctx, req),
                _ => self.collection(ctx, req),
            },
            Route::Individual(id) => self.individual(ctx, req, id),
            Route::Relationship(id, rel) => self.relationship(ctx, req, id, rel),
            Route::Related(id, rel) => self.related(ctx, req, id, rel),
            Route::Roles => self.role_collection(ctx, req),
            Route::Role(id) => self.role_individual(ctx, req, id),
            Route::Terms(b) => self.handle_term_route(ctx, req, b, None, None),
            Route::Term(b, id) => self.handle_term_route(ctx, req, b, Some(id), None),
            Route::TermRelationship(b, id, rel) => {
                self.handle_term_route(ctx, req, b, Some(id), Some((rel, true)))
            }
            Route::TermRelated(b, id, rel) => {
                self.handle_term_route(ctx, req, b, Some(id), Some((rel, false)))
            }
            Route::Unknown => crate::app::html_page(404, "Page not found", &self.cfg.site_name),
        }
    }

    /// JsonApiRequestValidator: custom query parameters must contain a non a-z character.
    pub fn validate_query_params(&self, ctx: &Ctx, req: &Req) -> Option<Resp> {
        if ctx.has_param("_format") {
            return Some(self.jerr(ctx, req, 400, "JSON:API does not need that ugly '_format' query string! 🤘 Use the URL provided in 'links' 🙏"));
        }
        let bad: Vec<String> = ctx
            .query
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !matches!(*k, "filter" | "sort" | "page" | "fields" | "include"))
            .filter(|k| k.bytes().all(|b| b.is_ascii_lowercase()))
            .map(|k| format!("'{k}'"))
            .collect();
        if bad.is_empty() {
            return None;
        }
        let detail = format!(
            "The following query parameters violate the JSON:API spec: {}.",
            bad.join(", ")
        );
        let via = self.self_uri(ctx, req);
        let mut doc = Self::jerr_doc(400, &detail, Some(&via), None, None);
        if let J::Obj(ref mut top) = doc {
            if let Some((_, J::Arr(errs))) = top.iter_mut().find(|(k, _)| k == "errors") {
                if let Some(J::Obj(e)) = errs.first_mut() {
                    if let Some((_, links)) = e.iter_mut().find(|(k, _)| k == "links") {
                        links.push("info", href("http://jsonapi.org/format/#query-parameters"));
                    }
                }
            }
        }
        Some(Resp::json(400, JSONAPI_CT, &doc).with_header(
            "Link",
            "<http://jsonapi.org/format/#query-parameters>; rel=\"help\"",
        ))
    }

    fn entry_point(&self, ctx: &Ctx, req: &Req) -> Resp {
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let mut links = J::obj();
        let types = resource_types(&self.read());
        for t in types {
            let h = if t == "self" {
                format!("{}/jsonapi", ctx.base)
            } else {
                let (a, b) = t.split_once("--").unwrap_or((t, t));
                format!("{}/jsonapi/{a}/{b}", ctx.base)
            };
            links.push(t, href(&h));
        }
        let mut doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", J::Arr(vec![]));
        if ctx.actor.is_auth() {
            let db = self.read();
            if let Some(u) = db.users.get(&ctx.actor.uid) {
                doc.push(
                    "meta",
                    J::obj().with(
                        "links",
                        J::obj().with(
                            "me",
                            J::obj()
                                .with("meta", J::obj().with("id", u.uuid.as_str()))
                                .with("href", format!("{}/jsonapi/user/user/{}", ctx.base, u.uuid)),
                        ),
                    ),
                );
            }
        }
        doc.push("links", links);
        Resp::json(200, JSONAPI_CT, &doc)
    }

    fn not_converted(&self, ctx: &Ctx, req: &Req, template: &str, route: &str) -> Resp {
        self.jerr(
            ctx,
            req,
            404,
            &format!(
                "The \"entity\" parameter was not converted for the path \"{template}\" (route name: \"{route}\")"
            ),
        )
    }

    fn include_paths(&self, db: &Db, ctx: &Ctx, req: &Req) -> Result<Vec<String>, Resp> {
        let Some(inc) = ctx.param("include") else {
            return Ok(vec![]);
        };
        let s = inc.as_str().unwrap_or("");
        let mut out = Vec::new();
        for p in s.split(',').map(|x| x.trim()).filter(|x| !x.is_empty()) {
            // Nested paths (`field_scim_groups.vid`) are accepted; only the first hop is included.
            let first = p.split('.').next().unwrap_or(p);
            if !is_user_relationship(&db.fields, first) {
                let mut possible = vec!["roles".to_string()];
                let mut conf: Vec<String> = db
                    .fields
                    .iter()
                    .filter(|f| f.is_ref())
                    .map(|f| f.name.clone())
                    .collect();
                conf.push("user_picture".into());
                conf.sort_unstable();
                possible.extend(conf);
                return Err(self.jerr(
                    ctx,
                    req,
                    400,
                    &format!(
                        "`{p}` is not a valid relationship field name. Possible values: {}.",
                        possible.join(", ")
                    ),
                ));
            }
            if !out.iter().any(|x| x == first) {
                out.push(first.to_string());
            }
        }
        Ok(out)
    }

    /// `included` for the given users: roles and referenced terms, in include order, each
    /// resource once (user pictures are never set).
    fn included(&self, db: &Db, ctx: &Ctx, users: &[&User], includes: &[String]) -> Option<J> {
        if includes.is_empty() {
            return None;
        }
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        let can_roles = self.has_perm(db, &ctx.actor, "administer permissions");
        let role_fields = fieldset(ctx, "user_role--user_role");
        for inc in includes {
            if inc == "roles" {
                for u in users {
                    if self.user_view(db, &ctx.actor, u) != View::Admin {
                        continue;
                    }
                    for r in u.roles.iter().filter_map(|r| db.role(r)) {
                        if seen.contains(&r.uuid) || !can_roles {
                            continue;
                        }
                        seen.push(r.uuid.clone());
                        out.push(self.render_role(&ctx.base, r, role_fields.as_deref()));
                    }
                }
            } else if db.user_field(inc).is_some_and(|f| f.is_ref()) {
                for u in users {
                    if self.user_view(db, &ctx.actor, u) == View::Label {
                        continue;
                    }
                    for t in u.refs(inc).iter().filter_map(|t| db.terms.get(t)) {
                        if seen.contains(&t.uuid) || !self.can_view_term(db, ctx, t) {
                            continue;
                        }
                        seen.push(t.uuid.clone());
                        let f = fieldset(ctx, &format!("taxonomy_term--{}", t.vid));
                        out.push(self.render_term(db, &ctx.base, t, f.as_deref()));
                    }
                }
            }
        }
        Some(J::Arr(out))
    }

    /// A collection's `links`: Drupal's pager links plus Symfony's normalised `self`.
    pub fn collection_links(
        &self,
        ctx: &Ctx,
        req: &Req,
        offset: i64,
        size: i64,
        has_next: bool,
    ) -> J {
        let mut links = J::obj();
        let path = format!("{}{}", ctx.base, req.path);
        if has_next {
            links.push(
                "next",
                href(&format!(
                    "{path}?{}",
                    pager_query(&with_page(&ctx.query, offset + size, size))
                )),
            );
        }
        if offset > 0 {
            links.push(
                "first",
                href(&format!(
                    "{path}?{}",
                    pager_query(&with_page(&ctx.query, 0, size))
                )),
            );
            links.push(
                "prev",
                href(&format!(
                    "{path}?{}",
                    pager_query(&with_page(&ctx.query, (offset - size).max(0), size))
                )),
            );
        }
        links.push("self", href(&self.self_uri(ctx, req)));
        // Drupal sorts link keys (first, next, prev, self).
        if let J::Obj(ref mut v) = links {
            v.sort_by(|a, b| a.0.cmp(&b.0));
        }
        links
    }

    fn collection(&self, ctx: &Ctx, req: &Req) -> Resp {
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let db = self.read();
        let resolver = UserResolver {
            app: self,
            db: &db,
            ctx,
        };
        let filter = match ctx.param("filter") {
            Some(f) => match filter::parse_filter(f, &resolver) {
                Ok(n) => Some(n),
                Err((s, d)) => return self.filter_error(ctx, req, s, &d),
            },
            None => None,
        };
        let sort = match ctx.param("sort") {
            Some(s) => match parse_sort(s, &resolver) {
                Ok(k) => k,
                Err((s, d)) => return self.filter_error(ctx, req, s, &d),
            },
            None => Vec::new(),
        };
        let (offset, size) = match page_params(ctx) {
            Ok(x) => x,
            Err(d) => return self.jerr(ctx, req, 400, &d),
        };
        if let Some(f) = &filter {
            if let Err((s, d)) = check_sql(f) {
                let detail = if s == 500 {
                    sql_error_detail_as(f, "user", offset, size, self.cfg.drupal_version)
                        .unwrap_or(d)
                } else {
                    d
                };
                return self.jerr(ctx, req, s, &detail);
            }
        }
        let admin = self.has_perm(&db, &ctx.actor, "administer users");
        let mut rows: Vec<&User> = db
            .users
            .values()
            .filter(|u| match &filter {
                None => true,
                Some(f) => {
                    // TemporaryQueryGuard: no uid 0; non-admins may filter among their own
                    // account only (and anonymous callers among nothing).
                    u.uid != 0
                        && (admin || (ctx.actor.is_auth() && u.uid == ctx.actor.uid))
                        && eval(f, &|field| user_values(&db, u, field))
                }
            })
            .collect();
        if !sort.is_empty() {
            let key = |u: &User| -> Vec<Val> {
                sort.iter()
                    .map(|k| {
                        user_values(&db, u, &k.field)
                            .into_iter()
                            .next()
                            .unwrap_or(Val::Null)
                    })
                    .collect()
            };
            rows.sort_by(|a, b| sort_cmp(&key(a), &key(b), &sort));
        } else if filter.is_none() && self.cfg.drupal_version >= DrupalVersion::V11_4 {
            // 11.4's entity query for an unfiltered, unsorted list lets SQLite read the
            // users table through its uuid index: the accounts come in UUID order.
            rows.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        }
        if size <= 0 {
            return self.jerr(
                ctx,
                req,
                400,
                "The page size needs to be a positive integer.",
            );
        }
        let start = offset.max(0) as usize;
        let page: Vec<&User> = rows
            .iter()
            .skip(start)
            .take(size as usize)
            .copied()
            .collect();
        let has_next = rows.len() > start + size as usize;
        let includes = match self.include_paths(&db, ctx, req) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let fields = fieldset(ctx, "user--user");
        let data: Vec<J> = page
            .iter()
            .map(|u| {
                let view = self.user_view(&db, &ctx.actor, u);
                self.render_user(&db, &ctx.base, u, view, fields.as_deref())
            })
            .collect();
        let links = self.collection_links(ctx, req, offset, size, has_next);
        let mut doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", J::Arr(data));
        if let Some(inc) = self.included(&db, ctx, &page, &includes) {
            doc.push("included", inc);
        }
        doc.push("links", links);
        Resp::json(200, JSONAPI_CT, &doc)
    }

    pub(crate) fn filter_error(&self, ctx: &Ctx, req: &Req, status: u16, detail: &str) -> Resp {
        if status == 403 {
            ctx.filter_denied.set(true);
            self.jforbidden(ctx, req, detail, None)
        } else {
            self.jerr(ctx, req, status, detail)
        }
    }

    fn individual(&self, ctx: &mut Ctx, req: &Req, id: &str) -> Resp {
        let m = req.method.as_str();
        let route = match m {
            "PATCH" => "jsonapi.user--user.individual.patch",
            "DELETE" => "jsonapi.user--user.individual.delete",
            _ => "jsonapi.user--user.individual",
        };
        let target = self.read().user_by_uuid(id).cloned();
        let Some(target) = target else {
            return self.not_converted(ctx, req, "/jsonapi/user/user/{entity}", route);
        };
        match m {
            "PATCH" => self.patch_user(ctx, req, target),
            "DELETE" => self.delete_user(ctx, req, target),
            _ => {
                if let Some(r) = self.validate_query_params(ctx, req) {
                    return r;
                }
                let db = self.read();
                let includes = match self.include_paths(&db, ctx, req) {
                    Ok(i) => i,
                    Err(r) => return r,
                };
                let Some(u) = db.users.get(&target.uid) else {
                    return self.not_converted(ctx, req, "/jsonapi/user/user/{entity}", route);
                };
                let view = self.user_view(&db, &ctx.actor, u);
                let fields = fieldset(ctx, "user--user");
                let data = self.render_user(&db, &ctx.base, u, view, fields.as_deref());
                let mut doc = J::obj()
                    .with("jsonapi", jsonapi_member())
                    .with("data", data);
                if let Some(inc) = self.included(&db, ctx, &[u], &includes) {
                    doc.push("included", inc);
                }
                doc.push(
                    "links",
                    J::obj().with("self", href(&self.self_uri(ctx, req))),
                );
                Resp::json(200, JSONAPI_CT, &doc)
            }
        }
    }

    /// Route access for writes on an existing user: entity access, then CSRF.
    fn write_access(&self, ctx: &Ctx, req: &Req, target: &User, op: &str) -> Option<Resp> {
        let db = self.read();
        let admin = self.has_perm(&db, &ctx.actor, "administer users");
        let denied: Option<String> = if target.uid == 0 {
            Some(String::new())
        } else if admin {
            None
        } else if op == "update" {
            if ctx.actor.is_auth() && ctx.actor.uid == target.uid {
                None
            } else {
                Some("Users can only update their own account, unless they have the 'administer users' permission.".into())
            }
        } else if ctx.actor.is_auth()
            && ctx.actor.uid == target.uid
            && self.has_perm(&db, &ctx.actor, "cancel account")
        {
            None
        } else {
            Some("The 'cancel account' permission is required.".into())
        };
        drop(db);
        if let Some(reason) = denied {
            return Some(self.jforbidden(ctx, req, &reason, None));
        }
        if let Some(reason) = self.csrf_failure(ctx, req) {
            return Some(self.jerr(ctx, req, 403, reason));
        }
        None
    }

    /// Decodes a JSON:API document body (400 on empty/malformed).
    pub(crate) fn decode_body(
        &self,
        ctx: &Ctx,
        req: &Req,
        rel: Option<&str>,
    ) -> Result<Value, Resp> {
        if req.body.is_empty() || req.body == b"0" {
            if req.method == "DELETE" {
                if let Some(r) = rel {
                    return Err(self.jerr(
                        ctx,
                        req,
                        400,
                        &format!("You need to provide a body for DELETE operations on a relationship ({r})."),
                    ));
                }
            }
            return Err(self.jerr(ctx, req, 400, "Empty request body."));
        }
        let Ok(text) = std::str::from_utf8(&req.body) else {
            return Err(self.jerr(
                ctx,
                req,
                400,
                "Malformed UTF-8 characters, possibly incorrectly encoded",
            ));
        };
        serde_json::from_str::<Value>(text).map_err(|_| self.jerr(ctx, req, 400, "Syntax error"))
    }

    pub(crate) fn in_err(&self, ctx: &Ctx, req: &Req, e: InErr) -> Resp {
        match e {
            InErr::Bad(d) => self.jerr(ctx, req, 400, &d),
            InErr::Unprocessable(d) => self.jerr_422(ctx, req, &d),
            InErr::NotFound(d) => self.jerr(ctx, req, 404, &d),
        }
    }

    /// JsonApiDocumentTopLevelNormalizer::denormalize + prepareInput for user documents.
    /// A create's or update's query and body (the document and what it asks), checked and read, with the site locked for
    /// the write that follows.
    fn read_user_document(
        &self,
        ctx: &Ctx,
        req: &Req,
    ) -> Result<(std::sync::RwLockWriteGuard<'_, Db>, Value, Patch), Resp> {
        if let Some(r) = self.validate_query_params(ctx, req) {
            return Err(r);
        }
        let doc = self.decode_body(ctx, req, None)?;
        let db = self.write();
        match self.parse_user_document(&db, &doc, &req.body) {
            Ok(p) => Ok((db, doc, p)),
            Err(e) => {
                drop(db);
                Err(self.in_err(ctx, req, e))
            }
        }
    }

    fn parse_user_document(&self, db: &Db, doc: &Value, raw: &[u8]) -> Result<Patch, InErr> {
        let empty = serde_json::Map::new();
        let top = doc.as_object().unwrap_or(&empty);
        if top.get("relationships").map(non_empty).unwrap_or(false) {
            return Err(InErr::Bad("Found \"relationships\" within the document's top level. The \"relationships\" key must be within resource object.".into()));
        }
        let data = top.get("data");
        if data
            .and_then(|d| d.get("type"))
            .map(|t| t.is_null())
            .unwrap_or(true)
        {
            return Err(InErr::Bad(
                "Resource object must include a \"type\".".into(),
            ));
        }
        let data = data.and_then(|d| d.as_object()).unwrap_or(&empty);
        crate::users::check_client_id(data)?;
        let attrs = data.get("attributes").and_then(|a| a.as_object());
        crate::users::reject_relationships_as_attributes(attrs, |k| {
            is_user_relationship(&db.fields, k)
        })?;
        let mut p = Patch::default();
        // Relationships are resolved (404s) before attributes are denormalised. Items are
        // loaded from the storage of the first item's type, whatever the field targets.
        let mut rel_values: Vec<(String, Vec<RelId>)> = Vec::new();
        if let Some(rels) = data.get("relationships").and_then(|r| r.as_object()) {
            for name in crate::json::key_order(raw, &["data", "relationships"]) {
                let Some(rel) = rels.get(&name) else {
                    continue;
                };
                let items = crate::users::relationship_items(rel);
                if items.is_empty() {
                    rel_values.push((name.clone(), Vec::new()));
                    continue;
                }
                if items[0].get("id").map(|v| !non_empty(v)).unwrap_or(true) {
                    return Err(InErr::Bad("No ID specified for related resource".into()));
                }
                let ty = items[0].get("type").and_then(|t| t.as_str()).unwrap_or("");
                if ty.is_empty() {
                    return Err(InErr::Bad("No type specified for related resource".into()));
                }
                if !self.resource_type_exists(db, ty) {
                    return Err(InErr::Bad(format!(
                        "Invalid type specified for related resource: '{ty}'"
                    )));
                }
                let mut ids = Vec::new();
                for it in &items {
                    let uuid = it.get("id").and_then(|v| v.as_str()).unwrap_or("");
                    let it_ty = it.get("type").and_then(|t| t.as_str()).unwrap_or(ty);
                    let found = if ty == "user_role--user_role" {
                        db.role_by_uuid(uuid).map(|r| RelId::Role(r.id.to_string()))
                    } else if ty.starts_with("taxonomy_term--") {
                        db.term_by_uuid(uuid).map(|t| RelId::Id(t.tid))
                    } else if ty == "user--user" {
                        db.user_by_uuid(uuid).map(|u| RelId::Id(u.uid))
                    } else {
                        None
                    };
                    match found {
                        Some(id) => ids.push(id),
                        None if uuid == "virtual" => {}
                        None => {
                            return Err(InErr::NotFound(format!(
                                "The resource identified by `{it_ty}:{uuid}` (given as a relationship item) could not be found."
                            )))
                        }
                    }
                }
                rel_values.push((name.clone(), ids));
            }
        }
        if let Some(a) = attrs {
            for k in crate::json::key_order(raw, &["data", "attributes"]) {
                let Some(v) = a.get(&k) else {
                    continue;
                };
                if k == "display_name" {
                    continue;
                }
                if !is_user_attribute(&db.fields, &k) {
                    return Err(InErr::Unprocessable(format!(
                        "The attribute {k} does not exist on the user--user resource type."
                    )));
                }
                match db.user_field(&k) {
                    Some(def) => set_custom_field(&mut p, def, v)?,
                    None => set_patch_field(&mut p, internal_name(&k), v)?,
                }
            }
        }
        if let Some(id) = data.get("id").and_then(|v| v.as_str()) {
            p.uuid = Some(id.to_string());
        }
        for (name, ids) in rel_values {
            if !is_user_relationship(&db.fields, &name) {
                return Err(InErr::Unprocessable(format!(
                    "The attribute {name} does not exist on the user--user resource type."
                )));
            }
            if name == "roles" {
                let mut roles = Vec::new();
                for id in ids {
                    match id {
                        RelId::Role(r) => roles.push(r),
                        RelId::Id(x) => {
                            return Err(InErr::Unprocessable(format!(
                                "roles.0.target_id: The referenced entity (user_role: {x}) does not exist."
                            )))
                        }
                    }
                }
                p.roles = Some(roles);
                p.fields.push("roles".into());
            } else if db.user_field(&name).is_some() {
                let mut tids = Vec::new();
                for id in ids {
                    match id {
                        RelId::Id(x) => tids.push(x),
                        RelId::Role(r) => {
                            return Err(InErr::Unprocessable(format!(
                                "{name}.0.target_id: The referenced entity (taxonomy_term: {r}) does not exist."
                            )))
                        }
                    }
                }
                p.set_custom(&name, CustomIn::Refs(tids));
            } else {
                p.fields.push(name);
            }
        }
        Ok(p)
    }

    pub(crate) fn violations_resp(&self, violations: &[Violation]) -> Resp {
        let errors: Vec<J> = violations
            .iter()
            .map(|v| {
                J::obj()
                    .with("title", "Unprocessable Content")
                    .with("status", "422")
                    .with("detail", format!("{}: {}", v.path, v.message))
                    .with("source", J::obj().with("pointer", v.pointer()))
            })
            .collect();
        Resp::json(
            422,
            JSONAPI_CT,
            &J::obj()
                .with("jsonapi", jsonapi_member())
                .with("errors", J::Arr(errors)),
        )
    }

    fn create_user(&self, ctx: &mut Ctx, req: &Req) -> Resp {
        {
            let db = self.read();
            if !self.has_perm(&db, &ctx.actor, "administer users") {
                drop(db);
                return self.jforbidden(
                    ctx,
                    req,
                    "The 'administer users' permission is required.",
                    None,
                );
            }
        }
        if let Some(reason) = self.csrf_failure(ctx, req) {
            return self.jerr(ctx, req, 403, reason);
        }
        let (mut db, _, p) = match self.read_user_document(ctx, req) {
            Ok(read) => read,
            Err(r) => return r,
        };
        // Field edit access, in field order.
        let mut order: Vec<&String> = p.fields.iter().collect();
        order.sort_by_key(|f| crate::model::field_order(f));
        for f in order {
            if let Err(reason) = self.edit_access(&db, &ctx.actor, None, f) {
                let public = crate::users::public_name(f).to_string();
                let mut detail = format!(
                    "The current user is not allowed to POST the selected field ({public})."
                );
                if let Some(r) = reason {
                    detail.push(' ');
                    detail.push_str(&r);
                }
                drop(db);
                return self.jerr_ptr(
                    ctx,
                    req,
                    403,
                    &detail,
                    &format!("/data/attributes/{public}"),
                );
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
        let violations = self.validate_user(&db, &ctx.actor, &u, None, &p, None);
        if !violations.is_empty() {
            drop(db);
            return self.violations_resp(&violations);
        }
        if db.user_by_uuid(&u.uuid).is_some() {
            drop(db);
            return self.jerr(ctx, req, 409, "Conflict: Entity already exists.");
        }
        u.roles = clean_roles(&u.roles);
        if req.race_ms > 0 {
            // Validation passed; the INSERT happens later, in its own transaction. Only the
            // database's UNIQUE indexes (name+langcode, uuid) catch a concurrent duplicate.
            drop(db);
            std::thread::sleep(Duration::from_millis(req.race_ms));
            db = self.write();
        }
        // The unique key also refuses a name equal under the column's collation that
        // validation let through (`JOSÉ` beside `José` on SQLite, `jose` on MariaDB).
        u.uid = db.next_uid;
        if let Some(detail) = insert_conflict(&db, &u) {
            drop(db);
            return self.jerr(ctx, req, 500, &detail);
        }
        u.saved();
        let uuid = u.uuid.clone();
        let uid = u.uid;
        db.insert(u);
        let Some(u) = db.users.get(&uid) else {
            return Resp::empty(500);
        };
        let view = self.user_view(&db, &ctx.actor, u);
        let data = self.render_user(&db, &ctx.base, u, view, None);
        let doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", data)
            .with(
                "links",
                J::obj().with("self", href(&self.self_uri(ctx, req))),
            );
        Resp::json(201, JSONAPI_CT, &doc).with_header(
            "Location",
            &format!("{}/jsonapi/user/user/{uuid}", ctx.base),
        )
    }

    fn patch_user(&self, ctx: &mut Ctx, req: &Req, target: User) -> Resp {
        if let Some(r) = self.write_access(ctx, req, &target, "update") {
            return r;
        }
        let (mut db, doc, p) = match self.read_user_document(ctx, req) {
            Ok(read) => read,
            Err(r) => return r,
        };
        let Some(orig) = db.users.get(&target.uid).cloned() else {
            drop(db);
            return self.not_converted(
                ctx,
                req,
                "/jsonapi/user/user/{entity}",
                "jsonapi.user--user.individual.patch",
            );
        };
        let body_id = doc
            .get("data")
            .and_then(|d| d.get("id"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if body_id != orig.uuid {
            drop(db);
            return self.jerr(
                ctx,
                req,
                400,
                &format!(
                    "The selected entity ({}) does not match the ID in the payload ({body_id}).",
                    orig.uuid
                ),
            );
        }
        // checkPatchFieldAccess, in document order.
        let mut apply: Vec<String> = Vec::new();
        let mut probe = orig.clone();
        for f in &p.fields {
            if self.edit_access(&db, &ctx.actor, Some(&orig), f).is_ok() {
                apply.push(f.clone());
                continue;
            }
            let reason = self
                .edit_access(&db, &ctx.actor, Some(&orig), f)
                .err()
                .flatten();
            let viewable = self.can_view_field(&db, &ctx.actor, Some(&orig), f);
            let unchanged = {
                let before = probe.values_key();
                self.apply_patch(&mut probe, &p, std::slice::from_ref(f));
                let same = probe.values_key() == before
                    && !(f == "uid" && p.uid.as_ref().and_then(|v| v.as_i64()) != Some(orig.uid));
                probe = orig.clone();
                same
            };
            if viewable && unchanged {
                continue;
            }
            let mut detail =
                format!("The current user is not allowed to PATCH the selected field ({f}).");
            if let Some(r) = reason {
                detail.push(' ');
                detail.push_str(&r);
            }
            drop(db);
            return self.jerr_ptr(ctx, req, 403, &detail, &format!("/data/attributes/{f}"));
        }
        let mut u = orig.clone();
        self.apply_patch(&mut u, &p, &apply);
        let violations = self.validate_user(&db, &ctx.actor, &u, Some(&orig), &p, Some(&p.fields));
        if !violations.is_empty() {
            drop(db);
            return self.violations_resp(&violations);
        }
        u.roles = clean_roles(&u.roles);
        if u.name != orig.name
            && db.users.values().any(|o| {
                o.uid != u.uid && o.uid != 0 && crate::model::eq_name_key(&o.name, &u.name)
            })
        {
            drop(db);
            let detail = format!(
                "SQLSTATE[23000]: Integrity constraint violation: {}",
                name_key_violation(&u.name, "UPDATE")
            );
            return self.jerr(ctx, req, 500, &detail);
        }
        let activated = !orig.status && u.status;
        if req.race_ms > 0 {
            // Drupal saves the whole entity it loaded at the start of the request.
            drop(db);
            std::thread::sleep(Duration::from_millis(req.race_ms));
            db = self.write();
        }
        self.save_user(&mut db, ctx, &orig, u);
        let Some(saved) = db.users.get(&orig.uid) else {
            return Resp::empty(500);
        };
        let view = self.user_view(&db, &ctx.actor, saved);
        let data = self.render_user(&db, &ctx.base, saved, view, None);
        drop(db);
        if activated {
            // The status_activated mail fails on a test site; the error message is kept in a
            // session, so Drupal sends a session cookie.
            self.start_session_cookie(ctx);
        }
        let doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", data)
            .with(
                "links",
                J::obj().with("self", href(&self.self_uri(ctx, req))),
            );
        Resp::json(200, JSONAPI_CT, &doc)
    }

    /// Saves an updated user: `changed` bumps only on a real change; password changes and blocks
    /// end the user's other sessions.
    pub fn save_user(&self, db: &mut Db, ctx: &Ctx, orig: &User, mut u: User) {
        if u.values_key() != orig.values_key() {
            u.changed = ctx.now;
        }
        let pass_changed = u.pass != orig.pass;
        let blocked = orig.status && !u.status;
        u.saved();
        let uid = u.uid;
        db.replace(u);
        if pass_changed || blocked {
            let keep = ctx.actor.session_cookie.clone();
            db.sessions
                .retain(|sid, s| s.uid != uid || Some(sid) == keep.as_ref());
        }
    }

    fn delete_user(&self, ctx: &mut Ctx, req: &Req, target: User) -> Resp {
        if let Some(r) = self.write_access(ctx, req, &target, "delete") {
            return r;
        }
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let mut db = self.write();
        let method = db.settings.cancel_method.clone();
        match method.as_str() {
            "user_cancel_reassign" | "user_cancel_delete" => {
                db.remove(target.uid);
            }
            _ => {
                if let Some(orig) = db.users.get(&target.uid).cloned() {
                    let mut u = orig.clone();
                    u.status = false;
                    self.save_user(&mut db, ctx, &orig, u);
                }
            }
        }
        drop(db);
        // user_cancel() runs as a batch, which lives in the session.
        self.start_session_cookie(ctx);
        Resp::empty(204)
    }

    fn rel_links(&self, ctx: &Ctx, u: &User, rel: &str) -> J {
        let base = format!("{}/jsonapi/user/user/{}", ctx.base, u.uuid);
        J::obj()
            .with("related", href(&format!("{base}/{rel}")))
            .with("self", href(&format!("{base}/relationships/{rel}")))
    }

    fn relationship_doc(&self, db: &Db, ctx: &Ctx, u: &User, rel: &str) -> J {
        let data = if rel == "roles" {
            self.roles_rel_data(db, u)
        } else if let Some(f) = db.user_field(rel) {
            self.ref_rel_data(db, u, f)
        } else {
            J::Null
        };
        J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", data)
            .with("links", self.rel_links(ctx, u, rel))
    }

    /// RelationshipRouteAccessCheck.
    fn rel_access(&self, ctx: &Ctx, req: &Req, u: &User, rel: &str, edit: bool) -> Option<Resp> {
        let db = self.read();
        let admin = self.has_perm(&db, &ctx.actor, "administer users");
        let entity_reason: Option<String> = if u.uid == 0 {
            Some(String::new())
        } else if admin {
            None
        } else if edit {
            if ctx.actor.is_auth() && ctx.actor.uid == u.uid {
                None
            } else {
                Some("Users can only update their own account, unless they have the 'administer users' permission.".into())
            }
        } else if self.user_view(&db, &ctx.actor, u) == View::Label {
            Some(
                "The 'access user profiles' permission is required and the user must be active."
                    .into(),
            )
        } else {
            None
        };
        let field_ok = if edit {
            self.edit_access(&db, &ctx.actor, Some(u), rel).is_ok()
        } else {
            self.can_view_field(&db, &ctx.actor, Some(u), rel)
        };
        drop(db);
        if entity_reason.is_some() || !field_ok {
            let op = if edit { "edit" } else { "view" };
            let mut detail = format!("The current user is not allowed to {op} this relationship.");
            if let Some(r) = entity_reason.filter(|r| !r.is_empty()) {
                detail.push(' ');
                detail.push_str(&r);
            }
            return Some(self.jforbidden(ctx, req, &detail, None));
        }
        if edit {
            if let Some(reason) = self.csrf_failure(ctx, req) {
                return Some(self.jerr(ctx, req, 403, reason));
            }
        }
        None
    }

    fn related(&self, ctx: &Ctx, req: &Req, id: &str, rel: &str) -> Resp {
        let Some(u) = self.read().user_by_uuid(id).cloned() else {
            return self.not_converted(
                ctx,
                req,
                &format!("/jsonapi/user/user/{{entity}}/{rel}"),
                &format!("jsonapi.user--user.{rel}.related"),
            );
        };
        if let Some(r) = self.rel_access(ctx, req, &u, rel, false) {
            return r;
        }
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let db = self.read();
        let data = if rel == "roles" {
            let fields = fieldset(ctx, "user_role--user_role");
            let can = self.has_perm(&db, &ctx.actor, "administer permissions");
            J::Arr(
                u.roles
                    .iter()
                    .filter_map(|r| db.role(r))
                    .filter(|_| can)
                    .map(|r| self.render_role(&ctx.base, r, fields.as_deref()))
                    .collect(),
            )
        } else if db.user_field(rel).is_some() {
            // Keyed by id in Drupal: each term once; dangling targets are left out.
            let mut seen: Vec<i64> = Vec::new();
            let mut out = Vec::new();
            for tid in u.refs(rel) {
                let Some(t) = db.terms.get(tid) else {
                    continue;
                };
                if seen.contains(tid) || !self.can_view_term(&db, ctx, t) {
                    continue;
                }
                seen.push(*tid);
                let f = fieldset(ctx, &format!("taxonomy_term--{}", t.vid));
                out.push(self.render_term(&db, &ctx.base, t, f.as_deref()));
            }
            J::Arr(out)
        } else {
            J::Null
        };
        let doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", data)
            .with(
                "links",
                J::obj().with("self", href(&self.self_uri(ctx, req))),
            );
        Resp::json(200, JSONAPI_CT, &doc)
    }

    fn relationship(&self, ctx: &mut Ctx, req: &Req, id: &str, rel: &str) -> Resp {
        let m = req.method.as_str();
        let Some(u) = self.read().user_by_uuid(id).cloned() else {
            let suffix = match m {
                "POST" => "post",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "get",
            };
            return self.not_converted(
                ctx,
                req,
                &format!("/jsonapi/user/user/{{entity}}/relationships/{rel}"),
                &format!("jsonapi.user--user.{rel}.relationship.{suffix}"),
            );
        };
        let edit = !is_read(m);
        if let Some(r) = self.rel_access(ctx, req, &u, rel, edit) {
            return r;
        }
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        if !edit {
            let db = self.read();
            return Resp::json(200, JSONAPI_CT, &self.relationship_doc(&db, ctx, &u, rel));
        }
        let doc = match self.decode_body(ctx, req, Some(rel)) {
            Ok(d) => d,
            Err(r) => return r,
        };
        if rel == "user_picture" {
            return self.jerr(
                ctx,
                req,
                409,
                &format!("You can only {m} to to-many relationships. user_picture is a to-one relationship."),
            );
        }
        let def = self.read().user_field(rel).cloned();
        if let Some(def) = def {
            return self.ref_relationship_write(ctx, req, &u, &def, &doc);
        }
        let mut db = self.write();
        // Resource identifiers.
        let items = match doc.get("data") {
            Some(Value::Array(a)) => a.clone(),
            _ => {
                drop(db);
                return self.jerr(ctx, req, 400, "Invalid body payload for the relationship.");
            }
        };
        let mut received: Vec<String> = Vec::new();
        let mut received_uuids: Vec<String> = Vec::new();
        for it in &items {
            let (Some(ty), Some(uuid)) = (
                it.get("type").and_then(|v| v.as_str()),
                it.get("id").and_then(|v| v.as_str()),
            ) else {
                drop(db);
                return self.jerr(ctx, req, 400, "Invalid body payload for the relationship.");
            };
            if ty != "user_role--user_role" {
                drop(db);
                return self.jerr(
                    ctx,
                    req,
                    400,
                    &format!("The provided type ({ty}) does not match the destination resource types (user_role--user_role)."),
                );
            }
            let key = uuid.to_ascii_lowercase();
            if received_uuids.contains(&key) {
                drop(db);
                return self.jerr(ctx, req, 400, "Duplicate relationships are not permitted. Use `meta.arity` to distinguish resource identifiers with matching `type` and `id` values.");
            }
            received_uuids.push(key);
            match db.role_by_uuid(uuid) {
                Some(r) => received.push(r.id.to_string()),
                None if m == "DELETE" => {}
                None => {
                    drop(db);
                    return self.jerr(
                        ctx,
                        req,
                        400,
                        &format!("The targeted `user_role--user_role` resource with ID `{uuid}` does not exist."),
                    );
                }
            }
        }
        let Some(orig) = db.users.get(&u.uid).cloned() else {
            return Resp::empty(500);
        };
        let mut next = orig.clone();
        match m {
            "POST" => {
                let mut roles = orig.roles.clone();
                for r in &received {
                    if !roles.contains(r) {
                        roles.push(r.clone());
                    }
                }
                next.roles = clean_roles(&roles);
            }
            "PATCH" => next.roles = clean_roles(&received),
            _ => next.roles.retain(|r| !received.contains(r)),
        }
        let changed = next.roles != orig.roles;
        let p = Patch::default();
        let violations = self.validate_user(&db, &ctx.actor, &next, Some(&orig), &p, None);
        if !violations.is_empty() {
            drop(db);
            return self.violations_resp(&violations);
        }
        if changed || m != "POST" {
            if req.race_ms > 0 {
                drop(db);
                std::thread::sleep(Duration::from_millis(req.race_ms));
                db = self.write();
            }
            self.save_user(&mut db, ctx, &orig, next.clone());
        }
        // 200 with the full list when the final list holds items the request did not name.
        let status = if m == "DELETE" {
            204
        } else if next.roles.iter().any(|r| !received.contains(r)) {
            200
        } else {
            204
        };
        if status == 204 {
            return Resp::empty(204);
        }
        Resp::json(
            200,
            JSONAPI_CT,
            &self.relationship_doc(&db, ctx, &next, rel),
        )
    }

    /// POST/PATCH/DELETE on `/relationships/{reference field}`, as `EntityResource`'s
    /// add/replace/removeFromRelationshipData do it (records 231–255, 279–283).
    fn ref_relationship_write(
        &self,
        ctx: &mut Ctx,
        req: &Req,
        u: &User,
        def: &UserField,
        doc: &Value,
    ) -> Resp {
        let m = req.method.as_str();
        let invalid = || self.jerr(ctx, req, 400, "Invalid body payload for the relationship.");
        // ResourceIdentifierNormalizer::massageRelationshipInput (to-many).
        let items = match doc.get("data") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Object(o)) => o.values().cloned().collect(),
            _ => return invalid(),
        };
        if !items.is_empty() && !matches!(doc.get("data"), Some(Value::Array(_)))
            || items.iter().any(|it| {
                !it.is_object()
                    || !it.get("type").is_some_and(non_empty)
                    || !it.get("id").is_some_and(non_empty)
            })
        {
            return invalid();
        }
        let target = def.target_type();
        let mut received: Vec<Ident> = Vec::with_capacity(items.len());
        for it in &items {
            let ty = match it.get("type") {
                Some(Value::String(t)) => t.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            if ty != target {
                return self.jerr(
                    ctx,
                    req,
                    400,
                    &format!("The provided type ({ty}) does not match the destination resource types ({target})."),
                );
            }
            let id = match it.get("id") {
                Some(Value::String(t)) => t.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let arity = it
                .get("meta")
                .and_then(|x| x.get("arity"))
                .and_then(|a| a.as_i64());
            received.push(Ident {
                ty,
                id,
                arity,
                target: None,
            });
        }
        if dedupe(received.clone()).len() != received.len() {
            return self.jerr(ctx, req, 400, "Duplicate relationships are not permitted. Use `meta.arity` to distinguish resource identifiers with matching `type` and `id` values.");
        }
        let mut db = self.write();
        let Some(orig) = db.users.get(&u.uid).cloned() else {
            return Resp::empty(500);
        };
        let name = def.name.as_str();
        let current = with_arity(term_idents(&db, &target, orig.refs(name)));
        let mut list: Vec<i64> = orig.refs(name).to_vec();
        let lookup = |db: &Db, i: &Ident| db.term_by_uuid(&i.id).map(|t| t.tid);
        let not_found = |i: &Ident| {
            format!(
                "The targeted `{}` resource with ID `{}` does not exist.",
                i.ty, i.id
            )
        };
        match m {
            "POST" => {
                let mut merged = current.clone();
                merged.extend(received.iter().cloned());
                let new: Vec<Ident> = dedupe(merged)
                    .into_iter()
                    .filter(|n| !current.iter().any(|c| c.same(n)))
                    .collect();
                if new.is_empty() {
                    // Nothing to add: no validation, no save.
                    if !requires_body(&received, &current) {
                        return Resp::empty(204);
                    }
                    return Resp::json(
                        200,
                        JSONAPI_CT,
                        &self.relationship_doc(&db, ctx, &orig, name),
                    );
                }
                for n in &new {
                    match lookup(&db, n) {
                        Some(tid) => list.push(tid),
                        None => {
                            drop(db);
                            return self.jerr(ctx, req, 400, &not_found(n));
                        }
                    }
                }
            }
            "PATCH" => {
                list.clear();
                for r in &received {
                    match lookup(&db, r) {
                        Some(tid) => list.push(tid),
                        None => {
                            drop(db);
                            return self.jerr(ctx, req, 400, &not_found(r));
                        }
                    }
                }
            }
            _ => {
                let mut deltas: Vec<usize> = Vec::new();
                for r in received
                    .iter()
                    .filter(|r| current.iter().any(|c| c.same(r)))
                {
                    for (d, c) in current.iter().enumerate() {
                        if r.same(c) && !deltas.contains(&d) {
                            deltas.push(d);
                        }
                    }
                }
                deltas.sort_unstable_by(|a, b| b.cmp(a));
                for d in deltas {
                    list.remove(d);
                }
            }
        }
        let mut next = orig.clone();
        next.set_field(name, Some(FVal::Refs(list)));
        // The whole entity is validated (a dangling reference fails here, records 279 and 281).
        let violations =
            self.validate_user(&db, &ctx.actor, &next, Some(&orig), &Patch::default(), None);
        if !violations.is_empty() {
            drop(db);
            return self.violations_resp(&violations);
        }
        if req.race_ms > 0 {
            // Load, validate … and save the whole field list later: concurrent writes to the
            // same user overwrite each other (records 340–345).
            drop(db);
            std::thread::sleep(Duration::from_millis(req.race_ms));
            db = self.write();
        }
        self.save_user(&mut db, ctx, &orig, next.clone());
        if m == "DELETE" {
            return Resp::empty(204);
        }
        let fin = with_arity(term_idents(&db, &target, next.refs(name)));
        if !requires_body(&received, &fin) {
            return Resp::empty(204);
        }
        Resp::json(
            200,
            JSONAPI_CT,
            &self.relationship_doc(&db, ctx, &next, name),
        )
    }

    fn role_collection(&self, ctx: &Ctx, req: &Req) -> Resp {
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let db = self.read();
        let filter = match ctx.param("filter") {
            Some(f) => match filter::parse_filter(f, &RoleResolver) {
                Ok(n) => Some(n),
                Err((s, d)) => return self.filter_error(ctx, req, s, &d),
            },
            None => None,
        };
        let can = self.has_perm(&db, &ctx.actor, "administer permissions");
        let fields = fieldset(ctx, "user_role--user_role");
        let mut data = Vec::new();
        let mut omitted = J::obj();
        for r in &db.roles {
            if let Some(f) = &filter {
                let hit = eval(f, &|field| match field {
                    "uuid" => vec![Val::Str(r.uuid.clone())],
                    "drupal_internal__id" => vec![Val::Str(r.id.to_string())],
                    "label" => vec![Val::Str(r.label.to_string())],
                    "langcode" => vec![Val::Str("en".into())],
                    "weight" => vec![Val::Int(r.weight)],
                    "is_admin" => vec![Val::Int(r.is_admin as i64)],
                    "status" => vec![Val::Int(1)],
                    _ => vec![Val::Null],
                });
                if !hit {
                    continue;
                }
            }
            if can {
                data.push(self.render_role(&ctx.base, r, fields.as_deref()));
            } else {
                omitted.push(
                    &r.uuid.replace('-', "")[..22],
                    J::obj()
                        .with(
                            "href",
                            format!("{}/jsonapi/user_role/user_role/{}", ctx.base, r.uuid),
                        )
                        .with(
                            "meta",
                            J::obj().with("rel", "item").with(
                                "detail",
                                "The 'administer permissions' permission is required.",
                            ),
                        ),
                );
            }
        }
        let mut doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", J::Arr(data));
        if !omitted.is_empty_obj() {
            let mut links = J::obj().with(
                "help",
                href("https://www.drupal.org/docs/8/modules/json-api/filtering#filters-access-control"),
            );
            if let J::Obj(o) = omitted {
                for (k, v) in o {
                    links.push(&k, v);
                }
            }
            doc.push(
                "meta",
                J::obj().with(
                    "omitted",
                    J::obj()
                        .with(
                            "detail",
                            "Some resources have been omitted because of insufficient authorization.",
                        )
                        .with("links", links),
                ),
            );
        }
        doc.push(
            "links",
            J::obj().with("self", href(&self.self_uri(ctx, req))),
        );
        Resp::json(200, JSONAPI_CT, &doc)
    }

    fn role_individual(&self, ctx: &Ctx, req: &Req, id: &str) -> Resp {
        let db = self.read();
        let Some(r) = db.role_by_uuid(id) else {
            drop(db);
            return self.not_converted(
                ctx,
                req,
                "/jsonapi/user_role/user_role/{entity}",
                "jsonapi.user_role--user_role.individual",
            );
        };
        if !self.has_perm(&db, &ctx.actor, "administer permissions") {
            drop(db);
            return self.jforbidden(
                ctx,
                req,
                "The 'administer permissions' permission is required.",
                None,
            );
        }
        let fields = fieldset(ctx, "user_role--user_role");
        let doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", self.render_role(&ctx.base, r, fields.as_deref()))
            .with(
                "links",
                J::obj().with("self", href(&self.self_uri(ctx, req))),
            );
        drop(db);
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        Resp::json(200, JSONAPI_CT, &doc)
    }
}

/// The 500 a concurrent INSERT gets from SQLite's UNIQUE indexes (record 347).
fn insert_conflict(db: &Db, u: &User) -> Option<String> {
    let name_taken = db.users.values().any(|o| {
        o.uid != 0 && o.langcode == u.langcode && crate::model::eq_name_key(&o.name, &u.name)
    });
    if db.user_by_uuid(&u.uuid).is_some() {
        return Some(format!(
            "SQLSTATE[23000]: Integrity constraint violation: 19 UNIQUE constraint failed: users.uuid: INSERT INTO \"users\" (\"uuid\", \"langcode\") VALUES (?, ?); Array\n(\n    [0] => {}\n    [1] => {}\n)\n",
            u.uuid, u.langcode
        ));
    }
    if !name_taken {
        return None;
    }
    if crate::filter::general_ci() {
        return Some(format!(
            "SQLSTATE[23000]: Integrity constraint violation: {}",
            name_key_violation(&u.name, "INSERT")
        ));
    }
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let pass = if u.pass.is_some() {
        "$2y$10$emulatedemulatedemulatedemulatedemulatedemulatedemula".to_string()
    } else {
        String::new()
    };
    let values = [
        u.uid.to_string(),
        u.langcode.clone(),
        o(&u.preferred_langcode),
        o(&u.preferred_admin_langcode),
        u.name.clone(),
        pass,
        o(&u.mail),
        o(&u.timezone),
        (u.status as i64).to_string(),
        u.created.to_string(),
        u.changed.to_string(),
        u.access.to_string(),
        u.login.to_string(),
        o(&u.init),
        "1".to_string(),
    ];
    let mut args = String::from("Array\n(\n");
    for (i, v) in values.iter().enumerate() {
        args.push_str(&format!("    [{i}] => {v}\n"));
    }
    args.push_str(")\n");
    Some(format!(
        "SQLSTATE[23000]: Integrity constraint violation: 19 UNIQUE constraint failed: users_field_data.name, users_field_data.langcode: INSERT INTO \"users_field_data\" (\"uid\", \"langcode\", \"preferred_langcode\", \"preferred_admin_langcode\", \"name\", \"pass\", \"mail\", \"timezone\", \"status\", \"created\", \"changed\", \"access\", \"login\", \"init\", \"default_langcode\") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?); {args}"
    ))
}

/// The database's words for a duplicate on the `user__name` unique key (MariaDB's, under
/// `general_ci`; SQLite's otherwise).
fn name_key_violation(name: &str, statement: &str) -> String {
    if crate::filter::general_ci() {
        format!("1062 Duplicate entry '{name}-en' for key 'user__name': {statement} INTO \"users_field_data\" (emulated)")
    } else {
        format!("19 UNIQUE constraint failed: users_field_data.name, users_field_data.langcode: {statement} \"users_field_data\" (emulated)")
    }
}

/// A relationship item resolved from a request document.
enum RelId {
    Role(String),
    Id(i64),
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty() && s != "0",
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}

/// PHP comparison of a query-string value with an int (PHP 8 semantics).
fn php_cmp_int(s: &str, n: i64) -> std::cmp::Ordering {
    let t = s.trim();
    match t.parse::<f64>() {
        Ok(x) if !t.is_empty() => x
            .partial_cmp(&(n as f64))
            .unwrap_or(std::cmp::Ordering::Equal),
        _ => s.cmp(&n.to_string()),
    }
}

fn php_int(s: &str) -> i64 {
    let t = s.trim_start();
    let mut end = 0;
    for (i, c) in t.char_indices() {
        if c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')) {
            end = i + 1;
        } else {
            break;
        }
    }
    t[..end].parse::<f64>().map(|f| f as i64).unwrap_or(0)
}

/// The 500 detail of a filter that breaks Drupal's SQL (see `crate::sql`), as 10.x prints it.
pub fn sql_error_detail(f: &Node, entity_type: &str, offset: i64, size: i64) -> Option<String> {
    sql_error_detail_as(f, entity_type, offset, size, DrupalVersion::V10_3)
}

/// The same, as the given release prints it (11.4 builds the query differently).
pub fn sql_error_detail_as(
    f: &Node,
    entity_type: &str,
    offset: i64,
    size: i64,
    v: DrupalVersion,
) -> Option<String> {
    Some(crate::sql::error_detail_as(
        f,
        entity_type,
        offset,
        size,
        entity_type == "user",
        v >= DrupalVersion::V11_4,
    ))
}

/// OffsetPage::createFromQueryParameter: (offset, size); size <= 0 is reported after the query.
pub fn page_params(ctx: &Ctx) -> Result<(i64, i64), String> {
    let Some(page) = ctx.param("page") else {
        return Ok((0, 50));
    };
    let Q::Map(_) = page else {
        return Err("The page parameter needs to be an array.".into());
    };
    let offset = page
        .get("offset")
        .and_then(|v| v.as_str())
        .map(php_int)
        .unwrap_or(0);
    let size = match page.get("limit").and_then(|v| v.as_str()) {
        None => 50,
        Some(l) => {
            if php_cmp_int(l, 50) == std::cmp::Ordering::Greater {
                50
            } else if php_cmp_int(l, 0) != std::cmp::Ordering::Greater {
                0
            } else {
                php_int(l)
            }
        }
    };
    Ok((offset, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_like_php() {
        assert_eq!(php_cmp_int("abc", 50), std::cmp::Ordering::Greater);
        assert_eq!(php_cmp_int("100", 50), std::cmp::Ordering::Greater);
        assert_eq!(php_cmp_int("-1", 0), std::cmp::Ordering::Less);
        assert_eq!(php_int("12abc"), 12);
    }
}
