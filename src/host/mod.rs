//! The only module that talks to proxy-wasm: it reads the request from Envoy, hands it to
//! the sans-IO `exchange`, dispatches the Drupal calls it asks for, feeds the replies back,
//! and sends the final response. No SCIM or Drupal logic lives here.

mod level;
mod metrics;
mod root;
mod shared;
mod store;
mod stream;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    // Also installs a panic hook that logs the panic at critical level before the VM dies.
    // Everything goes to Envoy, whose `wasm` component level decides what is shown (debug
    // lines appear after `POST /logging?wasm=debug` on the admin port).
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(root::ScimRoot::new())
    });
}}
