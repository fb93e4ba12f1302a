//! The HTTP scenarios every adapter must pass, over real HTTP on loopback.
//! Each adapter's test file starts its server and runs these.

#![allow(dead_code)]

use std::time::Duration;

use rand::seq::SliceRandom;
use reqwest::{Method, StatusCode};
use rolling_session::{clock::Clock, clock::ManualClock};
use serde_json::{Value, json};

pub const COOKIE: &str = "rs_session";

/// How long after a lost response the client's next request is certainly
/// a recovery (a fresh token): the rule serves the last presented token
/// without one (`Pending`) while its successor may still be on its way,
/// up to 2T (20 s) after the successor was issued.
pub const LOST_ANSWER_RECOVERY: Duration = Duration::from_secs(21);

/// A browser-like client whose cookie jar we control by hand.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    pub cookie: Option<String>,
}

pub struct Answer {
    pub status: StatusCode,
    pub set_cookie: Option<Option<String>>,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Client {
    pub fn new(base: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
            cookie: None,
        }
    }

    /// Sends a request with the given raw cookie value (not applying the
    /// answer).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&[u8]>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = cookie {
            let mut v = format!("{COOKIE}=").into_bytes();
            v.extend_from_slice(c);
            req = req.header(
                "cookie",
                reqwest::header::HeaderValue::from_bytes(&v).expect("valid header bytes"),
            );
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::answer(req.send().await.expect("request")).await
    }

    async fn answer(res: reqwest::Response) -> Answer {
        let status = res.status();
        let headers = res.headers().clone();
        let set_cookie = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{COOKIE}=")))
            .map(|v| {
                let value = v[COOKIE.len() + 1..].split(';').next().unwrap_or("");
                (!value.is_empty()).then(|| value.to_owned())
            });
        let text = res.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            set_cookie,
            headers,
            json,
        }
    }

    /// Posts a raw JSON text (for bodies `serde_json::Value` cannot hold).
    pub async fn send_raw_json(&self, path: &str, body: String) -> Answer {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header(
                "cookie",
                format!("{COOKIE}={}", self.cookie.as_deref().unwrap_or("")),
            )
            .body(body)
            .send()
            .await
            .expect("request");
        Self::answer(res).await
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_with(
            method,
            path,
            self.cookie.as_deref().map(str::as_bytes),
            body,
        )
        .await
    }

    /// Sends and applies the answer's `Set-Cookie` to the jar.
    pub async fn go(&mut self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let a = self.send(method, path, body).await;
        self.apply(&a);
        a
    }

    pub fn apply(&mut self, a: &Answer) {
        if let Some(c) = &a.set_cookie {
            self.cookie = c.clone();
        }
    }

    pub async fn login(&mut self, user: &str) -> Answer {
        let a = self
            .go(Method::POST, "/login", Some(json!({ "user": user })))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
        assert!(self.cookie.is_some(), "login sets the cookie");
        a
    }
}

pub async fn six_requests_six_distinct_tokens(base: String) {
    let mut c = Client::new(base);
    c.login("alice").await;
    let mut seen = vec![c.cookie.clone().unwrap()];
    for _ in 0..6 {
        let a = c.go(Method::GET, "/me", None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.json["user"], "alice");
        let token = c.cookie.clone().unwrap();
        assert!(!seen.contains(&token), "token repeated");
        assert_eq!(token.len(), 56);
        seen.push(token);
        let cache = a.headers.get("cache-control").unwrap().to_str().unwrap();
        assert_eq!(cache, "no-store");
        assert!(a.headers.contains_key("x-session-expires-in-ms"));
    }
    assert_eq!(seen.len(), 7);
}

pub async fn parallel_requests_applied_in_random_order(base: String) {
    let mut c = Client::new(base);
    c.login("alice").await;
    let mut rng = rand::thread_rng();
    for _round in 0..5 {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.send(Method::GET, "/me", None).await })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            let a = t.await.unwrap();
            assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
            answers.push(a);
        }
        answers.shuffle(&mut rng);
        for a in &answers {
            c.apply(a);
        }
        let a = c.go(Method::GET, "/me", None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
    }
}

pub async fn replay_after_grace_revokes(base: String, clock: &ManualClock) {
    let mut c = Client::new(base);
    c.login("alice").await;
    let stolen = c.cookie.clone().unwrap();
    c.go(Method::GET, "/me", None).await;
    c.go(Method::GET, "/me", None).await;
    clock.advance(Duration::from_secs(11));
    let thief = c
        .send_with(Method::GET, "/me", Some(stolen.as_bytes()), None)
        .await;
    assert_eq!(thief.status, StatusCode::UNAUTHORIZED);
    assert_eq!(thief.json["error"], "token_reused");
    let victim = c.send(Method::GET, "/me", None).await;
    assert_eq!(victim.status, StatusCode::UNAUTHORIZED);
    assert_eq!(victim.json["error"], "session_revoked");
    assert_eq!(
        victim.set_cookie, None,
        "a refusal never touches the cookie (only logout clears it)"
    );
    assert_eq!(thief.set_cookie, None);
}

pub async fn malformed_cookies_get_4xx_json(base: String) {
    let mut c = Client::new(base);
    c.login("alice").await;
    let good = c.cookie.clone().unwrap();
    let mut extra = good.clone();
    extra.push('A');
    let random_b64: String = {
        use base64::Engine;
        let bytes: Vec<u8> = (0..42).map(|_| rand::random::<u8>()).collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![b'A'; 8 * 1024],
        "é€漢字ñ".repeat(8).into_bytes(),
        good.as_bytes()[..good.len() - 5].to_vec(),
        extra.into_bytes(),
        random_b64.into_bytes(),
        b"\x80\xff\xfe".to_vec(),
    ];
    for case in &cases {
        let a = c.send_with(Method::GET, "/me", Some(case), None).await;
        assert!(
            a.status.is_client_error(),
            "{} for {:?}",
            a.status,
            String::from_utf8_lossy(case)
        );
        assert!(a.json["error"].is_string(), "JSON error body: {:?}", a.json);
        assert!(a.json["message"].is_string());
    }
    // The real session is untouched.
    let a = c.go(Method::GET, "/me", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json["user"], "alice");
}

