//! Bench server: axum + rolling-session on the `MemoryStore`.
//! `POST /login` creates a session; `GET /` requires it (the `Session`
//! extractor) and the layer rotates the token on every request.

#[path = "common.rs"]
mod common;

use axum::Router;
use axum::routing::{get, post};
use rolling_session::http::{CookieConfig, Rejection, SessionHandle, SessionLayer, TokenTransport};
use rolling_session::{KeyRing, MemoryStore, Session, SessionManager, TokenKey};

async fn login(handle: SessionHandle) -> Result<&'static str, Rejection> {
    handle.login(common::next_user()).await?;
    Ok("welcome")
}

async fn hello(session: Session) -> String {
    format!("hello {}", session.user_id())
}

fn main() {
    let Some(addr) = common::addr() else { return };
    common::runtime().block_on(async {
        let manager = SessionManager::builder(KeyRing::new(TokenKey::new(1, &[7; 32])))
            .store(MemoryStore::new())
            .build()
            .unwrap();
        // Plain HTTP on loopback: the development cookie (no `Secure`).
        let layer = SessionLayer::new(manager).transport(TokenTransport::Cookie(
            CookieConfig::development("rs_session"),
        ));
        let app = Router::new()
            .route("/", get(hello))
            .route("/login", post(login))
            .layer(layer);
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}
