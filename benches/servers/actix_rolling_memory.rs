//! Bench server: actix-web + rolling-session on the `MemoryStore`, one
//! worker. Same routes as `axum_rolling_memory`.

#[path = "common.rs"]
mod common;

use actix_web::{App, HttpServer, web};
use rolling_session::actix::SessionMiddleware;
use rolling_session::http::{CookieConfig, Rejection, Session, SessionExchange, TokenTransport};
use rolling_session::{KeyRing, MemoryStore, SessionInfo, SessionManager, TokenKey};

async fn login(handle: Session) -> Result<&'static str, Rejection> {
    handle.login(common::next_user()).await?;
    Ok("welcome")
}

async fn hello(session: SessionInfo) -> String {
    format!("hello {}", session.user_id())
}

fn main() {
    let Some(addr) = common::addr() else { return };
    actix_web::rt::System::new().block_on(async move {
        let manager = SessionManager::builder(KeyRing::new(TokenKey::new(
            1,
            b"0123456789abcdefghijklmnopqrstuv",
        )))
        .store(MemoryStore::new())
        .build()
        .unwrap();
        let exchange = SessionExchange::new(manager).transport(TokenTransport::Cookie(
            CookieConfig::development("rs_session").expect("a valid cookie name"),
        ));
        HttpServer::new(move || {
            App::new()
                .route("/", web::get().to(hello))
                .route("/login", web::post().to(login))
                .wrap(SessionMiddleware::new(exchange.clone()))
        })
        .workers(1)
        .bind(&addr)
        .unwrap()
        .run()
        .await
        .unwrap();
    });
}
