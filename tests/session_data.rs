//! Session data over real HTTP (issue 15): lazy anonymous sessions, login
//! keeps the data under a fresh id, logout deletes it, the size limit,
//! concurrent writers of distinct keys, guards, and one rejection format.

mod loopback;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, SET_COOKIE};
use rolling_session::http::{Rejection, RejectionFormat, RequireLogin};
use rolling_session::{Config, Session, SessionInfo};
use serde_json::{Value, json};

async fn add(session: Session, Path(item): Path<String>) -> Result<Json<Value>, Rejection> {
    let mut cart: Vec<String> = session.get("cart")?.unwrap_or_default();
    cart.push(item);
    session.insert("cart", &cart)?;
    Ok(Json(json!({ "cart": cart })))
}

async fn cart(session: Session) -> Result<Json<Value>, Rejection> {
    let cart: Vec<String> = session.get("cart")?.unwrap_or_default();
    let id = session.session().map(|s| s.id().to_string());
    let anonymous = session.session().map(|s| s.is_anonymous());
    Ok(Json(
        json!({ "cart": cart, "id": id, "anonymous": anonymous }),
    ))
}

async fn put(
    session: Session,
    Path((key, value)): Path<(String, String)>,
) -> Result<(), Rejection> {
    session.insert(&key, &value)?;
    Ok(())
}

async fn keys(session: Session) -> Result<Json<Value>, Rejection> {
    let mut out = serde_json::Map::new();
    for i in 0..64 {
        if let Some(v) = session.get::<String>(&format!("k{i}"))? {
            out.insert(format!("k{i}"), v.into());
        }
    }
    Ok(Json(Value::Object(out)))
}

async fn big(session: Session) -> Result<(), Rejection> {
    session.insert("big", &"x".repeat(20_000))?;
    Ok(())
}

async fn login(session: Session, Path(user): Path<String>) -> Result<(), Rejection> {
    session.login(user).await?;
    Ok(())
}

async fn elevate(session: Session) -> Result<(), Rejection> {
    session.set_permissions(vec!["admin".into()]).await?;
    Ok(())
}

async fn logout(session: Session) -> Result<(), Rejection> {
    session.logout().await?;
    Ok(())
}

/// Removes a key that may be absent and says whether a write is queued.
async fn take_flash(session: Session) -> Json<Value> {
    let flash: Option<String> = session.remove("flash");
    Json(json!({ "flash": flash, "modified": session.is_modified() }))
}

async fn me(session: SessionInfo) -> String {
    session.user_id().to_owned()
}

struct PlainText;

impl RejectionFormat for PlainText {
    fn format(&self, rejection: &Rejection) -> (&'static str, Bytes) {
        let text = format!("{}: {}", rejection.reason, rejection.message);
        ("text/plain; charset=utf-8", Bytes::from(text))
    }
}

async fn server(plain_text: bool) -> String {
    let config = Config {
        max_concurrent_sessions: 100,
        ..Config::default()
    };
    let mut layer = loopback::dev_layer(loopback::manager(config));
    if plain_text {
        layer = layer.rejection_format(PlainText);
    }
    let app = Router::new()
        .route("/admin", get(|| async { "admin area" }))
        .route_layer(RequireLogin::new().permission("admin").login_url("/login"))
        .route("/account", get(me))
        .route_layer(RequireLogin::new().login_url("/login"))
        .route("/cart", get(cart))
        .route("/cart/{item}", post(add))
        .route("/put/{key}/{value}", post(put))
        .route("/keys", get(keys))
        .route("/big", post(big))
        .route("/login/{user}", post(login))
        .route("/elevate", post(elevate))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/flash", get(take_flash))
        .layer(layer);
    loopback::serve(app).await
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn json(client: &reqwest::Client, base: &str, path: &str) -> Value {
    let res = client.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "GET {path}");
    res.json().await.unwrap()
}

async fn post_ok(client: &reqwest::Client, base: &str, path: &str) -> reqwest::Response {
    let res = client.post(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "POST {path}");
    res
}

#[tokio::test]
async fn a_visitor_who_never_writes_gets_no_cookie_and_the_first_write_makes_an_anonymous_session()
{
    let base = server(false).await;
    let client = browser();
    let res = client.get(format!("{base}/cart")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().get(SET_COOKIE).is_none(),
        "a read-only visit set a cookie"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], Value::Null, "a session exists before any write");

    let res = post_ok(&client, &base, "/cart/apple").await;
    assert!(
        res.headers().get(SET_COOKIE).is_some(),
        "the first write set no cookie"
    );
    post_ok(&client, &base, "/cart/pear").await;
    let body = json(&client, &base, "/cart").await;
    assert_eq!(body["cart"], json!(["apple", "pear"]));
    assert_eq!(body["anonymous"], json!(true));

    // An anonymous session is no login: SessionInfo answers 401.
    let res = client.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "login_required");
}

