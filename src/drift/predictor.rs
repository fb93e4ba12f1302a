//! [`DriftPredictor`]: validates one report and runs it through the steps of the model
//! (`docs/drift.md`), each a method below in the order [`DriftPredictor::ingest`] calls them.

use std::sync::{Mutex, PoisonError};

use super::ensemble::RatePopulation;
use super::evidence::{self, ClockEvidenceSettings, evidence_score};
use super::forecast::LocalLinearTrend;
use super::pool::ForestPool;
use super::skew::{ClockObservation, ClockSettings};
use super::state::SLOPE_PRIOR_VARIANCE;
use super::threshold::{QuantileTable, age_factor, crossing_time, drift_factor};
use super::{
    AnomalyAction, DriftAdvice, DriftConfig, SampleContext, SessionDrift, TelemetryError,
    TelemetrySample, diff_f64,
};

/// An echoed server timestamp may be this far in the future (ms) before it is rejected;
/// server nodes' clocks are never perfectly aligned.
const ECHO_FUTURE_TOLERANCE_MS: i64 = 5_000;

/// Reports in the envelope before the drift estimate widens thresholds.
const MIN_DRIFT_POINTS: usize = 8;

/// How long (ms) the predicted drift must cross its band on every report before it advises a
/// refresh.
const DRIFT_PERSIST_MS: i64 = 30_000;

/// The drift predictor: configuration, precomputed quantiles and the isolation forest shared
/// by all sessions. `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct DriftPredictor {
    config: DriftConfig,
    quantiles: QuantileTable,
    forest: ForestPool,
    /// The population's operation rates: the forecast's prior for young sessions.
    rates: Mutex<RatePopulation>,
}

/// Where one report falls in its session's timeline.
struct Timing {
    /// The session's first accepted report.
    first: bool,
    /// The server clock went back since the previous report.
    server_step: bool,
    /// Server seconds since the previous report (0 for the first or after a server step).
    dt_s: f64,
    /// Server seconds since the session's first report.
    reporting_s: f64,
    /// Accepted reports, this one included.
    samples: u64,
    /// Still in the cold start: no alarm yet.
    cold: bool,
}

/// The Kalman trend's answer to the report.
struct Trend {
    /// The standardised innovation (0 for the first report).
    z: f64,
    /// The filtered rate (operations per second).
    slope: f64,
}

/// The anomaly verdict on one report.
struct Anomaly {
    score: f64,
    action: Option<AnomalyAction>,
}

/// When to refresh, as the advice says it.
struct Refresh {
    now: bool,
    in_ms: u64,
}

fn saturate_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn finite_or(v: f64, default: f64) -> f64 {
    if v.is_finite() { v } else { default }
}

fn feature(v: f64, limit: f64) -> f32 {
    finite_or(v, 0.0).clamp(-limit, limit) as f32
}

/// `a − b` in milliseconds, without overflow.
fn ms_between(a: i64, b: i64) -> i128 {
    i128::from(a) - i128::from(b)
}

impl DriftPredictor {
    /// A predictor with `config` (sanitised) and an untrained forest.
    #[must_use]
    pub fn new(config: DriftConfig) -> Self {
        let config = config.sanitized();
        Self {
            quantiles: QuantileTable::new(config.confidence),
            config,
            forest: ForestPool::default(),
            rates: Mutex::new(RatePopulation::default()),
        }
    }

    /// The effective (sanitised) configuration.
    #[must_use]
    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    /// How many times the forest has been trained.
    #[must_use]
    pub fn forest_generation(&self) -> u64 {
        self.forest.generation()
    }

    /// Bytes held by the shared forest.
    #[must_use]
    pub fn forest_bytes(&self) -> usize {
        self.forest.bytes()
    }

    /// Retrains the forest now from the reservoir (for a background task when
    /// `forest_retrain_every` is 0). Returns whether a forest was trained.
    pub fn retrain_now(&self) -> bool {
        self.forest.retrain_now(&self.config)
    }

