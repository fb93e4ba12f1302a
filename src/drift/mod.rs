//! The drift predictor: turns periodic client telemetry into refresh and anomaly advice.
//!
//! Each session posts a [`TelemetrySample`] every 5–30 s. [`DriftPredictor::ingest`] validates
//! it, updates the session's [`SessionDrift`] and answers with a [`DriftAdvice`]:
//!
//! | step | module | model |
//! |---|---|---|
//! | clock skew and drift | [`clock`] | lower envelope (Moon et al. 1999) of every report since the last clock step, as an incremental convex hull (Zhang et al. 2002); step detection; `skew_ms` an upper bound |
//! | operation-count forecast | [`ensemble`] | mean rate since login, another model when its own record is significantly better, a regime for "the user left" |
//! | predicted drift | [`forecast`] | Kalman local linear trend with irregular `Δt` |
//! | dynamic threshold | [`threshold`] | forecast variance × noise scale × Student-t / normal quantile × age, drift and criticality factors |
//! | per-session anomalies | [`evidence`] | leaky bucket on the count against the session's own rate and bursts; clock anchor that survives steps; replay check |
//! | cross-session anomalies (opt-in) | [`forest`] | Isolation Forest (Liu et al. 2008), seeded, retrained from a reservoir |
//!
//! [`anomaly`] keeps the earlier innovation scores (median/MAD, CUSUM) as building blocks; the
//! predictor no longer uses them.
//!
//! The model, its limits and measured figures are in `docs/drift.md`.
//!
//! Time is always passed in (`now_ms`, server milliseconds since the epoch) so tests and
//! callers control it; the HTTP layer supplies its clock.
//!
//! # Example
//!
//! ```
//! use rolling_session::drift::{DriftConfig, DriftPredictor, SampleContext, SessionDrift, TelemetrySample};
//!
//! let predictor = DriftPredictor::new(DriftConfig::default());
//! let mut state = SessionDrift::new();
//! let mut now = 1_700_000_000_000_i64;
//! for i in 0..10u64 {
//!     now += 10_000;
//!     let sample = TelemetrySample {
//!         timestamp: now - 250, // the client clock is 250 ms behind, delay included
//!         operation_count: 3 * i,
//!         client_entropy: 0.4,
//!         echo_server_timestamp: None,
//!     };
//!     let ctx = SampleContext { session_age_ms: 10_000 * i, token_expires_in_ms: 300_000, operation: None };
//!     let advice = predictor.ingest(&mut state, &sample, ctx, now).expect("valid telemetry");
//!     assert!((advice.skew_ms - 250.0).abs() < 1e-6);
//!     assert!((0.0..=1.0).contains(&advice.anomaly_score));
//! }
//! // Too soon after the previous report: rate limited (the HTTP layer answers 429).
//! let early = TelemetrySample { timestamp: now, operation_count: 30, client_entropy: 0.4, echo_server_timestamp: None };
//! let ctx = SampleContext { session_age_ms: 100_000, token_expires_in_ms: 300_000, operation: None };
//! let err = predictor.ingest(&mut state, &early, ctx, now + 10).unwrap_err();
//! assert_eq!(err.reason(), "rate_limited");
//! ```
//!
//! # Caveats
//!
//! * One-way timestamps measure offset *plus minimum delay*; see [`clock`].
//! * `rtt_ms` is an upper bound (it includes however long the client held the echoed
//!   timestamp), so the grace window errs on the generous side.
//! * A user who becomes much busier than ever before looks like a second user, and an honest
//!   clock change of more than a second like a jumped clock; the default anomaly action is
//!   therefore [`AnomalyAction::Log`].
//! * The forest (off by default) learns from whatever traffic it sees, attackers included;
//!   its retraining is bounded but not poisoning-proof.

pub mod anomaly;
pub mod clock;
pub mod ensemble;
pub mod evidence;
pub mod forecast;
pub mod forest;
mod report;
pub mod threshold;

pub use report::{MAX_REPORT_BYTES, TelemetryReport};

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use self::anomaly::evidence_score;
use self::clock::{ClockSettings, ClockTracker};
use self::ensemble::{Ensemble, RatePopulation};
use self::evidence::{ClockEvidence, ClockEvidenceSettings, CountEvidence};
use self::forecast::{LocalLinearTrend, TrendParams};
use self::forest::{ForestParams, IsolationForest};
use self::threshold::{QuantileTable, age_factor, crossing_time, drift_factor};

