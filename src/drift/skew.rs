//! Client/server clock skew and drift from one-way timestamps.
//!
//! Each telemetry report carries the client's send time `t` (client clock) and is stamped by the
//! server on arrival with `r` (server clock). The observed one-way difference
//! `d = r - t = offset(t) + delay` mixes the clock offset with the network delay, and delay is
//! one-sided noise: it is never negative and occasionally very large. Modelling the offset as a
//! line `offset(t) = β + α·t`, every report satisfies `d_i ≥ α·t_i + β`.
//!
//! Moon, Skelly & Towsley (1999) pick the line that lies under every point and is as close to
//! them as possible — the linear programme
//!
//! ```text
//! minimise   Σ (d_i − α·t_i − β)    subject to   α·t_i + β ≤ d_i  for all i
//! ```
//!
//! which is the same as maximising `α·t̄ + β`. Zhang, Liu & Xia (2002) observe that the optimum
//! is the edge of the *lower convex hull* of the points `(t_i, d_i)` that spans the mean time
//! `t̄`. [`LowerEnvelope`] keeps that hull incrementally over a bounded window of the most recent
//! points (Andrew's monotone chain: amortised O(1) per append; evicting the oldest point only
//! re-scans the points hidden under the first hull edge), so the estimate costs a binary search.
//! Least squares, by contrast, is biased by every delay spike.
//!
//! # What one-way data can and cannot tell
//!
//! The intercept `β` is *offset plus minimum one-way delay*: no amount of one-way data separates
//! the two, so [`ClockTracker`] reports `skew_ms = α·t + β` as an upper bound on the true
//! offset (server minus client). The slope `α` (the drift) is identifiable, because the minimum
//! delay is constant. When the client echoes the last `server_timestamp` it received
//! (`echo_server_timestamp = s`, sent at client time `t`), the reverse path gives
//! `t ≥ s − offset`, i.e. `offset ≥ s − t`: the true offset lies in `[max(s − t), min(r − t)]`,
//! an interval whose width is the round trip plus however long the client held the echo before
//! sending. `now − s` is therefore an upper bound on the round-trip time, tight only when the
//! client reports soon after receiving a server timestamp (see `RttWindow` in the parent module).
//!
//! # Clock steps
//!
//! A client clock that is reset (NTP step, user change, suspend) breaks the line. A report whose
//! `d` falls below the envelope by more than the step threshold (impossible under the model, as
//! delay cannot be negative), a client timestamp that does not advance, or several consecutive
//! reports far above the envelope are treated as a step: the window restarts and the step is
//! reported.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Cross product of `(a − o) × (b − o)`; positive when `o → a → b` turns counter-clockwise.
fn cross(o: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// A line `d = slope·t + intercept` fitted under a set of points.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeLine {
    /// Slope `α` (dimensionless when `t` and `d` share a unit).
    pub slope: f64,
    /// Intercept `β` at `t = 0`.
    pub intercept: f64,
}

impl EnvelopeLine {
    /// The line's value at `t`.
    #[must_use]
    pub fn at(&self, t: f64) -> f64 {
        self.slope * t + self.intercept
    }
}

/// Incremental lower convex hull over a bounded window of `(t, d)` points with strictly
/// increasing `t`; [`LowerEnvelope::line`] solves Moon's linear programme over the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LowerEnvelope {
    capacity: u32,
    points: VecDeque<[f64; 2]>,
    hull: Vec<[f64; 2]>,
    sum_t: f64,
    /// Cumulative mode ([`LowerEnvelope::cumulative`]): no raw points are kept, `count`
    /// counts them.
    #[serde(default)]
    cumulative: bool,
    #[serde(default)]
    count: u64,
}

