//! The whole tower service on an in-process request: `ServiceExt::oneshot`
//! through `SessionLayer` (cookie in, next token out as `Set-Cookie`), and
//! the same through an axum `Router`, each against the same service
//! without the layer. The difference is what the session layer costs per
//! request, with no network and no HTTP parsing in the way.
//!
//! ```text
//! cargo bench --bench http
//! ```

use std::convert::Infallible;
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, header};
use http_body_util::Full;
use rolling_session::http::{CookieConfig, SessionLayer, TokenTransport};
use rolling_session::{KeyRing, SessionContext, SessionInfo, SessionManager, TokenKey};
use tower::{Service, ServiceBuilder, ServiceExt};

const COOKIE: &str = "rs_session";

fn request(token: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/")
        .header(header::HOST, "127.0.0.1")
        .header(header::COOKIE, format!("{COOKIE}={token}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The token in a `Set-Cookie: rs_session=<token>; ...` header.
fn next_token<B>(res: &Response<B>) -> String {
    let v = res.headers()[header::SET_COOKIE].to_str().unwrap();
    let v = v.split(';').next().unwrap();
    v[COOKIE.len() + 1..].to_owned()
}

async fn hello(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

async fn hello_user(session: SessionInfo) -> String {
    format!("hello {}", session.user_id())
}

/// Drives `iters` requests of one session through `svc`, each presenting
/// the token the previous response handed out.
async fn run<S>(svc: &S, mut token: String, iters: u64) -> (std::time::Duration, String)
where
    S: Service<Request<Full<Bytes>>, Error = Infallible> + Clone,
    S::Response: HasHeaders,
{
    let start = Instant::now();
    for _ in 0..iters {
        let res = svc.clone().oneshot(request(&token)).await.unwrap();
        token = res.next_token();
    }
    (start.elapsed(), token)
}

trait HasHeaders {
    fn next_token(&self) -> String;
}
impl<B> HasHeaders for Response<B> {
    fn next_token(&self) -> String {
        next_token(self)
    }
}

async fn first_token(manager: &SessionManager) -> String {
    manager
        .create_session("bench", SessionContext::default())
        .await
        .unwrap()
        .token
        .expose()
        .to_owned()
}

fn session_layer() -> (SessionManager, SessionLayer) {
    let manager = SessionManager::builder(KeyRing::new(TokenKey::new(
        1,
        b"0123456789abcdefghijklmnopqrstuv",
    )))
    .build()
    .unwrap();
    let layer = SessionLayer::new(manager.clone()).transport(TokenTransport::Cookie(
        CookieConfig::development(COOKIE).expect("a valid cookie name"),
    ));
    (manager, layer)
}

fn tower_service(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("tower_oneshot");

    // Baselines: the same services, no session layer.
    let bare = tower::service_fn(hello);
    g.bench_function("service_fn/bare", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let res = bare.oneshot(request("x")).await.unwrap();
                    std::hint::black_box(res);
                }
                start.elapsed()
            })
        })
    });
    let bare_router: Router = Router::new().route("/", get(|| async { "hello bench" }));
    g.bench_function("axum_router/bare", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let res = bare_router.clone().oneshot(request("x")).await.unwrap();
                    std::hint::black_box(res);
                }
                start.elapsed()
            })
        })
    });

    let (manager, layer) = session_layer();
    let svc = ServiceBuilder::new().layer(layer).service_fn(hello);
    let mut token = rt.block_on(first_token(&manager));
    g.bench_function("service_fn/session_layer", |b| {
        b.iter_custom(|iters| {
            let (t, next) = rt.block_on(run(&svc, std::mem::take(&mut token), iters));
            token = next;
            t
        })
    });

    let (manager, layer) = session_layer();
    let router: Router = Router::new().route("/", get(hello_user)).layer(layer);
    let mut token = rt.block_on(first_token(&manager));
    g.bench_function("axum_router/session_layer", |b| {
        b.iter_custom(|iters| {
            let (t, next) = rt.block_on(run(&router, std::mem::take(&mut token), iters));
            token = next;
            t
        })
    });
    g.finish();
}

criterion_group!(benches, tower_service);
criterion_main!(benches);