#[tokio::test]
async fn login_keeps_the_data_under_a_fresh_id_and_logout_deletes_it() {
    let base = server(false).await;
    let client = browser();
    post_ok(&client, &base, "/cart/apple").await;
    let before = json(&client, &base, "/cart").await;
    let anonymous_id = before["id"].as_str().unwrap().to_owned();

    post_ok(&client, &base, "/login/alice").await;
    let after = json(&client, &base, "/cart").await;
    assert_eq!(after["cart"], json!(["apple"]), "login dropped the cart");
    assert_eq!(after["anonymous"], json!(false));
    assert_ne!(
        after["id"].as_str().unwrap(),
        anonymous_id,
        "login kept the id (fixation)"
    );
    let me = client.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(me.text().await.unwrap(), "alice");

    // Data survives an elevation (a new id of the same lineage).
    post_ok(&client, &base, "/elevate").await;
    assert_eq!(
        json(&client, &base, "/cart").await["cart"],
        json!(["apple"])
    );

    post_ok(&client, &base, "/logout").await;
    let gone = json(&client, &base, "/cart").await;
    assert_eq!(gone["cart"], json!([]), "logout left the data");
    assert_eq!(gone["id"], Value::Null);
}

#[tokio::test]
async fn data_over_the_limit_is_refused_with_413_and_nothing_is_written() {
    let base = server(false).await;
    let client = browser();
    post_ok(&client, &base, "/cart/apple").await;
    let res = client.post(format!("{base}/big")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "session_data_too_large");
    assert_eq!(
        json(&client, &base, "/cart").await["cart"],
        json!(["apple"])
    );
}

#[tokio::test]
async fn concurrent_requests_writing_different_keys_keep_every_write() {
    let base = server(false).await;
    let client = browser();
    post_ok(&client, &base, "/login/bob").await;
    // 16 requests at once, with the same cookie: each writes its own key.
    let writes: Vec<_> = (0..16)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                client
                    .post(format!("{base}/put/k{i}/v{i}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for w in writes {
        assert_eq!(w.await.unwrap(), StatusCode::OK);
    }
    let keys = json(&client, &base, "/keys").await;
    for i in 0..16 {
        assert_eq!(
            keys[format!("k{i}")],
            json!(format!("v{i}")),
            "k{i} was lost: {keys}"
        );
    }
}

#[tokio::test]
async fn guards_redirect_browsers_answer_apis_and_check_permissions() {
    let base = server(false).await;
    let client = browser();
    // A browser without a session: to the login page, with where it was going.
    let res = client
        .get(format!("{base}/account?tab=orders"))
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION].to_str().unwrap(),
        "/login?next=/account%3Ftab%3Dorders"
    );
    // An API client: 401 with the reason.
    let res = client.get(format!("{base}/account")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "missing_token");
    // An anonymous visitor is not logged in either.
    post_ok(&client, &base, "/cart/apple").await;
    let res = client.get(format!("{base}/account")).send().await.unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "login_required"
    );

    post_ok(&client, &base, "/login/carol").await;
    let res = client.get(format!("{base}/account")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "carol");
    // Logged in without the permission: 403, also for browsers.
    let res = client
        .get(format!("{base}/admin"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "permission_required"
    );
    post_ok(&client, &base, "/elevate").await;
    let res = client.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn guards_extractors_and_data_errors_answer_in_the_configured_format() {
    let base = server(true).await;
    let client = browser();
    for (method, path) in [("GET", "/account"), ("GET", "/me"), ("POST", "/big")] {
        let res = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{path}: {}", res.status());
        let content_type = res.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("text/plain"),
            "{path} answered {content_type}"
        );
    }
}

#[tokio::test]
async fn removing_what_is_not_there_writes_nothing() {
    let base = server(false).await;
    let client = browser();
    post_ok(&client, &base, "/login/dave").await;
    let none = json(&client, &base, "/flash").await;
    assert_eq!(none, json!({ "flash": null, "modified": false }));
    post_ok(&client, &base, "/put/flash/hello").await;
    let once = json(&client, &base, "/flash").await;
    assert_eq!(once, json!({ "flash": "hello", "modified": true }));
    let gone = json(&client, &base, "/flash").await;
    assert_eq!(
        gone,
        json!({ "flash": null, "modified": false }),
        "the removal was not written"
    );
}
