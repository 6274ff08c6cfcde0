//! JSON:API routes for taxonomy terms (`taxonomy_term--tags`, `taxonomy_term--scim_groups`):
//! collection GET/POST, individual GET/PATCH/DELETE, relationship and related GETs, as the second
//! recorded run shows them (records 190–214, 267–277).

use crate::app::{href, jsonapi_member, App, Ctx, Req, Resp, JSONAPI_CT};
use crate::filter::{self, check_sql, eval, parse_sort, sort_cmp, FErr, Mode, Resolver, Val};
use crate::json::J;
use crate::model::{Db, Term, Violation};
use crate::users::{bool_of, check_boolean, InErr};
use crate::util::rfc3339;
use serde_json::Value;

/// The relationship fields of a term, in field order.
pub const TERM_RELATIONSHIPS: [&str; 3] = ["vid", "revision_user", "parent"];

/// Attribute names of a term, in Drupal's order.
const TERM_ATTRS: [&str; 13] = [
    "drupal_internal__tid",
    "drupal_internal__revision_id",
    "langcode",
    "revision_created",
    "revision_log_message",
    "status",
    "name",
    "description",
    "weight",
    "changed",
    "default_langcode",
    "revision_translation_affected",
    "path",
];

/// Term attributes that may be sent but are ignored (computed or not stored by the emulator).
const TERM_IGNORED_INPUT: [&str; 7] = [
    "drupal_internal__revision_id",
    "revision_created",
    "revision_log_message",
    "changed",
    "default_langcode",
    "revision_translation_affected",
    "path",
];

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    out
}

/// `check_markup()` for the formats of the standard profile, approximately: `plain_text` (and no
/// format, which falls back to it) escapes HTML; every format runs `filter_autop`.
pub fn processed_text(value: &str, format: Option<&str>) -> String {
    let text = match format {
        None | Some("plain_text") => html_escape(value),
        _ => value.to_string(),
    };
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    for para in text.split("\n\n").map(|p| p.trim_matches('\n')) {
        if para.trim().is_empty() {
            continue;
        }
        out.push_str("<p>");
        out.push_str(&para.replace('\n', "<br />\n"));
        out.push_str("</p>\n");
    }
    out
}

