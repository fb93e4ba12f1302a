//! The session manager: the whole session lifecycle and its policies.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, SystemClock, as_ms};
use crate::config::{Config, MismatchAction, Rotation, SessionLimitPolicy};
use crate::data::{DataChanges, DataLimit, SessionData};
#[cfg(feature = "drift")]
use crate::drift::{AnomalyAction, DriftAdvice, DriftPredictor, SampleContext, TelemetrySample};
use crate::error::{Error, ErrorKind, StoreError};
use crate::events::{EventSink, SessionEvent, TerminationReason, TracingSink};
use crate::sequence::{AdvanceRequest, RevocationReason, Rotate, SequenceState, Verdict};
use crate::session::{SessionContext, SessionFlags, SessionId, SessionMeta, SessionRecord};
use crate::store::{MemoryStore, SessionLimit, SessionStore};
use crate::telemetry::DriftRegistry;
use crate::token::{KeyRing, Token, VerifiedToken};

/// A validated session as a request handler sees it: a snapshot taken when
/// the request was validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    record: SessionRecord,
    now_ms: u64,
}

impl SessionInfo {
    /// The session id (changes on login, renewal and elevation).
    pub fn id(&self) -> SessionId {
        self.record.id
    }
    /// The user the session belongs to; empty for an anonymous session.
    pub fn user_id(&self) -> &str {
        &self.record.user_id
    }
    /// Whether nobody logged in: a visitor's session, created to hold data
    /// (see [`Session::insert`](crate::Session::insert)).
    pub fn is_anonymous(&self) -> bool {
        self.record.user_id.is_empty()
    }
    /// The recorded context.
    pub fn context(&self) -> &SessionContext {
        &self.record.meta.context
    }
    /// The session's permissions.
    pub fn permissions(&self) -> &[String] {
        &self.record.meta.permissions
    }
    /// Whether the session holds `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions().iter().any(|p| p == permission)
    }
    /// Flags raised during the session's life.
    pub fn flags(&self) -> SessionFlags {
        self.record.meta.flags
    }
    /// Time left before the session expires (renewable or absolute
    /// lifetime, whichever ends first).
    pub fn expires_in(&self) -> Duration {
        ms(self.record.meta.ends_at().saturating_sub(self.now_ms))
    }
    /// Time left before the session ends for inactivity.
    pub fn idle_expires_in(&self) -> Duration {
        ms(self.record.idle_deadline().saturating_sub(self.now_ms))
    }
    /// Time left before the absolute lifetime ends.
    pub fn absolute_expires_in(&self) -> Duration {
        ms(self
            .record
            .meta
            .absolute_expires_at
            .saturating_sub(self.now_ms))
    }
    /// The full stored record.
    pub fn record(&self) -> &SessionRecord {
        &self.record
    }
    pub(crate) fn record_mut(&mut self) -> &mut SessionRecord {
        &mut self.record
    }
    /// When this snapshot was taken, ms since the epoch.
    pub fn observed_at_ms(&self) -> u64 {
        self.now_ms
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A new session (or new credentials for one): the session and the token
/// to hand to the client.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session.
    pub session: SessionInfo,
    /// Its first token.
    pub token: Token,
}

/// How a session is created: see
/// [`SessionManager::create_session_with`].
///
/// ```
/// use rolling_session::LoginOptions;
///
/// // The login form's "remember me" box, ticked:
/// let options = LoginOptions::default().remember_me(true);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginOptions {
    /// "Remember me": a persistent cookie (with `Max-Age`) and the longer
    /// lifetimes of [`Config::remember_me`]. Default false: a
    /// browser-session cookie that ends when the browser closes.
    pub remember_me: bool,
    /// Keep the data the request's session had (an anonymous visitor's
    /// cart) in the new session. Default true; the old session is ended
    /// either way (a login always gets a fresh id).
    pub keep_data: bool,
}

impl Default for LoginOptions {
    fn default() -> Self {
        Self {
            remember_me: false,
            keep_data: true,
        }
    }
}

impl LoginOptions {
    /// Sets [`keep_data`](Self::keep_data).
    #[must_use]
    pub fn keep_data(mut self, keep: bool) -> Self {
        self.keep_data = keep;
        self
    }

    /// Sets [`remember_me`](Self::remember_me).
    #[must_use]
    pub fn remember_me(mut self, remember: bool) -> Self {
        self.remember_me = remember;
        self
    }
}

/// The result of validating a request's token.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The session.
    pub session: SessionInfo,
    /// What the sequence rule decided (one of the accepted verdicts).
    pub verdict: Verdict,
    /// The token to send back: the next token after a rotation or a
    /// recovery. `None` when the request issued no token (the client keeps
    /// what it has); grace answers never carry one.
    pub next_token: Option<Token>,
    /// The session's data, read in the same store round trip.
    pub data: SessionData,
}

/// Facts about the request that validation takes into account.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// Whether the method is safe (GET, HEAD, OPTIONS, TRACE); only the
    /// `unsafe_methods` rotation policy looks at it.
    pub safe_method: bool,
    /// The request's context, compared with the session's per the
    /// context policy.
    pub context: Option<SessionContext>,
}

/// Times a client needs to schedule its timers, relative to now so a wrong
/// client clock cannot shift them. Serialized by `GET /session/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// The session is usable.
    pub active: bool,
    /// The user.
    pub user_id: String,
    /// Time before expiry (renewable or absolute, whichever is first), ms.
    pub expires_in_ms: u64,
    /// Time before the idle timeout, ms.
    pub idle_expires_in_ms: u64,
    /// The configured idle timeout, ms.
    pub idle_timeout_ms: u64,
    /// Time before the absolute lifetime ends, ms.
    pub absolute_expires_in_ms: u64,
    /// Time before renewal is allowed (0: allowed now), ms; `None` when the
    /// session can no longer be renewed.
    pub renewal_allowed_in_ms: Option<u64>,
    /// Renew now: within the renewal window and renewable.
    pub refresh_recommended: bool,
    /// Renewals so far.
    pub renewals: u32,
    /// Requests seen.
    pub request_count: u64,
    /// Token rotations so far.
    pub rotations: u64,
    /// The server's clock, ms since the epoch.
    pub server_timestamp: u64,
}

