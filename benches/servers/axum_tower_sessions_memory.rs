//! Bench server: axum + tower-sessions with its `MemoryStore`, doing the
//! work rolling-session does per request: the session is loaded, one
//! value is read and written back (so the store is written every request,
//! as rolling-session's advance is), and the cookie is sent again.

#[path = "common.rs"]
mod common;

use axum::Router;
use axum::routing::{get, post};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

async fn login(session: Session) -> &'static str {
    session.insert("user", common::next_user()).await.unwrap();
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
    let Some(addr) = common::addr() else { return };
    common::runtime().block_on(async {
        let layer = SessionManagerLayer::new(MemoryStore::default())
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
