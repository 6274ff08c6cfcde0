//! SCIM filters on Users, translated into Drupal JSON:API filters (condition groups with
//! `memberOf`). Every comparison becomes either an exact Drupal condition or, where Drupal's
//! answer depends on the database's collation, a condition that returns a superset; then the
//! gateway evaluates the SCIM filter itself on what Drupal returns. A filter that cannot be
//! translated faithfully is an `invalidFilter` error naming the part, never a silently
//! empty list (IdPs read "no such user" and create duplicates).

use crate::drupal::jsonapi::is_uuid;
use crate::scim::dates::parse_rfc3339;
use crate::scim::error::ScimError;
use crate::scim::filter::{parse_filter, AttrPath, CompValue, CompareOp, Filter};
use crate::scim::mapping::{FieldMap, Kind, Target, UserMapping};
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};

/// The Drupal side of a user query.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UserQuery {
    /// `filter[…]` query pairs for Drupal.
    pub conditions: Vec<(String, String)>,
    /// The parsed SCIM filter, when Drupal's answer is only a superset and the gateway must
    /// evaluate the filter on each row.
    pub post_filter: Option<Filter>,
    /// The filter can match no user at all.
    pub matches_nothing: bool,
}

impl UserQuery {
    pub fn needs_post_filter(&self) -> bool {
        self.post_filter.is_some()
    }
}

/// What a leaf compares in Drupal.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Subject<'m> {
    Field(&'m FieldMap),
    Id,
    Created,
    Changed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
    Pr,
    NotCo,
    NotSw,
    NotEw,
    NotPr,
}

impl Op {
    fn negate(self) -> Op {
        match self {
            Op::Eq => Op::Ne,
            Op::Ne => Op::Eq,
            Op::Co => Op::NotCo,
            Op::Sw => Op::NotSw,
            Op::Ew => Op::NotEw,
            Op::Gt => Op::Le,
            Op::Ge => Op::Lt,
            Op::Lt => Op::Ge,
            Op::Le => Op::Gt,
            Op::Pr => Op::NotPr,
            Op::NotCo => Op::Co,
            Op::NotSw => Op::Sw,
            Op::NotEw => Op::Ew,
            Op::NotPr => Op::Pr,
        }
    }

    fn from_compare(op: CompareOp) -> Op {
        match op {
            CompareOp::Eq => Op::Eq,
            CompareOp::Ne => Op::Ne,
            CompareOp::Co => Op::Co,
            CompareOp::Sw => Op::Sw,
            CompareOp::Ew => Op::Ew,
            CompareOp::Gt => Op::Gt,
            CompareOp::Ge => Op::Ge,
            CompareOp::Lt => Op::Lt,
            CompareOp::Le => Op::Le,
        }
    }
}

/// A filter lowered onto Drupal subjects, before negations are pushed down.
#[derive(Debug, Clone)]
enum Lowered<'m> {
    Const(bool),
    Leaf {
        subject: Subject<'m>,
        op: Op,
        value: CompValue,
        text: String,
    },
    And(Vec<Lowered<'m>>),
    Or(Vec<Lowered<'m>>),
    Not(Box<Lowered<'m>>),
}

/// The Drupal filter expression.
#[derive(Debug, Clone, PartialEq)]
enum Drupal {
    True,
    False,
    Cond {
        path: String,
        operator: &'static str,
        value: Option<String>,
    },
    And(Vec<Drupal>),
    Or(Vec<Drupal>),
}

/// Translates the `filter` query parameter of a User query.
pub fn translate(filter: &str, mapping: &UserMapping) -> Result<UserQuery, ScimError> {
    translate_in(filter, mapping, USER_SCHEMA)
}

/// Translates a filter whose resource's core schema is `core` (paths may be qualified with it).
pub fn translate_in(
    filter: &str,
    mapping: &UserMapping,
    core: &str,
) -> Result<UserQuery, ScimError> {
    let mut parsed = parse_filter(filter)
        .map_err(|e| ScimError::invalid_filter(format!("The filter is not valid: {e}.")))?;
    strip_core_schema(&mut parsed, core);
    let lowered = lower(&parsed, mapping, None)?;
    let mut exact = true;
    let drupal = fold(to_drupal(&lowered, false, &mut exact)?);
    let mut query = UserQuery::default();
    match drupal {
        Drupal::False => query.matches_nothing = true,
        Drupal::True => {}
        other => emit(&other, None, &mut query.conditions, &mut 0),
    }
    if !exact {
        query.post_filter = Some(parsed);
    }
    Ok(query)
}

/// `urn:…:Group:displayName` is `displayName` on a Group.
fn strip_core_schema(f: &mut Filter, core: &str) {
    let strip = |p: &mut AttrPath| {
        if p.schema
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(core))
        {
            p.schema = None;
        }
    };
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => {
            strip_core_schema(a, core);
            strip_core_schema(b, core);
        }
        Filter::Not(a) => strip_core_schema(a, core),
        Filter::Present(p) | Filter::Compare { path: p, .. } => strip(p),
        Filter::ValuePath { attr, .. } => strip(attr),
    }
}