impl LowerEnvelope {
    /// An empty envelope keeping at most `capacity` points (at least 2).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(2, u32::MAX as usize);
        Self {
            capacity: capacity as u32,
            points: VecDeque::new(),
            hull: Vec::new(),
            sum_t: 0.0,
            cumulative: false,
            count: 0,
        }
    }

    /// An envelope over *every* point pushed since the last [`clear`](Self::clear), keeping
    /// only the lower hull (at most `max_hull` vertices, at least 2) and the count and sum of
    /// the times. Without eviction a point under the hull can never reach it again, so this
    /// solves Moon's linear programme over all the points in O(hull) memory — typically a
    /// dozen vertices. If the hull ever outgrows `max_hull`, its oldest vertex is dropped
    /// (the programme then loses that constraint).
    #[must_use]
    pub fn cumulative(max_hull: usize) -> Self {
        Self {
            cumulative: true,
            ..Self::new(max_hull)
        }
    }

    /// Whether this is a [`cumulative`](Self::cumulative) envelope.
    #[must_use]
    pub fn is_cumulative(&self) -> bool {
        self.cumulative
    }

    /// Number of points in the window (all points since the last clear when cumulative).
    #[must_use]
    pub fn len(&self) -> usize {
        if self.cumulative {
            usize::try_from(self.count).unwrap_or(usize::MAX)
        } else {
            self.points.len()
        }
    }

    /// Whether the window is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The vertices of the lower hull, oldest first.
    #[must_use]
    pub fn hull(&self) -> &[[f64; 2]] {
        &self.hull
    }

    /// Time of the oldest point still represented (the first hull vertex when cumulative).
    #[must_use]
    pub fn first_t(&self) -> Option<f64> {
        if self.cumulative {
            self.hull.first().map(|p| p[0])
        } else {
            self.points.front().map(|p| p[0])
        }
    }

    /// Maximum number of points kept.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Number of vertices on the lower hull.
    #[must_use]
    pub fn hull_len(&self) -> usize {
        self.hull.len()
    }

    /// The most recent point, if any.
    #[must_use]
    pub fn last(&self) -> Option<[f64; 2]> {
        if self.cumulative {
            // The newest point is always the last vertex of the lower hull.
            self.hull.last().copied()
        } else {
            self.points.back().copied()
        }
    }

    /// Removes every point.
    pub fn clear(&mut self) {
        self.points.clear();
        self.hull.clear();
        self.sum_t = 0.0;
        self.count = 0;
    }

    /// Appends a point. Returns `false` (and changes nothing) when a coordinate is not finite or
    /// `t` does not exceed the previous point's `t`.
    pub fn push(&mut self, t: f64, d: f64) -> bool {
        if !t.is_finite() || !d.is_finite() {
            return false;
        }
        if self.last().is_some_and(|last| t <= last[0]) {
            return false;
        }
        if self.cumulative {
            self.count = self.count.saturating_add(1);
            self.sum_t += t;
            Self::chain_push(&mut self.hull, [t, d]);
            if self.hull.len() > self.capacity as usize {
                self.hull.remove(0);
            }
            return true;
        }
        if self.points.len() >= self.capacity as usize {
            self.evict_front();
        }
        self.points.push_back([t, d]);
        self.sum_t += t;
        Self::chain_push(&mut self.hull, [t, d]);
        true
    }

    /// Keeps only the newest `keep` points (a cumulative envelope keeps no raw points: it is
    /// cleared unless `keep` covers all of them).
    pub fn retain_last(&mut self, keep: usize) {
        if self.cumulative {
            if keep < self.len() {
                self.clear();
            }
            return;
        }
        while self.points.len() > keep {
            self.points.pop_front();
        }
        self.rebuild();
    }

    /// Restores the invariants after deserialising untrusted state: shrinks to `capacity`,
    /// drops points that are not finite or not increasing, and rebuilds the hull if needed.
    pub fn repair(&mut self, capacity: usize) {
        let capacity = capacity.clamp(2, u32::MAX as usize);
        if self.cumulative {
            self.capacity = capacity as u32;
            self.points.clear();
            let mut prev = f64::NEG_INFINITY;
            let vertices: Vec<[f64; 2]> = std::mem::take(&mut self.hull)
                .into_iter()
                .filter(|p| {
                    let ok = p[0].is_finite() && p[1].is_finite() && p[0] > prev;
                    if ok {
                        prev = p[0];
                    }
                    ok
                })
                .collect();
            for p in vertices {
                Self::chain_push(&mut self.hull, p);
            }
            if self.hull.len() > capacity {
                self.hull.drain(..self.hull.len() - capacity);
            }
            let n = self.hull.len() as u64;
            let (lo, hi) = match (self.hull.first(), self.hull.last()) {
                (Some(a), Some(b)) => (a[0], b[0]),
                _ => (0.0, 0.0),
            };
            let mean = if self.count > 0 {
                self.sum_t / self.count as f64
            } else {
                f64::NAN
            };
            if self.count < n || !(lo..=hi).contains(&mean) {
                // Not a state this code writes: fall back to the vertices alone.
                self.count = n;
                self.sum_t = self.hull.iter().map(|p| p[0]).sum();
            }
            return;
        }
        let mut dirty = self.capacity as usize != capacity || self.hull.len() > self.points.len();
        self.capacity = capacity as u32;
        while self.points.len() > capacity {
            self.points.pop_front();
            dirty = true;
        }
        if dirty {
            let mut prev = f64::NEG_INFINITY;
            self.points.retain(|p| {
                let ok = p[0].is_finite() && p[1].is_finite() && p[0] > prev;
                if ok {
                    prev = p[0];
                }
                ok
            });
            self.rebuild();
        }
    }

    fn chain_push(hull: &mut Vec<[f64; 2]>, p: [f64; 2]) {
        while hull.len() >= 2 {
            let n = hull.len();
            if cross(hull[n - 2], hull[n - 1], p) <= 0.0 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }

    fn rebuild(&mut self) {
        self.hull.clear();
        self.sum_t = 0.0;
        for &p in &self.points {
            self.sum_t += p[0];
            Self::chain_push(&mut self.hull, p);
        }
    }

    /// Drops the oldest point. The leftmost point is always the first hull vertex; vertices
    /// from the second on stay on the hull of any subset, so only the points hidden under the
    /// first hull edge are re-scanned.
    fn evict_front(&mut self) {
        let Some(old) = self.points.pop_front() else {
            return;
        };
        self.sum_t -= old[0];
        if self.hull.len() < 3 || self.hull.first() != Some(&old) {
            self.rebuild();
            return;
        }
        let t1 = self.hull[1][0];
        let tail: Vec<[f64; 2]> = self.hull.drain(1..).collect();
        self.hull.clear();
        for &p in self.points.iter().take_while(|p| p[0] < t1) {
            Self::chain_push(&mut self.hull, p);
        }
        for p in tail {
            Self::chain_push(&mut self.hull, p);
        }
    }

    /// Mean `t` of the window.
    #[must_use]
    pub fn mean_t(&self) -> Option<f64> {
        if self.is_empty() {
            None
        } else {
            Some(self.sum_t / self.len() as f64)
        }
    }

    /// The solution of Moon's linear programme over the window: the hull edge spanning the
    /// mean time. `None` with fewer than two points.
    #[must_use]
    pub fn line(&self) -> Option<EnvelopeLine> {
        if self.hull.len() < 2 {
            return None;
        }
        let mean = self.mean_t()?;
        let k = self
            .hull
            .partition_point(|p| p[0] <= mean)
            .clamp(1, self.hull.len() - 1);
        let a = self.hull[k - 1];
        let b = self.hull[k];
        let dt = b[0] - a[0];
        if dt <= 0.0 || !dt.is_finite() {
            return None;
        }
        let slope = (b[1] - a[1]) / dt;
        let intercept = a[1] - slope * a[0];
        (slope.is_finite() && intercept.is_finite()).then_some(EnvelopeLine { slope, intercept })
    }

    /// The lowest `d` in the window.
    #[must_use]
    pub fn min_d(&self) -> Option<f64> {
        self.hull.iter().map(|p| p[1]).min_by(|a, b| a.total_cmp(b))
    }

    /// Approximate heap bytes held (allocated capacity).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        (self.points.capacity() + self.hull.capacity()) * std::mem::size_of::<[f64; 2]>()
    }
}

