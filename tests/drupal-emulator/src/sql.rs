//! The SQL text of Drupal's entity query, for the 500 answers that leak it (a filter whose
//! root group ends up empty, `BETWEEN` without two values). Conditions on base fields render
//! exactly as the recorded site printed them (records 304 and 316); joins for configurable and
//! referenced fields are an approximation.

use crate::filter::{Cond, FValue, Mode, Node};

struct Sql {
    joins: Vec<String>,
    aliases: Vec<String>,
    args: Vec<String>,
}

impl Sql {
    fn alias(&mut self, table: &str) -> String {
        let mut alias = table.to_string();
        let mut n = 1;
        while self.aliases.contains(&alias) {
            n += 1;
            alias = format!("{table}_{n}");
        }
        self.aliases.push(alias.clone());
        alias
    }

    fn placeholder(&mut self, value: &str) -> String {
        let p = format!(":db_condition_placeholder_{}", self.args.len());
        self.args.push(value.to_string());
        p
    }
}

/// Per condition group: the tables joined so far (table -> alias).
struct Tables {
    joined: Vec<(String, String)>,
    join_type: &'static str,
}

struct Entity {
    base: &'static str,
    data: &'static str,
    id: &'static str,
    prefix: &'static str,
}

const USER: Entity = Entity {
    base: "users",
    data: "users_field_data",
    id: "uid",
    prefix: "user",
};

const TERM: Entity = Entity {
    base: "taxonomy_term_data",
    data: "taxonomy_term_field_data",
    id: "tid",
    prefix: "taxonomy_term",
};

impl Tables {
    fn table(&mut self, sql: &mut Sql, table: &str, on: impl Fn(&str) -> String) -> String {
        if let Some((_, a)) = self.joined.iter().find(|(t, _)| t == table) {
            return a.clone();
        }
        let alias = sql.alias(table);
        sql.joins.push(format!(
            "{} JOIN \"{table}\" \"{alias}\" ON {}",
            self.join_type,
            on(&alias)
        ));
        self.joined.push((table.to_string(), alias.clone()));
        alias
    }

    /// The `"alias"."column"` of a field key.
    fn column(&mut self, sql: &mut Sql, e: &Entity, key: &str) -> String {
        if let Some(rest) = key.strip_prefix("ref:") {
            let (field, sub) = rest.split_once(':').unwrap_or((rest, "uuid"));
            let ftable = format!("{}__{field}", e.prefix);
            let fa = self.table(sql, &ftable, |a| {
                format!("\"{a}\".\"entity_id\" = \"base_table\".\"{}\"", e.id)
            });
            let target = format!("\"{fa}\".\"{field}_target_id\"");
            return match sub {
                "target" => target,
                "uuid" => {
                    let ta = self.table(sql, TERM.base, |a| format!("\"{a}\".\"tid\" = {target}"));
                    format!("\"{ta}\".\"uuid\"")
                }
                other => {
                    let col = other.strip_prefix("t:").unwrap_or(other);
                    let ta = self.table(sql, TERM.data, |a| format!("\"{a}\".\"tid\" = {target}"));
                    format!("\"{ta}\".\"{}\"", term_column(col))
                }
            };
        }
        let key = key.strip_prefix("t:").unwrap_or(key);
        match key {
            "uuid" => "\"base_table\".\"uuid\"".to_string(),
            "roles" | "parent.target" | "parent.id" => {
                let field = key.split('.').next().unwrap_or(key);
                let ftable = format!("{}__{field}", e.prefix);
                let fa = self.table(sql, &ftable, |a| {
                    format!("\"{a}\".\"entity_id\" = \"base_table\".\"{}\"", e.id)
                });
                format!("\"{fa}\".\"{field}_target_id\"")
            }
            k if k.starts_with("field_") => {
                let ftable = format!("{}__{k}", e.prefix);
                let fa = self.table(sql, &ftable, |a| {
                    format!("\"{a}\".\"entity_id\" = \"base_table\".\"{}\"", e.id)
                });
                format!("\"{fa}\".\"{k}_value\"")
            }
            k => {
                let da = self.table(sql, e.data, |a| {
                    format!("\"{a}\".\"{}\" = \"base_table\".\"{}\"", e.id, e.id)
                });
                let col = if e.prefix == "taxonomy_term" {
                    term_column(k)
                } else {
                    k.to_string()
                };
                format!("\"{da}\".\"{col}\"")
            }
        }
    }
}

fn term_column(key: &str) -> String {
    match key {
        "description" => "description__value".into(),
        "description.format" => "description__format".into(),
        "revision_created" => "revision_created".into(),
        k => k.to_string(),
    }
}

