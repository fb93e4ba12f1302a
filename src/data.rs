//! The application's own data in a session, as the store keeps it: a map
//! of keys to serialized values, written key by key.
//!
//! Applications use the typed methods of [`Session`](crate::Session)
//! (`get`, `insert`, `remove`, `clear`); these types are what a
//! [`SessionStore`](crate::SessionStore) reads and writes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The data of one session: keys and their serialized (JSON) values.
///
/// Cheap to clone (shared until changed). `Debug` prints the keys only:
/// values may hold secrets (a CSRF token, an OAuth `state`).
///
/// ```
/// use rolling_session::store::{DataChanges, SessionData};
///
/// let mut data = SessionData::default();
/// let mut changes = DataChanges::default();
/// changes.set("cart", br#"["apple"]"#.to_vec());
/// data.apply(&changes);
/// assert_eq!(data.get("cart"), Some(&br#"["apple"]"#[..]));
/// assert_eq!(data.size(), "cart".len() + br#"["apple"]"#.len());
/// ```
#[derive(Clone, Default)]
pub struct SessionData(
    // `None` until the first key: most sessions hold no data, and an
    // empty `SessionData` (on every request without data) allocates
    // nothing.
    Option<Arc<Map>>,
);

type Map = BTreeMap<String, Value>;

static EMPTY: Map = BTreeMap::new();

impl PartialEq for SessionData {
    fn eq(&self, other: &Self) -> bool {
        self.map() == other.map()
    }
}

impl Eq for SessionData {}

/// A serialized value: shared, so a request's view, its changes and the
/// memory store hold one copy between them.
pub(crate) type Value = Arc<[u8]>;

impl SessionData {
    fn map(&self) -> &Map {
        self.0.as_deref().unwrap_or(&EMPTY)
    }

    fn map_mut(&mut self) -> &mut Map {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }

    /// The serialized value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.map().get(key).map(|v| &**v)
    }

    /// Keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.map().iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// The size the limit counts: every key's and value's length, in bytes.
    pub fn size(&self) -> usize {
        self.map().iter().map(|(k, v)| entry_size(k, v)).sum()
    }

    /// The value of `key`, shared.
    pub(crate) fn get_shared(&self, key: &str) -> Option<&Value> {
        self.map().get(key)
    }

    /// Keys and values, shared.
    pub(crate) fn iter_shared(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.map().iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Sets `key` to `value` (a store decoding what it read).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Arc<[u8]>>) {
        self.map_mut().insert(key.into(), value.into());
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        self.map().contains_key(key) && self.map_mut().remove(key).is_some()
    }

    /// Applies `changes` as a store must: a clear first (if asked), then
    /// each key's write or removal.
    pub fn apply(&mut self, changes: &DataChanges) {
        if changes.is_empty() {
            return;
        }
        let map = self.map_mut();
        if changes.clear {
            map.clear();
        }
        for (key, value) in &changes.keys {
            match (value, map.get_mut(key.as_str())) {
                // A key already there keeps its allocation.
                (Some(v), Some(slot)) => *slot = v.clone(),
                (Some(v), None) => {
                    map.insert(key.clone(), v.clone());
                }
                (None, _) => {
                    map.remove(key);
                }
            }
        }
    }

    /// The size this data would have after `changes`.
    pub fn size_after(&self, changes: &DataChanges) -> usize {
        let mut size = if changes.clear { 0 } else { self.size() };
        for (key, value) in &changes.keys {
            if let Some(old) = self.map().get(key).filter(|_| !changes.clear) {
                size -= entry_size(key, old);
            }
            if let Some(v) = value {
                size += entry_size(key, v);
            }
        }
        size
    }
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.map().keys()).finish()
    }
}

fn entry_size(key: &str, value: &[u8]) -> usize {
    key.len() + value.len()
}

/// Changes to a session's data, written by
/// [`SessionStore::write_data`](crate::SessionStore::write_data) in one
/// atomic step: a clear of every key (if asked), then per key a new value
/// or a removal. Keys not named are left as they are, so two requests that
/// change different keys both keep their change.
///
/// `Debug` prints the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DataChanges {
    clear: bool,
    keys: BTreeMap<String, Option<Value>>,
}

