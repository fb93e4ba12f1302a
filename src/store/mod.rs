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
//! renewals and elevations), keyed by its [`LineageKey`](crate::LineageKey):
//! the first 8 bytes of every id the lineage had. Every method that takes a
//! [`SessionId`] must find the record from any of its ids
//! ([`SessionRecord::has_id`]) and treat any other id as absent.
//!
//! Every store must apply [`SessionRecord::advance`] atomically in
//! [`verify_and_advance`](SessionStore::verify_and_advance): read, decide
//! and write as one step, so two requests with the same token can never
//! both rotate. The conformance suite (feature `test-util`) checks this and
//! the rest of the contract for any store.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::sequence::{AdvanceRequest, Verdict};
use crate::session::{SessionId, SessionMeta, SessionRecord};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance {
    /// What the sequence rule decided.
    pub verdict: Verdict,
    /// The record after the decision was applied.
    pub record: SessionRecord,
}

/// Storage for sessions. Implement it to keep sessions in your own
/// database; run `rolling_session::store::conformance` (feature
/// `test-util`) against your implementation to prove it.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session. Fails with [`StoreError::Conflict`] if its
    /// lineage key is taken.
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError>;

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
}
