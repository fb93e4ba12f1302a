//! The session-data examples over real HTTP on loopback, each run as its
//! own server with a reqwest client holding a cookie jar: tower-sessions'
//! counter and strongly-typed ports, the axum-login style flow, and the
//! flash / CSRF / OAuth `state` example (issue 15).
#![cfg(feature = "axum")]

#[allow(dead_code)]
#[path = "../examples/counter.rs"]
mod counter;
#[allow(dead_code)]
#[path = "../examples/flash_csrf_oauth.rs"]
mod flash_csrf_oauth;
#[allow(dead_code)]
#[path = "../examples/login_flow.rs"]
mod login_flow;
mod loopback;
#[allow(dead_code)]
#[path = "../examples/strongly_typed.rs"]
mod strongly_typed;

use std::sync::Arc;

use loopback::serve;
use reqwest::{Response, StatusCode, header, redirect};
use rolling_session::{KeyRing, MemoryStore, SessionManager, SessionStore, TokenKey};
use serde_json::{Value, json};

/// A browser-like client: a cookie jar, redirects followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A client with a cookie jar that shows redirects instead of following.
fn manual() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

async fn text(response: Response) -> (StatusCode, String) {
    (response.status(), response.text().await.unwrap())
}

async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    (status, json)
}

fn location(response: &Response) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

fn sets_cookie(response: &Response) -> bool {
    response.headers().contains_key(header::SET_COOKIE)
}

#[tokio::test]
async fn counter_counts_per_visitor() {
    let base = serve(counter::app()).await;
    let first = browser();
    for n in 0..3 {
        let (status, body) = text(first.get(&base).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("Current count: {n}"));
    }
    let second = browser();
    let (_, body) = text(second.get(&base).send().await.unwrap()).await;
    assert_eq!(body, "Current count: 0");
    let (_, body) = text(first.get(&base).send().await.unwrap()).await;
    assert_eq!(body, "Current count: 3");
}

