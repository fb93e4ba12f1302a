//! The operation-count forecast: per session, the mean rate since login (fading over five
//! minutes, shrunk towards the population's rate while the session is young) unless the
//! session's own record shows another model significantly better, and a regime for "the user
//! left".
//!
//! Measured on realistic clients (`benches/drift_eval.rs`), the mean rate since login is the
//! naive forecaster to beat for steady and bursty users, and the last value for a user who has
//! left. Every session runs six forecasters of the count `h` seconds ahead, all of the form
//! `count + rate·h`:
//!
//! | model | rate |
//! |---|---|
//! | last value | 0 |
//! | recent rate | increase over the last 30 s |
//! | mean rate | increase since the login (since the first report if the age is unknown), weighted `exp(−age/300 s)` ([`EW_MEMORY_S`]), with the population prior |
//! | trend | the Kalman local linear trend's filtered slope (`forecast.rs`) |
//! | median increment | median of the session's past increments over `h` |
//! | damped mean rate | 0.7 × the mean rate |
//!
//! **The mean rate** is the Poisson rate estimate `(n + m·β)/(s + β)`, where `n` operations
//! happened in `s` seconds since login, both weighted by `exp(−age/300 s)`, and `m·β`
//! operations in `β` seconds is the population's prior ([`RatePopulation`], empirical Bayes:
//! the mean and true spread of the rates of sessions older than a minute, on this predictor).
//! The prior matters for the first seconds of a session, where `n/s` is mostly noise (a first
//! report with no operation yet forecasts nothing); the fading lets a user whose pace changes
//! (the ramp) be followed within minutes at almost no cost for a constant one (measured:
//! `docs/drift.md`).
//!
//! Every `h/12` seconds the six forecasts are stored; when a report arrives after a stored
//! forecast's horizon, the true count at that instant is interpolated between the two reports
//! around it, and each model's absolute error and its gain over the mean rate enter running
//! means (weight 0.05). Another model replaces the mean rate only when its gain is significant
//! (t > [`SWITCH_T`], counting a horizon's overlapping forecasts as [`OVERLAP`] times fewer):
//! horizon errors are noisy and a wrong switch costs more than a missed one.
//!
//! **The user left.** After a stretch of activity without pauses of at least
//! [`LEFT_ACTIVE_S`], the forecast is the last value once the count has stood still for longer
//! than [`LEFT_MIN_S`], than twice the longest recent idle gap the user came back from, and
//! than a user active at the mean rate stays idle with probability 0.1 %. A bursty user (whose
//! activity comes in short bursts) is pausing, not leaving. The regime is judged by its own
//! record too: once three of its flat forecasts are resolved it stays in use only while their
//! error is at most 0.8 × what the chosen model would have said.
//!
//! State: a ring of (time, count) checkpoints at least 2 s apart (96: three minutes or more) and
//! up to 16 pending forecasts — about 2.5 KiB. The population prior is shared by the sessions
//! of a predictor (a few numbers behind a mutex).

use serde::{Deserialize, Serialize};

/// Number of forecasters.
pub const MODELS: usize = 6;

/// The forecasters, in index order.
pub const MODEL_NAMES: [&str; MODELS] = [
    "last_value",
    "recent_rate",
    "mean_rate",
    "trend",
    "median_increment",
    "damped_mean_rate",
];

/// Index of the mean-rate model, used until errors are known.
pub(crate) const DEFAULT_MODEL: usize = 2;

/// Factor of the damped mean rate: for bursty users the typical increment over a horizon (the
/// median, which minimises the absolute error) lies below the mean one.
pub(crate) const DAMPING: f64 = 0.7;

/// Window of the recent-rate model (s).
pub(crate) const RECENT_S: f64 = 30.0;

/// Checkpoints kept for the recent rate and the past increments.
pub(crate) const HISTORY: usize = 96;

/// Smallest spacing of checkpoints (s).
pub(crate) const HISTORY_SPACING_S: f64 = 2.0;

/// Pending forecasts kept.
pub(crate) const PENDING: usize = 16;

/// Weight of a newly resolved error in each model's running mean error.
pub(crate) const ERROR_WEIGHT: f64 = 0.05;

