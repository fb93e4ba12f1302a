//! The Redis store (feature `redis`): [`RedisStore`] and its payload
//! encryption keys. The Lua scripts are in `src/store/redis/`.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelServerType};
use ::redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};
use async_trait::async_trait;
use futures_util::future::join_all;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::{Advance, Created, DataChanges, DataLimit, SessionData, SessionLimit, SessionStore};
use crate::clock::{Clock, SystemClock, as_ms};
use crate::error::StoreError;
use crate::record::{AdvanceRequest, Retirement, RevocationReason, Rotate, SequenceState, Verdict};
use crate::record::{LineageKey, SessionId, SessionMeta, SessionRecord};

/// The longest TTL set on a key, in ms (about 31 years): sessions that
/// never end still get a finite TTL that Redis accepts.
const MAX_TTL_MS: u64 = 1_000_000_000_000;

/// The fields of a lineage hash that make up a record, in the order
/// [`Codec::decode`] reads them, [`Codec::encode`] writes them (and the
/// advance script replies them).
const RECORD_FIELDS: [&str; 13] = [
    "ids", "uid", "created", "meta", "ctr", "pre", "req", "seen", "iss", "ret", "rev", "ends",
    "idle",
];

/// [`Inner::clock_offset`] before the first reply taught it.
const OFFSET_UNKNOWN: i64 = i64::MIN;

/// The `rev` of a hash `create_limited` wrote and its user's index has not
/// admitted yet: every script and read treats it as absent.
const PENDING: &str = "pending";

/// Sessions in Redis or Redis Cluster, shared by every node of a service
/// (feature `redis`): the store for services that run on more than one node.
///
/// # Layout
///
/// | key | type | holds |
/// |-----|------|-------|
/// | `{prefix}s:{<lineage key hex>}` | hash | one session lineage: `ids` (every id it had, comma-separated, the current one last), the sequence in clear (`ctr`, `pre`, `req`, `seen`, `iss`, `ret`, `rev`), the deadlines the script needs (`ends`, `idle`), `uid`, `created`, and `meta`: the rest of the session as JSON, sealed with AES-256-GCM when [`PayloadKeys`] are configured |
/// | `{prefix}u:{<user id>}` | sorted set | the user's lineage keys (hex), scored by their creation time |
///
/// A session keeps one hash from login to logout: renewal and elevation
/// move it to a new id of the same lineage ([`SessionId::lineage`], the
/// first 8 bytes of the id), so every id it had leads to the same key.
/// Each script checks that the id it is given is one of the hash's `ids`
/// and treats any other id as absent.
///
/// Every per-session command touches one key, hash-tagged by the lineage
/// key, so it lives in one slot and each script runs on Redis Cluster.
/// [`verify_and_advance`](SessionStore::verify_and_advance) is one `EVALSHA`
/// (one round trip) running `SessionRecord::advance` in Lua
/// (`src/store/redis/advance.lua`); `redis::Script` falls back to loading
/// the script when the server answers `NOSCRIPT` (after a restart or a
/// failover).
///
/// The user index lives in another slot, so it cannot be updated in the
/// same atomic step as the session. It is kept safe by ordering rather than
/// by transactions: a session is added to the index before its hash is
/// written (and once more after), and removed from it after its hash is
/// deleted. A crash between the two steps leaves at worst an index entry
/// without a session, which readers skip and prune; never a session
/// missing from its user's index, which "log out everywhere" would miss.
/// Logins under the per-user limit
/// ([`create_limited`](SessionStore::create_limited)) are admitted by one
/// script on the index (count, then refuse or evict the oldest, then
/// add), around which the hash is written first as `pending` (invisible,
/// short TTL), then activated, so an eviction can reach a session still
/// being created. `docs/redis.md` has the whole argument.
///
/// Reads decode strictly: a hash this crate did not write (a field that
/// does not parse, `ends` or `idle` that disagree with the payload, a
/// payload that fails its AES-GCM tag) is [`StoreError::Corrupt`], which
/// the session manager answers as a tampered record (`session_tampered`).
///
/// Nothing stored is a credential: only ids, counters and times, never a
/// token or a key.
///
/// `docs/redis.md` lists every field and its encoding (`ret` holds
/// `from-to@at` retirements, `pre` is empty before the first request).
///
/// # Numbers
///
/// Lua computes with doubles, so counters, request counts and millisecond
/// timestamps are exact below 2^53 (at a thousand requests a second, a
/// counter reaches it after 285,000 years). Times only ever copied are kept
/// as the decimal strings they arrive as, so they stay exact at any size.
///
/// # Timeouts
///
/// Every call of the [`SessionStore`] trait is bounded by the configured
/// [`timeout`](RedisStoreBuilder::timeout) (default 1 s): a Redis that is
/// down, unreachable or hung gives [`StoreError::Unavailable`], which the
/// HTTP layer answers with `503 store_unavailable`. The connection
/// reconnects by itself in the background; nothing needs a restart.
///
/// A command the node gave up on may still reach Redis later: queued
/// behind a hang, or kept by TCP on a cut link. The advance script is
/// therefore given a deadline (the call's timeout plus the
/// [`deadline_margin`](RedisStoreBuilder::deadline_margin), on Redis's own
/// clock: the node learns the offset between the two clocks from every
/// reply) and refuses, unapplied, a command that arrives after it. Applied
/// that late, with the time it was sent, it would present a token retired
/// and forgotten since: theft, for an honest user
/// (`tests/store_faults.rs`).
///
/// # Example
///
/// ```no_run
/// use rolling_session::store::{PayloadKey, PayloadKeys, RedisStore};
/// use rolling_session::{KeyRing, SessionManager, TokenKey};
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder()
///     .key_prefix("myapp:")
///     .timeout(Duration::from_millis(500))
///     .encrypt(PayloadKeys::new(PayloadKey::new(1, [7; 32])))
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
///     .store(store)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    timeout: Duration,
    deadline_margin: Duration,
    /// Redis's clock minus this machine's, in ms, as the last advance
    /// reply showed it ([`OFFSET_UNKNOWN`] before the first).
    clock_offset: AtomicI64,
    expiry_slack_ms: u64,
    codec: Codec,
    scripts: Scripts,
}

struct Scripts {
    advance: Script,
    create: Script,
    update_meta: Script,
    delete: Script,
    index: Script,
    admit: Script,
    revoke: Script,
    activate: Script,
    data: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            advance: Script::new(include_str!("redis/advance.lua")),
            create: Script::new(include_str!("redis/create.lua")),
            update_meta: Script::new(include_str!("redis/update_meta.lua")),
            delete: Script::new(include_str!("redis/delete.lua")),
            index: Script::new(include_str!("redis/index.lua")),
            admit: Script::new(include_str!("redis/admit.lua")),
            revoke: Script::new(include_str!("redis/revoke.lua")),
            activate: Script::new(include_str!("redis/activate.lua")),
            data: Script::new(include_str!("redis/data.lua")),
        }
    }
}

/// Turns records into the fields of a lineage hash and back, sealing and
/// opening the payload.
#[derive(Clone)]
struct Codec {
    payload: Option<PayloadKeys>,
    accept_plaintext: bool,
}

/// What a lineage hash holds. Short-lived (one per store call), so the size
/// difference between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Stored {
    /// Nothing: never created, deleted, or expired.
    Missing,
    /// A session `create_limited` is still creating: not usable yet.
    Pending,
    /// A session.
    Record(SessionRecord),
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("mode", &self.conn.mode())
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("deadline_margin", &self.inner.deadline_margin)
            .field("expiry_slack_ms", &self.inner.expiry_slack_ms)
            .field("payload", &self.inner.codec.payload)
            .finish()
    }
}

/// One server through a reconnecting multiplexed connection, a cluster
/// through a slot-routing one, or the primary Sentinel names. All are
/// cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