/// The configuration of the scenarios that drive the client's renewal
/// protocol (refresh, confirm) near expiry: sliding expiry off, so the
/// server does not renew first. `tests/lifetime.rs` covers sliding expiry.
pub fn client_renewal_config() -> rolling_session::Config {
    rolling_session::Config {
        sliding_expiry: false,
        ..rolling_session::Config::default()
    }
}

pub async fn status_refresh_confirm_logout(base: String, clock: &ManualClock) {
    let mut c = Client::new(base);
    let a = c.send(Method::GET, "/session/status", None).await;
    assert_eq!(
        (a.status, a.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
    c.login("alice").await;
    let s = c.go(Method::GET, "/session/status", None).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.json["user_id"], "alice");
    assert_eq!(s.json["expires_in_ms"], 8 * 3_600_000);
    assert_eq!(s.json["idle_expires_in_ms"], 30 * 60_000);
    assert_eq!(s.json["refresh_recommended"], false);

    let early = c.go(Method::POST, "/session/refresh", None).await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.json["error"], "renewal_too_early");
    assert_eq!(early.json["retry_after_ms"], 7 * 3_600_000);

    // Stay active through the afternoon, then renew in the last hour.
    for _ in 0..15 {
        clock.advance(Duration::from_secs(29 * 60));
        assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
    }
    let s = c.go(Method::GET, "/session/status", None).await;
    assert_eq!(s.json["refresh_recommended"], true);
    let old = c.cookie.clone().unwrap();
    let r = c.go(Method::POST, "/session/refresh", None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert_eq!(r.json["pending_confirmation"], true);
    assert_eq!(r.json["renewals"], 1);
    assert_eq!(r.json["expires_in_ms"], 8 * 3_600_000);
    assert_ne!(c.cookie.as_deref(), Some(old.as_str()));
    let renewed = c.cookie.clone().unwrap();
    // A request in flight with the old cookie still works, and is handed no
    // token: the jar keeps the renewed one.
    let in_flight = c
        .send_with(Method::GET, "/me", Some(old.as_bytes()), None)
        .await;
    assert_eq!(in_flight.status, StatusCode::OK);
    assert_eq!(in_flight.set_cookie, None);
    // Confirm validates the renewed token (the request rolls it like any
    // other); it is idempotent.
    for _ in 0..2 {
        let held = c.cookie.clone().unwrap();
        let confirm = c.go(Method::POST, "/session/refresh/confirm", None).await;
        assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.json);
        assert_eq!(confirm.json["confirmed"], true);
        assert!(confirm.set_cookie.is_some());
        assert_ne!(c.cookie.as_deref(), Some(held.as_str()));
    }
    assert_ne!(c.cookie.as_deref(), Some(renewed.as_str()));
    // The old token is now retired: a late request with it is accepted
    // within its grace, without a token.
    let late = c
        .send_with(Method::GET, "/me", Some(old.as_bytes()), None)
        .await;
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(late.set_cookie, None);
    assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);

    let js = c.send(Method::GET, "/session/client.js", None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );

    let before_logout = c.cookie.clone();
    let out = c.go(Method::POST, "/logout", None).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.json["ok"], true);
    assert!(c.cookie.is_none(), "logout clears the cookie");
    assert_eq!(
        c.go(Method::GET, "/me", None).await.json["error"],
        "missing_token"
    );
    // A copy of the cookie kept from before (the back button, a second
    // tab, a thief) cannot resume the session: it ended on the server.
    let resumed = c
        .send_with(
            Method::GET,
            "/me",
            before_logout.as_deref().map(str::as_bytes),
            None,
        )
        .await;
    assert_eq!(
        (resumed.status, resumed.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_not_found"))
    );
}

/// A refresh sent while the response of an earlier request (which rotated
/// the token) is still on its way presents a token that is not live: it is
/// refused with 409 `token_not_live`, changes nothing, and succeeds when
/// retried with the newer token. Had the earlier response been lost, the
/// retry after T recovers and renews.
pub async fn refresh_racing_a_response_in_flight_is_refused_then_retried(
    base: String,
    clock: &ManualClock,
) {
    let mut c = Client::new(base);
    c.login("grace").await;
    // Active until the last hour, when renewal opens.
    for _ in 0..15 {
        clock.advance(Duration::from_secs(29 * 60));
        assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
    }
    // Request A is answered (rotating the token) but its response is slow;
    // the refresh, sent with the same cookie, arrives meanwhile.
    let slow = c.send(Method::GET, "/me", None).await;
    assert_eq!(slow.status, StatusCode::OK);
    let before = c.cookie.clone().unwrap();
    let refused = c.go(Method::POST, "/session/refresh", None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.json);
    assert_eq!(refused.json["error"], "token_not_live");
    assert_eq!(refused.set_cookie, None);
    assert_eq!(c.cookie.as_deref(), Some(before.as_str()));
    c.apply(&slow);
    let s = c.go(Method::GET, "/session/status", None).await;
    assert_eq!(s.json["renewals"], 0, "the refused refresh changed nothing");

    let refresh = c.go(Method::POST, "/session/refresh", None).await;
    assert_eq!(refresh.status, StatusCode::OK, "{:?}", refresh.json);
    assert_eq!(refresh.json["renewals"], 1);
    let renewed = c.cookie.clone().unwrap();
    let confirm = c.go(Method::POST, "/session/refresh/confirm", None).await;
    assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.json);
    assert_ne!(c.cookie.as_deref(), Some(renewed.as_str()), "rolled on");
    assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);

    // The refresh's own response is lost: the client still holds the token
    // it refreshed with. A retry is refused (409: the renewal already
    // happened) and changes nothing; after T its next request recovers
    // into the renewed session.
    for _ in 0..15 {
        clock.advance(Duration::from_secs(29 * 60));
        assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
    }
    let held = c.cookie.clone().unwrap();
    let lost = c.send(Method::POST, "/session/refresh", None).await;
    assert_eq!(lost.status, StatusCode::OK, "{:?}", lost.json);
    let again = c.go(Method::POST, "/session/refresh", None).await;
    assert_eq!(
        (again.status, again.json["error"].as_str()),
        (StatusCode::CONFLICT, Some("renewal_too_early"))
    );
    assert_eq!(again.set_cookie, None);
    let waiting = c.go(Method::GET, "/me", None).await;
    assert_eq!(waiting.status, StatusCode::OK);
    assert_eq!(
        waiting.set_cookie, None,
        "pending: the renewed token may still arrive"
    );
    clock.advance(LOST_ANSWER_RECOVERY);
    let recovered = c.go(Method::GET, "/session/status", None).await;
    assert_eq!(recovered.status, StatusCode::OK, "{:?}", recovered.json);
    assert_eq!(recovered.json["renewals"], 2, "the lost renewal happened");
    assert!(
        recovered.set_cookie.is_some() && c.cookie.as_deref() != Some(held.as_str()),
        "a fresh token replaces the one whose successor was lost"
    );
    assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
}

