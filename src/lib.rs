//! # rolling-session
//!
//! Sessions that cannot be silently stolen. The credential rolls on every
//! request: each token is a keyed hash of the session and its request
//! counter, the server keeps the counter, and a token used out of sequence
//! reveals that the credential was copied, so the session is revoked.
//!
//! ```
//! use rolling_session::{ErrorKind, KeyRing, ManualClock, SessionContext, SessionManager, TokenKey};
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
//! Without `drift` the crate builds without `statrs` and `rand`; the
//! telemetry route answers `404` with `{"error":"drift_disabled"}` (the
//! browser client then stops reporting) and the grace window is the
//! configured `token.grace_window` (`docs/drift.md`).
//!
//! The design, the token format and the security argument are in `docs/`.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;
mod clock;
mod config;
#[cfg(feature = "drift")]
#[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
pub mod drift;
mod error;
mod events;
pub mod http;
mod manager;
mod random;
mod sequence;
mod session;
pub mod store;
mod telemetry;
mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    Config, ConfigError, ContextPolicy, MismatchAction, Rotation, SessionLimitPolicy, TokenGrace,
};
pub use error::{Error, ErrorKind, StoreError, TokenError};
pub use events::{EventSink, MemorySink, SessionEvent, TerminationReason, TracingSink};
pub use manager::{
    NewSession, RequestInfo, Session, SessionAnalytics, SessionManager, SessionManagerBuilder,
    SessionStatus, Validated,
};
pub use sequence::{AdvanceRequest, Retirement, RevocationReason, Rotate, SequenceState, Verdict};
pub use session::{
    LineageKey, SessionContext, SessionFlags, SessionId, SessionMeta, SessionRecord,
};
pub use store::{MemoryStore, SessionStore};
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use token::{KeyRing, TOKEN_LEN, TOKEN_VERSION, Token, TokenKey, VerifiedToken};
