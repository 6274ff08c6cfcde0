//! The filter parser: recursive descent over the lexer's tokens into filters, PATCH paths
//! and attribute paths, with the name and URN rules of RFC 7643 §2.1.

use crate::scim::filter::ast::*;
use crate::scim::filter::lexer::*;

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

/// Validates an ATTRNAME (`ALPHA *(ALPHA / DIGIT / "-" / "_")` or `$ref`).
pub(crate) fn validate_attr_name(name: &str, pos: usize, what: &str) -> Result<(), FilterError> {
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
pub(crate) fn validate_urn(urn: &str, pos: usize) -> Result<(), FilterError> {
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
pub(crate) fn is_version(seg: &str) -> bool {
    !seg.is_empty()
        && seg
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses the text of an attribute path starting at byte `pos` of the input.
pub(crate) fn parse_path_text(
    text: &str,
    pos: usize,
    allow_bare: bool,
) -> Result<AttrPath, FilterError> {
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
pub(crate) fn parse_dot_sub(word: &str, pos: usize) -> Result<String, FilterError> {
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

pub(crate) struct Parser<'a> {
    pub(crate) toks: Vec<Token<'a>>,
    pub(crate) idx: usize,
    /// Input length: the position reported for "unexpected end" errors.
    pub(crate) end: usize,
    pub(crate) depth: usize,
    pub(crate) in_value_path: bool,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(toks: Vec<Token<'a>>, end: usize) -> Self {
        Parser {
            toks,
            idx: 0,
            end,
            depth: 0,
            in_value_path: false,
        }
    }

    pub(crate) fn peek(&self) -> Option<&Token<'a>> {
        self.toks.get(self.idx)
    }

    pub(crate) fn peek_second(&self) -> Option<&Token<'a>> {
        self.toks.get(self.idx.saturating_add(1))
    }

    pub(crate) fn peek_pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    pub(crate) fn bump(&mut self) {
        self.idx = self.idx.saturating_add(1);
    }

    /// The next token if it is a word equal (ASCII case-insensitive) to `kw`.
    pub(crate) fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(kw))
    }

    /// The next token if it is a word starting with '.' (a `.sub` after `]`).
    pub(crate) fn peek_dot_word(&self) -> Option<(&'a str, usize)> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                pos,
            }) if w.starts_with('.') => Some((*w, *pos)),
            _ => None,
        }
    }

    /// Description of the previous token, for "ended after X" messages.
    pub(crate) fn prev_desc(&self) -> Option<String> {
        let i = self.idx.checked_sub(1)?;
        self.toks.get(i).map(|t| describe(&t.tok))
    }

    pub(crate) fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
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

    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    pub(crate) fn expect_end(&self) -> Result<(), FilterError> {
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

    pub(crate) fn parse_or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_and()?;
        while self.peek_keyword("or") {
            self.bump();
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    pub(crate) fn parse_and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_unary()?;
        while self.peek_keyword("and") {
            self.bump();
            let right = self.parse_unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    pub(crate) fn parse_unary(&mut self) -> Result<Filter, FilterError> {
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
    pub(crate) fn parse_group(&mut self) -> Result<Filter, FilterError> {
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
    pub(crate) fn parse_attr_expr(
        &mut self,
        word: &'a str,
        pos: usize,
    ) -> Result<Filter, FilterError> {
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
    pub(crate) fn parse_value_path_filter(
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
    pub(crate) fn parse_condition(
        &mut self,
        path: AttrPath,
        word: &str,
    ) -> Result<Filter, FilterError> {
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

    pub(crate) fn parse_value(&mut self, op_word: &str) -> Result<CompValue, FilterError> {
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
