//! Per-session anomaly evidence that separates attacks from honest clients: a leaky bucket on
//! the operation count (inflation, counter jumps) and an anchor on the clock offset (clock
//! jumps, replayed reports).
//!
//! Each detector returns a ratio `ρ` (evidence ÷ alarm level: `ρ ≥ 1` alarms) that
//! [`evidence_score`] maps to the anomaly score. Both
//! stop learning while they see something suspicious, so an attack that goes on stays flagged
//! as long as it lasts, and both hold an alarm for [`HOLD_S`] after the last alarming report.
//!
//! # Count: a leaky bucket against the session's own expected rate
//!
//! The expected rate `r` is the session's mean rate (a running mean, then an exponential one
//! with a [`RATE_MEMORY_S`] memory). After the cold start it learns from increments only
//! [`LEARN_LAG_S`] after they happened, and forgets the waiting ones on an alarm: a burst is
//! part of the user's rate, a second user caught within the lag is not. The bucket fills with
//! each report's increase and leaks at `A = RATE_MULTIPLE·max(r, RATE_FLOOR)`:
//!
//! ```text
//! L ← max(0, L + Δcount − A·Δt),      q = L / B,      B = max(BURST_FLOOR, BURST_MULTIPLE·b)
//! ρ = q/2 · (1 + min(1, time above B / T)),   T = max(PERSIST_S, DRAIN_MARGIN · (peak − B) / A)
//! ```
//!
//! where `b` is the largest excursion of `L` that drained back to empty without alarming: the
//! session's own biggest honest burst (or cluster of bursts). Twice `B` alarms at once (a
//! counter jump); between `B` and `2B` the bucket must stay above `B` for longer than its peak
//! would take to drain at the leak — an honest cluster of bursts drains, a second user at `k×`
//! the rate keeps filling it at `(k − RATE_MULTIPLE)·r` for as long as it goes on. A user who
//! ramps up stays under `A` (a linear ramp never exceeds twice its mean).
//!
//! The count's cold start is the predictor's plus [`LEARN_LAG_S`]: until then every excursion
//! is learnt as honest and nothing alarms.
//!
//! # Clock: an anchor that survives clock steps
//!
//! While the session is calm the anchor follows the skew estimator's line (offset plus
//! minimum delay, and drift). A report's deviation from it, `dev = d − anchor(t)`, is:
//! * below the anchor by more than the step threshold: impossible by delay — a clock moved
//!   forward: `ρ = |dev| / threshold`;
//! * above it on two reports in a row by more than the threshold: a clock moved back (a single
//!   report above is a delay spike unless it is beyond [`MAX_DELAY_MS`]);
//! * a client timestamp that does not advance: a replayed report (or a clock set back by more
//!   than a report interval): `ρ = 2`.
//!
//! The anchor is frozen while the deviation is suspicious, so a jumped clock stays flagged
//! although the skew estimator restarts on the new offset.

use serde::{Deserialize, Serialize};

use super::skew::{ClockObservation, MAX_PLAUSIBLE_DRIFT, MIN_STEP_POINTS};

/// How long (s) an alarm is held after the last alarming report.
pub(crate) const HOLD_S: f64 = 120.0;

/// The bucket leaks at this multiple of the expected rate.
pub(crate) const RATE_MULTIPLE: f64 = 3.0;

/// Smallest expected rate (ops/s) the leak is based on.
pub(crate) const RATE_FLOOR: f64 = 0.2;

/// Memory of the expected rate (s).
pub(crate) const RATE_MEMORY_S: f64 = 300.0;

/// Increments enter the expected rate this long (s) after they happened…
pub(crate) const LEARN_LAG_S: f64 = 60.0;

/// …in bins of this many seconds…
pub(crate) const LEARN_BIN_S: f64 = 10.0;

/// …of which at most this many wait.
pub(crate) const LEARN_BINS: usize = 8;

/// Smallest alarm level of the bucket (operations): a burst of 30 honest clicks never alarms.
pub(crate) const BURST_FLOOR: f64 = 60.0;

/// The alarm level is this multiple of the largest honest excursion.
pub(crate) const BURST_MULTIPLE: f64 = 2.5;

/// How long (s) the bucket must stay above its alarm level `B` to alarm there — at least,
/// and [`DRAIN_MARGIN`] times as long as the excursion's peak takes to drain back to `B` at
/// the leak rate; twice `B` alarms at once.
pub(crate) const PERSIST_S: f64 = 20.0;

/// See [`PERSIST_S`].
pub(crate) const DRAIN_MARGIN: f64 = 1.5;

/// A single report this far (ms) above the anchor cannot be a delay.
pub(crate) const MAX_DELAY_MS: f64 = 30_000.0;

/// `ρ` of a non-advancing client timestamp.
pub(crate) const REPLAY_RHO: f64 = 2.0;