fn describe(path: &AttrPath) -> String {
    match &path.sub_attr {
        Some(sub) => format!("{}.{sub}", path.attr),
        None => path.attr.clone(),
    }
}

fn not_stored(what: &str) -> ScimError {
    ScimError::invalid_filter(format!(
        "The filter names `{what}`, which this server does not store; see /Schemas."
    ))
}

/// Lowers a SCIM filter. `element` is the typed mapping a value filter is evaluated
/// against (`emails[…]` for the mapping of type "work").
fn lower<'m>(
    f: &Filter,
    mapping: &'m UserMapping,
    element: Option<&'m FieldMap>,
) -> Result<Lowered<'m>, ScimError> {
    match f {
        Filter::And(a, b) => Ok(Lowered::And(vec![
            lower(a, mapping, element)?,
            lower(b, mapping, element)?,
        ])),
        Filter::Or(a, b) => Ok(Lowered::Or(vec![
            lower(a, mapping, element)?,
            lower(b, mapping, element)?,
        ])),
        Filter::Not(a) => Ok(Lowered::Not(Box::new(lower(a, mapping, element)?))),
        Filter::Present(path) => leaf(path, Op::Pr, &CompValue::Null, mapping, element),
        Filter::Compare { path, op, value } => {
            let op = match (op, value) {
                (CompareOp::Eq, CompValue::Null) => Op::NotPr,
                (CompareOp::Ne, CompValue::Null) => Op::Pr,
                (op, _) => Op::from_compare(*op),
            };
            leaf(path, op, value, mapping, element)
        }
        Filter::ValuePath { attr, filter } => {
            if element.is_some() {
                return Err(ScimError::invalid_filter("Value filters cannot be nested."));
            }
            check_schema(attr)?;
            let typed = mapping.typed(&attr.attr);
            if !typed.is_empty() {
                // One Drupal field per mapped type: the filter matches if any element does, and
                // an element exists only where its field has a value.
                let mut parts = Vec::with_capacity(typed.len());
                for m in &typed {
                    let exists = Lowered::Leaf {
                        subject: Subject::Field(m),
                        op: Op::Pr,
                        value: CompValue::Null,
                        text: attr.attr.clone(),
                    };
                    parts.push(Lowered::And(vec![exists, lower(filter, mapping, Some(m))?]));
                }
                return Ok(Lowered::Or(parts));
            }
            if mapping.is_complex(&attr.attr) {
                return lower(&prefix_paths(filter, &attr.attr), mapping, None);
            }
            Err(not_stored(&attr.attr))
        }
    }
}

/// `name[givenName eq "x"]` is `name.givenName eq "x"`.
fn prefix_paths(f: &Filter, attr: &str) -> Filter {
    let p = |path: &AttrPath| AttrPath {
        schema: None,
        attr: attr.to_string(),
        sub_attr: Some(path.attr.clone()),
    };
    match f {
        Filter::And(a, b) => Filter::And(
            Box::new(prefix_paths(a, attr)),
            Box::new(prefix_paths(b, attr)),
        ),
        Filter::Or(a, b) => Filter::Or(
            Box::new(prefix_paths(a, attr)),
            Box::new(prefix_paths(b, attr)),
        ),
        Filter::Not(a) => Filter::Not(Box::new(prefix_paths(a, attr))),
        Filter::Present(path) => Filter::Present(p(path)),
        Filter::Compare { path, op, value } => Filter::Compare {
            path: p(path),
            op: *op,
            value: value.clone(),
        },
        Filter::ValuePath { .. } => f.clone(),
    }
}

