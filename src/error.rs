//! Errors, one type per layer: [`TokenError`] for parsing and verifying a
//! token, [`StoreError`] for storage, and [`Error`] (with its
//! [`ErrorKind`]) for what the session manager refuses and why; and
//! [`ParseVerdictError`] for reading a [`Verdict`](crate::store::Verdict)'s name.

#[cfg(feature = "drift")]
use crate::drift::TelemetryError;
use std::fmt;
use std::time::Duration;

/// Why a presented token is not a valid token. All of these are decided
/// without touching the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Tokens are exactly 56 characters long.
    #[error("a session token is 56 characters long, this one has {len}")]
    Length {
        /// The length presented.
        len: usize,
    },
    /// Not base64url without padding.
    #[error("a session token is base64url without padding")]
    Encoding,
    /// A version this server does not read.
    #[error("unknown session token version {version}")]
    Version {
        /// The version byte presented.
        version: u8,
    },
    /// Minted under a key this server does not list (retired, or another
    /// deployment's).
    #[error("session token minted under key {key_id}, which this server does not accept")]
    UnknownKey {
        /// The key id presented.
        key_id: u8,
    },
    /// The tag does not match: forged or corrupted.
    #[error("session token failed verification")]
    BadTag,
}

/// Why a stored record's [`RecordSeal`](crate::store::RecordSeal) does not
/// check ([`KeyRing::verify_record`](crate::KeyRing::verify_record)). The
/// manager answers each with [`ErrorKind::RecordTampered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordSealError {
    /// The record carries no seal: not written by a manager of this
    /// version, or the seal was removed.
    #[error("the stored session record is not sealed")]
    Missing,
    /// Sealed under a key this server does not list (retired too early,
    /// or another deployment's).
    #[error(
        "the stored session record is sealed under key {key_id}, which this server does not list"
    )]
    UnknownKey {
        /// The key id in the seal.
        key_id: u8,
    },
    /// The seal does not match the record: a bound field was rewritten.
    #[error("the stored session record does not match its seal")]
    Mismatch,
}

