//! The in-process overhead benchmark's requests (`benches/overhead.rs`),
//! one case at a time, for counting instructions under callgrind:
//! `scripts/instructions` runs each case at two request counts and reports
//! the difference per request, which start-up and warm-up cancel out of.
//! Instruction counts repeat to a few parts per million from run to run,
//! where the time of 2 µs on a shared machine varies by 10 %.
//!
//! ```text
//! cargo bench --bench overhead_instructions -- rolling_session/read_write 1000
//! ```

#[path = "common/overhead_routers.rs"]
mod routers;

use routers::Client;

/// The cases, named as in `benches/overhead.rs`.
const CASES: [&str; 4] = [
    "bare",
    "rolling_session/read_write",
    "rolling_session/read_only",
    "tower_sessions/read_write",
];

fn main() {
    // `cargo bench` adds `--bench`; the case and the count are the other two.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(case), Some(iters)) = (args.first(), args.get(1)) else {
        eprintln!("usage: overhead_instructions <case> <requests>; cases: {CASES:?}");
        std::process::exit(2);
    };
    let iters: u64 = iters.parse().expect("<requests> is a number");
    let (router, path) = match case.as_str() {
        "bare" => (routers::bare_router(), "/"),
        "rolling_session/read_write" => (routers::rolling_router(), "/"),
        "rolling_session/read_only" => (routers::rolling_router(), "/read"),
        "tower_sessions/read_write" => (routers::tower_sessions_router(), "/"),
        other => {
            eprintln!("unknown case {other}; cases: {CASES:?}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = Client::new(router).await;
        // Warm-up: the first requests fill caches and the store's tables.
        client.run(path, 10).await;
        client.run(path, iters).await;
    });
}
