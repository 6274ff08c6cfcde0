//! The lock table as stored: one shared-data entry listing every held lock, and the pure
//! operations the lock intents (`runtime::intents`) apply to it.

use crate::runtime::store::SharedStore;

/// All locks live in one shared-data entry (shared by every worker's VM, and surviving VM
/// reloads). One entry because proxy-wasm's CAS does not protect the creation of a key: two
/// first writers of separate keys could both win.
pub const LOCK_TABLE: &str = "envoy-scim-drupal/locks";

/// `(key, owner, held until ms)`, as JSON.
pub(crate) type LockTable = Vec<(String, String, u64)>;

/// Creates the empty table before any request can race to create it.
pub fn ensure_table<S: SharedStore + ?Sized>(store: &mut S) {
    if let Ok((None, _)) = store.get(LOCK_TABLE) {
        let _ = store.set(LOCK_TABLE, b"[]", None);
    }
}

/// The table without the locks expired at `now_ms` (an unreadable table holds none).
pub(crate) fn parse(bytes: Option<Vec<u8>>, now_ms: u64) -> LockTable {
    let mut table: LockTable = bytes
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    table.retain(|(_, _, until)| *until > now_ms);
    table
}

pub(crate) fn encode(table: &LockTable) -> Vec<u8> {
    serde_json::to_vec(table).unwrap_or_default()
}

/// Takes `key` for `owner` until `until` (renewing its own); false when another holds it.
pub(crate) fn take(table: &mut LockTable, key: &str, owner: &str, until: u64) -> bool {
    if let Some(entry) = table.iter_mut().find(|(k, _, _)| k == key) {
        if entry.1 != owner {
            return false;
        }
        entry.2 = until;
        return true;
    }
    table.push((key.to_string(), owner.to_string(), until));
    true
}
