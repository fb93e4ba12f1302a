//! Nodes of `examples/redis_nodes.rs` over real HTTP on loopback, sharing a
//! real `redis-server` started here: tokens roll across nodes, a burst with
//! one token gets exactly one new token, a replay on one node of a token
//! spent on the other is served without a new token within the grace and
//! is theft after it, one validated request
//! costs exactly one Redis command, and Redis outages (killed, frozen) give
//! 503 `store_unavailable` within the timeout and heal by themselves with
//! no acknowledged session lost.
#![cfg(all(feature = "redis", feature = "axum"))]

mod loopback;
#[path = "../examples/redis_nodes.rs"]
#[allow(dead_code)]
mod redis_nodes;
mod redis_servers;

use std::time::{Duration, Instant};

use redis_nodes::{COOKIE, node_app, node_manager};
use redis_servers::RedisServer;
use reqwest::StatusCode;
use rolling_session::store::RedisStore;
use rolling_session::{Config, clock::Clock, clock::ManualClock, clock::SystemClock};
use serde_json::{Value, json};

const KEY: [u8; 32] = [0x5a; 32];

/// A browser with a one-cookie jar.
#[derive(Clone)]
struct Browser {
    http: reqwest::Client,
    user: String,
    cookie: Option<String>,
}

struct Reply {
    status: StatusCode,
    json: Value,
    cookie: Option<Option<String>>,
    took: Duration,
}

impl Browser {
    fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn send(&self, method: reqwest::Method, url: &str, token: Option<&str>) -> Reply {
        let mut req = self.http.request(method.clone(), url);
        if let Some(t) = token {
            req = req.header("cookie", format!("{COOKIE}={t}"));
        }
        if method == reqwest::Method::POST {
            req = req.json(&json!({ "user": self.user }));
        }
        let started = Instant::now();
        let res = req.send().await.expect("the node answers");
        let status = res.status();
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{COOKIE}=")))
            .map(|v| Some(v.split(';').next().unwrap_or("").to_owned()).filter(|s| !s.is_empty()));
        let text = res.text().await.unwrap_or_default();
        Reply {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            cookie,
            took: started.elapsed(),
        }
    }

    /// Sends with the jar's cookie and applies the answer's.
    async fn go(&mut self, method: reqwest::Method, url: &str) -> Reply {
        let reply = self.send(method, url, self.cookie.clone().as_deref()).await;
        if let Some(c) = &reply.cookie {
            self.cookie = c.clone();
        }
        reply
    }

