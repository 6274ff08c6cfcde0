//! The versioned key-value store every worker shares (in Envoy: proxy-wasm shared data), and
//! the one compare-and-swap loop that every shared structure is updated through.

use std::collections::HashMap;

/// Why a write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Another worker wrote the key since it was read: read again and retry.
    CasMismatch,
    /// The host refused for another reason; retrying will not help.
    Failed,
}

/// Bytes under string keys, each with a version (`cas`) that changes on every write.
pub trait SharedStore {
    /// The value and its version; `(None, None)` for a key never written.
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError>;
    /// Writes `value` if the key's version is still `cas` (`None`: unconditionally).
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// Compare-and-swap attempts before an update gives up (another worker kept winning).
pub const CAS_ATTEMPTS: usize = 16;

/// Why a compare-and-swap update wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The host refused a read or a write; retrying would not help.
    Store,
    /// Every attempt lost the race to another worker (counted as `CasGaveUp`).
    GaveUp,
}

/// Reads `key`, lets `change` compute the bytes to write (`None`: write nothing) and a result
/// from the current ones, and writes them unless another worker wrote in between, in which
/// case it starts over. Every shared structure is changed through this one loop.
pub fn cas_apply<S, T>(
    store: &mut S,
    key: &str,
    mut change: impl FnMut(Option<Vec<u8>>) -> (Option<Vec<u8>>, T),
) -> Result<T, Failure>
where
    S: SharedStore + ?Sized,
{
    for _ in 0..CAS_ATTEMPTS {
        let (bytes, cas) = store.get(key).map_err(|_| Failure::Store)?;
        let (next, result) = change(bytes);
        let Some(next) = next else {
            return Ok(result);
        };
        match store.set(key, &next, cas) {
            Ok(()) => return Ok(result),
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Failed) => return Err(Failure::Store),
        }
    }
    crate::runtime::tally::note(crate::runtime::tally::Event::CasGaveUp);
    Err(Failure::GaveUp)
}

/// `cas_apply` for a change that always writes when it has a result: `Some(result)` once
/// written; `None` when the store failed, `change` declined (returned `None`), or every
/// attempt lost the race.
pub fn cas_update<S, T>(
    store: &mut S,
    key: &str,
    mut change: impl FnMut(Option<Vec<u8>>) -> Option<(Vec<u8>, T)>,
) -> Option<T>
where
    S: SharedStore + ?Sized,
{
    cas_apply(store, key, |bytes| match change(bytes) {
        Some((next, result)) => (Some(next), Some(result)),
        None => (None, None),
    })
    .ok()
    .flatten()
}

/// A store borrowed for a while is still the store (the test drivers lend theirs).
impl<S: SharedStore + ?Sized> SharedStore for &mut S {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        (**self).get(key)
    }
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        (**self).set(key, value, cas)
    }
}

/// The store in memory: for one VM and for tests, which can make the next writes lose the
/// race (`lose_next`) or fail (`fail_all`) to exercise the retry paths.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: HashMap<String, (Vec<u8>, u32)>,
    /// Writes still to answer `CasMismatch` (as if another worker had just written).
    pub lose_next: usize,
    /// Every read and write fails.
    pub fail_all: bool,
    /// Writes attempted, won or lost.
    pub writes: usize,
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        if self.fail_all {
            return Err(StoreError::Failed);
        }
        Ok(match self.entries.get(key) {
            Some((bytes, version)) => (Some(bytes.clone()), Some(*version)),
            None => (None, None),
        })
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.writes = self.writes.saturating_add(1);
        if self.fail_all {
            return Err(StoreError::Failed);
        }
        if self.lose_next > 0 {
            self.lose_next = self.lose_next.saturating_sub(1);
            // As if another worker wrote first: the version moves on.
            if let Some(entry) = self.entries.get_mut(key) {
                entry.1 = entry.1.wrapping_add(1);
            }
            return Err(StoreError::CasMismatch);
        }
        let current = self.entries.get(key).map(|(_, v)| *v);
        if cas.is_some() && cas != current {
            return Err(StoreError::CasMismatch);
        }
        let version = current.unwrap_or_default().wrapping_add(1);
        self.entries
            .insert(key.to_string(), (value.to_vec(), version));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(store: &mut MemoryStore, byte: u8) -> Option<usize> {
        cas_update(store, "k", |bytes| {
            let mut v = bytes.unwrap_or_default();
            v.push(byte);
            let len = v.len();
            Some((v, len))
        })
    }

    #[test]
    fn update_applies_change_to_current_value() {
        let mut s = MemoryStore::default();
        assert_eq!(append(&mut s, 1), Some(1));
        assert_eq!(append(&mut s, 2), Some(2));
        assert_eq!(s.get("k").unwrap().0, Some(vec![1, 2]));
    }

    #[test]
    fn lost_races_are_retried_then_given_up() {
        let mut s = MemoryStore::default();
        append(&mut s, 1);
        s.lose_next = 3;
        assert_eq!(append(&mut s, 2), Some(2));
        assert_eq!(s.writes, 5);
        s.lose_next = CAS_ATTEMPTS;
        assert_eq!(append(&mut s, 3), None);
        assert_eq!(s.get("k").unwrap().0, Some(vec![1, 2]));
    }

    #[test]
    fn stale_versions_and_failures_write_nothing() {
        let mut s = MemoryStore::default();
        s.set("k", b"a", None).unwrap();
        let (_, cas) = s.get("k").unwrap();
        s.set("k", b"b", cas).unwrap();
        assert_eq!(s.set("k", b"c", cas), Err(StoreError::CasMismatch));
        s.fail_all = true;
        assert_eq!(append(&mut s, 1), None);
        s.fail_all = false;
        assert_eq!(s.get("k").unwrap().0, Some(b"b".to_vec()));
        // A declined change writes nothing.
        let before = s.writes;
        assert_eq!(cas_update(&mut s, "k", |_| None::<(Vec<u8>, ())>), None);
        assert_eq!(s.writes, before);
    }
}