fn check_schema(path: &AttrPath) -> Result<(), ScimError> {
    match &path.schema {
        Some(s)
            if !s.eq_ignore_ascii_case(USER_SCHEMA)
                && !s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) =>
        {
            Err(ScimError::invalid_filter(format!(
                "The filter names schema `{s}`, which this server does not have."
            )))
        }
        _ => Ok(()),
    }
}

fn leaf<'m>(
    path: &AttrPath,
    op: Op,
    value: &CompValue,
    mapping: &'m UserMapping,
    element: Option<&'m FieldMap>,
) -> Result<Lowered<'m>, ScimError> {
    let text = describe(path);
    let make = |subject| {
        Ok(Lowered::Leaf {
            subject,
            op,
            value: value.clone(),
            text: text.clone(),
        })
    };
    if let Some(el) = element {
        // Inside a value filter: sub-attributes of one element.
        let Target::Typed {
            type_value, sub, ..
        } = &el.target
        else {
            return Err(ScimError::invalid_filter(
                "Value filters apply to multi-valued attributes.",
            ));
        };
        if path.attr.eq_ignore_ascii_case("type") {
            return constant_on_type(type_value, op, value, &text).map(Lowered::Const);
        }
        if path.attr.eq_ignore_ascii_case(sub) {
            return make(Subject::Field(el));
        }
        // A sub-attribute this type does not store: no value, so only "absent" matches.
        return Ok(Lowered::Const(matches!(
            op,
            Op::NotPr | Op::Ne | Op::NotCo | Op::NotSw | Op::NotEw
        )));
    }
    check_schema(path)?;
    if path.schema.is_none()
        || path
            .schema
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
    {
        if path.attr.eq_ignore_ascii_case("id") && path.sub_attr.is_none() {
            return make(Subject::Id);
        }
        if path.attr.eq_ignore_ascii_case("meta") {
            return match path.sub_attr.as_deref() {
                Some(s) if s.eq_ignore_ascii_case("created") => make(Subject::Created),
                Some(s) if s.eq_ignore_ascii_case("lastModified") => make(Subject::Changed),
                _ => Err(not_stored(&text)),
            };
        }
        let typed = mapping.typed(&path.attr);
        if !typed.is_empty() {
            // `emails` and `emails.value`: any element's value.
            let sub_ok = |f: &FieldMap| match (&f.target, path.sub_attr.as_deref()) {
                (Target::Typed { sub, .. }, None) => sub == "value",
                (Target::Typed { sub, .. }, Some(s)) => sub.eq_ignore_ascii_case(s),
                _ => false,
            };
            let parts: Vec<Lowered> = typed
                .iter()
                .filter(|f| sub_ok(f))
                .map(|f| Lowered::Leaf {
                    subject: Subject::Field(f),
                    op,
                    value: value.clone(),
                    text: text.clone(),
                })
                .collect();
            if parts.is_empty() {
                return Err(not_stored(&text));
            }
            return Ok(Lowered::Or(parts));
        }
    }
    match mapping.lookup(path) {
        Some(f) => make(Subject::Field(f)),
        None => Err(not_stored(&text)),
    }
}

fn constant_on_type(
    type_value: &str,
    op: Op,
    value: &CompValue,
    text: &str,
) -> Result<bool, ScimError> {
    let CompValue::Str(v) = value else {
        return match op {
            Op::Pr => Ok(true),
            Op::NotPr => Ok(false),
            _ => Err(ScimError::invalid_filter(format!(
                "`{text}` must be compared with a string."
            ))),
        };
    };
    let (t, v) = (type_value.to_lowercase(), v.to_lowercase());
    Ok(match op {
        Op::Eq => t == v,
        Op::Ne => t != v,
        Op::Co => t.contains(&v),
        Op::NotCo => !t.contains(&v),
        Op::Sw => t.starts_with(&v),
        Op::NotSw => !t.starts_with(&v),
        Op::Ew => t.ends_with(&v),
        Op::NotEw => !t.ends_with(&v),
        Op::Pr => true,
        Op::NotPr => false,
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            return Err(ScimError::invalid_filter(format!(
                "`{text}` cannot be ordered."
            )))
        }
    })
}

