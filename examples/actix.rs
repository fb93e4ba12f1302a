//! The demo's session routes on actix-web.
//!
//! ```text
//! cargo run --example actix --features actix     # http://127.0.0.1:3001
//! ```
//!
//! DEVELOPMENT COOKIE CONFIG: plain HTTP on localhost, so the cookie drops
//! the `__Host-` prefix and `Secure`. Keep the defaults in a deployment.

use actix_web::{App, HttpResponse, HttpServer, web};
use rolling_session::actix::{SessionMiddleware, scope};
use rolling_session::http::{CookieConfig, Rejection, Session, SessionExchange, TokenTransport};
use rolling_session::{KeyRing, SessionInfo, SessionManager, TokenKey};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Login {
    user: String,
}

async fn login(handle: Session, body: web::Json<Login>) -> Result<HttpResponse, Rejection> {
    let session = handle.login(body.user.trim()).await?;
    let mut status = serde_json::to_value(handle.manager().status(&session)).unwrap_or_default();
    status["user"] = json!(session.user_id());
    Ok(HttpResponse::Ok().json(status))
}

async fn me(session: SessionInfo) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": session.user_id() }))
}

async fn logout(handle: Session) -> Result<HttpResponse, Rejection> {
    handle.logout().await?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true })))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .build()
        .expect("default configuration is valid");
    // DEVELOPMENT COOKIE CONFIG (plain HTTP on localhost), see the file docs.
    let exchange = SessionExchange::new(manager).transport(TokenTransport::Cookie(
        CookieConfig::development("rs_session").expect("a valid cookie name"),
    ));
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    println!("rolling-session actix example listening on http://{addr}");
    HttpServer::new(move || {
        App::new()
            .service(scope(&exchange))
            .route("/login", web::post().to(login))
            .route("/me", web::get().to(me))
            .route("/logout", web::post().to(logout))
            .wrap(SessionMiddleware::new(exchange.clone()))
    })
    .bind(addr)?
    .run()
    .await
}