    /// Validates one report, updates the session's state and returns the advice. A rejected
    /// report leaves `state` unchanged. `now_ms` is the server's time of arrival.
    ///
    /// # Errors
    ///
    /// [`TelemetryError`] for non-finite numbers, a decreasing counter, timestamps absurdly
    /// far from `now_ms`, and reports closer together than `min_sample_interval_ms`.
    pub fn ingest(
        &self,
        state: &mut SessionDrift,
        sample: &TelemetrySample,
        ctx: SampleContext<'_>,
        now_ms: i64,
    ) -> Result<DriftAdvice, TelemetryError> {
        self.validate(state, sample, now_ms)?;
        state.repair_once(&self.config);
        let timing = Self::timing(state, &self.config, now_ms);
        let obs = self.track_clock(state, sample, now_ms);
        let clock_step = obs.step || timing.server_step;
        let trend = self.update_trend(state, sample, &timing);
        let predicted = self.forecast(state, sample, ctx, trend.slope, now_ms);
        let anomaly = self.judge(state, sample, ctx, &timing, &obs, &trend, now_ms);
        let drift_ppm = finite_or(obs.drift_ppm, 0.0);
        let crossing_ms = self.crossing_ms(state, ctx, &timing, &obs, drift_ppm, trend.slope);
        let rtt_ms = state.rtt.min();
        let grace_window_ms = self.grace_window_ms(rtt_ms);
        let refresh = Self::refresh(
            state,
            ctx,
            crossing_ms,
            grace_window_ms,
            drift_ppm,
            clock_step || anomaly.action == Some(AnomalyAction::RequireRefresh),
            now_ms,
        );
        Self::commit(state, sample, &timing, clock_step, anomaly.action, now_ms);
        Ok(DriftAdvice {
            server_timestamp: now_ms,
            skew_ms: finite_or(obs.skew_ms, 0.0),
            drift_ppm,
            rtt_ms,
            predicted_operation_count: predicted,
            horizon_ms: self.config.horizon_ms,
            anomaly_score: anomaly.score,
            refresh: refresh.now,
            refresh_in_ms: refresh.in_ms,
            grace_window_ms,
            anomaly: anomaly.action,
            clock_step,
        })
    }

    /// Refuses reports that are malformed, implausible or too frequent, before anything in
    /// `state` changes.
    fn validate(
        &self,
        state: &SessionDrift,
        sample: &TelemetrySample,
        now_ms: i64,
    ) -> Result<(), TelemetryError> {
        let cfg = &self.config;
        if !sample.client_entropy.is_finite() {
            return Err(TelemetryError::NonFinite {
                field: "client_entropy",
            });
        }
        let offset = ms_between(now_ms, sample.timestamp);
        if offset.unsigned_abs() > u128::from(cfg.max_clock_offset_ms) {
            return Err(TelemetryError::TimestampOutOfRange {
                offset_ms: saturate_i64(offset),
                limit_ms: cfg.max_clock_offset_ms,
            });
        }
        if let Some(echo) = sample.echo_server_timestamp {
            let age = ms_between(now_ms, echo);
            if age < -i128::from(ECHO_FUTURE_TOLERANCE_MS)
                || age > i128::from(cfg.max_clock_offset_ms)
            {
                return Err(TelemetryError::EchoOutOfRange {
                    age_ms: saturate_i64(age),
                    future_ms: ECHO_FUTURE_TOLERANCE_MS,
                    limit_ms: cfg.max_clock_offset_ms,
                });
            }
        }
        if state.samples > 0 {
            let elapsed = ms_between(now_ms, state.last_server_ms);
            // A server clock that stepped back (elapsed < 0) is not the client's fault: the
            // report is accepted and the step reported.
            if elapsed >= 0 && elapsed < i128::from(cfg.min_sample_interval_ms) {
                return Err(TelemetryError::RateLimited {
                    elapsed_ms: elapsed as u64,
                    min_interval_ms: cfg.min_sample_interval_ms,
                });
            }
            if sample.operation_count < state.last_count {
                return Err(TelemetryError::CounterDecreased {
                    previous: state.last_count,
                    received: sample.operation_count,
                });
            }
        }
        Ok(())
    }

    /// Places the report in the session's timeline; marks the session's start on its first.
    fn timing(state: &mut SessionDrift, cfg: &DriftConfig, now_ms: i64) -> Timing {
        let first = state.samples == 0;
        let elapsed_ms = if first {
            0.0
        } else {
            diff_f64(now_ms, state.last_server_ms)
        };
        if first {
            state.first_server_ms = now_ms;
        }
        let reporting_s = diff_f64(now_ms, state.first_server_ms).max(0.0) / 1_000.0;
        let samples = state.samples.saturating_add(1);
        Timing {
            first,
            server_step: elapsed_ms < 0.0,
            dt_s: elapsed_ms.max(0.0) / 1_000.0,
            reporting_s,
            samples,
            cold: reporting_s * 1_000.0 < cfg.cold_start_ms as f64
                || samples < cfg.cold_start_reports,
        }
    }