/// Number of features per report fed to the (opt-in) isolation forest: standardised rate innovation,
/// offset residual (ms), client entropy, `Δt` (s) and session age (s).
pub const FEATURES: usize = 5;

/// An echoed server timestamp may be this far in the future (ms) before it is rejected;
/// server nodes' clocks are never perfectly aligned.
pub const ECHO_FUTURE_TOLERANCE_MS: i64 = 5_000;

/// Reports in the envelope before the drift estimate widens thresholds.
pub const MIN_DRIFT_POINTS: usize = 8;

/// Round-trip candidates kept per session; `rtt_ms` is their minimum.
pub const RTT_WINDOW: usize = 8;

/// How long (ms) the predicted drift must cross its band on every report before it advises a
/// refresh.
pub const DRIFT_PERSIST_MS: i64 = 30_000;

/// Prior variance of the rate (ops²/s²) when a session starts.
const SLOPE_PRIOR_VARIANCE: f64 = 100.0;

/// What the caller should do with a session flagged as anomalous.
///
/// Deliberately exhaustive: a caller must handle every action, and a new one should break the
/// build rather than be silently ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyAction {
    /// Record an audit event only.
    #[default]
    Log,
    /// Advise an immediate refresh (the advice says `refresh: true, refresh_in_ms: 0`).
    RequireRefresh,
    /// Revoke the session.
    Revoke,
}

/// Configuration of the drift predictor. Every field has a default; out-of-range values are
/// clamped by [`DriftConfig::sanitized`] (which [`DriftPredictor::new`] applies).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftConfig {
    /// Forecast horizon, clamped to 30 000..=60 000 ms (default 45 000).
    pub horizon_ms: u64,
    /// Minimum time between accepted reports of one session (rate limit, default 2 500 ms).
    pub min_sample_interval_ms: u64,
    /// Largest accepted `|server time − client timestamp|` (default one day).
    pub max_clock_offset_ms: u64,
    /// Reports kept in the skew estimator's window (8..=1024, default 128).
    pub skew_window: usize,
    /// Residual beyond which a report counts towards a clock step (default 1 000 ms).
    pub step_threshold_ms: u64,
    /// Consecutive high reports that confirm a backward client-clock step (default 3).
    pub step_confirm_samples: u32,
    /// Noise variances of the operation-count filter.
    pub trend: TrendParams,
    /// Two-sided confidence of the threshold band (default 0.99).
    pub confidence: f64,
    /// Threshold factor of a brand-new session (default 0.75: tighter).
    pub young_session_factor: f64,
    /// Age at which the session-age factor reaches 1 (default 10 minutes).
    pub young_session_ms: u64,
    /// Drift at which the drift factor reaches 2 (default 100 ppm).
    pub drift_reference_ppm: f64,
    /// Largest drift factor (default 3).
    pub drift_factor_cap: f64,
    /// Factor per operation type: below 1 is tighter (critical), above 1 looser.
    pub criticality: BTreeMap<String, f64>,
    /// Smallest grace window (default 1 000 ms).
    pub grace_min_ms: u64,
    /// Largest grace window, also used before any round trip is measured (default 10 000 ms).
    pub grace_max_ms: u64,
    /// Grace window as a multiple of the measured round trip (default 4).
    pub grace_rtt_multiplier: f64,
    /// Anomaly score at or above which a report is flagged (default 0.7).
    pub anomaly_threshold: f64,
    /// What a flagged report asks the caller to do (default `log`).
    pub anomaly_action: AnomalyAction,
    /// No report alarms before the session has reported for this long (default 30 000 ms)…
    pub cold_start_ms: u64,
    /// …and sent this many reports (default 6).
    pub cold_start_reports: u64,
    /// Whether the cross-session isolation forest is trained and scored (default `false`: on
    /// the evaluation traces it adds no separation the per-session evidence lacks, costs
    /// ~1.4 µs per report and, trained cold, flags honest sessions; see `docs/drift.md`).
    pub forest_enabled: bool,
    /// Unused since the per-session evidence detectors replaced the innovation scores; kept
    /// so existing configuration still builds (8..=256, default 32).
    pub robust_window: usize,
    /// Unused; kept for compatibility (default 6).
    pub robust_z_limit: f64,
    /// Unused; kept for compatibility (default 0.5).
    pub cusum_allowance: f64,
    /// Unused; kept for compatibility (default 8).
    pub cusum_limit: f64,
    /// Trees in the isolation forest (default 100).
    pub forest_trees: usize,
    /// Subsample size ψ (default 256).
    pub forest_subsample: usize,
    /// Recent feature vectors kept for retraining (default 4 096).
    pub forest_reservoir: usize,
    /// Retrain after this many reports across all sessions; 0 retrains only on
    /// [`DriftPredictor::retrain_now`] (default 10 000).
    pub forest_retrain_every: u64,
    /// Feature vectors needed before the first training (default 256).
    pub forest_min_train: usize,
    /// Seed of the forest's RNG.
    pub seed: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            horizon_ms: 45_000,
            min_sample_interval_ms: 2_500,
            max_clock_offset_ms: 86_400_000,
            skew_window: 128,
            step_threshold_ms: 1_000,
            step_confirm_samples: 3,
            trend: TrendParams::default(),
            confidence: 0.99,
            young_session_factor: 0.75,
            young_session_ms: 600_000,
            drift_reference_ppm: 100.0,
            drift_factor_cap: 3.0,
            criticality: BTreeMap::new(),
            grace_min_ms: 1_000,
            grace_max_ms: 10_000,
            grace_rtt_multiplier: 4.0,
            anomaly_threshold: 0.7,
            anomaly_action: AnomalyAction::Log,
            cold_start_ms: 30_000,
            cold_start_reports: 6,
            forest_enabled: false,
            robust_window: 32,
            robust_z_limit: 6.0,
            cusum_allowance: 0.5,
            cusum_limit: 8.0,
            forest_trees: 100,
            forest_subsample: 256,
            forest_reservoir: 4_096,
            forest_retrain_every: 10_000,
            forest_min_train: 256,
            seed: 0x5eed_d41f,
        }
    }
}