/// Largest drift (as a fraction, 1 000 ppm) believed possible when testing for a clock step;
/// quartz clocks stay within ±100 ppm and NTP refuses to slew beyond 500 ppm.
pub(crate) const MAX_PLAUSIBLE_DRIFT: f64 = 1e-3;

/// Points in the window before residuals are tested for clock steps.
pub(crate) const MIN_STEP_POINTS: usize = 4;

/// Settings of [`ClockTracker`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClockSettings {
    /// Points kept in the envelope window.
    pub window: usize,
    /// A residual beyond this many milliseconds counts towards a clock step.
    pub step_threshold_ms: f64,
    /// Consecutive reports above the envelope by more than the threshold that confirm a step.
    pub step_confirm: u32,
}

/// What one report told about the clocks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClockObservation {
    /// An upper bound on the offset (server minus client), in ms, at this report: the lowest
    /// line under every point of the regime whose slope allows for the drift estimate's
    /// uncertainty (see [`ClockTracker`]).
    pub skew_ms: f64,
    /// Rate of the server clock relative to the client's, in parts per million
    /// (positive: the server clock runs faster), clamped to ±[`MAX_PLAUSIBLE_DRIFT`].
    pub drift_ppm: f64,
    /// How far this report's `d` lies above the envelope predicted before it (ms); 0 without
    /// a prediction.
    pub residual_ms: f64,
    /// A clock step was detected and the window restarted.
    pub step: bool,
    /// Points in the regime after this report.
    pub points: usize,
    /// The envelope's estimate of offset plus minimum one-way delay at this report (ms): the
    /// value of Moon's line, which `skew_ms` bounds from above.
    pub envelope_ms: f64,
}