fn cond(path: &str, operator: &'static str, value: Option<String>) -> Drupal {
    Drupal::Cond {
        path: path.to_string(),
        operator,
        value,
    }
}

/// Translates with negations pushed to the leaves. `exact` turns false when a leaf only
/// gives a superset.
fn to_drupal(l: &Lowered, negated: bool, exact: &mut bool) -> Result<Drupal, ScimError> {
    match l {
        Lowered::Const(b) => Ok(if *b != negated {
            Drupal::True
        } else {
            Drupal::False
        }),
        Lowered::Not(inner) => to_drupal(inner, !negated, exact),
        Lowered::And(parts) | Lowered::Or(parts) => {
            let translated = parts
                .iter()
                .map(|p| to_drupal(p, negated, exact))
                .collect::<Result<Vec<_>, _>>()?;
            let is_and = matches!(l, Lowered::And(_)) != negated;
            Ok(if is_and {
                Drupal::And(translated)
            } else {
                Drupal::Or(translated)
            })
        }
        Lowered::Leaf {
            subject,
            op,
            value,
            text,
        } => {
            let op = if negated { op.negate() } else { *op };
            leaf_to_drupal(*subject, op, value, text, exact)
        }
    }
}

fn drupal_operator(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Co => "CONTAINS",
        Op::Sw => "STARTS_WITH",
        Op::Ew => "ENDS_WITH",
        Op::Pr => "IS NOT NULL",
        Op::NotPr => "IS NULL",
        Op::NotCo | Op::NotSw | Op::NotEw => "",
    }
}

/// `<>` never matches a missing value in SQL, while SCIM's `ne` does.
fn not_equal(path: &str, value: String) -> Drupal {
    Drupal::Or(vec![
        cond(path, "<>", Some(value)),
        cond(path, "IS NULL", None),
    ])
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Co | Op::NotCo => "co",
        Op::Sw | Op::NotSw => "sw",
        Op::Ew | Op::NotEw => "ew",
        Op::Gt => "gt",
        Op::Ge => "ge",
        Op::Lt => "lt",
        Op::Le => "le",
        Op::Pr | Op::NotPr => "pr",
    }
}

fn leaf_to_drupal(
    subject: Subject,
    op: Op,
    value: &CompValue,
    text: &str,
    exact: &mut bool,
) -> Result<Drupal, ScimError> {
    let unsupported = |why: &str| {
        ScimError::invalid_filter(format!(
            "`{text} {}` cannot be translated: {why}.",
            op_text(op)
        ))
    };
    match subject {
        Subject::Id => match (op, value) {
            (Op::Pr, _) => Ok(Drupal::True),
            (Op::NotPr, _) => Ok(Drupal::False),
            (Op::Eq, CompValue::Str(v)) if is_uuid(v) => Ok(cond("id", "=", Some(v.clone()))),
            (Op::Eq, CompValue::Str(_)) => Ok(Drupal::False),
            (Op::Ne, CompValue::Str(v)) if is_uuid(v) => Ok(cond("id", "<>", Some(v.clone()))),
            (Op::Ne, CompValue::Str(_)) => Ok(Drupal::True),
            _ => Err(unsupported("`id` supports eq, ne and pr with a string")),
        },
        Subject::Created | Subject::Changed => {
            let path = if subject == Subject::Created {
                "created"
            } else {
                "changed"
            };
            match (op, value) {
                (Op::Pr, _) => Ok(Drupal::True),
                (Op::NotPr, _) => Ok(Drupal::False),
                (Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le, CompValue::Str(v)) => {
                    let t = parse_rfc3339(v)
                        .ok_or_else(|| unsupported("the value must be an RFC 3339 date-time"))?;
                    if op == Op::Ne {
                        return Ok(cond(path, "<>", Some(t.to_string())));
                    }
                    Ok(cond(path, drupal_operator(op), Some(t.to_string())))
                }
                _ => Err(unsupported("dates support eq, ne, gt, ge, lt, le and pr")),
            }
        }
        Subject::Field(f) => field_to_drupal(f, op, value, exact, &unsupported),
    }
}

