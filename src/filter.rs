//! SCIM 2.0 filter and PATCH-path parser (RFC 7644 §3.4.2.2 and §3.5.2).
//!
//! Pure, `std`-only and panic-free: every input (including arbitrary bytes turned
//! into a `&str`) yields either a parsed value or a [`FilterError`] naming the
//! byte offset and the offending token.
//!
//! Grammar (RFC 7644 Figure 1), as implemented:
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! valFilter = attrExp / logExp / *1"not" "(" valFilter ")"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string
//! compareOp = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "lt" / "ge" / "le"
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ATTRNAME  = ALPHA *(nameChar)          ; plus the special name "$ref"
//! nameChar  = "-" / "_" / DIGIT / ALPHA
//! subAttr   = "." ATTRNAME
//! PATH      = attrPath / valuePath [subAttr]      ; PATCH "path"
//! ```
//!
//! Decisions beyond the letter of the RFC (all deliberate):
//!
//! * Keywords (`and`, `or`, `not`, `pr`, operators, `true`/`false`/`null`) are
//!   case-insensitive. Precedence is `not` > `and` > `or`, both binary operators
//!   left-associative. `not` must be followed by a parenthesised filter.
//! * Whitespace is lenient: any run of spaces, tabs, CR or LF separates tokens,
//!   and no whitespace is required next to `(`, `)`, `[`, `]` or a quoted string
//!   (`not(title pr)`, `userName eq"x"` are accepted).
//! * Microsoft Entra ID sends `emails[type eq "work"].value eq "x"` as a *filter*,
//!   which the RFC grammar does not allow (a valuePath in a filter ends at `]`).
//!   It is accepted and represented as
//!   `ValuePath { attr: emails, filter: And(<bracket filter>, value eq "x") }`,
//!   i.e. the trailing `.sub op value` becomes one more condition, on that
//!   sub-attribute, inside the bracket (`pr` works too).
//! * A valuePath may not be nested inside another valuePath, and may not be
//!   applied to a path that already has a sub-attribute (`name.givenName[...]`),
//!   because SCIM complex attributes cannot contain complex sub-attributes.
//! * URN-qualified paths must start with `urn:` (case-insensitive); any other
//!   path containing `:` is rejected. The schema is split off at the LAST `:`
//!   (schema URNs themselves contain dots, e.g. `2.0`).
//! * A *bare schema URN* (e.g. `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`,
//!   used as a PATCH path or as a key of a PATCH value object) is recognised when
//!   the segment before the last `:` is a version number (digits and dots, such
//!   as `2.0`) and the last segment is a plain name without a dot. It is
//!   represented as `schema = Some(<whole URN>)`, `attr = ""` (see
//!   [`AttrPath::is_bare_schema`] / [`PatchPath::is_bare_schema`]). Bare schema
//!   URNs are accepted by [`parse_attr_path`] and [`parse_patch_path`] but
//!   rejected inside filters. A custom schema URN without a version segment
//!   (`urn:acme:ext:User`) is indistinguishable from `schema:attribute` and is
//!   parsed as schema `urn:acme:ext`, attribute `User`.
//! * Nesting of parentheses and value filters is limited to [`MAX_DEPTH`]
//!   levels (`not (..)` counts once, through its parentheses), so the recursive
//!   descent can never overflow the stack; input is limited to
//!   [`MAX_FILTER_LEN`] bytes.
//! * Error positions are 0-based byte offsets into the input.

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

/// Parses a SCIM filter (the value of the `filter` query parameter, already
/// percent-decoded).
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    check_len(input, "filter")?;
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return Err(err(
            0,
            "empty filter (expected an expression such as userName eq \"jane\")",
        ));
    }
    let mut p = Parser::new(toks, input.len());
    let filter = p.parse_or()?;
    p.expect_end()?;
    Ok(filter)
}

/// Parses a PATCH operation `path`.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, FilterError> {
    check_len(input, "path")?;
    let toks = tokenize(input)?;
    let mut p = Parser::new(toks, input.len());
    let Some(first) = p.peek() else {
        return Err(err(
            0,
            "empty path (expected an attribute path such as \"name.givenName\")",
        ));
    };
    let pos = first.pos;
    let word = match &first.tok {
        Tok::Word(w) => *w,
        other => {
            return Err(err(
                pos,
                format!(
                    "a path must start with an attribute name, found {}",
                    describe(other)
                ),
            ))
        }
    };
    p.bump();
    let attr = parse_path_text(word, pos, true)?;
    let mut filter = None;
    let mut sub_attr = None;
    if let Some(Token {
        tok: Tok::LBracket,
        pos: bracket_pos,
    }) = p.peek()
    {
        let bracket_pos = *bracket_pos;
        if attr.is_bare_schema() {
            return Err(err(
                bracket_pos,
                format!(
                    "a value filter \"[...]\" cannot follow the schema URN {}; name an attribute first",
                    q(word)
                ),
            ));
        }
        filter = Some(p.parse_value_path_filter(&attr, word, pos, bracket_pos)?);
        if let Some((sub, sub_pos)) = p.peek_dot_word() {
            p.bump();
            sub_attr = Some(parse_dot_sub(sub, sub_pos)?);
        }
    }
    if let Some(tok) = p.peek() {
        return Err(err(
            tok.pos,
            format!(
                "unexpected {} after the path (a PATCH path is attr, attr.sub, attr[filter] or attr[filter].sub)",
                describe(&tok.tok)
            ),
        ));
    }
    Ok(PatchPath {
        attr,
        filter,
        sub_attr,
    })
}

