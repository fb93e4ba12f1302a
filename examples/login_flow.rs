//! A login flow in the axum-login style: a login that keeps the anonymous
//! visitor's data (a cart), protected routes behind `RequireLogin` (browsers
//! are sent to `/login?next=...`, APIs get 401), logout, "log out of my other
//! devices", and a password change that ends every session of the user.
//!
//! ```text
//! cargo run --example login_flow    # http://127.0.0.1:3000, or DEMO_ADDR=...
//! curl -c j -b j -H 'content-type: application/json' -d '{"item":"tea"}' localhost:3000/cart
//! curl -c j -b j -H 'content-type: application/json' -d '{"user":"alice","password":"wonderland"}' -L localhost:3000/login
//! ```
//!
//! Bodies are JSON because the crate builds axum without its `form`
//! feature; with it, `Form<Login>` takes the place of `Json<Login>`.
//! Over plain HTTP on localhost only: `CookieConfig::development` drops the
//! `__Host-` prefix and `Secure`. Do not copy it into a deployment.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ring::pbkdf2;
use rolling_session::http::{CookieConfig, Rejection, RequireLogin, TokenTransport};
use rolling_session::{
    KeyRing, Session, SessionInfo, SessionLayer, SessionManager, TokenKey,
    events::TerminationReason,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The user table: name to a salted PBKDF2 hash of the password. A real
/// application keeps it in its database and hashes on
/// `tokio::task::spawn_blocking`; the session crate does not care.
#[derive(Clone, Default)]
pub struct Users(Arc<Mutex<HashMap<String, SaltAndHash>>>);

type SaltAndHash = ([u8; 16], [u8; 32]);

const PBKDF2: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;
/// OWASP asks 600 000 rounds of PBKDF2-HMAC-SHA256; fewer here, for quick
/// tests.
const ROUNDS: NonZeroU32 = NonZeroU32::new(10_000).unwrap();

impl Users {
    pub fn set(&self, user: &str, password: &str) {
        let salt: [u8; 16] = rand::random();
        let mut hash = [0; 32];
        pbkdf2::derive(PBKDF2, ROUNDS, &salt, password.as_bytes(), &mut hash);
        self.0.lock().unwrap().insert(user.to_owned(), (salt, hash));
    }

    fn check(&self, user: &str, password: &str) -> bool {
        let entry = self.0.lock().unwrap().get(user).copied();
        // An unknown user costs the same work: timing does not tell who exists.
        let (salt, hash) = entry.unwrap_or_default();
        let valid = pbkdf2::verify(PBKDF2, ROUNDS, &salt, password.as_bytes(), &hash).is_ok();
        valid && entry.is_some()
    }
}

#[derive(Clone)]
struct App {
    manager: SessionManager,
    users: Users,
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
    next: Option<String>,
}

/// Logs in and goes on to `next` (a local path only: no open redirect).
/// The anonymous session's data moves to the new session, under a fresh id.
async fn login(
    State(app): State<App>,
    session: Session,
    Json(form): Json<Login>,
) -> Result<Response, Rejection> {
    if !app.users.check(&form.user, &form.password) {
        let message = "wrong user or password".to_owned();
        return Err(Rejection::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            message,
        ));
    }
    session.login(form.user).await?;
    let next = form.next.filter(|n| local_path(n));
    Ok(Redirect::to(next.as_deref().unwrap_or("/me")).into_response())
}

/// Whether `next` is a path on this site: not `//host` or `/\host` (which
/// browsers read as another site), and visible ASCII only (a valid
/// `Location`).
fn local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next[1..].starts_with(['/', '\\'])
        && next.bytes().all(|b| b.is_ascii_graphic())
}

async fn login_page() -> &'static str {
    "POST /login {\"user\", \"password\", \"next\"}"
}

/// A protected page. The session id is shown only so you can watch it
/// change at login.
async fn me(user: SessionInfo, session: Session) -> Result<Json<Value>, Rejection> {
    let cart: Vec<String> = session.get("cart")?.unwrap_or_default();
    Ok(Json(
        json!({"user": user.user_id(), "session": user.id().to_string(), "cart": cart}),
    ))
}

#[derive(Deserialize)]
struct Item {
    item: String,
}

/// Anyone may fill a cart: a visitor gets an anonymous session here.
async fn add_to_cart(session: Session, Json(add): Json<Item>) -> Result<Json<Value>, Rejection> {
    let mut cart: Vec<String> = session.get("cart")?.unwrap_or_default();
    cart.push(add.item);
    session.insert("cart", &cart)?;
    Ok(Json(json!({ "cart": cart })))
}

async fn cart(session: Session) -> Result<Json<Value>, Rejection> {
    let cart: Vec<String> = session.get("cart")?.unwrap_or_default();
    let id = session.session().map(|s| s.id().to_string());
    Ok(Json(json!({ "cart": cart, "session": id })))
}

/// Ends the session and deletes its data.
async fn logout(session: Session) -> Result<Json<Value>, Rejection> {
    session.logout().await?;
    Ok(Json(json!({ "ok": true })))
}

/// "Log out of my other devices": every session of the user but this one.
async fn logout_others(State(app): State<App>, me: SessionInfo) -> Result<Json<Value>, Rejection> {
    let mut ended = 0;
    for other in app
        .manager
        .active_sessions(me.user_id())
        .await
        .map_err(|e| Rejection::from(&e))?
    {
        if other.id() != me.id() {
            let reason = TerminationReason::LogoutEverywhere;
            app.manager
                .terminate_id(&other.id(), reason)
                .await
                .map_err(|e| Rejection::from(&e))?;
            ended += 1;
        }
    }
    Ok(Json(json!({ "ended": ended })))
}

#[derive(Deserialize)]
struct PasswordChange {
    old: String,
    new: String,
}

/// A password change ends every session of the user (a thief's too), then
/// logs this device in again under a fresh id, keeping its data.
async fn change_password(
    State(app): State<App>,
    me: SessionInfo,
    session: Session,
    Json(change): Json<PasswordChange>,
) -> Result<Json<Value>, Rejection> {
    if !app.users.check(me.user_id(), &change.old) {
        let message = "wrong password".to_owned();
        return Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "invalid_credentials",
            message,
        ));
    }
    app.users.set(me.user_id(), &change.new);
    let ended = app
        .manager
        .terminate_all_user_sessions(me.user_id())
        .await
        .map_err(|e| Rejection::from(&e))?;
    session.login(me.user_id()).await?;
    Ok(Json(json!({ "ended": ended })))
}

/// The example's router on `manager`, with `users`.
pub fn app(manager: SessionManager, users: Users) -> Router {
    let cookie = CookieConfig::development("session").unwrap();
    let layer = SessionLayer::new(manager.clone()).transport(TokenTransport::Cookie(cookie));
    Router::new()
        .route("/me", get(me))
        .route("/sessions/logout-others", post(logout_others))
        .route("/password", post(change_password))
        // The routes above need a logged-in user (an anonymous one is not).
        .route_layer(RequireLogin::new().login_url("/login"))
        .route("/login", get(login_page).post(login))
        .route("/cart", get(cart).post(add_to_cart))
        .route("/logout", post(logout))
        .with_state(App { manager, users })
        .layer(layer)
}

#[tokio::main]
async fn main() {
    let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .build()
        .unwrap();
    let users = Users::default();
    users.set("alice", "wonderland");
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app(manager, users)).await.unwrap();
}