fn field_to_drupal(
    f: &FieldMap,
    op: Op,
    value: &CompValue,
    exact: &mut bool,
    unsupported: &dyn Fn(&str) -> ScimError,
) -> Result<Drupal, ScimError> {
    let path = f.field.as_str();
    match op {
        Op::Pr => return Ok(cond(path, "IS NOT NULL", None)),
        Op::NotPr => return Ok(cond(path, "IS NULL", None)),
        _ => {}
    }
    match (f.kind, value) {
        (Kind::Boolean, CompValue::Bool(b)) => {
            let v = if *b { "1" } else { "0" }.to_string();
            match op {
                Op::Eq => Ok(cond(path, "=", Some(v))),
                Op::Ne => Ok(not_equal(path, v)),
                _ => Err(unsupported("booleans support eq, ne and pr")),
            }
        }
        (Kind::Integer, CompValue::Num(n)) => {
            let n: i64 = n
                .parse()
                .map_err(|_| unsupported("the value must be an integer"))?;
            match op {
                Op::Ne => Ok(not_equal(path, n.to_string())),
                Op::Eq | Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                    Ok(cond(path, drupal_operator(op), Some(n.to_string())))
                }
                _ => Err(unsupported(
                    "integers support eq, ne, gt, ge, lt, le and pr",
                )),
            }
        }
        (Kind::String, CompValue::Str(v)) => {
            // Drupal compares text under the database's collation: LIKE folds ASCII case only
            // on SQLite, MariaDB's utf8mb4_general_ci ignores case and accents, `=` on `mail`
            // is case-sensitive outside MySQL. Lookups (`eq`) must follow SCIM on every one
            // (case-insensitive unless `caseExact`, never accent-insensitive), so Drupal is
            // asked for a superset and the gateway checks each row. `co`/`sw`/`ew`/`ne` with
            // an ASCII value stay Drupal's answer (exact on SQLite, accent-insensitive on
            // MariaDB), so that they page over any number of users.
            let folds_case_on_equal = path != "mail";
            match op {
                Op::Eq if !f.case_exact => {
                    *exact = false;
                    Ok(equal_ignoring_case(path, v))
                }
                Op::Eq => {
                    *exact = false;
                    Ok(like_superset(path, v, true, true))
                }
                Op::Ne if !f.case_exact && folds_case_on_equal && v.is_ascii() => {
                    Ok(not_equal(path, v.clone()))
                }
                Op::Ne if !f.case_exact => {
                    // `<>` keeps at least every value that differs ignoring case (`mail`'s
                    // `<>` is exact on SQLite, NOT LIKE folds ASCII case only).
                    *exact = false;
                    Ok(not_equal(path, v.clone()))
                }
                Op::Ne => {
                    // Drupal's `<>` on a text field ignores case (NOT LIKE), which would drop
                    // values that differ only in case: ask for everything, check here.
                    *exact = false;
                    Ok(Drupal::True)
                }
                Op::Co | Op::Sw | Op::Ew if !f.case_exact && v.is_ascii() => {
                    Ok(cond(path, drupal_operator(op), Some(v.clone())))
                }
                Op::Co | Op::Sw | Op::Ew => {
                    *exact = false;
                    Ok(like_superset(path, v, op == Op::Sw, op == Op::Ew))
                }
                Op::NotCo | Op::NotSw | Op::NotEw => {
                    // Drupal has no negated LIKE: ask for everything, check here.
                    *exact = false;
                    Ok(Drupal::True)
                }
                Op::Gt | Op::Ge | Op::Lt | Op::Le => Err(unsupported(
                    "text has no database-independent order in Drupal; compare with eq, co, sw or ew",
                )),
                Op::Pr | Op::NotPr => Ok(Drupal::True),
            }
        }
        (Kind::String, _) => Err(unsupported("the value must be a string")),
        (Kind::Boolean, _) => Err(unsupported("the value must be true or false")),
        (Kind::Integer, _) => Err(unsupported("the value must be an integer")),
    }
}

