//! The fuzz regression replay, in the main crate's `cargo test` (so in `scripts/test` and CI),
//! on the stable toolchain: every committed fuzz input (the seed corpus
//! `tests/fuzz/corpus/<target>/` and the saved crash inputs `tests/fuzz/regressions/<target>/`)
//! goes through the same harness functions the cargo-fuzz targets call, and none may panic.
//!
//! The harness (`tests/fuzz/src/lib.rs`) is included as a module rather than used as the
//! `envoy-scim-drupal-fuzz` crate: that crate depends on libfuzzer-sys, whose build compiles
//! libFuzzer, which a replay does not need. Debug build: overflow checks are on, as when fuzzing.

// The harness is test code: it panics on a broken harness mapping or an unreadable input.
#[allow(clippy::panic)]
#[path = "fuzz/src/lib.rs"]
mod harness;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fuzz")
}

/// Every target's inputs, so a target added to `TARGETS` is replayed without another test.
#[test]
fn every_committed_input_replays_without_a_panic() {
    for (target, run) in harness::TARGETS {
        let n = harness::replay(&fuzz_dir(), target, run);
        assert!(
            n > 0,
            "no corpus for {target} in tests/fuzz/corpus/{target}/"
        );
        eprintln!("{target}: {n} inputs replayed");
    }
}

/// The names in `dir` (file stems with `.rs`, directory names otherwise).
fn names(dir: &Path, rs_files: bool) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            if rs_files {
                (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(str::to_owned))?
            } else {
                p.is_dir()
                    .then(|| p.file_name()?.to_str().map(str::to_owned))?
            }
        })
        .collect()
}

/// Nothing committed escapes the replay: every cargo-fuzz target is in `TARGETS` (and so
/// replayed above), and every corpus or regression directory belongs to one of them.
#[test]
fn every_target_and_input_directory_is_replayed() {
    let known: BTreeSet<String> = harness::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let dir = fuzz_dir();
    assert_eq!(names(&dir.join("fuzz_targets"), true), known);
    assert_eq!(names(&dir.join("corpus"), false), known);
    let regressions = names(&dir.join("regressions"), false);
    assert!(regressions.is_subset(&known), "{regressions:?}");
}