/// `GuestData { pageviews: 2, first_seen: 1, last_seen: 2 }` -> the field.
fn field(debug: &str, name: &str) -> u64 {
    let start = debug.find(&format!("{name}: ")).unwrap() + name.len() + 2;
    let digits: String = debug[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

#[tokio::test]
async fn strongly_typed_values_round_trip() {
    let base = serve(strongly_typed::app()).await;
    let guest = browser();
    let (status, first) = text(guest.get(&base).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first.starts_with("GuestData {"), "{first}");
    assert_eq!(field(&first, "pageviews"), 1);
    for n in 2..=3 {
        let (_, body) = text(guest.get(&base).send().await.unwrap()).await;
        assert_eq!(field(&body, "pageviews"), n);
        // The struct came back whole: first_seen is the stored one.
        assert_eq!(field(&body, "first_seen"), field(&first, "first_seen"));
        assert!(field(&body, "last_seen") >= field(&first, "last_seen"));
    }
    let (_, other) = text(browser().get(&base).send().await.unwrap()).await;
    assert_eq!(field(&other, "pageviews"), 1);
}

/// The login flow's server, with alice; its manager and store, for the
/// test to ask.
async fn login_flow_server() -> (String, SessionManager, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .shared_store(store.clone())
        .build()
        .unwrap();
    let users = login_flow::Users::default();
    users.set("alice", "wonderland");
    let base = serve(login_flow::app(manager.clone(), users)).await;
    (base, manager, store)
}

async fn log_in(client: &reqwest::Client, base: &str, password: &str) -> (StatusCode, Value) {
    let body = json!({"user": "alice", "password": password});
    let response = client
        .post(format!("{base}/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

#[tokio::test]
async fn a_visitor_who_does_not_write_gets_no_cookie() {
    let (base, _, store) = login_flow_server().await;
    let visitor = browser();
    let read = visitor.get(format!("{base}/cart")).send().await.unwrap();
    assert!(!sets_cookie(&read), "{:?}", read.headers());
    let (status, body) = json_of(read).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"cart": [], "session": null}));
    assert_eq!(store.session_count(), Some(0));

    // The first write creates the anonymous session, and its cookie.
    let write = visitor
        .post(format!("{base}/cart"))
        .json(&json!({"item": "tea"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::OK);
    assert!(sets_cookie(&write));
    assert_eq!(store.session_count(), Some(1));
}

#[tokio::test]
async fn login_keeps_the_anonymous_data_under_a_fresh_id() {
    let (base, manager, store) = login_flow_server().await;
    let c = browser();
    for item in ["tea", "scones"] {
        let add = c.post(format!("{base}/cart")).json(&json!({"item": item}));
        assert_eq!(add.send().await.unwrap().status(), StatusCode::OK);
    }
    let (_, before) = json_of(c.get(format!("{base}/cart")).send().await.unwrap()).await;
    let anonymous_id = before["session"].as_str().unwrap().to_owned();
    assert_eq!(before["cart"], json!(["tea", "scones"]));

    let (status, refused) = log_in(&c, &base, "guess").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused["error"], "invalid_credentials");

    // The login answers with a redirect to /me, which the client follows.
    let (status, me) = log_in(&c, &base, "wonderland").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"], "alice");
    assert_eq!(me["cart"], json!(["tea", "scones"]));
    assert_ne!(me["session"], anonymous_id.as_str());
    // The anonymous session is gone: alice's is the only one left.
    assert_eq!(store.session_count(), Some(1));
    let live = manager.active_sessions("alice").await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id().to_string(), me["session"].as_str().unwrap());
}

#[tokio::test]
async fn require_login_answers_apis_with_401_and_sends_browsers_to_log_in() {
    let (base, ..) = login_flow_server().await;
    let c = manual();
    let (status, body) = json_of(c.get(format!("{base}/me")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "missing_token");

    // An anonymous session is not a login either.
    let add = c.post(format!("{base}/cart")).json(&json!({"item": "tea"}));
    assert_eq!(add.send().await.unwrap().status(), StatusCode::OK);
    let (status, body) = json_of(c.get(format!("{base}/me")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "login_required");

    let page = c
        .get(format!("{base}/me?tab=a&b=1"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&page), "/login?next=/me%3Ftab%3Da%26b%3D1");

    // The login goes on to `next`, a local path only.
    let login = |next: &'static str| {
        let body = json!({"user": "alice", "password": "wonderland", "next": next});
        c.post(format!("{base}/login")).json(&body).send()
    };
    let back = login("/me?tab=a&b=1").await.unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&back), "/me?tab=a&b=1");
    for elsewhere in [
        "//evil.test/",
        "/\\evil.test/",
        "https://evil.test/",
        "/a\r\nb",
    ] {
        let answer = login(elsewhere).await.unwrap();
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{elsewhere:?}");
        assert_eq!(location(&answer), "/me", "{elsewhere:?}");
    }
    let (status, me) = json_of(c.get(format!("{base}/me")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"], "alice");
}

#[tokio::test]
async fn logout_ends_the_session_and_deletes_its_data() {
    let (base, manager, store) = login_flow_server().await;
    let c = browser();
    assert_eq!(log_in(&c, &base, "wonderland").await.0, StatusCode::OK);
    let add = c.post(format!("{base}/cart")).json(&json!({"item": "tea"}));
    assert_eq!(add.send().await.unwrap().status(), StatusCode::OK);
    let (_, me) = json_of(c.get(format!("{base}/me")).send().await.unwrap()).await;
    assert_eq!(me["cart"], json!(["tea"]));
    let id = manager.active_sessions("alice").await.unwrap()[0].id();

    let bye = c.post(format!("{base}/logout")).send().await.unwrap();
    assert_eq!(bye.status(), StatusCode::OK);
    assert!(store.load(&id).await.unwrap().is_none());
    let (_, cart) = json_of(c.get(format!("{base}/cart")).send().await.unwrap()).await;
    assert_eq!(cart, json!({"cart": [], "session": null}));
    // Logging in again starts empty: nothing of the old session survived.
    let (_, me) = log_in(&c, &base, "wonderland").await;
    assert_eq!(me["cart"], json!([]));
}

#[tokio::test]
async fn log_out_of_my_other_devices() {
    let (base, ..) = login_flow_server().await;
    let (laptop, phone, tablet) = (browser(), browser(), browser());
    for device in [&laptop, &phone, &tablet] {
        assert_eq!(log_in(device, &base, "wonderland").await.0, StatusCode::OK);
    }
    let others = laptop.post(format!("{base}/sessions/logout-others"));
    let (status, ended) = json_of(others.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended["ended"], 2);
    for device in [&phone, &tablet] {
        let me = device.get(format!("{base}/me")).send().await.unwrap();
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    }
    let me = laptop.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_password_change_ends_every_session_of_the_user() {
    let (base, manager, _) = login_flow_server().await;
    let (laptop, phone) = (browser(), browser());
    for device in [&laptop, &phone] {
        assert_eq!(log_in(device, &base, "wonderland").await.0, StatusCode::OK);
    }
    let add = laptop
        .post(format!("{base}/cart"))
        .json(&json!({"item": "tea"}));
    assert_eq!(add.send().await.unwrap().status(), StatusCode::OK);
    let before: Vec<_> = manager.active_sessions("alice").await.unwrap();
    assert_eq!(before.len(), 2);

    let change = |old: &str| {
        let body = json!({"old": old, "new": "looking-glass"});
        laptop.post(format!("{base}/password")).json(&body).send()
    };
    assert_eq!(
        change("guess").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let phone_me = phone.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(phone_me.status(), StatusCode::OK);

    let (status, ended) = json_of(change("wonderland").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended["ended"], 2);
    let phone_me = phone.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(phone_me.status(), StatusCode::UNAUTHORIZED);
    // The laptop is logged in again, under a fresh id, with its data.
    let (status, me) = json_of(laptop.get(format!("{base}/me")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["cart"], json!(["tea"]));
    let after = manager.active_sessions("alice").await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(before.iter().all(|s| s.id() != after[0].id()));
    // Only the new password logs in now.
    assert_eq!(
        log_in(&browser(), &base, "wonderland").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        log_in(&browser(), &base, "looking-glass").await.0,
        StatusCode::OK
    );
}

async fn page(client: &reqwest::Client, base: &str) -> Value {
    let (status, body) = json_of(client.get(base).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    body
}

#[tokio::test]
async fn a_flash_message_shows_once_after_the_redirect() {
    let base = serve(flash_csrf_oauth::app()).await;
    let c = browser();
    let first = page(&c, &base).await;
    assert_eq!(first["flash"], Value::Null);
    let csrf = first["csrf"].as_str().unwrap();

    let body = json!({"csrf": csrf, "text": "hello"});
    let post = c.post(format!("{base}/comments")).json(&body);
    // Followed to the page, which shows the message...
    let shown = json_of(post.send().await.unwrap()).await.1;
    assert_eq!(shown["flash"], "comment saved: hello");
    assert_eq!(shown["csrf"], csrf);
    // ...once.
    assert_eq!(page(&c, &base).await["flash"], Value::Null);
}

#[tokio::test]
async fn a_form_post_needs_the_sessions_csrf_token() {
    let base = serve(flash_csrf_oauth::app()).await;
    let c = manual();
    let csrf = page(&c, &base).await["csrf"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 64);

    let post = |token: String| {
        let body = json!({"csrf": token, "text": "hi"});
        c.post(format!("{base}/comments")).json(&body).send()
    };
    let mut wrong = csrf.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let (status, body) = json_of(post(String::from_utf8(wrong).unwrap()).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "csrf_token_mismatch");
    assert_eq!(page(&c, &base).await["flash"], Value::Null);

    // Another visitor's session holds another token: this one is no use.
    let stranger = manual();
    let body = json!({"csrf": csrf, "text": "hi"});
    let (status, _) = json_of(
        stranger
            .post(format!("{base}/comments"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let accepted = post(csrf.clone()).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&accepted), "/");
    assert_eq!(page(&c, &base).await["flash"], "comment saved: hi");
}

/// Starts the OAuth flow on `c` (redirects not followed): the `state` the
/// app sent to the provider.
async fn oauth_start(c: &reqwest::Client, base: &str) -> String {
    let start = c.get(format!("{base}/oauth/start")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let to = location(&start);
    let state = to.strip_prefix("/provider/authorize?state=").unwrap();
    assert_eq!(state.len(), 64, "{to}");
    state.to_owned()
}

#[tokio::test]
async fn the_oauth_state_must_round_trip_and_serves_once() {
    let base = serve(flash_csrf_oauth::app()).await;
    let c = manual();
    let callback = |state: &str| {
        c.get(format!("{base}/oauth/callback?code=abc&state={state}"))
            .send()
    };
    let state = oauth_start(&c, &base).await;
    let (status, body) = json_of(callback("f00d").await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "oauth_state_mismatch");
    // The failed attempt used the state up.
    assert_eq!(
        callback(&state).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    let state = oauth_start(&c, &base).await;
    // Another visitor's session never saw this state.
    let stranger = manual();
    oauth_start(&stranger, &base).await;
    let theirs = stranger
        .get(format!("{base}/oauth/callback?code=abc&state={state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::FORBIDDEN);

    let (status, body) = json_of(callback(&state).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["code"], "abc");
    // Removed: the same callback again is refused.
    assert_eq!(
        callback(&state).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // The whole round trip through the fake provider, redirects followed.
    let (status, body) = json_of(
        browser()
            .get(format!("{base}/oauth/start"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], "c0de");
}