/// A Drupal condition that keeps at least every row whose `path` equals `v` ignoring case
/// (Unicode), on SQLite, MariaDB and PostgreSQL alike. `=` on a case-insensitive field is
/// LIKE, which SQLite folds for ASCII only; `IN` compares with the column's collation, which
/// for such fields is NOCASE_UTF8 (Unicode case) on SQLite and the table's on MySQL. `mail`
/// has no case-insensitive column anywhere, so it is matched with LIKE patterns.
fn equal_ignoring_case(path: &str, v: &str) -> Drupal {
    if path == "mail" {
        return like_superset(path, v, true, true);
    }
    if v.is_ascii() {
        return cond(path, "=", Some(v.to_string()));
    }
    Drupal::Or(vec![
        cond(path, "=", Some(v.to_string())),
        cond(path, "IN", Some(v.to_string())),
    ])
}

/// LIKE conditions (`STARTS_WITH`, `CONTAINS`, `ENDS_WITH`: case-insensitive on every
/// database, for ASCII at least) that every value containing `v` ignoring case satisfies,
/// anchored at the start and/or end. Non-ASCII characters are left out (SQLite's LIKE
/// compares them exactly), so each ASCII run of `v` is a condition of its own; a value
/// without any is everything.
fn like_superset(path: &str, v: &str, at_start: bool, at_end: bool) -> Drupal {
    let runs: Vec<&str> = v.split(|c: char| !c.is_ascii()).collect();
    let last = runs.len().saturating_sub(1);
    let mut parts = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if run.is_empty() {
            continue;
        }
        let operator = match (at_start && i == 0, at_end && i == last) {
            // The whole value is ASCII: its prefix is selective enough, and the value then
            // travels in one Drupal parameter only.
            (true, _) => "STARTS_WITH",
            (false, true) => "ENDS_WITH",
            (false, false) => "CONTAINS",
        };
        parts.push(cond(path, operator, Some(run.to_string())));
    }
    match parts.len() {
        0 => Drupal::True,
        1 => parts.pop().unwrap_or(Drupal::True),
        _ => Drupal::And(parts),
    }
}

/// The `filter[…]` pairs of a query for every account whose `path` equals its value
/// ignoring case, for any of `pairs` (a superset: the caller compares each row).
pub fn any_equal_ignoring_case(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let parts = pairs
        .iter()
        .map(|(path, v)| equal_ignoring_case(path, v))
        .collect();
    let mut out = Vec::new();
    match fold(Drupal::Or(parts)) {
        Drupal::True | Drupal::False => {}
        d => emit(&d, None, &mut out, &mut 0),
    }
    out
}

