//! The session manager: the whole session lifecycle and its policies.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock, as_ms};
use crate::config::Config;
use crate::error::{Error, ErrorKind, StoreError};
use crate::events::{EventSink, SessionEvent, TracingSink};
use crate::record::SessionRecord;
use crate::store::{MemoryStore, SessionStore};
use crate::telemetry::DriftRegistry;
use crate::token::KeyRing;

mod info;
mod lifecycle;
mod renewal;
#[cfg(feature = "drift")]
mod telemetry;
mod validation;

pub use crate::record::{SessionFlags, SessionId};
pub use info::{
    LoginOptions, NewSession, RequestInfo, SessionAnalytics, SessionInfo, SessionStatus, Validated,
};

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
                in_process_store: store.is_in_process(),
                real_time: self.clock.follows_real_time(),
                store,
                config,
                clock: self.clock,
                events: self.events,
            }),
        })
    }
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
    /// `store.is_in_process()`, asked once.
    in_process_store: bool,
    /// `clock.follows_real_time()`, asked once.
    real_time: bool,
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
    /// Starts building a manager that mints tokens with `keys`: a
    /// [`KeyRing`], or one [`TokenKey`](crate::TokenKey) (a ring of one).
    pub fn builder(keys: impl Into<KeyRing>) -> SessionManagerBuilder {
        SessionManagerBuilder {
            keys: keys.into(),
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

    /// Whether the manager's clock follows real time (see
    /// [`Clock::follows_real_time`]).
    pub(crate) fn clock_follows_real_time(&self) -> bool {
        self.inner.real_time
    }

    /// The manager's clock reading, ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
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
        count_event(&event);
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
        if self.inner.in_process_store {
            // Records in this process's memory: see
            // `SessionStore::is_in_process`.
            return Ok(());
        }
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
}

/// Counts an event (`rolling_session_events_total`) with a literal label
/// per kind: the metrics macro keeps those in statics, where a computed
/// label allocates on every call (and a rotation is every request's).
fn count_event(event: &SessionEvent) {
    macro_rules! count {
        ($name:literal) => {
            metrics::counter!("rolling_session_events_total", "event" => $name).increment(1)
        };
    }
    match event {
        SessionEvent::Created { .. } => count!("created"),
        SessionEvent::Rotated { .. } => count!("rotated"),
        SessionEvent::Renewed { .. } => count!("renewed"),
        SessionEvent::Terminated { .. } => count!("terminated"),
        SessionEvent::Evicted { .. } => count!("evicted"),
        SessionEvent::Expired { .. } => count!("expired"),
        SessionEvent::TheftDetected { .. } => count!("theft_detected"),
        SessionEvent::StoreRolledBack { .. } => count!("store_rolled_back"),
        SessionEvent::ContextMismatch { .. } => count!("context_mismatch"),
        #[cfg(feature = "drift")]
        SessionEvent::Anomaly { .. } => count!("anomaly"),
        SessionEvent::RecordTampered { .. } => count!("record_tampered"),
    }
}

/// The label values `record` gives the metrics it counts, sorted: what
/// the counter tests compare with the names they expect.
#[cfg(test)]
fn recorded_label_values(record: impl FnOnce()) -> Vec<String> {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, record);
    let mut labels: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .flat_map(|(key, ..)| {
            key.key()
                .labels()
                .map(|l| l.value().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    labels.sort();
    labels
}

#[cfg(test)]
mod event_count_tests {
    use super::count_event;
    use crate::events::{SessionEvent, TerminationReason};
    use crate::record::{SessionContext, SessionId};

    #[test]
    fn event_counter_labels_are_the_event_names() {
        let id = SessionId::from_bytes([1; 16]);
        let ctx = SessionContext::default();
        let events = vec![
            SessionEvent::Created {
                session_id: id,
                user_id: "u".into(),
            },
            SessionEvent::Rotated {
                session_id: id,
                counter: 1,
            },
            SessionEvent::Renewed {
                from: id,
                to: id,
                renewals: 1,
            },
            SessionEvent::Terminated {
                session_id: id,
                reason: TerminationReason::Logout,
            },
            SessionEvent::Evicted {
                session_id: id,
                user_id: "u".into(),
                device: ctx.clone(),
                replaced_by: id,
            },
            SessionEvent::Expired {
                session_id: id,
                idle: true,
            },
            SessionEvent::TheftDetected {
                session_id: id,
                lineage: vec![id],
                user_id: "u".into(),
                presented_counter: 0,
                live_counter: 1,
                session_context: ctx.clone(),
                request_context: None,
            },
            SessionEvent::StoreRolledBack {
                session_id: id,
                user_id: "u".into(),
                presented_counter: 2,
                stored_counter: 1,
            },
            SessionEvent::ContextMismatch {
                session_id: id,
                fields: vec!["ip"],
                session_context: ctx.clone(),
                request_context: ctx,
            },
            #[cfg(feature = "drift")]
            SessionEvent::Anomaly {
                session_id: id,
                user_id: "u".into(),
                score: 0.9,
                action: crate::drift::AnomalyAction::Log,
            },
            SessionEvent::RecordTampered { session_id: id },
        ];
        let labels = super::recorded_label_values(|| events.iter().for_each(count_event));
        let mut names: Vec<String> = events.iter().map(|e| e.name().to_owned()).collect();
        names.sort();
        assert_eq!(labels, names);
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
