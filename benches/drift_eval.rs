//! Evaluation harness of the drift predictor (issue 18): seeded traces of steady, bursty and
//! ramp-then-leave users and of attacks (see `tests/drift_sim/mod.rs` for the model), run
//! through the real `DriftPredictor::ingest`, with the tables `docs/drift.md` quotes.
//!
//! `cargo bench --bench drift_eval` (release) prints the tables for 1 s and 5 s cadences.
//! Environment: `DRIFT_EVAL_SESSIONS` (honest sessions per class, default 200),
//! `DRIFT_EVAL_ATTACKED` (sessions per attack, default 100), `DRIFT_EVAL_SEED` (default 18).

#[path = "../tests/drift_sim/mod.rs"]
mod drift_sim;

use drift_sim::Population;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly then.
    let full = std::env::args().any(|a| a == "--bench");
    let honest = env("DRIFT_EVAL_SESSIONS", if full { 200 } else { 6 }) as usize;
    let attacked = env("DRIFT_EVAL_ATTACKED", if full { 100 } else { 3 }) as usize;
    let seed = env("DRIFT_EVAL_SEED", 18);
    let cadences: Vec<f64> = match std::env::var("DRIFT_EVAL_CADENCE_MS") {
        Ok(v) => v.split(',').filter_map(|c| c.parse().ok()).collect(),
        Err(_) => vec![1_000.0, 5_000.0],
    };
    for cadence_ms in cadences {
        let pop = Population::new(cadence_ms, honest, attacked, seed);
        let started = std::time::Instant::now();
        let runs = pop.run();
        let reports: usize = runs.iter().map(|r| r.outcomes.len()).sum();
        println!("{}", drift_sim::tables(&pop, &runs));
        println!(
            "({reports} reports in {:.2} s, seed {seed})\n",
            started.elapsed().as_secs_f64()
        );
    }
}
