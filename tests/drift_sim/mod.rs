//! A seeded evaluation harness for the drift predictor (issue 18): a generator of realistic
//! client telemetry — steady, bursty and ramp-then-leave users, with network jitter, drifting
//! client clocks and 1 s or 5 s report cadences — plus attacks, run through the real
//! [`DriftPredictor::ingest`] and measured against naive baselines.
//!
//! Shared by `benches/drift_eval.rs` (which prints the tables quoted in `docs/drift.md`) and
//! `tests/drift_eval.rs` (which pins the properties on fixed seeds).
//!
//! # Model
//!
//! * **Population.** Sessions log in at staggered times over [`Population::spread_s`] and live
//!   `duration_s`, all through one shared predictor (so the forest, if enabled, sees the mix
//!   and starts cold). Time is server milliseconds.
//! * **Users** (operation times, server seconds since login):
//!   - *steady*: Poisson at λ ~ log-U(0.3, 4) ops/s;
//!   - *bursty*: idle gaps ~ Exp(mean g), g ~ U(10, 60) s, then a burst of U{5..30}
//!     operations ~0.15 s apart;
//!   - *ramp then stop*: rate rising linearly from r₀ ~ U(0.2, 1) to r₀·U(2, 6) over
//!     U(60, 240) s, held U(0, 60) s, then zero: the user left, the tab keeps reporting.
//! * **Clocks.** The client clock runs at 1 + ρ, ρ ~ U(±100 ppm), from an offset of up to
//!   ±10 s; both clocks are read in whole milliseconds.
//! * **Network.** One-way delay = base U(0.2, 30) ms + jitter U(0, J), J ~ U(5, 80) ms, and 1 %
//!   of reports delayed a further Exp(mean 200 ms); 1 % of responses lost (the next report
//!   echoes an older server timestamp).
//! * **Reports** a `cadence` of client time (plus 0–15 ms timer lateness) after the previous
//!   report's response came back, as the browser client schedules them, echoing the newest
//!   server timestamp received.
//! * **Tokens** live 8 h for 70 % of sessions and U(5, 12) min for the rest; the simulated
//!   client refreshes when told (`refresh`) or when its `refresh_in_ms` timer fires.
//! * **Attacks** start at U(150, 300) s and last to the end of the session:
//!   - *inflation ×k*: a second user of the session adds operations at (k − 1)× the
//!     session's mean rate before the attack (at least 0.05 ops/s);
//!   - *counter jump*: the count jumps once by log-U(200, 5 000) and stays offset; the attack
//!     window is the 60 s from the jump;
//!   - *clock jump*: the reporting clock is off by ±log-U(2 s, 2 h) from then on;
//!   - *replay*: the honest client stops and its last report is re-sent verbatim at the
//!     cadence.

#![allow(dead_code)]

use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rolling_session::drift::eval::{LowerEnvelope, MODEL_NAMES, MODELS, model_rates, roc_auc};
use rolling_session::drift::{
    DriftAdvice, DriftConfig, DriftPredictor, SampleContext, SessionDrift, TelemetrySample,
};

/// Server time of the population's start (ms since the epoch).
pub const T0: i64 = 1_700_000_000_000;

/// Kinds of honest behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Constant-rate Poisson user.
    Steady,
    /// Idle gaps, then bursts of 5–30 operations.
    Bursty,
    /// Rising rate, then the user leaves.
    RampStop,
}

impl Class {
    /// All classes.
    pub const ALL: [Class; 3] = [Class::Steady, Class::Bursty, Class::RampStop];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Steady => "steady",
            Class::Bursty => "bursty",
            Class::RampStop => "ramp then stop",
        }
    }
}

/// Attacks on a session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attack {
    /// Honest session.
    None,
    /// A second user adds operations at `(k − 1)×` the session's mean rate.
    Inflate(f64),
    /// The count jumps once.
    CounterJump,
    /// The reporting clock jumps.
    ClockJump,
    /// The last honest report is re-sent verbatim.
    Replay,
}

impl Attack {
    /// The attacks evaluated.
    pub const ALL: [Attack; 5] = [
        Attack::Inflate(10.0),
        Attack::Inflate(40.0),
        Attack::CounterJump,
        Attack::ClockJump,
        Attack::Replay,
    ];

