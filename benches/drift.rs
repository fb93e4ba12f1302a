//! Cost of one telemetry report and size of one session's state.
//!
//! `cargo bench --bench drift` prints the per-report time, with the (opt-in) isolation forest
//! and without it (the default); the state size is printed once before the timings
//! (`size_bytes` and the JSON a store would persist).
//!
//! `DRIFT_INGEST_REPORTS=N` instead runs N steady-state reports with the forest and exits, for
//! instruction counts: `valgrind --tool=callgrind --toggle-collect='*DriftPredictor::ingest*'
//! target/release/deps/drift-<hash>` (add `DRIFT_INGEST_FOREST=0` for the default, without it).
//! It prints a digest of every answer, which an optimisation must leave unchanged.

use std::hash::{Hash, Hasher};
use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use rolling_session::drift::{
    DriftAdvice, DriftConfig, DriftPredictor, SampleContext, SessionDrift, TelemetryError,
    TelemetrySample,
};

const T0: i64 = 1_700_000_000_000;

struct SessionInfo {
    state: SessionDrift,
    now: i64,
    count: u64,
    i: u64,
}

impl SessionInfo {
    fn new() -> Self {
        Self {
            state: SessionDrift::new(),
            now: T0,
            count: 0,
            i: 0,
        }
    }

    /// One report: irregular 5–30 s intervals, jittery delay and rate, an echo.
    fn report(&mut self, p: &DriftPredictor) -> u64 {
        self.advice(p).map_or(0, |a| a.refresh_in_ms)
    }

    fn advice(&mut self, p: &DriftPredictor) -> Result<DriftAdvice, TelemetryError> {
        self.i += 1;
        let h = self.i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        let interval = 5_000 + (h % 25_000) as i64;
        self.now += interval;
        self.count += 1 + h % 40;
        let sample = TelemetrySample {
            timestamp: self.now - 300 - (h % 17) as i64 + (self.i / 50) as i64,
            operation_count: self.count,
            client_entropy: (h % 1000) as f64 / 1000.0,
            echo_server_timestamp: Some(self.now - interval + 120),
        };
        let ctx = SampleContext {
            session_age_ms: self.i * 17_500,
            token_expires_in_ms: 300_000,
            operation: Some("payment"),
        };
        p.ingest(&mut self.state, &sample, ctx, self.now)
    }
}

fn warmed(config: DriftConfig, train: bool) -> (DriftPredictor, SessionInfo) {
    let p = DriftPredictor::new(config);
    let mut s = SessionInfo::new();
    for _ in 0..2_000 {
        s.report(&p);
    }
    if train {
        p.retrain_now();
    }
    (p, s)
}

fn bench(c: &mut Criterion) {
    let mut with_forest = DriftConfig::default();
    with_forest.forest_enabled = true;
    let (p, s) = warmed(with_forest, true);
    let json = serde_json::to_vec(&s.state).map_or(0, |v| v.len());
    println!(
        "state per session: size_bytes() = {} B, JSON = {json} B, shared forest = {} B",
        s.state.size_bytes(),
        p.forest_bytes()
    );

    let mut g = c.benchmark_group("ingest");
    let mut session = s;
    g.bench_function("steady_state_with_forest", |b| {
        b.iter(|| black_box(session.report(&p)));
    });
    // The default: no forest.
    let (p2, mut s2) = warmed(DriftConfig::default(), false);
    g.bench_function("steady_state_without_forest", |b| {
        b.iter(|| black_box(s2.report(&p2)));
    });
    g.finish();

    let mut g = c.benchmark_group("parts");
    let data = parts_data();
    let params = rolling_session::drift::eval::ForestParams::default();
    let forest = rolling_session::drift::eval::IsolationForest::fit(&data, 5, &params);
    if let Some(forest) = forest {
        let x = [0.3f32, 1.0, 2.0, 3.0, 4.0];
        g.bench_function("forest_score", |b| {
            b.iter(|| black_box(forest.score(black_box(&x))))
        });
    }
    g.sample_size(10);
    g.bench_function("forest_fit_4096", |b| {
        b.iter(|| {
            black_box(rolling_session::drift::eval::IsolationForest::fit(
                &data, 5, &params,
            ))
        })
    });
    g.finish();
}

/// Rows for the forest alone.
fn parts_data() -> Vec<f32> {
    (0..4096 * 5)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
        .collect()
}

/// `DRIFT_INGEST_REPORTS` reports after the same warm-up as the bench, for a profiler.
fn profile(reports: u64) {
    let mut config = DriftConfig::default();
    config.forest_enabled = std::env::var("DRIFT_INGEST_FOREST").map_or(true, |v| v != "0");
    let train = config.forest_enabled;
    let (p, mut s) = warmed(config, train);
    // A digest of every answer: an optimisation must not change one. `DRIFT_INGEST_DIGEST=0`
    // leaves it out (for a sampling profiler, which would see the formatting).
    let digest_on = std::env::var("DRIFT_INGEST_DIGEST").map_or(true, |v| v != "0");
    let mut digest = std::hash::DefaultHasher::new();
    for _ in 0..reports {
        let advice = s.advice(&p);
        if digest_on {
            format!("{advice:?}").hash(&mut digest);
        } else {
            black_box(advice).ok();
        }
    }
    println!(
        "{reports} reports, digest of the answers {:016x}, forest generation {}",
        digest.finish(),
        p.forest_generation()
    );
    // The forest's own scores, which the answers may not show (the session's evidence can
    // outweigh them): forests of several shapes fitted on the parts' data, scored on a grid.
    let data = parts_data();
    let mut digest = std::hash::DefaultHasher::new();
    for (dims, trees, subsample) in [(5, 100, 256), (3, 50, 1000), (16, 20, 64), (1, 10, 3)] {
        let params = rolling_session::drift::eval::ForestParams {
            trees,
            subsample,
            seed: dims as u64,
        };
        let rows = &data[..data.len() / dims * dims];
        if let Some(f) = rolling_session::drift::eval::IsolationForest::fit(rows, dims, &params) {
            for k in 0..2_000u32 {
                let x: Vec<f32> = (0..dims as u32)
                    .map(|d| ((k * 31 + d * 17) % 1_100) as f32 / 100.0)
                    .collect();
                f.score(&x).to_bits().hash(&mut digest);
            }
        }
    }
    println!("digest of the forests' scores {:016x}", digest.finish());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}

fn main() {
    if let Some(n) = std::env::var("DRIFT_INGEST_REPORTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        profile(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
