//! Where sessions live: the [`SessionStore`] trait and its implementations.
//!
//! The trait is object safe and used as `Arc<dyn SessionStore>`: the
//! manager, the tower layer and the framework adapters then carry no store
//! type parameter, and a store can be chosen at run time from
//! configuration. The price is one boxed future per call (`async-trait`),
//! tens of nanoseconds against a store call's cost (see
//! `docs/benchmarks.md`).
//!
//! A store keeps one record per session *lineage* (login to logout, across
//! renewals and elevations), keyed by its [`LineageKey`]:
//! the first 8 bytes of every id the lineage had. Every method that takes a
//! [`SessionId`] must find the record from any of its ids
//! ([`SessionRecord::has_id`]) and treat any other id as absent.
//!
//! Every store must apply [`SessionRecord::advance`] atomically in
//! [`verify_and_advance`](SessionStore::verify_and_advance): read, decide
//! and write as one step, so two requests with the same token can never
//! both rotate; and [`SessionLimit::evictions`] atomically in
//! [`create_limited`](SessionStore::create_limited), so parallel logins of
//! one user can never hold more than the limit. The conformance suite
//! (feature `test-util`) checks this and the rest of the contract for any
//! store.
//!
//! Stores never check a record's [`RecordSeal`]: it travels inside
//! [`SessionMeta`] and the manager checks it on every record it reads.

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::data::{DataChanges, DataLimit, SessionData};
pub use crate::error::{ParseVerdictError, RecordSealError, StoreError};
pub use crate::record::{
    AdvanceRequest, LineageKey, MAX_RETIRED, RecordSeal, Retirement, Retirements, RevocationReason,
    Rotate, SequenceState, SessionContext, SessionFlags, SessionId, SessionMeta, SessionRecord,
    Verdict,
};

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod conformance;
mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{PayloadKey, PayloadKeys, RedisStore, RedisStoreBuilder};
pub use memory::MemoryStore;

/// The outcome of [`SessionStore::verify_and_advance`]: the verdict and the
/// record as it stands after it.
///
/// The record is shared (`Arc`): a store that keeps records in memory hands
/// out a reference count instead of a copy per request, and the manager
/// passes it on to the request's [`SessionInfo`](crate::SessionInfo)
/// without copying it again. A store that decodes the record from a reply
/// wraps it: `Arc::new(record)` (or `record.into()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    /// What the sequence rule decided.
    pub verdict: Verdict,
    /// The record after the decision was applied.
    pub record: Arc<SessionRecord>,
    /// The session's data ([`write_data`](SessionStore::write_data)),
    /// read in the same step; empty when the verdict is not accepted.
    pub data: SessionData,
}

/// The per-user session limit that
/// [`SessionStore::create_limited`] enforces in the same atomic step as
/// the creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// Live sessions allowed per user, the new one included (at least 1).
    pub max: usize,
    /// At the limit, evict the user's oldest live sessions (`true`) or
    /// refuse the new one with [`StoreError::SessionLimit`] (`false`).
    pub evict_oldest: bool,
    /// The time the liveness of the user's sessions is judged at
    /// ([`SessionRecord::is_live`]), ms since the epoch.
    pub now_ms: u64,
}

impl SessionLimit {
    /// The rule, for stores that can read a user's sessions and write
    /// inside one lock or transaction: given every stored session of the
    /// user, the ids of those to evict so the new session fits (oldest
    /// first: by creation time, then lineage key), or
    /// [`StoreError::SessionLimit`]. Dead sessions do not count.
    pub fn evictions<'a>(
        &self,
        sessions: impl IntoIterator<Item = &'a SessionRecord>,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut live: Vec<&SessionRecord> = sessions
            .into_iter()
            .filter(|r| r.is_live(self.now_ms))
            .collect();
        let max = self.max.max(1);
        if live.len() < max {
            return Ok(Vec::new());
        }
        if !self.evict_oldest {
            return Err(StoreError::SessionLimit { max: self.max });
        }
        live.sort_by_key(|r| (r.created_at, r.lineage()));
        Ok(live[..=live.len() - max].iter().map(|r| r.id).collect())
    }
}

/// What [`SessionStore::create_limited`] did besides creating the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Created {
    /// The current ids of the sessions evicted to make room, oldest first.
    /// Each is kept, revoked with
    /// [`RevocationReason::Evicted`],
    /// until its purge time.
    pub evicted: Vec<SessionId>,
}

impl Created {
    /// A creation that evicted `evicted`.
    pub fn evicting(evicted: Vec<SessionId>) -> Self {
        Self { evicted }
    }
}

