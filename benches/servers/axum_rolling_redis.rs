//! Bench server: axum + rolling-session on the `RedisStore`
//! (`REDIS_URL`, default `redis://127.0.0.1:6390`). Same routes as
//! `axum_rolling_memory`.

#[path = "common.rs"]
mod common;

use axum::Router;
use axum::routing::{get, post};
use rolling_session::http::{CookieConfig, Rejection, SessionHandle, SessionLayer, TokenTransport};
use rolling_session::store::RedisStore;
use rolling_session::{KeyRing, Session, SessionManager, TokenKey};

async fn login(handle: SessionHandle) -> Result<&'static str, Rejection> {
    handle.login(common::next_user()).await?;
    Ok("welcome")
}

async fn hello(session: Session) -> String {
    format!("hello {}", session.user_id())
}

fn main() {
    let Some(addr) = common::addr() else { return };
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390".into());
    common::runtime().block_on(async {
        let store = RedisStore::connect(&url)
            .await
            .expect("redis-server reachable");
        let manager = SessionManager::builder(KeyRing::new(TokenKey::new(1, &[7; 32])))
            .store(store)
            .build()
            .unwrap();
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