/// The drift is widened by this many delay scales over the regime's span for the skew bound.
pub(crate) const SLOPE_MARGIN: f64 = 2.0;

/// Smallest delay scale (ms) assumed when widening the drift for the skew bound.
pub(crate) const MIN_DELAY_SCALE_MS: f64 = 10.0;

/// Per-session skew and drift tracking on top of a [cumulative](LowerEnvelope::cumulative)
/// [`LowerEnvelope`] with step detection.
///
/// The envelope covers every report since the last clock step (its hull, at most `window`
/// vertices), so the drift is Moon's estimate on all of the regime's samples — exactly what an
/// offline fit of the same samples gives.
///
/// **Skew as an upper bound.** The LP line is tightest at the regime's mean time; extrapolated
/// to the newest report with a slightly wrong slope it can dip below the true offset. Every
/// sample satisfies `d_i ≥ offset(t_i)` (delays are not negative), so for any slope `α_hi` at
/// least the true drift, `min_i (d_i + α_hi·(t_now − t_i))` is at least the true offset. The
/// tracker takes `α_hi = α̂ + 2·s / span`, where `s` is the mean height of recent reports above
/// the envelope (at least [`MIN_DELAY_SCALE_MS`]) and `span` the regime's length: the LP's
/// slope error is of the order of the gap between the lowest delays over the span, which `s`
/// exceeds. The bound tends to the LP line as the regime grows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClockTracker {
    origin: Option<i64>,
    envelope: LowerEnvelope,
    pending_high: u32,
    /// The newest raw points, to re-base on after an upward step.
    #[serde(default)]
    recent: VecDeque<[f64; 2]>,
    /// Mean height of reports above the envelope predicted before them (ms).
    #[serde(default)]
    delay_scale: f64,
    /// Reports that contributed to `delay_scale` (its weights are 1/n up to 20).
    #[serde(default)]
    delay_samples: u32,
}