    /// Display name.
    pub fn name(self) -> String {
        match self {
            Attack::None => "none".into(),
            Attack::Inflate(k) => format!("inflation ×{k}"),
            Attack::CounterJump => "counter jump".into(),
            Attack::ClockJump => "clock jump".into(),
            Attack::Replay => "replayed reports".into(),
        }
    }
}

/// One report as sent, with the truth behind it.
#[derive(Clone, Debug)]
pub struct Report {
    /// Server time of arrival (ms).
    pub arrival: i64,
    /// What was posted.
    pub sample: TelemetrySample,
    /// True server time of sending (ms, fractional).
    pub send_server: f64,
    /// True server − client offset at sending (ms, fractional), of the clock that sent it.
    pub true_offset: f64,
    /// Within the attack window.
    pub attacked: bool,
    /// Sent by the honest client (not a replay).
    pub honest_sender: bool,
}

/// A generated session.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Behaviour class.
    pub class: Class,
    /// Attack.
    pub attack: Attack,
    /// Login time (server ms).
    pub login: i64,
    /// Honest operation times (server s since login), sorted.
    pub ops: Vec<f64>,
    /// Reports in sending order.
    pub reports: Vec<Report>,
    /// True drift as the predictor defines it (ppm, server rate relative to client − 1).
    pub true_drift_ppm: f64,
    /// Token lifetime (ms).
    pub token_lifetime_ms: u64,
    /// Attack start (server s since login), if attacked.
    pub attack_start_s: Option<f64>,
}

impl Trace {
    /// Honest operations up to `t` seconds after login.
    pub fn count_at(&self, t: f64) -> u64 {
        self.ops.partition_point(|&x| x <= t) as u64
    }

    /// Time of the last report (s since login).
    pub fn last_report_s(&self) -> f64 {
        self.reports
            .last()
            .map_or(0.0, |r| (r.send_server - self.login as f64) / 1_000.0)
    }
}

fn exp(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    let u: f64 = 1.0 - rng.r#gen::<f64>();
    -mean * u.ln()
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (rng.gen_range(lo.ln()..hi.ln())).exp()
}

/// Event times of an inhomogeneous Poisson process on `[0, end)` by thinning.
fn poisson_times(
    rng: &mut ChaCha8Rng,
    rate: impl Fn(f64) -> f64,
    max_rate: f64,
    end: f64,
) -> Vec<f64> {
    let mut out = Vec::new();
    if max_rate <= 0.0 {
        return out;
    }
    let mut t = 0.0;
    loop {
        t += exp(rng, 1.0 / max_rate);
        if t >= end {
            return out;
        }
        if rng.r#gen::<f64>() * max_rate <= rate(t) {
            out.push(t);
        }
    }
}

