//! Replays the seed corpus (`corpus/<target>/`) and every saved crash input
//! (`regressions/<target>/`) through the fuzz harness, on the stable toolchain:
//!
//!     cargo test --manifest-path tests/fuzz/Cargo.toml
//!
//! A crash `scripts/fuzz` finds is copied into `regressions/<target>/` (file name: what it
//! broke), so it keeps being replayed once fixed.

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files.iter().filter(|f| f.is_file()) {
            let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            eprintln!("{target}: {}", file.display());
            run(&data);
            count += 1;
        }
    }
    count
}

#[test]
fn filter_parser() {
    assert!(replay("filter_parser", envoy_scim_drupal_fuzz::filter_parser) > 0);
}

#[test]
fn patch_engine() {
    assert!(replay("patch_engine", envoy_scim_drupal_fuzz::patch_engine) > 0);
}

#[test]
fn request_body() {
    assert!(replay("request_body", envoy_scim_drupal_fuzz::request_body) > 0);
}

#[test]
fn drupal_response() {
    assert!(replay("drupal_response", envoy_scim_drupal_fuzz::drupal_response) > 0);
}

/// The harness mapping is a valid configuration with every kind of attribute.
#[test]
fn harness_mapping_is_valid() {
    let m = envoy_scim_drupal_fuzz::mapping();
    assert_eq!(m.fields.len(), 3 + 12);
}