/// Another model replaces the mean rate only when its recent gain over it (in absolute error)
/// has a t statistic above this…
pub(crate) const SWITCH_T: f64 = 4.0;

/// …counting the overlapping forecasts of one horizon as this many independent ones' worth.
pub(crate) const OVERLAP: f64 = 8.0;

/// Resolved forecasts needed before the choice follows the errors.
pub(crate) const MIN_RESOLVED: u32 = 3;

/// Past increments needed before the median-increment model has its own rate.
pub(crate) const MIN_INCREMENTS: usize = 4;

/// Shortest idle time (s) taken as "the user left".
pub(crate) const LEFT_MIN_S: f64 = 6.0;

/// Only a user who was active for this long (s) without pausing can be taken to have left; a
/// single burst (a few seconds) followed by silence is a pause.
pub(crate) const LEFT_ACTIVE_S: f64 = 15.0;

/// Idle longer than this multiple of the recent longest gap counts as "left".
pub(crate) const LEFT_GAP_MULTIPLE: f64 = 2.0;

/// `ln(1000)`: idle longer than this many mean inter-operation times has 0.1 % probability for a
/// user still active at the mean rate.
pub(crate) const LEFT_SILENCE_LN: f64 = 6.907_755_278_982_137;

/// The "left" regime stays in use while its recent error is at most this fraction of the
/// chosen model's on the same forecasts.
pub(crate) const LEFT_KEEP: f64 = 0.8;

/// Weight of a newly resolved error of the "left" regime.
pub(crate) const LEFT_ERROR_WEIGHT: f64 = 0.2;

/// Memory (s) of the exponentially weighted mean rate.
pub(crate) const EW_MEMORY_S: f64 = 300.0;

/// Memory (s) of the decaying longest idle gap.
pub(crate) const GAP_MEMORY_S: f64 = 60.0;

/// Sessions contribute to the population's rate statistics from this age (s) on, when their
/// mean rate is no longer dominated by the first seconds' noise.
pub(crate) const PRIOR_MIN_AGE_S: f64 = 60.0;

/// Rates above this (ops/s) enter the population's moments at this value.
pub(crate) const PRIOR_MAX_RATE: f64 = 50.0;

/// Reports needed before the population prior is used.
pub(crate) const PRIOR_MIN_REPORTS: u64 = 200;

/// Smallest weight of a report in the population's running moments.
pub(crate) const PRIOR_WEIGHT: f64 = 0.002;

/// Largest pseudo-time (s) of the prior: a session's own data outweighs the population's
/// after this long.
pub(crate) const PRIOR_MAX_S: f64 = 30.0;

/// The population's operation rates, shared by every session of a predictor: an empirical-Bayes
/// prior for the mean rate of a session too young to have its own.
///
/// Sessions older than [`PRIOR_MIN_AGE_S`] contribute their mean rate `x = c/a` and its
/// Poisson noise `x/a`; with running moments `m = E[x]` and `v = Var(x) − E[x/a]` (the spread
/// of the true rates), the prior is a gamma distribution of mean `m` and variance `v`, i.e.
/// `m·β` operations in `β = m/v` seconds, and a session's mean rate becomes
/// `(c + m·β)/(a + β)`: close to `m` in its first seconds, to its own `c/a` soon after.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RatePopulation {
    n: u64,
    mean: f64,
    square: f64,
    noise: f64,
}

impl RatePopulation {
    /// Adds one report of a session of age `age_s` with `count` operations since login.
    pub(crate) fn record(&mut self, count: f64, age_s: f64) {
        if age_s.is_nan() || age_s < PRIOR_MIN_AGE_S || !count.is_finite() || count < 0.0 {
            return;
        }
        // Capped: no person sustains 50 operations a second, and one session must not
        // move the population far.
        let x = (count / age_s).min(PRIOR_MAX_RATE);
        self.n = self.n.saturating_add(1);
        let w = PRIOR_WEIGHT.max(1.0 / self.n as f64);
        self.mean += w * (x - self.mean);
        self.square += w * (x * x - self.square);
        self.noise += w * (x / age_s - self.noise);
    }

