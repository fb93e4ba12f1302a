//! The request path, top to bottom, for every adapter:
//!
//! 1. [`inspect`](SessionExchange::inspect): excluded paths pass through;
//!    cross-site checks; the token and the request context are read from
//!    the request head.
//! 2. [`begin`](SessionExchange::begin): the token is verified and
//!    advanced through the manager (sliding expiry renews here); the
//!    result is a [`Session`] for the handler.
//! 3. [`gate`](SessionExchange::gate): with `require`, a request without a
//!    valid session is answered here, in the exchange's rejection format.
//! 4. [`finish`](SessionExchange::finish): the next token (or its removal)
//!    and the expiry headers go onto the response, and a [`Rejection`] a
//!    handler answered with is rendered in the same format.
//!
//! The tower layer ([`ResponseFuture`](super::ResponseFuture)) and the
//! actix-web middleware only convert their request and response types
//! around these four steps.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, HeaderName, HeaderValue};

use super::handle::{Carry, Session};
use super::head::{DefaultContext, MakeContext, RequestHead};
use super::rejection::{JsonRejection, Rejection, RejectionFormat, SharedFormat};
use super::routes::RouteResponse;
use super::transport::{EXPIRES_IN_HEADER, IDLE_EXPIRES_IN_HEADER, TokenTransport};
use crate::clock::as_ms;
use crate::manager::{RequestInfo, SessionManager};
use crate::token::Token;

/// The framework-neutral part of every adapter: the settings, and the
/// four steps around a request (see the module docs of `http::exchange`). The tower
/// layer and the actix-web middleware both wrap one.
///
/// ```
/// use rolling_session::http::{SessionExchange, SessionLayer};
/// use rolling_session::{KeyRing, SessionManager, TokenKey};
///
/// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
/// let exchange = SessionExchange::new(manager)
///     .route_prefix("/auth/session")
///     .skip_paths(["/static/", "/favicon.ico"]);
/// let layer = SessionLayer::from_exchange(exchange);
/// # let _ = layer;
/// # Ok::<(), rolling_session::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SessionExchange {
    inner: Arc<ExchangeInner>,
}

#[derive(Clone)]
struct ExchangeInner {
    manager: SessionManager,
    transport: TokenTransport,
    require: bool,
    format: SharedFormat,
    prefix: String,
    context: Arc<dyn MakeContext>,
    skip: Vec<String>,
}

impl std::fmt::Debug for SessionExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionExchange")
            .field("transport", &self.inner.transport)
            .field("require", &self.inner.require)
            .field("prefix", &self.inner.prefix)
            .field("skip", &self.inner.skip)
            .finish_non_exhaustive()
    }
}

/// What [`SessionExchange::inspect`] read of a request.
#[derive(Debug)]
pub enum Inspected {
    /// The path is excluded ([`SessionExchange::skip_paths`]): the request
    /// goes to the handler untouched, without a [`Session`].
    Skip,
    /// Answer at once (a cross-site request to a state-changing route),
    /// before the session is looked at.
    Refuse(Rejection),
    /// Go on to [`begin`](SessionExchange::begin).
    Session {
        /// The token presented, if any (its `Debug` is redacted).
        token: Option<Token>,
        /// What the manager needs of the request.
        request: RequestInfo,
    },
}