fn finite_in(v: f64, lo: f64, hi: f64, default: f64) -> f64 {
    if v.is_finite() {
        v.clamp(lo, hi)
    } else {
        default
    }
}

impl DriftConfig {
    /// A copy with every field brought into its documented range; non-finite numbers take
    /// their defaults.
    #[must_use]
    pub fn sanitized(&self) -> Self {
        let d = Self::default();
        let t = &self.trend;
        let grace_min_ms = self.grace_min_ms.min(3_600_000);
        Self {
            horizon_ms: self.horizon_ms.clamp(30_000, 60_000),
            min_sample_interval_ms: self.min_sample_interval_ms.min(3_600_000),
            max_clock_offset_ms: self.max_clock_offset_ms.clamp(1_000, 365 * 86_400_000),
            skew_window: self.skew_window.clamp(8, 1024),
            step_threshold_ms: self.step_threshold_ms.clamp(1, 86_400_000),
            step_confirm_samples: self.step_confirm_samples.clamp(1, 64),
            trend: TrendParams {
                level_variance: finite_in(t.level_variance, 1e-9, 1e12, d.trend.level_variance),
                slope_variance: finite_in(t.slope_variance, 1e-12, 1e12, d.trend.slope_variance),
                observation_variance: finite_in(
                    t.observation_variance,
                    1e-6,
                    1e12,
                    d.trend.observation_variance,
                ),
            },
            confidence: finite_in(self.confidence, 0.5, 0.999_999, d.confidence),
            young_session_factor: finite_in(self.young_session_factor, 0.05, 1.0, 0.75),
            young_session_ms: self.young_session_ms,
            drift_reference_ppm: finite_in(self.drift_reference_ppm, 1e-3, 1e6, 100.0),
            drift_factor_cap: finite_in(self.drift_factor_cap, 1.0, 100.0, 3.0),
            criticality: self
                .criticality
                .iter()
                .map(|(k, v)| (k.clone(), finite_in(*v, 0.01, 100.0, 1.0)))
                .collect(),
            grace_min_ms,
            grace_max_ms: self.grace_max_ms.clamp(grace_min_ms, 3_600_000),
            grace_rtt_multiplier: finite_in(self.grace_rtt_multiplier, 0.0, 1_000.0, 4.0),
            anomaly_threshold: finite_in(self.anomaly_threshold, 0.01, 0.999, 0.7),
            anomaly_action: self.anomaly_action,
            cold_start_ms: self.cold_start_ms.min(86_400_000),
            cold_start_reports: self.cold_start_reports.min(10_000),
            forest_enabled: self.forest_enabled,
            robust_window: self.robust_window.clamp(8, 256),
            robust_z_limit: finite_in(self.robust_z_limit, 0.1, 1e6, 6.0),
            cusum_allowance: finite_in(self.cusum_allowance, 0.0, 1e6, 0.5),
            cusum_limit: finite_in(self.cusum_limit, 1e-3, 1e6, 8.0),
            forest_trees: self.forest_trees.clamp(1, 1_000),
            forest_subsample: self.forest_subsample.clamp(2, forest::MAX_SUBSAMPLE),
            forest_reservoir: self.forest_reservoir.clamp(2, 1 << 20),
            forest_retrain_every: self.forest_retrain_every,
            forest_min_train: self.forest_min_train.clamp(2, 1 << 20),
            seed: self.seed,
        }
    }