/// Parses a single attribute path (`attributes=`/`excludedAttributes=` items,
/// `sortBy`, keys of PATCH value objects). Surrounding whitespace is ignored.
/// A bare schema URN is accepted (see [`AttrPath::is_bare_schema`]).
pub fn parse_attr_path(input: &str) -> Result<AttrPath, FilterError> {
    check_len(input, "attribute path")?;
    let trimmed = input.trim_start_matches(is_ws);
    let offset = input.len().saturating_sub(trimmed.len());
    let trimmed = trimmed.trim_end_matches(is_ws);
    if trimmed.is_empty() {
        return Err(err(0, "empty attribute path"));
    }
    parse_path_text(trimmed, offset, true)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn err(position: usize, message: impl Into<String>) -> FilterError {
    FilterError {
        position,
        message: message.into(),
    }
}

/// Quotes a token for an error message (escaped, truncated to 60 chars).
fn q(s: &str) -> String {
    const MAX: usize = 60;
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

fn check_len(input: &str, what: &str) -> Result<(), FilterError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(err(
            MAX_FILTER_LEN,
            format!(
                "{what} is too long ({} bytes; the maximum is {MAX_FILTER_LEN})",
                input.len()
            ),
        ));
    }
    Ok(())
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_delim(c: char) -> bool {
    is_ws(c) || matches!(c, '(' | ')' | '[' | ']' | '"')
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

const OPERATOR_LIST: &str = "eq, ne, co, sw, ew, gt, ge, lt, le or pr";

fn is_operator(word: &str) -> bool {
    word.eq_ignore_ascii_case("pr") || CompareOp::parse(word).is_some()
}

// ---------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    /// A run of characters that are not whitespace, parentheses, brackets or
    /// `"`: attribute paths, keywords, operators, numbers, true/false/null.
    Word(&'a str),
    /// A JSON string literal, escapes decoded.
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    pos: usize,
}

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::Word(w) => q(w),
        Tok::Str(s) => format!("string {}", q(s)),
        Tok::LParen => "'('".to_string(),
        Tok::RParen => "')'".to_string(),
        Tok::LBracket => "'['".to_string(),
        Tok::RBracket => "']'".to_string(),
    }
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

fn cur_pos(it: &mut Chars<'_>, end: usize) -> usize {
    it.peek().map_or(end, |&(i, _)| i)
}

fn tokenize(src: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let mut toks = Vec::new();
    let mut it = src.char_indices().peekable();
    while let Some(&(start, c)) = it.peek() {
        let tok = match c {
            c if is_ws(c) => {
                it.next();
                continue;
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '"' => {
                it.next();
                let s = lex_string(src, start, &mut it)?;
                toks.push(Token {
                    tok: Tok::Str(s),
                    pos: start,
                });
                continue;
            }
            _ => {
                while it.next_if(|&(_, c)| !is_delim(c)).is_some() {}
                let end = cur_pos(&mut it, src.len());
                toks.push(Token {
                    tok: Tok::Word(src.get(start..end).unwrap_or("")),
                    pos: start,
                });
                continue;
            }
        };
        it.next();
        toks.push(Token { tok, pos: start });
    }
    Ok(toks)
}

/// Lexes a JSON string; the opening quote at `start` has been consumed.
fn lex_string(src: &str, start: usize, it: &mut Chars<'_>) -> Result<String, FilterError> {
    let unterminated = || {
        err(
            start,
            "unterminated string (missing closing '\"'; a literal '\"' inside a string must be written as \\\")",
        )
    };
    let mut out = String::new();
    loop {
        let Some((i, c)) = it.next() else {
            return Err(unterminated());
        };
        match c {
            '"' => return Ok(out),
            '\\' => {
                let Some((_, e)) = it.next() else {
                    return Err(unterminated());
                };
                let decoded = match e {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => lex_unicode_escape(src, i, it)?,
                    other => {
                        return Err(err(
                            i,
                            format!(
                                "invalid escape \"\\{}\" in string (valid escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX)",
                                other.escape_debug()
                            ),
                        ))
                    }
                };
                out.push(decoded);
            }
            c if u32::from(c) < 0x20 => {
                return Err(err(
                    i,
                    format!(
                        "raw control character U+{:04X} in string (write it as an escape such as \\n or \\u{:04X})",
                        u32::from(c),
                        u32::from(c)
                    ),
                ))
            }
            c => out.push(c),
        }
    }
}

/// Reads the 4 hex digits of a `\u` escape whose backslash is at `esc_pos`.
fn lex_hex4(src: &str, esc_pos: usize, it: &mut Chars<'_>) -> Result<u16, FilterError> {
    let mut digits = String::with_capacity(4);
    for _ in 0..4 {
        match it.next_if(|&(_, c)| c.is_ascii_hexdigit()) {
            Some((_, c)) => digits.push(c),
            None => {
                let end = cur_pos(it, src.len());
                let seen = src.get(esc_pos..end).unwrap_or("\\u");
                return Err(err(
                    esc_pos,
                    format!(
                        "invalid unicode escape {} in string (\\u must be followed by exactly 4 hex digits)",
                        q(seen)
                    ),
                ));
            }
        }
    }
    u16::from_str_radix(&digits, 16).map_err(|_| {
        err(
            esc_pos,
            format!("invalid unicode escape \"\\u{digits}\" in string"),
        )
    })
}

/// Decodes a `\uXXXX` escape (the `\u` has been consumed), including a
/// following `\uXXXX` low surrogate when the first is a high surrogate.
fn lex_unicode_escape(src: &str, esc_pos: usize, it: &mut Chars<'_>) -> Result<char, FilterError> {
    let hi = lex_hex4(src, esc_pos, it)?;
    if (0xDC00..=0xDFFF).contains(&hi) {
        return Err(err(
            esc_pos,
            format!("unpaired low surrogate \"\\u{hi:04X}\" in string (it must follow a high surrogate \\uD800-\\uDBFF)"),
        ));
    }
    if !(0xD800..=0xDBFF).contains(&hi) {
        return char::from_u32(u32::from(hi)).ok_or_else(|| {
            err(
                esc_pos,
                format!("invalid unicode escape \"\\u{hi:04X}\" in string"),
            )
        });
    }
    let unpaired = || {
        err(
            esc_pos,
            format!("unpaired high surrogate \"\\u{hi:04X}\" in string (it must be followed by a low surrogate \\uDC00-\\uDFFF)"),
        )
    };
    let lo_pos = cur_pos(it, src.len());
    if it.next_if(|&(_, c)| c == '\\').is_none() {
        return Err(unpaired());
    }
    if it.next_if(|&(_, c)| c == 'u').is_none() {
        return Err(unpaired());
    }
    let lo = lex_hex4(src, lo_pos, it)?;
    if !(0xDC00..=0xDFFF).contains(&lo) {
        return Err(unpaired());
    }
    match char::decode_utf16([hi, lo]).next() {
        Some(Ok(c)) => Ok(c),
        _ => Err(unpaired()),
    }
}

// ---------------------------------------------------------------------------
// Values, names and paths
// ---------------------------------------------------------------------------

/// JSON number syntax: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let mut it = s.bytes().peekable();
    let digits = |it: &mut std::iter::Peekable<std::str::Bytes<'_>>| {
        let mut any = false;
        while it.next_if(u8::is_ascii_digit).is_some() {
            any = true;
        }
        any
    };
    it.next_if_eq(&b'-');
    match it.next() {
        Some(b'0') => {}
        Some(b'1'..=b'9') => {
            digits(&mut it);
        }
        _ => return false,
    }
    if it.next_if_eq(&b'.').is_some() && !digits(&mut it) {
        return false;
    }
    if it.next_if(|b| *b == b'e' || *b == b'E').is_some() {
        it.next_if(|b| *b == b'+' || *b == b'-');
        if !digits(&mut it) {
            return false;
        }
    }
    it.next().is_none()
}

