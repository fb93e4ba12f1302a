//! In-process overhead of a session layer on an axum `Router`
//! (`ServiceExt::oneshot`, no network, no HTTP parsing), each doing the same
//! work per request: load the session, read one value, write it back
//! changed, send the cookie. The overhead is each layered router minus the
//! bare router, all in one group of one run (docs/benchmarks.md,
//! "In-process overhead").
//!
//! ```text
//! cargo bench --bench overhead
//! ```
//!
//! - `bare`: the router with a handler that answers a constant;
//! - `rolling_session/read_write`: `Session::get` + `insert` of a counter
//!   (the token rolls and the data is written: two store operations);
//! - `rolling_session/read_only`: `Session::get` only (the token rolls);
//! - `tower_sessions/read_write`: tower-sessions 0.15 with its
//!   `MemoryStore`, `get` + `insert` of a counter (load, save, `Set-Cookie`).

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, header};
use rolling_session::http::{CookieConfig, Rejection};
use rolling_session::{Session, SessionLayer, SessionManager, TokenKey};
use tower::ServiceExt;

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

/// `/` reads and writes the counter, `/read` only reads it.
fn rolling_router() -> Router {
    let manager = SessionManager::builder(TokenKey::new(1, b"0123456789abcdefghijklmnopqrstuv"))
        .build()
        .unwrap();
    let layer = SessionLayer::new(manager).cookie(CookieConfig::development(COOKIE).unwrap());
    Router::new()
        .route("/", get(rolling_read_write))
        .route("/read", get(rolling_read_only))
        .layer(layer)
}

/// Drives `iters` requests of one client through `router`, each sending the
/// cookie the previous response set (the jar of a browser).
async fn run(router: &Router, path: &str, jar: &mut String, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let res = router.clone().oneshot(request(path, jar)).await.unwrap();
        if let Some(c) = set_cookie(&res) {
            *jar = c;
        }
        std::hint::black_box(res);
    }
    start.elapsed()
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("in_process_overhead");

    let bare: Router = Router::new().route("/", get(|| async { "0" }));
    let mut jar = String::from("x=1");
    g.bench_function("bare", |b| {
        b.iter_custom(|iters| rt.block_on(run(&bare, "/", &mut jar, iters)))
    });

    let router = rolling_router();
    let mut jar = String::from("x=1");
    // The first write creates the (anonymous) session and its data.
    rt.block_on(run(&router, "/", &mut jar, 1));
    g.bench_function("rolling_session/read_write", |b| {
        b.iter_custom(|iters| rt.block_on(run(&router, "/", &mut jar, iters)))
    });
    g.bench_function("rolling_session/read_only", |b| {
        b.iter_custom(|iters| rt.block_on(run(&router, "/read", &mut jar, iters)))
    });

    let store = tower_sessions::MemoryStore::default();
    let layer = tower_sessions::SessionManagerLayer::new(store).with_secure(false);
    let router: Router = Router::new().route("/", get(tower_read_write)).layer(layer);
    let mut jar = String::from("x=1");
    rt.block_on(run(&router, "/", &mut jar, 1));
    g.bench_function("tower_sessions/read_write", |b| {
        b.iter_custom(|iters| rt.block_on(run(&router, "/", &mut jar, iters)))
    });
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
