//! The rolling-session demo: axum, the in-memory store, a page that shows
//! the session live.
//!
//! ```text
//! cargo run --example demo          # http://127.0.0.1:3000
//! DEMO_ADDR=127.0.0.1:8080 cargo run --example demo
//! ```
//!
//! `GET /demo/events` shows the server's audit events (every user's) and
//! is therefore served only to the machine itself (a peer at 127.0.0.1 or
//! ::1); anyone else gets 403, whatever `DEMO_ADDR` binds to. The peer
//! address is recorded in each session's context (the server is run with
//! `into_make_service_with_connect_info`), and the demo compares it on
//! every request (`context.check_ip`, mismatches allowed and reported as
//! `context_mismatch` events).
//!
//! DEVELOPMENT COOKIE CONFIG: the demo serves plain HTTP on localhost, so its
//! cookie drops the `__Host-` prefix and `Secure` (browsers refuse both
//! without HTTPS). Everything else keeps the secure defaults. Do not copy
//! `CookieConfig::development` into a deployment.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rolling_session::http::{CookieConfig, Rejection, Session, SessionLayer, TokenTransport};
use rolling_session::{
    Config, KeyRing, LoginOptions, SessionInfo, SessionManager, TokenKey, events::EventSink,
    events::SessionEvent, events::TracingSink, store::LineageKey, store::Verdict, token::Token,
};
use serde::Deserialize;
use serde_json::json;

/// Keeps the last events for `GET /demo/events` and logs them too.
#[derive(Default)]
struct DemoEvents(Mutex<VecDeque<SessionEvent>>);

impl EventSink for DemoEvents {
    fn emit(&self, event: &SessionEvent) {
        TracingSink.emit(event);
        let mut events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == 100 {
            events.pop_front();
        }
        events.push_back(event.clone());
    }
}

#[derive(Clone)]
struct Demo {
    manager: SessionManager,
    /// The manager's key ring: the demo re-mints a session's first token
    /// to play the thief (a real application never needs it).
    keys: KeyRing,
    events: Arc<DemoEvents>,
    /// The first token of each session lineage (login to logout, across
    /// renewals), kept only for the "stolen cookie" button. A real service
    /// never keeps tokens.
    first_tokens: Arc<Mutex<HashMap<LineageKey, Token>>>,
}

#[derive(Deserialize)]
struct Login {
    user: String,
    /// The form's "remember me" box: a persistent cookie and the longer
    /// remembered lifetimes; otherwise the cookie ends with the browser.
    #[serde(default)]
    remember: bool,
}

async fn login(
    State(demo): State<Demo>,
    handle: Session,
    Json(body): Json<Login>,
) -> Result<Response, Rejection> {
    let user = body.user.trim();
    if user.is_empty() || user.len() > 64 {
        return Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_user", "message": "user must be 1 to 64 characters"})),
        )
            .into_response());
    }
    let options = LoginOptions::default().remember_me(body.remember);
    let session = handle.login_with(user, options).await?;
    let first = demo
        .keys
        .mint(&session.id(), session.record().sequence.counter);
    demo.remember(session.id().lineage(), first);
    let mut body = serde_json::to_value(demo.manager.status(&session)).unwrap_or_default();
    body["user"] = json!(session.user_id());
    body["remembered"] = json!(session.flags().remembered);
    Ok(Json(body).into_response())
}

impl Demo {
    fn remember(&self, id: LineageKey, token: Token) {
        let mut tokens = self.first_tokens.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() > 10_000 {
            tokens.clear();
        }
        tokens.insert(id, token);
    }
}

async fn me(session: SessionInfo) -> Json<serde_json::Value> {
    Json(json!({ "user": session.user_id() }))
}

async fn logout(handle: Session) -> Result<Json<serde_json::Value>, Rejection> {
    handle.logout().await?;
    Ok(Json(json!({ "ok": true })))
}