/// Classifies an unquoted value word.
fn word_value(word: &str, pos: usize) -> Result<CompValue, FilterError> {
    if word.eq_ignore_ascii_case("true") {
        return Ok(CompValue::Bool(true));
    }
    if word.eq_ignore_ascii_case("false") {
        return Ok(CompValue::Bool(false));
    }
    if word.eq_ignore_ascii_case("null") {
        return Ok(CompValue::Null);
    }
    let numeric_start = word
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'));
    if numeric_start {
        if is_json_number(word) {
            return Ok(CompValue::Num(word.to_string()));
        }
        return Err(err(
            pos,
            format!(
                "invalid number {} (numbers use JSON syntax, e.g. 42, -1.5 or 1e3; no leading zeros, '+' or bare '.')",
                q(word)
            ),
        ));
    }
    Err(err(
        pos,
        format!(
            "unquoted value {} (string values must be in double quotes; unquoted values may only be true, false, null or a number)",
            q(word)
        ),
    ))
}

/// Validates an ATTRNAME (`ALPHA *(ALPHA / DIGIT / "-" / "_")` or `$ref`).
fn validate_attr_name(name: &str, pos: usize, what: &str) -> Result<(), FilterError> {
    if name.eq_ignore_ascii_case("$ref") {
        return Ok(());
    }
    let mut chars = name.char_indices();
    match chars.next() {
        None => return Err(err(pos, format!("missing {what} name"))),
        Some((_, c)) if c.is_ascii_alphabetic() => {}
        Some((_, c)) => {
            return Err(err(
                pos,
                format!(
                    "{what} name {} must start with a letter, not {c:?}",
                    q(name)
                ),
            ))
        }
    }
    for (i, c) in chars {
        if !(c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(err(
                pos.saturating_add(i),
                format!(
                    "invalid character {c:?} in {what} name {} (allowed: letters, digits, '-' and '_')",
                    q(name)
                ),
            ));
        }
    }
    Ok(())
}

/// Validates a schema URN prefix (`urn:NID:NSS…`, no empty segments).
fn validate_urn(urn: &str, pos: usize) -> Result<(), FilterError> {
    for (i, c) in urn.char_indices() {
        let ok = c.is_ascii_alphanumeric() || "-._~%!$&'*+,;=@/:".contains(c);
        if !ok {
            return Err(err(
                pos.saturating_add(i),
                format!("invalid character {c:?} in schema URN {}", q(urn)),
            ));
        }
    }
    if let Some(i) = urn.find("::") {
        return Err(err(
            pos.saturating_add(i),
            format!("empty segment \"::\" in schema URN {}", q(urn)),
        ));
    }
    if urn.split(':').count() < 3 {
        return Err(err(
            pos,
            format!(
                "incomplete schema URN {} (expected e.g. urn:ietf:params:scim:schemas:core:2.0:User)",
                q(urn)
            ),
        ));
    }
    Ok(())
}

