//! `SessionManager::validate_session` (verify, the store's atomic advance,
//! minting the next token) on the `MemoryStore` with 1, 10 000 and
//! 1 000 000 live sessions. The cost must stay flat as the store grows.
//!
//! The iterations go round the sessions in creation order, presenting
//! each one's live token and keeping the token it gets back for that
//! session's next turn: the real request sequence, every request a
//! rotation. Session ids are random, so the store is visited in random
//! order (with 1 000 000 sessions every lookup misses the CPU caches, as
//! in a server), while the bench's own arrays are read in order and add no
//! misses of their own.
//!
//! `store_advance` measures the store's `verify_and_advance` alone on the
//! same stores, to split the manager's cost from the store's.
//!
//! ```text
//! cargo bench --bench validate
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rolling_session::{
    KeyRing, MemoryStore, SessionContext, SessionManager, SessionStore, TokenKey,
    store::AdvanceRequest, store::Rotate, store::SessionId, store::Verdict,
};
use tokio::runtime::Runtime;

/// Live sessions in the store; `VALIDATE_SIZES=1,10000` picks others
/// (handy under a profiler, where building the large store would dominate).
fn sizes() -> Vec<usize> {
    std::env::var("VALIDATE_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10_000, 1_000_000])
}

/// Goes round the sessions in order.
struct Pick(usize);

impl Pick {
    fn next(&mut self, n: usize) -> usize {
        self.0 += 1;
        if self.0 >= n {
            self.0 = 0;
        }
        self.0
    }
}

struct Fixture {
    manager: SessionManager,
    keys: KeyRing,
    store: Arc<dyn SessionStore>,
    tokens: Vec<String>,
    ids: Vec<SessionId>,
    counters: Vec<u64>,
}

fn fixture(rt: &Runtime, n: usize) -> Fixture {
    let store: std::sync::Arc<dyn rolling_session::SessionStore> =
        std::sync::Arc::new(MemoryStore::new());
    let keys = KeyRing::new(TokenKey::new(1, b"0123456789abcdefghijklmnopqrstuv"));
    let manager = SessionManager::builder(keys.clone())
        .shared_store(store.clone())
        .build()
        .unwrap();
    let mut tokens = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    rt.block_on(async {
        for i in 0..n {
            let s = manager
                .create_session(format!("user-{i}"), SessionContext::default())
                .await
                .unwrap();
            ids.push(s.session.id());
            tokens.push(s.token.expose().to_owned());
        }
    });
    Fixture {
        manager,
        keys,
        store,
        tokens,
        ids,
        counters: vec![0; n],
    }
}

fn validate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("validate_session");
    g.measurement_time(Duration::from_secs(5));
    for n in sizes() {
        let mut f = fixture(&rt, n);
        let mut pick = Pick(0);
        // The store's atomic advance alone, on the same sessions, with the
        // counters tracked here.
        let now = f.manager.now_ms();
        g.bench_with_input(BenchmarkId::new("store_advance", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let i = pick.next(n);
                        let request = AdvanceRequest {
                            session: f.ids[i],
                            presented: f.counters[i],
                            now_ms: now,
                            grace_depth: 16,
                            grace_window_ms: 10_000,
                            rotate: Rotate::Always,
                            new_id: None,
                            max_ahead: 64,
                        };
                        let a = f
                            .store
                            .verify_and_advance(&f.ids[i], &request)
                            .await
                            .unwrap()
                            .unwrap();
                        debug_assert_eq!(a.verdict, Verdict::Rotated);
                        f.counters[i] = a.record.sequence.counter;
                    }
                    start.elapsed()
                })
            })
        });
        // Back in step: each session's live token from its counter.
        for i in 0..n {
            f.tokens[i] = f.keys.mint(&f.ids[i], f.counters[i]).expose().to_owned();
        }
        g.bench_with_input(BenchmarkId::new("validate", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let i = pick.next(n);
                        let v = f.manager.validate_session(&f.tokens[i]).await.unwrap();
                        f.tokens[i] = v.next_token.unwrap().expose().to_owned();
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
