//! The application under test, served over real HTTP on a free loopback
//! port: its manager, its session layer (or exchange) with the
//! development cookie [`COOKIE`], and the server itself.

use rolling_session::clock::ManualClock;
use rolling_session::http::{CookieConfig, SessionExchange, SessionLayer, TokenTransport};
use rolling_session::{Config, KeyRing, SessionManager, TokenKey};

use super::COOKIE;

/// A manager with a fresh key, `config` and the system clock.
pub fn manager(config: Config) -> SessionManager {
    SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .config(config)
        .build()
        .unwrap()
}

/// A manager with a fresh key and `config` whose time is `clock`.
pub fn manager_on(clock: &ManualClock, config: Config) -> SessionManager {
    SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .clock(clock.clone())
        .config(config)
        .build()
        .unwrap()
}

/// The exchange of the test servers: the token in the cookie [`COOKIE`]
/// with the development settings (no `Secure`, for `http://`).
pub fn dev_exchange(manager: SessionManager) -> SessionExchange {
    SessionExchange::new(manager).transport(TokenTransport::Cookie(
        CookieConfig::development(COOKIE).expect("a valid cookie name"),
    ))
}

/// The session layer of the test servers, on [`dev_exchange`].
pub fn dev_layer(manager: SessionManager) -> SessionLayer {
    SessionLayer::from_exchange(dev_exchange(manager))
}

/// Serves `app` on a free loopback port; its base URL.
#[cfg(feature = "axum")]
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Like [`serve`], with the peer address in each request's extensions
/// (`ConnectInfo<SocketAddr>`), as the admission limits need.
#[cfg(feature = "axum")]
pub async fn serve_with_peer_addr(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    base
}

/// Serves the actix-web application `app` makes, with `workers` workers,
/// on a free loopback port from a thread of its own; its base URL.
#[cfg(feature = "actix")]
pub fn serve_actix<F, T, B>(workers: usize, app: F) -> String
where
    F: Fn() -> actix_web::App<T> + Send + Clone + 'static,
    T: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: actix_web::body::MessageBody + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            actix_web::HttpServer::new(app)
                .workers(workers)
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap()
        })
    });
    base
}