    /// The criticality factor of an operation (1 for none or unknown).
    #[must_use]
    pub fn criticality_factor(&self, operation: Option<&str>) -> f64 {
        operation
            .and_then(|op| self.criticality.get(op))
            .map_or(1.0, |f| finite_in(*f, 0.01, 100.0, 1.0))
    }
}

/// One telemetry report as the client posts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySample {
    /// Client clock at sending, ms since the epoch.
    pub timestamp: i64,
    /// The client's operation count; never decreases within a session.
    pub operation_count: u64,
    /// A client-side randomness measure (not personal data); any finite number.
    pub client_entropy: f64,
    /// The `server_timestamp` of the last response the client received, for round trips.
    #[serde(default)]
    pub echo_server_timestamp: Option<i64>,
}

/// What the caller knows about the session and request that the telemetry does not carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleContext<'a> {
    /// Time since the session was created.
    pub session_age_ms: u64,
    /// Time until the current token expires naturally.
    pub token_expires_in_ms: u64,
    /// The operation type, looked up in [`DriftConfig::criticality`].
    pub operation: Option<&'a str>,
}

/// The predictor's answer to one report. The serialised form is the telemetry response; the
/// `#[serde(skip)]` fields are for the caller.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftAdvice {
    /// Server time of the report (ms since the epoch).
    pub server_timestamp: i64,
    /// Server clock minus client clock plus the minimum one-way delay (ms).
    pub skew_ms: f64,
    /// Rate of the server clock relative to the client's (ppm; positive: server faster).
    pub drift_ppm: f64,
    /// Upper bound on the round trip, from echoed timestamps; `None` before any echo.
    pub rtt_ms: Option<f64>,
    /// Forecast operation count at the horizon.
    pub predicted_operation_count: u64,
    /// The forecast horizon.
    pub horizon_ms: u64,
    /// 0..1; at or above the configured threshold the report is flagged.
    pub anomaly_score: f64,
    /// Refresh before the token's natural expiry.
    pub refresh: bool,
    /// When to refresh, in client milliseconds from receipt of this advice.
    pub refresh_in_ms: u64,
    /// Grace window `T` for the rolling tokens, sized from the round trip.
    #[serde(skip)]
    pub grace_window_ms: u64,
    /// The configured action when the report is flagged as anomalous.
    #[serde(skip)]
    pub anomaly: Option<AnomalyAction>,
    /// A clock step (client or server) was detected; the skew estimate restarted.
    #[serde(skip)]
    pub clock_step: bool,
}

/// Why a report was rejected. The HTTP layer maps [`TelemetryError::RateLimited`] to 429 and
/// the others to 400, with [`TelemetryError::reason`] as the machine-readable reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A number is NaN or infinite.
    #[error("`{field}` is not a finite number")]
    NonFinite {
        /// The offending field.
        field: &'static str,
    },
    /// `operation_count` went down.
    #[error("operation_count decreased from {previous} to {received}")]
    CounterDecreased {
        /// The last accepted count.
        previous: u64,
        /// The count received.
        received: u64,
    },
    /// `timestamp` is absurdly far from server time.
    #[error("timestamp is {offset_ms} ms from server time; at most {limit_ms} ms is accepted")]
    TimestampOutOfRange {
        /// Server time minus client timestamp (saturated).
        offset_ms: i64,
        /// The configured limit.
        limit_ms: u64,
    },
    /// `echo_server_timestamp` is in the future or absurdly old.
    #[error(
        "echo_server_timestamp is {age_ms} ms old; it must be between -{future_ms} and {limit_ms} ms"
    )]
    EchoOutOfRange {
        /// Server time minus the echoed timestamp (saturated).
        age_ms: i64,
        /// Tolerated future skew between server nodes.
        future_ms: i64,
        /// The configured limit.
        limit_ms: u64,
    },
    /// Reports arrive faster than the configured minimum interval.
    #[error(
        "report came {elapsed_ms} ms after the previous one; the minimum is {min_interval_ms} ms"
    )]
    RateLimited {
        /// Time since the previous accepted report.
        elapsed_ms: u64,
        /// The configured minimum interval.
        min_interval_ms: u64,
    },
    /// The body could not be decoded (wrong types, missing fields); built by the HTTP layer
    /// from its decoder's error.
    #[error("malformed telemetry: {0}")]
    Malformed(String),
}