    /// The prior `(rate, pseudo-seconds)`, once enough reports are in.
    #[must_use]
    pub(crate) fn prior(&self) -> Option<(f64, f64)> {
        if self.n < PRIOR_MIN_REPORTS || self.mean.is_nan() || self.mean <= 0.0 {
            return None;
        }
        let spread = (self.square - self.mean * self.mean - self.noise).max(1e-9);
        let beta = (self.mean / spread).clamp(0.0, PRIOR_MAX_S);
        (beta.is_finite() && self.mean.is_finite()).then_some((self.mean, beta))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Pending {
    t: f64,
    count: f64,
    rates: [f32; MODELS],
    /// The chosen model's rate, and whether the "left" regime overrode it.
    #[serde(default)]
    chosen: f32,
    #[serde(default)]
    left: bool,
}

/// What the ensemble forecasts after a report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct EnsembleForecast {
    /// Forecast rate (ops/s, ≥ 0); the forecast is `count + rate·h`.
    pub rate: f64,
    /// The model chosen (index into [`MODEL_NAMES`]).
    pub model: usize,
    /// The user appears to have left: the rate is 0.
    pub left: bool,
    /// Recent mean absolute error of the chosen model at the horizon (ops), once known.
    pub error: Option<f64>,
}

/// Per-session state of the forecast ensemble.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ensemble {
    started: bool,
    origin_ms: i64,
    first_count: f64,
    /// Session age at the first report (s): the mean rate counts from the login.
    #[serde(default)]
    first_age: f64,
    prev: [f64; 2],
    history: Vec<[f64; 2]>,
    history_next: u32,
    pending: Vec<Pending>,
    errors: [f64; MODELS],
    /// Running mean of (mean-rate error − model error) and of its square, per model.
    #[serde(default)]
    gains: [[f64; 2]; MODELS],
    resolved: u32,
    last_change: f64,
    gap_max: f64,
    median_rate: f64,
    /// Recent error of the forecasts the "left" regime made flat, and of what the chosen model
    /// would have said instead; `left_resolved` counts them.
    #[serde(default)]
    left_errors: [f64; 2],
    #[serde(default)]
    left_resolved: u32,
    /// Start of the current stretch of activity without a pause longer than [`LEFT_MIN_S`].
    #[serde(default)]
    active_since: f64,
    /// Exponentially weighted operations and seconds since login (memory [`EW_MEMORY_S`]).
    #[serde(default)]
    ew: [f64; 2],
    /// What each model said at the last report (ops/s), for evaluation.
    #[serde(default)]
    last_rates: [f32; MODELS],
    /// The past increments of the median-increment model, kept sorted as checkpoints come
    /// and go; derived from `history`, so not persisted.
    #[serde(skip)]
    increments: Increments,
}

/// The increments over `h` of the oldest `resolved` checkpoints (those with a checkpoint at
/// least `h` later), sorted by [`f64::total_cmp`]. An increment is fixed once resolved: the
/// two checkpoints around `t + h` are both in the ring and stay there while the checkpoint
/// does. Derived state: equal to any other (as [`Ensemble`]'s equality must ignore it), and
/// rebuilt from the history when not `valid`.
#[derive(Clone, Debug, Default)]
struct Increments {
    valid: bool,
    h: f64,
    resolved: usize,
    sorted: Vec<f64>,
}

impl PartialEq for Increments {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn finite_or(v: f64, d: f64) -> f64 {
    if v.is_finite() { v } else { d }
}

impl Ensemble {
    /// Each model's rate (ops/s) at the last report: the forecast `h` ahead was
    /// `count + rate·h`. For evaluation (`benches/drift_eval.rs`).
    #[must_use]
    pub(crate) fn last_rates(&self) -> [f64; MODELS] {
        self.last_rates.map(f64::from)
    }

    /// Heap bytes held.
    #[must_use]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.history.capacity() * std::mem::size_of::<[f64; 2]>()
            + self.pending.capacity() * std::mem::size_of::<Pending>()
            + self.increments.sorted.capacity() * std::mem::size_of::<f64>()
    }

