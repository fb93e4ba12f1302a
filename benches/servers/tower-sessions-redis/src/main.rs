//! Bench server: axum + tower-sessions on Redis (tower-sessions-redis-store,
//! one multiplexed fred client to `REDIS_URL`, default
//! `redis://127.0.0.1:6390`). Same per-request work as
//! `benches/servers/axum_tower_sessions_memory.rs`: load the session, read
//! the user and a counter, write the counter back (a Redis `SET` per
//! request), send the cookie again.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::{get, post};
use tower_sessions::{Session, SessionManagerLayer};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config};

fn next_user() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("user-{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn login(session: Session) -> &'static str {
    session.insert("user", next_user()).await.unwrap();
    session.insert("n", 0u64).await.unwrap();
    "welcome"
}

async fn hello(session: Session) -> String {
    let user: String = session.get("user").await.unwrap().unwrap_or_default();
    let n: u64 = session.get("n").await.unwrap().unwrap_or(0);
    session.insert("n", n + 1).await.unwrap();
    format!("hello {user}")
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8088".into());
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390".into());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = tower_sessions_redis_store::fred::prelude::Client::new(
                Config::from_url(&url).unwrap(),
                None,
                None,
                None,
            );
            client.init().await.expect("redis-server reachable");
            let layer = SessionManagerLayer::new(RedisStore::new(client))
                .with_name("ts_session")
                .with_secure(false);
            let app = Router::new()
                .route("/", get(hello))
                .route("/login", post(login))
                .layer(layer);
            let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
            axum::serve(listener, app).await.unwrap();
        });
}
