//! What redis-server spends per call of the advance script
//! (`src/store/redis/advance.lua`), and its floors: a measurement, not a
//! gate (ignored; timings are never asserted). Run it with
//!
//! ```text
//! cargo test --all-features --test redis_script_cost -- --ignored --nocapture
//! ```
//!
//! (`REDIS_SCRIPT_COST_N` requests per phase, default 3000;
//! `REDIS_SCRIPT_COST_REPS` repetitions, default 3;
//! `REDIS_SCRIPT_COST_ROTATE_ONLY=1` runs only the validated requests, as
//! for counting redis-server's instructions under a profiler: `redis-server`
//! earlier in `PATH` as a wrapper that runs it under
//! `valgrind --tool=callgrind --toggle-collect=evalShaCommand`;
//! `REDIS_SCRIPT_COST_REPLAY=1` with it adds the replayed calls, whose
//! instructions are the difference to a run without.) A private
//! redis-server on a free loopback port; one session created and validated
//! through the real manager and `RedisStore` with the default config
//! (rotation on every request, grace depth K = 64, a window that keeps the
//! retirements), warmed until its retired list is full, as under load. For
//! each phase `CONFIG RESETSTAT`, N calls, then `INFO commandstats`: the
//! `evalsha` usec per call (measured inside redis-server, so the client's
//! build does not matter). Phases:
//!
//! - `advance rotate`: N validated requests (the path a loaded server
//!   takes: a retirement and a new token per call);
//! - `advance pending`: the same EVALSHA replayed N times (the path the
//!   `redis_benchmark_evalsha` row of scripts/bench replays);
//! - floors on the same key with the same 11 arguments: `return 1`;
//!   `TIME` + the script's `HMGET`; that plus the reply of the fields.
#![cfg(all(feature = "redis", feature = "test-util"))]

mod redis_servers;

use redis_servers::RedisServer;
use rolling_session::store::{AdvanceRequest, RedisStore, Rotate, Verdict};
use rolling_session::{Config, KeyRing, SessionContext, SessionManager, SessionStore, TokenKey};

/// `usec / calls` of `evalsha` in `INFO commandstats`.
fn evalsha_usec_per_call(server: &RedisServer) -> f64 {
    let info = server.cmd(&["INFO", "commandstats"]);
    let line = info
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .expect("evalsha ran");
    let field = |name: &str| -> f64 {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .expect("a commandstats field")
    };
    field("usec") / field("calls")
}

/// The floors' scripts: their names and sources.
const FLOORS: [(&str, &str); 3] = [
    ("floor return 1", "return 1"),
    (
        "floor TIME+HMGET",
        "local t = redis.call('TIME') \
        local f = redis.call('HMGET', KEYS[1], 'ids', 'uid', 'created', 'meta', 'ctr', 'pre', \
        'req', 'seen', 'iss', 'ret', 'rev', 'ends', 'idle', 'dsz', 'rsum') return 1",
    ),
    (
        "floor TIME+HMGET+reply",
        "local t = redis.call('TIME') \
        local f = redis.call('HMGET', KEYS[1], 'ids', 'uid', 'created', 'meta', 'ctr', 'pre', \
        'req', 'seen', 'iss', 'ret', 'rev', 'ends', 'idle', 'dsz', 'rsum') \
        return { 'pending', f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], \
        f[11], f[12], f[13], t[1] }",
    ),
];

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it with --ignored --nocapture"]
async fn advance_script_cost_per_call() {
    let n = env("REDIS_SCRIPT_COST_N", 3000);
    let reps = env("REDIS_SCRIPT_COST_REPS", 3);
    // Only the validated requests (for a profiler attached to redis-server).
    let rotate_only = std::env::var_os("REDIS_SCRIPT_COST_ROTATE_ONLY").is_some();
    // With it, the replays too (not the floors): their instructions are
    // the difference to a run without.
    let replay_too = std::env::var_os("REDIS_SCRIPT_COST_REPLAY").is_some();
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let config = Config::default();
    let manager = SessionManager::builder(KeyRing::new(TokenKey::new(1, [0x42; 32])))
        .store(store.clone())
        .config(config.clone())
        .build()
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut record = |name: &'static str, v: f64| match rows.iter_mut().find(|(n, _)| *n == name) {
        Some((_, vs)) => vs.push(v),
        None => rows.push((name, vec![v])),
    };
    let mut retired = 0;
    for _ in 0..reps {
        let login = manager
            .create_session("cost-user", SessionContext::default())
            .await
            .unwrap();
        let mut token = login.token.expose().to_owned();
        let mut id = None;
        // Warm-up: the retired list fills to K.
        for _ in 0..2 * u64::from(config.token.grace_depth) {
            let v = manager.validate_session(&token).await.unwrap();
            id = Some(v.session.id());
            token = v.next_token.expect("rotates").expose().to_owned();
        }
        let id = id.unwrap();
        server.cmd(&["CONFIG", "RESETSTAT"]);
        for _ in 0..n {
            let v = manager.validate_session(&token).await.unwrap();
            assert_eq!(v.verdict, Verdict::Rotated);
            token = v.next_token.expect("rotates").expose().to_owned();
        }
        record(
            "advance rotate (validated requests)",
            evalsha_usec_per_call(&server),
        );
        let stored = store.load(&id).await.unwrap().unwrap();
        retired = stored.sequence.retired.len();
        if rotate_only && !replay_too {
            continue;
        }
        // The same call replayed: 'pending' every time.
        let replay = AdvanceRequest {
            session: id,
            presented: stored.sequence.presented.unwrap(),
            now_ms: now_ms(),
            grace_depth: config.token.grace_depth,
            grace_window_ms: config.token.grace_window.as_millis() as u64,
            rotate: Rotate::Always,
            new_id: None,
            max_ahead: 0,
        };
        server.cmd(&["CONFIG", "RESETSTAT"]);
        for _ in 0..n {
            let a = store
                .verify_and_advance(&id, &replay)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(a.verdict, Verdict::Pending);
        }
        record("advance pending (replayed)", evalsha_usec_per_call(&server));
        if rotate_only {
            continue;
        }
        let key = store.session_key(&id);
        for (name, src) in FLOORS {
            let script = redis::Script::new(src);
            server.cmd(&["CONFIG", "RESETSTAT"]);
            for _ in 0..n {
                let mut call = script.key(&key);
                for a in ["x"; 11] {
                    call.arg(a);
                }
                let _: redis::Value = call.invoke_async(&mut conn).await.unwrap();
            }
            record(name, evalsha_usec_per_call(&server));
        }
    }
    if rotate_only {
        // A clean exit, so that a profiler wrapping redis-server writes
        // its counts (dropping the server kills it).
        let _ = server.try_cmd(&["SHUTDOWN", "NOSAVE"]);
    }
    eprintln!("{n} calls per phase, {retired} retirements live; evalsha usec per call:");
    for (name, vs) in rows {
        let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = vs.iter().copied().fold(0.0, f64::max);
        let mut sorted = vs.clone();
        sorted.sort_by(f64::total_cmp);
        eprintln!(
            "  {name:<38} median {:6.2}  min {min:6.2}  max {max:6.2}  {vs:.2?}",
            sorted[sorted.len() / 2]
        );
    }
}