/// Storage for sessions. Implement it to keep sessions in your own
/// database; run `rolling_session::store::conformance` (feature
/// `test-util`) against your implementation to prove it.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session. Fails with [`StoreError::Conflict`] if its
    /// lineage key is taken.
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// Stores a new session under the per-user limit, in one atomic step:
    /// counts the user's live sessions ([`SessionRecord::is_live`] at
    /// `limit.now_ms`) and, at the limit, either refuses with
    /// [`StoreError::SessionLimit`] (nothing is written) or revokes the
    /// oldest ones with
    /// [`RevocationReason::Evicted`]
    /// (keeping them until their purge time, like any revoked session) and
    /// returns their ids. However many logins of one user run in parallel,
    /// the user never has more than `limit.max` live sessions.
    /// [`SessionLimit::evictions`] is the rule. Fails with
    /// [`StoreError::Conflict`] if the lineage key is taken, without
    /// evicting anything.
    ///
    /// The session manager creates every session through this method.
    ///
    /// The default implementation is **not atomic**: it lists the user's
    /// sessions, deletes those to evict (without a tombstone: their next
    /// request gets `session_not_found`), then creates. It exists so that
    /// stores written for earlier versions still compile; every store of
    /// this crate overrides it, and so must yours (the conformance suite's
    /// `concurrent_creates_respect_the_limit` races 16 logins against it).
    async fn create_limited(
        &self,
        record: &SessionRecord,
        limit: &SessionLimit,
    ) -> Result<Created, StoreError> {
        let stored = self.list_by_user(&record.user_id).await?;
        let evicted = limit.evictions(&stored)?;
        for id in &evicted {
            self.delete(id).await?;
        }
        self.create(record).await?;
        Ok(Created { evicted })
    }

    /// Loads the session `id` is an id of, or `None` if there is none.
    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError>;

    /// Atomically applies the sequence rule ([`SessionRecord::advance`]) to
    /// the stored session and returns the verdict and the new record, or
    /// `None` if the session does not exist. One round trip.
    async fn verify_and_advance(
        &self,
        id: &SessionId,
        request: &AdvanceRequest,
    ) -> Result<Option<Advance>, StoreError>;

    /// Writes `changes` to the data of the session `id` is an id of, in
    /// one atomic step: fails with [`StoreError::NotFound`] if there is no
    /// such session or it is dead (not [`SessionRecord::is_live`] at
    /// `limit.now_ms`), and with [`StoreError::DataTooLarge`] if the data
    /// would exceed `limit.max_bytes` afterwards
    /// ([`SessionData::size_after`]); in both cases nothing is written.
    /// Keys not named in `changes` are left as they are: two writers of
    /// different keys both keep their change; for one key the last write
    /// wins. The data never moves the token sequence, and
    /// [`verify_and_advance`](Self::verify_and_advance) returns it with
    /// the record. Deleting the session deletes its data; so does a
    /// verdict that revokes it.
    ///
    /// The default answers [`StoreError::Unsupported`]: stores written
    /// before session data existed keep compiling, and only requests that
    /// write data fail.
    async fn write_data(
        &self,
        id: &SessionId,
        changes: &DataChanges,
        limit: &DataLimit,
    ) -> Result<(), StoreError> {
        let _ = (id, changes, limit);
        Err(StoreError::Unsupported("session data"))
    }

    /// Replaces the descriptive half of a session, leaving its sequence
    /// untouched. Fails with [`StoreError::NotFound`] if it does not exist.
    async fn update_meta(&self, id: &SessionId, meta: &SessionMeta) -> Result<(), StoreError>;

    /// Deletes the session (the whole lineage) `id` is an id of; returns
    /// whether it existed.
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError>;

    /// All stored sessions of a user, dead or alive (the manager filters).
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError>;

    /// Deletes all sessions of a user; returns how many were deleted.
    async fn delete_by_user(&self, user_id: &str) -> Result<u64, StoreError>;

    /// Deletes sessions whose [`purge_at`](SessionRecord::purge_at) has
    /// passed at `now_ms`; returns how many. Stores with native expiry may
    /// return 0.
    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError>;

    /// Whether the records live in this process's own memory, where
    /// nobody can change them without being able to read the keys too: the
    /// manager then skips the record seal check on every read (an HMAC per
    /// request). Default `false`: a store outside the process (a database,
    /// Redis) is checked, so that write access to it alone cannot rewrite a
    /// session (`docs/security.md`). Only [`MemoryStore`] says `true`.
    fn is_in_process(&self) -> bool {
        false
    }

    /// How many sessions the store holds (live ones and those not swept
    /// yet), if it can tell at once without I/O; the cap
    /// `admission.max_sessions` needs it. Default `None`: a manager with
    /// that cap refuses to be built on such a store.
    fn session_count(&self) -> Option<u64> {
        None
    }
}