impl DataChanges {
    /// Sets `key` to the serialized `value`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Arc<[u8]>>) {
        self.keys.insert(key.into(), Some(value.into()));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<String>) {
        let key = key.into();
        if self.clear {
            self.keys.remove(&key);
        } else {
            self.keys.insert(key, None);
        }
    }

    /// Removes every key, including those set before in these changes.
    pub fn clear(&mut self) {
        self.clear = true;
        self.keys.clear();
    }

    /// Whether every key is removed before the others are written.
    pub fn clears(&self) -> bool {
        self.clear
    }

    /// What `key` reads as through these changes: `Some(Some(value))` set,
    /// `Some(None)` removed (by name or by the clear), `None` untouched.
    pub(crate) fn lookup(&self, key: &str) -> Option<Option<&Value>> {
        match self.keys.get(key) {
            Some(value) => Some(value.as_ref()),
            None if self.clear => Some(None),
            None => None,
        }
    }

    /// Each key written, shared, in key order.
    pub(crate) fn sets(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.keys
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_ref()?)))
    }

    /// Each key written (`Some`) or removed (`None`), in key order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        !self.clear && self.keys.is_empty()
    }

    /// Adds `later` after these changes: the result writes what applying
    /// both in order would.
    pub fn then(&mut self, later: &DataChanges) {
        if later.clear {
            self.clear();
        }
        for (key, value) in &later.keys {
            match value {
                Some(v) => self.set(key.clone(), v.clone()),
                None => self.remove(key.clone()),
            }
        }
    }

    /// The same changes as sets of every key of `data` (carrying data
    /// over to a new session).
    pub fn copy_of(data: &SessionData) -> Self {
        let mut changes = Self::default();
        for (k, v) in data.iter() {
            changes.set(k, v);
        }
        changes
    }
}

impl fmt::Debug for DataChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<(&str, &str)> = self
            .keys
            .iter()
            .map(|(k, v)| (k.as_str(), if v.is_some() { "set" } else { "removed" }))
            .collect();
        f.debug_struct("DataChanges")
            .field("clear", &self.clear)
            .field("keys", &keys)
            .finish()
    }
}

/// What [`SessionStore::write_data`](crate::SessionStore::write_data)
/// checks in the same atomic step as the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimit {
    /// The most bytes the session's data may hold after the write
    /// ([`SessionData::size`]); over it, nothing is written and the store
    /// answers [`StoreError::DataTooLarge`](crate::store::StoreError::DataTooLarge).
    pub max_bytes: usize,
    /// The time the session's liveness is judged at
    /// ([`SessionRecord::is_live`](crate::store::SessionRecord::is_live)), ms
    /// since the epoch: a dead session's data is never written.
    pub now_ms: u64,
}

impl DataLimit {
    /// `Ok` if data of `size` bytes fits, else the store's refusal.
    pub fn check(&self, size: usize) -> Result<(), crate::store::StoreError> {
        if size > self.max_bytes {
            return Err(crate::store::StoreError::DataTooLarge {
                size,
                max: self.max_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_after_matches_the_size_once_applied() {
        let mut data = SessionData::default();
        let mut first = DataChanges::default();
        first.set("a", b"12345".to_vec());
        first.set("bb", b"1".to_vec());
        assert_eq!(data.size_after(&first), 6 + 3);
        data.apply(&first);
        assert_eq!(data.size(), 9);

        let mut second = DataChanges::default();
        second.set("a", b"1".to_vec());
        second.remove("bb");
        second.remove("absent");
        assert_eq!(data.size_after(&second), 2);
        data.apply(&second);
        assert_eq!(data.size(), 2);

        let mut third = DataChanges::default();
        third.set("x", b"1".to_vec());
        third.clear();
        third.set("y", b"22".to_vec());
        assert_eq!(data.size_after(&third), 3);
        data.apply(&third);
        assert_eq!(data.iter().collect::<Vec<_>>(), vec![("y", &b"22"[..])]);
    }

    #[test]
    fn debug_never_prints_values() {
        let mut changes = DataChanges::default();
        changes.set("csrf", b"\"s3cret\"".to_vec());
        let mut data = SessionData::default();
        data.apply(&changes);
        assert!(!format!("{data:?}{changes:?}").contains("s3cret"));
        assert!(format!("{data:?}").contains("csrf"));
    }
}