impl Conn {
    fn mode(&self) -> &'static str {
        match self {
            Self::Single(_) => "single",
            Self::Cluster(_) => "cluster",
            Self::Sentinel(_) => "sentinel",
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(s) => Box::pin(async move {
                let (generation, mut primary) = s.primary().await?;
                let reply = primary.req_packed_command(cmd).await;
                s.check(generation, reply)
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(s) => Box::pin(async move {
                let (generation, mut primary) = s.primary().await?;
                let reply = primary.req_packed_commands(pipeline, offset, count).await;
                s.check(generation, reply)
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(_) => 0,
        }
    }
}

/// How often a node asks the sentinels whether its primary is still the
/// primary, in the background.
const SENTINEL_RECHECK: Duration = Duration::from_secs(1);

/// The primary of a Sentinel-managed group: asked of the sentinels when
/// first needed, again whenever it stops being the primary (it answers
/// `READONLY` or `NOREPLICAS`: demoted, or cut off from its replicas) or
/// cannot be reached (it died: the sentinels promote a replica), and in
/// the background every [`SENTINEL_RECHECK`] (a primary that was replaced
/// while it kept running accepts writes until it is reconfigured, and
/// those writes are lost). No restart is needed to follow a failover.
struct SentinelConn {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The current primary.
    primary: Mutex<Option<Primary>>,
    generations: AtomicU64,
    rechecking: std::sync::atomic::AtomicBool,
    config: ConnectionManagerConfig,
}

#[derive(Clone)]
struct Primary {
    generation: u64,
    conn: ConnectionManager,
    addr: String,
    checked: std::time::Instant,
}

impl SentinelConn {
    /// The current primary, asking the sentinels if it is not known.
    async fn primary(self: &Arc<Self>) -> Result<(u64, ConnectionManager), RedisError> {
        if let Some(known) = self.known() {
            if known.checked.elapsed() >= SENTINEL_RECHECK
                && !self.rechecking.swap(true, Ordering::AcqRel)
            {
                let this = Arc::clone(self);
                tokio::spawn(async move {
                    this.recheck(known.generation).await;
                    this.rechecking.store(false, Ordering::Release);
                });
            }
            return Ok((known.generation, known.conn));
        }
        // One discovery at a time; whoever waited finds its result.
        let mut sentinels = self.sentinels.lock().await;
        if let Some(known) = self.known() {
            return Ok((known.generation, known.conn));
        }
        let client = sentinels.async_get_client().await?;
        let installed = self.install(client, None).await;
        drop(sentinels);
        installed
    }

    /// Connects to the primary `client` names and makes it the current
    /// one, unless `replacing` (a generation) is no longer current.
    async fn install(
        &self,
        client: ::redis::Client,
        replacing: Option<u64>,
    ) -> Result<(u64, ConnectionManager), RedisError> {
        let addr = client.get_connection_info().addr().to_string();
        let conn = ConnectionManager::new_with_config(client, self.config.clone()).await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut primary = self.primary.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = replacing
            && let Some(p) = primary.as_ref()
            && p.generation != g
        {
            // Replaced meanwhile by a discovery after an error.
            return Ok((p.generation, p.conn.clone()));
        }
        *primary = Some(Primary {
            generation,
            conn: conn.clone(),
            addr: addr.clone(),
            checked: std::time::Instant::now(),
        });
        tracing::info!(generation, %addr, "connected to the Redis primary named by Sentinel");
        Ok((generation, conn))
    }

    /// Asks the sentinels which server is the primary now, and follows it
    /// if it is not the current one.
    async fn recheck(&self, generation: u64) {
        let named = tokio::time::timeout(SENTINEL_RECHECK, async {
            let mut sentinels = self.sentinels.lock().await;
            sentinels.async_get_client().await
        })
        .await;
        let Some(current) = self.known().filter(|p| p.generation == generation) else {
            return;
        };
        if let Ok(Ok(client)) = named {
            let addr = client.get_connection_info().addr().to_string();
            if addr != current.addr {
                tracing::warn!(
                    old = %current.addr,
                    new = %addr,
                    "Sentinel names another Redis primary: following it"
                );
                let _ =
                    tokio::time::timeout(SENTINEL_RECHECK, self.install(client, Some(generation)))
                        .await;
                return;
            }
        }
        // The same primary, or no answer: check again after an interval.
        let mut primary = self.primary.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = primary.as_mut().filter(|p| p.generation == generation) {
            p.checked = std::time::Instant::now();
        }
    }

    fn known(&self) -> Option<Primary> {
        self.primary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Passes `reply` on; if it says the primary is no longer one (or is
    /// gone), forgets it so that the next call asks the sentinels again.
    fn check<T>(&self, generation: u64, reply: Result<T, RedisError>) -> Result<T, RedisError> {
        if let Err(e) = &reply
            && (matches!(e.code(), Some("READONLY" | "NOREPLICAS" | "MASTERDOWN"))
                || e.is_io_error()
                || e.is_connection_refusal()
                || e.is_connection_dropped())
        {
            let mut primary = self.primary.lock().unwrap_or_else(|e| e.into_inner());
            if primary.as_ref().is_some_and(|p| p.generation == generation) {
                *primary = None;
                tracing::warn!(
                    generation,
                    error = %e,
                    "the Redis primary failed or was demoted: asking Sentinel again"
                );
            }
        }
        reply
    }
}

/// Configures and connects a [`RedisStore`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    prefix: String,
    timeout: Duration,
    deadline_margin: Duration,
    expiry_slack: Duration,
    payload: Option<PayloadKeys>,
    accept_plaintext: bool,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            prefix: "rs:".into(),
            timeout: Duration::from_secs(1),
            deadline_margin: Duration::from_millis(500),
            expiry_slack: Duration::from_secs(60),
            payload: None,
            accept_plaintext: false,
        }
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key (default `rs:`), so several services or
    /// environments can share one Redis.
    ///
    /// # Panics
    ///
    /// If the prefix contains `{` or `}`: they would change the hash tag
    /// that keeps a session in one cluster slot.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        assert!(
            !prefix.contains(['{', '}']),
            "a Redis key prefix must not contain braces (they are hash tags)"
        );
        self.prefix = prefix;
        self
    }

    /// The longest any store call may take, connecting included (default
    /// 1 s). Past it the call fails with [`StoreError::Unavailable`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long after its [timeout](Self::timeout) a request may still be
    /// applied by Redis (default 500 ms); later, the advance script refuses
    /// it unapplied. It absorbs the error of the clock offset the node
    /// learns from Redis's replies (half a round trip) and clock
    /// differences between the masters of a cluster. Keep the timeout plus
    /// this margin below `token.grace_min` (default 2 s): a request
    /// applied later than the grace after it was sent can find its token
    /// retired and forgotten, and be taken for theft.
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// How long a key outlives its session's last deadline (default 60 s),
    /// so a request arriving just after the end still learns why
    /// (`session_expired`, `session_revoked`) rather than
    /// `session_not_found`.
    pub fn expiry_slack(mut self, slack: Duration) -> Self {
        self.expiry_slack = slack;
        self
    }

    /// Seals each session's payload (context, permissions, flags) with
    /// AES-256-GCM under these keys. Counters and deadlines stay in clear:
    /// the Lua script needs them, and they are not secret.
    pub fn encrypt(mut self, keys: PayloadKeys) -> Self {
        self.payload = Some(keys);
        self
    }

    /// With [`encrypt`](Self::encrypt), whether payloads stored in clear
    /// are still read (default `false`). Turn it on only while migrating a
    /// store that was not encrypted: an unsealed payload has no integrity
    /// protection.
    pub fn accept_plaintext(mut self, accept: bool) -> Self {
        self.accept_plaintext = accept;
        self
    }

    /// Connects to one Redis server, e.g. `redis://127.0.0.1:6379/0`,
    /// waiting at most the [timeout](Self::timeout). The connection
    /// reconnects by itself whenever it is lost.
    pub async fn connect(self, url: &str) -> Result<RedisStore, StoreError> {
        let timeout = self.timeout;
        let client = ::redis::Client::open(url).map_err(StoreError::unavailable)?;
        let conn = tokio::time::timeout(
            timeout,
            ConnectionManager::new_with_config(client, self.manager_config()),
        )
        .await
        .map_err(|_| StoreError::unavailable(Timeout(timeout)))?
        .map_err(StoreError::unavailable)?;
        let store = self.finish(Conn::Single(conn));
        store.learn_clock().await;
        Ok(store)
    }

    /// Like [`connect`](Self::connect), but without waiting for the
    /// server: the first call connects. A service can then start while
    /// Redis is down and serve as soon as it is back.
    pub fn connect_lazy(self, url: &str) -> Result<RedisStore, StoreError> {
        let client = ::redis::Client::open(url).map_err(StoreError::unavailable)?;
        let conn = ConnectionManager::new_lazy_with_config(client, self.manager_config())
            .map_err(StoreError::unavailable)?;
        Ok(self.finish(Conn::Single(conn)))
    }

    /// Connects to the primary that Redis Sentinel names `service` (the
    /// `sentinel monitor <service> ...` name), through any of `sentinels`,
    /// e.g. `["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]`, and
    /// follows it: when the primary dies or is demoted (it answers
    /// `READONLY`), the next call asks the sentinels again and connects to
    /// the new one. Calls during the failover fail with
    /// [`StoreError::Unavailable`] (`503`); nothing needs a restart.
    ///
    /// `docs/redis.md` has the failover figures and the settings that keep
    /// acknowledged writes (`min-replicas-to-write`).
    pub async fn connect_sentinel<I, S>(
        self,
        sentinels: I,
        service: &str,
    ) -> Result<RedisStore, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let sentinels: Vec<String> = sentinels
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect();
        let client = SentinelClient::build(
            sentinels,
            service.to_owned(),
            None,
            SentinelServerType::Master,
        )
        .map_err(StoreError::unavailable)?;
        let conn = Arc::new(SentinelConn {
            sentinels: tokio::sync::Mutex::new(client),
            primary: Mutex::new(None),
            generations: AtomicU64::new(0),
            rechecking: std::sync::atomic::AtomicBool::new(false),
            config: self.manager_config(),
        });
        let timeout = self.timeout;
        tokio::time::timeout(timeout, conn.primary())
            .await
            .map_err(|_| StoreError::unavailable(Timeout(timeout)))?
            .map_err(StoreError::unavailable)?;
        let store = self.finish(Conn::Sentinel(conn));
        store.learn_clock().await;
        Ok(store)
    }