impl ClockTracker {
    /// An empty tracker whose envelope keeps at most `window` hull vertices.
    #[must_use]
    pub(crate) fn new(window: usize) -> Self {
        Self {
            origin: None,
            envelope: LowerEnvelope::cumulative(window),
            pending_high: 0,
            recent: VecDeque::new(),
            delay_scale: 0.0,
            delay_samples: 0,
        }
    }

    /// Heap bytes held.
    #[must_use]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.envelope.heap_bytes() + self.recent.capacity() * std::mem::size_of::<[f64; 2]>()
    }

    /// Restores invariants after deserialising untrusted state.
    pub(crate) fn repair(&mut self, window: usize) {
        self.envelope.repair(window);
        while self.recent.len() > 64 {
            self.recent.pop_front();
        }
        if !self
            .recent
            .iter()
            .all(|p| p[0].is_finite() && p[1].is_finite())
        {
            self.recent.clear();
        }
        if !self.delay_scale.is_finite() || self.delay_scale < 0.0 {
            self.delay_scale = 0.0;
        }
    }

    /// Feeds one report: `client_ms` the client's send time, `server_ms` the server's arrival
    /// time. The caller has bounded `|server_ms − client_ms|`.
    pub(crate) fn observe(
        &mut self,
        client_ms: i64,
        server_ms: i64,
        settings: &ClockSettings,
    ) -> ClockObservation {
        let d = super::diff_f64(server_ms, client_ms);
        let mut step = false;
        let mut residual = 0.0;
        let t = self.origin.map(|o| super::diff_f64(client_ms, o));
        match (t, self.envelope.last()) {
            (Some(t), Some(last)) if t > last[0] => {
                // The line before this report, for its height and the step test.
                let line = self.envelope.line();
                if let Some(line) = line {
                    // Height above the current envelope: the delay scale of the skew bound.
                    let h = d - line.at(t);
                    if h.is_finite() && h >= 0.0 {
                        self.delay_samples = self.delay_samples.saturating_add(1);
                        let w = 1.0 / f64::from(self.delay_samples.min(20));
                        self.delay_scale += w * (h.min(1_000.0) - self.delay_scale);
                    }
                }
                if let Some(pred) = self.predict(line, t) {
                    let r = d - pred;
                    residual = if r.is_finite() { r } else { 0.0 };
                    if residual < -settings.step_threshold_ms {
                        step = true;
                    } else if residual > settings.step_threshold_ms {
                        self.pending_high = self.pending_high.saturating_add(1);
                        if self.pending_high >= settings.step_confirm.max(1) {
                            step = true;
                        }
                    } else {
                        self.pending_high = 0;
                    }
                }
                if step {
                    // The new regime: the reports that confirmed the step (for an upward step)
                    // and this one, re-based so that `t` starts near zero.
                    let keep =
                        (self.pending_high.saturating_sub(1) as usize).min(self.recent.len());
                    self.pending_high = 0;
                    if keep == 0 {
                        self.restart(client_ms, d);
                    } else {
                        let kept: Vec<[f64; 2]> = self
                            .recent
                            .iter()
                            .skip(self.recent.len() - keep)
                            .copied()
                            .collect();
                        self.envelope.clear();
                        self.recent.clear();
                        self.delay_scale = 0.0;
                        self.delay_samples = 0;
                        for p in kept.into_iter().chain([[t, d]]) {
                            self.push(p[0], p[1], settings);
                        }
                    }
                    residual = 0.0;
                } else {
                    self.push(t, d, settings);
                }
            }
            (Some(_), Some(_)) => {
                // The client clock did not advance: a backward step.
                step = true;
                self.restart(client_ms, d);
            }
            _ => self.restart(client_ms, d),
        }
        self.summarise(d, residual, step)
    }

    fn push(&mut self, t: f64, d: f64, settings: &ClockSettings) {
        if self.envelope.push(t, d) {
            self.recent.push_back([t, d]);
            while self.recent.len() > settings.step_confirm.clamp(1, 64) as usize {
                self.recent.pop_front();
            }
        }
    }

    /// Prediction of `d` at `t` for step detection: the envelope's value at the window's mean
    /// time (the LP optimum, which a single delay spike at either end rarely moves) extended
    /// with the slope clamped to ±[`MAX_PLAUSIBLE_DRIFT`], so that a noisy early slope cannot
    /// extrapolate into a false step. Needs [`MIN_STEP_POINTS`] points.
    /// `line` is the envelope's [`LowerEnvelope::line`].
    fn predict(&self, line: Option<EnvelopeLine>, t: f64) -> Option<f64> {
        if self.envelope.len() < MIN_STEP_POINTS {
            return None;
        }
        let line = line?;
        let mean = self.envelope.mean_t()?;
        let slope = line.slope.clamp(-MAX_PLAUSIBLE_DRIFT, MAX_PLAUSIBLE_DRIFT);
        let pred = line.at(mean) + slope * (t - mean);
        pred.is_finite().then_some(pred)
    }

    fn restart(&mut self, client_ms: i64, d: f64) {
        self.envelope.clear();
        self.recent.clear();
        self.pending_high = 0;
        self.delay_scale = 0.0;
        self.delay_samples = 0;
        self.origin = Some(client_ms);
        self.envelope.push(0.0, d);
        self.recent.push_back([0.0, d]);
    }

    fn summarise(&self, d: f64, residual: f64, step: bool) -> ClockObservation {
        let t_now = self.envelope.last().map_or(0.0, |p| p[0]);
        let (estimate, slope) = match (self.envelope.line(), self.envelope.mean_t()) {
            (Some(line), Some(mean)) => {
                let slope = line.slope.clamp(-MAX_PLAUSIBLE_DRIFT, MAX_PLAUSIBLE_DRIFT);
                (line.at(mean) + slope * (t_now - mean), slope)
            }
            _ => (self.envelope.min_d().unwrap_or(d), 0.0),
        };
        let span = t_now - self.envelope.first_t().unwrap_or(t_now);
        let bound = if span > 0.0 {
            let hi = slope + SLOPE_MARGIN * self.delay_scale.max(MIN_DELAY_SCALE_MS) / span;
            self.envelope
                .hull()
                .iter()
                .map(|p| p[1] + hi * (t_now - p[0]))
                .fold(f64::INFINITY, f64::min)
        } else {
            self.envelope.min_d().unwrap_or(d)
        };
        let bound = if bound.is_finite() { bound } else { d };
        ClockObservation {
            skew_ms: bound,
            drift_ppm: if slope.is_finite() { slope * 1e6 } else { 0.0 },
            residual_ms: residual,
            step,
            points: self.envelope.len(),
            envelope_ms: if estimate.is_finite() {
                estimate
            } else {
                bound
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(points: &[[f64; 2]]) -> Option<EnvelopeLine> {
        // Enumerate every pair; keep the feasible line maximising α·t̄ + β.
        let mean = points.iter().map(|p| p[0]).sum::<f64>() / points.len() as f64;
        let mut best: Option<(f64, EnvelopeLine)> = None;
        for (i, a) in points.iter().enumerate() {
            for b in &points[i + 1..] {
                let slope = (b[1] - a[1]) / (b[0] - a[0]);
                let line = EnvelopeLine {
                    slope,
                    intercept: a[1] - slope * a[0],
                };
                if points.iter().all(|p| line.at(p[0]) <= p[1] + 1e-9) {
                    let v = line.at(mean);
                    if best.is_none_or(|(bv, _)| v > bv) {
                        best = Some((v, line));
                    }
                }
            }
        }
        best.map(|(_, l)| l)
    }

    #[test]
    fn matches_brute_force_with_eviction() {
        let mut seed = 12345u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..50 {
            let mut env = LowerEnvelope::new(16);
            let mut all = Vec::new();
            let mut t = 0.0;
            for _ in 0..60 {
                t += 1.0 + 10.0 * rnd();
                let d = 3e-5 * t + 20.0 - 5.0 * rnd().ln();
                assert!(env.push(t, d));
                all.push([t, d]);
                let start = all.len().saturating_sub(16);
                let window = &all[start..];
                match (env.line(), brute_force(window)) {
                    (Some(a), Some(b)) => {
                        let mean = window.iter().map(|p| p[0]).sum::<f64>() / window.len() as f64;
                        assert!((a.at(mean) - b.at(mean)).abs() < 1e-9);
                    }
                    (None, None) => {}
                    other => panic!("mismatch {other:?}"),
                }
            }
        }
    }

    #[test]
    fn rejects_non_increasing_and_non_finite() {
        let mut env = LowerEnvelope::new(8);
        assert!(env.push(1.0, 1.0));
        assert!(!env.push(1.0, 2.0));
        assert!(!env.push(0.5, 2.0));
        assert!(!env.push(f64::NAN, 2.0));
        assert!(!env.push(2.0, f64::INFINITY));
        assert_eq!(env.len(), 1);
        assert!(env.line().is_none());
    }

    #[test]
    fn robust_to_one_sided_spikes() {
        let mut env = LowerEnvelope::new(64);
        for i in 0..64 {
            let t = f64::from(i) * 1000.0;
            let spike = if i % 3 == 0 { 500.0 } else { 0.0 };
            env.push(t, 1e-5 * t + 30.0 + spike);
        }
        let line = env.line().unwrap_or(EnvelopeLine {
            slope: f64::NAN,
            intercept: f64::NAN,
        });
        assert!((line.slope - 1e-5).abs() < 1e-12);
        assert!((line.intercept - 30.0).abs() < 1e-9);
    }

    fn settings() -> ClockSettings {
        ClockSettings {
            window: 32,
            step_threshold_ms: 1000.0,
            step_confirm: 3,
        }
    }

    #[test]
    fn detects_forward_and_backward_steps() {
        let s = settings();
        let mut c = ClockTracker::new(32);
        let mut server = 1_000_000i64;
        for _ in 0..10 {
            server += 10_000;
            assert!(!c.observe(server - 500, server, &s).step);
        }
        // Client jumps an hour forward: d drops far below the envelope.
        server += 10_000;
        assert!(c.observe(server + 3_600_000, server, &s).step);
        for _ in 0..3 {
            server += 10_000;
            assert!(!c.observe(server + 3_600_000, server, &s).step);
        }
        // Client goes back in time: timestamp does not advance.
        server += 10_000;
        assert!(c.observe(server - 3_600_000, server, &s).step);
    }

    #[test]
    fn upward_step_needs_confirmation() {
        let s = settings();
        let mut c = ClockTracker::new(32);
        let mut server = 0i64;
        for _ in 0..10 {
            server += 10_000;
            c.observe(server, server + 20, &s);
        }
        // One delay spike is not a step.
        server += 10_000;
        assert!(!c.observe(server, server + 5_000, &s).step);
        server += 10_000;
        assert!(!c.observe(server, server + 20, &s).step);
        // The client clock falls 5 s behind for good (less than the report interval, so its
        // timestamps still advance): confirmed on the third report.
        let mut steps = Vec::new();
        for _ in 0..3 {
            server += 10_000;
            steps.push(c.observe(server - 5_000, server + 20, &s).step);
        }
        assert_eq!(steps, vec![false, false, true]);
        server += 10_000;
        let obs = c.observe(server - 5_000, server + 20, &s);
        assert!(!obs.step);
        assert!((obs.skew_ms - 5_020.0).abs() < 1.0, "{obs:?}");
    }
}
