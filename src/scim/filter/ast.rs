//! The parsed forms of SCIM filters and paths (RFC 7644 §3.4.2.2, §3.5.2): attribute paths,
//! comparisons, filters, PATCH paths and the positioned parse error.

use std::fmt;

/// Maximum accepted input length in bytes; longer input is an error.
pub const MAX_FILTER_LEN: usize = 4096;

/// Maximum nesting of parentheses / `not (..)` / value filters `[..]`.
pub const MAX_DEPTH: usize = 32;

/// An attribute path: `[URN ":"] attr ["." subAttr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    /// The schema URN prefix, as written, e.g.
    /// `Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")`.
    pub schema: Option<String>,
    /// The attribute name as written, e.g. `userName`. Empty only for a bare
    /// schema URN (see [`AttrPath::is_bare_schema`]).
    pub attr: String,
    /// The sub-attribute, e.g. `givenName` for `name.givenName`.
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// True if the attribute name matches `attr` (ASCII case-insensitive) and
    /// there is no sub-attribute. The schema prefix is ignored; inspect
    /// `schema` separately when it matters.
    pub fn is(&self, attr: &str) -> bool {
        self.sub_attr.is_none() && self.attr.eq_ignore_ascii_case(attr)
    }

    /// True if the path is `attr.sub` (ASCII case-insensitive). The schema
    /// prefix is ignored.
    pub fn is_sub(&self, attr: &str, sub: &str) -> bool {
        self.attr.eq_ignore_ascii_case(attr)
            && self
                .sub_attr
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(sub))
    }

    /// True for a bare schema URN such as
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`
    /// (`schema` is the whole URN, `attr` is empty).
    pub fn is_bare_schema(&self) -> bool {
        self.schema.is_some() && self.attr.is_empty()
    }
}

impl fmt::Display for AttrPath {
    /// Renders the path back in SCIM notation (`urn:…:attr.sub`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) if self.attr.is_empty() => return f.write_str(schema),
            Some(schema) => write!(f, "{schema}:")?,
            None => {}
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Comparison operators of RFC 7644 Table 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// Parses an operator keyword, ASCII case-insensitive.
    pub fn parse(word: &str) -> Option<CompareOp> {
        const OPS: [(&str, CompareOp); 9] = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        OPS.iter()
            .find(|(name, _)| word.eq_ignore_ascii_case(name))
            .map(|(_, op)| *op)
    }

    /// The lower-case keyword, e.g. `"eq"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

/// A comparison value.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// A JSON string, escapes decoded.
    Str(String),
    /// A JSON number: the lexeme exactly as written (validated JSON syntax).
    Num(String),
    Bool(bool),
    Null,
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@example.com"]`; the paths inside
    /// `filter` are relative to `attr` (they name its sub-attributes).
    ///
    /// The non-RFC filter form `emails[type eq "work"].value eq "x"` (sent by
    /// Entra ID) is represented as
    /// `ValuePath { attr: emails, filter: And(type eq "work", value eq "x") }`.
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH operation path (RFC 7644 §3.5.2: `attrPath / valuePath [subAttr]`).
///
/// * `name.givenName` → `attr = name.givenName` (sub-attribute inside `attr`),
///   no filter, `sub_attr = None`.
/// * `emails[type eq "work"].value` → `attr = emails`, `filter = Some(type eq "work")`,
///   `sub_attr = Some("value")`.
/// * `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User` (bare schema
///   URN) → `attr.schema = Some(<urn>)`, `attr.attr = ""`; see
///   [`PatchPath::is_bare_schema`].
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub_attr: Option<String>,
}

impl PatchPath {
    /// True if the path is only a schema URN (e.g. the enterprise extension),
    /// addressing the whole extension object.
    pub fn is_bare_schema(&self) -> bool {
        self.attr.is_bare_schema() && self.filter.is_none() && self.sub_attr.is_none()
    }
}

/// A parse error: byte offset into the input and a human-readable message.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    /// 0-based byte offset of the problem in the input.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}