fn honest_ops(rng: &mut ChaCha8Rng, class: Class, end: f64) -> Vec<f64> {
    match class {
        Class::Steady => {
            let lambda = log_uniform(rng, 0.3, 4.0);
            poisson_times(rng, |_| lambda, lambda, end)
        }
        Class::Bursty => {
            let g = rng.gen_range(10.0..60.0);
            let mut out = Vec::new();
            let mut t = exp(rng, g * 0.5);
            while t < end {
                let n = rng.gen_range(5..=30);
                for _ in 0..n {
                    t += exp(rng, 0.15);
                    if t < end {
                        out.push(t);
                    }
                }
                t += exp(rng, g);
            }
            out
        }
        Class::RampStop => {
            let r0 = rng.gen_range(0.2..1.0);
            let r1 = r0 * rng.gen_range(2.0..6.0);
            let ramp = rng.gen_range(60.0..240.0);
            let hold = rng.gen_range(0.0..60.0);
            poisson_times(
                rng,
                |t| {
                    if t < ramp {
                        r0 + (r1 - r0) * t / ramp
                    } else if t < ramp + hold {
                        r1
                    } else {
                        0.0
                    }
                },
                r1,
                end,
            )
        }
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct SessionSpec {
    /// Behaviour class.
    pub class: Class,
    /// Attack.
    pub attack: Attack,
    /// Report cadence (client ms).
    pub cadence_ms: f64,
    /// Session length (s).
    pub duration_s: f64,
    /// Login (server ms).
    pub login: i64,
    /// Seed.
    pub seed: u64,
}

/// Generates one session.
pub fn generate(spec: &SessionSpec) -> Trace {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let end = spec.duration_s;
    let ops = honest_ops(&mut rng, spec.class, end);
    let rho: f64 = rng.gen_range(-100e-6..100e-6);
    let offset0: f64 = rng.gen_range(-10_000.0..10_000.0);
    let base = rng.gen_range(0.2..30.0);
    let jitter = rng.gen_range(5.0..80.0);
    let token_lifetime_ms = if rng.gen_bool(0.7) {
        8 * 3_600_000
    } else {
        rng.gen_range(300_000..720_000)
    };
    let login = spec.login as f64;
    // Client clock reading (exact ms) at server time `s` (ms), shifted by `extra`.
    let client_at = |s: f64, extra: f64| login - offset0 + (s - login) * (1.0 + rho) + extra;
    let attack_start_s = (spec.attack != Attack::None).then(|| rng.gen_range(150.0..300.0));
    let a_start = attack_start_s.unwrap_or(f64::INFINITY);

    let mut extra_ops: Vec<f64> = Vec::new();
    let mut jump = 0u64;
    let mut clock_shift = 0.0;
    match spec.attack {
        Attack::Inflate(k) => {
            let before = ops.partition_point(|&x| x <= a_start) as f64;
            let mean = (before / a_start).max(0.05);
            let rate = (k - 1.0) * mean;
            extra_ops = poisson_times(&mut rng, |_| rate, rate, end - a_start)
                .into_iter()
                .map(|t| t + a_start)
                .collect();
        }
        Attack::CounterJump => jump = log_uniform(&mut rng, 200.0, 5_000.0).round() as u64,
        Attack::ClockJump => {
            let mag = log_uniform(&mut rng, 2_000.0, 7_200_000.0);
            clock_shift = if rng.gen_bool(0.5) { mag } else { -mag };
        }
        Attack::None | Attack::Replay => {}
    }
    let attack_end_s = match spec.attack {
        Attack::CounterJump => a_start + 60.0,
        _ => f64::INFINITY,
    };

    let mut reports: Vec<Report> = Vec::new();
    // When each response reaches the client (server ms) and its server timestamp.
    let mut responses: Vec<(f64, i64)> = Vec::new();
    let mut send_client = client_at(login, 0.0) + rng.gen_range(0.0..spec.cadence_ms);
    let mut last_honest: Option<Report> = None;
    loop {
        // Server time of this send (the client timer runs on the client clock).
        let send_server = login + (send_client - (login - offset0)) / (1.0 + rho);
        let t_s = (send_server - login) / 1_000.0;
        if t_s >= end {
            break;
        }
        let attacked = t_s >= a_start && t_s < attack_end_s;
        let mut delay = base + rng.gen_range(0.0..jitter);
        if rng.gen_bool(0.01) {
            delay += exp(&mut rng, 200.0);
        }
        let arrival = (send_server + delay).floor() as i64;
        if spec.attack == Attack::Replay && t_s >= a_start {
            if let Some(prev) = &last_honest {
                reports.push(Report {
                    arrival,
                    sample: prev.sample.clone(),
                    send_server,
                    true_offset: prev.true_offset,
                    attacked: true,
                    honest_sender: false,
                });
            }
        } else {
            let shift = if t_s >= a_start { clock_shift } else { 0.0 };
            let client_exact = client_at(send_server, shift);
            let mut count = ops.partition_point(|&x| x <= t_s) as u64;
            count += extra_ops.partition_point(|&x| x <= t_s) as u64;
            if t_s >= a_start {
                count += jump;
            }
            let echo = responses
                .iter()
                .filter(|(at, _)| *at <= send_server)
                .map(|(_, ts)| *ts)
                .max();
            let r = Report {
                arrival,
                sample: TelemetrySample {
                    timestamp: client_exact.floor() as i64,
                    operation_count: count,
                    client_entropy: (rng.gen_range(0.6..0.95f64) * 1e4).round() / 1e4,
                    echo_server_timestamp: echo,
                },
                send_server,
                true_offset: send_server - client_exact,
                attacked,
                honest_sender: true,
            };
            last_honest = Some(r.clone());
            reports.push(r);
        }
        // The response comes back (1 % are lost: the client gives up then); the client waits
        // a cadence from there, as the browser client does, so reports never overtake.
        let back_at = arrival as f64 + base + rng.gen_range(0.0..jitter);
        if !rng.gen_bool(0.01) {
            responses.push((back_at, arrival));
            if responses.len() > 8 {
                responses.remove(0);
            }
        }
        send_client = client_at(back_at, 0.0) + spec.cadence_ms + rng.gen_range(0.0..15.0);
    }
    Trace {
        class: spec.class,
        attack: spec.attack,
        login: spec.login,
        ops,
        reports,
        true_drift_ppm: -rho / (1.0 + rho) * 1e6,
        token_lifetime_ms,
        attack_start_s,
    }
}

/// The outcome of one report.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Index into the trace's reports.
    pub index: usize,
    /// The advice, or the rejection reason.
    pub advice: Result<DriftAdvice, &'static str>,
    /// `token_expires_in_ms` passed in.
    pub expires_in_ms: u64,
    /// Session age at the report (ms).
    pub age_ms: u64,
    /// Each of the ensemble's models' rates at this report (ops/s).
    pub model_rates: [f64; MODELS],
}

/// A session and what the predictor answered.
#[derive(Clone, Debug)]
pub struct Run {
    /// The generated session.
    pub trace: Trace,
    /// One per report, in order.
    pub outcomes: Vec<Outcome>,
    /// Token expiries that passed without a refresh.
    pub expired_unrefreshed: u32,
    /// Final predictor state.
    pub state: SessionDrift,
}

/// A population to simulate.
#[derive(Clone, Debug)]
pub struct Population {
    /// Report cadence (ms).
    pub cadence_ms: f64,
    /// Honest sessions per class.
    pub honest_per_class: usize,
    /// Attacked sessions per attack (classes alternate).
    pub attacked_per_attack: usize,
    /// Session length (s).
    pub duration_s: f64,
    /// Logins are spread uniformly over this many seconds.
    pub spread_s: f64,
    /// Seed.
    pub seed: u64,
    /// Predictor configuration.
    pub config: DriftConfig,
}

/// The configuration the demo runs with: the defaults, with the per-session rate limit
/// lowered to 50 ms so that 1 s cadences are accepted.
pub fn demo_config() -> DriftConfig {
    let mut config = DriftConfig::default();
    config.min_sample_interval_ms = 50;
    config
}

impl Population {
    /// A population of 600 s sessions logging in over 600 s, with the demo configuration.
    pub fn new(
        cadence_ms: f64,
        honest_per_class: usize,
        attacked_per_attack: usize,
        seed: u64,
    ) -> Self {
        Self {
            cadence_ms,
            honest_per_class,
            attacked_per_attack,
            duration_s: 600.0,
            spread_s: 600.0,
            seed,
            config: demo_config(),
        }
    }

    /// Generates every session and runs them, interleaved by arrival time, through one
    /// predictor.
    pub fn run(&self) -> Vec<Run> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut specs = Vec::new();
        for class in Class::ALL {
            for _ in 0..self.honest_per_class {
                specs.push((class, Attack::None));
            }
        }
        for attack in Attack::ALL {
            for i in 0..self.attacked_per_attack {
                specs.push((Class::ALL[i % 3], attack));
            }
        }
        let traces: Vec<Trace> = specs
            .into_iter()
            .map(|(class, attack)| {
                generate(&SessionSpec {
                    class,
                    attack,
                    cadence_ms: self.cadence_ms,
                    duration_s: self.duration_s,
                    login: T0 + (rng.gen_range(0.0..self.spread_s.max(1e-3)) * 1_000.0) as i64,
                    seed: rng.r#gen(),
                })
            })
            .collect();
        self.run_traces(traces)
    }

    /// Runs given sessions, interleaved by arrival time, through one predictor.
    pub fn run_traces(&self, traces: Vec<Trace>) -> Vec<Run> {
        let predictor = DriftPredictor::new(self.config.clone());
        let mut events: Vec<(i64, usize, usize)> = traces
            .iter()
            .enumerate()
            .flat_map(|(s, t)| {
                t.reports
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| (r.arrival, s, i))
            })
            .collect();
        events.sort_unstable();
        let mut runs: Vec<Run> = traces
            .into_iter()
            .map(|trace| Run {
                outcomes: Vec::with_capacity(trace.reports.len()),
                expired_unrefreshed: 0,
                state: SessionDrift::new(),
                trace,
            })
            .collect();
        // Per session: token expiry and a scheduled refresh (server ms).
        let mut tokens: Vec<(i64, Option<i64>)> = runs
            .iter()
            .map(|r| (r.trace.login + r.trace.token_lifetime_ms as i64, None))
            .collect();
        for (arrival, s, i) in events {
            let run = &mut runs[s];
            let (expiry, scheduled) = &mut tokens[s];
            let lifetime = run.trace.token_lifetime_ms as i64;
            // A refresh timer that fired before this report renewed the token.
            if let Some(at) = *scheduled
                && at <= arrival
            {
                if at > *expiry {
                    run.expired_unrefreshed += 1;
                }
                *expiry = at + lifetime;
                *scheduled = None;
            }
            if arrival > *expiry {
                run.expired_unrefreshed += 1;
                *expiry = arrival + lifetime;
            }
            let report = &run.trace.reports[i];
            let age_ms = (arrival - run.trace.login).max(0) as u64;
            let expires_in_ms = (*expiry - arrival).max(0) as u64;
            let ctx = SampleContext {
                session_age_ms: age_ms,
                token_expires_in_ms: expires_in_ms,
                operation: None,
            };
            let advice = predictor
                .ingest(&mut run.state, &report.sample, ctx, arrival)
                .map_err(|e| e.reason());
            if let Ok(a) = &advice
                && report.honest_sender
            {
                if a.refresh {
                    *expiry = arrival + lifetime;
                    *scheduled = None;
                } else {
                    *scheduled = Some(arrival + a.refresh_in_ms as i64);
                }
            }
            run.outcomes.push(Outcome {
                index: i,
                model_rates: model_rates(&run.state),
                advice,
                expires_in_ms,
                age_ms,
            });
        }
        runs
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// Forecast MAE at the horizon of the predictor and of the naive baselines.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForecastRow {
    /// Forecasts scored.
    pub n: usize,
    /// The predictor.
    pub forecast: f64,
    /// Last value.
    pub last: f64,
    /// Rate over the last [`RECENT_WINDOW_S`].
    pub recent: f64,
    /// Mean rate since login.
    pub mean: f64,
}

