//! Per-session anomaly detection on the forecast innovations.
//!
//! Two detectors look at the standardised Kalman innovation `z` of each report:
//!
//! * [`RobustWindow`] scores `z` against the session's own recent innovations with the median
//!   and the median absolute deviation (scaled by 1.4826 to estimate σ for Gaussian data),
//!   so a session that is naturally bursty is judged against its own burstiness and a few
//!   earlier outliers cannot mask a new one, as they would with a mean and standard deviation.
//! * [`Cusum`] (Page, 1954) accumulates `S = max(0, S + x − k)` over the robust score (or `z`
//!   while the window is short) and alarms when `S > h`. A sudden inflation of the operation
//!   count produces a robust score far above `h` and alarms on the same report; a sustained
//!   moderate inflation accumulates and alarms within a few reports.
//!
//! Only *upward* deviations (more operations than forecast) alarm: a session going idle is not
//! an attack on a counter, and a decreasing counter is rejected before it gets here.

use serde::{Deserialize, Serialize};

/// Reports needed in the window before the robust score is used.
pub const MIN_ROBUST_HISTORY: usize = 8;

/// Smallest robust scale, so that a perfectly regular session does not turn rounding noise
/// into huge scores.
pub const MIN_ROBUST_SCALE: f64 = 0.5;

/// Largest magnitude any score is clipped to.
pub const SCORE_CLIP: f64 = 1e6;

fn clip(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-SCORE_CLIP, SCORE_CLIP)
    }
}

/// A bounded ring of recent standardised innovations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustWindow {
    values: Vec<f64>,
    next: u32,
    capacity: u32,
}

impl RobustWindow {
    /// An empty window holding at most `capacity` values (between 4 and 256).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            values: Vec::new(),
            next: 0,
            capacity: capacity.clamp(4, 256) as u32,
        }
    }

    /// Values held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the window is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Restores invariants after deserialising untrusted state.
    pub fn repair(&mut self, capacity: usize) {
        let capacity = capacity.clamp(4, 256);
        self.capacity = capacity as u32;
        self.values.truncate(capacity);
        for v in &mut self.values {
            *v = clip(*v);
        }
        if self.next as usize >= capacity {
            self.next = 0;
        }
    }

    /// The robust score `(x − median) / max(1.4826·MAD, MIN_ROBUST_SCALE)` of `x` against the
    /// window, or `None` with fewer than [`MIN_ROBUST_HISTORY`] values.
    #[must_use]
    pub fn score(&self, x: f64) -> Option<f64> {
        let n = self.values.len();
        if n < MIN_ROBUST_HISTORY {
            return None;
        }
        let mut buf = [0.0f64; 256];
        let buf = buf.get_mut(..n)?;
        buf.copy_from_slice(&self.values);
        let median = median_in_place(buf);
        for v in buf.iter_mut() {
            *v = (*v - median).abs();
        }
        let mad = median_in_place(buf);
        let scale = (1.482_602_218_505_602 * mad).max(MIN_ROBUST_SCALE);
        Some(clip((clip(x) - median) / scale))
    }

    /// Adds a value, evicting the oldest when full.
    pub fn push(&mut self, x: f64) {
        let x = clip(x);
        let cap = self.capacity as usize;
        if self.values.len() < cap {
            self.values.push(x);
        } else if let Some(slot) = self.values.get_mut(self.next as usize) {
            *slot = x;
        }
        self.next = ((self.next as usize + 1) % cap) as u32;
    }

    /// Approximate heap bytes held.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<f64>()
    }
}

/// Median of a non-empty slice of finite values, reordering it.
fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let mid = n / 2;
    let (lower, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (below + m)
    }
}

/// One-sided (upward) CUSUM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cusum {
    sum: f64,
}

impl Cusum {
    /// Current statistic `S`.
    #[must_use]
    pub fn statistic(&self) -> f64 {
        self.sum
    }

    /// Feeds `x` with allowance `k` and decision limit `h`; returns `true` on alarm and then
    /// restarts from 0. Non-finite input counts as 0.
    pub fn update(&mut self, x: f64, k: f64, h: f64) -> bool {
        let s = self.sum + clip(x) - k;
        self.sum = if s.is_finite() { s.max(0.0) } else { 0.0 };
        if self.sum > h {
            self.sum = 0.0;
            true
        } else {
            false
        }
    }

    /// Restores invariants after deserialising untrusted state.
    pub fn repair(&mut self) {
        if !self.sum.is_finite() || self.sum < 0.0 {
            self.sum = 0.0;
        }
    }
}

/// Maps a ratio `ρ = evidence / alarm level` to a score in `[0, 1)` that equals `threshold`
/// at `ρ = 1`: `1 − (1 − threshold)^ρ`.
#[must_use]
pub fn evidence_score(rho: f64, threshold: f64) -> f64 {
    let rho = if rho.is_finite() { rho.max(0.0) } else { 0.0 };
    let s = 1.0 - (1.0 - threshold).powf(rho);
    if s.is_finite() {
        s.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_score_ignores_past_outliers() {
        let mut w = RobustWindow::new(32);
        for i in 0..32 {
            w.push(if i % 8 == 0 {
                40.0
            } else {
                f64::from(i % 3) - 1.0
            });
        }
        let s = w.score(0.0).unwrap_or(f64::NAN);
        assert!(s.abs() < 1.0, "{s}");
        let s = w.score(20.0).unwrap_or(f64::NAN);
        assert!(s > 10.0, "{s}");
    }

    #[test]
    fn robust_score_needs_history() {
        let mut w = RobustWindow::new(16);
        for _ in 0..MIN_ROBUST_HISTORY - 1 {
            w.push(0.0);
        }
        assert!(w.score(1.0).is_none());
        w.push(f64::NAN);
        assert_eq!(
            w.score(f64::INFINITY),
            Some(clip(SCORE_CLIP / MIN_ROBUST_SCALE))
        );
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn cusum_alarms_on_a_jump_and_on_a_drift() {
        let mut c = Cusum::default();
        assert!(c.update(50.0, 0.5, 8.0));
        assert_eq!(c.statistic(), 0.0);
        let alarms: Vec<bool> = (0..4).map(|_| c.update(3.5, 0.5, 8.0)).collect();
        assert_eq!(alarms, vec![false, false, true, false]);
        assert!(!c.update(f64::NAN, 0.5, 8.0));
    }

    #[test]
    fn evidence_score_hits_threshold_at_one() {
        assert!((evidence_score(1.0, 0.7) - 0.7).abs() < 1e-12);
        assert_eq!(evidence_score(0.0, 0.7), 0.0);
        assert!(evidence_score(100.0, 0.7) <= 1.0);
        assert_eq!(evidence_score(f64::NAN, 0.7), 0.0);
    }
}
