//! The HTTP scenarios every adapter must pass, over real HTTP on loopback.
//! Each adapter's test file starts its server and runs these.

#![allow(dead_code)]

use std::time::Duration;

use rand::seq::SliceRandom;
use reqwest::{Method, StatusCode};
use rolling_session::{Clock, ManualClock};
use serde_json::{Value, json};

pub const COOKIE: &str = "rs_session";

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
    assert_eq!(victim.set_cookie, Some(None), "the dead cookie is cleared");
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
    // A request in flight with the old cookie still works and answers with
    // the renewed session's live token, never with the old session's.
    let in_flight = c
        .send_with(Method::GET, "/me", Some(old.as_bytes()), None)
        .await;
    assert_eq!(in_flight.status, StatusCode::OK);
    assert_eq!(in_flight.set_cookie, Some(c.cookie.clone()));
    let confirm = c.go(Method::POST, "/session/refresh/confirm", None).await;
    assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.json);
    assert_eq!(confirm.json["confirmed"], true);
    let retired = c
        .send_with(Method::GET, "/me", Some(old.as_bytes()), None)
        .await;
    assert_eq!(retired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);

    let js = c.send(Method::GET, "/session/client.js", None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );

    let out = c.go(Method::POST, "/logout", None).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.json["ok"], true);
    assert!(c.cookie.is_none(), "logout clears the cookie");
    assert_eq!(
        c.go(Method::GET, "/me", None).await.json["error"],
        "missing_token"
    );
}

/// A response that left before a refresh but arrives after it overwrites
/// the new cookie with the old session's next token. The next request with
/// that stale cookie is answered as the renewed session, so the client
/// converges on it, and the confirmation still succeeds.
pub async fn stale_response_after_refresh_converges(base: String, clock: &ManualClock) {
    let mut c = Client::new(base);
    c.login("grace").await;
    // Active until the last hour, when renewal opens.
    for _ in 0..15 {
        clock.advance(Duration::from_secs(29 * 60));
        assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
    }
    // Request A is answered first (rotating the old session) but its
    // response is slow; the refresh, sent with the same cookie, overtakes it.
    let slow = c.send(Method::GET, "/me", None).await;
    assert_eq!(slow.status, StatusCode::OK);
    let refresh = c.go(Method::POST, "/session/refresh", None).await;
    assert_eq!(refresh.status, StatusCode::OK, "{:?}", refresh.json);
    let renewed = c.cookie.clone().unwrap();
    c.apply(&slow);
    assert_ne!(
        c.cookie.as_deref(),
        Some(renewed.as_str()),
        "stale cookie applied"
    );
    let stale = c.cookie.clone().unwrap();

    let confirm = c.go(Method::POST, "/session/refresh/confirm", None).await;
    assert_eq!(confirm.status, StatusCode::OK, "{:?}", confirm.json);
    assert_eq!(confirm.json["confirmed"], true);
    assert_eq!(c.cookie.as_deref(), Some(renewed.as_str()));
    assert_eq!(c.go(Method::GET, "/me", None).await.status, StatusCode::OK);
    let old = c
        .send_with(Method::GET, "/me", Some(stale.as_bytes()), None)
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
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
