//! Keeps the layout honest: every source file says its concept in a `//!` line, no module is
//! over `MAX_LINES` lines of non-test code, and the `crate::` imports between modules (each
//! file) and between the top-level folders have no cycle.

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
use std::path::{Path, PathBuf};

/// Non-test lines a module may hold (tests may follow, in its `#[cfg(test)]` module).
const MAX_LINES: usize = 800;

struct Module {
    /// `flows::exchange`, `config` (for `config/mod.rs`), `lib`.
    name: String,
    file: PathBuf,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
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

/// The library's modules (not `src/bin`, which only uses the library from outside).
fn modules() -> Vec<Module> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter(|f| !f.starts_with(src.join("bin")))
        .map(|file| {
            let rel = file.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") && parts.len() > 1 {
                parts.pop();
            }
            Module {
                name: parts.join("::"),
                text: fs::read_to_string(&file).unwrap(),
                file,
            }
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

/// Every module named by a path in the module's code: `crate::a::b::…`, `super::…`, or a
/// child module's own name (`store::HostStore` in `host`), resolved to the longest known
/// module. `mod child;` declarations are ownership, not use, and are not counted.
fn dependencies(m: &Module, known: &BTreeSet<String>) -> BTreeSet<String> {
    let code = non_test(&m.text);
    let parent = m.name.rsplit_once("::").map_or("", |(p, _)| p);
    let mut out = BTreeSet::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0
            || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        if !starts_word || !(bytes[i].is_alphabetic() || bytes[i] == '_') {
            i += 1;
            continue;
        }
        let path: String = bytes[i..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_' || **c == ':')
            .collect();
        i += path.chars().count().max(1);
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        if segments.len() < 2 {
            continue;
        }
        let (base, rest): (String, &[&str]) = match segments[0] {
            "crate" => (String::new(), &segments[1..]),
            "super" => (parent.to_string(), &segments[1..]),
            first if known.contains(&format!("{}::{first}", m.name)) => {
                (m.name.clone(), &segments[..])
            }
            _ => continue,
        };
        let mut found = None;
        for n in 1..=rest.len() {
            let tail = rest[..n].join("::");
            let candidate = if base.is_empty() {
                tail
            } else {
                format!("{base}::{tail}")
            };
            if known.contains(&candidate) {
                found = Some(candidate);
            }
        }
        if found.is_none() && !base.is_empty() {
            found = Some(base);
        }
        if let Some(dep) = found {
            if dep != m.name {
                out.insert(dep);
            }
        }
    }
    out
}

fn top(name: &str) -> String {
    name.split("::").next().unwrap().to_string()
}

/// A cycle in `graph`, as the path of nodes that closes it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut done, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn graphs() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let modules = modules();
    let known: BTreeSet<String> = modules.iter().map(|m| m.name.clone()).collect();
    let mut files = BTreeMap::new();
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let deps = dependencies(m, &known);
        let folder = folders.entry(top(&m.name)).or_default();
        folder.extend(deps.iter().map(|d| top(d)).filter(|d| *d != top(&m.name)));
        files.insert(m.name.clone(), deps);
    }
    (files, folders)
}

#[test]
fn modules_import_each_other_without_cycles() {
    let (files, folders) = graphs();
    for (folder, deps) in &folders {
        println!("{folder} -> {deps:?}");
    }
    assert!(files.len() > 20, "found the modules: {:?}", files.keys());
    // The parser sees each kind of path: `crate::`, `super::` and a child's name.
    for (from, to) in [
        ("flows::exchange", "flows::request"),
        ("flows::groups::plan", "flows::groups::state"),
        ("host", "host::root"),
        ("scim::filter::parser", "scim::filter::lexer"),
    ] {
        assert!(
            files[from].contains(to),
            "{from} -> {to}: {:?}",
            files[from]
        );
    }
    assert_eq!(find_cycle(&folders), None, "a cycle between folders");
    assert_eq!(find_cycle(&files), None, "a cycle between modules");
}

#[test]
fn the_checker_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn every_module_says_its_concept_and_stays_small() {
    for m in modules() {
        assert!(
            m.text.starts_with("//! "),
            "{} does not start with a `//!` doc comment",
            m.file.display()
        );
        let lines = non_test(&m.text).lines().count();
        assert!(
            lines <= MAX_LINES,
            "{} has {lines} lines of non-test code (at most {MAX_LINES})",
            m.file.display()
        );
    }
}
