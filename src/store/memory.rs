//! The embedded in-memory store.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Advance, Created, DataChanges, DataLimit, SessionData, SessionLimit, SessionStore};
use crate::error::StoreError;
use crate::record::{AdvanceRequest, RevocationReason};
use crate::record::{LineageKey, SessionId, SessionMeta, SessionRecord};

/// Sessions in process memory: the default store for one node.
///
/// Sessions are spread over shards, each behind its own mutex, so requests
/// on different sessions rarely wait for each other; a lock is held only
/// for a hash-map operation, never across an `.await`. Sweeping expired
/// sessions takes one shard at a time and yields to the runtime between
/// shards, so there is no global pause; maps shrink once mostly empty.
///
/// Session ids are already uniformly random, so a shard is picked from the
/// id's bytes with no hashing, and the maps use a cheap hasher
/// (`IdHasher`) on those bytes.
///
/// A user's sessions are spread over the shards; the user index is kept
/// apart, in a fixed set of stripes picked by a hash of the user id, so a
/// login looks at one stripe and its user's few shards, not at every
/// shard. Creating a session under the per-user limit
/// ([`create_limited`](SessionStore::create_limited)) holds the user's
/// stripe throughout and visits the shards one at a time, so two logins
/// of one user never count at the same time. A stripe is only ever taken
/// with no shard lock held (removals unlink their index entry after
/// releasing the shard), and no operation holds two shard locks at once,
/// so the lock order cannot deadlock.
///
/// ```
/// # tokio_test_block_on(async {
/// use rolling_session::{MemoryStore, SessionStore};
/// let store = MemoryStore::new();
/// assert_eq!(store.len(), 0);
/// assert!(store.list_by_user("alice").await?.is_empty());
/// # Ok::<(), rolling_session::store::StoreError>(())
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// The user index, striped by a hash of the user id: each stripe holds
    /// (hash of the user id, lineage) for every session of its users
    /// (anonymous sessions, with an empty user id, are not indexed). A set
    /// of 12-byte entries (half the hash, the lineage), with no copy of the
    /// user id and no list per user: the records hold the ids, and a lookup
    /// keeps the records whose user id is the one asked for (two users
    /// whose ids hash alike share a range, never each other's sessions). A stripe's lock is also the
    /// per-user lock of `create_limited`; it is taken before a shard lock,
    /// never while one is held.
    users: Box<[Mutex<UserIndex>]>,
    user_hasher: UserHasher,
}

/// Hashes user ids, for the lock stripes and the user index: keyed
/// (SipHash with a random key), as user ids may be chosen by users.
#[derive(Debug, Default)]
struct UserHasher(std::hash::RandomState);

impl UserHasher {
    fn hash(&self, user_id: &str) -> u64 {
        self.0.hash_one(user_id)
    }

    /// The user index's key for `user_id`: the hash's high half (its low
    /// bits pick the stripe, so within a stripe they would all be alike).
    /// Half a hash keeps an index entry at 12 bytes instead of 16; two
    /// users whose halves match share a range, as two whose hashes match
    /// did, and lookups keep only the records of the user asked for.
    fn index_key(&self, user_id: &str) -> u32 {
        (self.hash(user_id) >> 32) as u32
    }
}

type LineageMap<V> = HashMap<LineageKey, V, KeyHasherBuilder>;

type UserIndex = BTreeSet<(u32, LineageKey)>;

#[derive(Debug, Default)]
struct Shard {
    /// Shared (`Arc`): a request's [`Advance`] carries the record out as a
    /// reference count, not a copy, and the next advance writes in place
    /// (`Arc::make_mut`) unless an earlier request still holds its
    /// snapshot, which is then copied once. Behind a pointer, too, because
    /// a hash map keeps up to half its slots empty after growing, and an
    /// empty slot then costs a pointer instead of a whole record (see
    /// `docs/benchmarks.md`, memory).
    sessions: Records,
    /// The data of the sessions that have any.
    data: LineageMap<SessionData>,
}

impl Shard {
    /// The record `id` belongs to, if `id` is one of its ids.
    fn record(&self, id: &SessionId) -> Option<&Arc<SessionRecord>> {
        self.sessions.get(&id.lineage()).filter(|r| r.has_id(id))
    }

    /// The record `id` belongs to, to write: copied first if an earlier
    /// snapshot of it is still held somewhere.
    fn record_mut(&mut self, id: &SessionId) -> Option<&mut SessionRecord> {
        self.sessions
            .get_mut(&id.lineage())
            .filter(|r| r.has_id(id))
            .map(Arc::make_mut)
    }