/// Evidence from the operation count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CountEvidence {
    level: f64,
    rate: f64,
    learned_s: f64,
    burst: f64,
    peak: f64,
    alarmed_excursion: bool,
    hold_until_s: f64,
    #[serde(default)]
    above_since_s: Option<f64>,
    /// `[start s, operations, seconds]` of recent increments, learnt [`LEARN_LAG_S`] later
    /// unless an alarm comes first.
    #[serde(default)]
    lagged: Vec<[f64; 3]>,
}

impl CountEvidence {
    /// The alarm level `B` (operations).
    #[must_use]
    pub(crate) fn alarm_level(&self) -> f64 {
        BURST_FLOOR.max(BURST_MULTIPLE * self.burst)
    }

    /// Restores invariants after deserialising untrusted state.
    pub(crate) fn repair(&mut self) {
        if self.above_since_s.is_some_and(|t| !t.is_finite()) {
            self.above_since_s = None;
        }
        self.lagged.truncate(LEARN_BINS + 1);
        self.lagged
            .retain(|b| b.iter().all(|v| v.is_finite()) && b[1] >= 0.0 && b[2] >= 0.0);
        for v in [
            &mut self.level,
            &mut self.rate,
            &mut self.learned_s,
            &mut self.burst,
            &mut self.peak,
            &mut self.hold_until_s,
        ] {
            if !v.is_finite() || *v < 0.0 {
                *v = 0.0;
            }
        }
    }

    fn learn(&mut self, ops: f64, secs: f64) {
        if secs > 0.0 {
            let w = (secs / (self.learned_s + secs).min(RATE_MEMORY_S)).min(1.0);
            self.rate += w * (ops / secs - self.rate);
            self.learned_s += secs;
        }
    }

    /// Feeds the increase `dc` over `dt_s` seconds at session time `t_s`. `learning` is the
    /// cold start: every excursion counts as honest and nothing alarms or holds. Returns `ρ`.
    pub(crate) fn update(&mut self, t_s: f64, dt_s: f64, dc: f64, learning: bool) -> f64 {
        let dt = if dt_s.is_finite() { dt_s.max(0.0) } else { 0.0 };
        let dc = if dc.is_finite() { dc.max(0.0) } else { 0.0 };
        let leak = RATE_MULTIPLE * self.rate.max(RATE_FLOOR);
        self.level = (self.level + dc - leak * dt).max(0.0);
        let b = self.alarm_level();
        let q = self.level / b;
        // Above `B` the evidence grows with how long the bucket stays there: an honest cluster of
        // bursts drains, a second user does not. Twice `B` alarms at once.
        let above = if q >= 1.0 {
            t_s - *self.above_since_s.get_or_insert(t_s)
        } else {
            self.above_since_s = None;
            0.0
        };
        self.peak = self.peak.max(self.level);
        let needed = PERSIST_S.max(DRAIN_MARGIN * (self.peak - b).max(0.0) / leak);
        let rho = 0.5 * q * (1.0 + above / needed).min(2.0);
        // The expected rate learns from increments [`LEARN_LAG_S`] old that no alarm followed:
        // a burst is part of the user's rate, a second user (caught in time) is not.
        if learning {
            self.learn(dc, dt);
        } else if dt > 0.0 {
            match self.lagged.last_mut() {
                Some(bin) if t_s - bin[0] < LEARN_BIN_S => {
                    bin[1] += dc;
                    bin[2] += dt;
                }
                _ => self.lagged.push([t_s, dc, dt]),
            }
            while let Some(&[start, ops, secs]) = self.lagged.first() {
                if t_s - start < LEARN_LAG_S && self.lagged.len() <= LEARN_BINS {
                    break;
                }
                self.lagged.remove(0);
                self.learn(ops, secs);
            }
        }
        self.peak = self.peak.max(self.level);
        if learning {
            self.burst = self.burst.max(self.level);
        } else if rho >= 1.0 {
            self.alarmed_excursion = true;
            self.hold_until_s = t_s + HOLD_S;
            self.lagged.clear();
        }
        if self.level <= 1.0 {
            if !self.alarmed_excursion && t_s >= self.hold_until_s {
                self.burst = self.burst.max(self.peak);
            }
            self.peak = 0.0;
            self.alarmed_excursion = false;
        }
        let rho = if rho.is_finite() { rho } else { 0.0 };
        if !learning && t_s < self.hold_until_s {
            rho.max(1.0)
        } else {
            rho
        }
    }
}

/// Settings of [`ClockEvidence`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClockEvidenceSettings {
    /// Deviation (ms) that counts: the clock step threshold.
    pub threshold_ms: f64,
}

