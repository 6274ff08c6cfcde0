//! Keeps the layout honest: every source file says its concept in a `//!` line, no module is
//! over `MAX_LINES` lines of non-test code, the folders depend on each other only in the
//! documented direction (`LAYERS`), and no two modules depend on each other, directly or
//! through others. A dependency is any way one file's code needs another's: a `use` (grouped,
//! nested, glob, `self`/`super`-relative, re-exported), a path written in code
//! (`crate::a::b::f()`), and an `impl` block for a type defined in another module, which
//! counts both ways (the file extends that module, and the module's type needs the file's
//! methods). The checker is `check`, a function over (path, text) pairs, so its own tests run
//! it on planted sources.

// A test: a panic is how it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Non-test lines a module may hold (tests may follow, in its `#[cfg(test)]` module).
const MAX_LINES: usize = 800;

/// The top-level folders (and single-file modules) from the bottom up, as docs/layout.md
/// documents them: a module may depend on its own layer and the layers below, never above.
/// `lib` is the crate root, which only declares the folders.
const LAYERS: &[&[&str]] = &[
    &["http", "hex"],
    &["scim"],
    &["runtime"],
    &["config"],
    &["drupal"],
    &["flows"],
    &["host"],
    &["lib"],
];

/// A dependency the check lets through, with the reason it cannot go yet. Empty is the goal;
/// an entry whose dependency no longer exists fails the check, so the list cannot go stale.
/// An entry drops every occurrence of that one edge (the failure message lists them), e.g.
/// `Exception { from: "drupal::upstream", to: "drupal::upstream::gate", why: "…" }` breaks
/// the cycle an `impl Gate` in `gate.rs` makes, `Gate` being defined in `upstream/mod.rs`.
struct Exception {
    from: &'static str,
    to: &'static str,
    #[allow(dead_code)]
    why: &'static str,
}

const EXCEPTIONS: &[Exception] = &[];