    /// Forgets a lineage: its record and its data. The caller unlinks it
    /// from the user index after releasing this shard
    /// ([`MemoryStore::unlink`]).
    fn remove(&mut self, key: &LineageKey) -> Option<Arc<SessionRecord>> {
        let record = self.sessions.remove(key)?;
        self.data.remove(key);
        Some(record)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with 256 shards, or 16 per CPU if that is more: small
    /// enough that sweeping one shard of a million sessions holds its lock
    /// for well under a millisecond.
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_shards((cpus * 16).max(256))
    }

    /// A store with `shards` shards (rounded up to a power of two).
    pub fn with_shards(shards: usize) -> Self {
        let n = shards.max(1).next_power_of_two();
        Self {
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            users: (0..USER_STRIPES)
                .map(|_| Mutex::new(UserIndex::new()))
                .collect(),
            user_hasher: UserHasher::default(),
        }
    }

    /// How many sessions are stored, dead or alive.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).sessions.len()).sum()
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creates the record; `index` is the locked stripe of its user.
    fn create_sync(&self, record: &SessionRecord, index: &mut UserIndex) -> Result<(), StoreError> {
        let key = record.lineage();
        {
            let mut shard = self.shard(&key);
            if shard.sessions.get(&key).is_some() {
                return Err(StoreError::Conflict);
            }
            shard.sessions.insert(Arc::new(record.clone()));
        }
        if !record.user_id.is_empty() {
            index.insert((self.user_hasher.index_key(&record.user_id), key));
        }
        Ok(())
    }

    /// The lineages indexed under `user_id`'s hash in its locked stripe
    /// (possibly another user's too, or one just removed: callers check
    /// the record).
    fn user_keys(&self, user_id: &str, index: &UserIndex) -> Vec<LineageKey> {
        let hash = self.user_hasher.index_key(user_id);
        index
            .range((hash, LineageKey::MIN)..=(hash, LineageKey::MAX))
            .map(|(_, key)| *key)
            .collect()
    }

    /// The records of `user_id`; `index` is its locked stripe.
    fn list_sync(&self, user_id: &str, index: &UserIndex) -> Vec<SessionRecord> {
        self.user_keys(user_id, index)
            .iter()
            .filter_map(|key| {
                let shard = self.shard(key);
                shard
                    .sessions
                    .get(key)
                    .filter(|r| *r.user_id == *user_id)
                    .map(|r| SessionRecord::clone(r))
            })
            .collect()
    }

    /// Removes a removed record's user index entry; called with no shard
    /// lock held.
    fn unlink(&self, record: &SessionRecord) {
        if !record.user_id.is_empty() {
            let hash = self.user_hasher.index_key(&record.user_id);
            self.user_lock(&record.user_id)
                .remove(&(hash, record.lineage()));
        }
    }

    fn user_lock(&self, user_id: &str) -> MutexGuard<'_, UserIndex> {
        let stripe = self.user_hasher.hash(user_id) as usize % self.users.len();
        self.users[stripe].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shard(&self, key: &LineageKey) -> MutexGuard<'_, Shard> {
        let n = u64::from_le_bytes(*key.as_bytes());
        let idx = (n as usize) & (self.shards.len() - 1);
        lock(&self.shards[idx])
    }
}

/// Stripes of per-user locks: logins of two users wait for each other only
/// when their ids hash to the same stripe, and only for one scan.
const USER_STRIPES: usize = 64;