/// Usage statistics of one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionAnalytics {
    /// The session.
    pub session_id: SessionId,
    /// Its user.
    pub user_id: String,
    /// Time since creation (of the first session of a renewal chain), ms.
    pub duration_ms: u64,
    /// Time of the last accepted request, ms since the epoch.
    pub last_activity_at: u64,
    /// Requests accepted.
    pub request_count: u64,
    /// Token rotations.
    pub rotations: u64,
    /// Renewals.
    pub renewals: u32,
    /// Flags raised.
    pub flags: SessionFlags,
}

/// Builds a [`SessionManager`].
#[must_use]
pub struct SessionManagerBuilder {
    keys: KeyRing,
    store: Option<Arc<dyn SessionStore>>,
    config: Config,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
}

impl SessionManagerBuilder {
    /// The store (default: a new [`MemoryStore`]).
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }
    /// A store already shared behind an `Arc`.
    pub fn shared_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }
    /// The policies (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
    /// Where audit events go (default: [`TracingSink`]).
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = sink;
        self
    }
    /// Checks the configuration and builds the manager.
    pub fn build(self) -> Result<SessionManager, crate::ConfigError> {
        let config = self.config.with_dependent_defaults();
        config.validate()?;
        refuse_placeholder_keys(&self.keys, cfg!(feature = "test-util"))?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        if config.admission.max_sessions.is_some() && store.session_count().is_none() {
            return Err(Config::error(
                "admission.max_sessions needs a store that counts its sessions (MemoryStore); \
                 bound a Redis store with its maxmemory instead",
            ));
        }
        Ok(SessionManager {
            inner: Arc::new(Inner {
                #[cfg(feature = "drift")]
                drift: DriftRegistry::new(config.drift.clone()),
                #[cfg(not(feature = "drift"))]
                drift: DriftRegistry,
                keys: self.keys,
                admission: crate::admission::Admission::default(),
                store,
                config,
                clock: self.clock,
                events: self.events,
            }),
        })
    }
}

/// Who asked for a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renewal {
    /// The client (the refresh route, a handler): counts against
    /// `max_renewals`.
    Client,
    /// The server, under sliding expiry: bounded by the absolute lifetime
    /// only.
    Sliding,
}

/// Refuses a key ring holding a placeholder key, or only warns about it
/// when `allow` (the `test-util` feature).
fn refuse_placeholder_keys(keys: &KeyRing, allow: bool) -> Result<(), crate::ConfigError> {
    match keys.weak_key_ids().next() {
        None => Ok(()),
        Some(id) if allow => {
            tracing::warn!(
                key_id = id,
                "a placeholder token key is in use (allowed by the test-util feature)"
            );
            Ok(())
        }
        Some(_) => Err(crate::ConfigError::weak_key()),
    }
}