fn values(v: &FValue) -> Vec<String> {
    match v {
        FValue::None => vec![],
        FValue::One(s) => vec![s.clone()],
        FValue::Many(m) => m.clone(),
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn cond_sql(sql: &mut Sql, tables: &mut Tables, e: &Entity, c: &Cond) -> String {
    let col = tables.column(sql, e, &c.field);
    let vals = values(&c.value);
    let first = vals.first().cloned().unwrap_or_default();
    let like = |sql: &mut Sql, v: String| format!("{col} LIKE {} ESCAPE '\\'", sql.placeholder(&v));
    match c.op.as_str() {
        "=" if c.mode == Mode::Ci && vals.len() <= 1 => like(sql, escape_like(&first)),
        "STARTS_WITH" => like(sql, format!("{}%", escape_like(&first))),
        "CONTAINS" => like(sql, format!("%{}%", escape_like(&first))),
        "ENDS_WITH" => like(sql, format!("%{}", escape_like(&first))),
        "IN" | "NOT IN" => {
            let ps: Vec<String> = vals.iter().map(|v| sql.placeholder(v)).collect();
            format!("{col} {} ({})", c.op, ps.join(", "))
        }
        "BETWEEN" | "NOT BETWEEN" => {
            let ps: Vec<String> = vals.iter().map(|v| sql.placeholder(v)).collect();
            format!("{col} {} {}", c.op, ps.join(" AND "))
        }
        "IS NULL" | "IS NOT NULL" => format!("{col} {}", c.op),
        op => {
            let p = sql.placeholder(&first);
            format!("{col} {op} {p}")
        }
    }
}

fn group_sql(sql: &mut Sql, e: &Entity, node: &Node, inside_or: bool) -> String {
    let Node::Group { or, members } = node else {
        return String::new();
    };
    let inside_or = inside_or || *or;
    let mut tables = Tables {
        joined: Vec::new(),
        join_type: if inside_or { "LEFT" } else { "INNER" },
    };
    let mut parts = Vec::new();
    for m in members {
        match m {
            Node::Cond(c) => {
                if c.op == "IS NULL" {
                    tables.join_type = "LEFT";
                }
                parts.push(cond_sql(sql, &mut tables, e, c));
                tables.join_type = if inside_or { "LEFT" } else { "INNER" };
            }
            Node::Group { .. } => {
                let inner = group_sql(sql, e, m, inside_or);
                if !inner.is_empty() {
                    parts.push(format!("({inner})"));
                }
            }
        }
    }
    parts.join(if *or { " OR " } else { " AND " })
}

fn has_conditions(node: &Node) -> bool {
    match node {
        Node::Cond(_) => true,
        Node::Group { members, .. } => members.iter().any(has_conditions),
    }
}

/// The `SQLSTATE[HY000]` detail of a broken entity query on `user` or `taxonomy_term`.
/// `guard`: JSON:API's access condition (`uid != 0` for users, `status = 1` for terms seen by
/// non-administrators).
pub fn error_detail(node: &Node, entity_type: &str, offset: i64, size: i64, guard: bool) -> String {
    error_detail_as(node, entity_type, offset, size, guard, false)
}

/// `error_detail` as 10.x (`v11` false) or 11.4 (`v11`) prints it: 11.4.5 adds the access
/// condition to the query's own condition group, so it reuses that group's join, and leaves
/// out `GROUP BY` when nothing is joined (seen on 11.4.5 for records 304 and 316).
pub fn error_detail_as(
    node: &Node,
    entity_type: &str,
    offset: i64,
    size: i64,
    guard: bool,
    v11: bool,
) -> String {
    let e = if entity_type == "taxonomy_term" {
        &TERM
    } else {
        &USER
    };
    let mut sql = Sql {
        joins: Vec::new(),
        aliases: vec!["base_table".into()],
        args: Vec::new(),
    };
    let root = group_sql(&mut sql, e, node, false);
    let mut where_parts = Vec::new();
    if !root.is_empty() {
        where_parts.push(format!("({root})"));
    }
    if guard && has_conditions(node) {
        let mut tables = Tables {
            joined: Vec::new(),
            join_type: "INNER",
        };
        if v11 && sql.aliases.iter().any(|a| a == e.data) {
            tables.joined.push((e.data.to_string(), e.data.to_string()));
        }
        let (col, op, v) = if e.prefix == "user" {
            ("uid", "!=", "0")
        } else {
            ("status", "=", "1")
        };
        let column = tables.column(&mut sql, e, col);
        let p = sql.placeholder(v);
        where_parts.push(format!("({column} {op} {p})"));
    }
    let select = if e.prefix == "user" {
        "SELECT \"base_table\".\"uid\" AS \"uid\", \"base_table\".\"uid\" AS \"base_table_uid\""
            .to_string()
    } else {
        "SELECT \"base_table\".\"revision_id\" AS \"revision_id\", \"base_table\".\"tid\" AS \"tid\""
            .to_string()
    };
    let group_by = if e.prefix == "user" {
        "GROUP BY \"base_table\".\"uid\""
    } else {
        "GROUP BY \"base_table\".\"revision_id\", \"base_table\".\"tid\""
    };
    let mut q = format!("{select}\nFROM\n\"{}\" \"base_table\"", e.base);
    for j in &sql.joins {
        q.push('\n');
        q.push_str(j);
    }
    q.push_str("\nWHERE ");
    q.push_str(&where_parts.join(" AND "));
    let grouped = !(v11 && sql.joins.is_empty());
    if grouped {
        q.push('\n');
        q.push_str(group_by);
    }
    q.push_str(&format!("\nLIMIT {} OFFSET {}", size + 1, offset.max(0)));
    let near = if !(root.is_empty() && where_parts.is_empty()) {
        ")"
    } else if grouped {
        "GROUP"
    } else {
        "LIMIT"
    };
    let mut args = String::from("Array\n(\n");
    for (i, a) in sql.args.iter().enumerate() {
        args.push_str(&format!("    [:db_condition_placeholder_{i}] => {a}\n"));
    }
    args.push_str(")\n");
    format!("SQLSTATE[HY000]: General error: 1 near \"{near}\": syntax error: {q}; {args}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{parse_filter, FErr, Resolver};
    use crate::query::parse_query;

    struct R;
    impl Resolver for R {
        fn resolve(&self, path: &str) -> Result<(String, Mode), FErr> {
            match path {
                "name" => Ok(("name".into(), Mode::Ci)),
                "drupal_internal__uid" => Ok(("uid".into(), Mode::Num)),
                p => Err((400, p.into())),
            }
        }
    }

    #[test]
    fn recorded_texts() {
        let q = parse_query("filter[a][condition][path]=name&filter[a][condition][value]=alice&filter[a][condition][memberOf]=nosuchgroup");
        let f = parse_filter(&q[0].1, &R).unwrap();
        assert_eq!(
            error_detail(&f, "user", 0, 50, true),
            "SQLSTATE[HY000]: General error: 1 near \"GROUP\": syntax error: SELECT \"base_table\".\"uid\" AS \"uid\", \"base_table\".\"uid\" AS \"base_table_uid\"\nFROM\n\"users\" \"base_table\"\nWHERE \nGROUP BY \"base_table\".\"uid\"\nLIMIT 51 OFFSET 0; Array\n(\n)\n"
        );
        let q = parse_query("filter[a][condition][path]=drupal_internal__uid&filter[a][condition][operator]=NOT%20BETWEEN&filter[a][condition][value]=3");
        let f = parse_filter(&q[0].1, &R).unwrap();
        assert_eq!(
            error_detail(&f, "user", 0, 50, true),
            "SQLSTATE[HY000]: General error: 1 near \")\": syntax error: SELECT \"base_table\".\"uid\" AS \"uid\", \"base_table\".\"uid\" AS \"base_table_uid\"\nFROM\n\"users\" \"base_table\"\nINNER JOIN \"users_field_data\" \"users_field_data\" ON \"users_field_data\".\"uid\" = \"base_table\".\"uid\"\nINNER JOIN \"users_field_data\" \"users_field_data_2\" ON \"users_field_data_2\".\"uid\" = \"base_table\".\"uid\"\nWHERE (\"users_field_data\".\"uid\" NOT BETWEEN :db_condition_placeholder_0) AND (\"users_field_data_2\".\"uid\" != :db_condition_placeholder_1)\nGROUP BY \"base_table\".\"uid\"\nLIMIT 51 OFFSET 0; Array\n(\n    [:db_condition_placeholder_0] => 3\n    [:db_condition_placeholder_1] => 0\n)\n"
        );
    }

    /// Records 304 and 316 as Drupal 11.4.5 answered them (the live contract).
    #[test]
    fn texts_seen_on_11_4() {
        let q = parse_query("filter[a][condition][path]=name&filter[a][condition][value]=alice&filter[a][condition][memberOf]=nosuchgroup");
        let f = parse_filter(&q[0].1, &R).unwrap();
        assert_eq!(
            error_detail_as(&f, "user", 0, 50, true, true),
            "SQLSTATE[HY000]: General error: 1 near \"LIMIT\": syntax error: SELECT \"base_table\".\"uid\" AS \"uid\", \"base_table\".\"uid\" AS \"base_table_uid\"\nFROM\n\"users\" \"base_table\"\nWHERE \nLIMIT 51 OFFSET 0; Array\n(\n)\n"
        );
        let q = parse_query("filter[a][condition][path]=drupal_internal__uid&filter[a][condition][operator]=NOT%20BETWEEN&filter[a][condition][value]=3");
        let f = parse_filter(&q[0].1, &R).unwrap();
        assert_eq!(
            error_detail_as(&f, "user", 0, 50, true, true),
            "SQLSTATE[HY000]: General error: 1 near \")\": syntax error: SELECT \"base_table\".\"uid\" AS \"uid\", \"base_table\".\"uid\" AS \"base_table_uid\"\nFROM\n\"users\" \"base_table\"\nINNER JOIN \"users_field_data\" \"users_field_data\" ON \"users_field_data\".\"uid\" = \"base_table\".\"uid\"\nWHERE (\"users_field_data\".\"uid\" NOT BETWEEN :db_condition_placeholder_0) AND (\"users_field_data\".\"uid\" != :db_condition_placeholder_1)\nGROUP BY \"base_table\".\"uid\"\nLIMIT 51 OFFSET 0; Array\n(\n    [:db_condition_placeholder_0] => 3\n    [:db_condition_placeholder_1] => 0\n)\n"
        );
    }
}