// ---------------------------------------------------------------------------------------
// Tokens: identifiers, `::` and punctuation, with their lines; comments, strings, character
// literals and numbers are dropped, so nothing in them reads as a path.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
    /// `'a`: kept apart from `'a'` so that `impl<'a>` and `&'a T` parse.
    Lifetime,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(text: &str) -> Vec<Token> {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if (ch == 'r' || (ch == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(ch == 'b')), '"' | '#')
            && {
                // A raw string `r#"…"#` (not a raw identifier `r#type`).
                let mut j = i + 1 + usize::from(ch == 'b');
                while at(j) == '#' {
                    j += 1;
                }
                at(j) == '"'
            }
        {
            i += 1 + usize::from(ch == 'b');
            let mut hashes = 0;
            while at(i) == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                if c[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
        } else if ch == '"' || (ch == 'b' && at(i + 1) == '"') {
            i += if ch == 'b' { 2 } else { 1 };
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            i += if ch == 'b' { 1 } else { 0 };
            if at(i + 1) == '\\' {
                // '\n', '\'', '\u{…}'
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Lifetime,
                    line,
                });
            }
        } else if ch.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let raw = ch == 'r' && at(i + 1) == '#';
            if raw {
                i += 2;
            }
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // A raw identifier is never a keyword.
            let word = if raw { format!("r#{word}") } else { word };
            out.push(Token {
                tok: Tok::Ident(word),
                line,
            });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::Sep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_punct(t: Option<&Token>, p: char) -> bool {
    t.is_some_and(|t| t.tok == Tok::Punct(p))
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t.map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// The index after the bracketed group opening at `i` (`(`, `[`, `{` or `<`, the last
/// counted alone since `->` and `=>` hold a `>` too).
fn skip_group(toks: &[Token], i: usize) -> usize {
    let (open, close) = match toks[i].tok {
        Tok::Punct('<') => ('<', '>'),
        _ => {
            let mut depth = 0usize;
            let mut j = i;
            while j < toks.len() {
                match toks[j].tok {
                    Tok::Punct('(' | '[' | '{') => depth += 1,
                    Tok::Punct(')' | ']' | '}') => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            return j;
        }
    };
    let mut depth = 0usize;
    let mut j = i;
    while j < toks.len() {
        if toks[j].tok == Tok::Punct(open) {
            depth += 1;
        } else if toks[j].tok == Tok::Punct(close)
            && !(j > 0 && matches!(toks[j - 1].tok, Tok::Punct('-' | '=')))
        {
            depth -= 1;
            if depth == 0 {
                return j + 1;
            }
        }
        j += 1;
    }
    j
}

/// The tokens without the items under `#[cfg(test)]` (test modules, test-only imports and
/// helpers): tests may use anything.
fn without_tests(toks: Vec<Token>) -> Vec<Token> {
    let is_cfg_test = |i: usize| {
        let want = [
            Tok::Punct('#'),
            Tok::Punct('['),
            Tok::Ident("cfg".into()),
            Tok::Punct('('),
            Tok::Ident("test".into()),
            Tok::Punct(')'),
            Tok::Punct(']'),
        ];
        want.iter()
            .enumerate()
            .all(|(k, w)| toks.get(i + k).is_some_and(|t| t.tok == *w))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if !is_cfg_test(i) {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += 7;
        // Further attributes, then the item: up to its `;` or its closing brace.
        while is_punct(toks.get(i), '#') && is_punct(toks.get(i + 1), '[') {
            i = skip_group(&toks, i + 1);
        }
        while i < toks.len() {
            match toks[i].tok {
                Tok::Punct(';') => {
                    i += 1;
                    break;
                }
                Tok::Punct('{') => {
                    i = skip_group(&toks, i);
                    break;
                }
                Tok::Punct('(' | '[') => i = skip_group(&toks, i),
                _ => i += 1,
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// What one file says: its imports, the names it defines, its impl blocks, the paths in its
// code.

#[derive(Clone, Debug, PartialEq)]
enum Leaf {
    /// `use a::b::C;` or `use a::b::C as D;` (the name it binds); `{self}` binds the module.
    Name(String),
    /// `use a::b::*;`
    Glob,
}

#[derive(Clone, Debug)]
struct Import {
    path: Vec<String>,
    leaf: Leaf,
    line: usize,
}

#[derive(Default, Debug)]
struct Facts {
    imports: Vec<Import>,
    /// Names of the module's own items (types, functions, constants), at its top level.
    defs: BTreeSet<String>,
    /// The self type of each `impl` block (its path as written) and the block's line.
    impls: Vec<(Vec<String>, usize)>,
    /// Paths of two or more segments written in code, outside imports.
    paths: Vec<(Vec<String>, usize)>,
}

/// Reads one `use` tree at `i` into `out`; returns the index after it.
fn use_tree(toks: &[Token], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<Import>) -> usize {
    loop {
        match toks.get(i).map(|t| &t.tok) {
            // A leading `::` names an external crate: a segment no module is named.
            Some(Tok::Sep) => {
                if prefix.is_empty() {
                    prefix.push("::".into());
                }
                i += 1;
            }
            Some(Tok::Ident(name)) => {
                prefix.push(name.clone());
                let line = toks[i].line;
                i += 1;
                if toks.get(i).is_some_and(|t| t.tok == Tok::Sep) {
                    continue;
                }
                let mut bound = name.clone();
                if ident(toks.get(i)) == Some("as") {
                    bound = ident(toks.get(i + 1)).unwrap_or("_").to_string();
                    i += 2;
                }
                if name == "self" {
                    prefix.pop();
                    if ident(toks.get(i - 1)) == Some("self") {
                        bound = prefix.last().cloned().unwrap_or_default();
                    }
                }
                out.push(Import {
                    path: prefix,
                    leaf: Leaf::Name(bound),
                    line,
                });
                return i;
            }
            Some(Tok::Punct('*')) => {
                out.push(Import {
                    path: prefix,
                    leaf: Leaf::Glob,
                    line: toks[i].line,
                });
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.tok) {
                        None => return i,
                        Some(Tok::Punct('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        _ => i = use_tree(toks, i, prefix.clone(), out),
                    }
                }
            }
            _ => return i,
        }
    }
}

/// Reads a type at `i` as a path (`&'a mut dyn a::B<T>` → `[a, B]`); returns it and the index
/// after it. Tuples, slices and the like give an empty path.
fn type_path(toks: &[Token], mut i: usize) -> (Vec<String>, usize) {
    while let Some(t) = toks.get(i) {
        match &t.tok {
            Tok::Punct('&' | '!') | Tok::Lifetime => i += 1,
            Tok::Ident(w) if w == "mut" || w == "dyn" || w == "const" => i += 1,
            _ => break,
        }
    }
    let mut path = Vec::new();
    while let Some(Tok::Ident(w)) = toks.get(i).map(|t| &t.tok) {
        if w == "for" || w == "where" {
            break;
        }
        path.push(w.clone());
        i += 1;
        if is_punct(toks.get(i), '<') {
            i = skip_group(toks, i);
        }
        if !toks.get(i).is_some_and(|t| t.tok == Tok::Sep) {
            break;
        }
        i += 1;
    }
    (path, i)
}

/// A path written inside `nest` inline `mod x { … }` blocks, as seen from the file's module
/// (the graph's node): their `super::`s climb to the file first.
fn from_file(mut path: Vec<String>, nest: usize) -> Vec<String> {
    let supers = path.iter().take_while(|s| *s == "super").count();
    if nest > 0 && supers > 0 {
        path.drain(..supers.min(nest));
        if supers <= nest {
            path.insert(0, "self".into());
        }
    }
    path
}

fn facts(toks: &[Token]) -> Facts {
    let mut f = Facts::default();
    let mut depth = 0usize;
    // The depths inside the inline modules the scan is in.
    let mut inline: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let prev = if i == 0 { None } else { toks.get(i - 1) };
        match &toks[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|d| *d > depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w)
                if w == "mod"
                    && ident(toks.get(i + 1)).is_some()
                    && is_punct(toks.get(i + 2), '{') =>
            {
                inline.push(depth + 1);
            }
            Tok::Ident(w) if w == "use" => {
                let from = f.imports.len();
                i = use_tree(toks, i + 1, Vec::new(), &mut f.imports);
                for imp in &mut f.imports[from..] {
                    imp.path = from_file(std::mem::take(&mut imp.path), inline.len());
                }
                continue;
            }
            Tok::Ident(w)
                if depth == 0
                    && matches!(
                        w.as_str(),
                        "struct" | "enum" | "trait" | "type" | "union" | "fn" | "const" | "static"
                    ) =>
            {
                if let Some(name) = ident(toks.get(i + 1)) {
                    f.defs.insert(name.to_string());
                }
            }
            // An item `impl`, not `impl Trait` in a signature (after `:`, `->`, `(`, `<`, `&`).
            Tok::Ident(w)
                if w == "impl"
                    && (prev.is_none()
                        || matches!(
                            prev.map(|t| &t.tok),
                            Some(Tok::Punct(';' | '}' | '{' | ']'))
                        )
                        || ident(prev) == Some("unsafe")) =>
            {
                let line = toks[i].line;
                let mut j = i + 1;
                let mut generics = BTreeSet::new();
                if is_punct(toks.get(j), '<') {
                    let end = skip_group(toks, j);
                    for k in j..end {
                        if matches!(toks[k - 1].tok, Tok::Punct('<' | ',')) {
                            if let Some(g) = ident(toks.get(k)) {
                                generics.insert(g.to_string());
                            }
                        }
                    }
                    j = end;
                }
                let (ty, after) = type_path(toks, j);
                let ty = if ident(toks.get(after)) == Some("for") {
                    type_path(toks, after + 1).0
                } else {
                    ty
                };
                let generic = matches!(ty.as_slice(), [one] if generics.contains(one));
                if !ty.is_empty() && !generic {
                    f.impls.push((ty, line));
                }
            }
            Tok::Ident(first) if !matches!(prev.map(|t| &t.tok), Some(Tok::Sep)) => {
                let line = toks[i].line;
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j).is_some_and(|t| t.tok == Tok::Sep) {
                    match ident(toks.get(j + 1)) {
                        Some(seg) => {
                            path.push(seg.to_string());
                            j += 2;
                        }
                        None => break,
                    }
                }
                if path.len() > 1 {
                    f.paths.push((from_file(path, inline.len()), line));
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    f
}

// ---------------------------------------------------------------------------------------
// The crate: modules named from their files, paths resolved to the module that defines what
// they name.
//
// The resolver is pragmatic, not rustc's. A path counts when it starts at `crate`, `self`,
// `super`, a child module's name or a module the file imported (`use a::b::{self}`), then
// takes the longest run of known modules; its next segment is the item, followed through the
// module's own imports (named ones, then globs, `pub` or not since children see them too) to
// the module that defines it, so `crate::scim::filter::Filter` is an edge to `filter::ast`.
// An impl block's type is found in the file's own top-level items, then its named imports
// (`as` aliases included), then its globs, in that order; generic parameters and types from
// std or other crates are no edge. What it does not see: a method called on a value whose
// type came from elsewhere (the import that brought the type in is the edge), paths built
// inside macros, type aliases (a `type X = a::Y;` points at X's module, not at a's), and a
// local name shadowing an imported one. `#[cfg(test)]` items are left out: tests may use
// anything.

struct Module {
    /// `flows::exchange`, `config` (for `config/mod.rs`), `lib`.
    name: String,
    /// As given to `check`: `src/flows/exchange.rs`.
    file: String,
    facts: Facts,
}

fn module_name(file: &str) -> String {
    let rel = file.strip_prefix("src/").unwrap_or(file);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<&str> = rel.split('/').collect();
    if parts.len() > 1 && parts.last() == Some(&"mod") {
        parts.pop();
    }
    parts.join("::")
}

fn folder(module: &str) -> &str {
    module.split("::").next().unwrap()
}

/// Where a path points: a module, or a name inside one.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Module(String),
    Item(String, String),
}

struct Crate {
    modules: BTreeMap<String, Module>,
    /// Every module name and its prefixes (a folder is a module even without a `mod.rs`).
    known: BTreeSet<String>,
}

impl Crate {
    fn parent(&self, m: &str) -> String {
        match m.rsplit_once("::") {
            Some((p, _)) => p.to_string(),
            None => "lib".to_string(),
        }
    }

    fn child(&self, m: &str, name: &str) -> Option<String> {
        let c = if m == "lib" {
            name.to_string()
        } else {
            format!("{m}::{name}")
        };
        (c != "lib" && self.known.contains(&c)).then_some(c)
    }

    /// The module an import in `m` binds `name` to, if it binds a module.
    fn module_alias(&self, m: &str, name: &str, depth: usize) -> Option<String> {
        let module = self.modules.get(m)?;
        module.facts.imports.iter().find_map(|imp| match &imp.leaf {
            Leaf::Name(n) if n == name && imp.path.first().map(String::as_str) != Some(name) => {
                match self.resolve(m, &imp.path, depth + 1) {
                    Some(Target::Module(t)) => Some(t),
                    _ => None,
                }
            }
            _ => None,
        })
    }

    /// Resolves a path written in `m`: rooted at `crate`, `self`, `super`, a child module or a
    /// module `m` imported. Anything else (std, external crates, local names) is `None`.
    fn resolve(&self, m: &str, path: &[String], depth: usize) -> Option<Target> {
        if depth > 8 {
            return None;
        }
        let first = path.first()?;
        let (mut base, mut rest) = match first.as_str() {
            "crate" => ("lib".to_string(), &path[1..]),
            "self" => (m.to_string(), &path[1..]),
            "super" => {
                let mut base = self.parent(m);
                let mut rest = &path[1..];
                while rest.first().is_some_and(|s| s == "super") {
                    base = self.parent(&base);
                    rest = &rest[1..];
                }
                (base, rest)
            }
            name => match self.child(m, name) {
                Some(c) => (c, &path[1..]),
                None => (self.module_alias(m, name, depth)?, &path[1..]),
            },
        };
        while let Some(c) = rest.first().and_then(|s| self.child(&base, s)) {
            base = c;
            rest = &rest[1..];
        }
        Some(match rest.first() {
            None => Target::Module(base),
            Some(item) => Target::Item(base, item.clone()),
        })
    }

    /// The module that defines `name` as seen from `m`: `m` itself, or where one of its
    /// imports (named or glob, public or not, since children see them too) takes it from.
    fn owner(&self, m: &str, name: &str, depth: usize) -> Option<String> {
        let module = self.modules.get(m)?;
        if module.facts.defs.contains(name) {
            return Some(m.to_string());
        }
        if depth > 8 {
            return None;
        }
        for imp in &module.facts.imports {
            if imp.leaf == Leaf::Name(name.to_string()) {
                return match self.resolve(m, &imp.path, depth + 1)? {
                    Target::Module(t) => Some(t),
                    Target::Item(t, n) => Some(self.owner(&t, &n, depth + 1).unwrap_or(t)),
                };
            }
        }
        for imp in &module.facts.imports {
            if imp.leaf == Leaf::Glob {
                if let Some(Target::Module(g)) = self.resolve(m, &imp.path, depth + 1) {
                    if let Some(o) = self.owner(&g, name, depth + 1) {
                        return Some(o);
                    }
                }
            }
        }
        None
    }

    /// The module a resolved target lives in.
    fn home(&self, target: Target) -> String {
        match target {
            Target::Module(t) => t,
            Target::Item(t, n) => self.owner(&t, &n, 0).unwrap_or(t),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The check.

#[derive(Clone, Debug)]
struct Evidence {
    file: String,
    line: usize,
    what: String,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

type Edges = BTreeMap<(String, String), Vec<Evidence>>;

struct Report {
    edges: Edges,
    problems: Vec<String>,
}

fn edges(krate: &Crate) -> Edges {
    let mut out: Edges = BTreeMap::new();
    let mut add = |from: &str, to: &str, file: &str, line: usize, what: String| {
        if from != to {
            out.entry((from.to_string(), to.to_string()))
                .or_default()
                .push(Evidence {
                    file: file.to_string(),
                    line,
                    what,
                });
        }
    };
    for (name, m) in &krate.modules {
        for imp in &m.facts.imports {
            let Some(target) = krate.resolve(name, &imp.path, 0) else {
                continue;
            };
            let written = imp.path.join("::");
            match (&imp.leaf, target) {
                (Leaf::Glob, target) => {
                    let to = krate.home(target);
                    add(name, &to, &m.file, imp.line, format!("use {written}::*"));
                }
                // Importing a module binds a name; what the code takes through it counts.
                (Leaf::Name(_), Target::Module(_)) => {}
                (Leaf::Name(_), target) => {
                    let to = krate.home(target);
                    add(name, &to, &m.file, imp.line, format!("use {written}"));
                }
            }
        }
        for (path, line) in &m.facts.paths {
            // A path to a module alone (`pub(in crate::flows)`) uses nothing in it.
            if let Some(target @ Target::Item(..)) = krate.resolve(name, path, 0) {
                let to = krate.home(target);
                add(
                    name,
                    &to,
                    &m.file,
                    *line,
                    format!("path {}", path.join("::")),
                );
            }
        }
        for (ty, line) in &m.facts.impls {
            let home = match ty.as_slice() {
                [one] if m.facts.defs.contains(one) => None,
                [one] => krate.owner(name, one, 0),
                _ => krate.resolve(name, ty, 0).map(|t| krate.home(t)),
            };
            let Some(home) = home else { continue };
            let ty = ty.join("::");
            add(
                name,
                &home,
                &m.file,
                *line,
                format!("impl {ty}: extends {home}'s type"),
            );
            add(
                &home,
                name,
                &m.file,
                *line,
                format!("impl {ty}: {home}'s type has methods in {name}"),
            );
        }
    }
    out
}

/// The strongly connected components of more than one node (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// The shortest way from the component's first node back to it (breadth first).
fn shortest_cycle(graph: &BTreeMap<String, BTreeSet<String>>, scc: &[String]) -> Vec<String> {
    let start = &scc[0];
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.as_str()]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flatten() {
            if !scc.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.clone(), v.to_string()];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return path;
            }
            if !came_from.contains_key(w.as_str()) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    Vec::new()
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&folder(module)))
}

fn direction() -> String {
    LAYERS
        .iter()
        .map(|l| l.join("/"))
        .collect::<Vec<_>>()
        .join(" ← ")
}

/// Checks the dependencies of the crate made of `sources` (`src/…` path, text): each goes
/// down or across the `LAYERS`, and no modules depend on each other in a cycle. The edges in
/// `exceptions` are left out, and each must exist.
/// Modules declared under `#[cfg(test)]` (`#[cfg(test)] mod contention;`): test fixtures,
/// not part of the built crate, so neither they nor their children are checked.
fn test_only_modules(sources: &[(String, String)]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (file, text) in sources {
        let parent = module_name(file);
        let mut under_cfg_test = false;
        for line in text.lines().map(str::trim) {
            if line == "#[cfg(test)]" {
                under_cfg_test = true;
                continue;
            }
            if line.starts_with("#[") {
                continue;
            }
            if under_cfg_test {
                let decl = line
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ");
                if let Some(name) = decl.strip_prefix("mod ").and_then(|d| d.strip_suffix(';')) {
                    found.insert(if parent == "lib" {
                        name.trim().to_string()
                    } else {
                        format!("{parent}::{}", name.trim())
                    });
                }
            }
            under_cfg_test = false;
        }
    }
    found
}

fn check(sources: &[(String, String)], exceptions: &[Exception]) -> Report {
    let test_only = test_only_modules(sources);
    let modules = sources
        .iter()
        .filter(|(file, _)| {
            let name = module_name(file);
            !test_only
                .iter()
                .any(|t| name == *t || name.starts_with(&format!("{t}::")))
        })
        .map(|(file, text)| {
            let name = module_name(file);
            let facts = facts(&without_tests(lex(text)));
            (
                name.clone(),
                Module {
                    name,
                    file: file.clone(),
                    facts,
                },
            )
        })
        .collect();
    let modules: BTreeMap<String, Module> = modules;
    let mut known = BTreeSet::new();
    for name in modules.keys() {
        let mut prefix = String::new();
        for part in name.split("::") {
            if !prefix.is_empty() {
                prefix.push_str("::");
            }
            prefix.push_str(part);
            known.insert(prefix.clone());
        }
    }
    let krate = Crate { modules, known };
    let mut all = edges(&krate);
    let mut problems = Vec::new();
    for e in exceptions {
        if all
            .remove(&(e.from.to_string(), e.to.to_string()))
            .is_none()
        {
            problems.push(format!(
                "stale exception: {} no longer depends on {}; remove it from EXCEPTIONS",
                e.from, e.to
            ));
        }
    }
    for m in krate.modules.values() {
        if layer(&m.name).is_none() {
            problems.push(format!(
                "{}: folder `{}` is in no layer of LAYERS ({})",
                m.file,
                folder(&m.name),
                direction()
            ));
        }
    }
    for ((from, to), ev) in &all {
        if let (Some(a), Some(b)) = (layer(from), layer(to)) {
            if a < b {
                for e in ev {
                    problems.push(format!(
                        "{e}: {from} → {to} goes up from {} to {} (dependencies point {})",
                        folder(from),
                        folder(to),
                        direction()
                    ));
                }
            }
        }
    }
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in all.keys() {
        files.entry(from.clone()).or_default().insert(to.clone());
        // Folders in different layers that depend on each other both ways do so through an
        // edge going up, reported above with its line; only a layer's own folders are left.
        if folder(from) != folder(to) && layer(from) == layer(to) {
            folders
                .entry(folder(from).to_string())
                .or_default()
                .insert(folder(to).to_string());
        }
    }
    let describe = |scc: &[String],
                    graph: &BTreeMap<String, BTreeSet<String>>,
                    key: &dyn Fn(&str) -> String,
                    kind: &str| {
        let mut text = format!(
            "a {kind} cycle: {} (shortest through the first: {})",
            scc.join(", "),
            shortest_cycle(graph, scc).join(" → ")
        );
        for ((from, to), ev) in &all {
            let (f, t) = (key(from), key(to));
            if f != t && scc.contains(&f) && scc.contains(&t) {
                text.push_str(&format!("\n  {from} → {to}:"));
                for e in ev.iter().take(3) {
                    text.push_str(&format!("\n    {e}"));
                }
                if ev.len() > 3 {
                    text.push_str(&format!("\n    (and {} more)", ev.len() - 3));
                }
            }
        }
        text
    };
    for scc in cycles(&folders) {
        problems.push(describe(
            &scc,
            &folders,
            &|m| folder(m).to_string(),
            "folder",
        ));
    }
    for scc in cycles(&files) {
        problems.push(describe(&scc, &files, &|m| m.to_string(), "module"));
    }
    Report {
        edges: all,
        problems,
    }
}

// ---------------------------------------------------------------------------------------
// The crate's own sources.

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library's files as (`src/…`, text) (not `src/bin`, which uses the library from outside).
/// `MODULE_GRAPH_ROOT` points the check at another checkout (e.g. a branch before a merge:
/// `git archive BRANCH src | tar -x -C DIR`).
fn sources() -> Vec<(String, String)> {
    let other = std::env::var_os("MODULE_GRAPH_ROOT").map(std::path::PathBuf::from);
    let root = other
        .as_deref()
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .filter(|f| !f.starts_with(root.join("src/bin")))
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            (rel, fs::read_to_string(&f).unwrap())
        })
        .collect()
}

/// The code before the module's tests (which by convention close the file).
fn non_test(text: &str) -> &str {
    let mut from = 0;
    while let Some(i) = text[from..].find("\n#[cfg(test)]\n") {
        let at = from + i;
        let next = text[at + "\n#[cfg(test)]\n".len()..]
            .lines()
            .next()
            .unwrap_or("");
        if next
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .starts_with("mod ")
        {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

#[test]
fn modules_depend_one_way_without_cycles() {
    let report = check(&sources(), EXCEPTIONS);
    let mut by_folder: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in report.edges.keys() {
        if folder(from) != folder(to) {
            by_folder
                .entry(folder(from))
                .or_default()
                .insert(folder(to));
        }
    }
    for (folder, deps) in &by_folder {
        println!("{folder} -> {deps:?}");
    }
    let has = |from: &str, to: &str| report.edges.contains_key(&(from.into(), to.into()));
    assert!(
        report.edges.len() > 50,
        "found the edges: {:?}",
        report.edges.keys()
    );
    // The parser sees dependencies in the real sources too (the fixture tests above plant
    // each kind; these are edges of files that are unlikely to move).
    for (from, to) in [
        // a child's own name
        ("host", "host::root"),
        ("scim::filter::parser", "scim::filter::lexer"),
        // `crate::…` written in code
        ("config", "runtime::rate"),
    ] {
        assert!(has(from, to), "{from} -> {to}");
    }
    assert!(
        report.problems.is_empty(),
        "{} problem(s):\n\n{}",
        report.problems.len(),
        report.problems.join("\n\n")
    );
}

#[test]
fn problems_planted_in_the_real_sources_are_found() {
    let real = sources();
    let before: BTreeSet<String> = check(&real, EXCEPTIONS).problems.into_iter().collect();
    let mut planted = real.clone();
    for (file, text) in &mut planted {
        if file == "src/scim/error.rs" {
            text.push_str("\nfn up() -> Option<crate::flows::paging::Pager> { None }\n");
        }
    }
    planted.push((
        "src/flows/extra.rs".into(),
        "//! x\nuse crate::flows::{paging::*};\nimpl Pager {\n    fn more(&self) {}\n}\n".into(),
    ));
    let report = check(&planted, EXCEPTIONS);
    let new: Vec<&String> = report
        .problems
        .iter()
        .filter(|p| !before.contains(*p))
        .collect();
    assert_eq!(new.len(), 2, "{new:#?}");
    assert!(
        new.iter().any(|p| p.starts_with("src/scim/error.rs:")
            && p.contains("scim::error → flows::paging goes up from scim to flows")),
        "{new:#?}"
    );
    assert!(
        new.iter().any(
            |p| p.starts_with("a module cycle: flows::extra, flows::paging")
                && p.contains("src/flows/extra.rs:3: impl Pager: flows::paging's type has methods")
        ),
        "{new:#?}"
    );
}

#[test]
fn the_checker_finds_every_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c", "a"]),
        ("c", vec!["a"]),
        ("d", vec!["e"]),
        ("e", vec!["d"]),
        ("f", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let found = cycles(&graph);
    assert_eq!(found, [vec!["a", "b", "c"], vec!["d", "e"]]);
    assert_eq!(shortest_cycle(&graph, &found[0]), ["a", "b", "a"]);
}

#[test]
fn every_module_says_its_concept_and_stays_small() {
    for (file, text) in sources() {
        assert!(
            text.starts_with("//! "),
            "{file} does not start with a `//!` doc comment"
        );
        let lines = non_test(&text).lines().count();
        assert!(
            lines <= MAX_LINES,
            "{file} has {lines} lines of non-test code (at most {MAX_LINES})"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The checker's own tests, on planted sources.

fn planted(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect()
}

fn edge(report: &Report, from: &str, to: &str) -> bool {
    report.edges.contains_key(&(from.into(), to.into()))
}

#[test]
fn an_impl_block_for_another_modules_type_is_a_cycle() {
    // `a` never names `b`; `b` only adds methods to `a`'s type.
    let report = check(
        &planted(&[
            ("src/lib.rs", "//! x\npub mod flows;\n"),
            ("src/flows/mod.rs", "//! x\npub mod a;\npub mod b;\n"),
            (
                "src/flows/a.rs",
                "//! x\npub struct A;\npub fn run(a: &A) -> u32 { a.twice() }\n",
            ),
            (
                "src/flows/b.rs",
                "//! x\nuse crate::flows::a::*;\n\nimpl A {\n    pub fn twice(&self) -> u32 { 2 }\n}\n",
            ),
        ]),
        &[],
    );
    assert!(edge(&report, "flows::b", "flows::a"));
    assert!(edge(&report, "flows::a", "flows::b"));
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert!(p.starts_with("a module cycle: flows::a, flows::b"), "{p}");
    assert!(
        p.contains("src/flows/b.rs:4: impl A: flows::a's type has methods in flows::b"),
        "{p}"
    );
    assert!(
        p.contains("src/flows/b.rs:2: use crate::flows::a::*"),
        "{p}"
    );

    // The same through a named import with an alias, and a trait implemented for the type.
    let report = check(
        &planted(&[
            ("src/flows/a.rs", "//! x\npub struct A;\n"),
            (
                "src/flows/b.rs",
                "//! x\nuse crate::flows::a::A as Alias;\nimpl std::fmt::Display for Alias {}\n",
            ),
        ]),
        &[],
    );
    assert!(edge(&report, "flows::a", "flows::b"), "{:?}", report.edges);
    // A type of the file itself, a generic parameter and a std type are no edges.
    let report = check(
        &planted(&[
            ("src/flows/a.rs", "//! x\npub struct A;\npub trait T {}\n"),
            (
                "src/flows/b.rs",
                "//! x\nuse crate::flows::a::T;\npub struct B;\nimpl T for B {}\n\
                 impl<S: T> T for S {}\nimpl T for String {}\nfn f() -> impl T { B }\n",
            ),
        ]),
        &[],
    );
    assert!(edge(&report, "flows::b", "flows::a"));
    assert!(!edge(&report, "flows::a", "flows::b"), "{:?}", report.edges);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn grouped_nested_and_relative_imports_are_edges() {
    let report = check(
        &planted(&[
            (
                "src/flows/x.rs",
                "//! x\npub(crate) use crate::flows::{\n    y::{self, Y as Why},\n    \
                 groups::{plan::*, Task},\n};\npub struct X;\nfn f() { y::go(); }\n",
            ),
            (
                "src/flows/y.rs",
                "//! x\nuse super::x::X;\npub struct Y;\npub fn go() {}\n",
            ),
            (
                "src/flows/groups/mod.rs",
                "//! x\nmod plan;\npub enum Task {}\n",
            ),
            (
                "src/flows/groups/plan.rs",
                "//! x\nuse super::Task;\nuse self::inner::*;\nfn g() { super::super::z::go() }\n",
            ),
            ("src/flows/z.rs", "//! x\npub fn go() {}\n"),
            (
                "src/scim/mod.rs",
                "//! x\nuse ::serde::Serialize;\nuse std::fmt;\n",
            ),
        ]),
        &[],
    );
    for (from, to) in [
        ("flows::x", "flows::y"),
        ("flows::x", "flows::groups::plan"),
        ("flows::x", "flows::groups"),
        ("flows::y", "flows::x"),
        ("flows::groups::plan", "flows::groups"),
        ("flows::groups::plan", "flows::z"),
    ] {
        assert!(
            edge(&report, from, to),
            "{from} -> {to}: {:?}",
            report.edges
        );
    }
    // `mod plan;` is ownership, not a dependency; external crates are no modules.
    assert!(!edge(&report, "flows::groups", "flows::groups::plan"));
    assert_eq!(report.edges.len(), 6, "{:?}", report.edges.keys());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert!(p.starts_with("a module cycle: flows::x, flows::y"), "{p}");
    assert!(
        p.contains("src/flows/x.rs:3: use crate::flows::y::Y"),
        "{p}"
    );
    assert!(p.contains("src/flows/x.rs:7: path y::go"), "{p}");
    assert!(p.contains("src/flows/y.rs:2: use super::x::X"), "{p}");
}

#[test]
fn a_dependency_up_the_layers_fails_with_its_line() {
    let report = check(
        &planted(&[
            ("src/flows/exchange.rs", "//! x\npub struct Exchange;\n"),
            (
                "src/scim/user.rs",
                "//! x\n/// Not `crate::host::x`: \"crate::host::y\"\n\
                 pub fn f(e: &crate::flows::exchange::Exchange) {}\n",
            ),
            ("src/host/mod.rs", "//! x\n"),
        ]),
        &[],
    );
    assert_eq!(report.edges.len(), 1, "{:?}", report.edges);
    assert_eq!(
        report.problems,
        [format!(
            "src/scim/user.rs:3: path crate::flows::exchange::Exchange: scim::user → \
             flows::exchange goes up from scim to flows (dependencies point {})",
            direction()
        )]
    );
}

#[test]
fn folders_of_one_layer_may_not_depend_on_each_other_both_ways() {
    let report = check(
        &planted(&[
            (
                "src/http.rs",
                "//! x\npub struct Response;\nfn f() { crate::hex::encode() }\n",
            ),
            (
                "src/hex.rs",
                "//! x\npub fn encode() {}\nimpl crate::http::Response {}\n",
            ),
        ]),
        &[],
    );
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(report.problems[0].starts_with("a folder cycle: hex, http"));
    assert!(report.problems[1].starts_with("a module cycle: hex, http"));
}

#[test]
fn paths_in_inline_modules_climb_to_their_file() {
    let report = check(
        &planted(&[
            ("src/flows/a.rs", "//! x\npub struct A;\n"),
            (
                "src/flows/b.rs",
                "//! x\npub struct B;\nmod inner {\n    use super::B;\n    \
                 fn f() -> super::super::a::A { todo!() }\n}\n\
                 pub(in crate::flows) fn g() {}\n",
            ),
        ]),
        &[],
    );
    let edges: Vec<_> = report.edges.keys().collect();
    assert_eq!(edges, [&("flows::b".to_string(), "flows::a".to_string())]);
}

#[test]
fn comments_strings_and_tests_are_no_dependencies() {
    let report = check(
        &planted(&[
            ("src/flows/a.rs", "//! x\npub struct A;\n"),
            (
                "src/flows/b.rs",
                "//! x\n// use crate::flows::a::A;\n/* crate::flows::a::A /* nested */ */\n\
                 const S: &str = r#\"crate::flows::a::A \"# ;\nconst C: char = '\"';\n\
                 fn f<'a>(x: &'a str) -> &'a str { x }\n\
                 #[cfg(test)]\nuse crate::flows::a::A;\n\
                 #[cfg(test)]\n#[allow(unused)]\nmod tests {\n    use super::*;\n    \
                 impl crate::flows::a::A {}\n}\n",
            ),
        ]),
        &[],
    );
    assert!(report.edges.is_empty(), "{:?}", report.edges);
}

#[test]
fn exceptions_let_an_edge_through_and_must_still_exist() {
    let files = planted(&[
        (
            "src/flows/a.rs",
            "//! x\npub struct A;\nfn f() { super::b::g() }\n",
        ),
        (
            "src/flows/b.rs",
            "//! x\npub fn g() {}\nimpl crate::flows::a::A {}\n",
        ),
    ]);
    assert_eq!(check(&files, &[]).problems.len(), 1);
    let allowed = Exception {
        from: "flows::a",
        to: "flows::b",
        why: "a test",
    };
    // `b` still depends on `a` (its impl block), but no longer in a cycle.
    assert_eq!(check(&files, &[allowed]).problems, Vec::<String>::new());
    let stale = Exception {
        from: "flows::b",
        to: "flows::c",
        why: "gone",
    };
    let report = check(&files, &[stale]);
    assert!(
        report.problems[0].starts_with("stale exception: flows::b no longer depends on flows::c"),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_folder_outside_the_layers_fails() {
    let report = check(&planted(&[("src/extra/mod.rs", "//! x\n")]), &[]);
    assert!(
        report.problems[0].starts_with("src/extra/mod.rs: folder `extra` is in no layer"),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_module_declared_for_tests_only_is_no_dependency() {
    let sources = vec![
        (
            "src/runtime/mod.rs".to_string(),
            "//! Runtime.\n#[cfg(test)]\npub mod fixture;\npub mod store;\n".to_string(),
        ),
        (
            "src/runtime/store.rs".to_string(),
            "//! Store.\npub struct Store;\n".to_string(),
        ),
        (
            "src/runtime/fixture.rs".to_string(),
            "//! Fixture.\nuse crate::runtime::store::Store;\nimpl Store {\n    pub fn seeded() {}\n}\n"
                .to_string(),
        ),
    ];
    let report = check(&sources, &[]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        !report
            .edges
            .keys()
            .any(|(from, to)| from.contains("fixture") || to.contains("fixture")),
        "{:?}",
        report.edges.keys()
    );
}
