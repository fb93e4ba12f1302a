//! The tower layer and service.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::{CookieConfig, MakeContext, RejectionFormat, SessionExchange, TokenTransport};
use crate::manager::SessionManager;

/// Applies rolling sessions to every request of the wrapped service: see
/// the [module docs](super).
///
/// ```
/// use rolling_session::http::{CookieConfig, SessionLayer, TokenTransport};
/// use rolling_session::{KeyRing, SessionManager, TokenKey};
///
/// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
/// // Every route behind this layer needs a session (401 with the reason
/// // otherwise); the cookie works over plain http://localhost.
/// let layer = SessionLayer::new(manager)
///     .transport(TokenTransport::Cookie(CookieConfig::development("sid").unwrap()))
///     .require();
/// assert!(layer.exchange().is_required());
/// # Ok::<(), rolling_session::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionLayer {
    exchange: SessionExchange,
}

impl SessionLayer {
    /// A layer with the secure defaults: the `__Host-session` cookie,
    /// sessions optional (routes without one pass through), JSON
    /// rejections.
    pub fn new(manager: SessionManager) -> Self {
        Self::from_exchange(SessionExchange::new(manager))
    }

    /// A layer around an exchange you configured.
    pub fn from_exchange(exchange: SessionExchange) -> Self {
        Self { exchange }
    }

    /// Where the token travels.
    pub fn transport(self, transport: TokenTransport) -> Self {
        Self::from_exchange(self.exchange.transport(transport))
    }

    /// The token travels in this cookie: shorthand for
    /// [`transport`](Self::transport)`(TokenTransport::Cookie(cookie))`.
    pub fn cookie(self, cookie: CookieConfig) -> Self {
        self.transport(TokenTransport::Cookie(cookie))
    }

    /// Reject requests without a valid session (401 with the reason).
    pub fn require(self) -> Self {
        Self::from_exchange(self.exchange.require(true))
    }

    /// The shape of rejection bodies.
    pub fn rejection_format(self, format: impl RejectionFormat) -> Self {
        Self::from_exchange(self.exchange.rejection_format(format))
    }

    /// How the request context is derived.
    pub fn context_from(self, context: impl MakeContext) -> Self {
        Self::from_exchange(self.exchange.context_from(context))
    }

    /// Requests whose path starts with one of `prefixes` pass through
    /// untouched (static assets): see [`SessionExchange::skip_paths`].
    pub fn skip_paths<S: Into<String>>(self, prefixes: impl IntoIterator<Item = S>) -> Self {
        Self::from_exchange(self.exchange.skip_paths(prefixes))
    }

    /// The exchange (settings and manager) this layer applies.
    pub fn exchange(&self) -> &SessionExchange {
        &self.exchange
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            exchange: self.exchange.clone(),
        }
    }
}

/// The service made by [`SessionLayer`].
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    exchange: SessionExchange,
}

impl<S> SessionService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(self.exchange.clone(), inner, req)
    }
}
