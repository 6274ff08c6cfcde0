//! The filter lexer: SCIM filter text into tokens (words, JSON strings, brackets), with
//! the shared error and quoting helpers of the parser.

use crate::scim::filter::ast::{CompValue, CompareOp, FilterError, MAX_FILTER_LEN};

pub(crate) fn err(position: usize, message: impl Into<String>) -> FilterError {
    FilterError {
        position,
        message: message.into(),
    }
}

/// Quotes a token for an error message (escaped, truncated to 60 chars).
pub(crate) fn q(s: &str) -> String {
    pub(crate) const MAX: usize = 60;
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

pub(crate) fn check_len(input: &str, what: &str) -> Result<(), FilterError> {
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

pub(crate) fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

pub(crate) fn is_delim(c: char) -> bool {
    is_ws(c) || matches!(c, '(' | ')' | '[' | ']' | '"')
}

pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

pub(crate) const OPERATOR_LIST: &str = "eq, ne, co, sw, ew, gt, ge, lt, le or pr";

pub(crate) fn is_operator(word: &str) -> bool {
    word.eq_ignore_ascii_case("pr") || CompareOp::parse(word).is_some()
}

// ---------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok<'a> {
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
pub(crate) struct Token<'a> {
    pub(crate) tok: Tok<'a>,
    pub(crate) pos: usize,
}

pub(crate) fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::Word(w) => q(w),
        Tok::Str(s) => format!("string {}", q(s)),
        Tok::LParen => "'('".to_string(),
        Tok::RParen => "')'".to_string(),
        Tok::LBracket => "'['".to_string(),
        Tok::RBracket => "']'".to_string(),
    }
}

pub(crate) type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

pub(crate) fn cur_pos(it: &mut Chars<'_>, end: usize) -> usize {
    it.peek().map_or(end, |&(i, _)| i)
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token<'_>>, FilterError> {
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
pub(crate) fn lex_string(
    src: &str,
    start: usize,
    it: &mut Chars<'_>,
) -> Result<String, FilterError> {
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
pub(crate) fn lex_hex4(src: &str, esc_pos: usize, it: &mut Chars<'_>) -> Result<u16, FilterError> {
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
    crate::hex::decode::<2>(&digits)
        .map(u16::from_be_bytes)
        .ok_or_else(|| {
            err(
                esc_pos,
                format!("invalid unicode escape \"\\u{digits}\" in string"),
            )
        })
}

/// Decodes a `\uXXXX` escape (the `\u` has been consumed), including a
/// following `\uXXXX` low surrogate when the first is a high surrogate.
pub(crate) fn lex_unicode_escape(
    src: &str,
    esc_pos: usize,
    it: &mut Chars<'_>,
) -> Result<char, FilterError> {
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
pub(crate) fn is_json_number(s: &str) -> bool {
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
pub(crate) fn word_value(word: &str, pos: usize) -> Result<CompValue, FilterError> {
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