impl ForecastRow {
    /// The best naive baseline.
    pub fn best_baseline(&self) -> f64 {
        self.last.min(self.recent).min(self.mean)
    }
}

/// Window of the "recent rate" baseline (s).
pub const RECENT_WINDOW_S: f64 = 30.0;

/// Forecast MAE over the honest sessions of `class`: every accepted report whose horizon ends
/// within the session, against the true operation count at send time + horizon.
pub fn forecast_mae(runs: &[Run], class: Class, horizon_ms: u64) -> ForecastRow {
    let h = horizon_ms as f64 / 1_000.0;
    let (mut n, mut f, mut l, mut r, mut m) = (0usize, 0.0, 0.0, 0.0, 0.0);
    for run in runs
        .iter()
        .filter(|r| r.trace.attack == Attack::None && r.trace.class == class)
    {
        let reps = &run.trace.reports;
        let end = run.trace.last_report_s();
        for (k, o) in run.outcomes.iter().enumerate() {
            let Ok(a) = &o.advice else { continue };
            let rep = &reps[o.index];
            let t_s = (rep.send_server - run.trace.login as f64) / 1_000.0;
            if t_s + h > end {
                continue;
            }
            let truth = run.trace.count_at(t_s + h) as f64;
            let c = rep.sample.operation_count as f64;
            let age_s = o.age_ms as f64 / 1_000.0;
            let mean_rate = if age_s > 0.0 { c / age_s } else { 0.0 };
            let now = rep.arrival;
            let mut j = k;
            while j > 0
                && (now - reps[run.outcomes[j - 1].index].arrival) as f64
                    <= RECENT_WINDOW_S * 1_000.0
            {
                j -= 1;
            }
            let recent_rate = if j < k {
                let old = &reps[run.outcomes[j].index];
                (c - old.sample.operation_count as f64) / ((now - old.arrival) as f64 / 1_000.0)
            } else {
                mean_rate
            };
            n += 1;
            f += (a.predicted_operation_count as f64 - truth).abs();
            l += (c - truth).abs();
            r += (c + recent_rate * h - truth).abs();
            m += (c + mean_rate * h - truth).abs();
        }
    }
    let d = n.max(1) as f64;
    ForecastRow {
        n,
        forecast: f / d,
        last: l / d,
        recent: r / d,
        mean: m / d,
    }
}