    /// Clock skew and drift from the one-way timestamp; a round-trip candidate from the echo.
    fn track_clock(
        &self,
        state: &mut SessionDrift,
        sample: &TelemetrySample,
        now_ms: i64,
    ) -> ClockObservation {
        let cfg = &self.config;
        let settings = ClockSettings {
            window: cfg.skew_window,
            step_threshold_ms: cfg.step_threshold_ms as f64,
            step_confirm: cfg.step_confirm_samples,
        };
        let obs = state.clock.observe(sample.timestamp, now_ms, &settings);
        if let Some(echo) = sample.echo_server_timestamp {
            state.rtt.push(diff_f64(now_ms, echo));
        }
        obs
    }

    /// The Kalman trend of the operation count: its slope drives the predicted drift, its
    /// variance the band. The noise scale follows the squared standardised innovation.
    fn update_trend(
        &self,
        state: &mut SessionDrift,
        sample: &TelemetrySample,
        timing: &Timing,
    ) -> Trend {
        let params = self.config.trend;
        let y = sample.operation_count as f64;
        let fresh = || {
            LocalLinearTrend::new(
                [y, 0.0],
                [
                    [params.observation_variance, 0.0],
                    [0.0, SLOPE_PRIOR_VARIANCE],
                ],
            )
        };
        let z = if timing.first {
            state.trend = fresh();
            0.0
        } else {
            state.trend.predict(timing.dt_s, &params);
            let innovation = state.trend.update(y, &params);
            if !state.trend.is_valid() {
                state.trend = fresh();
            }
            innovation.standardized()
        };
        let slope = finite_or(state.trend.state()[1], 0.0);
        if !timing.first {
            let w = (1.0 / timing.samples as f64).max(0.05);
            state.noise_scale =
                finite_or(state.noise_scale + w * (z * z - state.noise_scale), 1.0).max(1.0);
        }
        Trend { z, slope }
    }

    /// The operation count at the horizon: per-session model choice by recent error at the
    /// horizon, young sessions leaning on the population's rates.
    fn forecast(
        &self,
        state: &mut SessionDrift,
        sample: &TelemetrySample,
        ctx: SampleContext<'_>,
        slope: f64,
        now_ms: i64,
    ) -> u64 {
        let horizon_s = self.config.horizon_ms as f64 / 1_000.0;
        let prior = self
            .rates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .prior();
        let forecast = state.ensemble.observe(
            now_ms,
            sample.operation_count,
            ctx.session_age_ms,
            slope,
            horizon_s,
            prior,
        );
        let y = sample.operation_count as f64;
        (finite_or(y + forecast.rate * horizon_s, y).round() as u64).max(sample.operation_count)
    }

