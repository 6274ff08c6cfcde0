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

pub mod ast;
pub mod lexer;
pub mod parser;

pub use ast::*;
pub use parser::{parse_attr_path, parse_filter, parse_patch_path};