/// The session lifecycle: create, validate, renew, terminate, and the
/// policies around them. Cheap to clone; clones share everything.
///
/// ```
/// use rolling_session::{KeyRing, SessionContext, SessionManager, TokenKey};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
/// let login = manager.create_session("alice", SessionContext::default()).await?;
///
/// // Each request presents the last token and receives the next one.
/// let first = manager.validate_session(login.token.expose()).await?;
/// assert_eq!(first.session.user_id(), "alice");
/// let next = first.next_token.expect("rotated");
/// manager.validate_session(next.expose()).await?;
///
/// // The first token again, once its 10 s grace has passed, reveals a
/// // copy: the session is revoked (see the `tests/` for the full story).
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    keys: KeyRing,
    store: Arc<dyn SessionStore>,
    config: Config,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EventSink>,
    drift: DriftRegistry,
    admission: crate::admission::Admission,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("keys", &self.inner.keys)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// Starts building a manager that mints tokens with `keys`.
    pub fn builder(keys: KeyRing) -> SessionManagerBuilder {
        SessionManagerBuilder {
            keys,
            store: None,
            config: Config::default(),
            clock: Arc::new(SystemClock),
            events: Arc::new(TracingSink),
        }
    }

    /// The policies in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The manager's clock reading, ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// T for a request on `id`: sized by the drift predictor from the
    /// client's round trips when it has measured them, always inside the
    /// operator's `[token.grace_min, token.grace_window]`; the configured
    /// `token.grace_window` when it has not (or without the `drift` feature).
    fn grace_window_ms(&self, id: &SessionId) -> u64 {
        let grace = &self.inner.config.token;
        let (floor, ceiling) = (as_ms(grace.grace_min), as_ms(grace.grace_window));
        self.inner
            .drift
            .grace_window_ms(id)
            .map_or(ceiling, |t| t.clamp(floor.min(ceiling), ceiling))
    }

    fn emit(&self, event: SessionEvent) {
        metrics::counter!("rolling_session_events_total", "event" => event.name()).increment(1);
        self.inner.events.emit(&event);
    }

    /// Counts a record that failed its integrity check, reports it
    /// ([`SessionEvent::RecordTampered`], metric
    /// `rolling_session_records_tampered_total`), and returns the refusal.
    fn tampered(&self, session_id: SessionId, source: StoreError) -> Error {
        // The audit event below says which session; this says why.
        tracing::warn!(
            %session_id,
            error = %source,
            cause = ?std::error::Error::source(&source).map(ToString::to_string),
            "a stored session record failed its integrity check"
        );
        metrics::counter!("rolling_session_records_tampered_total").increment(1);
        self.emit(SessionEvent::RecordTampered { session_id });
        Error::with_source(ErrorKind::RecordTampered, source)
    }

    /// A store error while reading the record of `id`: data this crate
    /// did not write is a tampered record (401, fail closed), not a server
    /// error.
    fn read_failed(&self, id: &SessionId, e: StoreError) -> Error {
        match e {
            StoreError::Corrupt(_) => self.tampered(*id, e),
            e => e.into(),
        }
    }

    /// Checks the seal of a record read from the store for a request on
    /// `id`.
    fn check_seal(&self, id: &SessionId, record: &SessionRecord) -> Result<(), Error> {
        self.inner
            .keys
            .verify_record(record)
            .map_err(|e| self.tampered(*id, StoreError::corrupt(e)))
    }

    /// Loads the record `id` belongs to and checks its seal.
    async fn load_checked(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        let record = match self.inner.store.load(id).await {
            Ok(r) => r,
            Err(e) => return Err(self.read_failed(id, e)),
        };
        if let Some(r) = &record {
            self.check_seal(id, r)?;
        }
        Ok(record)
    }

    /// Moves a record sealed under an older key onto the current one, so
    /// that the older key can be retired: called by the request that
    /// issued the session's next token (no other request can be writing
    /// the session's meta for a renewal or an elevation at that moment,
    /// as those need the token this request just replaced). Reads the
    /// record afresh, so it writes back nothing older. Best effort: a
    /// failure only leaves it for the next such request.
    async fn reseal(&self, id: &SessionId) {
        match self.load_checked(id).await {
            Ok(Some(mut fresh)) => {
                if let Err(e) = self.write_meta(&mut fresh).await {
                    tracing::debug!(session_id = %id, error = %e, "resealing a record failed");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(session_id = %id, error = %e, "resealing a record failed"),
        }
    }

    /// Seals the record's meta under the current key and writes it.
    async fn write_meta(&self, record: &mut SessionRecord) -> Result<(), Error> {
        record.meta.seal = Some(self.inner.keys.seal_record(record));
        self.inner
            .store
            .update_meta(&record.id, &record.meta)
            .await?;
        Ok(())
    }

    /// Creates a session for an authenticated user (always a fresh id:
    /// fixation protection), enforcing the per-user session limit in the
    /// same atomic store step
    /// ([`SessionStore::create_limited`]): however many logins of one user
    /// run in parallel, at most `max_concurrent_sessions` are live.
    /// Sessions evicted to make room are revoked (their next request gets
    /// `session_evicted`) and reported as
    /// [`SessionEvent::Terminated`] with [`TerminationReason::Evicted`].
    ///
    /// The session's cookie ends when the browser closes; see
    /// [`create_session_with`](Self::create_session_with) for "remember me".
    pub async fn create_session(
        &self,
        user_id: impl Into<String>,
        context: SessionContext,
    ) -> Result<NewSession, Error> {
        self.create_session_with(user_id, context, LoginOptions::default())
            .await
    }

    /// [`create_session`](Self::create_session) with options: "remember
    /// me" gives the session a persistent cookie and the
    /// [`Config::remember_me`] lifetimes.
    pub async fn create_session_with(
        &self,
        user_id: impl Into<String>,
        context: SessionContext,
        options: LoginOptions,
    ) -> Result<NewSession, Error> {
        let user_id = user_id.into();
        let cfg = &self.inner.config;
        let now = self.now_ms();
        let admission = &self.inner.admission;
        if let Err(retry_after) = admission.check_ip(&cfg.admission, context.ip, now) {
            metrics::counter!("rolling_session_logins_refused_total", "reason" => "too_many_logins")
                .increment(1);
            return Err(ErrorKind::TooManyLogins { retry_after }.into());
        }
        let store = &self.inner.store;
        // Held until the session is stored.
        let _admitted = admission
            .reserve(&cfg.admission, || store.session_count())
            .map_err(|()| {
                metrics::counter!("rolling_session_logins_refused_total", "reason" => "session_capacity")
                    .increment(1);
                Error::from(ErrorKind::AtCapacity {
                    retry_after: crate::admission::CAPACITY_RETRY,
                })
            })?;
        let limit = SessionLimit {
            max: cfg.max_concurrent_sessions,
            evict_oldest: cfg.on_session_limit == SessionLimitPolicy::EvictOldest,
            now_ms: now,
        };
        // A remembered session has no renewable lifetime: only its own idle
        // and absolute timeouts end it.
        let (idle_timeout, absolute_expires_at, expires_at) = if options.remember_me {
            let absolute = now.saturating_add(as_ms(cfg.remember_me.absolute_timeout));
            (cfg.remember_me.idle_timeout, absolute, absolute)
        } else {
            let absolute = now.saturating_add(as_ms(cfg.absolute_timeout));
            let expires = now.saturating_add(as_ms(cfg.expiration_time)).min(absolute);
            (cfg.idle_timeout, absolute, expires)
        };
        let record = SessionRecord {
            id: SessionId::generate(),
            previous_ids: Vec::new(),
            user_id,
            created_at: now,
            meta: SessionMeta {
                context,
                permissions: Vec::new(),
                expires_at,
                absolute_expires_at,
                idle_timeout_ms: as_ms(idle_timeout),
                renewals: 0,
                flags: SessionFlags {
                    remembered: options.remember_me,
                    ..SessionFlags::default()
                },
                previous_permissions: Vec::new(),
                seal: None,
            },
            sequence: SequenceState::new(now),
        };
        let mut record = record;
        let mut attempts = 0;
        // A fresh id's lineage key (its first 8 bytes) may, very rarely,
        // be taken: draw again.
        let created = loop {
            record.meta.seal = Some(self.inner.keys.seal_record(&record));
            // Anonymous sessions belong to no user, so no user's limit.
            let stored = if record.user_id.is_empty() {
                self.inner
                    .store
                    .create(&record)
                    .await
                    .map(|()| Default::default())
            } else {
                self.inner.store.create_limited(&record, &limit).await
            };
            match stored {
                Err(StoreError::Conflict) if attempts < 3 => {
                    attempts += 1;
                    record.id = SessionId::generate();
                }
                other => break other?,
            }
        };
        for session_id in created.evicted {
            self.inner.drift.forget(&session_id);
            self.emit(SessionEvent::Terminated {
                session_id,
                reason: TerminationReason::Evicted,
            });
            // The evicted record is kept (revoked) until its purge time:
            // read back which device it was, for the audit trail. A failed
            // read only leaves the context empty.
            let device = match self.inner.store.load(&session_id).await {
                Ok(Some(evicted)) => evicted.meta.context,
                _ => SessionContext::default(),
            };
            self.emit(SessionEvent::Evicted {
                session_id,
                user_id: record.user_id.clone(),
                device,
                replaced_by: record.id,
            });
        }
        self.emit(SessionEvent::Created {
            session_id: record.id,
            user_id: record.user_id.clone(),
        });
        Ok(self.new_session(record, now))
    }

    fn new_session(&self, record: SessionRecord, now_ms: u64) -> NewSession {
        NewSession {
            token: self.inner.keys.mint(&record.id, record.sequence.counter),
            session: SessionInfo { record, now_ms },
        }
    }

    /// Validates a token as a request with an unsafe method and no context:
    /// see [`validate`](Self::validate).
    pub async fn validate_session(&self, token: &str) -> Result<Validated, Error> {
        self.validate(token, &RequestInfo::default()).await
    }

    /// Verifies a token, applies the sequence rule and the policies in one
    /// store round trip, and returns the session with the token to send
    /// back.
    pub async fn validate(&self, token: &str, request: &RequestInfo) -> Result<Validated, Error> {
        let rotate = match self.inner.config.rotation {
            Rotation::EveryRequest => Rotate::Always,
            Rotation::UnsafeMethods if request.safe_method => Rotate::Never,
            Rotation::UnsafeMethods => Rotate::Always,
            Rotation::EveryNRequests(n) => Rotate::EveryN(n),
            Rotation::AtMostEvery(d) => Rotate::MinInterval(as_ms(d)),
        };
        self.check(token, rotate, request.context.as_ref(), None)
            .await
    }

    /// Token verification, the store's atomic advance, and the verdict's
    /// consequences (events, metrics, context policy).
    async fn check(
        &self,
        token: &str,
        rotate: Rotate,
        context: Option<&SessionContext>,
        new_id: Option<SessionId>,
    ) -> Result<Validated, Error> {
        let verified = self.inner.keys.verify(token)?;
        let now = self.now_ms();
        let request = AdvanceRequest {
            session: verified.session_id,
            presented: verified.counter,
            now_ms: now,
            grace_depth: self.inner.config.token.grace_depth,
            grace_window_ms: self.grace_window_ms(&verified.session_id),
            rotate,
            new_id,
            max_ahead: u64::from(self.inner.config.token.max_ahead),
        };
        let advance = match self
            .inner
            .store
            .verify_and_advance(&verified.session_id, &request)
            .await
        {
            Ok(advance) => advance,
            Err(e) => return Err(self.read_failed(&verified.session_id, e)),
        };
        let Some(advance) = advance else {
            metrics::counter!("rolling_session_requests_total", "verdict" => "unknown")
                .increment(1);
            return Err(ErrorKind::UnknownSession.into());
        };
        let verdict = advance.verdict;
        let data = advance.data;
        metrics::counter!("rolling_session_requests_total", "verdict" => verdict.as_str())
            .increment(1);
        let mut record = advance.record;
        // Nothing of the record is used before its seal checks: not even
        // the user id of a theft report.
        self.check_seal(&verified.session_id, &record)?;
        if verdict.is_accepted() && now >= record.meta.ends_at() {
            // The store accepted a request its own (sealed) record says
            // is past the session's end: the deadline it decided on was
            // rewritten.
            return Err(self.tampered(
                verified.session_id,
                StoreError::corrupt(
                    "the store accepted a request after the sealed end of the session",
                ),
            ));
        }
        if !verdict.is_accepted() {
            // Boxed: the refusal path is rare and its future is large.
            Box::pin(self.refuse_unless_accepted(&verified, verdict, &record, context)).await?;
        }
        if verdict == Verdict::FastForward {
            // The newest retirement starts at the live counter the store
            // had before it moved forward.
            let stored_counter = record
                .sequence
                .retired
                .last()
                .map_or(record.sequence.counter, |r| r.from);
            self.emit(SessionEvent::StoreRolledBack {
                session_id: record.id,
                user_id: record.user_id.clone(),
                presented_counter: verified.counter,
                stored_counter,
            });
        }
        let next_token = verdict.issues_token().then(|| {
            self.emit(SessionEvent::Rotated {
                session_id: record.id,
                counter: record.sequence.counter,
            });
            self.inner.keys.mint(&record.id, record.sequence.counter)
        });
        if verified.session_id != record.id && new_id != Some(record.id) {
            // A token of an earlier id, within its grace: it keeps the
            // permissions it had, never those an elevation granted since.
            // (Not the request that just moved the lineage to `new_id`:
            // its record is the session's own, written back by renewal
            // and elevation.)
            let previous = record.previous_ids.last() == Some(&verified.session_id);
            let meta = &mut record.meta;
            meta.permissions = if previous {
                std::mem::take(&mut meta.previous_permissions)
            } else {
                Vec::new()
            };
        }
        let record = match context {
            Some(ctx) => {
                let fields = self.context_mismatch(&record, ctx);
                if fields.is_empty() {
                    record
                } else {
                    Box::pin(self.act_on_context_mismatch(record, ctx, fields)).await?
                }
            }
            None => record,
        };
        if next_token.is_some()
            && record.meta.seal.map(|s| s.key_id()) != Some(self.inner.keys.current().id())
        {
            Box::pin(self.reseal(&record.id)).await;
        }
        Ok(Validated {
            session: SessionInfo {
                record,
                now_ms: now,
            },
            verdict,
            next_token,
            data,
        })
    }

    /// Writes `changes` to the data of the session `id` is an id of, in
    /// one store round trip, under [`Config::max_data_bytes`]; see
    /// [`SessionStore::write_data`]. The token sequence does not move.
    pub async fn write_session_data(
        &self,
        id: &SessionId,
        changes: &DataChanges,
    ) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let limit = DataLimit {
            max_bytes: self.inner.config.max_data_bytes,
            now_ms: self.now_ms(),
        };
        self.inner
            .store
            .write_data(id, changes, &limit)
            .await
            .map_err(Error::from)
    }

    /// Creates an anonymous session (a visitor who has not logged in, with
    /// an empty user id) to hold data. It rolls like any other session and
    /// counts against `admission`, but not against a user's session limit.
    pub async fn create_anonymous(&self, context: SessionContext) -> Result<NewSession, Error> {
        self.create_session_with(String::new(), context, LoginOptions::default())
            .await
    }

    async fn refuse_unless_accepted(
        &self,
        verified: &VerifiedToken,
        verdict: Verdict,
        record: &SessionRecord,
        context: Option<&SessionContext>,
    ) -> Result<(), Error> {
        let kind = match verdict {
            Verdict::Ahead => ErrorKind::TokenAhead,
            Verdict::Unknown => ErrorKind::UnknownSession,
            Verdict::Revoked => match record.sequence.revoked {
                Some(RevocationReason::Evicted) => ErrorKind::SessionEvicted,
                _ => ErrorKind::SessionRevoked,
            },
            Verdict::Reused => {
                self.inner.drift.forget(&record.id);
                self.emit(SessionEvent::TheftDetected {
                    session_id: record.id,
                    lineage: record.all_ids().collect(),
                    user_id: record.user_id.clone(),
                    presented_counter: verified.counter,
                    live_counter: record.sequence.counter,
                    session_context: record.meta.context.clone(),
                    request_context: context.cloned(),
                });
                ErrorKind::TokenReused
            }
            Verdict::Expired | Verdict::IdleTimeout => {
                let idle = verdict == Verdict::IdleTimeout;
                self.emit(SessionEvent::Expired {
                    session_id: record.id,
                    idle,
                });
                // Best effort: the sweeper deletes it later anyway.
                let _ = self.inner.store.delete(&record.id).await;
                if idle {
                    ErrorKind::IdleTimeout
                } else {
                    ErrorKind::SessionExpired {
                        absolute: self.now_ms() >= record.meta.absolute_expires_at,
                    }
                }
            }
            _ => return Ok(()),
        };
        Err(kind.into())
    }

    /// The context fields the policy checks that differ from the session's.
    fn context_mismatch(
        &self,
        record: &SessionRecord,
        presented: &SessionContext,
    ) -> Vec<&'static str> {
        let policy = self.inner.config.context;
        let stored = &record.meta.context;
        let mut fields = Vec::new();
        let differs =
            |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
        if policy.check_ip && matches!((stored.ip, presented.ip), (Some(a), Some(b)) if a != b) {
            fields.push("ip");
        }
        if policy.check_user_agent && differs(&stored.user_agent, &presented.user_agent) {
            fields.push("user_agent");
        }
        if policy.check_device && differs(&stored.device_id, &presented.device_id) {
            fields.push("device_id");
        }
        fields
    }

    async fn act_on_context_mismatch(
        &self,
        mut record: SessionRecord,
        presented: &SessionContext,
        fields: Vec<&'static str>,
    ) -> Result<SessionRecord, Error> {
        let policy = self.inner.config.context;
        let stored = &record.meta.context;
        self.emit(SessionEvent::ContextMismatch {
            session_id: record.id,
            fields: fields.clone(),
            session_context: stored.clone(),
            request_context: presented.clone(),
        });
        match policy.on_mismatch {
            MismatchAction::Reauthenticate => {
                self.terminate_id(&record.id, TerminationReason::ContextMismatch)
                    .await?;
                Err(ErrorKind::ContextMismatch { fields }.into())
            }
            MismatchAction::Allow => {
                if !record.meta.flags.context_mismatch {
                    record.meta.flags.context_mismatch = true;
                    self.write_meta(&mut record).await?;
                }
                Ok(record)
            }
        }
    }

    /// Relative times and renewal advice for a session, as served by
    /// `GET /session/status`.
    pub fn status(&self, session: &SessionInfo) -> SessionStatus {
        let r = &session.record;
        let now = session.now_ms;
        let renewal_allowed_in_ms = self.renewal_opens_at(r).map(|at| at.saturating_sub(now));
        SessionStatus {
            active: true,
            user_id: r.user_id.clone(),
            expires_in_ms: as_ms(session.expires_in()),
            idle_expires_in_ms: as_ms(session.idle_expires_in()),
            idle_timeout_ms: r.meta.idle_timeout_ms,
            absolute_expires_in_ms: as_ms(session.absolute_expires_in()),
            renewal_allowed_in_ms,
            refresh_recommended: renewal_allowed_in_ms == Some(0),
            renewals: r.meta.renewals,
            request_count: r.sequence.requests,
            rotations: r.sequence.counter,
            server_timestamp: now,
        }
    }

    /// When renewal opens, or `None` if the session cannot be renewed.
    fn renewal_opens_at(&self, r: &SessionRecord) -> Option<u64> {
        let cfg = &self.inner.config;
        let renewable =
            r.meta.renewals < cfg.max_renewals && r.meta.expires_at < r.meta.absolute_expires_at;
        renewable.then(|| {
            r.meta
                .expires_at
                .saturating_sub(as_ms(cfg.renewal_threshold))
        })
    }

    /// Renews a session: the lineage moves to a new id with an extended
    /// lifetime (never past the absolute lifetime), and the returned token
    /// replaces the presented one. It is a rotation: the old id's tokens
    /// follow the sequence rule like any predecessor (accepted within the
    /// grace, theft after), and the whole lineage stays one session for
    /// theft detection, so a copy cannot renew its way out of it.
    ///
    /// Needs the live token: a token another request already moved past,
    /// or one still waiting for its successor's response, gets
    /// [`ErrorKind::NotLive`] (retry with the latest token) and changes
    /// nothing. A token whose successor's response was lost renews (the
    /// recovery case of the rule).
    pub async fn renew_session(&self, token: &str) -> Result<NewSession, Error> {
        self.renew_with(token, Rotate::Always, Renewal::Client)
            .await
    }

    /// [`renew_session`](Self::renew_session) with a token this request
    /// was just issued and has not delivered (a renewal inside a handler):
    /// the token is replaced, never used, so a lost response leaves the
    /// client with the token it presented, which the rule recovers.
    pub(crate) async fn renew_session_undelivered(&self, token: &str) -> Result<NewSession, Error> {
        self.renew_with(token, Rotate::ReplaceUndelivered, Renewal::Client)
            .await
    }

    /// Whether `session` is due a sliding renewal
    /// ([`Config::sliding_expiry`]): its renewable lifetime ends within
    /// `renewal_threshold` (and within half of `expiration_time`, so that a
    /// threshold as long as the lifetime does not renew on every request),
    /// and the absolute lifetime leaves room to extend it.
    pub(crate) fn sliding_renewal_due(&self, session: &SessionInfo) -> bool {
        let cfg = &self.inner.config;
        let meta = &session.record.meta;
        let window = cfg.renewal_threshold.min(cfg.expiration_time / 2);
        cfg.sliding_expiry
            && meta.expires_at < meta.absolute_expires_at
            && session.now_ms >= meta.expires_at.saturating_sub(as_ms(window))
    }

    /// The server's own renewal of an active session under sliding expiry,
    /// with the token this request was just issued (replaced, never used:
    /// see [`renew_session_undelivered`](Self::renew_session_undelivered)).
    /// It does not count against `max_renewals`.
    pub(crate) async fn slide_undelivered(&self, token: &str) -> Result<NewSession, Error> {
        self.renew_with(token, Rotate::ReplaceUndelivered, Renewal::Sliding)
            .await
    }

    async fn renew_with(
        &self,
        token: &str,
        rotate: Rotate,
        kind: Renewal,
    ) -> Result<NewSession, Error> {
        let verified = self.inner.keys.verify(token)?;
        let cfg = &self.inner.config;
        let now = self.now_ms();
        let current = self
            .load_checked(&verified.session_id)
            .await?
            .ok_or(ErrorKind::UnknownSession)?;
        if kind == Renewal::Client && current.meta.renewals >= cfg.max_renewals {
            return Err(ErrorKind::RenewalLimit {
                max: cfg.max_renewals,
            }
            .into());
        }
        let Some(opens_at) = self.renewal_opens_at(&current) else {
            return Err(ErrorKind::RenewalPastAbsolute.into());
        };
        if now < opens_at {
            return Err(ErrorKind::RenewalTooEarly {
                allowed_in: ms(opens_at - now),
            }
            .into());
        }
        let (from, renewed) = self
            .move_to_new_id(token, &current, rotate, |meta| {
                meta.expires_at = now
                    .saturating_add(as_ms(cfg.expiration_time))
                    .min(meta.absolute_expires_at);
                if kind == Renewal::Client {
                    meta.renewals += 1;
                }
            })
            .await?;
        self.emit(SessionEvent::Renewed {
            from,
            to: renewed.session.id(),
            renewals: renewed.session.record.meta.renewals,
        });
        Ok(renewed)
    }

    /// Rotates the lineage onto a new id and applies `change` to its
    /// metadata: renewal and elevation. Returns the id it had and the new
    /// credentials.
    async fn move_to_new_id(
        &self,
        token: &str,
        current: &SessionRecord,
        rotate: Rotate,
        change: impl FnOnce(&mut SessionMeta),
    ) -> Result<(SessionId, NewSession), Error> {
        let new_id = current.id.next_generation();
        let validated = self.check(token, rotate, None, Some(new_id)).await?;
        let Some(token) = validated.next_token else {
            return Err(ErrorKind::NotLive.into());
        };
        let mut record = validated.session.record;
        if record.id != new_id {
            // Another renewal or elevation won the race.
            return Err(ErrorKind::NotLive.into());
        }
        let from = record.previous_ids.last().copied().unwrap_or(record.id);
        change(&mut record.meta);
        self.write_meta(&mut record).await?;
        // Same client, same clock: its drift state moves to the new id.
        self.inner.drift.rename(&from, record.id);
        let now_ms = validated.session.now_ms;
        Ok((
            from,
            NewSession {
                session: SessionInfo { record, now_ms },
                token,
            },
        ))
    }

    /// Kept for clients of the two-phase renewal: called with the renewed
    /// token, it validates it (its first use retires the old id's tokens,
    /// as for any rotation) and returns the session. Idempotent;
    /// [`ErrorKind::NothingToConfirm`] if the session was never renewed or
    /// elevated.
    pub async fn confirm_renewal(&self, token: &str) -> Result<SessionInfo, Error> {
        let session = self.check(token, Rotate::Never, None, None).await?.session;
        if session.record.previous_ids.is_empty() {
            return Err(ErrorKind::NothingToConfirm.into());
        }
        Ok(session)
    }

    /// Ends the session the token belongs to (logout), with its whole
    /// lineage. Any token of the lineage may log out, but it is checked
    /// first: a copy used after its grace is reported as theft (and the
    /// lineage revoked) rather than silently ending the session. Ending an
    /// already ended session succeeds.
    pub async fn terminate_session(&self, token: &str) -> Result<(), Error> {
        let verified = self.inner.keys.verify(token)?;
        match self.check(token, Rotate::Never, None, None).await {
            Ok(_) => {}
            Err(e) if e.kind() == &ErrorKind::TokenReused => return Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Store) => {
                return Err(e);
            }
            Err(_) => {}
        }
        self.terminate_id(&verified.session_id, TerminationReason::Logout)
            .await
    }

    /// Ends a session by id (administration, anomaly response).
    pub async fn terminate_id(
        &self,
        id: &SessionId,
        reason: TerminationReason,
    ) -> Result<(), Error> {
        self.inner.drift.forget(id);
        if self.inner.store.delete(id).await? {
            self.emit(SessionEvent::Terminated {
                session_id: *id,
                reason,
            });
        }
        Ok(())
    }

    /// The user's live sessions (not expired, idle, revoked or superseded).
    /// A record that fails its integrity check is left out and reported
    /// ([`SessionEvent::RecordTampered`]).
    pub async fn active_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, Error> {
        let now = self.now_ms();
        let mut sessions: Vec<SessionInfo> = self
            .inner
            .store
            .list_by_user(user_id)
            .await?
            .into_iter()
            .filter(|r| self.check_seal(&r.id, r).is_ok() && r.user_id == user_id)
            .filter(|r| !r.is_dead(now))
            .map(|record| SessionInfo {
                record,
                now_ms: now,
            })
            .collect();
        sessions.sort_by_key(|s| s.record.created_at);
        Ok(sessions)
    }

    /// Ends every session of the user (log out everywhere); returns how
    /// many were ended.
    pub async fn terminate_all_user_sessions(&self, user_id: &str) -> Result<u64, Error> {
        // Tampered records are deleted too (and reported): their ids are
        // only used for the events.
        let ids: Vec<SessionId> = self
            .inner
            .store
            .list_by_user(user_id)
            .await?
            .iter()
            .inspect(|r| {
                let _ = self.check_seal(&r.id, r);
            })
            .map(|r| r.id)
            .collect();
        let n = self.inner.store.delete_by_user(user_id).await?;
        for session_id in ids {
            self.inner.drift.forget(&session_id);
            self.emit(SessionEvent::Terminated {
                session_id,
                reason: TerminationReason::LogoutEverywhere,
            });
        }
        Ok(n)
    }

    /// Updates the recorded context with the fields set in `update`.
    pub async fn update_session_context(
        &self,
        token: &str,
        update: SessionContext,
    ) -> Result<SessionInfo, Error> {
        let session = self.peek(token).await?;
        self.update_context_of(&session.id(), update).await
    }

    /// [`update_session_context`](Self::update_session_context) for a
    /// session already validated (by id): reads the record afresh, so a
    /// concurrent elevation's permissions are never written back over.
    pub async fn update_context_of(
        &self,
        id: &SessionId,
        update: SessionContext,
    ) -> Result<SessionInfo, Error> {
        let mut record = self
            .load_checked(id)
            .await?
            .filter(|r| !r.is_dead(self.now_ms()))
            .ok_or(ErrorKind::UnknownSession)?;
        record.meta.context.merge(update);
        self.write_meta(&mut record).await?;
        Ok(SessionInfo {
            record,
            now_ms: self.now_ms(),
        })
    }

    /// Checks `token` as a request would, without being one: the record is
    /// read and the sequence rule applied to a copy, so nothing is counted
    /// or rotated (reads never mutate). A token the rule would refuse goes
    /// through the real, atomic check instead, so a copied token used for
    /// a read is still caught (and the session revoked) like on any route.
    async fn peek(&self, token: &str) -> Result<SessionInfo, Error> {
        let verified = self.inner.keys.verify(token)?;
        let now = self.now_ms();
        if let Some(mut record) = self.load_checked(&verified.session_id).await? {
            let request = AdvanceRequest {
                session: verified.session_id,
                presented: verified.counter,
                now_ms: now,
                grace_depth: self.inner.config.token.grace_depth,
                grace_window_ms: self.grace_window_ms(&verified.session_id),
                rotate: Rotate::Never,
                new_id: None,
                max_ahead: 0,
            };
            let stored = record.clone();
            if record.advance(&request).is_accepted() {
                return Ok(SessionInfo {
                    record: stored,
                    now_ms: now,
                });
            }
        }
        self.check(token, Rotate::Never, None, None)
            .await
            .map(|v| v.session)
    }

    /// Sets the session's permissions. The lineage moves to a new id
    /// (fixation protection) exactly as in
    /// [`renew_session`](Self::renew_session): the returned token replaces
    /// the presented one, which must be the live token
    /// ([`ErrorKind::NotLive`] otherwise). Requests still in flight with the
    /// old id's tokens keep the old permissions until their grace ends.
    pub async fn set_session_permissions(
        &self,
        token: &str,
        permissions: Vec<String>,
    ) -> Result<NewSession, Error> {
        self.elevate_with(token, permissions, Rotate::Always).await
    }

    /// [`set_session_permissions`](Self::set_session_permissions) with a
    /// token this request was just issued and has not delivered (see
    /// [`renew_session_undelivered`](Self::renew_session_undelivered)).
    pub(crate) async fn set_session_permissions_undelivered(
        &self,
        token: &str,
        permissions: Vec<String>,
    ) -> Result<NewSession, Error> {
        self.elevate_with(token, permissions, Rotate::ReplaceUndelivered)
            .await
    }

    async fn elevate_with(
        &self,
        token: &str,
        permissions: Vec<String>,
        rotate: Rotate,
    ) -> Result<NewSession, Error> {
        let verified = self.inner.keys.verify(token)?;
        let current = self
            .load_checked(&verified.session_id)
            .await?
            .ok_or(ErrorKind::UnknownSession)?;
        let (_, elevated) = self
            .move_to_new_id(token, &current, rotate, |meta| {
                meta.previous_permissions = std::mem::replace(&mut meta.permissions, permissions);
                meta.flags.elevated = true;
            })
            .await?;
        Ok(elevated)
    }

    /// Usage statistics of the token's session.
    pub async fn session_analytics(&self, token: &str) -> Result<SessionAnalytics, Error> {
        Ok(self.analytics(&self.peek(token).await?))
    }

    /// Usage statistics of a session already read (no store call).
    pub fn analytics(&self, session: &SessionInfo) -> SessionAnalytics {
        let r = &session.record;
        SessionAnalytics {
            session_id: r.id,
            user_id: r.user_id.clone(),
            duration_ms: session.now_ms.saturating_sub(r.created_at),
            last_activity_at: r.sequence.last_seen_at,
            request_count: r.sequence.requests,
            rotations: r.sequence.counter,
            renewals: r.meta.renewals,
            flags: r.meta.flags,
        }
    }

    /// Deletes expired sessions from the store now, and the drift state of
    /// sessions that sent no telemetry for an idle timeout; returns how many
    /// sessions were deleted.
    pub async fn sweep_expired(&self) -> Result<u64, Error> {
        let now = self.now_ms();
        let silent_since = now.saturating_sub(as_ms(self.inner.config.idle_timeout));
        self.inner.drift.forget_silent(silent_since);
        Ok(self.inner.store.sweep_expired(now).await?)
    }

    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    /// Feeds one telemetry report of the session's client to the drift
    /// predictor (`POST /session/telemetry`) and acts on the advice: the
    /// session's token grace window follows its measured round trips, and
    /// an anomaly is flagged on the session, reported as
    /// [`SessionEvent::Anomaly`] and answered with the configured
    /// [`AnomalyAction`]. `operation` names the kind of work the client is
    /// doing, for [`DriftConfig::criticality`](crate::drift::DriftConfig::criticality).
    ///
    /// ```
    /// use rolling_session::drift::TelemetrySample;
    /// use rolling_session::{KeyRing, ManualClock, SessionContext, SessionManager, TokenKey};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new(1_700_000_000_000);
    /// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let login = manager.create_session("alice", SessionContext::default()).await?;
    /// let mut operations = 0;
    /// for _ in 0..5 {
    ///     clock.advance(Duration::from_secs(10));
    ///     operations += 4;
    ///     let sample = TelemetrySample {
    ///         timestamp: manager.now_ms() as i64 - 120, // the client's clock
    ///         operation_count: operations,
    ///         client_entropy: 0.5,
    ///         echo_server_timestamp: None,
    ///     };
    ///     let advice = manager.ingest_telemetry(&login.session, &sample, None).await?;
    ///     assert_eq!(advice.skew_ms, 120.0);
    /// }
    /// // A counter that goes down is refused (HTTP 400).
    /// clock.advance(Duration::from_secs(10));
    /// let bad = TelemetrySample { timestamp: manager.now_ms() as i64, operation_count: 1, client_entropy: 0.5, echo_server_timestamp: None };
    /// let err = manager.ingest_telemetry(&login.session, &bad, None).await.unwrap_err();
    /// assert_eq!(err.reason(), "counter_decreased");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidTelemetry`] for a refused report,
    /// [`ErrorKind::SessionRevoked`] when the anomaly action revoked the
    /// session, and store errors.
    pub async fn ingest_telemetry(
        &self,
        session: &SessionInfo,
        sample: &TelemetrySample,
        operation: Option<&str>,
    ) -> Result<DriftAdvice, Error> {
        let record = &session.record;
        let now = self.now_ms();
        let ctx = SampleContext {
            session_age_ms: now.saturating_sub(record.created_at),
            token_expires_in_ms: record.meta.ends_at().saturating_sub(now),
            operation,
        };
        let advice = self.inner.drift.ingest(record.id, sample, ctx, now)?;
        let Some(action) = advice.anomaly else {
            return Ok(advice);
        };
        self.emit(SessionEvent::Anomaly {
            session_id: record.id,
            user_id: record.user_id.clone(),
            score: advice.anomaly_score,
            action,
        });
        if action == AnomalyAction::Revoke {
            self.terminate_id(&record.id, TerminationReason::Anomaly)
                .await?;
            return Err(ErrorKind::SessionRevoked.into());
        }
        if !record.meta.flags.anomaly {
            // Re-read: the request's copy may predate a renewal or elevation
            // whose metadata must not be overwritten.
            if let Some(mut fresh) = self.load_checked(&record.id).await? {
                fresh.meta.flags.anomaly = true;
                self.write_meta(&mut fresh).await?;
            }
        }
        Ok(advice)
    }

    /// The drift predictor shared by the manager's sessions.
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    pub fn drift_predictor(&self) -> &DriftPredictor {
        self.inner.drift.predictor()
    }

    /// How many sessions have drift state on this node.
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    pub fn drift_tracked_sessions(&self) -> usize {
        self.inner.drift.len()
    }

    /// Telemetry reports that reached this node after another node had
    /// answered the session's previous report: a sign that the balancer
    /// does not keep each session on one node, which the drift state
    /// assumes (`docs/drift.md`, "Several nodes"). Also counted in the
    /// metric `rolling_session_telemetry_answered_elsewhere_total`.
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    pub fn telemetry_answered_elsewhere(&self) -> u64 {
        self.inner.drift.answered_elsewhere_count()
    }

    /// Spawns a tokio task that sweeps expired sessions every `every`. The
    /// task holds only a weak reference and stops when the manager is
    /// dropped.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let manager = SessionManager { inner };
                if let Err(e) = manager.sweep_expired().await {
                    tracing::warn!(error = %e, "sweeping expired sessions failed");
                }
            }
        })
    }
}

#[cfg(test)]
mod key_tests {
    use super::refuse_placeholder_keys;
    use crate::{KeyRing, TokenKey};

    #[test]
    fn placeholder_keys_are_refused_outside_tests() {
        let real = TokenKey::new(1, b"0123456789abcdefghijklmnopqrstuv");
        let zeros = TokenKey::new(2, [0u8; 32]);
        assert!(refuse_placeholder_keys(&KeyRing::new(real.clone()), false).is_ok());
        let err = refuse_placeholder_keys(&KeyRing::new(zeros.clone()), false).unwrap_err();
        assert!(err.to_string().contains("keygen"), "{err}");
        // A retired placeholder still verifies tokens: refused too.
        let ring = KeyRing::new(real).with_accepted(zeros.clone());
        assert!(refuse_placeholder_keys(&ring, false).is_err());
        assert!(refuse_placeholder_keys(&KeyRing::new(zeros), true).is_ok());
    }
}
