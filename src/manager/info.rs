//! The values the manager hands out: sessions, new credentials,
//! validation results, status and analytics.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::data::SessionData;
use crate::record::Verdict;
use crate::record::{SessionContext, SessionFlags, SessionId, SessionRecord};
use crate::token::Token;

/// A validated session as a request handler sees it: a snapshot taken when
/// the request was validated.
///
/// The snapshot shares the record the store handed out (an `Arc`), so
/// cloning a `SessionInfo` is a reference count, never a copy of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub(super) record: Arc<SessionRecord>,
    pub(super) now_ms: u64,
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
    /// The record to change: copied first if another snapshot shares it.
    pub(crate) fn record_mut(&mut self) -> &mut SessionRecord {
        Arc::make_mut(&mut self.record)
    }
    /// When this snapshot was taken, ms since the epoch.
    pub fn observed_at_ms(&self) -> u64 {
        self.now_ms
    }
}

pub(super) fn ms(v: u64) -> Duration {
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
/// [`SessionManager::create_session_with`](super::SessionManager::create_session_with).
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
    /// lifetimes of [`Config::remember_me`](crate::Config::remember_me). Default false: a
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
