//! An Envoy proxy-wasm filter that serves SCIM 2.0 (RFC 7643/7644) on top of Drupal core's
//! JSON:API. Everything except `host` is a sans-IO core: plain values in, plain values out,
//! unit-tested natively. `host` is the only module that talks to proxy-wasm.
//!
//! The folders follow a request: [`scim`] validates what the client sent (schemas, filters,
//! PATCH, errors), [`flows`] routes it and plans the Drupal calls, [`drupal`] speaks Drupal's
//! JSON:API/REST dialect and maps its answers, [`runtime`] holds what every worker shares
//! (locks, rate limits, the upstream session) over one store trait, and `host` implements
//! that store and the calls over proxy-wasm. [`config`] is the plugin configuration; [`http`]
//! and [`hex`] are plain values and helpers every layer uses. Dependencies point one way:
//! `http`/`hex` ← `scim` ← `runtime` ← `config` ← `drupal` ← `flows` ← `host`
//! (`tests/module_graph.rs` checks it).

pub mod config;
pub mod drupal;
pub mod flows;
pub mod hex;
pub mod http;
pub mod runtime;
pub mod scim;

#[cfg(target_arch = "wasm32")]
mod host;