/// Forecast MAE at the horizon of each of the ensemble's models alone, over the honest
/// sessions of `class` (the same forecasts as [`forecast_mae`]).
pub fn model_mae(runs: &[Run], class: Class, horizon_ms: u64) -> [f64; MODELS] {
    let h = horizon_ms as f64 / 1_000.0;
    let mut sum = [0.0; MODELS];
    let mut n = 0usize;
    for run in runs
        .iter()
        .filter(|r| r.trace.attack == Attack::None && r.trace.class == class)
    {
        let end = run.trace.last_report_s();
        for o in &run.outcomes {
            if o.advice.is_err() {
                continue;
            }
            let rep = &run.trace.reports[o.index];
            let t_s = (rep.send_server - run.trace.login as f64) / 1_000.0;
            if t_s + h > end {
                continue;
            }
            let truth = run.trace.count_at(t_s + h) as f64;
            let c = rep.sample.operation_count as f64;
            n += 1;
            for (s, r) in sum.iter_mut().zip(o.model_rates) {
                *s += (c + r * h - truth).abs();
            }
        }
    }
    sum.map(|s| s / n.max(1) as f64)
}

/// Honest-session alarm, refresh and skew figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct HonestRow {
    /// Sessions.
    pub sessions: usize,
    /// Sessions with any report at or above the anomaly threshold.
    pub alarmed: usize,
    /// Sessions alarmed within their first 30 s.
    pub alarmed_cold: usize,
    /// Sessions told `refresh: true` at least once.
    pub refreshed: usize,
    /// Sessions told `refresh: true` while their token had more than two horizons left.
    pub refreshed_unneeded: usize,
    /// Sessions whose token expired with no refresh.
    pub expired_unrefreshed: usize,
    /// Sessions with a rejected report.
    pub rejected: usize,
    /// Reports with `skew_ms` below the true offset minus 1 ms.
    pub skew_violations: usize,
    /// Reports checked for the skew bound.
    pub skew_checked: usize,
    /// Largest shortfall of `skew_ms` below the true offset (ms).
    pub skew_worst_ms: f64,
    /// Median `skew_ms − true offset` (ms).
    pub skew_median_excess_ms: f64,
}

