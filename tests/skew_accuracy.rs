//! Drift accuracy on simulated sessions, through the public `ingest` path, against the least
//! squares baseline.
//!
//! Each session: the client clock runs at `1 + ρ` times server speed (ρ uniform in ±100 ppm)
//! from a random offset of up to ±10 s; reports every U(5, 30) s; one-way delay
//! 20 ms + Exp(mean 10 ms), or 15 ms + Pareto(x_m = 5 ms, shape 1.5) for the heavy-tailed
//! variant (same 20 ms minimum, infinite variance); both clocks read in whole milliseconds.
//! The true drift as the predictor defines it (server rate relative to client, minus 1) is
//! `−ρ / (1 + ρ)`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rolling_session::drift::{
    DriftConfig, DriftPredictor, SampleContext, SessionDrift, TelemetrySample,
};

const SESSIONS: usize = 201;
const CHECKPOINTS: [usize; 2] = [40, 100];

#[derive(Clone, Copy)]
enum Delay {
    Exponential,
    Pareto,
}

fn delay_ms(rng: &mut ChaCha8Rng, kind: Delay) -> f64 {
    let u: f64 = 1.0 - rng.r#gen::<f64>(); // (0, 1]
    match kind {
        Delay::Exponential => 20.0 - 10.0 * u.ln(),
        Delay::Pareto => 15.0 + 5.0 * u.powf(-1.0 / 1.5),
    }
}

fn least_squares_slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
    let md = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - md)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mt) * (p.0 - mt)).sum();
    sxy / sxx
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median absolute drift error (ppm) of the envelope and of least squares at each checkpoint.
fn simulate(kind: Delay, seed: u64) -> Vec<(usize, f64, f64)> {
    let predictor = DriftPredictor::new(DriftConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut env_err = vec![Vec::new(); CHECKPOINTS.len()];
    let mut ls_err = vec![Vec::new(); CHECKPOINTS.len()];
    for _ in 0..SESSIONS {
        let rho: f64 = rng.gen_range(-100e-6..100e-6);
        let offset: f64 = rng.gen_range(-10_000.0..10_000.0);
        let truth_ppm = -rho / (1.0 + rho) * 1e6;
        let mut state = SessionDrift::new();
        let mut server = 1_700_000_000_000.0_f64;
        let start = server;
        let mut points = Vec::new();
        for n in 1..=CHECKPOINTS[CHECKPOINTS.len() - 1] {
            server += rng.gen_range(5_000.0..30_000.0);
            let client = (start + offset + (server - start) * (1.0 + rho)).round() as i64;
            let arrival = (server + delay_ms(&mut rng, kind)).round() as i64;
            let sample = TelemetrySample {
                timestamp: client,
                operation_count: n as u64,
                client_entropy: 0.5,
                echo_server_timestamp: None,
            };
            let ctx = SampleContext {
                session_age_ms: (server - start) as u64,
                token_expires_in_ms: 300_000,
                operation: None,
            };
            let advice = predictor
                .ingest(&mut state, &sample, ctx, arrival)
                .unwrap_or_else(|e| panic!("report {n}: {e}"));
            assert!(!advice.clock_step, "false clock step at report {n}");
            points.push((client as f64, (arrival - client) as f64));
            if let Some(k) = CHECKPOINTS.iter().position(|&c| c == n) {
                env_err[k].push((advice.drift_ppm - truth_ppm).abs());
                ls_err[k].push((least_squares_slope(&points) * 1e6 - truth_ppm).abs());
            }
        }
    }
    CHECKPOINTS
        .iter()
        .enumerate()
        .map(|(k, &n)| (n, median(env_err[k].clone()), median(ls_err[k].clone())))
        .collect()
}

fn check(kind: Delay, name: &str, seed: u64) {
    for (n, envelope, ls) in simulate(kind, seed) {
        println!(
            "{name}: {n} reports: median |drift error| envelope {envelope:.3} ppm, least squares {ls:.3} ppm"
        );
        let limit = if n >= 100 { 1.0 } else { 5.0 };
        assert!(
            envelope <= limit,
            "{name}, {n} reports: {envelope} ppm > {limit}"
        );
        assert!(
            envelope < ls,
            "{name}, {n} reports: envelope no better than least squares"
        );
    }
}

#[test]
fn exponential_delay() {
    check(Delay::Exponential, "exponential", 7);
}

#[test]
fn heavy_tailed_delay() {
    check(Delay::Pareto, "pareto(1.5)", 11);
}
