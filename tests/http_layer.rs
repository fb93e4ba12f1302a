//! The tower layer's modes, in process: require mode, header transport,
//! a custom rejection format, and failing closed when the store is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use rolling_session::http::{
    Rejection, RejectionFormat, SessionHandle, SessionLayer, TokenTransport,
};
use rolling_session::store::Advance;
use rolling_session::{
    AdvanceRequest, KeyRing, MemoryStore, SessionId, SessionManager, SessionMeta, SessionRecord,
    SessionStore, StoreError, TokenKey,
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
    let handle = req.extensions().get::<SessionHandle>().unwrap().clone();
    let text = match (req.uri().path(), handle.session()) {
        ("/login", _) => match handle.login("alice").await {
            Ok(_) => "logged in".to_owned(),
            Err(r) => r.reason.to_owned(),
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
                .transport(TokenTransport::Header("x-session-token".into())),
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