    /// Restores invariants after deserialising untrusted state.
    pub(crate) fn repair(&mut self) {
        self.increments.valid = false;
        self.history.truncate(HISTORY);
        self.history
            .retain(|p| p[0].is_finite() && p[1].is_finite());
        if self.history_next as usize >= HISTORY {
            self.history_next = 0;
        }
        // The checkpoints' times must increase (the searches below rely on it): drop any that
        // does not, and lay the rest out oldest first.
        if self
            .ordered()
            .zip(self.ordered().skip(1))
            .any(|(a, b)| b[0] <= a[0])
        {
            let mut kept: Vec<[f64; 2]> = Vec::with_capacity(self.history.len());
            for p in self.ordered() {
                if kept.last().is_none_or(|last| p[0] > last[0]) {
                    kept.push(p);
                }
            }
            self.history_next = (kept.len() % HISTORY) as u32;
            self.history = kept;
        }
        self.pending.truncate(PENDING);
        self.pending.retain(|p| {
            p.t.is_finite() && p.count.is_finite() && p.rates.iter().all(|r| r.is_finite())
        });
        for e in self
            .errors
            .iter_mut()
            .chain(self.left_errors.iter_mut())
            .chain(self.gains.iter_mut().flatten())
        {
            if !e.is_finite() || *e < 0.0 {
                *e = 0.0;
            }
        }
        for r in &mut self.last_rates {
            if !r.is_finite() {
                *r = 0.0;
            }
        }
        let [t_prev, c_prev] = &mut self.prev;
        let [ew_count, ew_seconds] = &mut self.ew;
        for v in [
            &mut self.first_count,
            &mut self.first_age,
            t_prev,
            c_prev,
            &mut self.last_change,
            &mut self.active_since,
            &mut self.gap_max,
            &mut self.median_rate,
            ew_count,
            ew_seconds,
        ] {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
    }

    /// Checkpoints in time order.
    fn ordered(&self) -> impl Iterator<Item = [f64; 2]> + '_ {
        let split = if self.history.len() < HISTORY {
            0
        } else {
            self.history_next as usize
        };
        self.history[split..]
            .iter()
            .chain(&self.history[..split])
            .copied()
    }

