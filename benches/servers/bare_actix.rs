//! Bench server: bare actix-web, no sessions, one worker. `GET /` and
//! `POST /login` answer a short text, like `bare_axum`: the baseline of
//! `actix_rolling_memory` in `scripts/bench`.

#[path = "common.rs"]
mod common;

use actix_web::{App, HttpServer, web};

async fn hello() -> &'static str {
    "hello"
}

async fn login() -> &'static str {
    "welcome"
}

fn main() {
    let Some(addr) = common::addr() else { return };
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .route("/", web::get().to(hello))
                .route("/login", web::post().to(login))
        })
        .workers(1)
        .bind(&addr)
        .unwrap()
        .run()
        .await
        .unwrap();
    });
}
