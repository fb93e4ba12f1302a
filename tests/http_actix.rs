//! The HTTP scenarios against an actix-web server on loopback.
#![cfg(feature = "actix")]

mod adapter_scenarios;
mod loopback;

use actix_web::{App, HttpResponse, web};
use rolling_session::actix::{SessionMiddleware, scope};
use rolling_session::http::{Rejection, Session};
use rolling_session::{SessionInfo, clock::ManualClock};
use serde_json::{Value, json};

async fn login(handle: Session, body: web::Json<Value>) -> Result<HttpResponse, Rejection> {
    let user = body["user"].as_str().unwrap_or("anonymous").to_owned();
    let session = handle.login(user).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": session.user_id() })))
}

async fn me(session: SessionInfo) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": session.user_id() }))
}

async fn logout(handle: Session) -> Result<HttpResponse, Rejection> {
    handle.logout().await?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true })))
}

async fn elevate(handle: Session) -> Result<HttpResponse, Rejection> {
    let session = handle.set_permissions(vec!["admin".into()]).await?;
    Ok(HttpResponse::Ok().json(json!({ "permissions": session.record().meta.permissions })))
}

async fn add(handle: Session, item: web::Path<String>) -> Result<HttpResponse, Rejection> {
    let mut cart: Vec<String> = handle.get("cart")?.unwrap_or_default();
    cart.push(item.into_inner());
    handle.insert("cart", &cart)?;
    Ok(HttpResponse::Ok().json(json!({ "cart": cart })))
}

async fn cart(handle: Session) -> Result<HttpResponse, Rejection> {
    let cart: Vec<String> = handle.get("cart")?.unwrap_or_default();
    let anonymous = handle.session().map(|s| s.is_anonymous());
    Ok(HttpResponse::Ok().json(json!({ "cart": cart, "anonymous": anonymous })))
}

async fn big(handle: Session) -> Result<HttpResponse, Rejection> {
    handle.insert("big", &"x".repeat(20_000))?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true })))
}

fn server() -> (String, ManualClock) {
    let clock = ManualClock::new(1_800_000_000_000);
    let exchange = loopback::dev_exchange(loopback::manager_on(
        &clock,
        adapter_scenarios::csrf_config(),
    ));
    let base = loopback::serve_actix(2, move || {
        App::new()
            .service(scope(&exchange))
            .route("/login", web::post().to(login))
            .route("/me", web::get().to(me))
            .route("/logout", web::post().to(logout))
            .route("/elevate", web::post().to(elevate))
            .route("/cart", web::get().to(cart))
            .route("/cart/{item}", web::post().to(add))
            .route("/big", web::post().to(big))
            .wrap(SessionMiddleware::new(exchange.clone()))
    });
    (base, clock)
}

#[tokio::test]
async fn six_requests_six_distinct_tokens() {
    adapter_scenarios::six_requests_six_distinct_tokens(server().0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_applied_in_random_order() {
    adapter_scenarios::parallel_requests_applied_in_random_order(server().0).await;
}

#[tokio::test]
async fn replay_after_grace_revokes() {
    let (base, clock) = server();
    adapter_scenarios::replay_after_grace_revokes(base, &clock).await;
}

#[tokio::test]
async fn malformed_cookies_get_4xx_json() {
    adapter_scenarios::malformed_cookies_get_4xx_json(server().0).await;
}

#[tokio::test]
async fn status_refresh_confirm_logout() {
    let (base, clock) = server();
    adapter_scenarios::status_refresh_confirm_logout(base, &clock).await;
}

#[tokio::test]
async fn refresh_racing_a_response_in_flight_is_refused_then_retried() {
    let (base, clock) = server();
    adapter_scenarios::refresh_racing_a_response_in_flight_is_refused_then_retried(base, &clock)
        .await;
}

#[tokio::test]
async fn telemetry_route() {
    let (base, clock) = server();
    adapter_scenarios::telemetry_route(base, &clock).await;
}

#[tokio::test]
async fn csrf_rules() {
    let (base, clock) = server();
    adapter_scenarios::csrf_rules(base, &clock).await;
}

/// A server on `adapter_scenarios::admission_config`.
fn admission_server() -> String {
    let exchange = loopback::dev_exchange(loopback::manager(adapter_scenarios::admission_config()));
    loopback::serve_actix(1, move || {
        App::new()
            .route("/login", web::post().to(login))
            .route("/me", web::get().to(me))
            .route("/logout", web::post().to(logout))
            .wrap(SessionMiddleware::new(exchange.clone()))
    })
}

#[tokio::test]
async fn admission_limits() {
    adapter_scenarios::admission_limits(admission_server()).await;
}

#[tokio::test]
async fn session_data() {
    adapter_scenarios::session_data(server().0).await;
}
