//! Bench server: bare axum, no sessions. `GET /` and `POST /login` answer
//! a short text. The baseline of `scripts/bench`.

#[path = "common.rs"]
mod common;

use axum::Router;
use axum::routing::{get, post};

fn main() {
    let Some(addr) = common::addr() else { return };
    common::runtime().block_on(async {
        let app = Router::new()
            .route("/", get(|| async { "hello" }))
            .route("/login", post(|| async { "welcome" }));
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}