/// A name that is none of the [`Verdict`](crate::store::Verdict) names (its
/// [`FromStr`](std::str::FromStr) reads what
/// [`Verdict::as_str`](crate::store::Verdict::as_str) writes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not the name of a verdict")]
#[non_exhaustive]
pub struct ParseVerdictError {
    /// The name given.
    pub name: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a [`SessionStore`](crate::SessionStore). Each
/// variant keeps its source so the cause is never lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The session does not exist (never did, expired and swept, deleted).
    #[error("session not found")]
    NotFound,
    /// A session with this id already exists.
    #[error("session already exists")]
    Conflict,
    /// The store cannot be reached or did not answer in time.
    #[error("session store unavailable")]
    Unavailable(#[source] BoxError),
    /// The store answered with data this crate cannot read. For a
    /// session's record, the manager answers it as
    /// [`ErrorKind::RecordTampered`]: a record this crate did not write.
    #[error("session store returned corrupt data")]
    Corrupt(#[source] BoxError),
    /// [`create_limited`](crate::SessionStore::create_limited) refused the
    /// session: the user already has `max` live sessions and the policy
    /// refuses new ones.
    #[error("the user already has {max} live sessions")]
    SessionLimit {
        /// The limit.
        max: usize,
    },
    /// [`write_data`](crate::SessionStore::write_data) refused the write:
    /// the session's data would exceed the limit. Nothing was written.
    #[error("the session's data would be {size} bytes, over the limit of {max}")]
    DataTooLarge {
        /// The size the data would have had.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The store does not implement this operation (a store written
    /// before it existed; see CHANGELOG.md for what to add).
    #[error("the session store does not support {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Wraps a transport or timeout error.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable(source.into())
    }

    /// Wraps a decoding error.
    pub fn corrupt(source: impl Into<BoxError>) -> Self {
        Self::Corrupt(source.into())
    }
}

/// Why the session manager refused a request: what a caller can act on.
///
/// New reasons may be added; match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The token is not a valid token (see the source [`TokenError`]).
    MalformedToken(TokenError),
    /// No such session: never created, terminated, or expired and swept.
    UnknownSession,
    /// The session's lifetime is over.
    SessionExpired {
        /// Whether the absolute lifetime (which renewal never extends) is
        /// the one that ended; if not, renewing earlier would have helped.
        absolute: bool,
    },
    /// The session was idle for longer than its idle timeout.
    IdleTimeout,
    /// A token was used after its grace: the session is revoked.
    TokenReused,
    /// The session was revoked earlier.
    SessionRevoked,
    /// A newer login of the same user took the session's place under the
    /// per-user session limit.
    SessionEvicted,
    /// The session's stored record failed its integrity check (its
    /// [`RecordSeal`](crate::store::RecordSeal) is missing or does not
    /// match, or the store returned data this crate did not write):
    /// someone with write access to the store changed it. Refused, fail
    /// closed; an audit event ([`SessionEvent::RecordTampered`](crate::events::SessionEvent::RecordTampered))
    /// names the session.
    RecordTampered,
    /// The token's counter is ahead of the server's: a forgery or a bug.
    /// The session is not revoked.
    TokenAhead,
    /// The request's context differs from the session's and the policy
    /// requires re-authentication.
    ContextMismatch {
        /// Which fields differ: `ip`, `user_agent`, `device_id`.
        fields: Vec<&'static str>,
    },
    /// Renewal is allowed only in the last part of the lifetime.
    RenewalTooEarly {
        /// How long until renewal is allowed.
        allowed_in: Duration,
    },
    /// The session has used all its renewals.
    RenewalLimit {
        /// The configured maximum.
        max: u32,
    },
    /// The absolute lifetime leaves nothing to renew.
    RenewalPastAbsolute,
    /// Renewal or elevation needs the live token, and the presented one is
    /// not (another request moved the session on, or its token is still in
    /// flight): retry with the latest token. Nothing was changed.
    NotLive,
    /// Confirmation was asked of a session that has nothing to confirm.
    NothingToConfirm,
    /// The user has the maximum number of sessions and the policy refuses
    /// new ones.
    SessionLimit {
        /// The configured maximum.
        max: usize,
    },
    /// A telemetry report was refused: bad input (HTTP 400) or too soon
    /// after the previous one (HTTP 429).
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    InvalidTelemetry(TelemetryError),
    /// Too many sessions created from the client's IP address
    /// (`admission.per_ip_logins`); 429 with `Retry-After`.
    TooManyLogins {
        /// When the address may create sessions again.
        retry_after: Duration,
    },
    /// The store holds `admission.max_sessions` sessions; 503 with
    /// `Retry-After`.
    AtCapacity {
        /// When to try again.
        retry_after: Duration,
    },
    /// The session's data would exceed `max_data_bytes`; 413. Nothing
    /// was written.
    DataTooLarge {
        /// The size the data would have had.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The request carried no session token where a session is needed.
    MissingToken,
    /// The request's session is anonymous (a visitor's, holding data)
    /// where a logged-in user is needed.
    LoginRequired,
    /// The request's token was not validated: only the refresh route,
    /// whose renewal is its validation, may use it.
    NotValidated,
    /// The store could not be reached: fail closed.
    StoreUnavailable,
    /// The store failed in another way.
    Store,
}

impl ErrorKind {
    /// The machine-readable snake_case reason, as sent in JSON rejections.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MalformedToken(_) => "malformed_token",
            Self::UnknownSession => "session_not_found",
            Self::SessionExpired { .. } => "session_expired",
            Self::IdleTimeout => "idle_timeout",
            Self::TokenReused => "token_reused",
            Self::SessionRevoked => "session_revoked",
            Self::SessionEvicted => "session_evicted",
            Self::RecordTampered => "session_tampered",
            Self::TokenAhead => "token_ahead",
            Self::ContextMismatch { .. } => "context_mismatch",
            Self::RenewalTooEarly { .. } => "renewal_too_early",
            Self::RenewalLimit { .. } => "renewal_limit",
            Self::RenewalPastAbsolute => "renewal_past_absolute",
            Self::NotLive => "token_not_live",
            Self::NothingToConfirm => "nothing_to_confirm",
            Self::SessionLimit { .. } => "session_limit",
            #[cfg(feature = "drift")]
            Self::InvalidTelemetry(e) => e.reason(),
            Self::TooManyLogins { .. } => "too_many_logins",
            Self::AtCapacity { .. } => "session_capacity",
            Self::DataTooLarge { .. } => "session_data_too_large",
            Self::MissingToken => "missing_token",
            Self::LoginRequired => "login_required",
            Self::NotValidated => "session_not_validated",
            Self::StoreUnavailable => "store_unavailable",
            Self::Store => "store_error",
        }
    }
}

impl ErrorKind {
    /// Whether the session is over for this client (HTTP 401): it must
    /// log in again. Refusals that leave the session usable (too early,
    /// limits, store failures, bad telemetry) are not.
    pub fn ends_session(&self) -> bool {
        !matches!(
            self,
            Self::RenewalTooEarly { .. }
                | Self::RenewalLimit { .. }
                | Self::RenewalPastAbsolute
                | Self::NotLive
                | Self::NothingToConfirm
                | Self::SessionLimit { .. }
                | Self::TooManyLogins { .. }
                | Self::AtCapacity { .. }
                | Self::DataTooLarge { .. }
                | Self::NotValidated
                | Self::StoreUnavailable
                | Self::Store
        ) && !self.is_telemetry()
    }