/// Honest-session figures for `class` (`None`: all classes).
pub fn honest(runs: &[Run], class: Option<Class>, threshold: f64) -> HonestRow {
    let mut row = HonestRow::default();
    let mut excess = Vec::new();
    for run in runs
        .iter()
        .filter(|r| r.trace.attack == Attack::None && class.is_none_or(|c| r.trace.class == c))
    {
        row.sessions += 1;
        let (mut alarmed, mut cold, mut refreshed, mut unneeded, mut rejected) =
            (false, false, false, false, false);
        for o in &run.outcomes {
            let rep = &run.trace.reports[o.index];
            match &o.advice {
                Ok(a) => {
                    if a.anomaly_score >= threshold {
                        alarmed = true;
                        cold |= o.age_ms <= 30_000;
                    }
                    if a.refresh {
                        refreshed = true;
                        unneeded |= o.expires_in_ms > 2 * a.horizon_ms;
                    }
                    row.skew_checked += 1;
                    let short = rep.true_offset - a.skew_ms;
                    excess.push(-short);
                    if short > 1.0 {
                        row.skew_violations += 1;
                        row.skew_worst_ms = row.skew_worst_ms.max(short);
                    }
                }
                Err(_) => rejected = true,
            }
        }
        row.alarmed += usize::from(alarmed);
        row.alarmed_cold += usize::from(cold);
        row.refreshed += usize::from(refreshed);
        row.refreshed_unneeded += usize::from(unneeded);
        row.rejected += usize::from(rejected);
        row.expired_unrefreshed += usize::from(run.expired_unrefreshed > 0);
    }
    row.skew_median_excess_ms = median(&mut excess);
    row
}

/// Median (0 for an empty slice), reordering.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Detection figures for one attack.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttackRow {
    /// Attacked sessions.
    pub sessions: usize,
    /// Per-report ROC AUC: attack-window reports against every honest report.
    pub auc_reports: f64,
    /// Per-session ROC AUC: highest score in the attack window against each honest
    /// session's highest score.
    pub auc_sessions: f64,
    /// Sessions flagged at least once in the attack window.
    pub detected: usize,
    /// Sessions flagged on every attack-window report from the first flag on.
    pub held: usize,
    /// Median time from the attack's start to the first flag (s; ∞ if undetected).
    pub delay_median_s: f64,
    /// 90th percentile of that delay (s).
    pub delay_p90_s: f64,
    /// Attack-window reports rejected outright (counted as flagged, score 1).
    pub rejected: usize,
    /// Sessions flagged before their attack started.
    pub early_flags: usize,
}

