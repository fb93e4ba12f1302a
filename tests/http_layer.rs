//! The tower layer's modes, in process: require mode, header transport,
//! a custom rejection format, and failing closed when the store is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use rolling_session::http::{
    Rejection, RejectionFormat, Session, SessionLayer, SessionRoute, TokenTransport,
};
use rolling_session::store::Advance;
use rolling_session::{
    Config, KeyRing, MemoryStore, SessionManager, SessionStore, TokenKey, clock::ManualClock,
    store::AdvanceRequest, store::SessionId, store::SessionMeta, store::SessionRecord,
    store::StoreError,
};
use tower::{Service, ServiceBuilder, ServiceExt};

type Body = Full<Bytes>;

/// A store that can be switched off, standing for a store whose network
/// went away: every call then fails with `Unavailable`.
#[derive(Default)]
struct SwitchableStore {
    inner: MemoryStore,
    down: AtomicBool,
}

impl SwitchableStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "store switched off",
            )))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl SessionStore for SwitchableStore {
    async fn create(&self, r: &SessionRecord) -> Result<(), StoreError> {
        self.check()?;
        self.inner.create(r).await
    }
    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.load(id).await
    }
    async fn verify_and_advance(
        &self,
        id: &SessionId,
        req: &AdvanceRequest,
    ) -> Result<Option<Advance>, StoreError> {
        self.check()?;
        self.inner.verify_and_advance(id, req).await
    }
    async fn update_meta(&self, id: &SessionId, meta: &SessionMeta) -> Result<(), StoreError> {
        self.check()?;
        self.inner.update_meta(id, meta).await
    }
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete(id).await
    }
    async fn list_by_user(&self, user: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.list_by_user(user).await
    }
    async fn delete_by_user(&self, user: &str) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.delete_by_user(user).await
    }
    async fn sweep_expired(&self, now: u64) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.sweep_expired(now).await
    }
}