/// Evidence from the clock offset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClockEvidence {
    /// `[client ms, d at that time, slope]` of the calm regime.
    anchor: Option<[f64; 3]>,
    last_client_ms: Option<i64>,
    prev_dev: f64,
    hold_until_s: f64,
}

impl ClockEvidence {
    /// Restores invariants after deserialising untrusted state.
    pub(crate) fn repair(&mut self) {
        if self
            .anchor
            .is_some_and(|a| !a.iter().all(|v| v.is_finite()))
        {
            self.anchor = None;
        }
        if !self.prev_dev.is_finite() {
            self.prev_dev = 0.0;
        }
        if !self.hold_until_s.is_finite() {
            self.hold_until_s = 0.0;
        }
    }

    /// The deviation (ms) of `d` at client time `client_ms` from the anchor, if there is one.
    #[must_use]
    pub(crate) fn deviation(&self, client_ms: i64, d: f64) -> Option<f64> {
        self.anchor
            .map(|[t, d0, slope]| d - (d0 + slope * (client_ms as f64 - t)))
    }

    /// Feeds one report (client send time, `d` = server arrival − client time, what the
    /// skew estimator made of it) at session time `t_s`. Returns `ρ`.
    pub(crate) fn update(
        &mut self,
        t_s: f64,
        client_ms: i64,
        d: f64,
        obs: &ClockObservation,
        settings: &ClockEvidenceSettings,
    ) -> f64 {
        let tol = settings.threshold_ms.max(1.0);
        let replay = self.last_client_ms.is_some_and(|l| client_ms <= l);
        let dev = self.deviation(client_ms, d);
        let mut rho = match dev {
            Some(dev) if dev < -tol => -dev / tol,
            Some(dev) if dev > tol => {
                if self.prev_dev > tol {
                    dev.min(self.prev_dev) / tol
                } else {
                    dev / MAX_DELAY_MS
                }
            }
            Some(dev) => 0.5 * dev.abs() / tol,
            None => 0.0,
        };
        if replay {
            rho = rho.max(REPLAY_RHO);
        }
        let rho = if rho.is_finite() { rho } else { REPLAY_RHO };
        if rho < 0.5 && !obs.step && obs.points >= MIN_STEP_POINTS {
            let slope = (obs.drift_ppm * 1e-6).clamp(-MAX_PLAUSIBLE_DRIFT, MAX_PLAUSIBLE_DRIFT);
            self.anchor = Some([client_ms as f64, obs.envelope_ms, slope]);
        }
        self.prev_dev = if replay {
            f64::INFINITY
        } else {
            dev.unwrap_or(0.0)
        };
        if !self.prev_dev.is_finite() {
            self.prev_dev = MAX_DELAY_MS;
        }
        self.last_client_ms = Some(client_ms);
        if rho >= 1.0 {
            self.hold_until_s = t_s + HOLD_S;
        }
        if t_s < self.hold_until_s {
            rho.max(1.0)
        } else {
            rho
        }
    }
}

/// Maps a ratio `ρ = evidence / alarm level` to a score in `[0, 1)` that equals `threshold`
/// at `ρ = 1`: `1 − (1 − threshold)^ρ`.
#[must_use]
pub(crate) fn evidence_score(rho: f64, threshold: f64) -> f64 {
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
    fn bursts_drain_and_a_second_user_does_not() {
        let mut c = CountEvidence::default();
        let mut t = 0.0;
        // One op/s for two minutes, with a burst of 30 now and then.
        for i in 0..120 {
            t += 1.0;
            let dc = if i % 40 == 39 { 30.0 } else { 1.0 };
            let rho = c.update(t, 1.0, dc, t < 30.0);
            assert!(rho < 1.0, "report {i}: {rho}");
        }
        // A second user at 9 ops/s on top.
        let mut flagged = Vec::new();
        for _ in 0..60 {
            t += 1.0;
            flagged.push(c.update(t, 1.0, 10.0, false) >= 1.0);
        }
        let first = flagged.iter().position(|&f| f).unwrap_or(usize::MAX);
        assert!(first < 20, "first flag {first}");
        assert!(flagged[first..].iter().all(|&f| f), "not held");
    }

    #[test]
    fn a_jump_alarms_at_once() {
        let mut c = CountEvidence::default();
        for i in 0..60 {
            c.update(f64::from(i), 1.0, 2.0, i < 30);
        }
        assert!(c.update(61.0, 1.0, 500.0, false) >= 1.0);
    }

    #[test]
    fn evidence_score_hits_threshold_at_one() {
        assert!((evidence_score(1.0, 0.7) - 0.7).abs() < 1e-12);
        assert_eq!(evidence_score(0.0, 0.7), 0.0);
        assert!(evidence_score(100.0, 0.7) <= 1.0);
        assert_eq!(evidence_score(f64::NAN, 0.7), 0.0);
    }
}
