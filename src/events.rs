//! Audit events and the sink they go to.
//!
//! Events carry session ids, user ids and contexts, never a token. The
//! default sink, [`TracingSink`], writes them as `tracing` events under the
//! target `rolling_session::audit`; the manager also counts outcomes with
//! the `metrics` facade (`rolling_session_requests_total{verdict}`,
//! `rolling_session_events_total{event}`,
//! `rolling_session_records_tampered_total` for records that failed their
//! integrity check, `rolling_session_logins_refused_total{reason}` for
//! logins refused by the admission limits, and, at the HTTP edge,
//! `rolling_session_store_errors_total{kind}` for store failures, which are
//! also logged under the target `rolling_session::store`), which costs
//! nothing until a recorder is installed.

use serde::Serialize;

#[cfg(feature = "drift")]
use crate::drift::AnomalyAction;
use crate::record::{SessionContext, SessionId};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TerminationReason {
    /// The user or application ended it (logout).
    Logout,
    /// All of the user's sessions were ended at once.
    LogoutEverywhere,
    /// Replaced by a new session id. No longer emitted: renewal and
    /// elevation continue the lineage under a new id without ending it.
    Replaced,
    /// Evicted to respect the per-user session limit: a newer login of
    /// the same user took its place. The record stays, revoked
    /// ([`RevocationReason::Evicted`](crate::store::RevocationReason::Evicted)),
    /// so the session's next request is answered `session_evicted`.
    Evicted,
    /// Ended because the request context changed.
    ContextMismatch,
    /// Ended by the drift predictor's anomaly action.
    Anomaly,
}

/// Something worth an audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEvent {
    /// A session was created.
    Created {
        /// The new session.
        session_id: SessionId,
        /// Its user.
        user_id: String,
    },
    /// A session's token rotated.
    Rotated {
        /// The session.
        session_id: SessionId,
        /// The new live counter.
        counter: u64,
    },
    /// A session was renewed into a new one.
    Renewed {
        /// The session renewed.
        from: SessionId,
        /// The new session.
        to: SessionId,
        /// Renewals so far.
        renewals: u32,
    },
    /// A session was ended.
    Terminated {
        /// The session.
        session_id: SessionId,
        /// Why.
        reason: TerminationReason,
    },
    /// A session was found expired or idle for too long.
    Expired {
        /// The session.
        session_id: SessionId,
        /// `true` for the idle timeout, `false` for the lifetime.
        idle: bool,
    },
    /// An old token was replayed: the whole lineage is revoked
    /// (`token_reused`).
    TheftDetected {
        /// The session's current id.
        session_id: SessionId,
        /// Every id the lineage had (login, renewals, elevations), oldest
        /// first: all of them are revoked.
        lineage: Vec<SessionId>,
        /// Its user.
        user_id: String,
        /// The counter opened from the replayed token.
        presented_counter: u64,
        /// The live counter when it was replayed.
        live_counter: u64,
        /// The context the session was last used from.
        session_context: SessionContext,
        /// The context of the replaying request, if the caller gave one.
        request_context: Option<SessionContext>,
    },
    /// A token ahead of the store's live counter (by at most
    /// `token.max_ahead`) was accepted and the sequence moved forward to
    /// it: its tag verified, so the server minted it, and the store lost
    /// the writes that issued it (a failover with replication lag, a
    /// restart from an older snapshot). Many of these at once say the
    /// store rolled back; see `docs/redis.md` for the durability settings
    /// that prevent it.
    StoreRolledBack {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: String,
        /// The counter of the token presented, now the live one.
        presented_counter: u64,
        /// The live counter the store had.
        stored_counter: u64,
    },
    /// A request came from a context unlike the session's.
    ContextMismatch {
        /// The session.
        session_id: SessionId,
        /// The fields that differ.
        fields: Vec<&'static str>,
        /// The session's recorded context.
        session_context: SessionContext,
        /// The request's context.
        request_context: SessionContext,
    },
    /// The drift predictor flagged an anomaly.
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    Anomaly {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: String,
        /// The anomaly score, 0..1.
        score: f64,
        /// The action taken (`DriftConfig::anomaly_action`).
        action: AnomalyAction,
    },
    /// A session was evicted to respect the per-user session limit
    /// (`Config::max_concurrent_sessions` with
    /// `SessionLimitPolicy::EvictOldest`). Follows the
    /// [`Terminated`](Self::Terminated) event every ended session has, and
    /// says which device lost its session to which login; the evicted
    /// device's next request is answered `session_evicted`.
    Evicted {
        /// The evicted session's current id.
        session_id: SessionId,
        /// The user (the same for both sessions).
        user_id: String,
        /// The evicted session's last known context: its device id, user
        /// agent and address. Empty if the record could not be read back.
        device: SessionContext,
        /// The new session that took its place.
        replaced_by: SessionId,
    },
    /// A stored record failed its integrity check (its seal is missing or
    /// does not match, or the store returned data this crate did not
    /// write): someone with write access to the store changed it. The
    /// request was refused (`session_tampered`). No user id: the stored
    /// one cannot be trusted.
    RecordTampered {
        /// The session id the request named.
        session_id: SessionId,
    },
}