    /// The count at time `t` interpolated between checkpoints (clamped to the oldest), by
    /// binary search: the checkpoints' times increase.
    fn count_at(&self, t: f64) -> Option<f64> {
        // The first checkpoint at `t` or later.
        let (mut lo, mut hi) = (0, self.history.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.checkpoint(mid).is_some_and(|p| p[0] < t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let before = lo.checked_sub(1).and_then(|i| self.checkpoint(i));
        let Some(p) = self.checkpoint(lo) else {
            return before.map(|b| b[1]);
        };
        Some(match before {
            Some(b) if p[0] > b[0] => b[1] + (p[1] - b[1]) * (t - b[0]) / (p[0] - b[0]),
            _ => p[1],
        })
    }

    /// The `i`-th checkpoint in time order.
    fn checkpoint(&self, i: usize) -> Option<[f64; 2]> {
        let split = if self.history.len() < HISTORY {
            0
        } else {
            self.history_next as usize
        };
        let len = self.history.len();
        if i >= len {
            return None;
        }
        // `(split + i) % len` without a division: both are below `len`.
        let at = split + i;
        self.history
            .get(if at >= len { at - len } else { at })
            .copied()
    }

    /// The increment over `h` from the `i`-th checkpoint (in time order): the count at
    /// `t + h`, interpolated between the checkpoints around it, minus the checkpoint's. `None`
    /// while no checkpoint is at `t + h` or later.
    fn increment(&self, i: usize, h: f64) -> Option<f64> {
        let p = self.checkpoint(i)?;
        let target = p[0] + h;
        // `a`: the last checkpoint before `target` (the first one at least), `b` the next.
        let mut j = i;
        while self.checkpoint(j + 1).is_some_and(|q| q[0] < target) {
            j += 1;
        }
        let a = self.checkpoint(j)?;
        let b = self.checkpoint(j + 1)?;
        let c = if b[0] > a[0] {
            a[1] + (b[1] - a[1]) * ((target - a[0]) / (b[0] - a[0])).clamp(0.0, 1.0)
        } else {
            b[1]
        };
        Some(c - p[1])
    }

    /// Resolves the checkpoints whose `h` later the newest checkpoint `now` covers, into the
    /// sorted increments.
    fn resolve_increments(&mut self, now: f64, h: f64) {
        while let Some(p) = self.checkpoint(self.increments.resolved) {
            if p[0] + h > now {
                break;
            }
            let Some(inc) = self.increment(self.increments.resolved, h) else {
                break;
            };
            let sorted = &mut self.increments.sorted;
            let at = sorted.partition_point(|v| v.total_cmp(&inc).is_lt());
            sorted.insert(at, inc);
            self.increments.resolved += 1;
        }
    }

    /// Before the oldest checkpoint is overwritten: takes its increment out.
    fn forget_oldest_increment(&mut self, h: f64) {
        if !self.increments.valid || self.increments.resolved == 0 {
            return;
        }
        let found = self.increment(0, h).and_then(|inc| {
            self.increments
                .sorted
                .binary_search_by(|v| v.total_cmp(&inc))
                .ok()
        });
        match found {
            Some(at) => {
                self.increments.sorted.remove(at);
                self.increments.resolved -= 1;
            }
            // Not a history this code writes (times not increasing): start over.
            None => self.increments.valid = false,
        }
    }

    /// The median of the past increments over `h` (as a rate), once there are
    /// [`MIN_INCREMENTS`]; `now` is the newest checkpoint. Each checkpoint's increment is
    /// computed once, when a checkpoint at least `h` later arrives.
    fn median_increment_rate(&mut self, now: f64, h: f64) -> Option<f64> {
        if !self.increments.valid || self.increments.h.to_bits() != h.to_bits() {
            self.increments.valid = true;
            self.increments.h = h;
            self.increments.resolved = 0;
            self.increments.sorted.clear();
            self.increments.sorted.reserve_exact(HISTORY);
        }
        self.resolve_increments(now, h);
        let n = self.increments.sorted.len();
        if n < MIN_INCREMENTS {
            return None;
        }
        let m = self.increments.sorted.get(n / 2)?;
        Some((*m / h).max(0.0))
    }

    /// Feeds one accepted report (server time, count, the trend filter's slope) and returns
    /// the forecast `horizon_s` ahead. `prior` is the population's `(rate, pseudo-seconds)`
    /// ([`RatePopulation::prior`]), if known.
    pub(crate) fn observe(
        &mut self,
        server_ms: i64,
        count: u64,
        session_age_ms: u64,
        trend_rate: f64,
        horizon_s: f64,
        prior: Option<(f64, f64)>,
    ) -> EnsembleForecast {
        let c = count as f64;
        let h = horizon_s.max(1.0);
        let (prior_rate, prior_s) = prior
            .filter(|(r, s)| r.is_finite() && s.is_finite() && *r >= 0.0 && *s >= 0.0)
            .unwrap_or((0.0, 0.0));
        if !self.started {
            *self = Self {
                started: true,
                origin_ms: server_ms,
                first_count: c,
                first_age: session_age_ms as f64 / 1_000.0,
                prev: [0.0, c],
                // The count starts at the login when the age is known.
                ew: if session_age_ms > 0 {
                    [c, session_age_ms as f64 / 1_000.0]
                } else {
                    [0.0, 0.0]
                },
                history: vec![[0.0, c]],
                history_next: 1,
                ..Self::default()
            };
            let rate = if self.first_age + prior_s > 0.0 {
                finite_or((c + prior_rate * prior_s) / (self.first_age + prior_s), 0.0)
            } else {
                0.0
            };
            self.last_rates = [rate as f32; MODELS];
            self.last_rates[0] = 0.0;
            return EnsembleForecast {
                rate,
                model: DEFAULT_MODEL,
                left: false,
                error: None,
            };
        }
        let t = finite_or(
            super::diff_f64(server_ms, self.origin_ms) / 1_000.0,
            self.prev[0],
        )
        .max(self.prev[0]);
        let [t_prev, c_prev] = self.prev;

        // Resolve the stored forecasts whose horizon has passed.
        while let Some(p) = self.pending.first().copied() {
            let target = p.t + h;
            if target > t {
                break;
            }
            let actual = if t > t_prev && target > t_prev {
                c_prev + (c - c_prev) * (target - t_prev) / (t - t_prev)
            } else {
                c_prev
            };
            let w = ERROR_WEIGHT.max(1.0 / f64::from(self.resolved.saturating_add(1)));
            let errs = p
                .rates
                .map(|r| finite_or((p.count + f64::from(r) * h - actual).abs(), 0.0));
            for ((e, g), err) in self.errors.iter_mut().zip(&mut self.gains).zip(errs) {
                *e += w * (err - *e);
                let gain = errs[DEFAULT_MODEL] - err;
                g[0] += w * (gain - g[0]);
                g[1] += w * (gain * gain - g[1]);
            }
            if p.left {
                let w =
                    LEFT_ERROR_WEIGHT.max(1.0 / f64::from(self.left_resolved.saturating_add(1)));
                let flat = (p.count - actual).abs();
                let model = (p.count + f64::from(p.chosen) * h - actual).abs();
                self.left_errors[0] += w * (finite_or(flat, 0.0) - self.left_errors[0]);
                self.left_errors[1] += w * (finite_or(model, 0.0) - self.left_errors[1]);
                self.left_resolved = self.left_resolved.saturating_add(1);
            }
            self.resolved = self.resolved.saturating_add(1);
            self.pending.remove(0);
        }

        // The exponentially weighted rate: the mean rate since login, forgetting slowly.
        let fade = (-(t - t_prev) / EW_MEMORY_S).exp();
        self.ew = [
            self.ew[0] * fade + (c - c_prev).max(0.0),
            self.ew[1] * fade + (t - t_prev),
        ];

        // Idle gaps: the decaying longest stretch the count stood still and then moved.
        let decay = (-(t - t_prev) / GAP_MEMORY_S).exp();
        self.gap_max *= decay;
        if c > c_prev {
            let gap = t - self.last_change;
            self.gap_max = self.gap_max.max(gap);
            if gap > LEFT_MIN_S {
                self.active_since = t;
            }
            self.last_change = t;
        }

        // Checkpoints, and the median past increment when one is added.
        // The newest checkpoint (as `ordered()` sees it): the last one pushed until the ring
        // is full, then the one just before the next slot.
        let newest = if self.history.len() < HISTORY {
            self.history.last()
        } else {
            self.history
                .get((self.history_next as usize + HISTORY - 1) % HISTORY)
        }
        .map_or(f64::NEG_INFINITY, |p| p[0]);
        if t - newest >= HISTORY_SPACING_S {
            if self.history.len() < HISTORY {
                self.history.push([t, c]);
            } else if (self.history_next as usize) < self.history.len() {
                // The slot of the oldest checkpoint.
                self.forget_oldest_increment(h);
                self.history[self.history_next as usize] = [t, c];
            }
            self.history_next = ((self.history_next as usize + 1) % HISTORY) as u32;
            // Negative: not known yet (the state holds no NaN, so it compares and serialises).
            self.median_rate = self.median_increment_rate(t, h).unwrap_or(-1.0);
        }

        // The mean rate since login (since the first report when the session's age is
        // unknown), forgetting over [`EW_MEMORY_S`], shrunk towards the population's rate by
        // the prior's pseudo-time.
        let mean = if self.ew[1] + prior_s > 0.0 {
            ((self.ew[0] + prior_rate * prior_s) / (self.ew[1] + prior_s)).max(0.0)
        } else {
            0.0
        };
        let recent = if t >= RECENT_S {
            self.count_at(t - RECENT_S)
                .map_or(mean, |old| ((c - old) / RECENT_S).max(0.0))
        } else {
            mean
        };
        let rates = [
            0.0,
            recent,
            mean,
            finite_or(trend_rate, 0.0).max(0.0),
            if self.median_rate >= 0.0 {
                self.median_rate
            } else {
                mean
            },
            DAMPING * mean,
        ];
        // "Left": idle for longer than the session has recently paused, and than a user
        // active at the mean rate would stay idle with 1 % probability. The regime stays in
        // use unless its own record says the user came back more often than not.
        let idle = t - self.last_change;
        let quiet = if mean > 0.0 {
            LEFT_SILENCE_LN / mean
        } else {
            f64::INFINITY
        };
        let left = idle > LEFT_MIN_S.max(LEFT_GAP_MULTIPLE * self.gap_max).max(quiet)
            && self.last_change - self.active_since >= LEFT_ACTIVE_S
            && (self.left_resolved < MIN_RESOLVED
                || self.left_errors[0] <= LEFT_KEEP * self.left_errors[1]);
        let model = if self.resolved < MIN_RESOLVED {
            DEFAULT_MODEL
        } else {
            // Another model replaces the mean rate only when its gain is significant: the
            // errors are noisy and overlapping, and a wrong switch costs more than a missed one.
            let n = f64::from(self.resolved).min(2.0 / ERROR_WEIGHT - 1.0) / OVERLAP;
            let t_stat = |g: [f64; 2]| {
                let var = (g[1] - g[0] * g[0]).max(1e-12);
                g[0] / (var / n.max(1.0)).sqrt()
            };
            (0..MODELS)
                .filter(|&m| m != DEFAULT_MODEL && t_stat(self.gains[m]) > SWITCH_T)
                .max_by(|&a, &b| self.gains[a][0].total_cmp(&self.gains[b][0]))
                .unwrap_or(DEFAULT_MODEL)
        };

        self.last_rates = rates.map(|r| r as f32);
        if self.pending.last().is_none_or(|p| t - p.t >= h / 12.0) {
            if self.pending.len() >= PENDING {
                self.pending.remove(0);
            }
            self.pending.push(Pending {
                t,
                count: c,
                rates: rates.map(|r| r as f32),
                chosen: rates[model] as f32,
                left,
            });
        }
        self.prev = [t, c];
        EnsembleForecast {
            rate: if left { 0.0 } else { rates[model] },
            model,
            left,
            error: (self.resolved >= MIN_RESOLVED).then_some(self.errors[model]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_user_is_forecast_at_its_rate() {
        let mut e = Ensemble::default();
        let mut f = None;
        for i in 0..200u64 {
            f = Some(e.observe(1_000 * i as i64, 3 * i, 1_000 * i, 3.0, 45.0, None));
        }
        let f = f.unwrap_or_else(|| panic!("no forecast"));
        assert!((f.rate - 3.0).abs() < 1e-9, "{f:?}");
        assert!(!f.left);
        assert!(f.error.is_some_and(|e| e < 1e-6), "{f:?}");
    }

    #[test]
    fn a_young_session_borrows_the_population_rate() {
        let mut pop = RatePopulation::default();
        assert_eq!(pop.prior(), None);
        for i in 0..1_000 {
            // Sessions of 100 s at 1 and 3 ops/s; young ones and a flood do not count.
            pop.record(if i % 2 == 0 { 100.0 } else { 300.0 }, 100.0);
            pop.record(5.0, 1.0);
        }
        let (rate, seconds) = pop.prior().unwrap_or_else(|| panic!("no prior"));
        assert!((rate - 2.0).abs() < 0.05, "{rate}");
        // Spread of the true rates: 1 (variance) − 0.02 (Poisson noise at 100 s).
        assert!((seconds - 2.0 / 0.98).abs() < 0.2, "{seconds}");

        // A first report half a second after login, no operation yet: the naive mean rate
        // says 0, the prior says about the population's rate.
        let mut e = Ensemble::default();
        let f = e.observe(0, 0, 500, 0.0, 45.0, Some((rate, seconds)));
        assert!(f.rate > 1.0 && f.rate < 2.0, "{f:?}");
        // A long-lived session's own rate wins.
        let mut f = f;
        for i in 1..300u64 {
            f = e.observe(
                1_000 * i as i64,
                4 * i,
                500 + 1_000 * i,
                4.0,
                45.0,
                Some((rate, seconds)),
            );
        }
        assert!((f.rate - 4.0).abs() < 0.1, "{f:?}");
    }

    /// The median past increment as it was computed before it was kept incrementally: from
    /// scratch over the checkpoints on every new one.
    fn median_from_scratch(e: &Ensemble, now: f64, h: f64) -> f64 {
        let points: Vec<[f64; 2]> = e.ordered().collect();
        let mut incs = Vec::new();
        let mut j = 0;
        for p in &points {
            let target = p[0] + h;
            if target > now {
                break;
            }
            while j + 1 < points.len() && points[j + 1][0] < target {
                j += 1;
            }
            let (a, b) = (points[j], points.get(j + 1).copied().unwrap_or(points[j]));
            let c = if b[0] > a[0] {
                a[1] + (b[1] - a[1]) * ((target - a[0]) / (b[0] - a[0])).clamp(0.0, 1.0)
            } else {
                b[1]
            };
            incs.push(c - p[1]);
        }
        if incs.len() < MIN_INCREMENTS {
            return -1.0;
        }
        let mid = incs.len() / 2;
        let (_, m, _) = incs.select_nth_unstable_by(mid, f64::total_cmp);
        (*m / h).max(0.0)
    }

    /// `count_at` as it was, by a linear scan.
    fn count_at_by_scan(e: &Ensemble, t: f64) -> Option<f64> {
        let mut before: Option<[f64; 2]> = None;
        for p in e.ordered() {
            if p[0] >= t {
                return Some(match before {
                    Some(b) if p[0] > b[0] => b[1] + (p[1] - b[1]) * (t - b[0]) / (p[0] - b[0]),
                    _ => p[1],
                });
            }
            before = Some(p);
        }
        before.map(|b| b[1])
    }

    #[test]
    fn the_kept_median_increment_is_the_one_from_scratch() {
        let mut seed = 7u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for h in [30.0, 45.0, 60.0] {
            let mut e = Ensemble::default();
            let (mut ms, mut count) = (0i64, 0u64);
            // Irregular reports, bursts and pauses: enough to fill and wrap the ring.
            for i in 0..1_500u64 {
                ms += 500 + 1_000 * rnd(12) as i64;
                count += if rnd(5) == 0 { rnd(40) } else { rnd(3) };
                let newest = e.ordered().last();
                e.observe(ms, count, 1_000 * i, 1.0, h, None);
                // Computed when a checkpoint is added.
                let now = match e.ordered().last() {
                    Some(p) if i > 0 && Some(p) != newest => p[0],
                    _ => continue,
                };
                let expected = median_from_scratch(&e, now, h);
                assert_eq!(e.median_rate.to_bits(), expected.to_bits(), "report {i}");
                for back in [-1.0, 0.0, 0.5, RECENT_S, 100.0, 1e4] {
                    let t = now - back;
                    let found = e.count_at(t).map(f64::to_bits);
                    assert_eq!(found, count_at_by_scan(&e, t).map(f64::to_bits), "{i} {t}");
                }
                if i % 400 == 399 {
                    // As if loaded from a store: the cache is rebuilt.
                    let json = serde_json::to_string(&e).unwrap_or_default();
                    e = serde_json::from_str(&json).unwrap_or_default();
                    e.repair();
                }
            }
        }
    }

    #[test]
    fn repair_orders_the_checkpoints() {
        let mut e = Ensemble::default();
        for i in 0..20u64 {
            e.observe(3_000 * i as i64, 2 * i, 3_000 * i, 0.7, 45.0, None);
        }
        e.history.swap(3, 7);
        e.history[10][0] = e.history[9][0];
        e.repair();
        let times: Vec<f64> = e.ordered().map(|p| p[0]).collect();
        // 3, 4, 5 and 6 are no longer after 7, nor 10 after 9.
        assert_eq!(times.len(), 15);
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        assert!(e.count_at(10.0).is_some());
    }

    #[test]
    fn a_user_who_left_is_forecast_flat() {
        let mut e = Ensemble::default();
        let mut f = None;
        for i in 0..200u64 {
            let count = 2 * i.min(100);
            f = Some(e.observe(1_000 * i as i64, count, 1_000 * i, 0.5, 45.0, None));
        }
        let f = f.unwrap_or_else(|| panic!("no forecast"));
        assert!(f.left && f.rate == 0.0, "{f:?}");
    }
}