    /// Connects to a Redis Cluster through any of its nodes, e.g.
    /// `["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]`.
    pub async fn connect_cluster<I, S>(self, nodes: I) -> Result<RedisStore, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let timeout = self.timeout;
        let nodes: Vec<String> = nodes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let client = ::redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .build()
            .map_err(StoreError::unavailable)?;
        let conn = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| StoreError::unavailable(Timeout(timeout)))?
            .map_err(StoreError::unavailable)?;
        let store = self.finish(Conn::Cluster(conn));
        store.learn_clock().await;
        Ok(store)
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        // Reconnect quickly and give up early: the caller's timeout bounds
        // each call anyway, and the next call starts a new attempt.
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500))
    }

    fn finish(self, conn: Conn) -> RedisStore {
        RedisStore {
            conn,
            inner: Arc::new(Inner {
                prefix: self.prefix,
                timeout: self.timeout,
                deadline_margin: self.deadline_margin,
                clock_offset: AtomicI64::new(OFFSET_UNKNOWN),
                expiry_slack_ms: as_ms(self.expiry_slack),
                codec: Codec {
                    payload: self.payload,
                    accept_plaintext: self.accept_plaintext,
                },
                scripts: Scripts::new(),
            }),
        }
    }
}

impl RedisStore {
    /// A builder with the defaults: prefix `rs:`, 1 s timeout, 60 s expiry
    /// slack, payload in clear.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// Connects to one server with the defaults; see
    /// [`RedisStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// The Redis key of the hash of the lineage `id` belongs to (any id
    /// of it gives the same key; for operators and tests).
    pub fn session_key(&self, id: &SessionId) -> String {
        self.lineage_key(&id.lineage())
    }

    /// The Redis key of a lineage's hash (for operators and tests).
    pub fn lineage_key(&self, lineage: &LineageKey) -> String {
        let mut key = Vec::with_capacity(self.inner.prefix.len() + 19);
        self.write_lineage_key(&mut key, lineage);
        // The prefix is a `String`, the rest ASCII: nothing is replaced.
        String::from_utf8_lossy(&key).into_owned()
    }

    /// Writes the Redis key of a lineage's hash, `<prefix>s:{<lineage>}`:
    /// the one spelling of it, for [`lineage_key`](Self::lineage_key) and
    /// for the commands written straight into their buffer.
    fn write_lineage_key(&self, out: &mut impl std::io::Write, lineage: &LineageKey) {
        // Both callers write into memory: these writes cannot fail.
        let _ = out.write_all(self.inner.prefix.as_bytes());
        let _ = out.write_all(b"s:{");
        let _ = out.write_all(&hex::<8, 16>(lineage.as_bytes()));
        let _ = out.write_all(b"}");
    }

    /// The Redis key of a user's session index (for operators and tests).
    pub fn user_index_key(&self, user_id: &str) -> String {
        format!("{}u:{{{user_id}}}", self.inner.prefix)
    }

