//! State shared by every worker, built as plain Rust on one versioned key-value store
//! ([`store::SharedStore`]): per-key locks, remembered list totals, rate-limit buckets and the
//! upstream session. The host implements the store over proxy-wasm shared data.

#[cfg(test)]
pub mod contention;
pub mod intents;
pub mod lock_table;
pub mod locks;
pub mod rate;
pub mod session;
pub mod store;
pub mod tally;
pub mod totals;
