//! HTTP integration: the tower [`SessionLayer`], the token transport, the
//! session routes and rejections.
//!
//! The data path of one request reads top to bottom:
//! [`TokenTransport::read`] extracts the token → [`SessionExchange::begin`]
//! verifies and advances it through the manager → the handler finds a
//! [`SessionHandle`] in the request extensions → [`SessionExchange::finish`]
//! writes the next token onto the response.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use rolling_session::http::{SessionHandle, SessionLayer};
//! use rolling_session::{KeyRing, SessionManager, TokenKey};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
//! let app = ServiceBuilder::new()
//!     .layer(SessionLayer::new(manager))
//!     .service_fn(|req: Request<String>| async move {
//!         let handle = req.extensions().get::<SessionHandle>().unwrap().clone();
//!         let user = match handle.session() {
//!             Some(s) => s.user_id().to_owned(),
//!             None => { handle.login("alice").await.unwrap(); "new".into() }
//!         };
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(user))))
//!     });
//!
//! let res = app.clone().oneshot(Request::new(String::new())).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! let cookie = res.headers()["set-cookie"].to_str()?;
//! assert!(cookie.starts_with("__Host-session=") && cookie.contains("HttpOnly"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Caveats
//!
//! - The layer must sit outside anything that retries or replays requests:
//!   a replayed request presents a spent token.
//! - Behind a proxy, derive the client IP yourself and set
//!   [`SessionLayer::context_from`]; the default context is the
//!   `User-Agent` and an optional `x-device-id` header.

mod future;
mod handle;
mod layer;
mod origin;
mod rejection;
mod report;
mod routes;
mod transport;

use std::sync::Arc;

pub use future::ResponseFuture;
pub use handle::SessionHandle;
pub use layer::{SessionLayer, SessionService};
pub use origin::Origin;
pub use rejection::{JsonRejection, Rejection, RejectionFormat};
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use routes::ROUTE_BODY_LIMIT;
pub use routes::{CLIENT_JS, RouteResponse, SessionRoute};
pub use transport::{CookieConfig, EXPIRES_IN_HEADER, IDLE_EXPIRES_IN_HEADER, TokenTransport};

use crate::manager::{RequestInfo, SessionManager};
use crate::session::SessionContext;
use rejection::SharedFormat;

/// Builds the request context the manager checks from the request head.
pub type ContextExtractor = fn(&RequestHead<'_>) -> SessionContext;

/// A framework-neutral view of a request head, handed to a
/// [`ContextExtractor`].
pub struct RequestHead<'a> {
    headers: &'a dyn Fn(&str) -> Vec<&'a [u8]>,
    safe_method: bool,
    peer_ip: Option<std::net::IpAddr>,
    authority: Option<&'a str>,
}

impl<'a> RequestHead<'a> {
    /// A head from a header lookup (all values of a lowercase header name),
    /// whether the method is safe, and the peer address if known.
    pub fn new(
        headers: &'a dyn Fn(&str) -> Vec<&'a [u8]>,
        safe_method: bool,
        peer_ip: Option<std::net::IpAddr>,
    ) -> Self {
        Self {
            headers,
            safe_method,
            peer_ip,
            authority: None,
        }
    }

    /// The authority of the request target (`host[:port]` of an absolute
    /// URI, HTTP/2's `:authority`), used when there is no `Host` header.
    #[must_use]
    pub fn with_authority(mut self, authority: Option<&'a str>) -> Self {
        self.authority = authority;
        self
    }

    /// The host the request was sent to: the `Host` header, else the
    /// target's authority.
    pub fn host(&self) -> Option<String> {
        self.header("host")
            .or_else(|| self.authority.map(str::to_owned))
    }

    /// The first value of a header, lossily decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        (self.headers)(name)
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The TCP peer's address, when the server provides it. Behind a proxy
    /// this is the proxy: derive the client address in your own extractor.
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer_ip
    }
}

/// The framework-neutral part of every adapter: settings plus the
/// begin/finish steps around a request. The tower layer and the actix-web
/// middleware both wrap one.
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
    context: ContextExtractor,
}

impl std::fmt::Debug for SessionExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionExchange")
            .field("transport", &self.inner.transport)
            .field("require", &self.inner.require)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// The default context: the `User-Agent` and `x-device-id` headers and
/// the peer IP address.
pub fn default_context(head: &RequestHead<'_>) -> SessionContext {
    SessionContext {
        ip: head.peer_ip(),
        user_agent: head.header("user-agent"),
        device_id: head.header("x-device-id"),
        location: None,
    }
}

impl SessionExchange {
    /// Cookie transport, optional sessions, JSON rejections, prefix
    /// `/session`.
    pub fn new(manager: SessionManager) -> Self {
        Self {
            inner: Arc::new(ExchangeInner {
                manager,
                transport: TokenTransport::default(),
                require: false,
                format: Arc::new(JsonRejection),
                prefix: "/session".into(),
                context: default_context,
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
    /// The shape of rejection bodies (default: [`JsonRejection`]).
    #[must_use]
    pub fn rejection_format(self, format: impl RejectionFormat) -> Self {
        self.edit(|i| i.format = Arc::new(format))
    }
    /// The prefix of the session routes (default `/session`).
    #[must_use]
    pub fn route_prefix(self, prefix: impl Into<String>) -> Self {
        self.edit(|i| i.prefix = prefix.into())
    }
    /// How the request context is derived (default: [`default_context`]).
    #[must_use]
    pub fn context_from(self, extractor: ContextExtractor) -> Self {
        self.edit(|i| i.context = extractor)
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
    pub(crate) fn format(&self) -> &dyn RejectionFormat {
        &*self.inner.format
    }

    /// The token and request facts of a request head.
    pub fn inspect(&self, head: &RequestHead<'_>) -> (Option<String>, RequestInfo) {
        let token = self
            .inner
            .transport
            .read((head.headers)(self.inner.transport.request_header()));
        let info = RequestInfo {
            safe_method: head.safe_method,
            context: Some((self.inner.context)(head)),
        };
        (token, info)
    }

    /// Whether a request may go on, by the site that sent it: requests
    /// with unsafe methods from other sites are refused with 403
    /// `cross_site_request` (see [`CsrfPolicy`](crate::CsrfPolicy)). The
    /// adapters call this before looking at the session.
    pub fn check_origin(&self, head: &RequestHead<'_>) -> Result<(), Rejection> {
        origin::check(&self.inner.manager.config().csrf, head)
    }

    /// [`inspect`](Self::inspect) for an `http` request head, after
    /// [`check_origin`](Self::check_origin).
    pub fn inspect_parts(
        &self,
        parts: &http::request::Parts,
    ) -> Result<(Option<String>, RequestInfo), Rejection> {
        let headers = |name: &str| -> Vec<&[u8]> {
            parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes())
                .collect()
        };
        let head = RequestHead::new(&headers, parts.method.is_safe(), peer_ip(parts))
            .with_authority(parts.uri.authority().map(|a| a.as_str()));
        self.check_origin(&head)?;
        Ok(self.inspect(&head))
    }
}

#[cfg(feature = "axum")]
fn peer_ip(parts: &http::request::Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<::axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

#[cfg(not(feature = "axum"))]
fn peer_ip(_: &http::request::Parts) -> Option<std::net::IpAddr> {
    None
}