impl SessionEvent {
    /// The event's snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Rotated { .. } => "rotated",
            Self::Renewed { .. } => "renewed",
            Self::Terminated { .. } => "terminated",
            Self::Evicted { .. } => "evicted",
            Self::Expired { .. } => "expired",
            Self::TheftDetected { .. } => "theft_detected",
            Self::StoreRolledBack { .. } => "store_rolled_back",
            Self::ContextMismatch { .. } => "context_mismatch",
            #[cfg(feature = "drift")]
            Self::Anomaly { .. } => "anomaly",
            Self::RecordTampered { .. } => "record_tampered",
        }
    }
}

/// Receives audit events. Implement it to ship events to your SIEM;
/// `emit` is called inline on the request path, so hand slow work to a
/// channel.
///
/// ```
/// use rolling_session::{events::EventSink, events::SessionEvent};
/// use std::sync::mpsc::Sender;
///
/// /// Hands theft reports to a background task that pages someone.
/// struct TheftPager(std::sync::Mutex<Sender<String>>);
///
/// impl EventSink for TheftPager {
///     fn emit(&self, event: &SessionEvent) {
///         if let SessionEvent::TheftDetected { .. } = event {
///             let _ = self.0.lock().unwrap().send(event.name().to_owned());
///         }
///     }
/// }
/// ```
pub trait EventSink: Send + Sync + 'static {
    /// Records one event.
    fn emit(&self, event: &SessionEvent);
}

/// Writes events through `tracing`: rotations at `TRACE`, theft,
/// anomalies, context mismatches, store rollbacks and tampered records at
/// `WARN`, the rest
/// at `INFO`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl EventSink for TracingSink {
    fn emit(&self, event: &SessionEvent) {
        const T: &str = "rolling_session::audit";
        match event {
            SessionEvent::Rotated { .. } => tracing::trace!(target: T, ?event),
            SessionEvent::TheftDetected { .. }
            | SessionEvent::ContextMismatch { .. }
            | SessionEvent::StoreRolledBack { .. }
            | SessionEvent::RecordTampered { .. } => tracing::warn!(target: T, ?event),
            #[cfg(feature = "drift")]
            SessionEvent::Anomaly { .. } => tracing::warn!(target: T, ?event),
            _ => tracing::info!(target: T, ?event),
        }
    }
}

/// Keeps every event in memory; for tests and for inspecting a demo.
///
/// ```
/// use std::sync::Arc;
/// use rolling_session::{KeyRing, events::MemorySink, SessionContext, events::SessionEvent, SessionManager, TokenKey};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = Arc::new(MemorySink::new());
/// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
///     .events(sink.clone())
///     .build()?;
/// manager.create_session("alice", SessionContext::default()).await?;
/// assert!(matches!(sink.events()[..], [SessionEvent::Created { .. }]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct MemorySink {
    events: std::sync::Mutex<Vec<SessionEvent>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<SessionEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl EventSink for MemorySink {
    fn emit(&self, event: &SessionEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}
