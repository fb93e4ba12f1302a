//! The axum app of the floor bench servers: the lower bound of
//! `benches/common/floor_layer.rs` (the HTTP side of a rolling cookie
//! without its cryptography or features) in place of rolling-session's
//! layer, with the same routes as `rolling_axum.rs`. `POST /login`
//! creates a session; `GET /` requires one and, with data, reads a counter
//! and writes it back.

use axum::Router;
use axum::routing::{get, post};

#[path = "../common/floor_layer.rs"]
mod floor;

use floor::{FloorLayer, FloorSession};

async fn login(_: FloorSession) -> &'static str {
    "welcome"
}

async fn hello(_: FloorSession) -> &'static str {
    "hello floor"
}

async fn hello_data(session: FloorSession) -> &'static str {
    let n: u64 = session.get("n").unwrap_or(0);
    session.insert("n", &(n + 1));
    "hello floor"
}

/// Serves the app on `addr` until the process ends; `data`: `GET /` reads
/// and writes a session value.
pub async fn serve(addr: &str, data: bool) {
    let (layer, _) = FloorLayer::new();
    let app = Router::new()
        .route("/", if data { get(hello_data) } else { get(hello) })
        .route("/login", post(login))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