/// Without the `drift` feature `POST /session/telemetry` answers 404
/// `drift_disabled`, signed in or not, and the session still works.
pub async fn telemetry_route_disabled(base: String) {
    let mut c = Client::new(base);
    let report = json!({ "timestamp": 1, "operation_count": 1, "client_entropy": 0.5 });
    for signed_in in [false, true] {
        if signed_in {
            c.login("telemetry").await;
        }
        let a = c
            .send(Method::POST, "/session/telemetry", Some(report.clone()))
            .await;
        assert_eq!(
            (a.status, a.json["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("drift_disabled")),
            "signed in: {signed_in}"
        );
    }
    assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
}

/// `POST /session/telemetry`: advice for good reports, 400 with a reason
/// for bad ones, 429 when too frequent; the session keeps rolling.
pub async fn telemetry_route(base: String, clock: &ManualClock) {
    let mut c = Client::new(base);
    let none = c
        .send(Method::POST, "/session/telemetry", Some(json!({})))
        .await;
    assert_eq!(
        (none.status, none.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
    c.login("telemetry").await;
    let now = |clock: &ManualClock| i64::try_from(clock.now_ms()).unwrap();
    let report = |clock: &ManualClock, count: u64, echo: Option<i64>| {
        json!({
            "timestamp": now(clock) - 250,
            "operation_count": count,
            "client_entropy": 0.42,
            "echo_server_timestamp": echo,
        })
    };

    let mut echo = None;
    for i in 0..4u64 {
        clock.advance(Duration::from_secs(10));
        let a = c
            .go(
                Method::POST,
                "/session/telemetry",
                Some(report(clock, 5 * i, echo)),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
        assert!(
            a.set_cookie.is_some(),
            "the telemetry request rolls the token too"
        );
        let fields: Vec<&str> = a
            .json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for field in [
            "server_timestamp",
            "skew_ms",
            "drift_ppm",
            "rtt_ms",
            "predicted_operation_count",
            "horizon_ms",
            "anomaly_score",
            "refresh",
            "refresh_in_ms",
        ] {
            assert!(fields.contains(&field), "{field} missing from {:?}", a.json);
        }
        assert_eq!(a.json["server_timestamp"], now(clock));
        assert_eq!(a.json["skew_ms"], 250.0);
        assert_eq!(a.json["horizon_ms"], 45_000);
        let score = a.json["anomaly_score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        echo = a.json["server_timestamp"].as_i64();
    }

    // Too soon after the last report.
    let early = c
        .go(
            Method::POST,
            "/session/telemetry",
            Some(report(clock, 100, echo)),
        )
        .await;
    assert_eq!(
        early.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        early.json
    );
    assert_eq!(early.json["error"], "rate_limited");
    assert_eq!(early.json["retry_after_ms"], 2_500);

    clock.advance(Duration::from_secs(10));
    let far_future = now(clock) + 10 * 86_400_000;
    let bad: Vec<(Value, &str)> = vec![
        (report(clock, 1, None), "counter_decreased"),
        (
            json!({"timestamp": far_future, "operation_count": 100, "client_entropy": 0.1}),
            "timestamp_out_of_range",
        ),
        (
            json!({"timestamp": now(clock), "operation_count": 100, "client_entropy": 0.1,
                   "echo_server_timestamp": now(clock) + 3_600_000}),
            "echo_out_of_range",
        ),
        (
            json!({"timestamp": now(clock), "operation_count": "many", "client_entropy": 0.1}),
            "malformed_telemetry",
        ),
        (
            json!({"timestamp": now(clock), "operation_count": -4, "client_entropy": 0.1}),
            "malformed_telemetry",
        ),
        (
            json!({"timestamp": now(clock), "client_entropy": 0.1}),
            "malformed_telemetry",
        ),
        (
            json!({"timestamp": now(clock), "operation_count": 100, "client_entropy": 0.1,
                   "operation": "x".repeat(5_000)}),
            "malformed_telemetry",
        ),
        (json!([1, 2, 3]), "malformed_telemetry"),
    ];
    for (body, reason) in bad {
        let a = c
            .go(Method::POST, "/session/telemetry", Some(body.clone()))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {:?}", a.json);
        assert_eq!(a.json["error"], reason, "{body}");
    }
    // JSON has no NaN; an out-of-range number is refused as malformed.
    let raw = c
        .send_raw_json(
            "/session/telemetry",
            format!(
                r#"{{"timestamp": {}, "operation_count": 100, "client_entropy": 1e999}}"#,
                now(clock)
            ),
        )
        .await;
    assert_eq!(raw.status, StatusCode::BAD_REQUEST, "{:?}", raw.json);
    c.apply(&raw);

    // None of that hurt the session or its drift state.
    let ok = c
        .go(
            Method::POST,
            "/session/telemetry",
            Some(json!({
            "timestamp": now(clock), "operation_count": 100, "client_entropy": 0.1,
            "operation": "checkout"})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json);
    assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
}

/// Issue 11's observations, each as a scenario over real HTTP that failed
/// under the old sequence rule. The adapters' `tests/issue11_*.rs` start a
/// server with [`issue11::manager`] and the routes listed there, and run
/// every scenario against it. The manager runs on a [`ManualClock`], so
/// pauses cost no wall time; the token settings are the library's
/// defaults.
pub mod issue11 {
    use std::sync::{Arc, Mutex};

    use rolling_session::{
        Config, KeyRing, SessionManager, TokenKey, events::MemorySink, events::SessionEvent,
        store::SessionId,
    };
    use tokio::sync::Semaphore;

    use super::*;

    /// Routes the scenarios need, besides the session routes:
    ///
    /// - `POST /login {"user"}`, `POST /logout`;
    /// - `GET /me` answering `{"user", "id", "permissions"}`;
    /// - `POST /elevate {"permissions": [...]}`: `Session::set_permissions`,
    ///   answering `{"id", "permissions"}`;
    /// - `GET /slow`: calls [`Gate::pass`] before answering `{"user"}`.
    pub struct Server {
        pub base: String,
        pub clock: ManualClock,
        pub events: Arc<MemorySink>,
        pub gate: Arc<Gate>,
    }

    /// Holds `GET /slow` requests until the test lets them go.
    pub struct Gate {
        entered: Semaphore,
        release: Semaphore,
    }

    impl Default for Gate {
        fn default() -> Self {
            Self {
                entered: Semaphore::new(0),
                release: Semaphore::new(0),
            }
        }
    }

    impl Gate {
        /// In the handler: tells the test the request is being handled
        /// (validated, its token issued), then waits to be released.
        pub async fn pass(&self) {
            self.entered.add_permits(1);
            self.release.acquire().await.expect("open").forget();
        }

        async fn entered(&self) {
            self.entered.acquire().await.expect("open").forget();
        }

        fn release(&self) {
            self.release.add_permits(1);
        }
    }

    /// The manager behind the scenario servers: the library's default
    /// token settings (grace window, floor, depth), renewal allowed at any
    /// time.
    pub fn manager(clock: &ManualClock, events: &Arc<MemorySink>) -> SessionManager {
        let mut config = Config::default();
        config.renewal_threshold = config.expiration_time;
        // The scenarios drive renewal themselves (the refresh route, a
        // handler); tests/lifetime.rs covers the server's sliding renewal.
        config.sliding_expiry = false;
        SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
            .config(config)
            .clock(clock.clone())
            .events(events.clone())
            .build()
            .unwrap()
    }

    const T: Duration = Duration::from_secs(10);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// `(current id, every id of the lineage, presented counter)` of each
    /// theft event.
    fn thefts(server: &Server) -> Vec<(SessionId, Vec<SessionId>, u64)> {
        server
            .events
            .events()
            .into_iter()
            .filter_map(|e| match e {
                SessionEvent::TheftDetected {
                    session_id,
                    lineage,
                    presented_counter,
                    ..
                } => Some((session_id, lineage, presented_counter)),
                _ => None,
            })
            .collect()
    }

    fn id_of(a: &Answer) -> SessionId {
        SessionId::parse_hex(a.json["id"].as_str().expect("an id")).expect("hex id")
    }

    async fn me(c: &mut Client) -> Answer {
        let a = c.go(Method::GET, "/me", None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
        a
    }

    /// Sends with a raw cookie value, not touching any jar.
    async fn with(c: &Client, method: Method, path: &str, cookie: &str) -> Answer {
        c.send_with(method, path, Some(cookie.as_bytes()), None)
            .await
    }

    fn assert_refused(a: &Answer, reason: &str) {
        assert_eq!(
            (a.status, a.json["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(reason)),
            "{:?}",
            a.json
        );
        assert_eq!(a.set_cookie, None, "a refusal never touches the cookie");
    }

    /// Observation 1: a thief renews with a copied cookie and confirms. The victim's
    /// next request is theft for the whole lineage: `token_reused`, one
    /// event naming both ids, and the thief's renewed session is revoked
    /// with it. (Before: the victim got `session_not_found`, no event, and
    /// the thief kept the renewed session.)
    pub async fn theft_through_renewal_and_confirm_is_caught(server: &Server) {
        let mut victim = Client::new(server.base.clone());
        victim.login("victim").await;
        let original = id_of(&me(&mut victim).await);
        // The thief copies the cookie jar while the victim reads a page.
        let mut thief = victim.clone();
        let r = thief.go(Method::POST, "/session/refresh", None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        assert_eq!(r.json["renewals"], 1);
        let c = thief
            .go(Method::POST, "/session/refresh/confirm", None)
            .await;
        assert_eq!(c.status, StatusCode::OK, "{:?}", c.json);
        let renewed = id_of(&me(&mut thief).await);
        assert_ne!(renewed, original);
        assert_eq!(renewed.lineage(), original.lineage());

        server.clock.advance(T + secs(1.0));
        let back = victim.go(Method::GET, "/me", None).await;
        assert_refused(&back, "token_reused");
        assert_refused(&thief.go(Method::GET, "/me", None).await, "session_revoked");
        assert_refused(
            &thief.go(Method::GET, "/session/status", None).await,
            "session_revoked",
        );
        // The copy was token 1 (login's token 0, then one request).
        assert_eq!(thefts(server), [(renewed, vec![original, renewed], 1)]);
    }

    /// Observation 1, elevation: a thief elevates a copied cookie through a handler
    /// calling `Session::set_permissions`; the victim's next request
    /// revokes both ids, the elevated one included.
    pub async fn theft_through_elevation_is_caught(server: &Server) {
        let mut victim = Client::new(server.base.clone());
        victim.login("victim").await;
        let original = id_of(&me(&mut victim).await);
        let mut thief = victim.clone();
        let e = thief
            .go(
                Method::POST,
                "/elevate",
                Some(json!({ "permissions": ["admin"] })),
            )
            .await;
        assert_eq!(e.status, StatusCode::OK, "{:?}", e.json);
        let elevated = id_of(&e);
        assert_ne!(elevated, original);
        let a = me(&mut thief).await;
        assert_eq!(a.json["permissions"], json!(["admin"]));

        server.clock.advance(T + secs(1.0));
        assert_refused(&victim.go(Method::GET, "/me", None).await, "token_reused");
        assert_refused(&thief.go(Method::GET, "/me", None).await, "session_revoked");
        let theft = thefts(server);
        assert_eq!(theft.len(), 1);
        assert_eq!(
            (theft[0].0, &theft[0].1),
            (elevated, &vec![original, elevated])
        );
    }

    /// Observation 2a: one response is lost; the user reads for 11 s and clicks: the
    /// request is served (the lost token is recovered), no theft.
    pub async fn lost_response_then_a_long_pause_is_recovered(server: &Server) {
        let mut c = Client::new(server.base.clone());
        c.login("reader").await;
        me(&mut c).await;
        let held = c.cookie.clone();
        let lost = c.send(Method::GET, "/me", None).await;
        assert_eq!(lost.status, StatusCode::OK);
        assert!(lost.set_cookie.is_some(), "it carried the next token");
        server.clock.advance(secs(11.0));
        // Served; handed no token while the lost one may still arrive, or a
        // fresh one, never the lost one.
        let click = me(&mut c).await;
        assert_ne!(click.set_cookie, lost.set_cookie);
        server.clock.advance(secs(11.0));
        let later = me(&mut c).await;
        assert!(later.set_cookie.is_some(), "recovered: a fresh token");
        assert_ne!(c.cookie, held);
        me(&mut c).await;
        assert!(thefts(server).is_empty());
    }

    /// Observation 2b: a slow request is validated (its token issued) before faster
    /// ones that start after it and finish first; the jar must never roll
    /// back. The faster ones carry no token while the slow one's is
    /// pending; when the slow response leaves after the client has moved
    /// on, it goes without its stale token.
    pub async fn slow_response_never_rolls_the_jar_back(server: &Server) {
        let mut c = Client::new(server.base.clone());
        c.login("slow").await;
        me(&mut c).await;

        // Phase 1: the slow response arrives last but promptly.
        let slow = {
            let c = c.clone();
            tokio::spawn(async move { c.send(Method::GET, "/slow", None).await })
        };
        server.gate.entered().await;
        for _ in 0..2 {
            let fast = me(&mut c).await;
            assert_eq!(fast.set_cookie, None, "the slow request's token is pending");
        }
        server.gate.release();
        let s = slow.await.unwrap();
        assert_eq!(s.status, StatusCode::OK);
        assert!(s.set_cookie.is_some());
        c.apply(&s);
        server.clock.advance(secs(11.0));
        me(&mut c).await;

        // Phase 2: the slow handler outlasts a long pause, after which the
        // client recovers and moves on twice; then the slow response
        // leaves.
        let slow = {
            let c = c.clone();
            tokio::spawn(async move { c.send(Method::GET, "/slow", None).await })
        };
        server.gate.entered().await;
        me(&mut c).await;
        server.clock.advance(LOST_ANSWER_RECOVERY);
        let recovered = me(&mut c).await;
        assert!(recovered.set_cookie.is_some());
        let newer = me(&mut c).await;
        assert!(newer.set_cookie.is_some());
        let held = c.cookie.clone();
        server.gate.release();
        let s = slow.await.unwrap();
        assert_eq!(s.status, StatusCode::OK);
        assert_eq!(s.set_cookie, None, "a late response goes without its token");
        c.apply(&s);
        assert_eq!(c.cookie, held, "no rollback");
        server.clock.advance(secs(11.0));
        me(&mut c).await;
        assert!(thefts(server).is_empty());
    }

    /// Observation 2c: one telemetry report with a 1 ms round trip sizes T from it, but
    /// never below `token.grace_min` (2 s): a lost response followed by a
    /// 1.5 s pause, and a slow request landing 1.5 s after the client moved
    /// past its token, are both served. A copy 2.5 s after it was retired
    /// is theft: the measured (floored) window is in force, not the
    /// configured 10 s.
    pub async fn one_telemetry_report_never_shrinks_the_grace_below_its_floor(server: &Server) {
        let mut c = Client::new(server.base.clone());
        c.login("measured").await;
        let status = c.go(Method::GET, "/session/status", None).await;
        let echo = status.json["server_timestamp"].as_i64().unwrap();
        server.clock.advance(Duration::from_millis(1));
        let now = i64::try_from(server.clock.now_ms()).unwrap();
        let tel = c
            .go(
                Method::POST,
                "/session/telemetry",
                Some(json!({
                    "timestamp": now, "operation_count": 3, "client_entropy": 0.5,
                    "echo_server_timestamp": echo,
                })),
            )
            .await;
        assert_eq!(tel.status, StatusCode::OK, "{:?}", tel.json);
        assert_eq!(tel.json["rtt_ms"], 1.0);

        // (a) A lost response, then 1.5 s.
        let lost = c.send(Method::GET, "/me", None).await;
        assert!(lost.set_cookie.is_some());
        server.clock.advance(secs(1.5));
        let retry = me(&mut c).await;
        assert_eq!(retry.set_cookie, None, "still pending");
        server.clock.advance(secs(3.0));
        let recovered = me(&mut c).await;
        assert!(
            recovered.set_cookie.is_some(),
            "recovered after 2T of the measured window (4 s), not of the configured one"
        );

        // (b) A slow request with the token the client then moved past.
        let old = c.cookie.clone().unwrap();
        me(&mut c).await;
        me(&mut c).await; // first use of old's successor: old retired now
        server.clock.advance(secs(1.5));
        let late = with(&c, Method::GET, "/me", &old).await;
        assert_eq!(late.status, StatusCode::OK, "{:?}", late.json);
        assert_eq!(late.set_cookie, None);
        me(&mut c).await;
        assert!(thefts(server).is_empty());

        server.clock.advance(secs(1.0));
        assert_refused(&with(&c, Method::GET, "/me", &old).await, "token_reused");
    }

    /// Observation 2d: a request sent with the pre-refresh cookie lands after the
    /// confirmation: it is served (grace) and its answer carries no
    /// `Set-Cookie`, least of all one clearing the renewed cookie.
    pub async fn pre_refresh_cookie_after_confirm_is_served_and_clears_nothing(server: &Server) {
        let mut c = Client::new(server.base.clone());
        c.login("refresher").await;
        let older = c.cookie.clone().unwrap();
        me(&mut c).await;
        let old = c.cookie.clone().unwrap();
        let r = c.go(Method::POST, "/session/refresh", None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        let confirm = c.go(Method::POST, "/session/refresh/confirm", None).await;
        assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.json);
        let renewed = c.cookie.clone();
        server.clock.advance(secs(2.0));
        for cookie in [&old, &older] {
            let late = with(&c, Method::GET, "/me", cookie).await;
            assert_eq!(late.status, StatusCode::OK, "{:?}", late.json);
            assert_eq!(late.set_cookie, None, "nothing set, nothing cleared");
            c.apply(&late);
        }
        assert_eq!(c.cookie, renewed);
        me(&mut c).await;
        assert!(thefts(server).is_empty());
    }

    /// A cookie jar shared by concurrent requests, as a browser's: each
    /// request takes the cookie when it leaves and stores a `Set-Cookie`
    /// when its response arrives.
    #[derive(Clone)]
    struct Browser {
        client: Client,
        jar: Arc<Mutex<Option<String>>>,
    }

    impl Browser {
        async fn get(&self, path: &str) -> Answer {
            let cookie = self.jar.lock().unwrap().clone();
            let a = self
                .client
                .send_with(
                    Method::GET,
                    path,
                    cookie.as_deref().map(str::as_bytes),
                    None,
                )
                .await;
            if let Some(set) = &a.set_cookie {
                *self.jar.lock().unwrap() = set.clone();
            }
            a
        }
    }

    /// Observation 2e: bursts with the default configuration: six connections each
    /// sending requests back to back, and 50 requests at once, every one
    /// taking whatever cookie the shared jar holds when it leaves (so a
    /// burst carries several generations of the token). None is refused.
    pub async fn parallel_bursts_are_never_refused(server: &Server) {
        let mut c = Client::new(server.base.clone());
        c.login("bursty").await;
        let browser = Browser {
            client: c.clone(),
            jar: Arc::new(Mutex::new(c.cookie.clone())),
        };
        let mut refused = Vec::new();
        for round in 0..4u64 {
            // Six connections, ten requests each.
            let six: Vec<_> = (0..6u64)
                .map(|i| {
                    let b = browser.clone();
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        for j in 0..10u64 {
                            tokio::time::sleep(Duration::from_micros((i * 131 + j * 71) % 900))
                                .await;
                            out.push(b.get("/me").await);
                        }
                        out
                    })
                })
                .collect();
            for t in six {
                for a in t.await.unwrap() {
                    if a.status != StatusCode::OK {
                        refused.push((round, 6, a.status, a.json));
                    }
                }
            }
            // Fifty at once.
            let fifty: Vec<_> = (0..50u64)
                .map(|i| {
                    let b = browser.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_micros(i * 97 % 3_000)).await;
                        b.get("/me").await
                    })
                })
                .collect();
            for t in fifty {
                let a = t.await.unwrap();
                if a.status != StatusCode::OK {
                    refused.push((round, 50, a.status, a.json));
                }
            }
            server.clock.advance(Duration::from_millis(700));
        }
        assert!(refused.is_empty(), "refused: {refused:?}");
        server.clock.advance(secs(11.0));
        let a = browser.get("/me").await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
        assert!(thefts(server).is_empty());
    }

    /// Observation 3a: a renewal does not freeze the old token: while the renewed
    /// token is unused the old one is served without being handed it, and
    /// once the renewed token is in use the old one is a predecessor like
    /// any other: theft after its grace, for the whole lineage.
    pub async fn old_token_after_renewal_is_theft_after_its_grace(server: &Server) {
        let mut c = Client::new(server.base.clone());
        c.login("renewer").await;
        let original = id_of(&me(&mut c).await);
        let old = c.cookie.clone().unwrap();
        let r = c.go(Method::POST, "/session/refresh", None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        let renewed_token = c.cookie.clone().unwrap();
        let during = with(&c, Method::GET, "/me", &old).await;
        assert_eq!(during.status, StatusCode::OK);
        assert_eq!(during.set_cookie, None, "never handed the renewed token");
        let renewed = id_of(&me(&mut c).await);
        let confirm = c.go(Method::POST, "/session/refresh/confirm", None).await;
        assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.json);

        server.clock.advance(T + secs(1.0));
        assert_refused(&with(&c, Method::GET, "/me", &old).await, "token_reused");
        for token in [
            old.as_str(),
            renewed_token.as_str(),
            c.cookie.as_deref().unwrap(),
        ] {
            assert_refused(
                &with(&c, Method::GET, "/me", token).await,
                "session_revoked",
            );
        }
        assert_eq!(thefts(server), [(renewed, vec![original, renewed], 1)]);
    }

    /// Observation 3b: an unconfirmed renewal whose renewed token is then copied: theft
    /// on the renewed id revokes the lineage, and every token of it, the
    /// pre-renewal one included, gets 401 on every route.
    pub async fn a_revoked_lineage_refuses_all_its_tokens_on_every_route(server: &Server) {
        let mut c = Client::new(server.base.clone());
        c.login("revoked").await;
        me(&mut c).await;
        let old = c.cookie.clone().unwrap();
        let r = c.go(Method::POST, "/session/refresh", None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        let copy = c.cookie.clone().unwrap(); // the renewed token, copied
        me(&mut c).await;
        me(&mut c).await;
        server.clock.advance(T + secs(1.0));
        assert_refused(&with(&c, Method::GET, "/me", &copy).await, "token_reused");
        let live = c.cookie.clone().unwrap();
        for token in [&old, &copy, &live] {
            for (method, path) in [
                (Method::GET, "/me"),
                (Method::GET, "/session/status"),
                (Method::POST, "/session/refresh"),
                (Method::POST, "/session/refresh/confirm"),
                (Method::POST, "/session/telemetry"),
                (Method::POST, "/elevate"),
                (Method::POST, "/logout"),
            ] {
                let a = c
                    .send_with(
                        method.clone(),
                        path,
                        Some(token.as_bytes()),
                        Some(json!({})),
                    )
                    .await;
                assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}: {:?}", a.json);
                assert_eq!(a.json["error"], "session_revoked", "{path}");
            }
        }
        assert_eq!(thefts(server).len(), 1);
    }

    /// Not an observation of issue 11 but the same promise: an elevation
    /// whose answer is lost (or leaves after the send deadline) must leave
    /// the client a token the rule recovers. Through the layer, the handler
    /// elevates with the token the layer issued to this very request, which
    /// the client never received: it is replaced, not used, so the token
    /// the client still holds stays `p` and is recovered.
    pub async fn elevation_with_a_lost_answer_is_not_theft(server: &Server) {
        let mut c = Client::new(server.base.clone());
        c.login("elevator").await;
        me(&mut c).await;
        let lost = c
            .send(
                Method::POST,
                "/elevate",
                Some(json!({ "permissions": ["admin"] })),
            )
            .await;
        assert_eq!(lost.status, StatusCode::OK, "{:?}", lost.json);
        server.clock.advance(LOST_ANSWER_RECOVERY);
        let next = c.go(Method::GET, "/me", None).await;
        assert_eq!(next.status, StatusCode::OK, "{:?}", next.json);
        // Served on the strength of a pre-elevation token: the permissions
        // it had. Its answer carries the elevated id's token.
        assert_eq!(next.json["permissions"], json!([]), "recovered");
        let after = c.go(Method::GET, "/me", None).await;
        assert_eq!(after.status, StatusCode::OK, "{:?}", after.json);
        assert_eq!(after.json["permissions"], json!(["admin"]), "elevated");
        assert!(thefts(server).is_empty());
    }

    /// Observation 4: a thief holding a copy five rotations old, presenting it
    /// interleaved with the victim's requests: within T of the victim
    /// moving past it, it is served but never handed a token (least of all
    /// the live one); its first use after T is theft.
    pub async fn a_stale_copy_is_never_upgraded_and_is_caught_after_the_grace(server: &Server) {
        let mut victim = Client::new(server.base.clone());
        victim.login("victim").await;
        let original = id_of(&me(&mut victim).await);
        let copy = victim.cookie.clone().unwrap();
        for _ in 0..5 {
            server.clock.advance(secs(0.5));
            me(&mut victim).await;
        }
        // The victim's second request (1 s after the copy) was the first
        // use of the copy's successor: the copy was retired then.
        let mut since_retired = secs(1.5);
        let mut served = 0;
        loop {
            server.clock.advance(secs(1.0));
            since_retired += secs(1.0);
            let stolen = with(&victim, Method::GET, "/me", &copy).await;
            if since_retired <= T {
                assert_eq!(stolen.status, StatusCode::OK, "{:?}", stolen.json);
                assert_eq!(stolen.set_cookie, None, "never handed a token");
                served += 1;
                me(&mut victim).await;
            } else {
                assert_refused(&stolen, "token_reused");
                break;
            }
        }
        assert!(served >= 5, "served {served} times within T");
        assert_refused(
            &victim.go(Method::GET, "/me", None).await,
            "session_revoked",
        );
        let theft = thefts(server);
        assert_eq!(theft.len(), 1);
        assert_eq!(theft[0].1, [original]);
        assert_eq!(theft[0].2, 1, "the copy's counter");
    }
}

/// The origin the CSRF test servers allow besides their own
/// (`csrf.allowed_origins`), standing for a front end on a sibling
/// subdomain.
pub const ALLOWED_ORIGIN: &str = "http://app.example.test";

/// The configuration of the CSRF test servers.
pub fn csrf_config() -> rolling_session::Config {
    let mut config = client_renewal_config();
    config.csrf.allowed_origins = vec![ALLOWED_ORIGIN.into()];
    config
}

impl Client {
    /// Sends with extra headers and an optional raw body with its content
    /// type, applying the answer's cookie.
    pub async fn go_headers(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("{COOKIE}={c}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let a = Self::answer(req.send().await.expect("request")).await;
        self.apply(&a);
        a
    }
}

/// Cross-site requests (issue 12, item 3): every state-changing request
/// (the session routes, and the application's login, elevation and
/// logout) from another site is refused with 403 `cross_site_request`
/// before the session is looked at: no token is used or rotated, the
/// session lives on. Same-origin, user-initiated (`none`), allowed-origin
/// and header-less (non-browser) requests go through; without
/// `Sec-Fetch-Site`, the `Origin` must be the server's own host. Telemetry
/// must be `application/json` (415 otherwise).
pub async fn csrf_rules(base: String, clock: &ManualClock) {
    let mut c = Client::new(base.clone());
    c.login("csrf").await;
    let cross = [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.test"),
    ];
    let sibling = [
        ("sec-fetch-site", "same-site"),
        ("origin", "http://evil.example.test"),
    ];
    let old_browser_cross = [("origin", "https://evil.test")];
    let opaque = [("origin", "null")];
    let routes = [
        "/session/refresh",
        "/session/refresh/confirm",
        "/session/telemetry",
        "/elevate",
        "/logout",
        "/login",
    ];
    for headers in [&cross[..], &sibling, &old_browser_cross, &opaque] {
        for path in routes {
            let cookie = c.cookie.clone();
            let a = c
                .go_headers(
                    Method::POST,
                    path,
                    headers,
                    Some(("application/json", r#"{"user": "mallory"}"#.into())),
                )
                .await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{path} {headers:?}");
            assert_eq!(a.json["error"], "cross_site_request", "{path} {headers:?}");
            assert_eq!(a.set_cookie, None, "{path}: refused before the session");
            assert_eq!(c.cookie, cookie);
        }
    }
    // Reads are not state-changing: a cross-site GET is served (SameSite
    // decides whether the browser sends the cookie at all).
    let me = c.go_headers(Method::GET, "/me", &cross, None).await;
    assert_eq!(
        (me.status, me.json["user"].as_str()),
        (StatusCode::OK, Some("csrf")),
        "the refused requests left the session alone"
    );

    let now = |clock: &ManualClock| i64::try_from(clock.now_ms()).unwrap();
    let mut count = 0;
    let mut report = |clock: &ManualClock| {
        count += 5;
        json!({"timestamp": now(clock), "operation_count": count, "client_entropy": 0.4})
            .to_string()
    };
    let host_origin = base.clone();
    let allowed: [&[(&str, &str)]; 6] = [
        &[("sec-fetch-site", "same-origin"), ("origin", &host_origin)],
        &[("sec-fetch-site", "none")],
        &[("sec-fetch-site", "same-site"), ("origin", ALLOWED_ORIGIN)],
        &[("sec-fetch-site", "cross-site"), ("origin", ALLOWED_ORIGIN)],
        &[("origin", &host_origin)],
        &[],
    ];
    for headers in allowed {
        clock.advance(Duration::from_secs(10));
        let body = report(clock);
        let a = c
            .go_headers(
                Method::POST,
                "/session/telemetry",
                headers,
                Some(("application/json", body)),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{headers:?}: {:?}", a.json);
        assert!(a.set_cookie.is_some(), "{headers:?}: served and rolled");
    }

    // A body a page can send without CORS (a form, text/plain) is never
    // parsed as JSON, even same-origin.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        clock.advance(Duration::from_secs(10));
        let body = report(clock);
        let a = c
            .go_headers(
                Method::POST,
                "/session/telemetry",
                &[("sec-fetch-site", "same-origin")],
                Some((content_type, body)),
            )
            .await;
        assert_eq!(
            (a.status, a.json["error"].as_str()),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("unsupported_media_type")
            ),
            "{content_type}"
        );
    }
    clock.advance(Duration::from_secs(10));
    let body = report(clock);
    let a = c
        .go_headers(
            Method::POST,
            "/session/telemetry",
            &[("sec-fetch-site", "same-origin")],
            Some(("application/json; charset=utf-8", body)),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);

    // Elevation and logout from the site itself.
    let same = [("sec-fetch-site", "same-origin")];
    let up = c.go_headers(Method::POST, "/elevate", &same, None).await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.json);
    let out = c.go_headers(Method::POST, "/logout", &same, None).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.json);
    assert_eq!(c.cookie, None, "logout cleared the cookie");
}

impl Client {
    /// A client whose connections come from `ip` (any 127.0.0.0/8 address
    /// is this machine's loopback on Linux).
    pub fn from_ip(base: String, ip: std::net::Ipv4Addr) -> Self {
        Self {
            http: reqwest::Client::builder()
                .local_address(std::net::IpAddr::V4(ip))
                .build()
                .expect("client"),
            base,
            cookie: None,
        }
    }
}

/// The configuration of the admission test servers: 3 logins per address
/// per hour, 5 sessions in all.
pub fn admission_config() -> rolling_session::Config {
    let mut config = rolling_session::Config::default();
    config.admission.per_ip_logins = Some(3);
    config.admission.per_ip_window = Duration::from_secs(3600);
    config.admission.max_sessions = Some(5);
    config
}

/// Login floods (issue 13, item 6): beyond 3 logins from one address in
/// the window, 429 `too_many_logins` with `Retry-After`; beyond 5 sessions
/// in all, 503 `session_capacity` with `Retry-After`; a logout makes room.
/// Needs a server on [`admission_config`] that sees the peer address.
pub async fn admission_limits(base: String) {
    let here = Client::from_ip(base.clone(), std::net::Ipv4Addr::LOCALHOST);
    let there = Client::from_ip(base, std::net::Ipv4Addr::new(127, 0, 0, 2));
    let mut sessions = Vec::new();
    for i in 0..3 {
        let mut c = here.clone();
        c.login(&format!("user{i}")).await;
        sessions.push(c);
    }
    let mut c = here.clone();
    let flood = c
        .go(Method::POST, "/login", Some(json!({"user": "user3"})))
        .await;
    assert_eq!(
        (flood.status, flood.json["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_logins")),
        "{:?}",
        flood.json
    );
    let retry: u64 = flood.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3_000..=3_600).contains(&retry), "Retry-After {retry}");
    assert_eq!(flood.set_cookie, None);

    // Another address has its own window, up to the cap of 5 sessions.
    for i in 0..2 {
        let mut c = there.clone();
        c.login(&format!("other{i}")).await;
        sessions.push(c);
    }
    let mut c = there.clone();
    let full = c
        .go(Method::POST, "/login", Some(json!({"user": "other2"})))
        .await;
    assert_eq!(
        (full.status, full.json["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("session_capacity")),
        "{:?}",
        full.json
    );
    assert_eq!(full.headers["retry-after"], "30");
    assert_eq!(full.json["retry_after_ms"], 30_000);

    // The sessions admitted work; a logout makes room for one more.
    let mut first = sessions.remove(0);
    assert_eq!(
        first.go(Method::GET, "/me", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        first.go(Method::POST, "/logout", None).await.status,
        StatusCode::OK
    );
    // (The refused attempt counted in 127.0.0.2's window: a third
    // address.)
    let mut c = Client::from_ip(there.base.clone(), std::net::Ipv4Addr::new(127, 0, 0, 3));
    let again = c
        .go(Method::POST, "/login", Some(json!({"user": "other2"})))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.json);
}

/// Session data through the adapter (routes `POST /cart/{item}`,
/// `GET /cart` answering `{"cart": [..], "anonymous": bool|null}`, and
/// `POST /big` writing 20 000 bytes): a visitor who only reads gets no
/// cookie, the first write an anonymous session, login keeps the data
/// under a fresh cookie, the size limit answers 413 and changes nothing,
/// logout deletes the data.
pub async fn session_data(base: String) {
    let mut c = Client::new(base);
    let a = c.go(Method::GET, "/cart", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
    assert_eq!(a.set_cookie, None, "a read-only visit set a cookie");
    assert_eq!(a.json, json!({ "cart": [], "anonymous": null }));

    let a = c.go(Method::POST, "/cart/apple", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
    assert!(c.cookie.is_some(), "the first write set no cookie");
    c.go(Method::POST, "/cart/pear", None).await;
    let a = c.go(Method::GET, "/cart", None).await;
    assert_eq!(
        a.json,
        json!({ "cart": ["apple", "pear"], "anonymous": true })
    );

    let anonymous = c.cookie.clone();
    c.login("alice").await;
    assert_ne!(c.cookie, anonymous, "login kept the anonymous session");
    let a = c.go(Method::GET, "/cart", None).await;
    assert_eq!(
        a.json,
        json!({ "cart": ["apple", "pear"], "anonymous": false })
    );

    let a = c.go(Method::POST, "/big", None).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", a.json);
    assert_eq!(a.json["error"], "session_data_too_large");
    let a = c.go(Method::GET, "/cart", None).await;
    assert_eq!(a.json["cart"], json!(["apple", "pear"]));

    let a = c.go(Method::POST, "/logout", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.json);
    let a = c.go(Method::GET, "/cart", None).await;
    assert_eq!(a.json, json!({ "cart": [], "anonymous": null }));
}
