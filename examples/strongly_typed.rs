//! tower-sessions' `examples/strongly-typed.rs`, ported (docs/migrating.md):
//! the typed "bucket" is a [`SessionValue`], read and written whole, so no
//! extractor of the application's own is needed.
//!
//! ```text
//! cargo run --example strongly_typed    # http://127.0.0.1:3000, or DEMO_ADDR=...
//! ```
//!
//! Over plain HTTP on localhost only: `CookieConfig::development` drops the
//! `__Host-` prefix and `Secure`. Do not copy it into a deployment.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Router, routing::get};
use rolling_session::http::{CookieConfig, Rejection, SessionValue, TokenTransport};
use rolling_session::{KeyRing, Session, SessionLayer, SessionManager, TokenKey};
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug, Deserialize, Serialize)]
pub struct GuestData {
    pub pageviews: usize,
    pub first_seen: u64,
    pub last_seen: u64,
}

impl Default for GuestData {
    fn default() -> Self {
        Self {
            pageviews: 0,
            first_seen: now(),
            last_seen: now(),
        }
    }
}

// Any number of such buckets (preferences, feature flags...) can share the
// session, each under its own key.
impl SessionValue for GuestData {
    const KEY: &'static str = "guest.data";
}

async fn handler(session: Session) -> Result<String, Rejection> {
    let mut guest: GuestData = session.value()?;
    guest.pageviews += 1;
    guest.last_seen = now();
    session.set_value(&guest)?;
    Ok(format!("{guest:?}"))
}

/// The example's router, with a fresh key and an in-memory store.
pub fn app() -> Router {
    let keys = KeyRing::new(TokenKey::generate(1));
    let manager = SessionManager::builder(keys).build().unwrap();
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
