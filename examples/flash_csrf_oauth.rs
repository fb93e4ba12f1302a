//! Three things applications keep in the session between requests, for a
//! visitor who need not be logged in: a flash message across a redirect, a
//! CSRF token checked on a form POST, and an OAuth `state` round trip (to a
//! fake provider in the same app).
//!
//! ```text
//! cargo run --example flash_csrf_oauth    # http://127.0.0.1:3000, or DEMO_ADDR=...
//! curl -c j -b j localhost:3000/             # {"csrf": "...", "flash": null}
//! curl -c j -b j -L localhost:3000/oauth/start
//! ```
//!
//! The layer already refuses cross-site state-changing requests
//! (`Sec-Fetch-Site`/`Origin`, docs/security.md); the token is the
//! classic second line, for clients that send neither header. Bodies are
//! JSON because the crate builds axum without its `form` feature; with it,
//! `Form<Comment>` takes the place of `Json<Comment>`. Over plain HTTP on
//! localhost only: `CookieConfig::development` drops the `__Host-` prefix
//! and `Secure`. Do not copy it into a deployment.

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rolling_session::http::{CookieConfig, Rejection, TokenTransport};
use rolling_session::{KeyRing, Session, SessionLayer, SessionManager, TokenKey};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

const FLASH: &str = "flash";
const CSRF: &str = "csrf";
const OAUTH_STATE: &str = "oauth_state";

/// 32 random bytes from a CSPRNG, as hex.
fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn refuse(status: StatusCode, reason: &'static str) -> Rejection {
    Rejection::new(status, reason, reason.replace('_', " "))
}

/// The page: shows the flash message once (read and removed), and the
/// form's CSRF token (made at the first visit, kept for the session).
async fn page(session: Session) -> Result<Json<Value>, Rejection> {
    let flash: Option<String> = session.remove(FLASH);
    let csrf = match session.get::<String>(CSRF)? {
        Some(token) => token,
        None => {
            let token = random_hex();
            session.insert(CSRF, &token)?;
            token
        }
    };
    Ok(Json(json!({ "flash": flash, "csrf": csrf })))
}

#[derive(Deserialize)]
struct Comment {
    csrf: String,
    text: String,
}

/// A form POST: refused without the session's CSRF token; otherwise it
/// leaves a flash message and redirects to the page (post/redirect/get).
async fn comment(session: Session, Json(form): Json<Comment>) -> Result<Response, Rejection> {
    let expected: Option<String> = session.get(CSRF)?;
    let valid = expected.is_some_and(|t| t.as_bytes().ct_eq(form.csrf.as_bytes()).into());
    if !valid {
        return Err(refuse(StatusCode::FORBIDDEN, "csrf_token_mismatch"));
    }
    session.insert(FLASH, &format!("comment saved: {}", form.text))?;
    Ok(Redirect::to("/").into_response())
}

/// `name`'s value in a query string. The values read here are hex, so
/// they need no percent-decoding.
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Starts an OAuth login: a fresh `state` in the session, then off to the
/// provider.
async fn oauth_start(session: Session) -> Result<Redirect, Rejection> {
    let state = random_hex();
    session.insert(OAUTH_STATE, &state)?;
    Ok(Redirect::to(&format!("/provider/authorize?state={state}")))
}

/// The fake provider: sends the browser back with a code and the `state`.
async fn provider(RawQuery(query): RawQuery) -> Redirect {
    let state = query
        .as_deref()
        .and_then(|q| param(q, "state"))
        .unwrap_or("");
    Redirect::to(&format!("/oauth/callback?code=c0de&state={state}"))
}

/// The callback: the `state` must be the one this session stored; it is
/// removed either way, so it serves once.
async fn oauth_callback(
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, Rejection> {
    let expected: Option<String> = session.remove(OAUTH_STATE);
    let query = query.unwrap_or_default();
    let got = param(&query, "state").unwrap_or("");
    if !expected.is_some_and(|e| e.as_bytes().ct_eq(got.as_bytes()).into()) {
        return Err(refuse(StatusCode::FORBIDDEN, "oauth_state_mismatch"));
    }
    // ...exchange the code with the provider, then `session.login(user)`.
    Ok(Json(json!({ "code": param(&query, "code") })))
}

/// The example's router, with a fresh key and an in-memory store.
pub fn app() -> Router {
    let keys = KeyRing::new(TokenKey::generate(1));
    let manager = SessionManager::builder(keys).build().unwrap();
    let cookie = CookieConfig::development("session").unwrap();
    let layer = SessionLayer::new(manager).transport(TokenTransport::Cookie(cookie));
    Router::new()
        .route("/", get(page))
        .route("/comments", post(comment))
        .route("/oauth/start", get(oauth_start))
        .route("/provider/authorize", get(provider))
        .route("/oauth/callback", get(oauth_callback))
        .layer(layer)
}

#[tokio::main]
async fn main() {
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app()).await.unwrap();
}