/// Filter/sort path resolution for terms. Keys are internal names (`t:name`, `t:parent.id`, …);
/// `prefix` is the public path before the term's own fields (`field_scim_groups.`) when the
/// term is reached through a user's reference field.
pub fn resolve_term_path(parts: &[&str], path: &str) -> Result<(String, Mode), FErr> {
    let first = parts.first().copied().unwrap_or("");
    let rest = parts.get(1..).unwrap_or(&[]).join(".");
    let simple = match first {
        "id" => Some(("uuid", Mode::Ci)),
        "drupal_internal__tid" => Some(("tid", Mode::Num)),
        "drupal_internal__revision_id" => Some(("revision_id", Mode::Num)),
        "langcode" => Some(("langcode", Mode::Cs)),
        "revision_created" => Some(("revision_created", Mode::Num)),
        "revision_log_message" => Some(("revision_log_message", Mode::Cs)),
        "status" => Some(("status", Mode::Num)),
        "name" => Some(("name", Mode::Ci)),
        "weight" => Some(("weight", Mode::Num)),
        "changed" => Some(("changed", Mode::Num)),
        "default_langcode" => Some(("default_langcode", Mode::Num)),
        "revision_translation_affected" => Some(("revision_translation_affected", Mode::Num)),
        _ => None,
    };
    if let Some((key, mode)) = simple {
        if !rest.is_empty() {
            let prop = parts[1];
            if first == "id" || first.starts_with("drupal_internal__") {
                return Err((400, format!("Invalid nested filtering. The field `{prop}`, given in the path `{path}`, does not exist.")));
            }
            return Err((400, format!(
                "Invalid nested filtering. The property `{prop}`, given in the path `{path}`, does not exist. Filter by `{first}`, not `{first}.{prop}` (the JSON:API module elides property names from single-property fields)."
            )));
        }
        return Ok((format!("t:{key}"), mode));
    }
    match first {
        "description" => match rest.as_str() {
            "" | "value" => Ok(("t:description".into(), Mode::Cs)),
            "format" => Ok(("t:description.format".into(), Mode::Cs)),
            p => Err((400, format!("Invalid nested filtering. The property `{p}`, given in the path `{path}`, does not exist."))),
        },
        "vid" | "parent" | "revision_user" => {
            if rest.is_empty() {
                return Err((400, format!(
                    "Invalid nested filtering. The field `{first}`, given in the path `{path}` is incomplete, it must end with one of the following specifiers: `id`, `meta.drupal_internal__target_id`."
                )));
            }
            match (first, rest.as_str()) {
                ("vid", "meta.drupal_internal__target_id") => Ok(("t:vid".into(), Mode::Cs)),
                ("vid", _) => Err((400, "Filtering on config entities is not supported by Drupal's entity API. You tried to filter on a Taxonomy vocabulary config entity.".into())),
                ("parent", "id") => Ok(("t:parent.id".into(), Mode::Ci)),
                ("parent", "meta.drupal_internal__target_id") => {
                    Ok(("t:parent.target".into(), Mode::Num))
                }
                ("revision_user", "id") => Ok(("t:revision_user".into(), Mode::Ci)),
                ("revision_user", "meta.drupal_internal__target_id") => {
                    Ok(("t:revision_user".into(), Mode::Num))
                }
                _ => Err((400, format!(
                    "Invalid nested filtering. The field `{}`, given in the path `{path}`, does not exist.",
                    parts[1]
                ))),
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

/// The values of a term for a key from `resolve_term_path` (without the `t:` prefix).
pub fn term_values(db: &Db, t: &Term, key: &str) -> Vec<Val> {
    match key {
        "uuid" => vec![Val::Str(t.uuid.clone())],
        "tid" => vec![Val::Int(t.tid)],
        "revision_id" => vec![Val::Int(t.revision_id)],
        "langcode" => vec![Val::Str(t.langcode.clone())],
        "revision_created" => vec![Val::Int(t.created)],
        "status" => vec![Val::Int(t.status as i64)],
        "name" => vec![Val::Str(t.name.clone())],
        "weight" => vec![Val::Int(t.weight)],
        "changed" => vec![Val::Int(t.changed)],
        "default_langcode" | "revision_translation_affected" => vec![Val::Int(1)],
        "description" => vec![match &t.description {
            Some((v, _)) => Val::Str(v.clone()),
            None => Val::Null,
        }],
        "description.format" => vec![match &t.description {
            Some((_, Some(f))) => Val::Str(f.clone()),
            _ => Val::Null,
        }],
        "vid" => vec![Val::Str(t.vid.clone())],
        "parent.target" => t.parent.iter().map(|p| Val::Int(*p)).collect(),
        "parent.id" => t
            .parent
            .iter()
            .filter_map(|p| db.terms.get(p))
            .map(|p| Val::Str(p.uuid.clone()))
            .collect(),
        _ => vec![Val::Null],
    }
}

struct TermResolver;

impl Resolver for TermResolver {
    fn resolve(&self, path: &str) -> Result<(String, Mode), FErr> {
        let parts: Vec<&str> = path.split('.').collect();
        resolve_term_path(&parts, path)
    }
}

/// A term document's denormalised input.
#[derive(Default)]
struct TermPatch {
    /// Internal field names in the order sent.
    fields: Vec<String>,
    name: Option<Option<String>>,
    description: Option<Option<(String, Option<String>)>>,
    weight: Option<Value>,
    status: Option<Value>,
    langcode: Option<Option<String>>,
    parent: Option<Vec<i64>>,
    tid: Option<Value>,
    uuid: Option<String>,
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("1".into()),
        Value::Bool(false) => Some(String::new()),
        _ => None,
    }
}

fn props_check(field: &str, ty: &str, v: &Value, writable: &[&str]) -> Result<(), InErr> {
    let list = || {
        writable
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Value::Object(o) = v {
        for k in o.keys() {
            if !writable.contains(&k.as_str()) {
                return Err(InErr::Unprocessable(format!(
                    "The property '{k}' does not exist on the '{field}' field of type '{ty}'. Writable properties are: {}.",
                    list()
                )));
            }
        }
    }
    if matches!(v, Value::Array(a) if !a.is_empty()) {
        return Err(InErr::Unprocessable(format!(
            "The property '0' does not exist on the '{field}' field of type '{ty}'. Writable properties are: {}.",
            list()
        )));
    }
    Ok(())
}

fn unwrap_value(v: &Value) -> Value {
    match v {
        Value::Object(o) => o.get("value").cloned().unwrap_or(Value::Null),
        Value::Array(_) => Value::Null,
        other => other.clone(),
    }
}

fn int_like(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_i64().is_some(),
        Value::Bool(_) | Value::Null => true,
        Value::String(s) => s.trim().parse::<i64>().is_ok(),
        _ => false,
    }
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

impl App {
    /// A vocabulary's JSON:API resource object.
    pub fn render_vocab(&self, db: &Db, base: &str, vid: &str) -> J {
        let Some(v) = db.vocab(vid) else {
            return J::Null;
        };
        J::obj()
            .with("type", "taxonomy_vocabulary--taxonomy_vocabulary")
            .with("id", v.uuid.as_str())
            .with(
                "links",
                J::obj().with(
                    "self",
                    href(&format!(
                        "{base}/jsonapi/taxonomy_vocabulary/taxonomy_vocabulary/{}",
                        v.uuid
                    )),
                ),
            )
            .with(
                "attributes",
                J::obj()
                    .with("langcode", "en")
                    .with("status", true)
                    .with("dependencies", J::Arr(vec![]))
                    .with("drupal_internal__vid", v.id)
                    .with("name", v.name)
                    .with("description", v.description.map(|d| d.to_string()))
                    .with("weight", 0i64)
                    .with("new_revision", false),
            )
    }

    fn vocab_ident(&self, db: &Db, vid: &str) -> J {
        match db.vocab(vid) {
            Some(v) => J::obj()
                .with("type", "taxonomy_vocabulary--taxonomy_vocabulary")
                .with("id", v.uuid.as_str())
                .with("meta", J::obj().with("drupal_internal__target_id", v.id)),
            None => J::Null,
        }
    }

    fn term_parent_data(&self, db: &Db, t: &Term) -> J {
        let relatable = format!("taxonomy_term--{}", t.vid);
        J::Arr(
            crate::fields::term_idents(db, &relatable, &t.parent)
                .iter()
                .map(|i| i.to_json())
                .collect(),
        )
    }

    /// A term's `links`: from 10.6 on, JSON:API adds `working-copy` to every versionable
    /// resource (`ResourceObject::buildLinksFromEntity`).
    fn term_links(&self, own: &str, rv: &str) -> J {
        let links = J::obj().with("self", href(&format!("{own}{rv}")));
        if self.cfg.drupal_version >= crate::model::DrupalVersion::V10_6 {
            links.with(
                "working-copy",
                href(&format!("{own}?resourceVersion=rel%3Aworking-copy")),
            )
        } else {
            links
        }
    }

    /// A JSON:API `taxonomy_term--{vid}` resource object.
    pub fn render_term(&self, db: &Db, base: &str, t: &Term, fields: Option<&[String]>) -> J {
        let wanted = |name: &str| fields.map(|f| f.iter().any(|x| x == name)).unwrap_or(true);
        let own = format!("{base}/jsonapi/taxonomy_term/{}/{}", t.vid, t.uuid);
        let rv = format!("?resourceVersion=id%3A{}", t.revision_id);
        let mut out = J::obj()
            .with("type", format!("taxonomy_term--{}", t.vid))
            .with("id", t.uuid.as_str())
            .with("links", self.term_links(&own, &rv));
        let mut attrs = J::obj();
        for name in TERM_ATTRS {
            if !wanted(name) {
                continue;
            }
            let v: J = match name {
                "drupal_internal__tid" => J::Int(t.tid),
                "drupal_internal__revision_id" => J::Int(t.revision_id),
                "langcode" => J::Str(t.langcode.clone()),
                "revision_created" => J::Str(rfc3339(t.created)),
                "revision_log_message" => J::Null,
                "status" => J::Bool(t.status),
                "name" => J::Str(t.name.clone()),
                "description" => match &t.description {
                    Some((v, f)) => J::obj()
                        .with("value", v.as_str())
                        .with("format", f.clone())
                        .with("processed", processed_text(v, f.as_deref())),
                    None => J::Null,
                },
                "weight" => J::Int(t.weight),
                "changed" => J::Str(rfc3339(t.changed)),
                "default_langcode" | "revision_translation_affected" => J::Bool(true),
                _ => J::obj()
                    .with("alias", J::Null)
                    .with("pid", J::Null)
                    .with("langcode", t.langcode.as_str()),
            };
            attrs.push(name, v);
        }
        if !attrs.is_empty_obj() {
            out.push("attributes", attrs);
        }
        let mut rels = J::obj();
        for name in TERM_RELATIONSHIPS {
            if !wanted(name) {
                continue;
            }
            let data = match name {
                "vid" => self.vocab_ident(db, &t.vid),
                "revision_user" => J::Null,
                _ => self.term_parent_data(db, t),
            };
            rels.push(
                name,
                J::obj().with("data", data).with(
                    "links",
                    J::obj()
                        .with("related", href(&format!("{own}/{name}{rv}")))
                        .with("self", href(&format!("{own}/relationships/{name}{rv}"))),
                ),
            );
        }
        if !rels.is_empty_obj() {
            out.push("relationships", rels);
        }
        out
    }

    pub fn can_view_term(&self, db: &Db, ctx: &Ctx, t: &Term) -> bool {
        if self.has_perm(db, &ctx.actor, "administer taxonomy") {
            return true;
        }
        if t.status {
            self.has_perm(db, &ctx.actor, "access content")
        } else {
            self.has_perm(
                db,
                &ctx.actor,
                &format!("view unpublished terms in {}", t.vid),
            )
        }
    }

    /// `TermAccessControlHandler` for create/update/delete; Err = the reason.
    fn term_write_access(&self, ctx: &Ctx, vid: &str, op: &str) -> Result<(), String> {
        let db = self.read();
        let verb = match op {
            "create" => "create",
            "update" => "edit",
            _ => "delete",
        };
        let perm = format!("{verb} terms in {vid}");
        let withheld = db.settings.withheld_term_permissions.contains(&perm);
        if !withheld
            && (self.has_perm(&db, &ctx.actor, &perm)
                || self.has_perm(&db, &ctx.actor, "administer taxonomy"))
        {
            Ok(())
        } else {
            Err(format!(
                "The following permissions are required: '{perm}' OR 'administer taxonomy'."
            ))
        }
    }

    fn term_not_converted(&self, ctx: &Ctx, req: &Req, bundle: &str, suffix: &str) -> Resp {
        self.jerr(
            ctx,
            req,
            404,
            &format!(
                "The \"entity\" parameter was not converted for the path \"/jsonapi/taxonomy_term/{bundle}/{{entity}}\" (route name: \"jsonapi.taxonomy_term--{bundle}.individual{suffix}\")"
            ),
        )
    }

    fn term_include_paths(&self, ctx: &Ctx, req: &Req) -> Result<Vec<String>, Resp> {
        let Some(inc) = ctx.param("include") else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        for p in inc
            .as_str()
            .unwrap_or("")
            .split(',')
            .map(|x| x.trim())
            .filter(|x| !x.is_empty())
        {
            if !TERM_RELATIONSHIPS.contains(&p) {
                return Err(self.jerr(
                    ctx,
                    req,
                    400,
                    &format!("`{p}` is not a valid relationship field name. Possible values: vid, revision_user, parent."),
                ));
            }
            out.push(p.to_string());
        }
        Ok(out)
    }

    /// `included` for terms: parent terms and vocabularies.
    fn term_included(&self, db: &Db, ctx: &Ctx, terms: &[&Term], includes: &[String]) -> Option<J> {
        if includes.is_empty() {
            return None;
        }
        let admin = self.has_perm(db, &ctx.actor, "administer taxonomy");
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for inc in includes {
            for t in terms {
                match inc.as_str() {
                    "parent" => {
                        for p in t.parent.iter().filter_map(|p| db.terms.get(p)) {
                            if seen.contains(&p.uuid) || !self.can_view_term(db, ctx, p) {
                                continue;
                            }
                            seen.push(p.uuid.clone());
                            let fields = self.fieldset(ctx, &format!("taxonomy_term--{}", p.vid));
                            out.push(self.render_term(db, &ctx.base, p, fields.as_deref()));
                        }
                    }
                    "vid" if admin => {
                        if let Some(v) = db.vocab(&t.vid) {
                            if !seen.contains(&v.uuid) {
                                seen.push(v.uuid.clone());
                                out.push(self.render_vocab(db, &ctx.base, &t.vid));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(J::Arr(out))
    }

    /// Routes under `/jsonapi/taxonomy_term/{bundle}` (method, content type and read-only checks
    /// already done).
    pub fn handle_term_route(
        &self,
        ctx: &mut Ctx,
        req: &Req,
        bundle: &str,
        id: Option<&str>,
        rel: Option<(&str, bool)>,
    ) -> Resp {
        let m = req.method.as_str();
        let Some(id) = id else {
            return match m {
                "POST" => self.create_term(ctx, req, bundle),
                _ => self.term_collection(ctx, req, bundle),
            };
        };
        let term = self.read().term_by_uuid(id).cloned();
        let Some(term) = term else {
            if let Some((rel, is_rel)) = rel {
                let route = if is_rel {
                    format!("jsonapi.taxonomy_term--{bundle}.{rel}.relationship.get")
                } else {
                    format!("jsonapi.taxonomy_term--{bundle}.{rel}.related")
                };
                let template = if is_rel {
                    format!("/jsonapi/taxonomy_term/{bundle}/{{entity}}/relationships/{rel}")
                } else {
                    format!("/jsonapi/taxonomy_term/{bundle}/{{entity}}/{rel}")
                };
                return self.jerr(
                    ctx,
                    req,
                    404,
                    &format!("The \"entity\" parameter was not converted for the path \"{template}\" (route name: \"{route}\")"),
                );
            }
            let suffix = match m {
                "PATCH" => ".patch",
                "DELETE" => ".delete",
                _ => "",
            };
            return self.term_not_converted(ctx, req, bundle, suffix);
        };
        if let Some((rel, is_rel)) = rel {
            return self.term_relationship_get(ctx, req, &term, rel, is_rel);
        }
        match m {
            "PATCH" => self.patch_term(ctx, req, bundle, term),
            "DELETE" => self.delete_term(ctx, req, term),
            _ => self.get_term(ctx, req, &term),
        }
    }

    fn get_term(&self, ctx: &Ctx, req: &Req, term: &Term) -> Resp {
        {
            let db = self.read();
            if !self.can_view_term(&db, ctx, term) {
                drop(db);
                return self.jforbidden(
                    ctx,
                    req,
                    "The 'access content' permission is required.",
                    None,
                );
            }
        }
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let includes = match self.term_include_paths(ctx, req) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let db = self.read();
        let fields = self.fieldset(ctx, &format!("taxonomy_term--{}", term.vid));
        let mut doc = J::obj().with("jsonapi", jsonapi_member()).with(
            "data",
            self.render_term(&db, &ctx.base, term, fields.as_deref()),
        );
        if let Some(inc) = self.term_included(&db, ctx, &[term], &includes) {
            doc.push("included", inc);
        }
        doc.push(
            "links",
            J::obj().with("self", href(&self.self_uri(ctx, req))),
        );
        Resp::json(200, JSONAPI_CT, &doc)
    }

    fn term_relationship_get(
        &self,
        ctx: &Ctx,
        req: &Req,
        term: &Term,
        rel: &str,
        is_rel: bool,
    ) -> Resp {
        let db = self.read();
        if !self.can_view_term(&db, ctx, term) {
            drop(db);
            let op = if is_rel {
                "relationship"
            } else {
                "related resource"
            };
            return self.jforbidden(
                ctx,
                req,
                &format!("The current user is not allowed to view this {op}. The 'access content' permission is required."),
                None,
            );
        }
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let own = format!(
            "{}/jsonapi/taxonomy_term/{}/{}",
            ctx.base, term.vid, term.uuid
        );
        let data = if is_rel {
            match rel {
                "vid" => self.vocab_ident(&db, &term.vid),
                "revision_user" => J::Null,
                _ => self.term_parent_data(&db, term),
            }
        } else {
            match rel {
                "vid" => {
                    if self.has_perm(&db, &ctx.actor, "administer taxonomy") {
                        self.render_vocab(&db, &ctx.base, &term.vid)
                    } else {
                        J::Null
                    }
                }
                "revision_user" => J::Null,
                _ => J::Arr(
                    term.parent
                        .iter()
                        .filter_map(|p| db.terms.get(p))
                        .filter(|p| self.can_view_term(&db, ctx, p))
                        .map(|p| {
                            let f = self.fieldset(ctx, &format!("taxonomy_term--{}", p.vid));
                            self.render_term(&db, &ctx.base, p, f.as_deref())
                        })
                        .collect(),
                ),
            }
        };
        let links = if is_rel {
            J::obj()
                .with("related", href(&format!("{own}/{rel}")))
                .with("self", href(&self.self_uri(ctx, req)))
        } else {
            J::obj().with("self", href(&self.self_uri(ctx, req)))
        };
        let doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", data)
            .with("links", links);
        Resp::json(200, JSONAPI_CT, &doc)
    }

    fn term_collection(&self, ctx: &Ctx, req: &Req, bundle: &str) -> Resp {
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let db = self.read();
        let filter = match ctx.param("filter") {
            Some(f) => match filter::parse_filter(f, &TermResolver) {
                Ok(n) => Some(n),
                Err((s, d)) => return self.filter_error(ctx, req, s, &d),
            },
            None => None,
        };
        let sort = match ctx.param("sort") {
            Some(s) => match parse_sort(s, &TermResolver) {
                Ok(k) => k,
                Err((s, d)) => return self.filter_error(ctx, req, s, &d),
            },
            None => Vec::new(),
        };
        let (offset, size) = match crate::jsonapi::page_params(ctx) {
            Ok(x) => x,
            Err(d) => return self.jerr(ctx, req, 400, &d),
        };
        if let Some(f) = &filter {
            if let Err((s, d)) = check_sql(f) {
                let detail = if s == 500 {
                    crate::jsonapi::sql_error_detail(f, "taxonomy_term", offset, size).unwrap_or(d)
                } else {
                    d
                };
                return self.jerr(ctx, req, s, &detail);
            }
        }
        let values =
            |t: &Term, key: &str| term_values(&db, t, key.strip_prefix("t:").unwrap_or(key));
        let mut rows: Vec<&Term> = db
            .terms
            .values()
            .filter(|t| t.vid == bundle && self.can_view_term(&db, ctx, t))
            .filter(|t| match &filter {
                None => true,
                Some(f) => eval(f, &|field| values(t, field)),
            })
            .collect();
        if !sort.is_empty() {
            let key = |t: &Term| -> Vec<Val> {
                sort.iter()
                    .map(|k| values(t, &k.field).into_iter().next().unwrap_or(Val::Null))
                    .collect()
            };
            rows.sort_by(|a, b| sort_cmp(&key(a), &key(b), &sort));
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
        let page: Vec<&Term> = rows
            .iter()
            .skip(start)
            .take(size as usize)
            .copied()
            .collect();
        let has_next = rows.len() > start + size as usize;
        let includes = match self.term_include_paths(ctx, req) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let fields = self.fieldset(ctx, &format!("taxonomy_term--{bundle}"));
        let data: Vec<J> = page
            .iter()
            .map(|t| self.render_term(&db, &ctx.base, t, fields.as_deref()))
            .collect();
        let mut doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", J::Arr(data));
        if let Some(inc) = self.term_included(&db, ctx, &page, &includes) {
            doc.push("included", inc);
        }
        doc.push(
            "links",
            self.collection_links(ctx, req, offset, size, has_next),
        );
        Resp::json(200, JSONAPI_CT, &doc)
    }

    /// Denormalises a term document (JsonApiDocumentTopLevelNormalizer + field normalizers).
    fn parse_term_document(
        &self,
        db: &Db,
        bundle: &str,
        doc: &Value,
        raw: &[u8],
    ) -> Result<TermPatch, InErr> {
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
        let resource_type = format!("taxonomy_term--{bundle}");
        let attrs = data.get("attributes").and_then(|a| a.as_object());
        crate::users::reject_relationships_as_attributes(attrs, |k| {
            TERM_RELATIONSHIPS.contains(&k)
        })?;
        let mut p = TermPatch::default();
        // Relationship items are resolved (404) before the attributes are denormalised.
        let mut rel_values: Vec<(String, Vec<i64>)> = Vec::new();
        if let Some(rels) = data.get("relationships").and_then(|r| r.as_object()) {
            for name in crate::json::key_order(raw, &["data", "relationships"]) {
                let Some(rel) = rels.get(&name) else {
                    continue;
                };
                let items = crate::users::relationship_items(rel);
                let mut ids = Vec::new();
                if let Some(first) = items.first() {
                    if first.get("id").map(|v| !non_empty(v)).unwrap_or(true) {
                        return Err(InErr::Bad("No ID specified for related resource".into()));
                    }
                    let ty = first.get("type").and_then(|t| t.as_str()).unwrap_or("");
                    if ty.is_empty() {
                        return Err(InErr::Bad("No type specified for related resource".into()));
                    }
                    if !self.resource_type_exists(db, ty) {
                        return Err(InErr::Bad(format!(
                            "Invalid type specified for related resource: '{ty}'"
                        )));
                    }
                    for it in &items {
                        let uuid = it.get("id").and_then(|v| v.as_str()).unwrap_or("");
                        let it_ty = it.get("type").and_then(|t| t.as_str()).unwrap_or(ty);
                        if uuid == "virtual" {
                            ids.push(0);
                            continue;
                        }
                        let found = if ty.starts_with("taxonomy_term--") {
                            db.term_by_uuid(uuid).map(|t| t.tid)
                        } else {
                            None
                        };
                        match found {
                            Some(tid) => ids.push(tid),
                            None => {
                                return Err(InErr::NotFound(format!(
                                    "The resource identified by `{it_ty}:{uuid}` (given as a relationship item) could not be found."
                                )))
                            }
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
                match k.as_str() {
                    "name" => {
                        props_check("name", "string", v, &["value"])?;
                        p.name = Some(scalar_string(&unwrap_value(v)).filter(|s| !s.is_empty()));
                    }
                    "langcode" => {
                        props_check("langcode", "language", v, &["value"])?;
                        p.langcode =
                            Some(scalar_string(&unwrap_value(v)).filter(|s| !s.is_empty()));
                    }
                    "description" => {
                        props_check("description", "text_long", v, &["value", "format"])?;
                        p.description = Some(match v {
                            Value::Object(o) => {
                                let value = o.get("value").and_then(scalar_string);
                                let format = o
                                    .get("format")
                                    .and_then(scalar_string)
                                    .filter(|s| !s.is_empty());
                                value.filter(|s| !s.is_empty()).map(|x| (x, format))
                            }
                            other => scalar_string(other)
                                .filter(|s| !s.is_empty())
                                .map(|x| (x, None)),
                        });
                    }
                    "weight" => {
                        props_check("weight", "integer", v, &["value"])?;
                        p.weight = Some(unwrap_value(v));
                    }
                    "status" => {
                        props_check("status", "boolean", v, &["value"])?;
                        p.status = Some(unwrap_value(v));
                    }
                    "drupal_internal__tid" => p.tid = Some(unwrap_value(v)),
                    k if TERM_IGNORED_INPUT.contains(&k) => continue,
                    _ => {
                        return Err(InErr::Unprocessable(format!(
                            "The attribute {k} does not exist on the {resource_type} resource type."
                        )))
                    }
                }
                let internal = if k == "drupal_internal__tid" {
                    "tid"
                } else {
                    &k
                };
                if !p.fields.iter().any(|f| f == internal) {
                    p.fields.push(internal.to_string());
                }
            }
        }
        if let Some(id) = data.get("id").and_then(|v| v.as_str()) {
            p.uuid = Some(id.to_string());
        }
        for (name, ids) in rel_values {
            match name.as_str() {
                "parent" => {
                    p.parent = Some(if ids.is_empty() { vec![0] } else { ids });
                    p.fields.push("parent".into());
                }
                "vid" | "revision_user" => {}
                _ => {
                    return Err(InErr::Unprocessable(format!(
                        "The attribute {name} does not exist on the {resource_type} resource type."
                    )))
                }
            }
        }
        Ok(p)
    }

    fn apply_term_patch(t: &mut Term, p: &TermPatch) {
        if let Some(n) = &p.name {
            t.name = n.clone().unwrap_or_default();
        }
        if let Some(d) = &p.description {
            t.description = d.clone();
        }
        if let Some(Some(l)) = &p.langcode {
            t.langcode = l.clone();
        }
        if let Some(w) = &p.weight {
            match w {
                Value::Null => t.weight = 0,
                v if int_like(v) => {
                    t.weight = match v {
                        Value::Number(n) => n.as_i64().unwrap_or(0),
                        Value::Bool(b) => *b as i64,
                        Value::String(s) => s.trim().parse().unwrap_or(0),
                        _ => 0,
                    }
                }
                _ => {}
            }
        }
        if let Some(s) = p.status.as_ref().and_then(bool_of) {
            t.status = s;
        }
        if let Some(par) = &p.parent {
            t.parent = par.clone();
        }
    }

    fn validate_term(db: &Db, t: &Term, p: &TermPatch, only: Option<&[String]>) -> Vec<Violation> {
        let check = |f: &str| only.map(|o| o.iter().any(|x| x == f)).unwrap_or(true);
        let mut v = Vec::new();
        if check("name") {
            if t.name.is_empty() {
                v.push(Violation::new(
                    "name",
                    "name",
                    "This value should not be null.",
                ));
            } else if t.name.chars().count() > 255 {
                v.push(Violation::new(
                    "name",
                    "name.0.value",
                    "Name: may not be longer than 255 characters.",
                ));
            }
        }
        if check("weight") {
            if let Some(w) = &p.weight {
                if !int_like(w) {
                    v.push(Violation::new(
                        "weight",
                        "weight.0.value",
                        "This value should be of the correct primitive type.",
                    ));
                }
            }
        }
        if check("status") {
            check_boolean(&mut v, "status", p.status.as_ref());
        }
        if check("parent") {
            for (d, tid) in t.parent.iter().enumerate() {
                if *tid != 0 && !db.terms.contains_key(tid) {
                    v.push(Violation::multi(
                        "parent",
                        &format!("parent.{d}.target_id"),
                        format!("The referenced entity (taxonomy_term: {tid}) does not exist."),
                    ));
                }
            }
        }
        v
    }

    fn create_term(&self, ctx: &mut Ctx, req: &Req, bundle: &str) -> Resp {
        if let Err(reason) = self.term_write_access(ctx, bundle, "create") {
            return self.jforbidden(ctx, req, &reason, None);
        }
        if let Some(reason) = self.csrf_failure(ctx, req) {
            return self.jerr(ctx, req, 403, reason);
        }
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let doc = match self.decode_body(ctx, req, None) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let mut db = self.write();
        let p = match self.parse_term_document(&db, bundle, &doc, &req.body) {
            Ok(p) => p,
            Err(e) => {
                drop(db);
                return self.in_err(ctx, req, e);
            }
        };
        if p.tid.is_some() {
            drop(db);
            return self.jerr_ptr(
                ctx,
                req,
                403,
                "The current user is not allowed to POST the selected field (drupal_internal__tid). The entity ID cannot be changed.",
                "/data/attributes/drupal_internal__tid",
            );
        }
        let t = ctx.now;
        let mut term = Term {
            tid: db.next_tid,
            uuid: p.uuid.clone().unwrap_or_else(crate::util::new_uuid),
            vid: bundle.to_string(),
            revision_id: db.next_revision,
            name: String::new(),
            description: None,
            weight: 0,
            status: true,
            langcode: "en".into(),
            created: t,
            changed: t,
            parent: vec![0],
        };
        Self::apply_term_patch(&mut term, &p);
        let violations = Self::validate_term(&db, &term, &p, None);
        if !violations.is_empty() {
            drop(db);
            return self.violations_resp(&violations);
        }
        if db.term_by_uuid(&term.uuid).is_some() {
            drop(db);
            return self.jerr(ctx, req, 409, "Conflict: Entity already exists.");
        }
        let location = format!(
            "{}/jsonapi/taxonomy_term/{}/{}?resourceVersion=id%3A{}",
            ctx.base, term.vid, term.uuid, term.revision_id
        );
        let data = self.render_term(&db, &ctx.base, &term, None);
        db.insert_term(term);
        drop(db);
        let doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", data)
            .with(
                "links",
                J::obj().with("self", href(&self.self_uri(ctx, req))),
            );
        Resp::json(201, JSONAPI_CT, &doc).with_header("Location", &location)
    }

    fn patch_term(&self, ctx: &mut Ctx, req: &Req, bundle: &str, term: Term) -> Resp {
        if let Err(reason) = self.term_write_access(ctx, &term.vid, "update") {
            return self.jforbidden(ctx, req, &reason, None);
        }
        if let Some(reason) = self.csrf_failure(ctx, req) {
            return self.jerr(ctx, req, 403, reason);
        }
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let doc = match self.decode_body(ctx, req, None) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let mut db = self.write();
        let p = match self.parse_term_document(&db, bundle, &doc, &req.body) {
            Ok(p) => p,
            Err(e) => {
                drop(db);
                return self.in_err(ctx, req, e);
            }
        };
        let Some(orig) = db.terms.get(&term.tid).cloned() else {
            drop(db);
            return self.term_not_converted(ctx, req, bundle, ".patch");
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
        if let Some(tid) = &p.tid {
            if tid.as_i64() != Some(orig.tid) {
                drop(db);
                return self.jerr_ptr(
                    ctx,
                    req,
                    403,
                    "The current user is not allowed to PATCH the selected field (tid). The entity ID cannot be changed.",
                    "/data/attributes/tid",
                );
            }
        }
        let mut t = orig.clone();
        Self::apply_term_patch(&mut t, &p);
        let violations = Self::validate_term(&db, &t, &p, Some(&p.fields));
        if !violations.is_empty() {
            drop(db);
            return self.violations_resp(&violations);
        }
        if t.values_key() != orig.values_key() {
            t.changed = ctx.now;
        }
        let data = self.render_term(&db, &ctx.base, &t, None);
        db.insert_term(t);
        drop(db);
        let doc = J::obj()
            .with("jsonapi", jsonapi_member())
            .with("data", data)
            .with(
                "links",
                J::obj().with("self", href(&self.self_uri(ctx, req))),
            );
        Resp::json(200, JSONAPI_CT, &doc)
    }

    fn delete_term(&self, ctx: &mut Ctx, req: &Req, term: Term) -> Resp {
        if let Err(reason) = self.term_write_access(ctx, &term.vid, "delete") {
            return self.jforbidden(ctx, req, &reason, None);
        }
        if let Some(reason) = self.csrf_failure(ctx, req) {
            return self.jerr(ctx, req, 403, reason);
        }
        if let Some(r) = self.validate_query_params(ctx, req) {
            return r;
        }
        let mut db = self.write();
        // Term::postDelete() also deletes children that have no other parent. References from
        // users are left dangling.
        let mut queue = vec![term.tid];
        while let Some(tid) = queue.pop() {
            if db.remove_term(tid).is_none() {
                continue;
            }
            let orphans: Vec<i64> = db
                .terms
                .values()
                .filter(|c| {
                    c.parent.contains(&tid)
                        && c.parent
                            .iter()
                            .all(|p| *p == tid || (*p != 0 && !db.terms.contains_key(p)))
                })
                .map(|c| c.tid)
                .collect();
            queue.extend(orphans);
        }
        Resp::empty(204)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processed_plain_text() {
        assert_eq!(
            processed_text("Sales team", Some("plain_text")),
            "<p>Sales team</p>\n"
        );
        assert_eq!(processed_text("a <b>", None), "<p>a &lt;b&gt;</p>\n");
        assert_eq!(
            processed_text("a\nb\n\nc", None),
            "<p>a<br />\nb</p>\n<p>c</p>\n"
        );
    }

    #[test]
    fn term_paths() {
        assert_eq!(
            resolve_term_path(&["name"], "name").unwrap(),
            ("t:name".to_string(), Mode::Ci)
        );
        assert_eq!(resolve_term_path(&["vid"], "vid").unwrap_err().0, 400);
        assert_eq!(resolve_term_path(&["nope"], "nope").unwrap_err().0, 400);
        assert_eq!(
            resolve_term_path(&["parent", "id"], "parent.id").unwrap().0,
            "t:parent.id"
        );
    }
}
