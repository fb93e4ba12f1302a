//! The seeded protocol simulator (`tests/sim`) against the real
//! `SessionManager`: a few thousand honest browsers and a thousand thieves
//! on the memory store, fewer on a real Redis (feature `redis`). No honest
//! request may be refused (no false theft), no thief may escape or be
//! upgraded behind the victim's back. The figures are printed as a
//! markdown table (`cargo test --test protocol_sim -- --nocapture`).
//!
//! A failing session is reported with its seed; replay it alone with its
//! full trace:
//! `SIM_TRACE_SEED=0x… [SIM_TRACE_THIEF=1] [SIM_NETWORK=edge] cargo test --test protocol_sim trace_one -- --ignored --nocapture`.

#[cfg(feature = "redis")]
mod redis_servers;
mod sim;

use std::sync::Arc;
use std::time::Instant;

use rolling_session::{MemoryStore, SessionStore};
use sim::{Network, Report, Sim};

const SEED: u64 = 0x1105_5EED;

async fn simulate(
    store: Arc<dyn SessionStore>,
    name: &str,
    net: Network,
    honest: u64,
    thieves: u64,
    seed: u64,
) -> Report {
    let began = Instant::now();
    let mut sim = Sim::new(store, name, net, seed);
    sim.run(honest, thieves, seed).await;
    sim.report.wall = began.elapsed();
    println!("{}", sim.report.table());
    sim.report
}

/// Every property, and that the run exercised what it claims to.
fn check(r: &Report, honest: u64, thieves: u64) {
    assert!(
        r.clean(),
        "{} failing session(s):\n{}",
        r.failing_sessions,
        r.failure_text()
    );
    assert_eq!((r.honest_sessions, r.theft_sessions), (honest, thieves));
    let exercised = [
        ("bursts of 7+", r.max_burst >= 7),
        ("lost responses", r.lost > 0),
        ("navigations", r.cancelled > 0),
        ("tokens held back by the send deadline", r.late_tokens > 0),
        ("renewals", r.renewals > 0 && r.confirms > 0),
        ("elevations", r.elevations > 0),
        ("telemetry", r.telemetry > 0),
        ("several tabs", r.honest_multi_tab > 0),
        ("recoveries", r.verdicts[3] > 0),
        ("grace answers", r.verdicts[4] > 0),
        ("pending answers", r.verdicts[2] > 0),
        ("thieves detected", r.detected * 5 > thieves * 2),
        ("thief renewals or elevations", r.thief_moves > 0),
    ];
    for (what, ok) in exercised {
        assert!(ok, "the run did not exercise {what}");
    }
}

#[tokio::test]
async fn memory_store_no_false_theft_no_escape() {
    let (honest, thieves) = (3_000, 1_000);
    let r = simulate(
        Arc::new(MemoryStore::new()),
        "memory",
        Network::BRIEF,
        honest,
        thieves,
        SEED,
    )
    .await;
    check(&r, honest, thieves);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_no_false_theft_no_escape() {
    let installed = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        println!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
        return;
    }
    let server = redis_servers::RedisServer::start();
    let store = rolling_session::store::RedisStore::connect(&server.url())
        .await
        .expect("connect to redis-server");
    let (honest, thieves) = (200, 100);
    let r = simulate(
        Arc::new(store),
        "redis",
        Network::BRIEF,
        honest,
        thieves,
        SEED ^ 0xED15,
    )
    .await;
    assert!(
        r.clean(),
        "{} failing session(s):\n{}",
        r.failing_sessions,
        r.failure_text()
    );
    assert_eq!((r.honest_sessions, r.theft_sessions), (honest, thieves));
}

/// Replays one session with its full trace (see the module doc).
#[tokio::test]
#[ignore = "replays the session named by SIM_TRACE_SEED"]
async fn trace_one() {
    let Ok(seed) = std::env::var("SIM_TRACE_SEED") else {
        println!("set SIM_TRACE_SEED (and SIM_TRACE_THIEF=1 for a theft run)");
        return;
    };
    let seed = match seed.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => seed.parse(),
    }
    .expect("SIM_TRACE_SEED is a number");
    let thief = std::env::var("SIM_TRACE_THIEF").is_ok_and(|v| v == "1");
    let net = std::env::var("SIM_NETWORK")
        .ok()
        .and_then(|n| Network::named(&n))
        .unwrap_or(Network::BRIEF);
    let trace = Sim::trace(Arc::new(MemoryStore::new()), net, seed, thief).await;
    println!("{trace}");
}
