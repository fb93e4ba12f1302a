//! Two app nodes sharing one Redis behave as one server: a token minted on
//! one node rolls on the other, and a token spent on one node and replayed
//! on the other is served without a new token within the grace (a request
//! that was in flight) and caught as theft after it. A session is one
//! Redis hash per lineage, so a renewed or elevated session is found by
//! either node from any of its ids.
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run --example redis_nodes --features redis
//! REDIS_URL=redis://127.0.0.1:6380 NODE_A=127.0.0.1:4001 NODE_B=127.0.0.1:4002 \
//!     cargo run --example redis_nodes --features redis
//! ```
//!
//! Both nodes run in this one process for convenience, each with its own
//! `SessionManager` and its own Redis connection, exactly as two processes
//! (or two machines) would. What they must share is the token key bytes
//! (`NODE_TOKEN_KEY`, 64 hex digits; a development key otherwise) and the
//! Redis. `tests/store_redis_nodes.rs` builds its nodes with the functions
//! of this file.
//!
//! DEVELOPMENT COOKIE CONFIG: plain HTTP on localhost, see examples/demo.rs.

use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use rolling_session::http::{CookieConfig, Rejection, Session, SessionLayer, TokenTransport};
use rolling_session::store::RedisStore;
use rolling_session::{
    Config, ConfigError, KeyRing, SessionInfo, SessionManager, TokenKey, clock::Clock,
    clock::SystemClock,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The session cookie's name.
pub const COOKIE: &str = "rs_session";

/// A development token key: never deploy it.
const DEV_TOKEN_KEY: [u8; 32] = *b"redis-nodes-example-dev-key-0001";

/// The session manager of one node: the shared token key bytes, the
/// shared Redis (through this node's own connection), a clock.
pub fn node_manager(
    store: RedisStore,
    token_key: &[u8; 32],
    config: Config,
    clock: impl Clock,
) -> Result<SessionManager, ConfigError> {
    SessionManager::builder(KeyRing::new(TokenKey::new(1, token_key)))
        .store(store)
        .config(config)
        .clock(clock)
        .build()
}

#[derive(Clone)]
struct Node {
    name: &'static str,
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

async fn login(
    State(node): State<Node>,
    handle: Session,
    Json(body): Json<Login>,
) -> Result<Json<Value>, Rejection> {
    let session = handle.login(body.user.trim()).await?;
    Ok(Json(
        json!({ "user": session.user_id(), "node": node.name }),
    ))
}

async fn me(State(node): State<Node>, session: SessionInfo) -> Json<Value> {
    Json(json!({ "user": session.user_id(), "node": node.name }))
}

/// Reads the session's data: no store call of its own.
async fn visits(session: Session) -> Result<Json<Value>, Rejection> {
    let visits: u64 = session.get("visits")?.unwrap_or(0);
    Ok(Json(json!({ "visits": visits })))
}

/// Writes it: one more store call, when the response leaves.
async fn visit(session: Session) -> Result<Json<Value>, Rejection> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", &visits)?;
    Ok(Json(json!({ "visits": visits })))
}

/// The session's usage statistics: from the request's own validation,
/// no store call of its own.
async fn analytics(handle: Session) -> Result<Json<Value>, Rejection> {
    let stats = handle.analytics().await?;
    Ok(Json(json!({ "request_count": stats.request_count })))
}

async fn logout(handle: Session) -> Result<Json<Value>, Rejection> {
    handle.logout().await?;
    Ok(Json(json!({ "ok": true })))
}

/// The routes of one node (`POST /login`, `GET /me`, `POST /logout` and
/// the `/session` routes) behind its `SessionLayer`.
pub fn node_app(name: &'static str, manager: SessionManager) -> Router {
    // DEVELOPMENT COOKIE CONFIG (plain HTTP on localhost), see the file docs.
    let layer = SessionLayer::new(manager).transport(TokenTransport::Cookie(
        CookieConfig::development(COOKIE).expect("a valid cookie name"),
    ));
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/visits", get(visits).post(visit))
        .route("/analytics", get(analytics))
        .with_state(Node { name })
        .merge(rolling_session::axum::routes(layer.exchange()))
        .layer(layer)
}

fn token_key() -> Result<[u8; 32], Box<dyn std::error::Error>> {
    let Ok(hex) = std::env::var("NODE_TOKEN_KEY") else {
        eprintln!("NODE_TOKEN_KEY is not set: using the development key");
        return Ok(DEV_TOKEN_KEY);
    };
    let mut key = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        return Err("NODE_TOKEN_KEY must be 64 hex digits".into());
    }
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(key)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let key = token_key()?;
    let nodes = [
        (
            "a",
            std::env::var("NODE_A").unwrap_or_else(|_| "127.0.0.1:3001".into()),
        ),
        (
            "b",
            std::env::var("NODE_B").unwrap_or_else(|_| "127.0.0.1:3002".into()),
        ),
    ];
    for (name, addr) in nodes {
        // Lazy: a node starts even while Redis is down, answers 503
        // store_unavailable meanwhile, and serves as soon as it is back.
        let store = RedisStore::builder()
            .timeout(Duration::from_millis(500))
            .connect_lazy(&url)?;
        let app = node_app(
            name,
            node_manager(store, &key, Config::default(), SystemClock)?,
        );
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("node {name}: http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    println!(
        "try: curl -c jar -b jar -H 'content-type: application/json' -d '{{\"user\":\"alice\"}}' \
         http://127.0.0.1:3001/login; curl -c jar -b jar http://127.0.0.1:3002/me"
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
