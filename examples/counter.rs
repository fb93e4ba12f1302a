//! tower-sessions' `examples/counter.rs`, ported (docs/migrating.md).
//!
//! ```text
//! cargo run --example counter    # http://127.0.0.1:3000
//! ```
//!
//! Over plain HTTP on localhost only: `CookieConfig::development` drops the
//! `__Host-` prefix and `Secure`. Do not copy it into a deployment.

use std::time::Duration;

use axum::{Router, routing::get};
use rolling_session::http::{CookieConfig, Rejection};
use rolling_session::{Config, Session, SessionLayer, SessionManager, TokenKey};

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
    let key = TokenKey::generate(1);
    let manager = SessionManager::builder(key).config(config).build().unwrap();
    let layer = SessionLayer::new(manager).cookie(CookieConfig::development("session").unwrap());
    Router::new().route("/", get(handler)).layer(layer)
}

#[tokio::main]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000");
    axum::serve(listener.await.unwrap(), app()).await.unwrap();
}