impl TelemetryError {
    /// The snake_case reason for the JSON error body.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NonFinite { .. } => "non_finite",
            Self::CounterDecreased { .. } => "counter_decreased",
            Self::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Self::EchoOutOfRange { .. } => "echo_out_of_range",
            Self::RateLimited { .. } => "rate_limited",
            Self::Malformed(_) => "malformed_telemetry",
        }
    }

    /// Milliseconds until a report would be accepted, for `Retry-After`.
    #[must_use]
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                elapsed_ms,
                min_interval_ms,
            } => Some(min_interval_ms.saturating_sub(*elapsed_ms)),
            _ => None,
        }
    }

    /// Whether this is the rate limit (HTTP 429) rather than bad input (HTTP 400).
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::RateLimited { .. })
    }
}

/// Recent round-trip candidates `now − echo_server_timestamp`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct RttWindow {
    values: Vec<f64>,
    next: u32,
}

impl RttWindow {
    fn push(&mut self, v: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        if self.values.len() < RTT_WINDOW {
            self.values.push(v);
        } else if let Some(slot) = self.values.get_mut(self.next as usize) {
            *slot = v;
        }
        self.next = ((self.next as usize + 1) % RTT_WINDOW) as u32;
    }

    fn min(&self) -> Option<f64> {
        self.values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .min_by(f64::total_cmp)
    }

    fn repair(&mut self) {
        self.values.truncate(RTT_WINDOW);
        self.values.retain(|v| v.is_finite() && *v >= 0.0);
        if self.next as usize >= RTT_WINDOW {
            self.next = 0;
        }
    }
}

/// Per-session predictor state: a few kilobytes, serialisable so a store can persist it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionDrift {
    samples: u64,
    last_server_ms: i64,
    last_count: u64,
    clock: ClockTracker,
    trend: LocalLinearTrend,
    baseline_rate: f64,
    /// Running mean of the squared standardised innovation: how much noisier the session is
    /// than the filter's configured variances (the thresholds scale by it, at least 1).
    #[serde(default)]
    noise_scale: f64,
    #[serde(default)]
    ensemble: Ensemble,
    #[serde(default)]
    count_evidence: CountEvidence,
    #[serde(default)]
    clock_evidence: ClockEvidence,
    #[serde(default)]
    first_server_ms: i64,
    /// Since when (server ms) the predicted drift has crossed the band on every report.
    #[serde(default)]
    crossing_since: Option<i64>,
    rtt: RttWindow,
    clock_steps: u32,
    anomalies: u32,
    /// Set once `repair` has run for a configuration's window: state that never left memory
    /// is not re-checked on every report. Not persisted, so state loaded from a store is.
    #[serde(skip)]
    repaired: RepairMark,
}

/// The `skew_window` a state was repaired for (0: not repaired; the window is at least 8).
/// Equal to every other mark: it is bookkeeping, not state, and a state loaded from a store
/// equals the one saved.
#[derive(Clone, Copy, Debug, Default)]
struct RepairMark(u16);

impl PartialEq for RepairMark {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Default for SessionDrift {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionDrift {
    /// State of a session that has not reported yet.
    #[must_use]
    pub fn new() -> Self {
        let d = DriftConfig::default();
        Self {
            samples: 0,
            last_server_ms: 0,
            last_count: 0,
            clock: ClockTracker::new(d.skew_window),
            trend: LocalLinearTrend::new([0.0, 0.0], [[1.0, 0.0], [0.0, SLOPE_PRIOR_VARIANCE]]),
            baseline_rate: 0.0,
            noise_scale: 1.0,
            ensemble: Ensemble::default(),
            count_evidence: CountEvidence::default(),
            clock_evidence: ClockEvidence::default(),
            first_server_ms: 0,
            crossing_since: None,
            rtt: RttWindow::default(),
            clock_steps: 0,
            anomalies: 0,
            repaired: RepairMark::default(),
        }
    }

    /// Accepted reports.
    #[must_use]
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Clock steps detected so far.
    #[must_use]
    pub fn clock_steps(&self) -> u32 {
        self.clock_steps
    }

