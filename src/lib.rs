//! An Envoy proxy-wasm filter that serves SCIM 2.0 (RFC 7643/7644) on top of Drupal core's
//! JSON:API. Everything except `host` is a sans-IO core: plain values in, plain values out,
//! unit-tested natively. `host` is the only module that talks to proxy-wasm.

pub mod auth;
pub mod config;
pub mod dates;
pub mod discovery;
pub mod drupal;
pub mod error;
pub mod exchange;
pub mod filter;
pub mod filter_eval;
pub mod group;
pub mod group_flow;
pub mod http;
pub mod mapping;
pub mod membership;
pub mod paging;
pub mod patch;
pub mod probe;
pub mod projection;
pub mod protection;
pub mod query;
pub mod rate;
pub mod upstream;
pub mod user;
pub mod user_filter;

#[cfg(target_arch = "wasm32")]
mod host;
