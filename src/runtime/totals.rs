//! List totals remembered per query (`flows::paging`), shared by every worker: hints that
//! spare later pages a count, always checked before they are used.

use crate::runtime::store::{cas_apply, Failure, SharedStore};

/// The shared-data key (one entry for every query).
pub const TOTALS: &str = "envoy-scim-drupal/totals";
/// The most recent queries only: the table stays small whatever clients ask.
const MAX_TOTALS: usize = 64;
type TotalsTable = Vec<(String, usize)>;

/// Queries are kept as a short digest: they may carry filter values (user names, emails).
fn digest(query: &str) -> String {
    crate::hex::sha256_hex(query)
        .get(..16)
        .unwrap_or_default()
        .to_string()
}

/// Creates the empty table before any request can race to create it: proxy-wasm's
/// compare-and-swap does not protect the creation of a key, so the first two totals
/// remembered at once would both win and one be lost.
pub fn ensure_table<S: SharedStore + ?Sized>(store: &mut S) {
    if let Ok((None, _)) = store.get(TOTALS) {
        let _ = store.set(TOTALS, b"[]", None);
    }
}

/// The total remembered for `query`, if any.
pub fn remembered<S: SharedStore + ?Sized>(store: &S, query: &str) -> Option<usize> {
    // Most lists never reach a remembered size: no table, no digest to compute.
    let (bytes, _) = store.get(TOTALS).ok()?;
    let table: TotalsTable = serde_json::from_slice(&bytes?).ok()?;
    let digest = digest(query);
    table
        .into_iter()
        .find(|(d, _)| *d == digest)
        .map(|(_, total)| total)
}

/// Remembers `total` for `query`, forgetting the oldest query beyond `MAX_TOTALS`.
pub fn remember<S: SharedStore + ?Sized>(
    store: &mut S,
    query: &str,
    total: usize,
) -> Result<(), Failure> {
    let digest = digest(query);
    cas_apply(store, TOTALS, |bytes| {
        let mut table: TotalsTable = bytes
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        table.retain(|(d, _)| *d != digest);
        table.push((digest.clone(), total));
        let excess = table.len().saturating_sub(MAX_TOTALS);
        table.drain(..excess);
        (serde_json::to_vec(&table).ok(), ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::store::MemoryStore;

    #[test]
    fn totals_are_remembered_per_query_and_bounded() {
        let mut s = MemoryStore::default();
        assert_eq!(remembered(&s, "q"), None);
        remember(&mut s, "q", 7).unwrap();
        s.lose_next = 2;
        remember(&mut s, "q", 8).unwrap();
        assert_eq!(remembered(&s, "q"), Some(8));
        for i in 0..MAX_TOTALS {
            remember(&mut s, &format!("other{i}"), i).unwrap();
        }
        assert_eq!(remembered(&s, "q"), None);
        assert_eq!(remembered(&s, "other63"), Some(63));
        // The wire format: a JSON list of [digest, total] pairs.
        let (bytes, _) = s.get(TOTALS).unwrap();
        let table: TotalsTable = serde_json::from_slice(&bytes.unwrap()).unwrap();
        assert_eq!(table.len(), MAX_TOTALS);
        assert_eq!(table[0].0.len(), 16);
    }
}