/// Removes constant parts and needless nesting.
fn fold(d: Drupal) -> Drupal {
    match d {
        Drupal::And(parts) => {
            let mut out = Vec::new();
            for p in parts.into_iter().map(fold) {
                match p {
                    Drupal::False => return Drupal::False,
                    Drupal::True => {}
                    Drupal::And(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Drupal::True,
                1 => out.pop().unwrap_or(Drupal::True),
                _ => Drupal::And(out),
            }
        }
        Drupal::Or(parts) => {
            let mut out = Vec::new();
            for p in parts.into_iter().map(fold) {
                match p {
                    Drupal::True => return Drupal::True,
                    Drupal::False => {}
                    Drupal::Or(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Drupal::False,
                1 => out.pop().unwrap_or(Drupal::False),
                _ => Drupal::Or(out),
            }
        }
        other => other,
    }
}

/// Writes Drupal's `filter[…]` parameters. Top-level conditions are ANDed by Drupal.
fn emit(d: &Drupal, parent: Option<&str>, out: &mut Vec<(String, String)>, counter: &mut usize) {
    let mut next = |prefix: &str| {
        let key = format!("scim_{prefix}{counter}");
        *counter = counter.saturating_add(1);
        key
    };
    match d {
        Drupal::True | Drupal::False => {}
        Drupal::Cond {
            path,
            operator,
            value,
        } => {
            let key = next("c");
            out.push((format!("filter[{key}][condition][path]"), path.clone()));
            out.push((
                format!("filter[{key}][condition][operator]"),
                (*operator).to_string(),
            ));
            match value {
                // Drupal takes IN's operand as a list.
                Some(v) if *operator == "IN" => {
                    out.push((format!("filter[{key}][condition][value][0]"), v.clone()))
                }
                Some(v) => out.push((format!("filter[{key}][condition][value]"), v.clone())),
                None => {}
            }
            if let Some(p) = parent {
                out.push((format!("filter[{key}][condition][memberOf]"), p.to_string()));
            }
        }
        Drupal::And(parts) if parent.is_none() => {
            for p in parts {
                emit(p, None, out, counter);
            }
        }
        Drupal::And(parts) | Drupal::Or(parts) => {
            let key = next("g");
            let conjunction = if matches!(d, Drupal::And(_)) {
                "AND"
            } else {
                "OR"
            };
            out.push((
                format!("filter[{key}][group][conjunction]"),
                conjunction.to_string(),
            ));
            if let Some(p) = parent {
                out.push((format!("filter[{key}][group][memberOf]"), p.to_string()));
            }
            for p in parts {
                emit(p, Some(&key), out, counter);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use serde_json::json;

    fn mapping() -> UserMapping {
        UserMapping::from_config(Some(&json!([
            {"scim": "externalId", "drupal": "field_external_id"},
            {"scim": "name.givenName", "drupal": "field_given_name"},
            {"scim": "phoneNumbers[type eq \"work\"].value", "drupal": "field_phone_work"},
            {"scim": "phoneNumbers[type eq \"mobile\"].value", "drupal": "field_phone_mobile"},
            {"scim": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "drupal": "field_employee_number", "type": "integer"}
        ])))
        .unwrap()
    }

    fn q(f: &str) -> UserQuery {
        translate(f, &mapping()).unwrap()
    }

    fn pairs(f: &str) -> String {
        q(f).conditions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn username_eq_is_a_superset_checked_by_the_gateway() {
        // MariaDB's `=` is accent-insensitive: Drupal's answer is a superset on every database.
        let query = q(r#"userName eq "Jane""#);
        assert!(query.needs_post_filter());
        assert_eq!(pairs(r#"userName eq "Jane""#), "filter[scim_c0][condition][path]=name&filter[scim_c0][condition][operator]==&filter[scim_c0][condition][value]=Jane");
    }

    #[test]
    fn mail_and_case_exact_attributes_are_checked_by_the_gateway() {
        for f in [
            r#"emails eq "A@B.org""#,
            r#"emails[type eq "work"].value eq "A@B.org""#,
            r#"externalId eq "AbC""#,
            r#"externalId co "b""#,
        ] {
            assert!(q(f).needs_post_filter(), "{f}");
        }
        assert!(pairs(r#"emails eq "A@B.org""#).contains("[operator]=STARTS_WITH"));
        assert!(!q(r#"emails co "b.org""#).needs_post_filter());
        assert!(q(r#"emails co "ü.org""#).needs_post_filter());
    }

    #[test]
    fn non_ascii_values_ask_for_a_superset_under_every_collation() {
        // SQLite's LIKE folds ASCII only: `IN` uses the column's NOCASE_UTF8 collation.
        let p = pairs(r#"userName eq "JOSÉ.x""#);
        assert!(
            p.contains("[group][conjunction]=OR")
                && p.contains("[operator]=IN&filter[scim_c2][condition][value][0]=JOSÉ.x"),
            "{p}"
        );
        // `mail` has no case-insensitive column: its ASCII runs, with LIKE.
        let p = pairs(r#"emails eq "jürgen.müller@firma.de""#);
        assert!(
            p.contains("[operator]=STARTS_WITH&filter[scim_c0][condition][value]=j&"),
            "{p}"
        );
        assert!(
            p.contains("[operator]=CONTAINS&filter[scim_c1][condition][value]=rgen.m&"),
            "{p}"
        );
        assert!(
            p.contains("[operator]=ENDS_WITH&filter[scim_c2][condition][value]=ller@firma.de"),
            "{p}"
        );
        // NOT LIKE keeps `José` for `ne "JOSÉ"` on SQLite: a superset, checked here.
        assert!(!q(r#"userName ne "jose""#).needs_post_filter());
        assert!(q(r#"userName ne "JOSÉ""#).needs_post_filter());
    }

    #[test]
    fn boolean_logic_becomes_condition_groups() {
        let p = pairs(r#"userName eq "a" or (active eq true and name.givenName sw "J")"#);
        assert_eq!(
            p,
            "filter[scim_g0][group][conjunction]=OR&filter[scim_c1][condition][path]=name&filter[scim_c1][condition][operator]==&filter[scim_c1][condition][value]=a&filter[scim_c1][condition][memberOf]=scim_g0&\
filter[scim_g2][group][conjunction]=AND&filter[scim_g2][group][memberOf]=scim_g0&filter[scim_c3][condition][path]=status&filter[scim_c3][condition][operator]==&filter[scim_c3][condition][value]=1&filter[scim_c3][condition][memberOf]=scim_g2&\
filter[scim_c4][condition][path]=field_given_name&filter[scim_c4][condition][operator]=STARTS_WITH&filter[scim_c4][condition][value]=J&filter[scim_c4][condition][memberOf]=scim_g2"
        );
        // `not sw` has no Drupal form: that part asks for everything, the gateway decides.
        let q = q(r#"userName eq "a" or (active eq true and not (name.givenName sw "J"))"#);
        assert!(q.needs_post_filter());
        assert_eq!(q.conditions.len(), 9);
    }

    #[test]
    fn negation_is_pushed_down() {
        assert_eq!(
            pairs(r#"not (active eq true or employeeNumber gt 5)"#.replace("employeeNumber", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber").as_str()),
            "filter[scim_g0][group][conjunction]=OR&filter[scim_c1][condition][path]=status&filter[scim_c1][condition][operator]=<>&filter[scim_c1][condition][value]=1&filter[scim_c1][condition][memberOf]=scim_g0&filter[scim_c2][condition][path]=status&filter[scim_c2][condition][operator]=IS NULL&filter[scim_c2][condition][memberOf]=scim_g0&filter[scim_c3][condition][path]=field_employee_number&filter[scim_c3][condition][operator]=<=&filter[scim_c3][condition][value]=5"
        );
    }

    #[test]
    fn value_filters_expand_over_mapped_types() {
        assert!(
            pairs(r#"phoneNumbers[type eq "mobile" and value eq "555"]"#)
                .starts_with("filter[scim_c0][condition][path]=field_phone_mobile")
        );
        assert!(q(r#"phoneNumbers[type eq "fax"]"#).matches_nothing);
        assert!(q(r#"emails[type eq "home"].value eq "x""#).matches_nothing);
        let p = pairs(r#"phoneNumbers eq "555""#);
        assert!(
            p.contains("[group][conjunction]=OR")
                && p.contains("field_phone_work")
                && p.contains("field_phone_mobile")
        );
        assert!(pairs(r#"name[givenName eq "J"]"#).contains("field_given_name"));
    }

    #[test]
    fn ids_and_dates() {
        assert!(q(r#"id eq "nope""#).matches_nothing);
        assert!(pairs(r#"id eq "7724f730-7aca-4819-aaee-90673a0141a4""#).contains("[path]=id"));
        assert!(pairs(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#).ends_with("[path]=changed&filter[scim_c0][condition][operator]=>&filter[scim_c0][condition][value]=1305261754"));
    }

    #[test]
    fn untranslatable_filters_are_invalid_filter_errors() {
        for f in [
            r#"title eq "x""#,
            r#"userName gt "a""#,
            r#"userName eq 5"#,
            r#"active eq "yes""#,
            r#"active co true"#,
            r#"meta.created gt "yesterday""#,
            r#"urn:example:x:userName eq "a""#,
            r#"userName eq"#,
            r#"x[y eq 1]"#,
            r#"id co "a""#,
        ] {
            let e = translate(f, &mapping()).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidFilter)),
                "{f}"
            );
        }
    }
}
