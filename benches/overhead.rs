//! In-process overhead of a session layer on an axum `Router`
//! (`ServiceExt::oneshot`, no network, no HTTP parsing), each doing the same
//! work per request: load the session, read one value, write it back
//! changed, send the cookie. The overhead is each layered router minus the
//! bare router, all in one group of one run (docs/benchmarks.md,
//! "In-process overhead"). The same routers counted in instructions:
//! `scripts/instructions`.
//!
//! ```text
//! cargo bench --bench overhead
//! ```
//!
//! - `bare`: the router with a handler that answers a constant;
//! - `floor/read_write`, `floor/read_only`: the lower bound of
//!   `benches/common/floor_layer.rs`, the HTTP side of a rolling cookie
//!   (find and decode it, advance a counter under a lock, hand the handler
//!   the data, write the change back, send the next token and the three
//!   headers) without cryptography, events, context or any other feature;
//! - `rolling_session/read_write`: `Session::get` + `insert` of a counter
//!   (the token rolls and the data is written: two store operations);
//! - `rolling_session/read_only`: `Session::get` only (the token rolls);
//! - `tower_sessions/read_write`: tower-sessions 0.15 with its
//!   `MemoryStore`, `get` + `insert` of a counter (load, save, `Set-Cookie`).

#[path = "common/overhead_routers.rs"]
mod routers;

use criterion::{Criterion, criterion_group, criterion_main};
use routers::Client;

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("in_process_overhead");

    let mut bare = rt.block_on(Client::new(routers::bare_router()));
    g.bench_function("bare", |b| {
        b.iter_custom(|iters| rt.block_on(bare.run("/", iters)))
    });

    let (router, jar) = routers::floor_router();
    let mut floor = Client::with_jar(router, jar);
    g.bench_function("floor/read_write", |b| {
        b.iter_custom(|iters| rt.block_on(floor.run("/", iters)))
    });
    g.bench_function("floor/read_only", |b| {
        b.iter_custom(|iters| rt.block_on(floor.run("/read", iters)))
    });

    let mut rolling = rt.block_on(Client::new(routers::rolling_router()));
    g.bench_function("rolling_session/read_write", |b| {
        b.iter_custom(|iters| rt.block_on(rolling.run("/", iters)))
    });
    g.bench_function("rolling_session/read_only", |b| {
        b.iter_custom(|iters| rt.block_on(rolling.run("/read", iters)))
    });

    let mut tower = rt.block_on(Client::new(routers::tower_sessions_router()));
    g.bench_function("tower_sessions/read_write", |b| {
        b.iter_custom(|iters| rt.block_on(tower.run("/", iters)))
    });
    g.finish();
    // Every request timed was served in its client's session.
    rt.block_on(async {
        floor.check_served().await;
        rolling.check_served().await;
        tower.check_served().await;
    });
}

criterion_group!(benches, overhead);
criterion_main!(benches);
