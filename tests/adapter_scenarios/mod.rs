//! The HTTP scenarios every adapter must pass, over real HTTP on loopback.
//! Each adapter's test file starts its server and runs these; the client
//! they drive is [`crate::loopback::Client`].

#![allow(dead_code)]

pub mod issue11;

use std::time::Duration;

use rand::seq::SliceRandom;
use reqwest::{Method, StatusCode};
use rolling_session::{clock::Clock, clock::ManualClock};
use serde_json::{Value, json};

use crate::loopback::{Answer, Client};

/// How long after a lost response the client's next request is certainly
/// a recovery (a fresh token): the rule serves the last presented token
/// without one (`Pending`) while its successor may still be on its way,
/// up to 2T (20 s) after the successor was issued.
pub const LOST_ANSWER_RECOVERY: Duration = Duration::from_secs(21);

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
