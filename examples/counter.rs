//! tower-sessions' `examples/counter.rs`, ported (docs/migrating.md).
//!
//! ```text
//! cargo run --example counter    # http://127.0.0.1:3000, or DEMO_ADDR=...
//! ```
//!
//! Over plain HTTP on localhost only: `CookieConfig::development` drops the
//! `__Host-` prefix and `Secure`. Do not copy it into a deployment.

use std::time::Duration;

use axum::{Router, routing::get};
use rolling_session::http::{CookieConfig, Rejection, TokenTransport};
use rolling_session::{Config, KeyRing, Session, SessionLayer, SessionManager, TokenKey};

const COUNTER_KEY: &str = "counter";

async fn handler(session: Session) -> Result<String, Rejection> {
    let counter: usize = session.get(COUNTER_KEY)?.unwrap_or_default();
    session.insert(COUNTER_KEY, &(counter + 1))?;
    Ok(format!("Current count: {counter}"))
}

/// The example's router, with a fresh key and an in-memory store.
pub fn app() -> Router {
    let config = Config {
        idle_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let key = KeyRing::new(TokenKey::generate(1));
    let manager = SessionManager::builder(key).config(config).build().unwrap();
    let cookie = CookieConfig::development("session").unwrap();
    let layer = SessionLayer::new(manager).transport(TokenTransport::Cookie(cookie));
    Router::new().route("/", get(handler)).layer(layer)
}

#[tokio::main]
async fn main() {
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app()).await.unwrap();
}
