//! [`DriftConfig`], its defaults and the ranges [`DriftConfig::sanitized`] clamps it to, and
//! [`AnomalyAction`], what a flagged report asks the caller to do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::forecast::TrendParams;
use super::forest;

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
/// clamped by [`DriftConfig::sanitized`] (which [`DriftPredictor::new`] applies). Unknown
/// keys are refused, so a misspelt setting is an error rather than a silent default.
///
/// Non-exhaustive: start from the default and set the fields you need.
///
/// ```
/// use rolling_session::drift::{AnomalyAction, DriftConfig};
///
/// let mut config = DriftConfig::default();
/// config.anomaly_action = AnomalyAction::RequireRefresh;
/// config.criticality.insert("checkout".to_owned(), 0.5);
/// assert_eq!(config.criticality_factor(Some("checkout")), 0.5);
/// ```
///
/// [`DriftPredictor::new`]: crate::drift::DriftPredictor::new
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
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
    /// [`DriftPredictor::retrain_now`](crate::drift::DriftPredictor::retrain_now) (default 10 000).
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