    /// Reports flagged as anomalous so far.
    #[must_use]
    pub fn anomalies(&self) -> u32 {
        self.anomalies
    }

    /// The filtered `[operation count, rate per second]`.
    #[must_use]
    pub fn trend_state(&self) -> [f64; 2] {
        self.trend.state()
    }

    /// The clock tracker (for inspection).
    #[must_use]
    pub fn clock(&self) -> &ClockTracker {
        &self.clock
    }

    /// Memory held by this state: the struct plus its heap allocations.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.clock.heap_bytes()
            + self.ensemble.heap_bytes()
            + self.rtt.values.capacity() * std::mem::size_of::<f64>()
    }

    /// The forecast ensemble (for inspection).
    #[must_use]
    pub fn ensemble(&self) -> &Ensemble {
        &self.ensemble
    }

    /// The operation-count evidence (for inspection).
    #[must_use]
    pub fn count_evidence(&self) -> &CountEvidence {
        &self.count_evidence
    }

    /// Brings state loaded from an untrusted store back within the configuration's bounds.
    pub fn repair(&mut self, config: &DriftConfig) {
        self.clock.repair(config.skew_window);
        self.ensemble.repair();
        self.count_evidence.repair();
        self.clock_evidence.repair();
        self.rtt.repair();
        if !self.noise_scale.is_finite() || self.noise_scale < 1.0 {
            self.noise_scale = 1.0;
        }
        if !self.trend.is_valid() {
            self.trend = LocalLinearTrend::new(
                [self.last_count as f64, 0.0],
                [
                    [config.trend.observation_variance, 0.0],
                    [0.0, SLOPE_PRIOR_VARIANCE],
                ],
            );
        }
        if !self.baseline_rate.is_finite() {
            self.baseline_rate = 0.0;
        }
    }
}

#[derive(Debug, Default)]
struct Reservoir {
    rows: Vec<[f32; FEATURES]>,
    next: usize,
    since_retrain: u64,
    generation: u64,
}

#[derive(Debug)]
struct TrainedForest {
    generation: u64,
    forest: IsolationForest,
}

/// The drift predictor: configuration, precomputed quantiles and the isolation forest shared
/// by all sessions. `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct DriftPredictor {
    config: DriftConfig,
    quantiles: QuantileTable,
    forest: RwLock<Option<TrainedForest>>,
    reservoir: Mutex<Reservoir>,
    /// The population's operation rates: the forecast's prior for young sessions.
    rates: Mutex<RatePopulation>,
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

impl DriftPredictor {
    /// A predictor with `config` (sanitised) and an untrained forest.
    #[must_use]
    pub fn new(config: DriftConfig) -> Self {
        let config = config.sanitized();
        Self {
            quantiles: QuantileTable::new(config.confidence),
            config,
            forest: RwLock::new(None),
            reservoir: Mutex::new(Reservoir::default()),
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
        self.forest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |f| f.generation)
    }

    /// Bytes held by the shared forest.
    #[must_use]
    pub fn forest_bytes(&self) -> usize {
        self.forest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |f| f.forest.heap_bytes())
    }

    /// Retrains the forest now from the reservoir (for a background task when
    /// `forest_retrain_every` is 0). Returns whether a forest was trained.
    pub fn retrain_now(&self) -> bool {
        let snapshot = {
            let mut r = self
                .reservoir
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if r.rows.len() < 2 {
                return false;
            }
            r.since_retrain = 0;
            r.generation += 1;
            (r.rows.clone(), r.generation)
        };
        self.train(snapshot.0, snapshot.1)
    }

    fn train(&self, rows: Vec<[f32; FEATURES]>, generation: u64) -> bool {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let params = ForestParams {
            trees: self.config.forest_trees,
            subsample: self.config.forest_subsample,
            seed: self
                .config
                .seed
                .wrapping_add(generation.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        };
        let Some(forest) = IsolationForest::fit(&flat, FEATURES, &params) else {
            return false;
        };
        let mut slot = self.forest.write().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|f| f.generation < generation) {
            *slot = Some(TrainedForest { generation, forest });
        }
        true
    }