/// Detection figures for `attack` against the honest sessions of the same runs.
pub fn attack(runs: &[Run], attack: Attack, threshold: f64) -> AttackRow {
    let mut row = AttackRow::default();
    let (mut scores, mut labels, mut s_scores, mut s_labels) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut delays = Vec::new();
    for run in runs.iter().filter(|r| r.trace.attack == Attack::None) {
        let mut top = 0.0f64;
        for o in &run.outcomes {
            if let Ok(a) = &o.advice {
                scores.push(a.anomaly_score);
                labels.push(false);
                top = top.max(a.anomaly_score);
            }
        }
        s_scores.push(top);
        s_labels.push(false);
    }
    for run in runs.iter().filter(|r| r.trace.attack == attack) {
        row.sessions += 1;
        let start = run.trace.attack_start_s.unwrap_or(0.0);
        let mut top = 0.0f64;
        let mut first: Option<f64> = None;
        let mut held = true;
        let mut early = false;
        for o in &run.outcomes {
            let rep = &run.trace.reports[o.index];
            let (score, flagged) = match &o.advice {
                Ok(a) => (a.anomaly_score, a.anomaly_score >= threshold),
                Err(_) => {
                    row.rejected += usize::from(rep.attacked);
                    (1.0, true)
                }
            };
            if !rep.attacked {
                let before = rep.send_server - (run.trace.login as f64) < start * 1e3;
                early |= flagged && before;
                continue;
            }
            scores.push(score);
            labels.push(true);
            top = top.max(score);
            if flagged {
                if first.is_none() {
                    first = Some((rep.send_server - run.trace.login as f64) / 1_000.0 - start);
                }
            } else if first.is_some() {
                held = false;
            }
        }
        row.early_flags += usize::from(early);
        s_scores.push(top);
        s_labels.push(true);
        match first {
            Some(d) => {
                row.detected += 1;
                row.held += usize::from(held);
                delays.push(d.max(0.0));
            }
            None => delays.push(f64::INFINITY),
        }
    }
    row.auc_reports = roc_auc(&scores, &labels).unwrap_or(f64::NAN);
    row.auc_sessions = roc_auc(&s_scores, &s_labels).unwrap_or(f64::NAN);
    delays.sort_by(f64::total_cmp);
    if !delays.is_empty() {
        row.delay_median_s = delays[delays.len() / 2];
        row.delay_p90_s = delays[(delays.len() * 9 / 10).min(delays.len() - 1)];
    }
    row
}

/// One row of the drift comparison.
#[derive(Clone, Copy, Debug, Default)]
pub struct DriftRow {
    /// Accepted reports so far.
    pub reports: usize,
    /// Sessions that reached that many reports.
    pub sessions: usize,
    /// Median |drift error| of the predictor (ppm).
    pub online_median: f64,
    /// Median |drift error| of the offline lower envelope on the same samples (ppm).
    pub offline_median: f64,
    /// Largest |drift error| of the predictor (ppm).
    pub online_max: f64,
}

/// Drift errors of the predictor and of the offline lower envelope (Moon's LP on every
/// sample the session sent so far) after `checkpoints` accepted reports, over honest
/// sessions.
pub fn drift_errors(runs: &[Run], checkpoints: &[usize]) -> Vec<DriftRow> {
    let mut online = vec![Vec::new(); checkpoints.len()];
    let mut offline = vec![Vec::new(); checkpoints.len()];
    for run in runs.iter().filter(|r| r.trace.attack == Attack::None) {
        let mut env = LowerEnvelope::new(1 << 20);
        let mut origin = None;
        let mut accepted = 0usize;
        for o in &run.outcomes {
            let Ok(a) = &o.advice else { continue };
            let rep = &run.trace.reports[o.index];
            let t0 = *origin.get_or_insert(rep.sample.timestamp);
            env.push(
                (rep.sample.timestamp - t0) as f64,
                (rep.arrival - rep.sample.timestamp) as f64,
            );
            accepted += 1;
            if let Some(k) = checkpoints.iter().position(|&c| c == accepted) {
                let off = env.line().map_or(0.0, |l| l.slope * 1e6);
                online[k].push((a.drift_ppm - run.trace.true_drift_ppm).abs());
                offline[k].push((off - run.trace.true_drift_ppm).abs());
            }
        }
    }
    checkpoints
        .iter()
        .enumerate()
        .map(|(k, &n)| DriftRow {
            reports: n,
            sessions: online[k].len(),
            online_max: online[k].iter().copied().fold(0.0, f64::max),
            online_median: median(&mut online[k]),
            offline_median: median(&mut offline[k]),
        })
        .collect()
}

