//! The protocol simulator (`tests/sim`) at scale: 100 000 honest sessions
//! and 10 000 theft sessions by default, memory store, printed as the
//! markdown table `docs/security.md` quotes.
//!
//! ```text
//! cargo bench --bench protocol_sim
//! SIM_HONEST=100000 SIM_THIEVES=10000 SIM_SEED=0x11 SIM_NETWORK=brief|edge|edge-no-telemetry cargo bench --bench protocol_sim
//! ```
//!
//! Only runs when invoked with `--bench` (as `cargo bench` does); otherwise
//! (`cargo test --benches`) it exits at once. A violated property is
//! printed with the failing seeds and their traces; with `SIM_STRICT=1` it
//! also makes the process exit with status 1.

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::sync::Arc;
use std::time::Instant;

use rolling_session::MemoryStore;
use sim::{Network, Sim};

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.replace('_', "");
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            }
            .unwrap_or_else(|_| panic!("{name} must be a number"))
        }
        Err(_) => default,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let honest = env_u64("SIM_HONEST", 100_000);
    let thieves = env_u64("SIM_THIEVES", 10_000);
    let seed = env_u64("SIM_SEED", 0x1105_5EED);
    let net = match std::env::var("SIM_NETWORK") {
        Ok(name) => Network::named(&name).unwrap_or_else(|| {
            panic!("SIM_NETWORK must be brief, edge or edge-no-telemetry, not {name}")
        }),
        Err(_) => Network::BRIEF,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let began = Instant::now();
    let report = runtime.block_on(async {
        let mut sim = Sim::new(Arc::new(MemoryStore::new()), "memory", net, seed);
        sim.run(honest, thieves, seed).await;
        sim.report
    });
    let mut report = report;
    report.wall = began.elapsed();
    println!(
        "\nprotocol simulation: {honest} honest sessions, {thieves} theft sessions\n\n{}",
        report.table()
    );
    if !report.clean() {
        println!(
            "PROPERTY VIOLATED in {} session(s) (replay one with tests/protocol_sim.rs `trace_one`):\n{}",
            report.failing_sessions,
            report.failure_text()
        );
        // The figures are the product here; `tests/protocol_sim.rs` is the
        // gate. SIM_STRICT=1 makes a violation fail the run too.
        if std::env::var("SIM_STRICT").is_ok_and(|v| v == "1") {
            std::process::exit(1);
        }
    }
}
