//! axum 0.8 adapter: extractors, the session routes as a router, and
//! rejections as responses. Conversions only; the logic lives in
//! [`crate::http`].
//!
//! ```
//! use axum::{Router, routing::get};
//! use rolling_session::http::SessionLayer;
//! use rolling_session::{KeyRing, SessionInfo, SessionManager, TokenKey};
//!
//! async fn me(session: SessionInfo) -> String {
//!     session.user_id().to_owned()
//! }
//!
//! let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build().unwrap();
//! let layer = SessionLayer::new(manager);
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .merge(rolling_session::axum::routes(layer.exchange()))
//!     .layer(layer);
//! ```
#![cfg(feature = "axum")]
#![cfg_attr(docsrs, doc(cfg(feature = "axum")))]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use crate::http::ROUTE_BODY_LIMIT;
use crate::http::{Rejection, RouteResponse, Session, SessionExchange, SessionRoute};
use crate::manager::SessionInfo;

/// JSON, and the rejection itself in the response extensions: behind the
/// [`SessionLayer`](crate::http::SessionLayer) the body is rendered again
/// in the layer's [`RejectionFormat`](crate::http::RejectionFormat), so
/// extractors, handlers and the layer all answer in one format.
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut res = route_response(RouteResponse::rejection_json(&self));
        res.extensions_mut().insert(self);
        res
    }
}

/// A session error answers as its [`Rejection`] (rendered again in the
/// layer's format): handlers may return `Result<_, rolling_session::Error>`.
impl IntoResponse for crate::Error {
    fn into_response(self) -> Response {
        Rejection::from(self).into_response()
    }
}

/// A data error answers as its [`Rejection`] (413, 500, or the session's
/// own refusal).
impl IntoResponse for crate::http::DataError {
    fn into_response(self) -> Response {
        Rejection::from(self).into_response()
    }
}

/// The peer address axum records with
/// `into_make_service_with_connect_info::<SocketAddr>()`, for the tower
/// layer's [`RequestHead`](crate::http::RequestHead).
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

fn route_response(answer: RouteResponse) -> Response {
    let mut res = Response::builder()
        .status(answer.status)
        .header(axum::http::header::CONTENT_TYPE, answer.content_type);
    if let Some(seconds) = answer.retry_after {
        res = res.header(axum::http::header::RETRY_AFTER, seconds);
    }
    res.body(Body::from(answer.body))
        .unwrap_or_else(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn handle_of(parts: &Parts) -> Result<Session, Rejection> {
    parts.extensions.get::<Session>().cloned().ok_or_else(|| {
        Rejection::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "session_layer_missing",
            "the route is not behind rolling_session::http::SessionLayer".into(),
        )
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
        handle_of(parts)
    }
}

/// A logged-in user's session, or a 401 with the reason there is none
/// (an anonymous visitor's session answers `login_required`).
impl<S: Send + Sync> FromRequestParts<S> for SessionInfo {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Rejection> {
        Ok(handle_of(parts)?.user()?)
    }
}

/// `Option<SessionInfo>`: `None` without a logged-in user's session.
impl<S: Send + Sync> OptionalFromRequestParts<S> for SessionInfo {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Rejection> {
        Ok(handle_of(parts)?.user().ok())
    }
}

/// The session routes (`status`, `refresh`, `refresh/confirm`,
/// `client.js`) under the exchange's prefix, for merging into your router
/// behind the [`SessionLayer`](crate::http::SessionLayer).
pub fn routes<S: Clone + Send + Sync + 'static>(exchange: &SessionExchange) -> Router<S> {
    let mut router = Router::new();
    for (method, path, route) in SessionRoute::ALL {
        let exchange = exchange.clone();
        let filter = MethodFilter::try_from(method).unwrap_or(MethodFilter::GET);
        router = router.route(
            &format!("{}{path}", exchange.prefix()),
            on(
                filter,
                move |handle: Session, headers: HeaderMap, body: Bytes| async move {
                    let content_type = headers.get(CONTENT_TYPE).map(|v| v.as_bytes());
                    route_response(exchange.respond(route, &handle, content_type, &body).await)
                },
            ),
        );
    }
    // Telemetry reports are tiny; refuse large bodies before buffering them.
    router.layer(DefaultBodyLimit::max(ROUTE_BODY_LIMIT))
}
