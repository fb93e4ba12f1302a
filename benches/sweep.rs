//! The `MemoryStore` sweep under load (issue 13 item 5): how long requests
//! wait while 1 000 000 expired sessions are swept, and how much heap the
//! store gives back.
//!
//! ```text
//! cargo bench --bench sweep                 # 1 000 000 expired sessions
//! cargo bench --bench sweep -- 100000       # another count
//! ```
//!
//! 64 live sessions are created first (their heap is the "pre-load"
//! level), then the expired ones (an hour earlier on a manual clock, so
//! they are past their idle timeout), then 4 tasks validate the live
//! sessions in a loop (each one request a millisecond) on a 2-worker
//! runtime while `sweep_expired` runs:
//! the latency of each request is recorded, during the sweep and, for
//! comparison, for a second before it. Heap bytes are counted by a global
//! allocator, as in `benches/memory.rs`. A measurement, not a test: the
//! figures go to `docs/benchmarks.md`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use rolling_session::{
    KeyRing, MemoryStore, SessionContext, SessionManager, TokenKey, clock::ManualClock,
    token::Token,
};

/// Counts live heap bytes (as requested).
struct Counting;

static BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to the system allocator unchanged; the
// counter is only a statistic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LIVE: usize = 64;
/// Latencies kept per task (at one request a millisecond: 10 minutes).
const MAX_SAMPLES: usize = 600_000;
const TASKS: usize = 4;
const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;

fn heap() -> isize {
    BYTES.load(Ordering::Relaxed)
}

/// Validates `tokens` round-robin until `stop`, one request a
/// millisecond; the latency of each (kept in a preallocated vector, so
/// that measuring allocates nothing while it runs).
async fn requests(
    manager: SessionManager,
    mut tokens: Vec<Token>,
    stop: Arc<AtomicBool>,
) -> (Vec<Token>, Vec<Duration>) {
    let mut took = Vec::with_capacity(MAX_SAMPLES);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) && took.len() < MAX_SAMPLES {
        let t = &mut tokens[i % LIVE.div_ceil(TASKS)];
        let started = Instant::now();
        let v = manager.validate_session(t.expose()).await.unwrap();
        took.push(started.elapsed());
        if let Some(next) = v.next_token {
            *t = next;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (tokens, took)
}

fn summary(name: &str, mut took: Vec<Duration>) {
    took.sort();
    let q = |p: f64| took[((took.len() - 1) as f64 * p) as usize];
    println!(
        "{name:<28} {:>9} requests  p50 {:>9.1?}  p99 {:>9.1?}  p99.9 {:>9.1?}  max {:>9.1?}",
        took.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        took.last().copied().unwrap_or_default()
    );
}

async fn phase(
    manager: &SessionManager,
    tokens: Vec<Vec<Token>>,
    work: impl Future<Output = u64>,
) -> (Vec<Vec<Token>>, Vec<Duration>, u64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| tokio::spawn(requests(manager.clone(), t, stop.clone())))
        .collect();
    let started = Instant::now();
    let swept = work.await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut back = Vec::new();
    for t in tasks {
        let (tokens, took) = t.await.unwrap();
        back.push(tokens);
        all.extend(took);
    }
    (back, all, swept, elapsed)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clock = ManualClock::new(T0 + 2 * HOUR);
    let manager = SessionManager::builder(KeyRing::new(TokenKey::new(
        1,
        b"0123456789abcdefghijklmnopqrstuv",
    )))
    .store(MemoryStore::new())
    .clock(clock.clone())
    .build()
    .unwrap();

    rt.block_on(async {
        let mut live = Vec::new();
        for i in 0..LIVE {
            let s = manager
                .create_session(format!("live-{i}"), SessionContext::default())
                .await
                .unwrap();
            live.push(s.token);
        }
        let tokens: Vec<Vec<Token>> = live
            .chunks(LIVE.div_ceil(TASKS))
            .map(<[Token]>::to_vec)
            .collect();
        let before_load = heap();

        // The expired sessions: created two hours earlier, idle since.
        clock.set(T0);
        for i in 0..n {
            manager
                .create_session(format!("user-{i:07}"), SessionContext::default())
                .await
                .unwrap();
        }
        clock.set(T0 + 2 * HOUR);
        let loaded = heap();

        let (tokens, quiet, ..) = phase(&manager, tokens, async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            0
        })
        .await;
        let (_, sweeping, swept, took) = phase(&manager, tokens, async {
            manager.sweep_expired().await.unwrap()
        })
        .await;
        // The latency vectors are the bench's, not the store's.
        let samples =
            ((quiet.capacity() + sweeping.capacity()) * std::mem::size_of::<Duration>()) as isize;
        let after = heap() - samples;

        println!("expired sessions swept        {swept} of {n}, in {took:.1?}");
        summary("requests, no sweep (1 s)", quiet);
        summary("requests during the sweep", sweeping);
        let mib = |b: isize| b as f64 / (1024.0 * 1024.0);
        println!(
            "heap: before the load {:.2} MiB, loaded {:.1} MiB, after the sweep {:.2} MiB \
             ({:+.1}% of before the load)",
            mib(before_load),
            mib(loaded),
            mib(after),
            100.0 * (after - before_load) as f64 / before_load as f64
        );
    });
}
