//! Turning refusals into HTTP responses: a status, a machine-readable
//! reason and a message, in a shape you can replace.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use crate::clock::as_ms;
use crate::error::{Error, ErrorKind};

/// A refusal, ready to become a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// The snake_case reason (`token_reused`, `missing_token`, ...).
    #[serde(rename = "error")]
    pub reason: &'static str,
    /// A sentence for humans.
    pub message: String,
    /// What the client can do next, when there is something to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'static str>,
    /// For `renewal_too_early`: when renewal opens, ms from now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl Rejection {
    /// No token was presented where a session is required.
    pub fn missing_token() -> Self {
        Self::from(&Error::from(ErrorKind::MissingToken))
    }

    /// The request's session is anonymous (a visitor's, holding data) or
    /// missing where a logged-in user is required.
    pub fn login_required() -> Self {
        Self::from(&Error::from(ErrorKind::LoginRequired))
    }

    /// The user is logged in but lacks `permission`.
    pub fn permission_required(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_required",
            format!("this route needs the permission `{permission}`"),
        )
    }

    /// A route reached the session of a request whose validation was
    /// deferred to the refresh route's renewal (see
    /// [`SessionExchange::begin`](super::SessionExchange::begin)).
    pub fn not_validated() -> Self {
        Self::from(&Error::from(ErrorKind::NotValidated))
    }

    /// A refusal with no hint.
    pub fn new(status: StatusCode, reason: &'static str, message: String) -> Self {
        Self {
            status,
            reason,
            message,
            hint: None,
            retry_after_ms: None,
        }
    }

    /// The JSON body: `{"error": reason, "message": ..., ...}`.
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The `Retry-After` header value (whole seconds, rounded up) of a 429
    /// or 503 that says when to retry.
    pub fn retry_after_header(&self) -> Option<u64> {
        let ms = self.retry_after_ms?;
        matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then(|| ms.div_ceil(1000).max(1))
    }

    /// Whether the session is over for this client (a 401). The cookie is
    /// still never cleared on a refusal: the refused token may be an old
    /// one from a late or retried request while the jar already holds a
    /// newer token (or a new login's), which clearing would destroy. Only
    /// logout removes the cookie.
    pub fn ends_session(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED
    }
}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for Rejection {}

/// A typed error as an HTTP refusal. (Store failures are counted and
/// logged where they happen, by the request's [`Session`](super::Session),
/// not here: converting twice never counts twice.)
impl From<&Error> for Rejection {
    fn from(e: &Error) -> Self {
        let kind = e.kind();
        let status = match kind {
            ErrorKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            #[cfg(feature = "drift")]
            ErrorKind::InvalidTelemetry(e) if e.is_rate_limited() => StatusCode::TOO_MANY_REQUESTS,
            #[cfg(feature = "drift")]
            ErrorKind::InvalidTelemetry(_) => StatusCode::BAD_REQUEST,
            ErrorKind::TooManyLogins { .. } => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::AtCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Store | ErrorKind::NotValidated => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::DataTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RenewalTooEarly { .. }
            | ErrorKind::NotLive
            | ErrorKind::NothingToConfirm
            | ErrorKind::SessionLimit { .. } => StatusCode::CONFLICT,
            ErrorKind::RenewalLimit { .. } | ErrorKind::RenewalPastAbsolute => {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::UNAUTHORIZED,
        };
        let mut r = Self::new(status, kind.reason(), kind.to_string());
        match kind {
            ErrorKind::SessionExpired { absolute: false } => {
                r.hint = Some("renew before expiry with POST /session/refresh")
            }
            ErrorKind::RenewalTooEarly { allowed_in } => {
                r.retry_after_ms = Some(as_ms(*allowed_in))
            }
            #[cfg(feature = "drift")]
            ErrorKind::InvalidTelemetry(e) => r.retry_after_ms = e.retry_after_ms(),
            ErrorKind::TooManyLogins { retry_after } | ErrorKind::AtCapacity { retry_after } => {
                r.retry_after_ms = Some(as_ms(*retry_after))
            }
            _ => {}
        }
        r
    }
}

/// Builds the response body for a [`Rejection`]. Implement it to answer in
/// your API's error format; the default is [`JsonRejection`].
///
/// ```
/// use bytes::Bytes;
/// use rolling_session::http::{Rejection, RejectionFormat, SessionLayer};
/// use rolling_session::{KeyRing, SessionManager, TokenKey};
///
/// /// `reason: message` as plain text.
/// struct PlainText;
///
/// impl RejectionFormat for PlainText {
///     fn format(&self, rejection: &Rejection) -> (&'static str, Bytes) {
///         let text = format!("{}: {}", rejection.reason, rejection.message);
///         ("text/plain; charset=utf-8", Bytes::from(text))
///     }
/// }
///
/// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
/// let layer = SessionLayer::new(manager).require().rejection_format(PlainText);
/// # Ok::<(), rolling_session::ConfigError>(())
/// ```
pub trait RejectionFormat: Send + Sync + 'static {
    /// The content type and body for `rejection`.
    fn format(&self, rejection: &Rejection) -> (&'static str, Bytes);
}

/// `{"error": "<reason>", "message": "..."}` as `application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonRejection;

impl RejectionFormat for JsonRejection {
    fn format(&self, rejection: &Rejection) -> (&'static str, Bytes) {
        ("application/json", rejection.to_json())
    }
}

pub(crate) type SharedFormat = Arc<dyn RejectionFormat>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TokenError;

    #[test]
    fn statuses_and_json() {
        let e = Error::from(ErrorKind::TokenReused);
        let r = Rejection::from(&e);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(json["error"], "token_reused");
        assert!(json["message"].as_str().unwrap().contains("revoked"));
        let e = Error::from(ErrorKind::StoreUnavailable);
        assert_eq!(Rejection::from(&e).status, StatusCode::SERVICE_UNAVAILABLE);
        let e = Error::from(TokenError::Encoding);
        assert_eq!(Rejection::from(&e).reason, "malformed_token");
        let e = Error::from(ErrorKind::SessionExpired { absolute: false });
        assert!(Rejection::from(&e).hint.is_some());
    }
}
