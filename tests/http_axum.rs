//! The HTTP scenarios against an axum server on loopback.

mod adapter_scenarios;
mod loopback;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use rolling_session::http::{Rejection, Session};
use rolling_session::{SessionInfo, clock::ManualClock};
use serde_json::{Value, json};

async fn login(handle: Session, Json(body): Json<Value>) -> Result<Json<Value>, Rejection> {
    let user = body["user"].as_str().unwrap_or("anonymous");
    let session = handle.login(user).await?;
    Ok(Json(json!({ "user": session.user_id() })))
}

async fn me(session: SessionInfo) -> Json<Value> {
    Json(json!({ "user": session.user_id() }))
}

async fn logout(handle: Session) -> Result<Json<Value>, Rejection> {
    handle.logout().await?;
    Ok(Json(json!({ "ok": true })))
}

async fn elevate(handle: Session) -> Result<Json<Value>, Rejection> {
    let session = handle.set_permissions(vec!["admin".into()]).await?;
    Ok(Json(
        json!({ "permissions": session.record().meta.permissions }),
    ))
}

async fn add(handle: Session, Path(item): Path<String>) -> Result<Json<Value>, Rejection> {
    let mut cart: Vec<String> = handle.get("cart")?.unwrap_or_default();
    cart.push(item);
    handle.insert("cart", &cart)?;
    Ok(Json(json!({ "cart": cart })))
}

async fn cart(handle: Session) -> Result<Json<Value>, Rejection> {
    let cart: Vec<String> = handle.get("cart")?.unwrap_or_default();
    let anonymous = handle.session().map(|s| s.is_anonymous());
    Ok(Json(json!({ "cart": cart, "anonymous": anonymous })))
}

async fn big(handle: Session) -> Result<Json<Value>, Rejection> {
    handle.insert("big", &"x".repeat(20_000))?;
    Ok(Json(json!({ "ok": true })))
}

async fn server() -> (String, ManualClock) {
    let clock = ManualClock::new(1_800_000_000_000);
    let layer = loopback::dev_layer(loopback::manager_on(
        &clock,
        adapter_scenarios::csrf_config(),
    ));
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/elevate", post(elevate))
        .route("/cart", get(cart))
        .route("/cart/{item}", post(add))
        .route("/big", post(big))
        .merge(rolling_session::axum::routes(layer.exchange()))
        .layer(layer);
    (loopback::serve(app).await, clock)
}

#[tokio::test]
async fn six_requests_six_distinct_tokens() {
    adapter_scenarios::six_requests_six_distinct_tokens(server().await.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_applied_in_random_order() {
    adapter_scenarios::parallel_requests_applied_in_random_order(server().await.0).await;
}

#[tokio::test]
async fn replay_after_grace_revokes() {
    let (base, clock) = server().await;
    adapter_scenarios::replay_after_grace_revokes(base, &clock).await;
}

#[tokio::test]
async fn malformed_cookies_get_4xx_json() {
    adapter_scenarios::malformed_cookies_get_4xx_json(server().await.0).await;
}

#[tokio::test]
async fn status_refresh_confirm_logout() {
    let (base, clock) = server().await;
    adapter_scenarios::status_refresh_confirm_logout(base, &clock).await;
}

#[tokio::test]
async fn refresh_racing_a_response_in_flight_is_refused_then_retried() {
    let (base, clock) = server().await;
    adapter_scenarios::refresh_racing_a_response_in_flight_is_refused_then_retried(base, &clock)
        .await;
}

#[cfg(feature = "drift")]
#[tokio::test]
async fn telemetry_route() {
    let (base, clock) = server().await;
    adapter_scenarios::telemetry_route(base, &clock).await;
}

#[tokio::test]
async fn csrf_rules() {
    let (base, clock) = server().await;
    adapter_scenarios::csrf_rules(base, &clock).await;
}

/// A server on `adapter_scenarios::admission_config` that records the peer address.
async fn admission_server() -> String {
    let layer = loopback::dev_layer(loopback::manager(adapter_scenarios::admission_config()));
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(layer);
    loopback::serve_with_peer_addr(app).await
}

#[tokio::test]
async fn admission_limits() {
    adapter_scenarios::admission_limits(admission_server().await).await;
}

#[cfg(not(feature = "drift"))]
#[tokio::test]
async fn telemetry_route_without_drift() {
    let (base, _clock) = server().await;
    adapter_scenarios::telemetry_route_disabled(base).await;
}

#[tokio::test]
async fn session_data() {
    adapter_scenarios::session_data(server().await.0).await;
}
