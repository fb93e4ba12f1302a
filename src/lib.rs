//! # rolling-session
//!
//! Sessions that cannot be silently stolen. The credential rolls on every
//! request: each token is a keyed hash of the session and its request
//! counter, the server keeps the counter, and a token used out of sequence
//! reveals that the credential was copied, so the session is revoked.
//!
//! ## Quick start (axum)
//!
//! Put a [`SessionLayer`] around your router. The [`Session`] extractor
//! holds the request's session: its data (`get`, `insert`, ...), `login`,
//! `logout`; [`SessionInfo`] is a logged-in user's session (401 with the
//! reason otherwise), and [`RequireLogin`](http::RequireLogin) guards whole
//! routes. The test below drives the app in process:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, extract::Path, routing::{get, post}};
//! use rolling_session::http::{Rejection, RequireLogin};
//! use rolling_session::{Session, SessionInfo, SessionLayer, SessionManager, TokenKey};
//!
//! async fn add(session: Session, Path(item): Path<String>) -> Result<String, Rejection> {
//!     // The first write gives a visitor an anonymous session.
//!     let mut cart: Vec<String> = session.get("cart")?.unwrap_or_default();
//!     cart.push(item);
//!     session.insert("cart", &cart)?;
//!     Ok(format!("{} items", cart.len()))
//! }
//!
//! async fn login(session: Session) -> Result<&'static str, Rejection> {
//!     // ...check the password first, then (a fresh id; the cart comes along):
//!     session.login("alice").await?;
//!     Ok("welcome")
//! }
//!
//! async fn me(session: SessionInfo) -> String {
//!     session.user_id().to_owned()
//! }
//!
//! # fn key() -> TokenKey { TokenKey::generate(1) }
//! // In production: TokenKey::from_env(1, "SESSION_TOKEN_KEY")?, the same
//! // key on every node (`cargo run --example keygen` makes one).
//! let layer = SessionLayer::new(SessionManager::builder(key()).build()?);
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route_layer(RequireLogin::new().login_url("/login"))
//!     .route("/cart/{item}", post(add))
//!     .route("/login", post(login))
//!     // /session/status, /session/refresh, /session/logout, the JS client...
//!     .merge(rolling_session::axum::routes(layer.exchange()))
//!     .layer(layer);
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! use axum::http::{Request, StatusCode, header};
//! use tower::ServiceExt;
//! let me = Request::get("/me").body(axum::body::Body::empty())?;
//! assert_eq!(app.clone().oneshot(me).await?.status(), StatusCode::UNAUTHORIZED);
//! let add = Request::post("/cart/apple").body(axum::body::Body::empty())?;
//! let res = app.clone().oneshot(add).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert!(res.headers().contains_key(header::SET_COOKIE)); // the anonymous session
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The cookie is `__Host-session` (`Secure`, `HttpOnly`, `SameSite=Lax`);
//! over plain `http://localhost` use
//! [`CookieConfig::development`](http::CookieConfig::development). The
//! actix-web adapter is in [`actix`] (feature `actix`), the Redis store in
//! [`store`] (feature `redis`).
//!
//! ## What it catches
//!
//! The same manager, driven directly: a copied token replayed after the
//! user moved on is theft.
//!
//! ```
//! use rolling_session::{ErrorKind, KeyRing, clock::ManualClock, SessionContext, SessionManager, TokenKey};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock = ManualClock::new(1_700_000_000_000);
//! let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
//!     .clock(clock.clone())
//!     .build()?;
//!
//! let login = manager.create_session("alice", SessionContext::default()).await?;
//! let stolen = login.token.clone(); // a script copies the cookie
//!
//! // The user goes on browsing: every response carries the next token.
//! let step = manager.validate_session(login.token.expose()).await?;
//! let token = step.next_token.unwrap();
//! manager.validate_session(token.expose()).await?;
//!
//! // Later the thief replays the copy: out of sequence, so theft.
//! clock.advance(Duration::from_secs(60));
//! let err = manager.validate_session(stolen.expose()).await.unwrap_err();
//! assert_eq!(err.kind(), &ErrorKind::TokenReused);
//! assert_eq!(err.reason(), "token_reused");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Lost, late and reordered responses, parallel requests and long pauses
//! are never mistaken for theft: the rule and its proof are in
//! [docs/protocol.md][protocol].
//!
//! ## Features
//!
//! | feature     | default | what it adds                                           |
//! |-------------|---------|--------------------------------------------------------|
//! | `axum`      | yes     | axum 0.8 extractors and the session routes as a router |
//! | `drift`     | yes     | the drift predictor behind `POST {prefix}/telemetry`   |
//! | `actix`     | no      | actix-web 4 middleware, extractor and routes           |
//! | `redis`     | no      | `RedisStore` for Redis and Redis Cluster               |
//! | `test-util` | no      | the store conformance suite for your own stores        |
//!
//! **Without the `axum` feature** the extractors do not exist, and a handler
//! taking [`SessionInfo`] or [`Session`] fails to
//! compile with rustc's opaque "the trait bound `fn(..) {..}: Handler<_, _>`
//! is not satisfied". Turn the feature back on (it is a default one:
//! `default-features = false` removes it).
//!
//! Without `drift` the crate builds without `statrs` and `rand`; the
//! telemetry route answers `404` with `{"error":"drift_disabled"}` (the
//! browser client then stops reporting) and the grace window is the
//! configured `token.grace_window` (`docs/drift.md`).
//!
//! ## Where the design lives
//!
//! The repository's `docs/` folder is the reference: [protocol], [security],
//! [configuration], [HTTP surface][http-doc], [Redis][redis-doc],
//! [drift predictor][drift-doc], [benchmarks].
//!
//! [protocol]: https://github.com/rolling-session/rolling-session/blob/main/docs/protocol.md
//! [security]: https://github.com/rolling-session/rolling-session/blob/main/docs/security.md
//! [configuration]: https://github.com/rolling-session/rolling-session/blob/main/docs/configuration.md
//! [http-doc]: https://github.com/rolling-session/rolling-session/blob/main/docs/http.md
//! [redis-doc]: https://github.com/rolling-session/rolling-session/blob/main/docs/redis.md
//! [drift-doc]: https://github.com/rolling-session/rolling-session/blob/main/docs/drift.md
//! [benchmarks]: https://github.com/rolling-session/rolling-session/blob/main/docs/benchmarks.md
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
mod admission;
#[cfg(feature = "axum")]
pub mod axum;
pub mod clock;
pub mod config;
mod data;
#[cfg(feature = "drift")]
#[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
pub mod drift;
mod error;
pub mod events;
pub mod http;
pub mod manager;
mod random;
mod record;
mod secret;
pub mod store;
mod telemetry;
pub mod token;

// What an application names: the layer and the extractors, the manager and
// its configuration, keys, errors. Everything else lives in its module:
// `config` (the policies), `events`, `clock`, `manager` (the values it
// hands out), `token`, `store` (and what store implementers need), `http`.
pub use config::{Config, ConfigError};
pub use error::{Error, ErrorKind};
pub use http::{Session, SessionLayer};
pub use manager::{LoginOptions, SessionInfo, SessionManager, SessionManagerBuilder};
pub use record::SessionContext;
pub use secret::KeyError;
pub use store::{MemoryStore, SessionStore};
pub use token::{KeyRing, TokenKey};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
