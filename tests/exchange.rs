//! The request path shared by the adapters (issue 14, 16): one rejection
//! format for the layer's refusals, the extractors' and the handlers'; paths
//! excluded from the session; the same answers from axum and actix-web.

mod loopback;

use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use loopback::Client;
use reqwest::{Method, StatusCode};
use rolling_session::http::{Rejection, RejectionFormat, Session, SessionExchange, SessionLayer};
use rolling_session::{KeyRing, SessionInfo, SessionManager, TokenKey};
use serde_json::{Value, json};

/// `reason: message` as plain text.
struct PlainText;

impl RejectionFormat for PlainText {
    fn format(&self, rejection: &Rejection) -> (&'static str, Bytes) {
        let text = format!("{}: {}", rejection.reason, rejection.message);
        ("text/plain; charset=utf-8", Bytes::from(text))
    }
}

fn exchange() -> SessionExchange {
    let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .build()
        .unwrap();
    loopback::dev_exchange(manager)
        .rejection_format(PlainText)
        .skip_paths(["/static/"])
}

async fn login(handle: Session, Json(body): Json<Value>) -> Result<Json<Value>, Rejection> {
    let session = handle.login(body["user"].as_str().unwrap_or("x")).await?;
    Ok(Json(json!({ "user": session.user_id() })))
}

async fn me(session: SessionInfo) -> Json<Value> {
    Json(json!({ "user": session.user_id() }))
}

/// A handler that answers with a rejection of its own.
async fn refuse(handle: Session) -> Result<&'static str, Rejection> {
    handle.require()?;
    Err(Rejection::new(
        StatusCode::FORBIDDEN,
        "not_yours",
        "this resource belongs to someone else".into(),
    ))
}

async fn asset() -> &'static str {
    "body { color: teal }"
}

async fn axum_server(require: bool) -> String {
    let exchange = exchange().require(require);
    let layer = SessionLayer::from_exchange(exchange.clone());
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/refuse", get(refuse))
        .route("/static/site.css", get(asset))
        .merge(rolling_session::axum::routes(layer.exchange()))
        .layer(layer);
    loopback::serve(app).await
}

#[cfg(feature = "actix")]
fn actix_server() -> String {
    use actix_web::{App, HttpResponse, web};
    use rolling_session::actix::{SessionMiddleware, scope};

    async fn login(handle: Session, body: web::Json<Value>) -> Result<HttpResponse, Rejection> {
        let session = handle.login(body["user"].as_str().unwrap_or("x")).await?;
        Ok(HttpResponse::Ok().json(json!({ "user": session.user_id() })))
    }
    async fn me(session: SessionInfo) -> HttpResponse {
        HttpResponse::Ok().json(json!({ "user": session.user_id() }))
    }
    async fn refuse(handle: Session) -> Result<HttpResponse, Rejection> {
        handle.require()?;
        Err(Rejection::new(
            StatusCode::FORBIDDEN,
            "not_yours",
            "this resource belongs to someone else".into(),
        ))
    }
    async fn asset() -> HttpResponse {
        HttpResponse::Ok().body("body { color: teal }")
    }

    let exchange = exchange();
    loopback::serve_actix(1, move || {
        App::new()
            .service(scope(&exchange))
            .route("/login", web::post().to(login))
            .route("/me", web::get().to(me))
            .route("/refuse", web::get().to(refuse))
            .route("/static/site.css", web::get().to(asset))
            .wrap(SessionMiddleware::new(exchange.clone()))
    })
}

fn content_type(a: &loopback::Answer) -> &str {
    a.headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Every refusal of one service is in its configured format: the
/// extractor's 401, a route's 401, a handler's own rejection.
async fn one_format(base: String) {
    let mut c = Client::new(base);
    let extractor = c.send(Method::GET, "/me", None).await;
    assert_eq!(extractor.status, StatusCode::UNAUTHORIZED);
    assert!(
        content_type(&extractor).starts_with("text/plain"),
        "{:?}",
        extractor.headers
    );
    assert_eq!(
        extractor.json,
        Value::String("missing_token: this route needs a session; log in first".into())
    );
    let route = c.send(Method::GET, "/session/status", None).await;
    assert_eq!(route.status, StatusCode::UNAUTHORIZED);
    assert!(content_type(&route).starts_with("text/plain"));

    c.login("alice").await;
    let handler = c.go(Method::GET, "/refuse", None).await;
    assert_eq!(handler.status, StatusCode::FORBIDDEN);
    assert!(content_type(&handler).starts_with("text/plain"));
    assert_eq!(
        handler.json,
        Value::String("not_yours: this resource belongs to someone else".into())
    );
    // The refusal still carried the next token: the session goes on.
    assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
}

/// An excluded path is served untouched: no token spent, none issued, no
/// `no-store`, and the session carries on with the same cookie.
async fn skipped_paths_are_untouched(base: String) {
    let mut c = Client::new(base);
    c.login("bob").await;
    let held = c.cookie.clone();
    for _ in 0..3 {
        let a = c.go(Method::GET, "/static/site.css", None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.set_cookie, None);
        assert!(a.headers.get("cache-control").is_none());
        assert!(a.headers.get("x-session-expires-in-ms").is_none());
    }
    assert_eq!(c.cookie, held);
    let me = c.go(Method::GET, "/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.json);
    assert!(me.set_cookie.is_some());
}

#[tokio::test]
async fn axum_answers_every_rejection_in_one_format() {
    one_format(axum_server(false).await).await;
}

#[tokio::test]
async fn axum_layer_refusal_is_in_the_same_format() {
    let base = axum_server(true).await;
    let c = Client::new(base);
    let a = c.send(Method::GET, "/me", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(content_type(&a).starts_with("text/plain"));
    // Excluded paths pass even when a session is required.
    let a = c.send(Method::GET, "/static/site.css", None).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn axum_skips_excluded_paths() {
    skipped_paths_are_untouched(axum_server(false).await).await;
}

#[cfg(feature = "actix")]
#[tokio::test]
async fn actix_answers_every_rejection_in_one_format() {
    one_format(actix_server()).await;
}

#[cfg(feature = "actix")]
#[tokio::test]
async fn actix_skips_excluded_paths() {
    skipped_paths_are_untouched(actix_server()).await;
}
