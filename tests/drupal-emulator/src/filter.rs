//! JSON:API `filter` and `sort` parameters: parsing as `Drupal\jsonapi\Query\Filter` does, and
//! evaluation with SQLite-on-Drupal semantics (LIKE folds ASCII only, NOCASE_UTF8 columns, integer
//! columns compared with text).

use crate::query::Q;
use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Str(String),
}

/// How a column compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Integer column.
    Num,
    /// `case_sensitive: FALSE` string (name): `=` is LIKE, IN/ranges use NOCASE_UTF8.
    Ci,
    /// Case-sensitive column (mail on SQLite, init, langcodes, role ids).
    Cs,
}

#[derive(Clone, Debug)]
pub enum FValue {
    None,
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct Cond {
    pub field: String,
    pub mode: Mode,
    pub op: String,
    pub value: FValue,
}

#[derive(Clone, Debug)]
pub enum Node {
    Group { or: bool, members: Vec<Node> },
    Cond(Cond),
}

/// An error: (HTTP status, detail).
pub type FErr = (u16, String);

/// Resolves a public path to (field key, mode), or an error (400/403).
pub trait Resolver {
    fn resolve(&self, path: &str) -> Result<(String, Mode), FErr>;
}

pub const OPERATORS: [&str; 15] = [
    "=",
    "<>",
    ">",
    ">=",
    "<",
    "<=",
    "STARTS_WITH",
    "CONTAINS",
    "ENDS_WITH",
    "IN",
    "NOT IN",
    "BETWEEN",
    "NOT BETWEEN",
    "IS NULL",
    "IS NOT NULL",
];

struct Item {
    id: String,
    member_of: String,
    group_conj: Option<Option<String>>,
    cond: Option<CondRaw>,
}

struct CondRaw {
    path: Option<String>,
    op: Option<String>,
    value: Option<FValue>,
    resolved: Option<(String, Mode)>,
}

fn qvalue(q: &Q) -> FValue {
    match q {
        Q::Str(s) => FValue::One(s.clone()),
        Q::Map(m) => FValue::Many(
            m.iter()
                .filter_map(|(_, v)| v.as_str().map(|s| s.to_string()))
                .collect(),
        ),
    }
}

/// Parses `filter` (already checked to be present).
pub fn parse_filter(param: &Q, resolver: &dyn Resolver) -> Result<Node, FErr> {
    let Q::Map(entries) = param else {
        return Err((
            400,
            "Unexpected value for parameter \"filter\": expecting \"array\", got \"string\"."
                .to_string(),
        ));
    };
    let mut items: Vec<Item> = Vec::new();
    for (key, raw) in entries {
        if key == "@root" {
            return Err((400, "'@root' is a reserved filter id.".to_string()));
        }
        // Extreme shorthand: filter[name]=value.
        let (value_key, path_key, op_key, cond, group) = match raw {
            Q::Str(s) => (Some(FValue::One(s.clone())), None, None, None, None),
            Q::Map(_) => (
                raw.get("value").map(qvalue),
                raw.get("path")
                    .and_then(|p| p.as_str().map(|s| s.to_string())),
                raw.get("operator")
                    .and_then(|p| p.as_str().map(|s| s.to_string())),
                raw.get("condition"),
                raw.get("group"),
            ),
        };
        let member_of = cond
            .and_then(|c| c.get("memberOf"))
            .and_then(|m| m.as_str())
            .or_else(|| {
                group
                    .and_then(|g| g.get("memberOf"))
                    .and_then(|m| m.as_str())
            })
            .or_else(|| raw.get("memberOf").and_then(|m| m.as_str()))
            .unwrap_or("@root")
            .to_string();
        let mut item = Item {
            id: key.clone(),
            member_of,
            group_conj: group.map(|g| {
                g.get("conjunction")
                    .and_then(|c| c.as_str())
                    .map(|s| s.to_string())
            }),
            cond: None,
        };
        if let Some(v) = value_key {
            // Shorthand: the item itself is the condition; the path defaults to the key.
            item.cond = Some(CondRaw {
                path: Some(path_key.unwrap_or_else(|| key.clone())),
                op: op_key,
                value: Some(v),
                resolved: None,
            });
        } else if let Some(c) = cond {
            item.cond = Some(CondRaw {
                path: c
                    .get("path")
                    .and_then(|p| p.as_str().map(|s| s.to_string())),
                op: c
                    .get("operator")
                    .and_then(|p| p.as_str().map(|s| s.to_string())),
                value: c.get("value").map(qvalue),
                resolved: None,
            });
        } else if item.group_conj.is_none() {
            // expandItem() always sets condition.operator, so a bare item becomes an invalid
            // condition.
            item.cond = Some(CondRaw {
                path: None,
                op: None,
                value: None,
                resolved: None,
            });
        }
        items.push(item);
    }
    // Resolve every condition path first (unknown field 400, access 403), in item order.
    for item in items.iter_mut() {
        if item.group_conj.is_some() {
            continue;
        }
        if let Some(c) = item.cond.as_mut() {
            if let Some(p) = &c.path {
                c.resolved = Some(resolver.resolve(p)?);
            }
        }
    }
    build(&items, "@root", Some("AND".to_string()))
}

fn build(items: &[Item], id: &str, conj: Option<String>) -> Result<Node, FErr> {
    let mut members = Vec::new();
    for item in items.iter().filter(|i| i.member_of == id) {
        if let Some(c) = &item.group_conj {
            members.push(build(items, &item.id, c.clone())?);
        } else if let Some(c) = &item.cond {
            members.push(Node::Cond(make_cond(c)?));
        }
    }
    let or = match conj.as_deref() {
        Some("AND") => false,
        Some("OR") => true,
        _ => return Err((500, "Allowed conjunctions: AND, OR.".to_string())),
    };
    Ok(Node::Group { or, members })
}

fn make_cond(c: &CondRaw) -> Result<Cond, FErr> {
    let op = c.op.clone().unwrap_or_else(|| "=".to_string());
    let Some((field, mode)) = c.resolved.clone() else {
        return Err((
            400,
            "You must provide a valid filter condition. Check that you have set the required keys for your filter."
                .to_string(),
        ));
    };
    if !OPERATORS.contains(&op.as_str()) {
        return Err((
            400,
            format!("The '{op}' operator is not allowed in a filter parameter."),
        ));
    }
    if (op == "IS NULL" || op == "IS NOT NULL") && c.value.is_some() {
        return Err((
            400,
            format!("Filters using the '{op}' operator should not provide a value."),
        ));
    }
    if c.value.is_none() && op != "IS NULL" && op != "IS NOT NULL" {
        // [path, operator] is a valid key set; the value reaches SQL as NULL.
        return Ok(Cond {
            field,
            mode,
            op,
            value: FValue::None,
        });
    }
    Ok(Cond {
        field,
        mode,
        op,
        value: c.value.clone().unwrap_or(FValue::None),
    })
}

/// The SQL Drupal would have generated is broken for empty groups and some operator/value
/// combinations; the real site answers 500 with the SQL error.
pub fn check_sql(node: &Node) -> Result<(), FErr> {
    match node {
        Node::Group { members, .. } => {
            if members.is_empty() {
                return Err((500, sql_error("GROUP")));
            }
            for m in members {
                check_sql(m)?;
            }
            Ok(())
        }
        Node::Cond(c) => {
            if c.op == "BETWEEN" || c.op == "NOT BETWEEN" {
                let ok = matches!(&c.value, FValue::Many(v) if v.len() >= 2);
                if !ok {
                    return Err((500, sql_error(")")));
                }
            }
            Ok(())
        }
    }
}

fn sql_error(near: &str) -> String {
    format!(
        "SQLSTATE[HY000]: General error: 1 near \"{near}\": syntax error: SELECT \"base_table\".\"uid\" AS \"uid\", \"base_table\".\"uid\" AS \"base_table_uid\"\nFROM\n\"users\" \"base_table\" (emulated)"
    )
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/// Whether text compares as under MariaDB's `utf8mb4_general_ci` (the `collation` setting).
/// Process-wide: the comparisons below are free functions, and one emulator runs per process.
static GENERAL_CI: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_general_ci(on: bool) {
    GENERAL_CI.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn general_ci() -> bool {
    GENERAL_CI.load(std::sync::atomic::Ordering::Relaxed)
}

/// The weight string of `utf8mb4_general_ci`: one weight per character, the upper case
/// without accent for Latin letters (`é` = `E`, `ß` = `S`), no expansions.
pub fn general_ci_key(s: &str) -> String {
    const TABLE: &[(&str, char)] = &[
        ("àáâãäåāăą", 'a'),
        ("çćĉċč", 'c'),
        ("ďđ", 'd'),
        ("èéêëēĕėęě", 'e'),
        ("ĝğġģ", 'g'),
        ("ĥħ", 'h'),
        ("ìíîïĩīĭįı", 'i'),
        ("ĵ", 'j'),
        ("ķ", 'k'),
        ("ĺļľŀł", 'l'),
        ("ñńņňŉ", 'n'),
        ("òóôõöøōŏő", 'o'),
        ("ŕŗř", 'r'),
        ("śŝşšſß", 's'),
        ("ţťŧ", 't'),
        ("ùúûüũūŭůűų", 'u'),
        ("ŵ", 'w'),
        ("ýÿŷ", 'y'),
        ("źżž", 'z'),
    ];
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .map(|c| {
            TABLE
                .iter()
                .find(|(accented, _)| accented.contains(c))
                .map_or(c, |(_, base)| *base)
        })
        .collect()
}

/// How LIKE folds text: ASCII case on SQLite, case and accents under `general_ci`.
fn ascii_fold(s: &str) -> String {
    if general_ci() {
        return general_ci_key(s);
    }
    s.to_ascii_lowercase()
}

fn num(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Compares a column value with a filter operand. None = SQL NULL/incomparable.
fn cmp(v: &Val, operand: &str, mode: Mode) -> Option<Ordering> {
    match v {
        Val::Null => None,
        Val::Int(x) => Some(match num(operand) {
            Some(n) => (*x as f64).partial_cmp(&n).unwrap_or(Ordering::Equal),
            // SQLite: an INTEGER is less than any TEXT.
            None => Ordering::Less,
        }),
        Val::Str(x) if general_ci() => Some(general_ci_key(x).cmp(&general_ci_key(operand))),
        Val::Str(x) => Some(match mode {
            // NOCASE_UTF8 collation (Unicode::strcasecmp).
            Mode::Ci => x.to_lowercase().cmp(&operand.to_lowercase()),
            _ => x.as_bytes().cmp(operand.as_bytes()),
        }),
    }
}

fn like_eq(v: &Val, operand: &str) -> bool {
    match v {
        Val::Null => false,
        Val::Int(x) => x.to_string() == operand,
        Val::Str(x) => ascii_fold(x) == ascii_fold(operand),
    }
}

fn text(v: &Val) -> Option<String> {
    match v {
        Val::Null => None,
        Val::Int(x) => Some(x.to_string()),
        Val::Str(s) => Some(s.clone()),
    }
}

fn eq_exact(v: &Val, operand: &str, mode: Mode) -> bool {
    cmp(v, operand, mode) == Some(Ordering::Equal)
}

fn single(value: &FValue) -> Option<&str> {
    match value {
        FValue::One(s) => Some(s),
        FValue::Many(v) => v.first().map(|s| s.as_str()),
        FValue::None => None,
    }
}

fn list(value: &FValue) -> Vec<&str> {
    match value {
        FValue::One(s) => vec![s.as_str()],
        FValue::Many(v) => v.iter().map(|s| s.as_str()).collect(),
        FValue::None => vec![],
    }
}

fn one_value(v: &Val, c: &Cond) -> bool {
    if matches!(v, Val::Null) {
        return false;
    }
    let like_mode = |f: &dyn Fn(&str, &str) -> bool| -> bool {
        match (text(v), single(&c.value)) {
            (Some(t), Some(o)) => f(&ascii_fold(&t), &ascii_fold(o)),
            _ => false,
        }
    };
    match c.op.as_str() {
        "=" | "<>" => {
            let hit = match &c.value {
                FValue::Many(_) => list(&c.value).iter().any(|o| eq_exact(v, o, c.mode)),
                FValue::One(o) => match (c.mode, v) {
                    (Mode::Ci, Val::Str(_)) => like_eq(v, o),
                    _ => eq_exact(v, o, c.mode),
                },
                FValue::None => return false,
            };
            if c.op == "=" {
                hit
            } else {
                !hit
            }
        }
        ">" | ">=" | "<" | "<=" => {
            let Some(o) = single(&c.value) else {
                return false;
            };
            match cmp(v, o, c.mode) {
                Some(ord) => match c.op.as_str() {
                    ">" => ord == Ordering::Greater,
                    ">=" => ord != Ordering::Less,
                    "<" => ord == Ordering::Less,
                    _ => ord != Ordering::Greater,
                },
                None => false,
            }
        }
        "STARTS_WITH" => like_mode(&|t, o| t.starts_with(o)),
        "CONTAINS" => like_mode(&|t, o| t.contains(o)),
        "ENDS_WITH" => like_mode(&|t, o| t.ends_with(o)),
        "IN" | "NOT IN" => {
            let hit = list(&c.value).iter().any(|o| eq_exact(v, o, c.mode));
            if c.op == "IN" {
                hit
            } else {
                !hit
            }
        }
        "BETWEEN" | "NOT BETWEEN" => {
            let l = list(&c.value);
            if l.len() < 2 {
                return false;
            }
            let lo = cmp(v, l[0], c.mode);
            let hi = cmp(v, l[1], c.mode);
            let inside = matches!(lo, Some(Ordering::Greater | Ordering::Equal))
                && matches!(hi, Some(Ordering::Less | Ordering::Equal));
            if c.op == "BETWEEN" {
                inside
            } else {
                lo.is_some() && !inside
            }
        }
        _ => false,
    }
}

pub fn eval(node: &Node, get: &dyn Fn(&str) -> Vec<Val>) -> bool {
    match node {
        Node::Group { or, members } => {
            if *or {
                members.iter().any(|m| eval(m, get))
            } else {
                members.iter().all(|m| eval(m, get))
            }
        }
        Node::Cond(c) => {
            let vals = get(&c.field);
            let non_null: Vec<&Val> = vals.iter().filter(|v| !matches!(v, Val::Null)).collect();
            match c.op.as_str() {
                "IS NULL" => non_null.is_empty(),
                "IS NOT NULL" => !non_null.is_empty(),
                _ => non_null.iter().any(|v| one_value(v, c)),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sort.

#[derive(Clone, Debug)]
pub struct SortKey {
    pub field: String,
    pub desc: bool,
}

pub fn parse_sort(param: &Q, resolver: &dyn Resolver) -> Result<Vec<SortKey>, FErr> {
    let mut raw: Vec<(String, bool)> = Vec::new();
    match param {
        Q::Str(s) => {
            if s.is_empty() {
                return Err((
                    400,
                    "You need to provide a value for the sort parameter.".to_string(),
                ));
            }
            for part in s.split(',') {
                match part.strip_prefix('-') {
                    Some(p) => raw.push((p.to_string(), true)),
                    None => raw.push((part.to_string(), false)),
                }
            }
        }
        Q::Map(m) => {
            if m.is_empty() {
                return Err((
                    400,
                    "You need to provide a value for the sort parameter.".to_string(),
                ));
            }
            for (_, item) in m {
                let Some(path) = item.get("path").and_then(|p| p.as_str()) else {
                    return Err((
                        400,
                        "You need to provide a field name for the sort parameter.".to_string(),
                    ));
                };
                let desc = item
                    .get("direction")
                    .and_then(|d| d.as_str())
                    .map(|d| d.eq_ignore_ascii_case("DESC"))
                    .unwrap_or(false);
                raw.push((path.to_string(), desc));
            }
        }
    }
    let mut keys = Vec::new();
    for (path, desc) in raw {
        let (field, _) = resolver.resolve(&path)?;
        keys.push(SortKey { field, desc });
    }
    Ok(keys)
}

/// Orders two rows by the sort keys (SQLite: NULLs first ascending; strings by bytes).
pub fn sort_cmp(a: &[Val], b: &[Val], keys: &[SortKey]) -> Ordering {
    for (i, k) in keys.iter().enumerate() {
        let (x, y) = (&a[i], &b[i]);
        let o = match (x, y) {
            (Val::Null, Val::Null) => Ordering::Equal,
            (Val::Null, _) => Ordering::Less,
            (_, Val::Null) => Ordering::Greater,
            (Val::Int(p), Val::Int(q)) => p.cmp(q),
            (Val::Int(_), Val::Str(_)) => Ordering::Less,
            (Val::Str(_), Val::Int(_)) => Ordering::Greater,
            (Val::Str(p), Val::Str(q)) => p.as_bytes().cmp(q.as_bytes()),
        };
        let o = if k.desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_query;

    struct R;
    impl Resolver for R {
        fn resolve(&self, path: &str) -> Result<(String, Mode), FErr> {
            match path {
                "name" => Ok(("name".into(), Mode::Ci)),
                "mail" => Ok(("mail".into(), Mode::Cs)),
                "drupal_internal__uid" => Ok(("uid".into(), Mode::Num)),
                "pass" => Err((403, "no".into())),
                p => Err((400, format!("unknown {p}"))),
            }
        }
    }

    fn filter(qs: &str) -> Result<Node, FErr> {
        let q = parse_query(qs);
        parse_filter(&q[0].1, &R)
    }

    fn row(name: &str, mail: &str, uid: i64) -> impl Fn(&str) -> Vec<Val> {
        let (name, mail) = (name.to_string(), mail.to_string());
        move |f: &str| match f {
            "name" => vec![Val::Str(name.clone())],
            "mail" => vec![Val::Str(mail.clone())],
            "uid" => vec![Val::Int(uid)],
            _ => vec![],
        }
    }

    #[test]
    fn shortcut_is_case_insensitive_like_for_name_only() {
        let alice = row("alice", "alice@example.com", 3);
        assert!(eval(&filter("filter[name]=ALICE").unwrap(), &alice));
        assert!(!eval(&filter("filter[name]=al_ce").unwrap(), &alice));
        assert!(!eval(
            &filter("filter[mail]=Alice@Example.COM").unwrap(),
            &alice
        ));
        let zoe = row("Zoë", "z@example.com", 8);
        assert!(!eval(&filter("filter[name]=ZOË").unwrap(), &zoe));
    }

    #[test]
    fn groups_and_operators() {
        let alice = row("alice", "alice@example.com", 3);
        let f = filter("filter[g][group][conjunction]=OR&filter[a][condition][path]=name&filter[a][condition][value]=bob&filter[a][condition][memberOf]=g&filter[b][condition][path]=drupal_internal__uid&filter[b][condition][operator]=%3E&filter[b][condition][value]=2&filter[b][condition][memberOf]=g").unwrap();
        assert!(eval(&f, &alice));
        let f = filter("filter[k][condition][path]=drupal_internal__uid&filter[k][condition][operator]=>&filter[k][condition][value]=abc").unwrap();
        assert!(!eval(&f, &alice));
        assert!(eval(&filter("filter[n][condition][path]=mail&filter[n][condition][operator]=CONTAINS&filter[n][condition][value]=EXAMPLE").unwrap(), &alice));
    }

    #[test]
    fn errors() {
        assert_eq!(
            filter("filter[n][condition][path]=name&filter[n][condition][operator]=EQ&filter[n][condition][value]=a").unwrap_err().1,
            "The 'EQ' operator is not allowed in a filter parameter."
        );
        assert_eq!(filter("filter[pass]=x").unwrap_err().0, 403);
        assert_eq!(filter("filter[nope]=x").unwrap_err().0, 400);
        assert_eq!(filter("filter[g][group][conjunction]=XOR&filter[a][condition][path]=name&filter[a][condition][value]=x&filter[a][condition][memberOf]=g").unwrap_err().0, 500);
        assert!(filter("filter[a][condition][value]=alice")
            .unwrap_err()
            .1
            .starts_with("You must provide"));
        let f = filter("filter[a][condition][path]=name&filter[a][condition][value]=x&filter[a][condition][memberOf]=nosuch").unwrap();
        assert_eq!(check_sql(&f).unwrap_err().0, 500);
    }
}
