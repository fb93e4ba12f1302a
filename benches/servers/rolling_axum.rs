//! The axum app both rolling-session axum bench servers serve; they differ
//! only in the store. `POST /login` creates a session; `GET /` requires it
//! (the `SessionInfo` extractor) and the layer rotates the token on every
//! request.

use axum::Router;
use axum::routing::{get, post};
use rolling_session::http::{CookieConfig, Rejection, Session, SessionLayer, TokenTransport};
use rolling_session::{KeyRing, SessionInfo, SessionManager, SessionStore, TokenKey};

async fn login(handle: Session) -> Result<&'static str, Rejection> {
    handle.login(super::common::next_user()).await?;
    Ok("welcome")
}

async fn hello(session: SessionInfo) -> String {
    format!("hello {}", session.user_id())
}

/// Serves the app on `addr` with sessions in `store` until the process ends.
pub async fn serve(addr: &str, store: impl SessionStore) {
    let manager = SessionManager::builder(KeyRing::new(TokenKey::new(
        1,
        b"0123456789abcdefghijklmnopqrstuv",
    )))
    .store(store)
    .build()
    .unwrap();
    // Plain HTTP on loopback: the development cookie (no `Secure`).
    let layer = SessionLayer::new(manager).transport(TokenTransport::Cookie(
        CookieConfig::development("rs_session").expect("a valid cookie name"),
    ));
    let app = Router::new()
        .route("/", get(hello))
        .route("/login", post(login))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
