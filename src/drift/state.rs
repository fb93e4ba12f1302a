//! [`SessionDrift`]: what the predictor remembers of one session between its reports, and
//! how state loaded from an untrusted store is brought back within bounds.

use serde::{Deserialize, Serialize};

use super::DriftConfig;
use super::ensemble::Ensemble;
use super::evidence::{ClockEvidence, CountEvidence};
use super::forecast::LocalLinearTrend;
use super::skew::ClockTracker;

/// Round-trip candidates kept per session; `rtt_ms` is their minimum.
const RTT_WINDOW: usize = 8;

/// Prior variance of the rate (ops²/s²) when a session starts.
pub(super) const SLOPE_PRIOR_VARIANCE: f64 = 100.0;

/// Recent round-trip candidates `now − echo_server_timestamp`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct RttWindow {
    pub(super) values: Vec<f64>,
    pub(super) next: u32,
}

impl RttWindow {
    pub(super) fn push(&mut self, v: f64) {
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

    pub(super) fn min(&self) -> Option<f64> {
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
    pub(super) samples: u64,
    pub(super) last_server_ms: i64,
    pub(super) last_count: u64,
    pub(super) clock: ClockTracker,
    pub(super) trend: LocalLinearTrend,
    pub(super) baseline_rate: f64,
    /// Running mean of the squared standardised innovation: how much noisier the session is
    /// than the filter's configured variances (the thresholds scale by it, at least 1).
    #[serde(default)]
    pub(super) noise_scale: f64,
    #[serde(default)]
    pub(super) ensemble: Ensemble,
    #[serde(default)]
    pub(super) count_evidence: CountEvidence,
    #[serde(default)]
    pub(super) clock_evidence: ClockEvidence,
    #[serde(default)]
    pub(super) first_server_ms: i64,
    /// Since when (server ms) the predicted drift has crossed the band on every report.
    #[serde(default)]
    pub(super) crossing_since: Option<i64>,
    pub(super) rtt: RttWindow,
    pub(super) clock_steps: u32,
    pub(super) anomalies: u32,
    /// Set once `repair` has run for a configuration's window: state that never left memory
    /// is not re-checked on every report. Not persisted, so state loaded from a store is.
    #[serde(skip)]
    pub(super) repaired: RepairMark,
}

/// The `skew_window` a state was repaired for (0: not repaired; the window is at least 8).
/// Equal to every other mark: it is bookkeeping, not state, and a state loaded from a store
/// equals the one saved.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RepairMark(pub(super) u16);

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
    pub(crate) fn ensemble(&self) -> &Ensemble {
        &self.ensemble
    }

    /// Runs [`SessionDrift::repair`] once per configuration window: state that never left
    /// memory is not re-checked on every report.
    pub(super) fn repair_once(&mut self, config: &DriftConfig) {
        // The sanitised window is 8..=1024.
        let mark = u16::try_from(config.skew_window).unwrap_or(u16::MAX);
        if self.repaired.0 != mark {
            self.repair(config);
            self.repaired = RepairMark(mark);
        }
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