/// The tables for one population, as markdown.
pub fn tables(pop: &Population, runs: &[Run]) -> String {
    let threshold = pop.config.anomaly_threshold;
    let cad = pop.cadence_ms / 1_000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### cadence {cad} s: {} honest sessions per class, {} per attack, {} s each\n",
        pop.honest_per_class, pop.attacked_per_attack, pop.duration_s
    );
    let _ = writeln!(
        out,
        "| trace, cadence | forecasts | predictor | last value | recent rate (30 s) | mean rate since login | at most the best baseline |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for class in Class::ALL {
        let r = forecast_mae(runs, class, pop.config.horizon_ms);
        let _ = writeln!(
            out,
            "| {}, {cad} s | {} | **{:.2}** | {:.2} | {:.2} | {:.2} | {} |",
            class.name(),
            r.n,
            r.forecast,
            r.last,
            r.recent,
            r.mean,
            if r.forecast <= r.best_baseline() {
                "yes"
            } else {
                "no"
            }
        );
    }
    let _ = writeln!(
        out,
        "\n| each model alone, {cad} s | {} |",
        MODEL_NAMES.join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(MODELS));
    for class in Class::ALL {
        let m = model_mae(runs, class, pop.config.horizon_ms);
        let cells: Vec<String> = m.iter().map(|v| format!("{v:.2}")).collect();
        let _ = writeln!(out, "| {} | {} |", class.name(), cells.join(" | "));
    }
    let _ = writeln!(
        out,
        "\n| honest, {cad} s | sessions | any alarm | alarm in first 30 s | told to refresh | told to refresh with > 2 horizons left | token expired unrefreshed | with a rejected report |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for class in Class::ALL.map(Some).into_iter().chain([None]) {
        let h = honest(runs, class, threshold);
        let pct = |x: usize| 100.0 * x as f64 / h.sessions.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} % | {:.1} % | {:.1} % | {:.1} % | {} | {} |",
            class.map_or("all", Class::name),
            h.sessions,
            pct(h.alarmed),
            pct(h.alarmed_cold),
            pct(h.refreshed),
            pct(h.refreshed_unneeded),
            h.expired_unrefreshed,
            h.rejected
        );
    }
    let _ = writeln!(
        out,
        "\n| attack, {cad} s | sessions | AUC (reports) | AUC (sessions) | detected | held to the end | median delay | p90 delay | flagged before the attack |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for a in Attack::ALL {
        let r = attack(runs, a, threshold);
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.3} | {}/{} | {}/{} | {:.1} s | {:.1} s | {} |",
            a.name(),
            r.sessions,
            r.auc_reports,
            r.auc_sessions,
            r.detected,
            r.sessions,
            r.held,
            r.sessions,
            r.delay_median_s,
            r.delay_p90_s,
            r.early_flags
        );
    }
    let h = honest(runs, None, threshold);
    let _ = writeln!(
        out,
        "\nskew bound: {} of {} honest reports below the true offset − 1 ms (worst by {:.1} ms); median skew − true offset {:.1} ms",
        h.skew_violations, h.skew_checked, h.skew_worst_ms, h.skew_median_excess_ms
    );
    let cps: Vec<usize> = [5usize, 10, 20, 40, 60, 80, 100, 120, 160, 320]
        .into_iter()
        .filter(|&n| (n as f64) * cad < pop.duration_s)
        .collect();
    let _ = writeln!(
        out,
        "\n| reports {cad} s apart | sessions | predictor: median drift error | offline envelope | ratio | predictor: max |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in drift_errors(runs, &cps) {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} ppm | {:.1} ppm | {:.2} | {:.0} ppm |",
            r.reports,
            r.sessions,
            r.online_median,
            r.offline_median,
            r.online_median / r.offline_median.max(1e-9),
            r.online_max
        );
    }
    out
}