    fn score_and_record(&self, features: [f32; FEATURES]) -> Option<f64> {
        let score = self
            .forest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|f| f.forest.score(&features));
        let snapshot = {
            let mut r = self
                .reservoir
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let cap = self.config.forest_reservoir;
            if r.rows.len() < cap {
                r.rows.push(features);
            } else {
                let at = r.next % cap;
                if let Some(slot) = r.rows.get_mut(at) {
                    *slot = features;
                }
            }
            r.next = (r.next + 1) % cap;
            r.since_retrain = r.since_retrain.saturating_add(1);
            let first = r.generation == 0 && r.rows.len() >= self.config.forest_min_train;
            let due = self.config.forest_retrain_every > 0
                && r.since_retrain >= self.config.forest_retrain_every
                && r.rows.len() >= self.config.forest_min_train;
            if (first && self.config.forest_retrain_every > 0) || due {
                r.since_retrain = 0;
                r.generation += 1;
                Some((r.rows.clone(), r.generation))
            } else {
                None
            }
        };
        if let Some((rows, generation)) = snapshot {
            self.train(rows, generation);
        }
        score
    }

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
        let offset = i128::from(now_ms) - i128::from(sample.timestamp);
        if offset.unsigned_abs() > u128::from(cfg.max_clock_offset_ms) {
            return Err(TelemetryError::TimestampOutOfRange {
                offset_ms: saturate_i64(offset),
                limit_ms: cfg.max_clock_offset_ms,
            });
        }
        if let Some(echo) = sample.echo_server_timestamp {
            let age = i128::from(now_ms) - i128::from(echo);
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
            let elapsed = i128::from(now_ms) - i128::from(state.last_server_ms);
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
        let cfg = &self.config;
        // The sanitised window is 8..=1024.
        let mark = u16::try_from(cfg.skew_window).unwrap_or(u16::MAX);
        if state.repaired.0 != mark {
            state.repair(cfg);
            state.repaired = RepairMark(mark);
        }
        let first = state.samples == 0;
        let elapsed_ms = if first {
            0.0
        } else {
            (i128::from(now_ms) - i128::from(state.last_server_ms)) as f64
        };
        let server_step = elapsed_ms < 0.0;
        let dt_s = elapsed_ms.max(0.0) / 1_000.0;
        if first {
            state.first_server_ms = now_ms;
        }
        let reporting_s =
            (i128::from(now_ms) - i128::from(state.first_server_ms)).max(0) as f64 / 1_000.0;
        let samples = state.samples.saturating_add(1);
        let cold =
            reporting_s * 1_000.0 < cfg.cold_start_ms as f64 || samples < cfg.cold_start_reports;

        // Clock skew and drift.
        let clock_settings = ClockSettings {
            window: cfg.skew_window,
            step_threshold_ms: cfg.step_threshold_ms as f64,
            step_confirm: cfg.step_confirm_samples,
        };
        let obs = state
            .clock
            .observe(sample.timestamp, now_ms, &clock_settings);
        let clock_step = obs.step || server_step;
        if let Some(echo) = sample.echo_server_timestamp {
            state
                .rtt
                .push((i128::from(now_ms) - i128::from(echo)) as f64);
        }

        // The Kalman trend: its slope drives the predicted drift, its variance the band.
        let params = cfg.trend;
        let y = sample.operation_count as f64;
        let z = if first {
            state.trend = LocalLinearTrend::new(
                [y, 0.0],
                [
                    [params.observation_variance, 0.0],
                    [0.0, SLOPE_PRIOR_VARIANCE],
                ],
            );
            0.0
        } else {
            state.trend.predict(dt_s, &params);
            let innovation = state.trend.update(y, &params);
            if !state.trend.is_valid() {
                state.trend = LocalLinearTrend::new(
                    [y, 0.0],
                    [
                        [params.observation_variance, 0.0],
                        [0.0, SLOPE_PRIOR_VARIANCE],
                    ],
                );
            }
            innovation.standardized()
        };
        let slope = finite_or(state.trend.state()[1], 0.0);
        if !first {
            let w = (1.0 / samples as f64).max(0.05);
            state.noise_scale =
                finite_or(state.noise_scale + w * (z * z - state.noise_scale), 1.0).max(1.0);
        }

        // The forecast: per-session model choice by recent error at the horizon.
        let horizon_s = cfg.horizon_ms as f64 / 1_000.0;
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
        let predicted = (finite_or(y + forecast.rate * horizon_s, y).round() as u64)
            .max(sample.operation_count);

        // Per-session evidence: the count's leaky bucket and the clock anchor.
        let rho_count = if first {
            0.0
        } else {
            let dc = sample.operation_count.saturating_sub(state.last_count) as f64;
            // The count's expected rate takes increments a lag after they happen, so its cold
            // start lasts that lag longer.
            let learning =
                cold || reporting_s < evidence::LEARN_LAG_S + cfg.cold_start_ms as f64 / 1e3;
            let rho = state.count_evidence.update(reporting_s, dt_s, dc, learning);
            if learning { rho.min(0.99) } else { rho }
        };
        let d = (i128::from(now_ms) - i128::from(sample.timestamp)) as f64;
        let rho_clock = state.clock_evidence.update(
            reporting_s,
            sample.timestamp,
            d,
            &obs,
            &ClockEvidenceSettings {
                threshold_ms: cfg.step_threshold_ms as f64,
            },
        );
        let session_score = evidence_score(rho_count.max(rho_clock), cfg.anomaly_threshold);

        // Cross-session anomalies (opt-in).
        let forest_score = if cfg.forest_enabled {
            let features = [
                feature(z, 1e6),
                feature(obs.residual_ms, 1e9),
                feature(sample.client_entropy, 1e30),
                feature(dt_s, 1e9),
                feature(ctx.session_age_ms as f64 / 1_000.0, 1e12),
            ];
            self.score_and_record(features)
        } else {
            None
        };
        let anomaly_score =
            finite_or(forest_score.unwrap_or(0.0).max(session_score), 0.0).clamp(0.0, 1.0);
        let anomaly = (anomaly_score >= cfg.anomaly_threshold).then_some(cfg.anomaly_action);
        // Only sessions never flagged teach the population's rates: an attack must not move
        // the prior of everyone else's young sessions.
        if anomaly.is_none() && state.anomalies == 0 {
            self.rates
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(y, ctx.session_age_ms as f64 / 1_000.0);
        }

        // Dynamic threshold and the predicted crossing. Only a rise above the session's own
        // behaviour counts: a user going idle or leaving needs no new token.
        let drift_ppm = finite_or(obs.drift_ppm, 0.0);
        let k = self.quantiles.quantile(samples.saturating_sub(2))
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
        let deviation = if first {
            0.0
        } else {
            (slope - state.baseline_rate).max(0.0)
        };
        let (c0, c1, c2) = state.trend.variance_polynomial(&params);
        let scale = state.noise_scale.max(1.0);
        let crossing_ms =
            crossing_time(deviation, k, (c0 * scale, c1 * scale, c2 * scale)).map(|s| s * 1_000.0);
        if first {
            state.baseline_rate = slope;
        } else {
            let w = (1.0 / samples as f64).max(0.05);
            state.baseline_rate = finite_or(
                state.baseline_rate + w * (slope - state.baseline_rate),
                slope,
            );
        }

        // Grace window from the round trip.
        let rtt_ms = state.rtt.min();
        let grace_window_ms = rtt_ms.map_or(cfg.grace_max_ms, |rtt| {
            (rtt * cfg.grace_rtt_multiplier).clamp(cfg.grace_min_ms as f64, cfg.grace_max_ms as f64)
                as u64
        });

        // Decision. Durations are in server time; the client's timer runs at its own rate.
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
        let crossing = crossing
            .filter(|_| i128::from(now_ms) - i128::from(since) >= i128::from(DRIFT_PERSIST_MS));
        let at = crossing.unwrap_or(expires);
        let client_rate = 1.0 + drift_ppm * 1e-6;
        let mut refresh_in_ms = if client_rate > 0.0 {
            finite_or((at - grace_window_ms as f64).max(0.0) / client_rate, 0.0) as u64
        } else {
            0
        };
        // `refresh` means "now": the drift crosses the band before the token expires, or the
        // token is within its grace window of expiry.
        let mut refresh = crossing.is_some() || refresh_in_ms == 0;
        if clock_step || anomaly == Some(AnomalyAction::RequireRefresh) {
            refresh = true;
            refresh_in_ms = 0;
        }

        // Commit.
        state.samples = samples;
        state.last_server_ms = now_ms;
        state.last_count = sample.operation_count;
        if clock_step {
            state.clock_steps = state.clock_steps.saturating_add(1);
        }
        if anomaly.is_some() {
            state.anomalies = state.anomalies.saturating_add(1);
        }
        Ok(DriftAdvice {
            server_timestamp: now_ms,
            skew_ms: finite_or(obs.skew_ms, 0.0),
            drift_ppm,
            rtt_ms,
            predicted_operation_count: predicted,
            horizon_ms: cfg.horizon_ms,
            anomaly_score,
            refresh,
            refresh_in_ms,
            grace_window_ms,
            anomaly,
            clock_step,
        })
    }
}

#[cfg(test)]
mod tests;