    /// The anomaly score: per-session evidence, and the forest's when enabled. A report not
    /// flagged, of a session never flagged, teaches the population's rates.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        state: &mut SessionDrift,
        sample: &TelemetrySample,
        ctx: SampleContext<'_>,
        timing: &Timing,
        obs: &ClockObservation,
        trend: &Trend,
        now_ms: i64,
    ) -> Anomaly {
        let cfg = &self.config;
        let session_score = self.session_evidence(state, sample, timing, obs, now_ms);
        let forest_score = if cfg.forest_enabled {
            let features = [
                feature(trend.z, 1e6),
                feature(obs.residual_ms, 1e9),
                feature(sample.client_entropy, 1e30),
                feature(timing.dt_s, 1e9),
                feature(ctx.session_age_ms as f64 / 1_000.0, 1e12),
            ];
            self.forest.score_and_record(cfg, features)
        } else {
            None
        };
        let score = finite_or(forest_score.unwrap_or(0.0).max(session_score), 0.0).clamp(0.0, 1.0);
        let action = (score >= cfg.anomaly_threshold).then_some(cfg.anomaly_action);
        // Only sessions never flagged teach the population's rates: an attack must not move
        // the prior of everyone else's young sessions.
        if action.is_none() && state.anomalies == 0 {
            self.rates
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(
                    sample.operation_count as f64,
                    ctx.session_age_ms as f64 / 1_000.0,
                );
        }
        Anomaly { score, action }
    }

    /// Per-session evidence: the count's leaky bucket and the clock anchor, as a score.
    fn session_evidence(
        &self,
        state: &mut SessionDrift,
        sample: &TelemetrySample,
        timing: &Timing,
        obs: &ClockObservation,
        now_ms: i64,
    ) -> f64 {
        let cfg = &self.config;
        let rho_count = if timing.first {
            0.0
        } else {
            let dc = sample.operation_count.saturating_sub(state.last_count) as f64;
            // The count's expected rate takes increments a lag after they happen, so its cold
            // start lasts that lag longer.
            let learning = timing.cold
                || timing.reporting_s < evidence::LEARN_LAG_S + cfg.cold_start_ms as f64 / 1e3;
            let rho = state
                .count_evidence
                .update(timing.reporting_s, timing.dt_s, dc, learning);
            if learning { rho.min(0.99) } else { rho }
        };
        let d = diff_f64(now_ms, sample.timestamp);
        let rho_clock = state.clock_evidence.update(
            timing.reporting_s,
            sample.timestamp,
            d,
            obs,
            &ClockEvidenceSettings {
                threshold_ms: cfg.step_threshold_ms as f64,
            },
        );
        evidence_score(rho_count.max(rho_clock), cfg.anomaly_threshold)
    }

    /// The dynamic threshold and when the predicted drift crosses it (ms from now). Only a
    /// rise above the session's own behaviour counts: a user going idle or leaving needs no
    /// new token. The session's baseline rate then follows the slope.
    fn crossing_ms(
        &self,
        state: &mut SessionDrift,
        ctx: SampleContext<'_>,
        timing: &Timing,
        obs: &ClockObservation,
        drift_ppm: f64,
        slope: f64,
    ) -> Option<f64> {
        let cfg = &self.config;
        let k = self.quantiles.quantile(timing.samples.saturating_sub(2))
            * age_factor(
                ctx.session_age_ms,
                cfg.young_session_factor,
                cfg.young_session_ms,
            )
            * if obs.points >= MIN_DRIFT_POINTS {
                drift_factor(drift_ppm, cfg.drift_reference_ppm, cfg.drift_factor_cap)
            } else {
                1.0
            }
            * cfg.criticality_factor(ctx.operation);
        let deviation = if timing.first {
            0.0
        } else {
            (slope - state.baseline_rate).max(0.0)
        };
        let (c0, c1, c2) = state.trend.variance_polynomial(&cfg.trend);
        let scale = state.noise_scale.max(1.0);
        let crossing_ms =
            crossing_time(deviation, k, (c0 * scale, c1 * scale, c2 * scale)).map(|s| s * 1_000.0);
        if timing.first {
            state.baseline_rate = slope;
        } else {
            let w = (1.0 / timing.samples as f64).max(0.05);
            state.baseline_rate = finite_or(
                state.baseline_rate + w * (slope - state.baseline_rate),
                slope,
            );
        }
        crossing_ms
    }

    /// The grace window from the measured round trip; the largest before any is measured.
    fn grace_window_ms(&self, rtt_ms: Option<f64>) -> u64 {
        let cfg = &self.config;
        rtt_ms.map_or(cfg.grace_max_ms, |rtt| {
            (rtt * cfg.grace_rtt_multiplier).clamp(cfg.grace_min_ms as f64, cfg.grace_max_ms as f64)
                as u64
        })
    }

    /// The decision. Durations are in server time; the client's timer runs at its own rate.
    /// `force` (a clock step, or an anomaly whose action is a refresh) means now.
    fn refresh(
        state: &mut SessionDrift,
        ctx: SampleContext<'_>,
        crossing_ms: Option<f64>,
        grace_window_ms: u64,
        drift_ppm: f64,
        force: bool,
        now_ms: i64,
    ) -> Refresh {
        let expires = ctx.token_expires_in_ms as f64;
        // A crossing counts once it has been predicted on every report for
        // `DRIFT_PERSIST_MS`: a burst's slope fades within seconds, a real change stays.
        let crossing = crossing_ms.filter(|c| *c <= expires);
        let since = if crossing.is_some() {
            *state.crossing_since.get_or_insert(now_ms)
        } else {
            state.crossing_since = None;
            now_ms
        };
        let crossing =
            crossing.filter(|_| ms_between(now_ms, since) >= i128::from(DRIFT_PERSIST_MS));
        let at = crossing.unwrap_or(expires);
        let client_rate = 1.0 + drift_ppm * 1e-6;
        let in_ms = if client_rate > 0.0 {
            finite_or((at - grace_window_ms as f64).max(0.0) / client_rate, 0.0) as u64
        } else {
            0
        };
        if force {
            return Refresh {
                now: true,
                in_ms: 0,
            };
        }
        // `refresh` means "now": the drift crosses the band before the token expires, or the
        // token is within its grace window of expiry.
        Refresh {
            now: crossing.is_some() || in_ms == 0,
            in_ms,
        }
    }

    /// Records the accepted report in the session's counters.
    fn commit(
        state: &mut SessionDrift,
        sample: &TelemetrySample,
        timing: &Timing,
        clock_step: bool,
        anomaly: Option<AnomalyAction>,
        now_ms: i64,
    ) {
        state.samples = timing.samples;
        state.last_server_ms = now_ms;
        state.last_count = sample.operation_count;
        if clock_step {
            state.clock_steps = state.clock_steps.saturating_add(1);
        }
        if anomaly.is_some() {
            state.anomalies = state.anomalies.saturating_add(1);
        }
    }
}