/// A poisoned shard only means another thread panicked while holding it;
/// every operation leaves the maps consistent, so carry on.
fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn session_count(&self) -> Option<u64> {
        Some(self.len() as u64)
    }

    fn is_in_process(&self) -> bool {
        true
    }

    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let mut index = self.user_lock(&record.user_id);
        self.create_sync(record, &mut index)
    }

    async fn create_limited(
        &self,
        record: &SessionRecord,
        limit: &SessionLimit,
    ) -> Result<Created, StoreError> {
        // The per-user lock first, then shard locks one at a time, never
        // two at once (see the type's documentation). No await below: the
        // whole step runs under the user's lock.
        let mut index = self.user_lock(&record.user_id);
        let evicted = limit.evictions(&self.list_sync(&record.user_id, &index))?;
        self.create_sync(record, &mut index)?;
        for id in &evicted {
            let mut shard = self.shard(&id.lineage());
            if let Some(r) = shard.record_mut(id) {
                r.sequence.revoked.get_or_insert(RevocationReason::Evicted);
                shard.data.remove(&id.lineage());
            }
        }
        Ok(Created { evicted })
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .shard(&id.lineage())
            .record(id)
            .map(|r| SessionRecord::clone(r)))
    }

    async fn verify_and_advance(
        &self,
        id: &SessionId,
        request: &AdvanceRequest,
    ) -> Result<Option<Advance>, StoreError> {
        let key = id.lineage();
        let mut shard = self.shard(&key);
        let Some(stored) = shard.sessions.get_mut(&key).filter(|r| r.has_id(id)) else {
            return Ok(None);
        };
        // In place unless a snapshot handed out earlier is still alive.
        let verdict = Arc::make_mut(stored).advance(request);
        let record = Arc::clone(stored);
        let data = if !verdict.is_accepted() {
            if record.sequence.revoked.is_some() {
                shard.data.remove(&key);
            }
            SessionData::default()
        } else {
            shard.data.get(&key).cloned().unwrap_or_default()
        };
        Ok(Some(Advance {
            verdict,
            record,
            data,
        }))
    }

    async fn write_data(
        &self,
        id: &SessionId,
        changes: &DataChanges,
        limit: &DataLimit,
    ) -> Result<(), StoreError> {
        let key = id.lineage();
        let mut shard = self.shard(&key);
        match shard.record(id) {
            Some(record) if record.is_live(limit.now_ms) => {}
            _ => return Err(StoreError::NotFound),
        }
        let data = shard.data.entry(key).or_default();
        if let Err(refused) = limit.check(data.size_after(changes)) {
            if data.is_empty() {
                shard.data.remove(&key);
            }
            return Err(refused);
        }
        data.apply(changes);
        if data.is_empty() {
            shard.data.remove(&key);
        }
        Ok(())
    }

    async fn update_meta(&self, id: &SessionId, meta: &SessionMeta) -> Result<(), StoreError> {
        let mut shard = self.shard(&id.lineage());
        let record = shard.record_mut(id).ok_or(StoreError::NotFound)?;
        record.meta = meta.clone();
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let key = id.lineage();
        let mut shard = self.shard(&key);
        if shard.record(id).is_none() {
            return Ok(false);
        }
        let removed = shard.remove(&key);
        drop(shard);
        if let Some(record) = &removed {
            self.unlink(record);
        }
        Ok(removed.is_some())
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let index = self.user_lock(user_id);
        Ok(self.list_sync(user_id, &index))
    }

    async fn delete_by_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let hash = self.user_hasher.index_key(user_id);
        let mut index = self.user_lock(user_id);
        let mut deleted = 0;
        for key in self.user_keys(user_id, &index) {
            let mut shard = self.shard(&key);
            if shard
                .sessions
                .get(&key)
                .is_some_and(|r| *r.user_id == *user_id)
            {
                deleted += u64::from(shard.remove(&key).is_some());
                index.remove(&(hash, key));
            }
        }
        Ok(deleted)
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut swept = 0;
        for shard in self.shards.iter() {
            // Each lock is held for one bounded chunk of removals; the
            // records are freed after it is released (freeing is most of
            // the cost), and requests on this worker run between chunks.
            loop {
                let (removed, more) = lock(shard).sweep(now_ms, SWEEP_CHUNK);
                swept += removed.len() as u64;
                removed.iter().for_each(|r| self.unlink(r));
                drop(removed);
                tokio::task::yield_now().await;
                if !more {
                    break;
                }
            }
        }
        Ok(swept)
    }
}

/// Records removed per shard lock by a sweep.
const SWEEP_CHUNK: usize = 512;

impl Shard {
    /// Removes at most `chunk` records whose purge time has passed, and
    /// gives memory back once the maps are mostly empty; returns the
    /// removed records (for the caller to free after releasing the lock)
    /// and whether more may be left.
    fn sweep(&mut self, now_ms: u64, chunk: usize) -> (Vec<Arc<SessionRecord>>, bool) {
        let dead: Vec<LineageKey> = self
            .sessions
            .values()
            .filter(|r| now_ms >= r.purge_at())
            .take(chunk)
            .map(|r| r.lineage())
            .collect();
        let more = dead.len() == chunk;
        let mut removed = Vec::with_capacity(dead.len());
        for key in &dead {
            removed.extend(self.remove(key));
        }
        if !more {
            self.sessions.shrink_if_sparse();
            if self.data.capacity() > 4 * self.data.len() + 64 {
                self.data.shrink_to(self.data.len() * 2);
            }
        }
        (removed, more)
    }
}