    #[cfg(feature = "drift")]
    fn is_telemetry(&self) -> bool {
        matches!(self, Self::InvalidTelemetry(_))
    }

    #[cfg(not(feature = "drift"))]
    fn is_telemetry(&self) -> bool {
        false
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedToken(e) => write!(f, "malformed session token: {e}"),
            Self::UnknownSession => f.write_str("no such session; log in again"),
            Self::SessionExpired { absolute: true } => {
                f.write_str("the session reached its absolute lifetime; log in again")
            }
            Self::SessionExpired { absolute: false } => f.write_str(
                "the session expired; renew it (POST /session/refresh) before it ends next time",
            ),
            Self::IdleTimeout => f.write_str("the session was idle for too long; log in again"),
            Self::TokenReused => f.write_str(
                "an old session token was used again; the session is revoked because its credential was copied",
            ),
            Self::SessionRevoked => f.write_str("the session was revoked; log in again"),
            Self::SessionEvicted => f.write_str(
                "a newer login took this session's place (too many sessions for this user); log in again",
            ),
            Self::RecordTampered => f.write_str(
                "the session's stored record failed its integrity check; log in again",
            ),
            Self::TokenAhead => f.write_str("the session token was never issued by this server"),
            Self::ContextMismatch { fields } => write!(
                f,
                "the request comes from a different {}; log in again",
                fields.join(", ")
            ),
            Self::RenewalTooEarly { allowed_in } => write!(
                f,
                "renewal is allowed in {} s, in the last part of the session's lifetime",
                allowed_in.as_secs().max(1)
            ),
            Self::RenewalLimit { max } => {
                write!(f, "the session was renewed {max} times, the maximum; log in again")
            }
            Self::RenewalPastAbsolute => {
                f.write_str("the session cannot outlive its absolute lifetime; log in again")
            }
            Self::NotLive => f.write_str(
                "this needs the session's live token and another request moved it on; retry with the latest token",
            ),
            Self::NothingToConfirm => f.write_str("this session was never renewed; nothing to confirm"),
            Self::SessionLimit { max } => write!(
                f,
                "the user already has {max} sessions, the maximum; end one first"
            ),
            #[cfg(feature = "drift")]
            Self::InvalidTelemetry(e) => write!(f, "telemetry refused: {e}"),
            Self::TooManyLogins { retry_after } => write!(
                f,
                "too many sessions were created from this address; try again in {} s",
                retry_after.as_secs().max(1)
            ),
            Self::AtCapacity { retry_after } => write!(
                f,
                "the server holds as many sessions as it may; try again in {} s",
                retry_after.as_secs().max(1)
            ),
            Self::DataTooLarge { size, max } => write!(
                f,
                "the session's data would be {size} bytes, over the limit of {max}"
            ),
            Self::MissingToken => f.write_str("this route needs a session; log in first"),
            Self::LoginRequired => {
                f.write_str("this route needs a logged-in user; log in first")
            }
            Self::NotValidated => f.write_str(
                "only the refresh route may handle a request whose session was not validated",
            ),
            Self::StoreUnavailable => {
                f.write_str("the session store is unavailable; try again shortly")
            }
            Self::Store => f.write_str("the session store failed"),
        }
    }
}

/// An error from the [`SessionManager`](crate::SessionManager) or the
/// request's [`Session`](crate::Session): a [`kind`](Error::kind) to act on
/// and, for store failures, the source. Cheap to clone (the source is
/// shared).
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    source: Option<std::sync::Arc<StoreError>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(crate) fn with_source(kind: ErrorKind, source: StoreError) -> Self {
        Self {
            kind,
            source: Some(std::sync::Arc::new(source)),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The machine-readable reason, shorthand for `kind().reason()`.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match (&self.source, &self.kind) {
            (Some(e), _) => Some(&**e),
            (None, ErrorKind::MalformedToken(e)) => Some(e),
            #[cfg(feature = "drift")]
            (None, ErrorKind::InvalidTelemetry(e)) => Some(e),
            _ => None,
        }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Self::new(ErrorKind::MalformedToken(e))
    }
}

#[cfg(feature = "drift")]
impl From<TelemetryError> for Error {
    fn from(e: TelemetryError) -> Self {
        Self::new(ErrorKind::InvalidTelemetry(e))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        let kind = match e {
            StoreError::NotFound => ErrorKind::UnknownSession,
            StoreError::Unavailable(_) => ErrorKind::StoreUnavailable,
            StoreError::SessionLimit { max } => ErrorKind::SessionLimit { max },
            StoreError::DataTooLarge { size, max } => ErrorKind::DataTooLarge { size, max },
            _ => ErrorKind::Store,
        };
        Self {
            kind,
            source: Some(std::sync::Arc::new(e)),
        }
    }
}