    /// Checks that Redis answers within the timeout (for health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.timed(async {
            let mut conn = self.conn.clone();
            ::redis::cmd("PING")
                .query_async::<()>(&mut conn)
                .await
                .map_err(map_err)
        })
        .await
    }

    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.inner.timeout;
        tokio::time::timeout(limit, call)
            .await
            .unwrap_or_else(|_| Err(StoreError::unavailable(Timeout(limit))))
    }

    /// An `EVALSHA` of `script` on the lineage hash of `lineage` (its one
    /// key), room made for `args` arguments to follow. The key is written
    /// by [`write_lineage_key`](Self::write_lineage_key) straight into the
    /// command's buffer.
    fn evalsha_cmd(&self, script: &Script, lineage: &LineageKey, args: usize) -> Cmd {
        use ::redis::RedisWrite as _;
        let mut cmd = Cmd::with_capacity(4 + args, 192);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(1u8);
        self.write_lineage_key(&mut cmd.writer_for_next_arg(), lineage);
        cmd
    }

    /// Sends `cmd`, an `EVALSHA` of `script`, and returns its reply; a
    /// server that does not know the script (`NOSCRIPT`: after a restart
    /// or a failover) is given it, and the command sent again, as
    /// `redis::Script::invoke_async` does. An error reply is an `Err`.
    async fn evalsha(&self, script: &Script, cmd: &Cmd) -> Result<Value, RedisError> {
        let mut conn = self.conn.clone();
        let reply = match conn.req_packed_command(cmd).await.and_then(error_reply) {
            Err(e)
                if e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript) =>
            {
                script.load_async(&mut conn).await?;
                conn.req_packed_command(cmd).await?
            }
            reply => reply?,
        };
        error_reply(reply)
    }

    /// The advance script's deadline for a call sent at `sent_ms` (this
    /// machine's clock), on Redis's clock; `None` until the offset between
    /// the two clocks is known.
    fn deadline(&self, sent_ms: u64) -> Option<u64> {
        let offset = self.inner.clock_offset.load(Ordering::Relaxed);
        if offset == OFFSET_UNKNOWN {
            return None;
        }
        let wait = as_ms(self.inner.timeout).saturating_add(as_ms(self.inner.deadline_margin));
        Some(sent_ms.saturating_add_signed(offset).saturating_add(wait))
    }

    /// Asks Redis for its clock (`TIME`) to learn the offset before the
    /// first advance; best effort, as every advance reply teaches it too.
    async fn learn_clock(&self) {
        let mut conn = self.conn.clone();
        let sent = SystemClock.now_ms();
        let time = tokio::time::timeout(
            self.inner.timeout,
            ::redis::cmd("TIME").query_async::<(u64, u64)>(&mut conn),
        )
        .await;
        if let Ok(Ok((secs, micros))) = time {
            let server_ms = secs.saturating_mul(1_000).saturating_add(micros / 1_000);
            self.learn_offset(sent, SystemClock.now_ms(), server_ms);
        }
    }

    /// Learns the offset of Redis's clock from a reply stamped `server_ms`
    /// that was sent at `sent_ms` and received at `received_ms`: the
    /// stamp is taken as the middle of the round trip, so the error is at
    /// most half of it.
    fn learn_offset(&self, sent_ms: u64, received_ms: u64, server_ms: u64) {
        let middle = sent_ms / 2 + received_ms / 2;
        let offset = i64::try_from(i128::from(server_ms) - i128::from(middle))
            .unwrap_or(OFFSET_UNKNOWN)
            .max(OFFSET_UNKNOWN + 1);
        self.inner.clock_offset.store(offset, Ordering::Relaxed);
    }

    fn ttl_ms(&self, deadline: u64, reference: u64) -> u64 {
        deadline
            .saturating_sub(reference)
            .saturating_add(self.inner.expiry_slack_ms)
            .clamp(1, MAX_TTL_MS)
    }

    /// Adds a lineage to its user's index (scored by its creation time)
    /// and makes the index outlive it (its end of lifetime, `ends`).
    /// Anonymous sessions (empty user id) belong to no index.
    async fn index(
        &self,
        user_id: &str,
        lineage: &LineageKey,
        created: u64,
        ends: u64,
        reference: u64,
    ) -> Result<(), StoreError> {
        if user_id.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        self.inner
            .scripts
            .index
            .key(self.user_index_key(user_id))
            .arg(created.to_string())
            .arg(lineage.to_string())
            .arg(self.ttl_ms(ends, reference))
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn unindex(&self, user_id: &str, members: &[String]) -> Result<(), StoreError> {
        if members.is_empty() || user_id.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        ::redis::cmd("ZREM")
            .arg(self.user_index_key(user_id))
            .arg(members)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn index_members(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        ::redis::cmd("ZRANGE")
            .arg(self.user_index_key(user_id))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(map_err)
    }

    /// The record `id` is an id of, or `None`.
    async fn load_untimed(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let record = self.load_lineage(&id.lineage()).await?;
        Ok(record.filter(|r| r.has_id(id)))
    }

    /// The record stored under `lineage`, whatever its ids.
    async fn load_lineage(
        &self,
        lineage: &LineageKey,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(match self.load_state(lineage).await? {
            Stored::Record(r) => Some(r),
            Stored::Missing | Stored::Pending => None,
        })
    }

    /// What the hash of `lineage` holds.
    async fn load_state(&self, lineage: &LineageKey) -> Result<Stored, StoreError> {
        let mut conn = self.conn.clone();
        let fields: Vec<Option<Vec<u8>>> = ::redis::cmd("HMGET")
            .arg(self.lineage_key(lineage))
            .arg(&RECORD_FIELDS[..])
            .query_async(&mut conn)
            .await
            .map_err(map_err)?;
        if fields.iter().all(Option::is_none) {
            return Ok(Stored::Missing);
        }
        let fields: Option<Vec<Vec<u8>>> = fields.into_iter().collect();
        let fields = fields.ok_or_else(|| corrupt("a lineage hash lacks a field"))?;
        if fields[10] == PENDING.as_bytes() {
            return Ok(Stored::Pending);
        }
        let record = self.inner.codec.decode(&fields)?;
        if record.lineage() != *lineage {
            return Err(corrupt("a lineage hash holds the ids of another lineage"));
        }
        Ok(Stored::Record(record))
    }

    /// Writes `record` as a new hash (`rev` replaced by `rev` if given,
    /// with this TTL). `Err(Conflict)` if its lineage is taken; then
    /// `Some(owner)` says whose it is.
    async fn write_new(
        &self,
        record: &SessionRecord,
        rev: Option<&str>,
        ttl_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let lineage = record.lineage();
        if record.previous_ids.iter().any(|p| p.lineage() != lineage) {
            return Err(corrupt("a record's ids must share one lineage key"));
        }
        let mut fields = self.inner.codec.encode(record)?;
        if let Some(rev) = rev {
            fields[10] = rev.as_bytes().to_vec();
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.inner.scripts.create.key(self.lineage_key(&lineage));
        for field in &fields {
            invocation.arg(&field[..]);
        }
        invocation
            .arg(ttl_ms)
            .invoke_async::<Option<String>>(&mut conn)
            .await
            .map_err(map_err)
    }

    /// Deletes the hash of `id` (best effort, for undoing a creation).
    async fn delete_quietly(&self, id: &SessionId) {
        let _ = self.delete_hash(id).await;
    }

    /// Deletes the hash of the lineage `id` is an id of; its owner if it
    /// existed.
    async fn delete_hash(&self, id: &SessionId) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        self.inner
            .scripts
            .delete
            .key(self.session_key(id))
            .arg("id")
            .arg(id.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)
    }

    /// One call of the admission script on the user's index: `Ok(reply)`.
    async fn admit(
        &self,
        record: &SessionRecord,
        limit: &SessionLimit,
        mode: &str,
        dead: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = self
            .inner
            .scripts
            .admit
            .key(self.user_index_key(&record.user_id));
        invocation
            .arg(record.lineage().to_string())
            .arg(record.created_at.to_string())
            .arg(limit.max.max(1))
            .arg(mode)
            .arg(self.ttl_ms(record.meta.ends_at(), record.sequence.last_seen_at));
        for member in dead {
            invocation.arg(member);
        }
        invocation
            .invoke_async::<Vec<String>>(&mut conn)
            .await
            .map_err(map_err)
    }

    /// The members of a full index that are dead at `now_ms`: their hash
    /// is gone, unreadable, another user's, or its session is over.
    /// Sessions still being created count as live.
    async fn dead_members(
        &self,
        user_id: &str,
        members: &[String],
        now_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let loads = members.iter().map(|hex| async move {
            match parse_lineage(hex) {
                Some(lineage) => self.load_state(&lineage).await,
                None => Ok(Stored::Missing),
            }
        });
        let mut dead = Vec::new();
        for (hex, loaded) in members.iter().zip(join_all(loads).await) {
            let is_dead = match loaded {
                Ok(Stored::Pending) => false,
                Ok(Stored::Record(r)) => *r.user_id != *user_id || !r.is_live(now_ms),
                Ok(Stored::Missing) | Err(StoreError::Corrupt(_)) => true,
                Err(e) => return Err(e),
            };
            if is_dead {
                dead.push(hex.clone());
            }
        }
        Ok(dead)
    }

    /// The atomic part of `create_limited`: admits the (pending) record
    /// into its user's index, or refuses it. `Ok(evicted)` lists the
    /// members evicted with their scores.
    async fn admit_limited(
        &self,
        record: &SessionRecord,
        limit: &SessionLimit,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let policy = if limit.evict_oldest {
            "evict"
        } else {
            "refuse"
        };
        // First a probe: below the limit it admits at once. At the limit
        // it lists the members, the dead among them are found (reading
        // their hashes, which live in other slots), and the second call
        // drops them and decides, in one step, whatever happened in
        // between.
        let mut dead = Vec::new();
        for mode in ["probe", policy] {
            let reply = self.admit(record, limit, mode, &dead).await?;
            let (verdict, rest) = reply
                .split_first()
                .ok_or_else(|| corrupt("empty reply from the admission script"))?;
            match verdict.as_str() {
                "admitted" => {
                    return Ok(rest
                        .chunks(2)
                        .filter_map(|pair| match pair {
                            [member, score] => Some((member.clone(), score.clone())),
                            _ => None,
                        })
                        .collect());
                }
                "full" => {
                    dead = self
                        .dead_members(&record.user_id, rest, limit.now_ms)
                        .await?
                }
                "refused" => return Err(StoreError::SessionLimit { max: limit.max }),
                "taken" => return Err(StoreError::Conflict),
                _ => return Err(corrupt("unknown reply from the admission script")),
            }
        }
        Err(corrupt(
            "the admission script answered `full` outside a probe",
        ))
    }

    /// Revokes the lineages evicted from a user's index; their current ids.
    async fn revoke_evicted(
        &self,
        user_id: &str,
        evicted: &[(String, String)],
    ) -> Result<Vec<SessionId>, StoreError> {
        let revokes = evicted.iter().map(|(hex, _)| async move {
            let Some(lineage) = parse_lineage(hex) else {
                return Ok(None);
            };
            let mut conn = self.conn.clone();
            self.inner
                .scripts
                .revoke
                .key(self.lineage_key(&lineage))
                .arg(user_id)
                .arg(revoked_text(Some(RevocationReason::Evicted)))
                .invoke_async::<Option<String>>(&mut conn)
                .await
                .map_err(map_err)
        });
        let mut ids = Vec::new();
        for outcome in join_all(revokes).await {
            if let Some(hex) = outcome? {
                ids.push(SessionId::parse_hex(&hex).ok_or_else(|| corrupt("a bad id"))?);
            }
        }
        Ok(ids)
    }

    /// Undoes an admission after a later step failed (best effort): the
    /// new member leaves the index, the evicted ones come back.
    async fn undo_admission(&self, record: &SessionRecord, evicted: &[(String, String)]) {
        let _ = self
            .unindex(&record.user_id, &[record.lineage().to_string()])
            .await;
        for (hex, score) in evicted {
            if let Some(lineage) = parse_lineage(hex) {
                let created = score.parse::<f64>().map_or(0, |s| s as u64);
                let ends = record.meta.ends_at();
                let _ = self
                    .index(
                        &record.user_id,
                        &lineage,
                        created,
                        ends,
                        record.sequence.last_seen_at,
                    )
                    .await;
            }
        }
    }

    /// How long a hash `create_limited` wrote stays without being admitted
    /// and activated: longer than the call may take (its timeout), short
    /// enough that a node dying mid-creation leaves no session counting
    /// against its user's limit for long.
    fn pending_ttl_ms(&self) -> u64 {
        as_ms(self.inner.timeout)
            .saturating_mul(2)
            .saturating_add(1_000)
    }

    /// The fields of a lineage hash as [`create`](SessionStore::create)
    /// writes them ([`RECORD_FIELDS`] order), the payload sealed if
    /// payload keys are given. For the fuzz targets and tests: the
    /// encoding [`decode_hash`](Self::decode_hash) reads.
    #[doc(hidden)]
    pub fn encode_hash(
        payload: Option<PayloadKeys>,
        record: &SessionRecord,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let codec = Codec {
            payload,
            accept_plaintext: false,
        };
        Ok(codec.encode(record)?.to_vec())
    }

    /// Decodes the fields of a lineage hash ([`RECORD_FIELDS`] order:
    /// `ids`, `uid`, `created`, `meta`, `ctr`, `pre`, `req`, `seen`, `iss`,
    /// `ret`, `rev`, `ends`, `idle`) as every read does. For the fuzz
    /// targets: any input gives a record or an error, never a panic.
    #[doc(hidden)]
    pub fn decode_hash(
        payload: Option<PayloadKeys>,
        accept_plaintext: bool,
        fields: &[Vec<u8>],
    ) -> Result<SessionRecord, StoreError> {
        Codec {
            payload,
            accept_plaintext,
        }
        .decode(fields)
    }

    /// Decodes the data fields of an advance reply (`d:<key>`, value
    /// pairs) of the lineage `lineage`, opening sealed values, as every
    /// read does. For the fuzz targets: any input gives data or an error,
    /// never a panic.
    #[doc(hidden)]
    pub fn decode_data_fields(
        payload: Option<PayloadKeys>,
        accept_plaintext: bool,
        lineage: &LineageKey,
        pairs: &[Vec<u8>],
    ) -> Result<SessionData, StoreError> {
        Codec {
            payload,
            accept_plaintext,
        }
        .decode_data(lineage, pairs)
    }

    /// A data value as [`write_data`](SessionStore::write_data) stores it
    /// (sealed, bound to its lineage and key, when payload keys are given).
    /// For the fuzz targets.
    #[doc(hidden)]
    pub fn encode_data_value(
        payload: Option<PayloadKeys>,
        lineage: &LineageKey,
        key: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        Codec {
            payload,
            accept_plaintext: false,
        }
        .seal_value(lineage, key, plain)
    }
}

impl Codec {
    /// [`RECORD_FIELDS`] of `record`, in that order.
    fn encode(&self, record: &SessionRecord) -> Result<[Vec<u8>; 13], StoreError> {
        let meta = &record.meta;
        let seq = &record.sequence;
        let text = |s: String| s.into_bytes();
        Ok([
            text(encode_ids(record)),
            text(record.user_id.to_string()),
            text(record.created_at.to_string()),
            self.seal_meta(&record.lineage(), meta)?,
            text(seq.counter.to_string()),
            text(seq.presented.map_or_else(String::new, |p| p.to_string())),
            text(seq.requests.to_string()),
            text(seq.last_seen_at.to_string()),
            text(seq.issued_at.to_string()),
            text(encode_retired(&seq.retired)),
            text(revoked_text(seq.revoked)),
            text(meta.ends_at().to_string()),
            text(meta.idle_timeout_ms.to_string()),
        ])
    }

    /// Decodes [`RECORD_FIELDS`] (in that order) into a record. The
    /// deadlines kept in clear for the scripts (`ends`, `idle`) must agree
    /// with the payload's: the advance script decides on them, the
    /// session manager checks the payload's against its seal.
    fn decode(&self, f: &[Vec<u8>]) -> Result<SessionRecord, StoreError> {
        let [
            ids,
            uid,
            created,
            meta,
            ctr,
            pre,
            req,
            seen,
            iss,
            ret,
            rev,
            ends,
            idle,
        ] = f
        else {
            return Err(corrupt("a lineage reply has the wrong number of fields"));
        };
        let mut previous_ids = decode_ids(text(ids)?)?;
        let id = previous_ids
            .pop()
            .ok_or_else(|| corrupt("a lineage hash has no id"))?;
        let revoked = match rev.as_slice() {
            b"" => None,
            r => Some(
                serde_json::from_value::<RevocationReason>(serde_json::Value::String(
                    text(r)?.to_owned(),
                ))
                .map_err(StoreError::corrupt)?,
            ),
        };
        let presented = match pre.as_slice() {
            b"" => None,
            p => Some(number(p)?),
        };
        let meta = self.open_meta(&id.lineage(), meta)?;
        if number(ends)? != meta.ends_at() || number(idle)? != meta.idle_timeout_ms {
            return Err(corrupt(
                "a lineage hash's deadlines in clear disagree with its payload",
            ));
        }
        Ok(SessionRecord {
            id,
            previous_ids: previous_ids.into(),
            user_id: text(uid)?.into(),
            created_at: number(created)?,
            meta,
            sequence: SequenceState {
                counter: number(ctr)?,
                presented,
                requests: number(req)?,
                last_seen_at: number(seen)?,
                issued_at: number(iss)?,
                retired: decode_retired(ret)?.into(),
                revoked,
            },
        })
    }

    fn seal_meta(&self, lineage: &LineageKey, meta: &SessionMeta) -> Result<Vec<u8>, StoreError> {
        let json = serde_json::to_vec(meta).map_err(StoreError::corrupt)?;
        match &self.payload {
            Some(keys) => keys.seal(lineage, json),
            None => Ok(json),
        }
    }

    /// A data value as stored: sealed, bound to its lineage and its key
    /// (so it can be moved neither to another session nor to another key),
    /// when payload keys are given.
    fn seal_value(
        &self,
        lineage: &LineageKey,
        key: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        match &self.payload {
            Some(keys) => keys.seal_with(&PayloadKeys::data_aad(lineage, key), plain.to_vec()),
            None => Ok(plain.to_vec()),
        }
    }

    /// A stored blob as written: opened under the payload keys (bound to
    /// `aad`) if sealed, taken as it is if in clear and plaintext is
    /// accepted (no payload keys, or `accept_plaintext` while migrating).
    fn open_stored(
        &self,
        aad: impl FnOnce() -> Vec<u8>,
        blob: &[u8],
        what: Blob,
    ) -> Result<Vec<u8>, StoreError> {
        match (&self.payload, blob.first()) {
            (Some(keys), Some(&SEALED_V1)) => keys.open_with(&aad(), blob),
            (None, Some(&SEALED_V1)) => Err(corrupt(what.sealed_without_key)),
            (Some(_), _) if !self.accept_plaintext => Err(corrupt(what.plaintext_refused)),
            _ => Ok(blob.to_vec()),
        }
    }

    /// The data fields of an advance reply (`d:<key>`, value pairs).
    fn decode_data(
        &self,
        lineage: &LineageKey,
        pairs: &[Vec<u8>],
    ) -> Result<SessionData, StoreError> {
        let mut data = SessionData::default();
        if !pairs.len().is_multiple_of(2) {
            return Err(corrupt("an advance reply has a data key without a value"));
        }
        for pair in pairs.chunks_exact(2) {
            let key = text(&pair[0])?
                .strip_prefix("d:")
                .ok_or_else(|| corrupt("an advance reply has a data field without its prefix"))?;
            let value =
                self.open_stored(|| PayloadKeys::data_aad(lineage, key), &pair[1], Blob::DATA)?;
            data.insert(key, value);
        }
        Ok(data)
    }

    fn open_meta(&self, lineage: &LineageKey, blob: &[u8]) -> Result<SessionMeta, StoreError> {
        let json = self.open_stored(|| PayloadKeys::aad(lineage), blob, Blob::META)?;
        serde_json::from_slice(&json).map_err(StoreError::corrupt)
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.timed(async {
            let (ends, lineage) = (record.meta.ends_at(), record.lineage());
            let (created, seen) = (record.created_at, record.sequence.last_seen_at);
            // Index first, so that no session ever exists outside its
            // user's index; and again after, in case a concurrent
            // `delete_by_user` pruned the entry before the hash existed.
            self.index(&record.user_id, &lineage, created, ends, seen)
                .await?;
            let ttl = self.ttl_ms(record.purge_at(), seen);
            if let Some(owner) = self.write_new(record, None, ttl).await? {
                // The lineage belongs to another user: the entry just added
                // to this user's index leads nowhere of theirs.
                if *owner != *record.user_id {
                    let _ = self.unindex(&record.user_id, &[lineage.to_string()]).await;
                }
                return Err(StoreError::Conflict);
            }
            self.index(&record.user_id, &lineage, created, ends, seen)
                .await
        })
        .await
    }

    /// Four steps, of which the admission is the atomic one (see
    /// `docs/redis.md`): the hash is written as `pending` (invisible to
    /// every other operation, short TTL); the user's index admits it under
    /// the limit in one script, or refuses it (the hash is deleted); the
    /// evicted lineages are revoked; the hash is activated. Writing the
    /// hash first lets a concurrent login evict a session still being
    /// created (it is then created revoked), so no session ever lives
    /// outside its user's index, which is what keeps the count exact.
    async fn create_limited(
        &self,
        record: &SessionRecord,
        limit: &SessionLimit,
    ) -> Result<Created, StoreError> {
        self.timed(async {
            let seen = record.sequence.last_seen_at;
            if self
                .write_new(record, Some(PENDING), self.pending_ttl_ms())
                .await?
                .is_some()
            {
                return Err(StoreError::Conflict);
            }
            let evicted = match self.admit_limited(record, limit).await {
                Ok(evicted) => evicted,
                Err(e) => {
                    self.delete_quietly(&record.id).await;
                    return Err(e);
                }
            };
            let evicted_ids = match self.revoke_evicted(&record.user_id, &evicted).await {
                Ok(ids) => ids,
                Err(e) => {
                    self.undo_admission(record, &evicted).await;
                    self.delete_quietly(&record.id).await;
                    return Err(e);
                }
            };
            let mut conn = self.conn.clone();
            let activated = self
                .inner
                .scripts
                .activate
                .key(self.session_key(&record.id))
                .arg(encode_ids(record))
                .arg(revoked_text(record.sequence.revoked))
                .arg(self.ttl_ms(record.purge_at(), seen))
                .invoke_async::<String>(&mut conn)
                .await
                .map_err(map_err);
            match activated.as_deref() {
                // Evicted by a concurrent login while it was being
                // created: that login reported it, and it stays revoked.
                Ok("active" | "evicted") => Ok(Created::evicting(evicted_ids)),
                Ok(_) => {
                    let _ = self
                        .unindex(&record.user_id, &[record.lineage().to_string()])
                        .await;
                    Err(StoreError::unavailable(
                        "the new session vanished before it was activated",
                    ))
                }
                Err(_) => {
                    self.undo_admission(record, &[]).await;
                    self.delete_quietly(&record.id).await;
                    Err(activated.err().unwrap_or(StoreError::NotFound))
                }
            }
        })
        .await
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.timed(self.load_untimed(id)).await
    }

    async fn verify_and_advance(
        &self,
        id: &SessionId,
        request: &AdvanceRequest,
    ) -> Result<Option<Advance>, StoreError> {
        self.timed(async {
            let (kind, param) = match request.rotate {
                Rotate::Always => ("a", 0),
                Rotate::Never => ("n", 0),
                Rotate::EveryN(n) => ("e", n),
                Rotate::MinInterval(ms) => ("i", ms),
                Rotate::ReplaceUndelivered => ("u", 0),
            };
            let sent = SystemClock.now_ms();
            // The EVALSHA written straight into one buffer: numbers by
            // itoa, ids in hex without the formatter, no argument or key
            // string of its own (see `evalsha_cmd`).
            let mut cmd = self.evalsha_cmd(&self.inner.scripts.advance, &id.lineage(), 11);
            cmd.arg(&hex::<16, 32>(request.session.as_bytes())[..])
                .arg(request.presented)
                .arg(request.now_ms)
                .arg(request.grace_depth)
                .arg(request.grace_window_ms)
                .arg(kind)
                .arg(param)
                .arg(self.inner.expiry_slack_ms);
            match request.new_id {
                Some(n) => cmd.arg(&hex::<16, 32>(n.as_bytes())[..]),
                None => cmd.arg(""),
            };
            match self.deadline(sent) {
                Some(d) => cmd.arg(d),
                None => cmd.arg(""),
            };
            cmd.arg(request.max_ahead);
            let reply = self
                .evalsha(&self.inner.scripts.advance, &cmd)
                .await
                .and_then(bulk_strings)
                .map_err(map_err)?;
            let Some(mut reply) = reply else {
                return Ok(None);
            };
            // The server's clock as TIME gives it, last: seconds, then
            // microseconds.
            let (Some(micros), Some(secs)) = (reply.pop(), reply.pop()) else {
                return Err(corrupt("a short reply from the advance script"));
            };
            let server_ms = number(&secs)?
                .saturating_mul(1000)
                .saturating_add(number(&micros)? / 1000);
            self.learn_offset(sent, SystemClock.now_ms(), server_ms);
            let (verdict, rest) = reply
                .split_first()
                .ok_or_else(|| corrupt("empty reply from the advance script"))?;
            if verdict == b"late" {
                return Err(StoreError::unavailable(Late));
            }
            let verdict = parse_verdict(verdict)?;
            let (fields, data) = rest.split_at(rest.len().min(RECORD_FIELDS.len()));
            let record = self.inner.codec.decode(fields)?;
            if record.lineage() != id.lineage() {
                return Err(corrupt("a lineage hash holds the ids of another lineage"));
            }
            let data = self.inner.codec.decode_data(&record.lineage(), data)?;
            Ok(Some(Advance {
                verdict,
                record: record.into(),
                data,
            }))
        })
        .await
    }

    async fn write_data(
        &self,
        id: &SessionId,
        changes: &DataChanges,
        limit: &DataLimit,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.timed(async {
            let lineage = id.lineage();
            let codec = &self.inner.codec;
            let mut invocation = self.inner.scripts.data.key(self.lineage_key(&lineage));
            invocation
                .arg(id.to_string())
                .arg(limit.now_ms.to_string())
                .arg(limit.max_bytes.to_string())
                .arg(if changes.clears() { "1" } else { "0" })
                .arg(SEAL_OVERHEAD);
            for (key, value) in changes.keys() {
                invocation.arg(key);
                match value {
                    Some(plain) => invocation
                        .arg(plain.len().to_string())
                        .arg(codec.seal_value(&lineage, key, plain)?),
                    None => invocation.arg("").arg(""),
                };
            }
            let mut conn = self.conn.clone();
            let reply: Option<(String, String)> =
                invocation.invoke_async(&mut conn).await.map_err(map_err)?;
            match reply {
                None => Err(StoreError::NotFound),
                // The script refused the write: whatever size it reports, it
                // wrote nothing.
                Some((outcome, size)) if outcome == "too_large" => Err(StoreError::DataTooLarge {
                    size: usize::try_from(number(size.as_bytes())?).unwrap_or(usize::MAX),
                    max: limit.max_bytes,
                }),
                Some(_) => Ok(()),
            }
        })
        .await
    }

    async fn update_meta(&self, id: &SessionId, meta: &SessionMeta) -> Result<(), StoreError> {
        self.timed(async {
            let ends = meta.ends_at();
            let lineage = id.lineage();
            let mut conn = self.conn.clone();
            let reply: Option<(String, String, String, String)> = self
                .inner
                .scripts
                .update_meta
                .key(self.lineage_key(&lineage))
                .arg(id.to_string())
                .arg(self.inner.codec.seal_meta(&lineage, meta)?)
                .arg(ends.to_string())
                .arg(meta.idle_timeout_ms.to_string())
                .arg(self.inner.expiry_slack_ms.to_string())
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            let (old_ends, seen, user, created) = reply.ok_or(StoreError::NotFound)?;
            let old_ends: u64 = number(old_ends.as_bytes())?;
            if ends > old_ends {
                // The session now lives longer: so must its index entry.
                let seen = number(seen.as_bytes())?;
                let created = number(created.as_bytes())?;
                self.index(&user, &lineage, created, ends, seen).await?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.timed(async {
            let lineage = id.lineage();
            let mut conn = self.conn.clone();
            let owner: Option<String> = self
                .inner
                .scripts
                .delete
                .key(self.lineage_key(&lineage))
                .arg("id")
                .arg(id.to_string())
                .invoke_async(&mut conn)
                .await
                .map_err(map_err)?;
            let Some(owner) = owner else {
                return Ok(false);
            };
            // The hash is gone; a stale index entry would only be skipped.
            self.unindex(&owner, &[lineage.to_string()]).await?;
            Ok(true)
        })
        .await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.timed(async {
            let members = self.index_members(user_id).await?;
            let loads = members.iter().map(|hex| async move {
                match parse_lineage(hex) {
                    Some(lineage) => self.load_state(&lineage).await,
                    None => Ok(Stored::Missing),
                }
            });
            let mut out = Vec::with_capacity(members.len());
            let mut stale = Vec::new();
            for (hex, loaded) in members.iter().zip(join_all(loads).await) {
                match loaded {
                    Ok(Stored::Record(record)) if *record.user_id == *user_id => out.push(record),
                    // Another user's, or still being created: not pruned.
                    Ok(Stored::Record(_) | Stored::Pending) => {}
                    Ok(Stored::Missing) => stale.push(hex.clone()),
                    // A hash this crate cannot read is no usable session:
                    // it must not keep the user from seeing (or ending)
                    // the others.
                    Err(StoreError::Corrupt(e)) => tracing::warn!(
                        user_id,
                        lineage = %hex,
                        error = %e,
                        "skipped an unreadable session record"
                    ),
                    Err(e) => return Err(e),
                }
            }
            // Entries whose session expired: prune them, best effort.
            let _ = self.unindex(user_id, &stale).await;
            Ok(out)
        })
        .await
    }

    async fn delete_by_user(&self, user_id: &str) -> Result<u64, StoreError> {
        self.timed(async {
            let members = self.index_members(user_id).await?;
            let deletes = members.iter().filter_map(|hex| {
                let lineage = parse_lineage(hex)?;
                Some(async move {
                    let mut conn = self.conn.clone();
                    self.inner
                        .scripts
                        .delete
                        .key(self.lineage_key(&lineage))
                        .arg("owner")
                        .arg(user_id)
                        .invoke_async::<Option<String>>(&mut conn)
                        .await
                        .map_err(map_err)
                })
            });
            let mut deleted = 0;
            for outcome in join_all(deletes).await {
                deleted += u64::from(outcome?.is_some());
            }
            self.unindex(user_id, &members).await?;
            Ok(deleted)
        })
        .await
    }

    async fn sweep_expired(&self, _now_ms: u64) -> Result<u64, StoreError> {
        // Keys carry TTLs that follow each session's deadlines: Redis
        // forgets them by itself.
        Ok(0)
    }
}

/// The `ids` field: every id of the lineage, oldest first, the current one
/// last, comma-separated.
fn encode_ids(record: &SessionRecord) -> String {
    record
        .all_ids()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_ids(s: &str) -> Result<Vec<SessionId>, StoreError> {
    let ids = s
        .split(',')
        .map(|hex| SessionId::parse_hex(hex).ok_or_else(|| corrupt("a lineage hash has a bad id")))
        .collect::<Result<Vec<_>, _>>()?;
    let lineage = ids.first().map(SessionId::lineage);
    if ids.iter().any(|id| Some(id.lineage()) != lineage) {
        return Err(corrupt("a lineage hash has ids of two lineages"));
    }
    Ok(ids)
}

/// A user-index member: a lineage key as 16 lowercase hex digits.
fn parse_lineage(hex: &str) -> Option<LineageKey> {
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    // A lineage key is the first half of any of its ids.
    SessionId::parse_hex(&format!("{hex}{}", "0".repeat(16))).map(|id| id.lineage())
}

/// The `ret` field: `from-to@at` per retirement, oldest first,
/// comma-separated; empty when nothing is retired.
fn encode_retired<'a>(retired: impl IntoIterator<Item = &'a Retirement>) -> String {
    retired
        .into_iter()
        .map(|r| format!("{}-{}@{}", r.from, r.to, r.at))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `ret` field back: exactly what [`encode_retired`] writes, three
/// runs of ASCII digits (each a `u64`) joined by `-` and `@` per entry,
/// entries joined by `,`; anything else is corrupt. Each number is read
/// by [`leading_number`] (a request reads up to K = 64 entries, so this is
/// a good part of what the node does per request); no UTF-8 check is
/// needed: only ASCII gets through.
fn decode_retired(s: &[u8]) -> Result<Vec<Retirement>, StoreError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let bad = || corrupt("a lineage hash has a bad retired list");
    // Room for every entry of a list as the script writes it under load
    // (two counters and a time in ms, about 24 bytes an entry) without
    // counting them first, which costs more than it saves; never more than
    // the deepest grace a config allows (256), whatever the store sent.
    let mut retired = Vec::with_capacity((s.len() / 16 + 1).min(256));
    let mut rest = s;
    loop {
        let (from, r) = leading_number(rest).ok_or_else(bad)?;
        let r = r.strip_prefix(b"-").ok_or_else(bad)?;
        let (to, r) = leading_number(r).ok_or_else(bad)?;
        let r = r.strip_prefix(b"@").ok_or_else(bad)?;
        let (at, r) = leading_number(r).ok_or_else(bad)?;
        retired.push(Retirement { from, to, at });
        match r {
            [] => return Ok(retired),
            [b',', tail @ ..] => rest = tail,
            _ => return Err(bad()),
        }
    }
}

/// The run of ASCII digits `s` starts with, as a `u64`, and what follows
/// it; `None` without a digit or past `u64::MAX`. Up to 19 digits cannot
/// overflow (10^19 - 1 < 2^64), so only longer runs pay for the checks.
fn leading_number(s: &[u8]) -> Option<(u64, &[u8])> {
    let n = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if n == 0 {
        return None;
    }
    let (digits, rest) = s.split_at(n);
    let value = if n <= 19 {
        digits
            .iter()
            .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'))
    } else {
        digits.iter().try_fold(0u64, |v, &d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?
    };
    Some((value, rest))
}

fn revoked_text(reason: Option<RevocationReason>) -> String {
    reason
        .and_then(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_verdict(v: &[u8]) -> Result<Verdict, StoreError> {
    text(v)?.parse().map_err(StoreError::corrupt)
}

fn text(v: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(v).map_err(StoreError::corrupt)
}

fn number(v: &[u8]) -> Result<u64, StoreError> {
    text(v)?.parse().map_err(StoreError::corrupt)
}

/// Lower-case hex of `bytes` (`M` = 2 `N`) on the stack, by the `hex`
/// crate: the text `Display` gives ids and lineage keys, without going
/// through the formatter.
fn hex<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    const { assert!(M == 2 * N) };
    let mut out = [0; M];
    // `out` is exactly twice `bytes` (checked above): this cannot fail.
    let _ = ::hex::encode_to_slice(bytes, &mut out);
    out
}

/// A reply that is an error (the script's `CORRUPT`, `NOSCRIPT`, ...) as
/// an `Err`, as `redis::Cmd::query_async` makes it.
fn error_reply(reply: Value) -> Result<Value, RedisError> {
    match reply {
        Value::ServerError(e) => Err(e.into()),
        v => Ok(v),
    }
}

/// A script's reply of strings (nil: `None`) as their bytes.
fn bulk_strings(reply: Value) -> Result<Option<Vec<Vec<u8>>>, RedisError> {
    let items = match reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => items,
        other => {
            return ::redis::from_redis_value(other)
                .map(Some)
                .map_err(Into::into);
        }
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::BulkString(bytes) => Ok(bytes),
            Value::SimpleString(text) => Ok(text.into_bytes()),
            other => ::redis::from_redis_value(error_reply(other)?).map_err(Into::into),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::corrupt(what)
}

/// Sorts a Redis error into "try again later" (the server is down, slow,
/// loading, failing over: [`StoreError::Unavailable`]) and "the data is
/// not what this crate wrote" ([`StoreError::Corrupt`]).
fn map_err(e: RedisError) -> StoreError {
    use ::redis::ErrorKind as K;
    let corrupt = matches!(e.code(), Some("CORRUPT" | "WRONGTYPE"))
        || matches!(e.kind(), K::Parse | K::UnexpectedReturnType);
    if corrupt {
        StoreError::corrupt(e)
    } else {
        StoreError::unavailable(e)
    }
}

/// A store call that got no answer in time.
#[derive(Debug, Clone, Copy)]
struct Timeout(Duration);

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis did not answer within {} ms", self.0.as_millis())
    }
}

impl std::error::Error for Timeout {}

/// A request that reached Redis after its deadline, refused unapplied.
#[derive(Debug, Clone, Copy)]
struct Late;

impl fmt::Display for Late {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request reached Redis after its deadline and was not applied")
    }
}

impl std::error::Error for Late {}

/// The first byte of a sealed payload; a payload in clear is JSON and
/// starts with `{`.
const SEALED_V1: u8 = 1;
/// The associated data's label: v2 binds a payload to its lineage key (v1
/// bound it to a session id, which renewal now changes).
const AAD_LABEL: &[u8] = b"rolling-session/meta/v2";
/// What a stored blob is, for the refusals of [`Codec::open_stored`].
#[derive(Clone, Copy)]
struct Blob {
    sealed_without_key: &'static str,
    plaintext_refused: &'static str,
}

impl Blob {
    const META: Self = Self {
        sealed_without_key: "the session payload is encrypted and no payload key is configured",
        plaintext_refused: "the session payload is not encrypted and plaintext is not accepted",
    };
    const DATA: Self = Self {
        sealed_without_key: "session data is encrypted and no payload key is configured",
        plaintext_refused: "session data is not encrypted and plaintext is not accepted",
    };
}

/// Bound into every sealed data value with its lineage and key.
const DATA_AAD_LABEL: &[u8] = b"rolling-session/data/v1";
/// A sealed value's bytes beyond its plaintext: version, key id, nonce, tag.
const SEAL_OVERHEAD: usize = 2 + NONCE_LEN + 16;

/// One AES-256-GCM key for session payloads, with the id stored beside
/// each payload it seals. Prints as `REDACTED`.
#[derive(Clone)]
pub struct PayloadKey {
    id: u8,
    key: Arc<LessSafeKey>,
}

impl PayloadKey {
    /// A key from its id and 32 secret bytes, by value or by reference
    /// (the same shape as [`TokenKey::new`](crate::TokenKey::new)). Load
    /// them from your secret store, or use [`from_env`](Self::from_env).
    ///
    /// ```
    /// use rolling_session::store::PayloadKey;
    ///
    /// let key = PayloadKey::new(1, *b"another 32 bytes from a CSPRNG!!");
    /// assert_eq!(key.id(), 1);
    /// ```
    pub fn new(id: u8, bytes: impl std::borrow::Borrow<[u8; 32]>) -> Self {
        let key =
            UnboundKey::new(&AES_256_GCM, bytes.borrow()).expect("AES-256 takes a 32-byte key");
        Self {
            id,
            key: Arc::new(LessSafeKey::new(key)),
        }
    }

    /// A key from 32 bytes in base64 (standard or URL-safe, padding
    /// optional). Refuses placeholders ([`KeyError::Weak`](crate::KeyError::Weak)).
    ///
    /// ```
    /// use rolling_session::store::PayloadKey;
    ///
    /// let key = PayloadKey::from_base64(1, "jxKgM1wB7nuQRNIZasMF-yhxvQ6TWvYch04wqdtiFcg")?;
    /// assert_eq!(key.id(), 1);
    /// # Ok::<(), rolling_session::KeyError>(())
    /// ```
    pub fn from_base64(id: u8, text: &str) -> Result<Self, crate::KeyError> {
        crate::secret::from_base64(text)
            .and_then(crate::secret::strong)
            .map(|bytes| Self::new(id, bytes))
    }

    /// A key from 64 hex digits. Refuses placeholders.
    pub fn from_hex(id: u8, text: &str) -> Result<Self, crate::KeyError> {
        crate::secret::from_hex(text)
            .and_then(crate::secret::strong)
            .map(|bytes| Self::new(id, bytes))
    }

    /// A key from the environment variable `var` (hex or base64, as
    /// printed by `cargo run --example keygen`). Refuses placeholders; the
    /// error names the variable, never its value.
    pub fn from_env(id: u8, var: &str) -> Result<Self, crate::KeyError> {
        crate::secret::from_env(var)
            .and_then(crate::secret::strong)
            .map(|bytes| Self::new(id, bytes))
    }

    /// A fresh random key (its sealed payloads cannot be read by another
    /// process unless you keep the bytes: use [`new`](Self::new) then).
    pub fn generate(id: u8) -> Self {
        Self::new(id, crate::random::bytes::<32>())
    }

    /// The key id written beside each sealed payload.
    pub fn id(&self) -> u8 {
        self.id
    }
}

impl fmt::Debug for PayloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadKey")
            .field("id", &self.id)
            .field("key", &"REDACTED")
            .finish()
    }
}

/// The payload keys of a [`RedisStore`]: the current key seals, every
/// listed key opens. To rotate, make a new key current and keep the old
/// one listed until every session sealed under it has expired (its
/// absolute lifetime) or been rewritten.
///
/// Nonces are 96 random bits; a payload is sealed only when a session is
/// created or its meta changes, far below the 2^32 seals per key that
/// random GCM nonces allow.
#[derive(Debug, Clone)]
pub struct PayloadKeys {
    current: PayloadKey,
    accepted: Vec<PayloadKey>,
}

impl PayloadKeys {
    /// Keys that seal with `current`.
    pub fn new(current: PayloadKey) -> Self {
        Self {
            current,
            accepted: Vec::new(),
        }
    }

    /// Also opens payloads sealed under `key` (an older key being
    /// retired): the same shape as [`KeyRing::with_accepted`](crate::KeyRing::with_accepted).
    #[must_use]
    pub fn with_accepted(mut self, key: PayloadKey) -> Self {
        self.accepted.retain(|k| k.id != key.id);
        if key.id != self.current.id {
            self.accepted.push(key);
        }
        self
    }

    /// The key that seals.
    pub fn current(&self) -> &PayloadKey {
        &self.current
    }

    fn find(&self, id: u8) -> Option<&PayloadKey> {
        std::iter::once(&self.current)
            .chain(&self.accepted)
            .find(|k| k.id == id)
    }

    fn aad(lineage: &LineageKey) -> Vec<u8> {
        [AAD_LABEL, lineage.as_bytes()].concat()
    }

    /// A data value's associated data: its lineage and its key.
    fn data_aad(lineage: &LineageKey, key: &str) -> Vec<u8> {
        [DATA_AAD_LABEL, lineage.as_bytes(), key.as_bytes()].concat()
    }

    fn seal(&self, lineage: &LineageKey, plain: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        self.seal_with(&Self::aad(lineage), plain)
    }

    /// [`seal`](Self::seal)'s inverse (the codec opens through
    /// `Codec::open_stored`).
    #[cfg(test)]
    fn open(&self, lineage: &LineageKey, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.open_with(&Self::aad(lineage), sealed)
    }

    /// `[1, key id, nonce (12), ciphertext and tag]`. The lineage key is
    /// authenticated too, so a payload cannot be moved to another session;
    /// it stays valid across the lineage's renewals and elevations, which
    /// change the session id but not the lineage.
    fn seal_with(&self, aad: &[u8], mut plain: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::random::fill(&mut nonce).map_err(|_| corrupt("the random generator failed"))?;
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut plain,
            )
            .map_err(|_| corrupt("sealing the session payload failed"))?;
        let mut out = Vec::with_capacity(2 + NONCE_LEN + plain.len());
        out.extend_from_slice(&[SEALED_V1, self.current.id]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        Ok(out)
    }

    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (Some(&key_id), Some(nonce)) = (sealed.get(1), sealed.get(2..2 + NONCE_LEN)) else {
            return Err(corrupt("a sealed session payload is truncated"));
        };
        let key = self
            .find(key_id)
            .ok_or_else(|| corrupt("a session payload is sealed under a key that is not listed"))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| corrupt("a sealed session payload is truncated"))?;
        let mut data = sealed[2 + NONCE_LEN..].to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .map_err(|_| corrupt("a session payload failed authentication"))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> PayloadKeys {
        PayloadKeys::new(PayloadKey::new(2, [9; 32])).with_accepted(PayloadKey::new(1, [8; 32]))
    }

    #[test]
    fn sealed_payloads_open_only_for_their_lineage_and_listed_keys() {
        let sid = SessionId::from_bytes([1; 16]);
        let lineage = sid.lineage();
        let sealed = keys().seal(&lineage, b"{\"secret\":1}".to_vec()).unwrap();
        assert_eq!(sealed[..2], [SEALED_V1, 2]);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(keys().open(&lineage, &sealed).unwrap(), b"{\"secret\":1}");
        // A renewed id of the same lineage: still the same AAD.
        let renewed = sid.next_generation();
        assert_ne!(renewed, sid);
        assert_eq!(
            keys().open(&renewed.lineage(), &sealed).unwrap(),
            b"{\"secret\":1}"
        );
        // Another lineage: the AAD differs.
        let other = SessionId::from_bytes([2; 16]).lineage();
        assert!(keys().open(&other, &sealed).is_err());
        // A flipped bit anywhere fails.
        for i in 2..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(keys().open(&lineage, &bad).is_err(), "byte {i}");
        }
        // Rotation: the old key still opens, an unlisted one does not.
        let old = PayloadKeys::new(PayloadKey::new(1, [8; 32]));
        let by_old = old.seal(&lineage, b"{}".to_vec()).unwrap();
        assert_eq!(keys().open(&lineage, &by_old).unwrap(), b"{}");
        let unknown = PayloadKeys::new(PayloadKey::new(3, [8; 32]));
        assert!(unknown.open(&lineage, &by_old).is_err());
        // Truncation never panics.
        for n in 0..sealed.len() {
            let _ = keys().open(&lineage, &sealed[..n]);
        }
    }

    #[test]
    fn payload_keys_do_not_print() {
        let dbg = format!("{:?}", keys());
        assert!(dbg.contains("REDACTED") && !dbg.contains('9'), "{dbg}");
    }

    #[test]
    fn verdict_names_match_the_script() {
        let script = include_str!("redis/advance.lua");
        for v in Verdict::ALL {
            assert_eq!(parse_verdict(v.as_str().as_bytes()).unwrap(), v);
            // The script never answers `unknown`: a foreign id is absent.
            assert_eq!(
                script.contains(&format!("reply('{}')", v.as_str())),
                v != Verdict::Unknown,
                "{v:?}"
            );
        }
        assert!(parse_verdict(b"nope").is_err());
    }

    #[test]
    fn fields_round_trip_as_text() {
        assert_eq!(
            revoked_text(Some(RevocationReason::TokenReused)),
            "token_reused"
        );
        assert_eq!(revoked_text(None), "");
        let retired = vec![
            Retirement {
                from: 1,
                to: 1,
                at: 22,
            },
            Retirement {
                from: 3,
                to: u64::MAX,
                at: u64::MAX,
            },
        ];
        let text = encode_retired(&retired);
        assert_eq!(text, format!("1-1@22,3-{0}@{0}", u64::MAX));
        assert_eq!(decode_retired(text.as_bytes()).unwrap(), retired);
        assert_eq!(decode_retired(b"").unwrap(), vec![]);
        for bad in [
            "1-2",
            "1@2",
            "a-1@2",
            "1--2@3",
            "1-2@3@4",
            "-1-2@3",
            "1-2@+3",
            "1-2@3,",
            ",1-2@3",
            "1-2@3,,4-5@6",
        ] {
            assert!(decode_retired(bad.as_bytes()).is_err(), "{bad}");
        }

        let first = SessionId::from_bytes([7; 16]);
        let second = first.next_generation();
        let record_ids = format!("{first},{second}");
        assert_eq!(decode_ids(&record_ids).unwrap(), vec![first, second]);
        let foreign = SessionId::from_bytes([8; 16]);
        assert!(decode_ids(&format!("{first},{foreign}")).is_err());
        assert!(decode_ids("").is_err());
        assert!(decode_ids(&format!("{first},")).is_err());

        let lineage = first.lineage();
        assert_eq!(parse_lineage(&lineage.to_string()), Some(lineage));
        assert_eq!(parse_lineage(&first.to_string()), None);
        assert_eq!(parse_lineage("0707070707070707 "), None);
        assert_eq!(parse_lineage("070707070707070G"), None);
    }

    /// Ids, lineage keys and the hash's key as the store writes them into
    /// its commands are the text `Display` gives them.
    #[tokio::test]
    async fn ids_and_keys_are_spelled_as_display_spells_them() {
        let id = SessionId::from_bytes(std::array::from_fn(|i| {
            (i as u8).wrapping_mul(17).wrapping_add(5)
        }));
        let lineage = id.lineage();
        assert_eq!(&hex::<16, 32>(id.as_bytes())[..], id.to_string().as_bytes());
        assert_eq!(
            &hex::<8, 16>(lineage.as_bytes())[..],
            lineage.to_string().as_bytes()
        );
        let store = RedisStore::builder()
            .key_prefix("app:")
            .connect_lazy("redis://127.0.0.1:1")
            .unwrap();
        assert_eq!(store.lineage_key(&lineage), format!("app:s:{{{lineage}}}"));
        assert_eq!(store.session_key(&id), store.lineage_key(&lineage));
    }

    /// The retired list as it was decoded before the one-pass reader: the
    /// reference the reader must agree with on every input.
    fn decode_retired_by_splitting(s: &str) -> Option<Vec<Retirement>> {
        if s.is_empty() {
            return Some(Vec::new());
        }
        s.split(',')
            .map(|entry| {
                let (range, at) = entry.split_once('@')?;
                let (from, to) = range.split_once('-')?;
                let digits = |v: &str| -> Option<u64> {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    v.parse().ok()
                };
                Some(Retirement {
                    from: digits(from)?,
                    to: digits(to)?,
                    at: digits(at)?,
                })
            })
            .collect()
    }

    proptest::proptest! {
        /// Near misses (a list as written with each of its bytes in turn
        /// replaced by a digit, a separator or a stray byte, or dropped),
        /// texts of digits and separators in any order, and arbitrary
        /// bytes decode alike.
        #[test]
        fn the_retired_list_reader_agrees_with_splitting(
            entries in proptest::collection::vec(
                (0u64..1000, proptest::num::u64::ANY, 0u64..20),
                1..4,
            ),
            text in proptest::string::string_regex(
                "([0-9]{0,3}|[0-9]{18,21}|18446744073709551615|18446744073709551616|0*7)([-@,x]([0-9]{0,3}|[0-9]{18,21}|18446744073709551615|18446744073709551616|0*7)){0,12}",
            )
            .unwrap(),
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let retired: Vec<Retirement> = entries
                .into_iter()
                .map(|(from, to, at)| Retirement { from, to, at })
                .collect();
            let written = encode_retired(&retired).into_bytes();
            let mut texts = vec![text];
            for at in 0..written.len() {
                for byte in *b"07-@,x" {
                    let mut near = written.clone();
                    near[at] = byte;
                    texts.push(String::from_utf8(near).unwrap());
                }
                let mut near = written.clone();
                near.remove(at);
                texts.push(String::from_utf8(near).unwrap());
            }
            for text in texts {
                proptest::prop_assert_eq!(
                    decode_retired(text.as_bytes()).ok(),
                    decode_retired_by_splitting(&text),
                    "{}",
                    text
                );
            }
            let reference = std::str::from_utf8(&raw).ok().and_then(decode_retired_by_splitting);
            proptest::prop_assert_eq!(decode_retired(&raw).ok(), reference);
        }

        /// Every list the store writes reads back as it was.
        #[test]
        fn written_retired_lists_read_back(
            entries in proptest::collection::vec(
                (proptest::num::u64::ANY, proptest::num::u64::ANY, proptest::num::u64::ANY),
                0..70,
            ),
        ) {
            let retired: Vec<Retirement> = entries
                .into_iter()
                .map(|(from, to, at)| Retirement { from, to, at })
                .collect();
            proptest::prop_assert_eq!(
                decode_retired(encode_retired(&retired).as_bytes()).unwrap(),
                retired
            );
        }
    }
}