/// A shard's records, found by their lineage key. The table holds only the
/// pointers: the key is read from the record itself (`SessionRecord::lineage`),
/// so a slot costs 8 bytes, not 16, and a lookup compares keys in the record
/// it was about to read anyway.
#[derive(Debug, Default)]
struct Records(hashbrown::HashTable<Arc<SessionRecord>>);

impl Records {
    fn get(&self, key: &LineageKey) -> Option<&Arc<SessionRecord>> {
        self.0.find(hash_key(key), |r| r.lineage() == *key)
    }

    fn get_mut(&mut self, key: &LineageKey) -> Option<&mut Arc<SessionRecord>> {
        self.0.find_mut(hash_key(key), |r| r.lineage() == *key)
    }

    /// Stores `record`, whose lineage key the caller checked is free.
    fn insert(&mut self, record: Arc<SessionRecord>) {
        let hash = hash_key(&record.lineage());
        self.0
            .insert_unique(hash, record, |r| hash_key(&r.lineage()));
    }

    fn remove(&mut self, key: &LineageKey) -> Option<Arc<SessionRecord>> {
        self.0
            .find_entry(hash_key(key), |r| r.lineage() == *key)
            .ok()
            .map(|e| e.remove().0)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn values(&self) -> impl Iterator<Item = &Arc<SessionRecord>> {
        self.0.iter()
    }

    /// Gives memory back once the table is mostly empty.
    fn shrink_if_sparse(&mut self) {
        if self.0.capacity() > 4 * self.0.len() + 64 {
            self.0
                .shrink_to(self.0.len() * 2, |r| hash_key(&r.lineage()));
        }
    }
}

/// The hash of a lineage key for [`Records`], mixed like [`KeyHasher`]'s.
fn hash_key(key: &LineageKey) -> u64 {
    u64::from_le_bytes(*key.as_bytes())
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(26)
}

/// Hashes a [`LineageKey`]: its 8 bytes are already uniformly random (from
/// the CSPRNG, and an attacker cannot choose stored ids), so no keyed hash
/// is needed against flooding. They are mixed by one multiplication because
/// the shard choice already fixed their low bits, which the map would
/// otherwise use for its bucket index.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasherBuilder;

impl BuildHasher for KeyHasherBuilder {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

#[derive(Debug)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SequenceState;

    fn record(user: &str, now: u64) -> SessionRecord {
        SessionRecord {
            id: SessionId::generate(),
            previous_ids: Box::default(),
            user_id: user.into(),
            created_at: now,
            meta: SessionMeta {
                context: Default::default(),
                permissions: Box::default(),
                previous_permissions: Box::default(),
                expires_at: now + 1_000,
                absolute_expires_at: now + 1_000,
                idle_timeout_ms: 1_000,
                renewals: 0,
                flags: Default::default(),
                seal: None,
            },
            sequence: SequenceState::new(now),
        }
    }

    fn indexed(store: &MemoryStore) -> usize {
        store.users.iter().map(|s| s.lock().unwrap().len()).sum()
    }

    /// Every way a session leaves the store also leaves the user index:
    /// no entry outlives its record.
    #[tokio::test]
    async fn the_user_index_follows_the_records() {
        let store = MemoryStore::with_shards(4);
        let records: Vec<SessionRecord> = (0..12)
            .map(|i| record(["ann", "bob", ""][i % 3], 0))
            .collect();
        for r in &records {
            store.create(r).await.unwrap();
        }
        assert_eq!(indexed(&store), 8, "anonymous sessions are not indexed");
        assert_eq!(store.list_by_user("ann").await.unwrap().len(), 4);
        assert!(store.delete(&records[0].id).await.unwrap());
        assert_eq!(indexed(&store), 7);
        assert_eq!(store.list_by_user("ann").await.unwrap().len(), 3);
        assert_eq!(store.delete_by_user("bob").await.unwrap(), 4);
        assert_eq!(indexed(&store), 3);
        assert!(store.list_by_user("bob").await.unwrap().is_empty());
        assert_eq!(store.sweep_expired(1_000).await.unwrap(), 7);
        assert_eq!((indexed(&store), store.len()), (0, 0));
    }
}