    async fn login(&mut self, base: &str) {
        let r = self
            .go(reqwest::Method::POST, &format!("{base}/login"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        assert!(self.cookie.is_some());
    }

    async fn me(&mut self, base: &str) -> Reply {
        self.go(reqwest::Method::GET, &format!("{base}/me")).await
    }
}

/// Starts a node of the example on a free loopback port; returns its base URL.
async fn start_node(
    name: &'static str,
    redis: &RedisServer,
    timeout: Duration,
    clock: impl Clock,
) -> String {
    let store = RedisStore::builder()
        .timeout(timeout)
        .connect(&redis.url())
        .await
        .expect("connect to redis");
    let manager = node_manager(store, &KEY, Config::default(), clock).unwrap();
    loopback::serve(node_app(name, manager)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sharing_redis_behave_as_one_server() {
    let redis = RedisServer::start();
    let clock = ManualClock::new(1_800_000_000_000);
    let a = start_node("a", &redis, Duration::from_secs(2), clock.clone()).await;
    let b = start_node("b", &redis, Duration::from_secs(2), clock.clone()).await;

    let mut alice = Browser::new("alice");
    alice.login(&a).await;
    let mut spent = Vec::new();
    for i in 0..12 {
        let (base, name) = if i % 2 == 0 { (&b, "b") } else { (&a, "a") };
        let before = alice.cookie.clone().unwrap();
        let r = alice.me(base).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {:?}", r.json);
        assert_eq!(r.json["node"], name);
        assert_eq!(r.json["user"], "alice");
        let after = alice.cookie.clone().unwrap();
        assert_ne!(before, after, "request {i}: the token rolled");
        assert!(!spent.contains(&after), "request {i}: a token came back");
        spent.push(before);
    }

    // Parallel requests with one token, spread over both nodes: none is
    // taken for theft, exactly one rotates and carries the next token, the
    // others are pending (served, no token: the jar cannot roll back).
    let token = alice.cookie.clone().unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (http, url) = (
                alice.clone(),
                format!("{}/me", if i % 2 == 0 { &a } else { &b }),
            );
            let token = token.clone();
            tokio::spawn(async move { http.send(reqwest::Method::GET, &url, Some(&token)).await })
        })
        .collect();
    let mut issued = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        assert_eq!(r.json["user"], "alice");
        issued.extend(r.cookie.flatten());
    }
    assert_eq!(issued.len(), 1, "one new token for the burst: {issued:?}");
    assert!(!spent.contains(&issued[0]) && issued[0] != token);
    spent.push(token.clone());
    alice.cookie = Some(issued[0].clone());

    // Within the grace, on the other node: the token spent just before the
    // burst (retired when the burst's token was first used) and the
    // burst's token itself (its successor may still be in flight) are
    // served, with no new token.
    let before_burst = spent[spent.len() - 2].clone();
    for stale in [&before_burst, &token] {
        let r = alice
            .send(reqwest::Method::GET, &format!("{b}/me"), Some(stale))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        assert_eq!(r.json["user"], "alice");
        assert_eq!(r.cookie, None, "a stale token never gets a new one");
    }
    // ... and the live token still rolls, on either node.
    for base in [&a, &b] {
        let before = alice.cookie.clone().unwrap();
        let r = alice.me(base).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        assert_ne!(alice.cookie.clone().unwrap(), before, "the token rolled");
        spent.push(before);
    }

    // A token spent on node A (the first /me there), replayed on node B
    // after the grace window: theft.
    clock.advance(Duration::from_secs(11));
    let thief = Browser::new("alice");
    let stolen = spent[1].clone();
    let r = thief
        .send(reqwest::Method::GET, &format!("{b}/me"), Some(&stolen))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    assert_eq!(r.json["error"], "token_reused");
    // The session is dead on both nodes.
    let last = alice.cookie.clone();
    for base in [&a, &b] {
        let r = alice
            .send(reqwest::Method::GET, &format!("{base}/me"), last.as_deref())
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.json["error"], "session_revoked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_validated_request_is_one_redis_round_trip() {
    let redis = RedisServer::start();
    let node = start_node("a", &redis, Duration::from_secs(2), SystemClock).await;
    let mut alice = Browser::new("alice");
    alice.login(&node).await;
    for _ in 0..5 {
        assert_eq!(alice.me(&node).await.status, StatusCode::OK);
    }
    let n = 200u64;
    let before = redis.command_stats();
    let monitor = redis.monitor();
    for _ in 0..n {
        assert_eq!(alice.me(&node).await.status, StatusCode::OK);
    }
    let sent = monitor.client_commands();
    let after = redis.command_stats();

    // INFO commandstats: exactly one EVALSHA per request, and the only
    // other commands are the four the script itself runs (TIME: its
    // deadline, see `RedisStoreBuilder::deadline_margin`). PEXPIRE runs
    // when the request moved `seen` (the TTL follows it): not for a
    // request in the same millisecond as the one before.
    let mut delta = redis_servers::stats_delta(&before, &after);
    let pexpire = delta.remove("pexpire").unwrap_or(0);
    assert!(
        (1..=n).contains(&pexpire),
        "{pexpire} PEXPIRE over {n} requests"
    );
    let expected: std::collections::BTreeMap<String, u64> = ["evalsha", "hmget", "hset", "time"]
        .into_iter()
        .map(|c| (c.to_owned(), n))
        .collect();
    assert_eq!(delta, expected, "commandstats delta over {n} requests");
    // MONITOR: what clients sent, the round trips themselves.
    let round_trips = sent.len() as f64 / n as f64;
    println!(
        "{n} validated requests: commandstats delta {delta:?}; client commands seen by MONITOR: {}; \
         round trips per request = {round_trips:.3}",
        sent.len()
    );
    assert!(sent.iter().all(|(cmd, _)| cmd == "evalsha"), "{sent:?}");
    assert_eq!(round_trips, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_data_costs_no_round_trip_to_read_and_one_to_write() {
    let redis = RedisServer::start();
    let node = start_node("a", &redis, Duration::from_secs(2), SystemClock).await;
    let mut alice = Browser::new("alice");
    alice.login(&node).await;
    let url = format!("{node}/visits");
    for i in 1..=3u64 {
        let r = alice.go(reqwest::Method::POST, &url).await;
        assert_eq!(r.json["visits"], i, "{:?}", r.json);
    }
    let n = 100u64;
    // Reading the data: still one EVALSHA per request (the advance script
    // returns the data; HGETALL is the script's own).
    let before = redis.command_stats();
    let monitor = redis.monitor();
    for _ in 0..n {
        let r = alice.go(reqwest::Method::GET, &url).await;
        assert_eq!(r.json["visits"], 3, "{:?}", r.json);
    }
    let sent = monitor.client_commands();
    let delta = redis_servers::stats_delta(&before, &redis.command_stats());
    assert_eq!(delta.get("evalsha"), Some(&n), "read: {delta:?}");
    assert_eq!(sent.len() as u64, n, "read: round trips {sent:?}");
    assert!(sent.iter().all(|(cmd, _)| cmd == "evalsha"), "{sent:?}");

    // Writing one key: one more EVALSHA (the data script), no other call.
    let before = redis.command_stats();
    let monitor = redis.monitor();
    for i in 1..=n {
        let r = alice.go(reqwest::Method::POST, &url).await;
        assert_eq!(r.json["visits"], 3 + i, "{:?}", r.json);
    }
    let sent = monitor.client_commands();
    let delta = redis_servers::stats_delta(&before, &redis.command_stats());
    assert_eq!(delta.get("evalsha"), Some(&(2 * n)), "write: {delta:?}");
    assert_eq!(sent.len() as u64, 2 * n, "write: round trips {sent:?}");
    assert!(sent.iter().all(|(cmd, _)| cmd == "evalsha"), "{sent:?}");
    let r = alice.go(reqwest::Method::GET, &url).await;
    assert_eq!(r.json["visits"], 3 + n, "every write kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handle_reads_cost_no_round_trip_and_count_no_request() {
    let redis = RedisServer::start();
    let node = start_node("a", &redis, Duration::from_secs(2), SystemClock).await;
    let mut alice = Browser::new("alice");
    alice.login(&node).await;
    let url = format!("{node}/analytics");
    let first = alice.go(reqwest::Method::GET, &url).await;
    let before = redis.command_stats();
    let monitor = redis.monitor();
    let n = 20u64;
    let mut last = first.json["request_count"].as_u64().expect("a count");
    for _ in 0..n {
        let r = alice.go(reqwest::Method::GET, &url).await;
        let count = r.json["request_count"].as_u64().expect("a count");
        // One more per request (its own validation), never two: reading
        // the analytics is not a request.
        assert_eq!(count, last + 1, "{:?}", r.json);
        last = count;
    }
    let sent = monitor.client_commands();
    let delta = redis_servers::stats_delta(&before, &redis.command_stats());
    assert_eq!(delta.get("evalsha"), Some(&n), "{delta:?}");
    assert_eq!(sent.len() as u64, n, "one round trip per request: {sent:?}");
}

/// Requests in a loop from `browsers`, recording each answer's status and
/// time, until `stop` is set.
async fn load(
    base: String,
    mut browser: Browser,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Browser, Vec<(Instant, StatusCode, String, Duration)>) {
    let mut seen = Vec::new();
    let mut sent = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && sent < 5_000 {
        let r = browser.me(&base).await;
        let reason = r.json["error"].as_str().unwrap_or("").to_owned();
        seen.push((Instant::now(), r.status, reason, r.took));
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (browser, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_redis_gives_503_within_the_timeout_and_loses_no_acknowledged_session() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let timeout = Duration::from_millis(300);
    let node = start_node("a", &redis, timeout, SystemClock).await;
    let mut browsers = Vec::new();
    for _ in 0..8 {
        let mut b = Browser::new(&format!("user{}", browsers.len()));
        b.login(&node).await;
        for _ in 0..3 {
            assert_eq!(b.me(&node).await.status, StatusCode::OK);
        }
        browsers.push(b);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = browsers
        .into_iter()
        .map(|b| tokio::spawn(load(node.clone(), b, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let restarted_at = Instant::now();
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut browsers = Vec::new();
    let mut outage_answers = 0;
    let mut slowest_503 = Duration::ZERO;
    let mut first_ok_after_restart: Option<Instant> = None;
    for l in loaders {
        let (browser, seen) = l.await.unwrap();
        browsers.push(browser);
        for (at, status, reason, took) in seen {
            match status {
                StatusCode::OK => {
                    if at > restarted_at {
                        first_ok_after_restart =
                            Some(first_ok_after_restart.map_or(at, |f| f.min(at)));
                    }
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(reason, "store_unavailable");
                    assert!(at > killed_at, "503 before the kill");
                    outage_answers += 1;
                    slowest_503 = slowest_503.max(took);
                }
                other => panic!(
                    "unexpected {other} ({reason}) {:?} after the kill, restart at {:?}; keys now: {}",
                    at - killed_at,
                    restarted_at - killed_at,
                    redis.cmd(&["DBSIZE"])
                ),
            }
        }
    }
    let recovered_in = first_ok_after_restart.map(|f| f - restarted_at);
    println!(
        "kill: {outage_answers} answers 503 store_unavailable, slowest {slowest_503:?} \
         (timeout {timeout:?}); first 200 {recovered_in:?} after the restart"
    );
    assert!(outage_answers > 0, "the outage was seen");
    assert!(
        slowest_503 < timeout + Duration::from_millis(700),
        "a 503 took {slowest_503:?}"
    );
    assert!(recovered_in.is_some(), "the node recovered by itself");

    // Every browser's last acknowledged token still works: no rotation
    // acknowledged before the kill was lost (appendfsync always).
    for (i, b) in browsers.iter_mut().enumerate() {
        let r = b.me(&node).await;
        assert_eq!(r.status, StatusCode::OK, "browser {i}: {:?}", r.json);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_redis_gives_503_within_the_timeout_and_recovers() {
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let node = start_node("a", &redis, timeout, SystemClock).await;
    let mut alice = Browser::new("alice");
    alice.login(&node).await;
    assert_eq!(alice.me(&node).await.status, StatusCode::OK);

    // A server that accepts and never answers: every call must give up.
    redis.freeze();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let r = alice.me(&node).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.json);
        assert_eq!(r.json["error"], "store_unavailable");
        slowest = slowest.max(r.took);
    }
    let mut login = Browser::new("alice");
    let r = login
        .go(reqwest::Method::POST, &format!("{node}/login"))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.json);
    slowest = slowest.max(r.took);
    println!("frozen redis: slowest 503 {slowest:?} (timeout {timeout:?})");
    assert!(slowest >= timeout, "it waited for the timeout");
    assert!(
        slowest < timeout + Duration::from_millis(700),
        "a 503 took {slowest:?}"
    );

    // The frozen server still runs the calls it had queued once thawed:
    // the first may rotate (a token nobody received), after which alice's
    // token is the one the lineage last saw presented: served without a
    // new token while the lost one may be in flight (pending), then with a
    // fresh one (recovered). Never theft.
    redis.thaw();
    let started = Instant::now();
    loop {
        let r = alice.me(&node).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recovery: {:?}",
            r.json
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "frozen redis: recovered {:?} after thawing",
        started.elapsed()
    );
    assert_eq!(alice.me(&node).await.status, StatusCode::OK);
}
