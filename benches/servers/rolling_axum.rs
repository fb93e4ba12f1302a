//! The axum app the rolling-session axum bench servers serve; they differ
//! in the store and in whether `GET /` uses session data. `POST /login`
//! creates a session; `GET /` requires it (the `SessionInfo` extractor)
//! and the layer rotates the token on every request; with data, it also
//! reads a counter and writes it back (the work the tower-sessions server
//! does).

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

async fn hello_data(session: SessionInfo, handle: Session) -> Result<String, Rejection> {
    let n: u64 = handle.get("n")?.unwrap_or(0);
    handle.insert("n", &(n + 1))?;
    Ok(format!("hello {}", session.user_id()))
}

/// Serves the app on `addr` with sessions in `store` until the process
/// ends; `data`: `GET /` reads and writes a session value.
pub async fn serve(addr: &str, store: impl SessionStore, data: bool) {
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
        .route("/", if data { get(hello_data) } else { get(hello) })
        .route("/login", post(login))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
