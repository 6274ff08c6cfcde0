//! Replays the seed corpus (`corpus/<target>/`) and every saved crash input
//! (`regressions/<target>/`) through the fuzz harness, on the stable toolchain:
//!
//!     cargo test --manifest-path tests/fuzz/Cargo.toml
//!
//! A crash `scripts/fuzz` finds is copied into `regressions/<target>/` (file name: what it
//! broke), so it keeps being replayed once fixed. The main crate's `tests/fuzz_replay.rs` runs
//! the same replay in `cargo test` (so in `scripts/test` and CI), without building libFuzzer.

use envoy_scim_drupal_fuzz::{replay, TARGETS};
use std::path::Path;

fn run(target: &str) {
    let Some((_, f)) = TARGETS.iter().find(|(name, _)| *name == target) else {
        panic!("no fuzz target {target}");
    };
    assert!(replay(Path::new(env!("CARGO_MANIFEST_DIR")), target, *f) > 0);
}

#[test]
fn filter_parser() {
    run("filter_parser");
}

#[test]
fn patch_engine() {
    run("patch_engine");
}

#[test]
fn request_body() {
    run("request_body");
}

#[test]
fn drupal_response() {
    run("drupal_response");
}

/// The harness mapping is a valid configuration with every kind of attribute.
#[test]
fn harness_mapping_is_valid() {
    let m = envoy_scim_drupal_fuzz::mapping();
    assert_eq!(m.fields.len(), 3 + 12);
}
