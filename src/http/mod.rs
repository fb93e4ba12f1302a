//! HTTP integration: the tower [`SessionLayer`], the token transport, the
//! session routes and rejections.
//!
//! The request path reads top to bottom in one module, `exchange`:
//! [`SessionExchange::inspect`] reads the token and the context (and
//! refuses cross-site requests) → [`SessionExchange::begin`] verifies and
//! advances the token through the manager → [`SessionExchange::gate`]
//! answers requests without a session when one is required → the handler
//! finds a [`Session`] in the request extensions →
//! [`SessionExchange::finish`] writes the next token onto the response.
//! The tower layer here and the actix-web middleware only convert types
//! around those steps.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use rolling_session::http::{Session, SessionLayer};
//! use rolling_session::{KeyRing, SessionManager, TokenKey};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
//! let app = ServiceBuilder::new()
//!     .layer(SessionLayer::new(manager))
//!     .service_fn(|req: Request<String>| async move {
//!         let handle = req.extensions().get::<Session>().unwrap().clone();
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
//! - Behind a proxy, tell the [`DefaultContext`] which proxies to trust
//!   (`X-Forwarded-For` is read only from them), or set your own
//!   [`MakeContext`] with [`SessionLayer::context_from`].

mod exchange;
mod future;
mod guard;
mod handle;
mod head;
mod layer;
mod origin;
mod rejection;
mod report;
mod routes;
mod transport;

pub use exchange::{Inspected, SessionExchange};
pub use future::ResponseFuture;
pub use guard::{GuardFuture, RequireLogin, RequireLoginService};
pub use handle::{DataError, Session, SessionValue};
pub use head::{DefaultContext, MakeContext, RequestHead};
pub use layer::{SessionLayer, SessionService};
pub use origin::Origin;
pub use rejection::{JsonRejection, Rejection, RejectionFormat};
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) use routes::ROUTE_BODY_LIMIT;
pub use routes::{CLIENT_JS, RouteResponse, SessionRoute};
pub use transport::{
    CookieConfig, CookieError, EXPIRES_IN_HEADER, IDLE_EXPIRES_IN_HEADER, TokenTransport,
};