async fn app_handler(req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
    let handle = req.extensions().get::<Session>().unwrap().clone();
    let text = match (req.uri().path(), handle.session()) {
        ("/login", _) => match handle.login("alice").await {
            Ok(_) => "logged in".to_owned(),
            Err(r) => r.reason().to_owned(),
        },
        (_, Some(s)) => format!("hello {}", s.user_id()),
        (_, None) => "anonymous".into(),
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

fn manager(store: Arc<SwitchableStore>) -> SessionManager {
    SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .shared_store(store)
        .build()
        .unwrap()
}

async fn body(res: Response<Body>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn get(path: &str, header: Option<(&str, &str)>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some((k, v)) = header {
        b = b.header(k, v);
    }
    b.body(Full::default()).unwrap()
}

#[tokio::test]
async fn header_transport_rolls_the_token_in_a_response_header() {
    let store = Arc::new(SwitchableStore::default());
    let mut app = ServiceBuilder::new()
        .layer(
            SessionLayer::new(manager(store))
                .transport(TokenTransport::header("x-session-token").expect("a valid header name")),
        )
        .service_fn(app_handler);
    let res = app
        .ready()
        .await
        .unwrap()
        .call(get("/login", None))
        .await
        .unwrap();
    assert!(res.headers().get("set-cookie").is_none());
    let mut token = res.headers()["x-session-token"]
        .to_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        let res = app
            .ready()
            .await
            .unwrap()
            .call(get("/me", Some(("x-session-token", &token))))
            .await
            .unwrap();
        assert_eq!(res.headers()["cache-control"], "no-store");
        let next = res.headers()["x-session-token"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(next, token);
        token = next;
        assert_eq!(body(res).await, "hello alice");
    }
}

#[tokio::test]
async fn require_mode_rejects_in_the_layer_with_the_reason() {
    let store = Arc::new(SwitchableStore::default());
    let app = ServiceBuilder::new()
        .layer(SessionLayer::new(manager(store)).require())
        .service_fn(app_handler);
    let res = app.clone().oneshot(get("/me", None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!(json["error"], "missing_token");
    let res = app
        .oneshot(get("/me", Some(("cookie", "__Host-session=nope"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(body(res).await.contains("malformed_token"));
}

struct PlainText;

impl RejectionFormat for PlainText {
    fn format(&self, r: &Rejection) -> (&'static str, Bytes) {
        ("text/plain", Bytes::from(format!("denied: {}", r.reason)))
    }
}

#[tokio::test]
async fn rejection_format_is_pluggable() {
    let store = Arc::new(SwitchableStore::default());
    let app = ServiceBuilder::new()
        .layer(
            SessionLayer::new(manager(store))
                .require()
                .rejection_format(PlainText),
        )
        .service_fn(app_handler);
    let res = app.oneshot(get("/me", None)).await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(body(res).await, "denied: missing_token");
}

#[tokio::test]
async fn store_outage_fails_closed_with_503_and_recovers() {
    let store = Arc::new(SwitchableStore::default());
    let manager = manager(store.clone());
    let open = ServiceBuilder::new()
        .layer(SessionLayer::new(manager.clone()))
        .service_fn(app_handler);
    let guarded = ServiceBuilder::new()
        .layer(SessionLayer::new(manager).require())
        .service_fn(app_handler);
    let res = open.oneshot(get("/login", None)).await.unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    store.down.store(true, Ordering::SeqCst);
    let res = guarded
        .clone()
        .oneshot(get("/me", Some(("cookie", &cookie))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        res.headers().get("set-cookie").is_none(),
        "an outage keeps the cookie"
    );
    let json: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!(json["error"], "store_unavailable");

    store.down.store(false, Ordering::SeqCst);
    let res = guarded
        .oneshot(get("/me", Some(("cookie", &cookie))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "hello alice");
}

fn cookie_of<B>(res: &Response<B>) -> Option<String> {
    res.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// `POST /session/refresh` is not validated by the layer first (that
/// would rotate the token twice in one request, leaving the client a
/// retired token if the answer were lost): the renewal validates and
/// rotates it once, in require mode too. A refresh refused before the
/// token was checked (too early) is validated like any other request.
#[tokio::test]
async fn the_refresh_route_is_validated_by_its_renewal_even_in_require_mode() {
    let clock = ManualClock::new(1_800_000_000_000);
    let config = Config {
        idle_timeout: Duration::from_secs(2 * 3600),
        renewal_threshold: Duration::from_secs(7 * 3600),
        ..Config::default()
    };
    let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .config(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    let open = ServiceBuilder::new()
        .layer(SessionLayer::new(manager.clone()))
        .service_fn(app_handler);
    let layer = SessionLayer::new(manager).require();
    let exchange = layer.exchange().clone();
    let guarded = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |req: Request<Body>| {
            let exchange = exchange.clone();
            async move {
                if req.uri().path() != "/session/refresh" {
                    return app_handler(req).await;
                }
                let handle = req.extensions().get::<Session>().unwrap().clone();
                let answer = exchange
                    .respond(SessionRoute::Refresh, &handle, None, &[])
                    .await;
                let mut res = Response::new(Full::new(answer.body));
                *res.status_mut() = answer.status;
                Ok(res)
            }
        });
    let post = |cookie: Option<&str>| {
        let mut b = Request::post("/session/refresh");
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        b.body(Full::default()).unwrap()
    };
    let res = open.oneshot(get("/login", None)).await.unwrap();
    let mut cookie = cookie_of(&res).unwrap();

    // Too early: refused, and the request is validated (and rotated) as usual.
    let res = guarded.clone().oneshot(post(Some(&cookie))).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let next = cookie_of(&res).expect("validated and rotated");
    assert!(body(res).await.contains("renewal_too_early"));
    assert_ne!(next, cookie);
    cookie = next;

    clock.advance(Duration::from_secs(3600 + 60));
    let res = guarded.clone().oneshot(post(Some(&cookie))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let renewed = cookie_of(&res).expect("the renewed token");
    let json: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!(json["renewals"], 1);
    // The answer is lost: the client still holds the token it refreshed
    // with, which the renewal used once. After the grace it recovers.
    clock.advance(Duration::from_secs(21)); // past 2T: certainly a recovery
    let res = guarded
        .clone()
        .oneshot(get("/me", Some(("cookie", &cookie))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let recovered = cookie_of(&res).expect("a fresh token");
    assert_ne!(recovered, renewed);
    assert_eq!(body(res).await, "hello alice");

    for (cookie, reason) in [
        (None, "missing_token"),
        (Some("__Host-session=nope"), "malformed_token"),
    ] {
        let res = guarded.clone().oneshot(post(cookie)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(body(res).await.contains(reason));
    }
}