/// `2.0`, `1`, `10.2.3`: digits separated by single dots.
fn is_version(seg: &str) -> bool {
    !seg.is_empty()
        && seg
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses the text of an attribute path starting at byte `pos` of the input.
fn parse_path_text(text: &str, pos: usize, allow_bare: bool) -> Result<AttrPath, FilterError> {
    if text.is_empty() {
        return Err(err(pos, "empty attribute path"));
    }
    let (schema, rest, rest_pos) = if starts_with_ci(text, "urn:") {
        let colon = text.rfind(':').unwrap_or(0);
        let schema = text.get(..colon).unwrap_or("");
        let rest = text.get(colon.saturating_add(1)..).unwrap_or("");
        let rest_pos = pos.saturating_add(colon).saturating_add(1);
        let last_schema_seg = schema.rsplit(':').next().unwrap_or("");
        if is_version(last_schema_seg) && !rest.is_empty() && !rest.contains('.') {
            validate_urn(text, pos)?;
            validate_attr_name(rest, rest_pos, "schema")?;
            if !allow_bare {
                return Err(err(
                    pos,
                    format!(
                        "{} is a schema URN, not an attribute (name an attribute, e.g. \"{}:attributeName\")",
                        q(text),
                        text
                    ),
                ));
            }
            return Ok(AttrPath {
                schema: Some(text.to_string()),
                attr: String::new(),
                sub_attr: None,
            });
        }
        validate_urn(schema, pos)?;
        if rest.is_empty() {
            return Err(err(
                rest_pos,
                format!("missing attribute name after the schema URN in {}", q(text)),
            ));
        }
        (Some(schema.to_string()), rest, rest_pos)
    } else if let Some(i) = text.find(':') {
        return Err(err(
            pos.saturating_add(i),
            format!(
                "':' in attribute path {} (only URN-qualified paths such as \"urn:ietf:params:scim:schemas:core:2.0:User:userName\" may contain ':')",
                q(text)
            ),
        ));
    } else {
        (None, text, pos)
    };
    let (attr, sub_attr) = match rest.split_once('.') {
        None => {
            validate_attr_name(rest, rest_pos, "attribute")?;
            (rest, None)
        }
        Some((attr, sub)) => {
            validate_attr_name(attr, rest_pos, "attribute")?;
            let sub_pos = rest_pos.saturating_add(attr.len()).saturating_add(1);
            if let Some(i) = sub.find('.') {
                return Err(err(
                    sub_pos.saturating_add(i),
                    format!(
                        "too many '.' in attribute path {} (only one sub-attribute level is allowed)",
                        q(text)
                    ),
                ));
            }
            validate_attr_name(sub, sub_pos, "sub-attribute")?;
            (attr, Some(sub.to_string()))
        }
    };
    Ok(AttrPath {
        schema,
        attr: attr.to_string(),
        sub_attr,
    })
}

/// Parses a `.sub` word that follows `]`; `pos` is the position of the dot.
fn parse_dot_sub(word: &str, pos: usize) -> Result<String, FilterError> {
    let sub = word.get(1..).unwrap_or("");
    let sub_pos = pos.saturating_add(1);
    if let Some(i) = sub.find('.') {
        return Err(err(
            sub_pos.saturating_add(i),
            format!(
                "too many '.' in {} after ']' (only one sub-attribute level is allowed)",
                q(word)
            ),
        ));
    }
    validate_attr_name(sub, sub_pos, "sub-attribute")?;
    Ok(sub.to_string())
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

struct Parser<'a> {
    toks: Vec<Token<'a>>,
    idx: usize,
    /// Input length: the position reported for "unexpected end" errors.
    end: usize,
    depth: usize,
    in_value_path: bool,
}

impl<'a> Parser<'a> {
    fn new(toks: Vec<Token<'a>>, end: usize) -> Self {
        Parser {
            toks,
            idx: 0,
            end,
            depth: 0,
            in_value_path: false,
        }
    }

    fn peek(&self) -> Option<&Token<'a>> {
        self.toks.get(self.idx)
    }

    fn peek_second(&self) -> Option<&Token<'a>> {
        self.toks.get(self.idx.saturating_add(1))
    }

    fn peek_pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn bump(&mut self) {
        self.idx = self.idx.saturating_add(1);
    }

    /// The next token if it is a word equal (ASCII case-insensitive) to `kw`.
    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(kw))
    }

    /// The next token if it is a word starting with '.' (a `.sub` after `]`).
    fn peek_dot_word(&self) -> Option<(&'a str, usize)> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                pos,
            }) if w.starts_with('.') => Some((*w, *pos)),
            _ => None,
        }
    }

    /// Description of the previous token, for "ended after X" messages.
    fn prev_desc(&self) -> Option<String> {
        let i = self.idx.checked_sub(1)?;
        self.toks.get(i).map(|t| describe(&t.tok))
    }

    fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
        self.depth = self.depth.saturating_add(1);
        if self.depth > MAX_DEPTH {
            return Err(err(
                pos,
                format!(
                    "filter is nested too deeply (more than {MAX_DEPTH} levels of parentheses or value filters)"
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expect_end(&self) -> Result<(), FilterError> {
        let Some(tok) = self.peek() else {
            return Ok(());
        };
        let message = match &tok.tok {
            Tok::RParen => "unbalanced ')' with no matching '('".to_string(),
            Tok::RBracket => "unbalanced ']' with no matching '['".to_string(),
            other => format!(
                "unexpected {} after a complete expression (expected \"and\" or \"or\")",
                describe(other)
            ),
        };
        Err(err(tok.pos, message))
    }

    fn parse_or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_and()?;
        while self.peek_keyword("or") {
            self.bump();
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_unary()?;
        while self.peek_keyword("and") {
            self.bump();
            let right = self.parse_unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Filter, FilterError> {
        let Some(tok) = self.peek() else {
            let after = self
                .prev_desc()
                .map(|d| format!(" after {d}"))
                .unwrap_or_default();
            return Err(err(
                self.end,
                format!("filter ended unexpectedly{after} (expected an attribute path, \"not\" or \"(\")"),
            ));
        };
        let pos = tok.pos;
        let word = match &tok.tok {
            Tok::LParen => return self.parse_group(),
            Tok::Word(w) => *w,
            other => {
                return Err(err(
                    pos,
                    format!(
                        "expected an attribute path, \"not\" or \"(\" but found {}",
                        describe(other)
                    ),
                ))
            }
        };
        if word.eq_ignore_ascii_case("not") {
            match self.peek_second().map(|t| &t.tok) {
                Some(Tok::LParen) => {
                    self.bump();
                    let inner = self.parse_group()?;
                    return Ok(Filter::Not(Box::new(inner)));
                }
                // An attribute that happens to be called "not": `not pr`.
                Some(Tok::Word(op)) if is_operator(op) => {}
                _ => {
                    return Err(err(
                        pos,
                        "\"not\" must be followed by a parenthesised filter, e.g. not (title pr)",
                    ))
                }
            }
        }
        if word.eq_ignore_ascii_case("and") || word.eq_ignore_ascii_case("or") {
            return Err(err(
                pos,
                format!(
                    "unexpected {} (expected an attribute path, \"not\" or \"(\")",
                    q(word)
                ),
            ));
        }
        self.bump();
        self.parse_attr_expr(word, pos)
    }

    /// `( FILTER )`; the next token is '('.
    fn parse_group(&mut self) -> Result<Filter, FilterError> {
        let open = self.peek_pos();
        self.enter(open)?;
        self.bump();
        if let Some(Token {
            tok: Tok::RParen,
            pos,
        }) = self.peek()
        {
            return Err(err(
                *pos,
                "empty parentheses \"()\" (expected a filter inside)",
            ));
        }
        let inner = self.parse_or()?;
        match self.peek() {
            Some(Token {
                tok: Tok::RParen, ..
            }) => self.bump(),
            None => {
                return Err(err(
                    self.end,
                    format!("missing ')' to close the '(' at character {open}"),
                ))
            }
            Some(tok) => {
                return Err(err(
                    tok.pos,
                    format!(
                        "expected \"and\", \"or\" or ')' (closing the '(' at character {open}) but found {}",
                        describe(&tok.tok)
                    ),
                ))
            }
        }
        self.leave();
        Ok(inner)
    }

    /// `attrPath pr`, `attrPath op value`, `attrPath[valFilter]`, and the
    /// Entra form `attrPath[valFilter].sub op value`. The word has been consumed.
    fn parse_attr_expr(&mut self, word: &'a str, pos: usize) -> Result<Filter, FilterError> {
        let path = parse_path_text(word, pos, false)?;
        let bracket_pos = match self.peek() {
            Some(Token {
                tok: Tok::LBracket,
                pos,
            }) => *pos,
            _ => return self.parse_condition(path, word),
        };
        let filter = self.parse_value_path_filter(&path, word, pos, bracket_pos)?;
        let filter = match self.peek_dot_word() {
            // Entra ID form `emails[type eq "work"].value eq "x"`: the trailing
            // sub-attribute condition joins the bracket filter with "and".
            Some((dot_word, dot_pos)) => {
                self.bump();
                let sub = parse_dot_sub(dot_word, dot_pos)?;
                let sub_path = AttrPath {
                    schema: None,
                    attr: sub,
                    sub_attr: None,
                };
                let cond = self.parse_condition(sub_path, dot_word)?;
                Filter::And(Box::new(filter), Box::new(cond))
            }
            None => filter,
        };
        Ok(Filter::ValuePath {
            attr: path,
            filter: Box::new(filter),
        })
    }

    /// `[ valFilter ]`; the next token is '['. Returns the inner filter.
    fn parse_value_path_filter(
        &mut self,
        path: &AttrPath,
        word: &str,
        word_pos: usize,
        bracket_pos: usize,
    ) -> Result<Filter, FilterError> {
        if self.in_value_path {
            return Err(err(
                bracket_pos,
                format!(
                    "nested value filter on {} is not allowed inside another value filter \"[...]\"",
                    q(word)
                ),
            ));
        }
        if path.sub_attr.is_some() {
            return Err(err(
                word_pos,
                format!(
                    "a value filter \"[...]\" must follow a multi-valued attribute, not the sub-attribute path {}",
                    q(word)
                ),
            ));
        }
        self.enter(bracket_pos)?;
        self.bump();
        if let Some(Token {
            tok: Tok::RBracket,
            pos,
        }) = self.peek()
        {
            return Err(err(
                *pos,
                format!(
                    "empty value filter \"[]\" after {} (expected e.g. [type eq \"work\"])",
                    q(word)
                ),
            ));
        }
        self.in_value_path = true;
        let inner = self.parse_or()?;
        self.in_value_path = false;
        match self.peek() {
            Some(Token {
                tok: Tok::RBracket,
                ..
            }) => self.bump(),
            None => {
                return Err(err(
                    self.end,
                    format!("missing ']' to close the '[' at character {bracket_pos}"),
                ))
            }
            Some(tok) => {
                return Err(err(
                    tok.pos,
                    format!(
                        "expected \"and\", \"or\" or ']' (closing the '[' at character {bracket_pos}) but found {}",
                        describe(&tok.tok)
                    ),
                ))
            }
        }
        self.leave();
        Ok(inner)
    }

    /// `pr` or `compareOp compValue` after an attribute path.
    fn parse_condition(&mut self, path: AttrPath, word: &str) -> Result<Filter, FilterError> {
        let Some(tok) = self.peek() else {
            return Err(err(
                self.end,
                format!(
                    "missing operator after {} (expected {OPERATOR_LIST})",
                    q(word)
                ),
            ));
        };
        let op_pos = tok.pos;
        let op_word = match &tok.tok {
            Tok::Word(w) => *w,
            other => {
                return Err(err(
                    op_pos,
                    format!(
                        "expected an operator ({OPERATOR_LIST}) after {} but found {}",
                        q(word),
                        describe(other)
                    ),
                ))
            }
        };
        if op_word.eq_ignore_ascii_case("pr") {
            self.bump();
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(op_word) else {
            return Err(err(
                op_pos,
                format!("unknown operator {} (expected {OPERATOR_LIST})", q(op_word)),
            ));
        };
        self.bump();
        let value = self.parse_value(op_word)?;
        Ok(Filter::Compare { path, op, value })
    }

    fn parse_value(&mut self, op_word: &str) -> Result<CompValue, FilterError> {
        let pos = self.peek_pos();
        let Some(tok) = self.toks.get_mut(self.idx) else {
            return Err(err(
                pos,
                format!(
                    "missing value after {} (expected a quoted string, a number, true, false or null)",
                    q(op_word)
                ),
            ));
        };
        let value = match &mut tok.tok {
            Tok::Str(s) => CompValue::Str(std::mem::take(s)),
            Tok::Word(w) => word_value(w, pos)?,
            other => {
                return Err(err(
                    pos,
                    format!(
                        "expected a value after {} (a quoted string, a number, true, false or null) but found {}",
                        q(op_word),
                        describe(other)
                    ),
                ))
            }
        };
        self.bump();
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::panic,
        clippy::expect_used
    )]

    use super::*;

    fn ap(s: &str) -> AttrPath {
        parse_attr_path(s).unwrap_or_else(|e| panic!("attr path {s:?}: {e}"))
    }
    fn s(v: &str) -> CompValue {
        CompValue::Str(v.to_string())
    }
    fn n(v: &str) -> CompValue {
        CompValue::Num(v.to_string())
    }
    fn cmp(path: &str, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare {
            path: ap(path),
            op,
            value,
        }
    }
    fn pr(path: &str) -> Filter {
        Filter::Present(ap(path))
    }
    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }
    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }
    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }
    fn vp(attr: &str, f: Filter) -> Filter {
        Filter::ValuePath {
            attr: ap(attr),
            filter: Box::new(f),
        }
    }
    fn pf(input: &str) -> Filter {
        parse_filter(input).unwrap_or_else(|e| panic!("filter {input:?}: {e}"))
    }

    use CompareOp::*;

    #[test]
    fn rfc_examples() {
        let cases: Vec<(&str, Filter)> = vec![
            ("userName Eq \"john\"", cmp("userName", Eq, s("john"))),
            ("Username eq \"john\"", cmp("Username", Eq, s("john"))),
            ("userName eq \"bjensen\"", cmp("userName", Eq, s("bjensen"))),
            (
                "name.familyName co \"O'Malley\"",
                cmp("name.familyName", Co, s("O'Malley")),
            ),
            ("userName sw \"J\"", cmp("userName", Sw, s("J"))),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"J\"",
                cmp(
                    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                    Sw,
                    s("J"),
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName co \"O'Malley\"",
                cmp(
                    "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName",
                    Co,
                    s("O'Malley"),
                ),
            ),
            ("title pr", pr("title")),
            (
                "meta.lastModified gt \"2011-05-13T04:42:34Z\"",
                cmp("meta.lastModified", Gt, s("2011-05-13T04:42:34Z")),
            ),
            (
                "meta.lastModified ge \"2011-05-13T04:42:34Z\"",
                cmp("meta.lastModified", Ge, s("2011-05-13T04:42:34Z")),
            ),
            (
                "meta.lastModified lt \"2011-05-13T04:42:34Z\"",
                cmp("meta.lastModified", Lt, s("2011-05-13T04:42:34Z")),
            ),
            (
                "meta.lastModified le \"2011-05-13T04:42:34Z\"",
                cmp("meta.lastModified", Le, s("2011-05-13T04:42:34Z")),
            ),
            (
                "title pr and userType eq \"Employee\"",
                and(pr("title"), cmp("userType", Eq, s("Employee"))),
            ),
            (
                "title pr or userType eq \"Intern\"",
                or(pr("title"), cmp("userType", Eq, s("Intern"))),
            ),
            (
                "schemas eq \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"",
                cmp(
                    "schemas",
                    Eq,
                    s("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                ),
            ),
            (
                "userType eq \"Employee\" and (emails co \"example.com\" or emails.value co \"example.org\")",
                and(
                    cmp("userType", Eq, s("Employee")),
                    or(
                        cmp("emails", Co, s("example.com")),
                        cmp("emails.value", Co, s("example.org")),
                    ),
                ),
            ),
            (
                "userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
                and(
                    cmp("userType", Ne, s("Employee")),
                    not(or(
                        cmp("emails", Co, s("example.com")),
                        cmp("emails.value", Co, s("example.org")),
                    )),
                ),
            ),
            (
                "userType eq \"Employee\" and (emails.type eq \"work\")",
                and(
                    cmp("userType", Eq, s("Employee")),
                    cmp("emails.type", Eq, s("work")),
                ),
            ),
            (
                "userType eq \"Employee\" and emails[type eq \"work\" and value co \"@example.com\"]",
                and(
                    cmp("userType", Eq, s("Employee")),
                    vp(
                        "emails",
                        and(
                            cmp("type", Eq, s("work")),
                            cmp("value", Co, s("@example.com")),
                        ),
                    ),
                ),
            ),
            (
                "emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\" and value co \"@foo.com\"]",
                or(
                    vp(
                        "emails",
                        and(
                            cmp("type", Eq, s("work")),
                            cmp("value", Co, s("@example.com")),
                        ),
                    ),
                    vp(
                        "ims",
                        and(
                            cmp("type", Eq, s("xmpp")),
                            cmp("value", Co, s("@foo.com")),
                        ),
                    ),
                ),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(pf(input), expected, "input: {input}");
        }
    }

    #[test]
    fn idp_forms() {
        let cases: Vec<(&str, Filter)> = vec![
            (
                "userName eq \"jane@example.com\"",
                cmp("userName", Eq, s("jane@example.com")),
            ),
            ("externalId eq \"abc\"", cmp("externalId", Eq, s("abc"))),
            ("displayName eq \"Group\"", cmp("displayName", Eq, s("Group"))),
            (
                "emails[type eq \"work\"].value eq \"a@b.c\"",
                vp(
                    "emails",
                    and(cmp("type", Eq, s("work")), cmp("value", Eq, s("a@b.c"))),
                ),
            ),
            (
                "emails[type eq \"work\" or type eq \"home\"].value pr",
                vp(
                    "emails",
                    and(
                        or(cmp("type", Eq, s("work")), cmp("type", Eq, s("home"))),
                        pr("value"),
                    ),
                ),
            ),
            ("members[value eq \"x\"]", vp("members", cmp("value", Eq, s("x")))),
            (
                "members[value eq \"x\"] and displayName eq \"G\"",
                and(
                    vp("members", cmp("value", Eq, s("x"))),
                    cmp("displayName", Eq, s("G")),
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"42\"",
                cmp(
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                    Eq,
                    s("42"),
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m\"",
                cmp(
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                    Eq,
                    s("m"),
                ),
            ),
            ("members.$ref pr", pr("members.$ref")),
            ("active eq true", cmp("active", Eq, CompValue::Bool(true))),
        ];
        for (input, expected) in cases {
            assert_eq!(pf(input), expected, "input: {input}");
        }
    }

    #[test]
    fn attr_path_structure() {
        let p = ap("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName");
        assert_eq!(
            p.schema.as_deref(),
            Some("urn:ietf:params:scim:schemas:core:2.0:User")
        );
        assert_eq!(p.attr, "name");
        assert_eq!(p.sub_attr.as_deref(), Some("givenName"));
        assert!(p.is_sub("NAME", "givenname"));
        assert!(!p.is("name"));
        assert_eq!(
            p.to_string(),
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"
        );

        let p = ap("  userName ");
        assert!(p.is("USERNAME"));
        assert!(!p.is_sub("userName", "x"));
        assert_eq!(p.schema, None);

        let p = ap("members.$ref");
        assert!(p.is_sub("members", "$ref"));

        let p = ap("URN:ietf:params:scim:schemas:extension:enterprise:2.0:User");
        assert!(p.is_bare_schema());
        assert_eq!(
            p.schema.as_deref(),
            Some("URN:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attr, "");
        assert_eq!(
            p.to_string(),
            "URN:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        );

        let p = ap("urn:acme:ext:department");
        assert_eq!(p.schema.as_deref(), Some("urn:acme:ext"));
        assert!(p.is("department"));
    }

    #[test]
    fn attr_path_errors() {
        let cases: Vec<(&str, usize, &str)> = vec![
            ("", 0, "empty attribute path"),
            ("   ", 0, "empty attribute path"),
            ("1abc", 0, "must start with a letter"),
            ("name.1x", 5, "must start with a letter"),
            ("a.b.c", 3, "too many '.'"),
            ("name.", 5, "missing sub-attribute name"),
            ("foo:bar", 3, "':' in attribute path"),
            ("user name", 4, "invalid character ' '"),
            ("emails[type eq \"work\"]", 6, "invalid character '['"),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:",
                43,
                "missing attribute name",
            ),
            ("urn:x", 0, "incomplete schema URN"),
            ("urn::x:y", 3, "empty segment"),
            ("us€r", 2, "invalid character '€'"),
        ];
        for (input, pos, msg) in cases {
            let e = parse_attr_path(input).unwrap_err();
            assert_eq!(e.position, pos, "input {input:?}: {e}");
            assert!(e.message.contains(msg), "input {input:?}: {e}");
        }
    }

    #[test]
    fn string_escapes() {
        let cases: Vec<(&str, &str)> = vec![
            (r#"a eq "q\"q""#, "q\"q"),
            (r#"a eq "b\\s""#, "b\\s"),
            (r#"a eq "s\/l""#, "s/l"),
            (r#"a eq "\b\f\n\r\t""#, "\u{8}\u{c}\n\r\t"),
            (r#"a eq "\u00e9\u00C9""#, "éÉ"),
            (r#"a eq "\ud83d\ude00""#, "😀"),
            (r#"a eq "héllo 😀""#, "héllo 😀"),
            (r#"a eq """#, ""),
            (r#"a eq "(x) [y] and or""#, "(x) [y] and or"),
        ];
        for (input, expected) in cases {
            assert_eq!(pf(input), cmp("a", Eq, s(expected)), "input: {input}");
        }
    }

    #[test]
    fn numbers_booleans_null() {
        let cases: Vec<(&str, CompValue)> = vec![
            ("a eq 0", n("0")),
            ("a eq 42", n("42")),
            ("a eq -7", n("-7")),
            ("a eq 3.25", n("3.25")),
            ("a eq -0.5e10", n("-0.5e10")),
            ("a eq 1E+3", n("1E+3")),
            ("a eq 2e-3", n("2e-3")),
            ("a eq true", CompValue::Bool(true)),
            ("a eq FALSE", CompValue::Bool(false)),
            ("a eq Null", CompValue::Null),
        ];
        for (input, value) in cases {
            assert_eq!(pf(input), cmp("a", Eq, value), "input: {input}");
        }
    }

    #[test]
    fn precedence_and_case() {
        let a = || cmp("a", Eq, n("1"));
        let b = || cmp("b", Eq, n("2"));
        let c = || cmp("c", Eq, n("3"));
        assert_eq!(pf("a eq 1 or b eq 2 and c eq 3"), or(a(), and(b(), c())));
        assert_eq!(pf("a eq 1 and b eq 2 or c eq 3"), or(and(a(), b()), c()));
        assert_eq!(pf("(a eq 1 or b eq 2) and c eq 3"), and(or(a(), b()), c()));
        assert_eq!(pf("a eq 1 and b eq 2 and c eq 3"), and(and(a(), b()), c()));
        assert_eq!(pf("a eq 1 or b eq 2 or c eq 3"), or(or(a(), b()), c()));
        assert_eq!(pf("not (a eq 1) and b eq 2"), and(not(a()), b()));
        assert_eq!(pf("a eq 1 AND b eq 2 Or c eq 3"), or(and(a(), b()), c()));
        assert_eq!(pf("NOT (a eq 1)"), not(a()));
        assert_eq!(pf("a PR"), pr("a"));
        // Lenient whitespace.
        assert_eq!(pf("  \t(  a eq 1\t)  "), a());
        assert_eq!(pf("not(a eq 1)"), not(a()));
        assert_eq!(pf("a   eq\t1 \r\n or  b eq 2"), or(a(), b()));
        assert_eq!(pf("((((a eq 1))))"), a());
        // Parens and not inside a value filter.
        assert_eq!(
            pf("emails[not (type eq \"work\") and (value co \"x\")]"),
            vp(
                "emails",
                and(not(cmp("type", Eq, s("work"))), cmp("value", Co, s("x")))
            )
        );
        // An attribute literally called "not".
        assert_eq!(pf("not pr"), pr("not"));
    }

    #[test]
    fn patch_paths() {
        let uuid = "2819c223-7f76-453a-919d-413861904646";
        let pp = |attr: &str, filter: Option<Filter>, sub: Option<&str>| PatchPath {
            attr: ap(attr),
            filter,
            sub_attr: sub.map(str::to_string),
        };
        let cases: Vec<(String, PatchPath)> = vec![
            ("members".into(), pp("members", None, None)),
            ("name.givenName".into(), pp("name.givenName", None, None)),
            (
                "emails[type eq \"work\"].value".into(),
                pp("emails", Some(cmp("type", Eq, s("work"))), Some("value")),
            ),
            (
                format!("members[value eq \"{uuid}\"]"),
                pp("members", Some(cmp("value", Eq, s(uuid))), None),
            ),
            (
                format!("members[value eq \"{uuid}\"].displayName"),
                pp(
                    "members",
                    Some(cmp("value", Eq, s(uuid))),
                    Some("displayName"),
                ),
            ),
            (
                "emails[type eq \"work\" and value ew \"example.com\"]".into(),
                pp(
                    "emails",
                    Some(and(
                        cmp("type", Eq, s("work")),
                        cmp("value", Ew, s("example.com")),
                    )),
                    None,
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber".into(),
                pp(
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                    None,
                    None,
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value".into(),
                pp(
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                    None,
                    None,
                ),
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq \"work\"].value".into(),
                pp(
                    "urn:ietf:params:scim:schemas:core:2.0:User:emails",
                    Some(cmp("type", Eq, s("work"))),
                    Some("value"),
                ),
            ),
            (" members ".into(), pp("members", None, None)),
        ];
        for (input, expected) in cases {
            let got = parse_patch_path(&input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got, expected, "input: {input}");
            assert!(!got.is_bare_schema());
        }

        let bare =
            parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").unwrap();
        assert!(bare.is_bare_schema());
        assert_eq!(
            bare.attr.schema.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(bare.attr.attr, "");
        assert_eq!(bare.filter, None);
        assert_eq!(bare.sub_attr, None);
    }

    #[test]
    fn patch_path_errors() {
        let cases: Vec<(&str, usize, &str)> = vec![
            ("", 0, "empty path"),
            ("  ", 0, "empty path"),
            ("emails[", 7, "filter ended unexpectedly"),
            ("emails[type eq \"work\"", 21, "missing ']'"),
            ("emails[]", 7, "empty value filter"),
            ("emails[type eq \"work\"].value.x", 28, "too many '.'"),
            (
                "emails[type eq \"work\"].",
                23,
                "missing sub-attribute name",
            ),
            (
                "emails[type eq \"work\"] x",
                23,
                "unexpected \"x\" after the path",
            ),
            (
                "name givenName",
                5,
                "unexpected \"givenName\" after the path",
            ),
            ("emails and x", 7, "after the path"),
            (
                "name.givenName[value eq \"x\"]",
                0,
                "not the sub-attribute path",
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User[x eq 1]",
                58,
                "cannot follow the schema URN",
            ),
            ("emails[a[b eq 1]]", 8, "nested value filter"),
            ("\"emails\"", 0, "must start with an attribute name"),
            ("1x", 0, "must start with a letter"),
            ("emails[type eq work]", 15, "unquoted value \"work\""),
        ];
        for (input, pos, msg) in cases {
            let e = parse_patch_path(input).unwrap_err();
            assert_eq!(e.position, pos, "input {input:?}: {e}");
            assert!(e.message.contains(msg), "input {input:?}: {e}");
        }
    }

    #[test]
    fn filter_errors() {
        let cases: Vec<(&str, usize, &str)> = vec![
            // Empty input.
            ("", 0, "empty filter"),
            (" \t ", 0, "empty filter"),
            // Trailing garbage.
            (
                "title pr x",
                9,
                "unexpected \"x\" after a complete expression",
            ),
            ("a eq \"b\" \"c\"", 9, "unexpected string \"c\""),
            ("title pr )", 9, "unbalanced ')'"),
            ("title pr ]", 9, "unbalanced ']'"),
            ("title pr [", 9, "unexpected '['"),
            // Unknown operator.
            (
                "userName like \"x\"",
                9,
                "unknown operator \"like\" (expected eq, ne, co, sw, ew, gt, ge, lt, le or pr)",
            ),
            ("userName", 8, "missing operator after \"userName\""),
            ("userName \"x\"", 9, "expected an operator"),
            // Missing value.
            ("userName eq", 11, "missing value after \"eq\""),
            ("(userName eq)", 12, "expected a value after \"eq\""),
            // Bare word as value.
            ("userName eq jane", 12, "unquoted value \"jane\""),
            // Unbalanced parens and brackets.
            (
                "(title pr",
                9,
                "missing ')' to close the '(' at character 0",
            ),
            ("(title pr or (a pr)", 19, "missing ')'"),
            ("title pr)", 8, "unbalanced ')'"),
            ("()", 1, "empty parentheses"),
            ("(title pr x)", 10, "expected \"and\", \"or\" or ')'"),
            (
                "emails[type eq \"work\"",
                21,
                "missing ']' to close the '[' at character 6",
            ),
            (
                "emails[type eq \"work\")",
                21,
                "expected \"and\", \"or\" or ']'",
            ),
            (
                "(emails[type eq \"work\")",
                22,
                "expected \"and\", \"or\" or ']'",
            ),
            ("emails[]", 7, "empty value filter"),
            ("emails]", 6, "expected an operator"),
            // Bad string escapes / strings.
            (r#"a eq "x\qy""#, 7, "invalid escape \"\\q\" in string"),
            (r#"a eq "\u12G4""#, 6, "invalid unicode escape"),
            (r#"a eq "\u12""#, 6, "invalid unicode escape"),
            (r#"a eq "\ud83d""#, 6, "unpaired high surrogate"),
            (r#"a eq "\ud83dx""#, 6, "unpaired high surrogate"),
            (r#"a eq "\ud83d\u0041""#, 6, "unpaired high surrogate"),
            (r#"a eq "\ude00""#, 6, "unpaired low surrogate"),
            ("a eq \"abc", 5, "unterminated string"),
            ("a eq \"abc\\", 5, "unterminated string"),
            ("a eq \"a\nb\"", 7, "raw control character U+000A"),
            ("a eq \"a\u{0}b\"", 7, "raw control character U+0000"),
            // Invalid numbers.
            ("a eq 01", 5, "invalid number \"01\""),
            ("a eq 1.", 5, "invalid number"),
            ("a eq .5", 5, "invalid number"),
            ("a eq +1", 5, "invalid number"),
            ("a eq 1e", 5, "invalid number"),
            ("a eq -", 5, "invalid number"),
            ("a eq 1x", 5, "invalid number"),
            ("a eq 1.2.3", 5, "invalid number"),
            // Attribute names.
            (
                "1abc eq \"x\"",
                0,
                "attribute name \"1abc\" must start with a letter",
            ),
            (
                "name.2x eq \"x\"",
                5,
                "sub-attribute name \"2x\" must start with a letter",
            ),
            ("a.b.c pr", 3, "too many '.'"),
            ("foo:bar pr", 3, "':' in attribute path"),
            ("us€r pr", 2, "invalid character '€'"),
            ("\"userName\" eq \"x\"", 0, "expected an attribute path"),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User pr",
                0,
                "is a schema URN, not an attribute",
            ),
            // Keywords in the wrong place.
            (
                "title pr and",
                12,
                "filter ended unexpectedly after \"and\"",
            ),
            ("title pr and or a pr", 13, "unexpected \"or\""),
            ("and a pr", 0, "unexpected \"and\""),
            (
                "not title pr",
                0,
                "\"not\" must be followed by a parenthesised filter",
            ),
            ("not not (a pr)", 0, "\"not\" must be followed"),
            ("not", 0, "\"not\" must be followed"),
            // Value paths.
            ("emails[type[a eq 1]]", 11, "nested value filter"),
            ("name.givenName[a eq 1]", 0, "not the sub-attribute path"),
            (
                "emails[type eq \"work\"].value",
                28,
                "missing operator after \".value\"",
            ),
            ("emails[type eq \"work\"].value.x eq 1", 28, "too many '.'"),
            (
                "emails[type eq \"work\"].value like 1",
                29,
                "unknown operator \"like\"",
            ),
        ];
        for (input, pos, msg) in cases {
            let e = match parse_filter(input) {
                Ok(f) => panic!("input {input:?} parsed unexpectedly: {f:?}"),
                Err(e) => e,
            };
            assert_eq!(e.position, pos, "input {input:?}: {e}");
            assert!(e.message.contains(msg), "input {input:?}: {e}");
        }
    }

    #[test]
    fn error_display() {
        let e = parse_filter("userName like \"x\"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at character 9: unknown operator \"like\" (expected eq, ne, co, sw, ew, gt, ge, lt, le or pr)"
        );
        // Long tokens are truncated in messages.
        let long = format!("{} pr x", "a".repeat(200));
        let e = parse_filter(&format!("b pr {long}")).unwrap_err();
        assert!(e.message.len() < 200, "{e}");
        assert!(e.message.contains('…'), "{e}");
    }

    #[test]
    fn limits() {
        // Too long.
        let long = format!("userName eq \"{}\"", "x".repeat(MAX_FILTER_LEN));
        let e = parse_filter(&long).unwrap_err();
        assert_eq!(e.position, MAX_FILTER_LEN);
        assert!(e.message.contains("too long"), "{e}");
        assert!(parse_patch_path(&long).is_err());
        assert!(parse_attr_path(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
        // Exactly at the limit is fine.
        let ok = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN - 7));
        assert_eq!(ok.len(), MAX_FILTER_LEN);
        assert!(parse_filter(&ok).is_ok());

        // Depth MAX_DEPTH is accepted; one more is rejected.
        let nest = |d: usize| format!("{}a pr{}", "(".repeat(d), ")".repeat(d));
        assert_eq!(pf(&nest(MAX_DEPTH)), pr("a"));
        let e = parse_filter(&nest(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(e.position, MAX_DEPTH);
        assert!(e.message.contains("nested too deeply"), "{e}");

        let nots = |d: usize| format!("{}a pr{}", "not (".repeat(d), ")".repeat(d));
        assert!(parse_filter(&nots(MAX_DEPTH)).is_ok());
        assert!(parse_filter(&nots(MAX_DEPTH + 1))
            .unwrap_err()
            .message
            .contains("nested too deeply"));

        // Pathological nesting never overflows the stack.
        for input in [
            "(".repeat(MAX_FILTER_LEN),
            "not (".repeat(MAX_FILTER_LEN / 5),
            "a[".repeat(MAX_FILTER_LEN / 2),
            format!("{}a pr{}", "(".repeat(2000), ")".repeat(2000)),
        ] {
            assert!(parse_filter(&input).is_err());
            assert!(parse_patch_path(&input).is_err());
        }
        // Long flat chains are fine (iterative, not recursive).
        let chain = vec!["a pr"; 500].join(" or ");
        assert!(parse_filter(&chain).is_ok());
        let chain = vec!["a pr"; 400].join(" and ");
        assert!(parse_filter(&chain).is_ok());
    }

    /// Tiny deterministic LCG (no crates).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Lcg(0x5eed_1234_abcd_0001);
        // Raw random bytes (lossily made UTF-8).
        for _ in 0..3000 {
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let input = String::from_utf8_lossy(&bytes);
            let _ = parse_filter(&input);
            let _ = parse_patch_path(&input);
            let _ = parse_attr_path(&input);
        }
        // Random sequences of grammar fragments: reaches deep parser states.
        const FRAGS: &[&str] = &[
            " ",
            "\t",
            "(",
            ")",
            "[",
            "]",
            "\"",
            "\\",
            "\\u",
            "d83d",
            "\\ude00",
            "\\n",
            ".",
            ":",
            "urn:",
            "urn:a:b:2.0:User",
            "2.0",
            "a",
            "emails",
            "type",
            "value",
            "$ref",
            "eq",
            "EQ",
            "pr",
            "and",
            "or",
            "not",
            "like",
            "true",
            "null",
            "-",
            "0",
            "1.5e3",
            "01",
            "\"x\"",
            "\u{0}",
            "é",
            "😀",
            "\u{7f}",
            "\n",
        ];
        for _ in 0..4000 {
            let parts = rng.below(24);
            let mut input = String::new();
            for _ in 0..parts {
                input.push_str(FRAGS[rng.below(FRAGS.len())]);
            }
            let _ = parse_patch_path(&input);
            let _ = parse_attr_path(&input);
            // Error positions always lie within the input.
            if let Err(e) = parse_filter(&input) {
                assert!(e.position <= input.len(), "{input:?}: {e}");
            }
        }
        // Mutations of valid filters: reaches deep parser states and errors.
        const SEEDS: &[&str] = &[
            "userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
            "emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\"]",
            "emails[type eq \"work\"].value eq \"a@b.c\"",
            "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName co \"O'Malley\\u00e9\"",
            "(a eq 1 or b ge -2.5e3) and not (c eq true) and d pr",
        ];
        let (mut ok, mut bad) = (0usize, 0usize);
        for _ in 0..4000 {
            let mut chars: Vec<char> = SEEDS[rng.below(SEEDS.len())].chars().collect();
            for _ in 0..=rng.below(3) {
                let at = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 if at < chars.len() => {
                        let end = (at + 1 + rng.below(6)).min(chars.len());
                        chars.drain(at..end);
                    }
                    1 => {
                        let frag = FRAGS[rng.below(FRAGS.len())];
                        chars.splice(at..at, frag.chars());
                    }
                    _ if at < chars.len() => chars[at] = ' ',
                    _ => {}
                }
            }
            let input: String = chars.into_iter().collect();
            match parse_filter(&input) {
                Ok(_) => ok += 1,
                Err(e) => {
                    bad += 1;
                    assert!(e.position <= input.len(), "{input:?}: {e}");
                }
            }
            let _ = parse_patch_path(&input);
        }
        // Sanity: both outcomes are exercised.
        assert!(ok > 0 && bad > 0, "ok {ok}, bad {bad}");
    }
}
