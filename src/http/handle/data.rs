//! The application's data in the session: typed reads and writes on
//! [`Session`], written back once per request.
//!
//! Reads cost nothing: the data came with the request's validation, in the
//! same store round trip. Writes are kept on the handle and written in one
//! more round trip when the response leaves (or at [`Session::save`]),
//! key by key, so concurrent requests that change different keys both keep
//! their change. A visitor without a session gets an anonymous one at the
//! first write, never before.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::DataChanges;
use crate::error::{Error, ErrorKind};
use crate::http::Rejection;

use super::{Presence, Session};

/// Why a read or write of session data failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The value could not be serialized to JSON.
    #[error("session data `{key}` could not be serialized")]
    Serialize {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The stored value is not a `T`: it was written as another type.
    #[error("session data `{key}` is not of the requested type")]
    Deserialize {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The session's data would exceed
    /// [`Config::max_data_bytes`](crate::Config::max_data_bytes). Nothing
    /// was changed.
    #[error("the session's data would be {size} bytes, over the limit of {max}")]
    TooLarge {
        /// The size the data would have had.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Writing failed: the session ended meanwhile, the store failed, an
    /// anonymous session could not be created, or the request's session
    /// was not validated (the refresh route: `ErrorKind::NotValidated`).
    #[error("the session's data could not be written")]
    Session(#[source] Error),
}

impl From<Error> for DataError {
    fn from(e: Error) -> Self {
        match e.kind() {
            crate::ErrorKind::DataTooLarge { size, max } => Self::TooLarge {
                size: *size,
                max: *max,
            },
            _ => Self::Session(e),
        }
    }
}

/// A refusal to answer with: 413 for data too large, the session's own
/// refusal (401, 503, ...) for a failed write, 500 otherwise.
impl From<DataError> for Rejection {
    fn from(e: DataError) -> Self {
        use http::StatusCode;
        match e {
            DataError::Session(e) => Rejection::from(&e),
            DataError::TooLarge { .. } => Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "session_data_too_large",
                e.to_string(),
            ),
            DataError::Serialize { .. } | DataError::Deserialize { .. } => Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "session_data_error",
                e.to_string(),
            ),
        }
    }
}

/// A type kept in the session under a key of its own: the typed
/// whole-struct form of [`Session::get`] and [`Session::insert`].
///
/// ```
/// use rolling_session::http::SessionValue;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Cart {
///     items: Vec<String>,
/// }
///
/// impl SessionValue for Cart {
///     const KEY: &'static str = "cart";
/// }
///
/// async fn add(session: rolling_session::Session) -> Result<(), rolling_session::http::DataError> {
///     let mut cart: Cart = session.value()?;
///     cart.items.push("apple".into());
///     session.set_value(&cart)
/// }
/// ```
pub trait SessionValue: Serialize + DeserializeOwned + Default {
    /// The key it is stored under.
    const KEY: &'static str;
}

impl Session {
    /// The value stored under `key`, or `None`.
    ///
    /// ```
    /// # async fn handler(session: rolling_session::Session) -> Result<(), rolling_session::http::DataError> {
    /// let visits: Option<u64> = session.get("visits")?;
    /// # Ok(()) }
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, DataError> {
        let state = self.lock();
        state
            .data
            .get(key)
            .map(|bytes| {
                serde_json::from_slice(bytes).map_err(|source| DataError::Deserialize {
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// Stores `value` under `key`, replacing what was there. Written when
    /// the response leaves (or at [`save`](Self::save)); a visitor without
    /// a session gets an anonymous one then. Fails, changing nothing, if
    /// the value cannot be serialized or the data would exceed
    /// [`Config::max_data_bytes`](crate::Config::max_data_bytes).
    pub fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), DataError> {
        let mut json = Json::default();
        serde_json::to_writer(&mut json, value).map_err(|source| DataError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        let bytes = json.bytes();
        let max = self.manager().config().max_data_bytes;
        let mut state = self.lock();
        let old = state.data.get(key);
        if old.is_some_and(|old| **old == *bytes) {
            // Storing the same value again costs no write.
            return Ok(());
        }
        let old_size = old.map_or(0, |v| key.len() + v.len());
        let size = state.data.size() - old_size + key.len() + bytes.len();
        if size > max {
            return Err(DataError::TooLarge { size, max });
        }
        state.data.set(key, bytes.into());
        Ok(())
    }

    /// Removes `key` and returns what it held (`None` if nothing, or if it
    /// held something else than a `T`).
    pub fn remove<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let old = self.get(key).ok().flatten();
        // Removing an absent key costs no write.
        self.lock().data.remove(key);
        old
    }

    /// Removes every key.
    pub fn clear(&self) {
        // Clearing no data costs no write.
        self.lock().data.clear();
    }

    /// The [`SessionValue`] `T`, or its default if none is stored.
    pub fn value<T: SessionValue>(&self) -> Result<T, DataError> {
        Ok(self.get(T::KEY)?.unwrap_or_default())
    }

    /// Stores the [`SessionValue`] `value` under its key.
    pub fn set_value<T: SessionValue>(&self, value: &T) -> Result<(), DataError> {
        self.insert(T::KEY, value)
    }

    /// Whether this request changed the data and has not written it yet.
    pub fn is_modified(&self) -> bool {
        self.lock().data.is_modified()
    }

    /// Writes this request's changes now, in one store round trip, instead
    /// of when the response leaves; the error is then yours to handle. A
    /// visitor without a session gets an anonymous one first (fixation is
    /// not a concern: a login always moves to a fresh id).
    ///
    /// Writes that fail when the response leaves replace the response with
    /// the refusal (413 `session_data_too_large`, 503, ...).
    pub async fn save(&self) -> Result<(), DataError> {
        let (changes, target) = {
            let mut state = self.lock();
            if !state.data.is_modified() {
                return Ok(());
            }
            let target = match &state.presence {
                Presence::Active { session, .. } => Some(session.id()),
                Presence::Deferred { .. } => {
                    return Err(DataError::Session(ErrorKind::NotValidated.into()));
                }
                Presence::Missing | Presence::Rejected(_) => None,
            };
            (state.data.take_pending(), target)
        };
        let id = match target {
            Some(id) => id,
            None if state_after_is_empty(&changes) => {
                self.lock().data.saved(changes);
                return Ok(());
            }
            None => {
                // Boxed: creating a session is a large future, and only a
                // visitor's first write needs it.
                let created = Box::pin(self.manager().create_anonymous(self.inner.context.clone()))
                    .await
                    .map_err(|e| self.requeue(changes.clone(), e))?;
                let id = created.session.id();
                self.activate(created.session, created.token, None);
                id
            }
        };
        match self.manager().write_session_data(&id, &changes).await {
            Ok(()) => {
                self.lock().data.saved(changes);
                Ok(())
            }
            Err(e) => Err(self.requeue(changes, e)),
        }
    }

    /// [`save`](Self::save) as the response leaves (the layer's last use
    /// of the handle), handing the handle back. When no one else holds the
    /// handle any more, nothing can read the data again: the data read is
    /// let go first, so that an in-process store, no longer sharing it,
    /// applies the changes in place instead of copying the data.
    pub(crate) async fn save_last(self) -> (Self, Result<(), DataError>) {
        if std::sync::Arc::strong_count(&self.inner) == 1 {
            self.lock().data.forget_read();
        }
        let saved = self.save().await;
        (self, saved)
    }

    /// A failed write: its changes are queued again (before any made
    /// since), so a retry of [`save`](Self::save) writes them.
    fn requeue(&self, changes: DataChanges, e: Error) -> DataError {
        self.lock().data.requeue(changes);
        DataError::from(self.failed(e))
    }
}

/// A value's JSON, written on the stack while it is short (a counter, an
/// id, a flag: most are), so that its one allocation is the shared value
/// it becomes; a longer one moves to the heap.
struct Json {
    inline: [u8; 64],
    len: usize,
    heap: Vec<u8>,
}

impl Default for Json {
    fn default() -> Self {
        Self {
            inline: [0; 64],
            len: 0,
            heap: Vec::new(),
        }
    }
}

impl Json {
    fn bytes(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

impl std::io::Write for Json {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.heap.is_empty() {
            if let Some(room) = self.inline.get_mut(self.len..self.len + buf.len()) {
                room.copy_from_slice(buf);
                self.len += buf.len();
                return Ok(buf.len());
            }
            self.heap.reserve(self.len + buf.len());
            self.heap.extend_from_slice(&self.inline[..self.len]);
        }
        self.heap.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `changes` leave no data behind on a session that has none
/// (only removals): no anonymous session is worth creating for them.
fn state_after_is_empty(changes: &DataChanges) -> bool {
    changes.keys().all(|(_, value)| value.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{RequestInfo, SessionManager};
    use crate::token::Token;
    use crate::{KeyRing, TokenKey};

    /// A request that reads `n` and writes it back one higher, the way the
    /// layer does it (validation, handler, `save_last`); `keep` holds a
    /// second handle over the save, as a handler's spawned task may.
    async fn request(manager: &SessionManager, token: &Token, keep: bool) -> (Token, u64) {
        let exchange = crate::http::SessionExchange::new(manager.clone());
        let handle = Session::validated(exchange, token.clone(), RequestInfo::default()).await;
        let n: u64 = handle.get("n").unwrap().unwrap_or_default();
        handle.insert("n", &(n + 1)).unwrap();
        if n == 0 {
            handle.insert("other", "kept").unwrap();
        }
        let kept = keep.then(|| handle.clone());
        let (handle, saved) = handle.save_last().await;
        saved.unwrap();
        if let Some(kept) = kept {
            // Whoever still holds the handle reads the data with the write.
            assert_eq!(kept.get::<u64>("n").unwrap(), Some(n + 1));
            assert_eq!(
                kept.get::<String>("other").unwrap().as_deref(),
                Some("kept")
            );
        }
        let next = handle.live_token().unwrap();
        (next, n)
    }

    /// Values written on the stack and those that outgrow it read back
    /// as `serde_json` writes them.
    #[test]
    fn values_of_every_length_are_written_as_serde_json_writes_them() {
        use std::io::Write as _;
        for len in [0, 1, 61, 62, 63, 64, 65, 200] {
            let value = "x".repeat(len);
            let mut json = Json::default();
            serde_json::to_writer(&mut json, &value).unwrap();
            assert_eq!(json.bytes(), serde_json::to_vec(&value).unwrap(), "{len}");
        }
        let mut json = Json::default();
        for _ in 0..100 {
            json.write_all(b"ab").unwrap();
        }
        json.flush().unwrap();
        assert_eq!(json.bytes(), b"ab".repeat(100));
    }

    #[tokio::test]
    async fn the_last_save_writes_and_other_holders_still_read() {
        let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
            .build()
            .unwrap();
        let created = manager
            .create_session("alice", Default::default())
            .await
            .unwrap();
        let mut token = created.token;
        for (i, keep) in [false, true, false, true].into_iter().enumerate() {
            let (next, n) = request(&manager, &token, keep).await;
            assert_eq!(n, i as u64, "each request reads the previous one's write");
            token = next;
        }
    }
}