/// Replays the session's first token, as a thief with a copied cookie would.
async fn replay(State(demo): State<Demo>, session: SessionInfo) -> Response {
    let stolen = demo
        .first_tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&session.id().lineage())
        .cloned();
    let Some(stolen) = stolen else {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "no_copy", "message": "this session has no remembered first token"})),
        )
            .into_response();
    };
    match demo.manager.validate_session(stolen.expose()).await {
        Err(e) => Rejection::from(&e).into_response(),
        // Served, and never handed a token: a request in flight looks like
        // this until the grace window (10 s) after the victim moved past it.
        Ok(v) if matches!(v.verdict, Verdict::Grace | Verdict::Pending) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "within_grace",
                "verdict": v.verdict.as_str(),
                "message": "the copied token is still within its grace window (served, but handed no token); make a request and try again in a few seconds"
            })),
        )
            .into_response(),
        // The victim was silent for longer than the grace window since its
        // last token was issued: the copy took the session over, and the
        // victim's next request will reveal it.
        Ok(v) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "copy_took_over",
                "verdict": v.verdict.as_str(),
                "message": "the victim was idle, so the copy was taken for a lost response and handed a fresh token; the victim's next request reveals the theft"
            })),
        )
            .into_response(),
    }
}

async fn revoke(
    State(demo): State<Demo>,
    session: SessionInfo,
) -> Result<Json<serde_json::Value>, Rejection> {
    let n = demo
        .manager
        .terminate_all_user_sessions(session.user_id())
        .await
        .map_err(|e| Rejection::from(&e))?;
    Ok(Json(json!({ "revoked": n })))
}

/// The last audit events, to the machine itself only: they name every
/// user's sessions and contexts.
async fn recent_events(
    State(demo): State<Demo>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !is_this_machine(peer) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": "events_local_only",
                "message": "the demo's audit events are shown only to a browser on the demo's machine (127.0.0.1 or ::1)"
            })),
        )
            .into_response();
    }
    let events = demo.events.0.lock().unwrap_or_else(|e| e.into_inner());
    Json(events.iter().rev().take(30).cloned().collect::<Vec<_>>()).into_response()
}

fn is_this_machine(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => {
            ip == std::net::Ipv6Addr::LOCALHOST
                || ip.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

async fn page() -> Html<&'static str> {
    Html(include_str!("demo/index.html"))
}

/// The secure defaults, with changes only so the demo can be tried in a
/// minute: telemetry accepted up to 20 times a second per session (the
/// default is one report per 2.5 s), and renewal allowed at any time (and
/// a thousand times) rather than only in the last hour. The token settings
/// (grace window, floor and depth) are the library's defaults: bursts of
/// parallel requests, lost responses and refreshes with requests in flight
/// need nothing more. The client IP is compared on every request (off by
/// default, as mobile clients change networks): a mismatch is allowed and
/// reported as a `context_mismatch` event.
fn demo_config() -> Config {
    let mut config = Config::default();
    config.context.check_ip = true;
    config.drift.min_sample_interval_ms = 50;
    config.renewal_threshold = config.expiration_time;
    config.max_renewals = 1_000;
    config
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rolling_session::audit=info".into()),
        )
        .init();
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "rolling-session demo listening on http://{}",
        listener.local_addr()?
    );
    serve(listener).await?;
    Ok(())
}

/// Serves the demo on `listener`, recording each connection's peer
/// address (the session context's IP).
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), Box<dyn std::error::Error>> {
    let app = app()?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// The demo's router.
pub fn app() -> Result<Router, Box<dyn std::error::Error>> {
    let events = Arc::new(DemoEvents::default());
    let keys = KeyRing::new(TokenKey::generate(1));
    let manager = SessionManager::builder(keys.clone())
        .config(demo_config())
        .events(events.clone())
        .build()?;
    manager.spawn_sweeper(std::time::Duration::from_secs(60));
    let demo = Demo {
        manager: manager.clone(),
        keys,
        events,
        first_tokens: Arc::default(),
    };
    // DEVELOPMENT COOKIE CONFIG (plain HTTP on localhost), see the file docs.
    let layer = SessionLayer::new(manager).transport(TokenTransport::Cookie(
        CookieConfig::development("rs_session").expect("a valid cookie name"),
    ));
    let app = Router::new()
        .route("/", get(page))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/demo/replay", post(replay))
        .route("/demo/revoke", post(revoke))
        .route("/demo/events", get(recent_events))
        .with_state(demo)
        .merge(rolling_session::axum::routes(layer.exchange()))
        .layer(layer);
    Ok(app)
}
