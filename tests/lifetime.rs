//! Session lifetimes over real HTTP with a manual clock (issue 16):
//! sliding expiry keeps an active user of a server-rendered app signed in
//! for the whole absolute lifetime without JavaScript; a default login's
//! cookie ends with the browser; "remember me" gives a persistent cookie
//! and the longer remembered lifetimes.

mod loopback;

use std::time::Duration;

use axum::routing::{get, post};
use axum::{Json, Router};
use loopback::Client;
use reqwest::{Method, StatusCode};
use rolling_session::http::{Rejection, Session};
use rolling_session::{Config, LoginOptions, SessionInfo, clock::ManualClock};
use serde_json::{Value, json};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

async fn login(handle: Session, Json(body): Json<Value>) -> Result<Json<Value>, Rejection> {
    let user = body["user"].as_str().unwrap_or("anonymous");
    let remember = body["remember"].as_bool().unwrap_or(false);
    let options = LoginOptions::default().remember_me(remember);
    let session = handle.login_with(user, options).await?;
    Ok(Json(json!({ "user": session.user_id() })))
}

async fn me(session: SessionInfo) -> Json<Value> {
    Json(json!({ "user": session.user_id(), "id": session.id().to_string() }))
}

async fn server(config: Config) -> (String, ManualClock) {
    let clock = ManualClock::new(1_800_000_000_000);
    let layer = loopback::dev_layer(loopback::manager_on(&clock, config));
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .layer(layer);
    (loopback::serve(app).await, clock)
}

fn set_cookie_header(a: &loopback::Answer) -> String {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{}=", loopback::COOKIE)))
        .expect("a session cookie")
        .to_owned()
}

/// A user who clicks every 20 minutes, with no JavaScript, stays signed
/// in past the 8 h lifetime, to the end of the absolute lifetime (7 days
/// by default), and not a request longer.
#[tokio::test]
async fn an_active_user_stays_signed_in_for_the_absolute_lifetime() {
    let (base, clock) = server(Config::default()).await;
    let mut browser = Client::new(base);
    browser.login("alice").await;
    let mut elapsed = Duration::ZERO;
    let mut ids = std::collections::BTreeSet::new();
    let step = 20 * MIN;
    while elapsed + step < 7 * DAY {
        clock.advance(step);
        elapsed += step;
        let a = browser.go(Method::GET, "/me", None).await;
        assert_eq!(a.status, StatusCode::OK, "after {elapsed:?}: {:?}", a.json);
        ids.insert(a.json["id"].as_str().unwrap().to_owned());
    }
    // Renewed on the server every ~7 h of activity: a new id each time.
    assert!(ids.len() >= 20, "{} renewals in 7 days", ids.len());
    clock.advance(step);
    let a = browser.go(Method::GET, "/me", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json["error"], "session_expired", "{:?}", a.json);
}

/// Without sliding expiry the same user is signed out at 8 h.
#[tokio::test]
async fn without_sliding_expiry_the_lifetime_ends_the_session() {
    let config = Config {
        sliding_expiry: false,
        ..Config::default()
    };
    let (base, clock) = server(config).await;
    let mut browser = Client::new(base);
    browser.login("alice").await;
    let mut last_ok = Duration::ZERO;
    for i in 1..=30 {
        clock.advance(20 * MIN);
        let a = browser.go(Method::GET, "/me", None).await;
        if a.status != StatusCode::OK {
            assert_eq!(a.json["error"], "session_expired", "{:?}", a.json);
            break;
        }
        last_ok = 20 * MIN * i;
    }
    assert!(last_ok < 8 * HOUR && last_ok >= 7 * HOUR, "{last_ok:?}");
}

/// A default login's cookie has neither `Max-Age` nor `Expires`: it ends
/// when the browser closes. A remembered login's cookie has a `Max-Age`
/// (the remembered idle timeout), and the session outlives a three-day
/// absence that ends a default one.
#[tokio::test]
async fn browser_session_cookie_by_default_persistent_with_remember_me() {
    let (base, clock) = server(Config::default()).await;

    let mut plain = Client::new(base.clone());
    let a = plain
        .go(Method::POST, "/login", Some(json!({ "user": "alice" })))
        .await;
    let cookie = set_cookie_header(&a);
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "{cookie}"
    );
    let a = plain.go(Method::GET, "/me", None).await;
    assert!(!set_cookie_header(&a).contains("Max-Age"));

    let mut remembered = Client::new(base);
    let a = remembered
        .go(
            Method::POST,
            "/login",
            Some(json!({ "user": "bob", "remember": true })),
        )
        .await;
    let cookie = set_cookie_header(&a);
    assert!(cookie.contains("Max-Age=604800"), "{cookie}");
    let a = remembered.go(Method::GET, "/me", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(set_cookie_header(&a).contains("Max-Age="));

    clock.advance(3 * DAY);
    let a = plain.go(Method::GET, "/me", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = remembered.go(Method::GET, "/me", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
    assert_eq!(a.json["user"], "bob");

    // Its own absolute lifetime (30 days) still ends it: 3 days + 5 x
    // (5 days - 1 min) in, then 3 more days.
    for _ in 0..5 {
        clock.advance(5 * DAY - MIN);
        let a = remembered.go(Method::GET, "/me", None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
    }
    clock.advance(3 * DAY);
    let a = remembered.go(Method::GET, "/me", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json["error"], "session_expired");
}

/// The server's sliding renewal replaces the token it issued to the same
/// request; if that answer is lost, the client still holds the token it
/// presented, which the sequence rule recovers after 2T like any lost
/// answer: never theft, and the session goes on.
#[tokio::test]
async fn a_lost_sliding_renewal_answer_is_recovered_not_theft() {
    let (base, clock) = server(Config::default()).await;
    let mut browser = Client::new(base);
    browser.login("alice").await;
    // Active until just before the renewal window (the last hour of 8 h).
    for _ in 0..14 {
        clock.advance(29 * MIN);
        assert_eq!(
            browser.go(Method::GET, "/me", None).await.status,
            StatusCode::OK
        );
    }
    let before = browser.go(Method::GET, "/me", None).await;
    let id_before = before.json["id"].as_str().unwrap().to_owned();
    clock.advance(20 * MIN);
    // This request is renewed on the server; its answer never arrives.
    let lost = browser.send(Method::GET, "/me", None).await;
    assert_eq!(lost.status, StatusCode::OK);
    assert_ne!(lost.json["id"], id_before.as_str(), "renewed to a new id");
    assert!(lost.set_cookie.is_some(), "the renewed token was sent");
    // The client retries with what it holds, after the recovery delay.
    clock.advance(Duration::from_secs(25));
    let next = browser.go(Method::GET, "/me", None).await;
    assert_eq!(next.status, StatusCode::OK, "{:?}", next.json);
    assert!(next.set_cookie.is_some(), "recovered with a fresh token");
    for _ in 0..3 {
        clock.advance(MIN);
        let a = browser.go(Method::GET, "/me", None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
    }
}
