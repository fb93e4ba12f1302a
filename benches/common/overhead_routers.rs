//! The routers of the in-process overhead benchmarks (`benches/overhead.rs`
//! for time, `benches/overhead_instructions.rs` for instruction counts),
//! so both measure the same thing: each answers `/` after the same work
//! (load the session, read one value, write it back changed, send the
//! cookie); `/read` only reads.

// Each bench that includes this file uses some of the routers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, Response, header};
use rolling_session::http::{CookieConfig, Rejection};
use rolling_session::{Session, SessionLayer, SessionManager, TokenKey};
use tower::ServiceExt;

#[path = "floor_layer.rs"]
mod floor;

const COOKIE: &str = "rs_session";

fn request(path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

/// The `name=value` of the response's `Set-Cookie`, if any.
fn set_cookie<B>(res: &Response<B>) -> Option<String> {
    let v = res.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    Some(v.split(';').next()?.to_owned())
}

async fn rolling_read_write(session: Session) -> Result<String, Rejection> {
    let n: u64 = session.get("n")?.unwrap_or_default();
    session.insert("n", &(n + 1))?;
    Ok(format!("{n}"))
}

async fn rolling_read_only(session: Session) -> Result<String, Rejection> {
    let n: u64 = session.get("n")?.unwrap_or_default();
    Ok(format!("{n}"))
}

async fn tower_read_write(session: tower_sessions::Session) -> String {
    let n: u64 = session.get("n").await.unwrap().unwrap_or_default();
    session.insert("n", n + 1).await.unwrap();
    format!("{n}")
}

async fn floor_read_write(session: floor::FloorSession) -> String {
    let n: u64 = session.get("n").unwrap_or_default();
    session.insert("n", &(n + 1));
    format!("{n}")
}

async fn floor_read_only(session: floor::FloorSession) -> String {
    let n: u64 = session.get("n").unwrap_or_default();
    format!("{n}")
}

/// Every router is made ready to serve the way `axum::serve` makes it
/// (`Router::into_make_service` calls `with_state(())`, which turns each
/// route into a service once): called as a bare `Router`, axum would
/// otherwise rebuild a layered route's service on every request (four
/// allocations more), work no served application does.
fn served(router: Router) -> Router {
    router.with_state(())
}

/// The router without a session layer: a constant answer.
pub fn bare_router() -> Router {
    served(Router::new().route("/", get(|| async { "0" })))
}

/// rolling-session with its defaults (memory store): `/` reads and writes
/// the counter, `/read` only reads it.
pub fn rolling_router() -> Router {
    let manager = SessionManager::builder(TokenKey::new(1, b"0123456789abcdefghijklmnopqrstuv"))
        .build()
        .unwrap();
    let layer = SessionLayer::new(manager).cookie(CookieConfig::development(COOKIE).unwrap());
    served(
        Router::new()
            .route("/", get(rolling_read_write))
            .route("/read", get(rolling_read_only))
            .layer(layer),
    )
}

/// tower-sessions 0.15 with its `MemoryStore`: `/` reads and writes the
/// counter.
pub fn tower_sessions_router() -> Router {
    let store = tower_sessions::MemoryStore::default();
    let layer = tower_sessions::SessionManagerLayer::new(store).with_secure(false);
    served(Router::new().route("/", get(tower_read_write)).layer(layer))
}

/// The lower bound of `benches/common/floor_layer.rs` (the HTTP side of a
/// rolling cookie without its cryptography or its features), with the
/// `Cookie` header of its one session: `/` reads and writes the counter,
/// `/read` only reads it.
pub fn floor_router() -> (Router, String) {
    let (layer, jar) = floor::FloorLayer::new();
    let router = Router::new()
        .route("/", get(floor_read_write))
        .route("/read", get(floor_read_only))
        .layer(layer);
    (served(router), jar)
}

/// One client's cookie jar and the router it talks to.
pub struct Client {
    router: Router,
    jar: String,
    /// Requests sent to `/`, each of which adds one to the session's
    /// counter when served in the session.
    writes: u64,
}

impl Client {
    /// A client of `router` with an unrelated cookie; the first request to
    /// `/` (made here) creates its session.
    pub async fn new(router: Router) -> Self {
        let mut client = Self::with_jar(router, String::from("x=1"));
        client.run("/", 1).await;
        client
    }

    /// A client of `router` holding `jar` (a session made beforehand).
    pub fn with_jar(router: Router, jar: String) -> Self {
        Self {
            router,
            jar,
            writes: 0,
        }
    }

    /// Drives `iters` requests to `path`, each sending the cookie the
    /// previous response set (the jar of a browser).
    pub async fn run(&mut self, path: &str, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            let res = self
                .router
                .clone()
                .oneshot(request(path, &self.jar))
                .await
                .unwrap();
            if let Some(c) = set_cookie(&res) {
                self.jar = c;
            }
            std::hint::black_box(res);
        }
        if path == "/" {
            self.writes += iters;
        }
        start.elapsed()
    }

    /// Panics unless every request to `/` so far was served in one
    /// session: the counter it answers (before adding one) is the number
    /// of them. A refused request, or one served in a new session, would
    /// have been timed all the same; this makes it fail instead. Not for
    /// the bare router, whose answer is a constant.
    pub async fn check_served(&mut self) {
        let res = self
            .router
            .clone()
            .oneshot(request("/", &self.jar))
            .await
            .unwrap();
        assert_eq!(res.status(), http::StatusCode::OK, "refused");
        if let Some(c) = set_cookie(&res) {
            self.jar = c;
        }
        let body = axum::body::to_bytes(res.into_body(), 64).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            self.writes.to_string(),
            "requests served outside the session"
        );
        self.writes += 1;
    }
}
