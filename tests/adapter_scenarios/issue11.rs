//! Issue 11's observations, each as a scenario over real HTTP that failed
//! under the old sequence rule. The adapters' `tests/issue11_*.rs` start a
//! server with [`manager`] and the routes listed there, and run
//! every scenario against it. The manager runs on a [`ManualClock`], so
//! pauses cost no wall time; the token settings are the library's
//! defaults.

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
                        tokio::time::sleep(Duration::from_micros((i * 131 + j * 71) % 900)).await;
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