impl SessionExchange {
    /// Cookie transport, optional sessions, JSON rejections, prefix
    /// `/session`, the [`DefaultContext`], no excluded paths.
    pub fn new(manager: SessionManager) -> Self {
        Self {
            inner: Arc::new(ExchangeInner {
                manager,
                transport: TokenTransport::default(),
                require: false,
                format: Arc::new(JsonRejection),
                prefix: "/session".into(),
                context: Arc::new(DefaultContext::default()),
                skip: Vec::new(),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut ExchangeInner)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Where the token travels (default: the secure cookie).
    #[must_use]
    pub fn transport(self, transport: TokenTransport) -> Self {
        self.edit(|i| i.transport = transport)
    }
    /// Reject requests without a valid session instead of passing them
    /// through.
    #[must_use]
    pub fn require(self, require: bool) -> Self {
        self.edit(|i| i.require = require)
    }
    /// The shape of every rejection this exchange answers with: its own,
    /// the extractors', and those handlers return (default:
    /// [`JsonRejection`]).
    #[must_use]
    pub fn rejection_format(self, format: impl RejectionFormat) -> Self {
        self.edit(|i| i.format = Arc::new(format))
    }
    /// The prefix of the session routes (default `/session`).
    #[must_use]
    pub fn route_prefix(self, prefix: impl Into<String>) -> Self {
        self.edit(|i| i.prefix = prefix.into())
    }
    /// How the request context is derived (default: [`DefaultContext`]).
    #[must_use]
    pub fn context_from(self, context: impl MakeContext) -> Self {
        self.edit(|i| i.context = Arc::new(context))
    }
    /// Requests whose path starts with one of `prefixes` pass through
    /// untouched: no validation, no rotation, no `Set-Cookie`, no
    /// `Cache-Control: no-store`. For static assets, which need no session
    /// and should stay cacheable. Handlers behind them get no
    /// [`Session`]. (To rotate only on state-changing requests
    /// instead, see `Rotation::UnsafeMethods`.)
    #[must_use]
    pub fn skip_paths<S: Into<String>>(self, prefixes: impl IntoIterator<Item = S>) -> Self {
        let prefixes: Vec<String> = prefixes.into_iter().map(Into::into).collect();
        self.edit(|i| i.skip.extend(prefixes))
    }

    /// The manager.
    pub fn manager(&self) -> &SessionManager {
        &self.inner.manager
    }
    /// The transport in use.
    pub fn token_transport(&self) -> &TokenTransport {
        &self.inner.transport
    }
    /// Whether requests without a session are rejected.
    pub fn is_required(&self) -> bool {
        self.inner.require
    }
    /// The prefix of the session routes.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }
    pub(crate) fn format(&self) -> &SharedFormat {
        &self.inner.format
    }

    // 1. Inspect.

    /// Step 1: what the request brings, or why it goes no further.
    pub fn inspect(&self, head: &RequestHead<'_>) -> Inspected {
        let path = head.path();
        if self.inner.skip.iter().any(|p| path.starts_with(p.as_str())) {
            return Inspected::Skip;
        }
        if let Err(rejection) = super::origin::check(&self.inner.manager.config().csrf, head) {
            return Inspected::Refuse(rejection);
        }
        let transport = &self.inner.transport;
        let token = transport.read_token(head.values(transport.request_header_name()));
        let request = RequestInfo {
            safe_method: head.is_safe_method(),
            context: Some(self.inner.context.make_context(head)),
        };
        Inspected::Session { token, request }
    }

    /// [`inspect`](Self::inspect) for an `http` request head (the tower
    /// layer). The peer address comes from axum's `ConnectInfo` when the
    /// server provides it.
    pub fn inspect_parts(&self, parts: &http::request::Parts) -> Inspected {
        let head = RequestHead::from_header_map(
            &parts.headers,
            parts.method.as_str(),
            parts.uri.path(),
            peer_ip(&parts.extensions),
        )
        .with_authority(parts.uri.authority().map(|a| a.as_str()))
        .with_safe_method(parts.method.is_safe());
        self.inspect(&head)
    }

    // 2. Begin.

    /// Step 2: validates the request's token (if any) and returns the
    /// handle for the request. Never fails: a refusal is recorded in the
    /// handle. A request to the refresh route (`POST {prefix}/refresh`) is
    /// not validated here: its renewal validates the presented token and
    /// rotates it, once. Validating first would rotate it twice in one
    /// request (the layer's rotation, then the renewal's use of the token
    /// it just issued), which retires the token the client holds: were the
    /// response then lost, or dropped as late, the client would be left
    /// with a retired token, theft after the grace. With one rotation it
    /// holds the last presented token, which the sequence rule recovers.
    pub async fn begin(
        &self,
        token: Option<Token>,
        request: RequestInfo,
        method: &str,
        path: &str,
    ) -> Session {
        let refresh = self.is_refresh(method, path);
        self.clone().begin_with(token, request, refresh).await
    }

    /// [`begin`](Self::begin) with the refresh-route test already made
    /// (the adapters make it before boxing this future, so that it holds
    /// no copy of the path). The exchange moves into the handle, where
    /// the adapters find it again ([`Session`] keeps it for the response).
    pub(crate) async fn begin_with(
        self,
        token: Option<Token>,
        request: RequestInfo,
        refresh: bool,
    ) -> Session {
        match token {
            None => Session::missing(self, request),
            Some(presented) if refresh => Session::deferred(self, presented, request),
            Some(presented) => Session::validated(self, presented, request).await,
        }
    }

    pub(crate) fn is_refresh(&self, method: &str, path: &str) -> bool {
        method == "POST" && path.strip_prefix(self.prefix()) == Some("/refresh")
    }

    // 3. Gate.

    /// Step 3: with [`require`](Self::require), the answer to a request
    /// without a valid session (the refresh route decides for itself).
    pub fn gate(&self, handle: &Session) -> Result<(), RouteResponse> {
        if !self.is_required() || handle.is_deferred() {
            return Ok(());
        }
        handle
            .require()
            .map(drop)
            .map_err(|e| self.rejection_response(&Rejection::from(e)))
    }

    // 4. Finish.

    /// How long after its issue a token may still leave in a response: half
    /// of `token.grace_min`, on the monotonic clock and on the manager's
    /// clock alike. A later response goes without its token (see
    /// `docs/protocol.md`, late responses).
    pub fn token_send_deadline(&self) -> Duration {
        self.manager().config().token.grace_min / 2
    }

    /// Step 4: the headers to add to the response: the next token (or its
    /// removal) with `Cache-Control: no-store`, and the relative expiry
    /// times of an active session.
    pub fn finish(&self, handle: &Session) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::with_capacity(4);
        self.finish_each(handle, |name, value| headers.push((name, value)));
        headers
    }

    /// [`finish`](Self::finish), handing each header to `put` (the tower
    /// layer appends them to the response without collecting them first).
    pub fn finish_each(&self, handle: &Session, mut put: impl FnMut(HeaderName, HeaderValue)) {
        let transport = self.token_transport();
        handle.outgoing(self.token_send_deadline(), |carry, expiry| {
            let carried = match carry {
                Carry::Nothing => None,
                Carry::Token(token, max_age) => transport.write(token, max_age),
                Carry::Clear => transport.clear(),
            };
            if let Some((name, value)) = carried {
                put(name, value);
                put(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            if let Some((expires_in, idle_expires_in)) = expiry {
                put(EXPIRES_IN, decimal(as_ms(expires_in)));
                put(IDLE_EXPIRES_IN, decimal(as_ms(idle_expires_in)));
            }
        });
    }

    /// A rejection as this exchange answers it: status, content type and
    /// body in the configured format.
    pub fn rejection_response(&self, rejection: &Rejection) -> RouteResponse {
        let (content_type, body) = self.render(rejection);
        RouteResponse {
            status: rejection.status,
            content_type,
            body,
            retry_after: rejection.retry_after_header(),
        }
    }

    /// A handler's [`Rejection`] re-rendered in this exchange's format
    /// (the adapters' responses for a `Rejection` are JSON until then):
    /// the content type and body to put on the response instead.
    pub(crate) fn render(&self, rejection: &Rejection) -> (&'static str, Bytes) {
        self.format().format(rejection)
    }
}

const EXPIRES_IN: HeaderName = HeaderName::from_static(EXPIRES_IN_HEADER);
const IDLE_EXPIRES_IN: HeaderName = HeaderName::from_static(IDLE_EXPIRES_IN_HEADER);

/// `n` as a header value, formatted on the stack (`HeaderValue::from(u64)`
/// allocates twice: its buffer, then the shared bytes).
fn decimal(n: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    // Digits are always a valid value; the fallback only avoids a panic path.
    HeaderValue::from_str(digits.format(n)).unwrap_or_else(|_| HeaderValue::from(n))
}

#[cfg(feature = "axum")]
fn peer_ip(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    crate::axum::peer_ip(extensions)
}

#[cfg(not(feature = "axum"))]
fn peer_ip(_: &http::Extensions) -> Option<std::net::IpAddr> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyRing, TokenKey};

    /// What `inspect` read can be logged: the token in it is redacted.
    #[test]
    fn inspected_debug_never_prints_the_token() {
        let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
            .build()
            .unwrap();
        let exchange = SessionExchange::new(manager);
        let secret = "A".repeat(crate::token::TOKEN_LEN);
        let cookie = format!("__Host-session={secret}");
        let lookup = |name: &str| -> Vec<&[u8]> {
            if name == "cookie" {
                vec![cookie.as_bytes()]
            } else {
                vec![]
            }
        };
        let inspected = exchange.inspect(&RequestHead::new(&lookup, "GET", "/", None));
        let Inspected::Session {
            token: Some(token), ..
        } = &inspected
        else {
            panic!("the cookie's token is read: {inspected:?}");
        };
        assert_eq!(token.expose(), secret);
        assert!(!format!("{inspected:?}").contains(&secret));
    }
}
