//! Kalman local-linear-trend filter for the operation count, with irregular sampling.
//!
//! State `x = [level, slope]` (operations, operations per second). Between reports `Δt` seconds
//! apart the state moves by `F = [[1, Δt], [0, 1]]` and gains noise
//! `Q(Δt) = Δt · diag(σ²_level, σ²_slope)`; each report observes the level with variance
//! `σ²_obs`. On a grid with `Δt = 1` this is exactly the "local linear trend" of
//! statsmodels' `UnobservedComponents`, which the golden fixtures check to 1e-9.
//!
//! Scaling `Q` linearly by `Δt` is the first-order form of the continuous-time model (whose
//! exact `Q` has `Δt³/3` and `Δt²/2` terms from slope noise feeding the level); it keeps the
//! filter cheap and, with reports 5–30 s apart, the difference is absorbed by the tuning of
//! `σ²_level`. Multi-step forecasts use the same one-jump form, so they differ from
//! statsmodels' iterated `h`-step forecasts for `h > 1`.

use serde::{Deserialize, Serialize};

/// Noise variances of the local linear trend.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrendParams {
    /// Level noise per second, σ²_level (ops² / s).
    pub level_variance: f64,
    /// Slope noise per second, σ²_slope (ops² / s³).
    pub slope_variance: f64,
    /// Observation noise, σ²_obs (ops²).
    pub observation_variance: f64,
}

impl Default for TrendParams {
    fn default() -> Self {
        Self {
            level_variance: 0.5,
            slope_variance: 0.01,
            observation_variance: 1.0,
        }
    }
}

/// The innovation of one measurement update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Innovation {
    /// Observed minus predicted level.
    pub value: f64,
    /// Its variance `P₀₀ + σ²_obs`.
    pub variance: f64,
}

impl Innovation {
    /// The standardised innovation `value / √variance` (0 when undefined).
    #[must_use]
    pub fn standardized(&self) -> f64 {
        let z = self.value / self.variance.sqrt();
        if z.is_finite() { z } else { 0.0 }
    }

    /// Gaussian log-likelihood contribution of this innovation.
    #[must_use]
    pub fn log_likelihood(&self) -> f64 {
        -0.5 * ((2.0 * std::f64::consts::PI).ln()
            + self.variance.ln()
            + self.value * self.value / self.variance)
    }
}

/// A forecast of the observed level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// Mean of the forecast observation.
    pub mean: f64,
    /// Variance of the forecast observation (state variance plus σ²_obs).
    pub variance: f64,
}

/// The filter state: mean and covariance of `[level, slope]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalLinearTrend {
    x: [f64; 2],
    /// Symmetric covariance stored as `[P₀₀, P₀₁, P₁₁]`.
    p: [f64; 3],
}

impl LocalLinearTrend {
    /// A filter starting from state mean `x0` and covariance `p0`.
    #[must_use]
    pub fn new(x0: [f64; 2], p0: [[f64; 2]; 2]) -> Self {
        Self {
            x: x0,
            p: [p0[0][0], 0.5 * (p0[0][1] + p0[1][0]), p0[1][1]],
        }
    }

    /// State mean `[level, slope]`.
    #[must_use]
    pub fn state(&self) -> [f64; 2] {
        self.x
    }

    /// State covariance.
    #[must_use]
    pub fn covariance(&self) -> [[f64; 2]; 2] {
        [[self.p[0], self.p[1]], [self.p[1], self.p[2]]]
    }

    /// Whether every number in the state is finite and the variances are non-negative.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.x.iter().chain(self.p.iter()).all(|v| v.is_finite())
            && self.p[0] >= 0.0
            && self.p[2] >= 0.0
    }

    /// Time update over `dt` seconds (negative or non-finite `dt` is treated as 0).
    pub fn predict(&mut self, dt: f64, params: &TrendParams) {
        let dt = if dt.is_finite() && dt > 0.0 { dt } else { 0.0 };
        let [p00, p01, p11] = self.p;
        self.x[0] += dt * self.x[1];
        self.p = [
            p00 + 2.0 * dt * p01 + dt * dt * p11 + dt * params.level_variance,
            p01 + dt * p11,
            p11 + dt * params.slope_variance,
        ];
    }

    /// Measurement update with observation `y`.
    pub fn update(&mut self, y: f64, params: &TrendParams) -> Innovation {
        let [p00, p01, p11] = self.p;
        let f = p00 + params.observation_variance;
        let v = y - self.x[0];
        if f.is_nan() || f <= 0.0 || !f.is_finite() {
            return Innovation {
                value: v,
                variance: f,
            };
        }
        let k0 = p00 / f;
        let k1 = p01 / f;
        self.x[0] += k0 * v;
        self.x[1] += k1 * v;
        self.p = [p00 - k0 * p00, p01 - k0 * p01, p11 - k1 * p01];
        Innovation {
            value: v,
            variance: f,
        }
    }

    /// Forecast of the observation `h` seconds ahead, in one jump of the irregular model.
    #[must_use]
    pub fn forecast(&self, h: f64, params: &TrendParams) -> Forecast {
        let mut ahead = self.clone();
        ahead.predict(h, params);
        Forecast {
            mean: ahead.x[0],
            variance: ahead.p[0] + params.observation_variance,
        }
    }

    /// Coefficients `(c0, c1, c2)` of the forecast variance `c0 + c1·h + c2·h²` at `h` seconds.
    #[must_use]
    pub fn variance_polynomial(&self, params: &TrendParams) -> (f64, f64, f64) {
        (
            self.p[0] + params.observation_variance,
            2.0 * self.p[1] + params.level_variance,
            self.p[2],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_a_constant_rate() {
        let params = TrendParams::default();
        let mut f = LocalLinearTrend::new([0.0, 0.0], [[100.0, 0.0], [0.0, 100.0]]);
        for i in 0..200 {
            f.predict(10.0, &params);
            f.update(f64::from(i) * 25.0, &params);
        }
        assert!((f.state()[1] - 2.5).abs() < 1e-3, "{:?}", f.state());
        let fc = f.forecast(45.0, &params);
        assert!((fc.mean - (199.0 * 25.0 + 112.5)).abs() < 0.5);
        assert!(fc.variance > params.observation_variance);
    }

    #[test]
    fn forecast_variance_matches_polynomial() {
        let params = TrendParams::default();
        let mut f = LocalLinearTrend::new([3.0, 1.0], [[4.0, 0.5], [0.5, 2.0]]);
        f.update(4.0, &params);
        let (c0, c1, c2) = f.variance_polynomial(&params);
        for h in [0.0, 1.0, 30.0, 60.0] {
            let v = f.forecast(h, &params).variance;
            assert!((v - (c0 + c1 * h + c2 * h * h)).abs() < 1e-9 * v.max(1.0));
        }
    }

    #[test]
    fn non_finite_dt_is_zero() {
        let params = TrendParams::default();
        let mut f = LocalLinearTrend::new([1.0, 1.0], [[1.0, 0.0], [0.0, 1.0]]);
        let before = f.clone();
        f.predict(f64::NAN, &params);
        f.predict(-5.0, &params);
        assert_eq!(f, before);
    }
}
