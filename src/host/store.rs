//! The runtime's shared store over proxy-wasm shared data: the only place the host reads or
//! writes it.

use crate::runtime::store::{SharedStore, StoreError};

/// The shared store over proxy-wasm shared data: one for every worker's VM, surviving VM
/// reloads. Everything kept there (`runtime`) is built on these two calls.
#[derive(Default)]
pub(super) struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        proxy_wasm::hostcalls::get_shared_data(key).map_err(|_| StoreError::Failed)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match proxy_wasm::hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(proxy_wasm::types::Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Failed),
        }
    }
}
