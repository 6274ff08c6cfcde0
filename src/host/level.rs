//! Envoy's log level, followed by the guest.

#[link(wasm_import_module = "env")]
extern "C" {
    // Declared here with a plain integer: Envoy answers spdlog's level, and its `off` (6) is
    // no value of the SDK's `LogLevel`, which its own `get_log_level` would return anyway.
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
}

/// Follows Envoy's level for the `wasm` component (`/logging?wasm=debug` on the admin port
/// changes it at any time) in the `log` crate's filter, so that lines Envoy would drop are
/// neither formatted nor sent across the VM boundary. Called once per SCIM request and per
/// root tick: a change applies from the next one.
pub(super) fn sync_log_level() {
    let mut level: u32 = 0;
    // SAFETY: the host writes one u32 through the pointer, which outlives the call.
    let status = unsafe { proxy_get_log_level(&mut level) };
    let filter = match (status, level) {
        (0, 0) => log::LevelFilter::Trace,
        (0, 1) => log::LevelFilter::Debug,
        (0, 2) => log::LevelFilter::Info,
        (0, 3) => log::LevelFilter::Warn,
        (0, 4) => log::LevelFilter::Error,
        // critical or off: `log` has no critical level; its error lines would be dropped.
        (0, _) => log::LevelFilter::Off,
        // A host without the call: everything, as before.
        _ => log::LevelFilter::Trace,
    };
    log::set_max_level(filter);
}
