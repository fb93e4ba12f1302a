//! The predictor's building blocks against reference implementations nobody here wrote.
//!
//! `tests/fixtures/*.json` are written by `scripts/reference/generate` (scipy's HiGHS,
//! statsmodels, scikit-learn, pinned) and checked in; these tests need no Python.

use std::path::Path;

use rolling_session::drift::TrendParams;
use rolling_session::drift::eval::{
    ForestParams, IsolationForest, LocalLinearTrend, LowerEnvelope, roc_auc,
};
use serde::Deserialize;

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/reference/generate", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `|a − b| ≤ tol · max(1, |b|)`.
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[derive(Deserialize)]
struct SkewFixture {
    traces: Vec<SkewTrace>,
}

#[derive(Deserialize)]
struct SkewTrace {
    t: Vec<f64>,
    d: Vec<f64>,
    window: usize,
    alpha: f64,
    beta: f64,
    objective: f64,
}

#[test]
fn skew_envelope_equals_highs_linprog() {
    let fixture: SkewFixture = load("skew_lp.json");
    assert!(fixture.traces.len() >= 100);
    let mut worst = (0.0f64, 0.0f64);
    for (i, trace) in fixture.traces.iter().enumerate() {
        let mut env = LowerEnvelope::new(trace.window);
        for (&t, &d) in trace.t.iter().zip(&trace.d) {
            assert!(env.push(t, d), "trace {i}: rejected point");
        }
        let line = env
            .line()
            .unwrap_or_else(|| panic!("trace {i}: no estimate"));
        let mean = env.mean_t().unwrap_or(f64::NAN);
        let n = env.len() as f64;
        let objective = n * line.at(mean);
        worst.0 = worst.0.max((line.slope - trace.alpha).abs());
        worst.1 = worst
            .1
            .max((line.intercept - trace.beta).abs() / trace.beta.abs().max(1.0));
        assert!(
            close(line.slope, trace.alpha, 1e-9),
            "trace {i}: slope {} vs {}",
            line.slope,
            trace.alpha
        );
        assert!(
            close(line.intercept, trace.beta, 1e-9),
            "trace {i}: intercept {} vs {}",
            line.intercept,
            trace.beta
        );
        assert!(
            close(objective, trace.objective, 1e-9),
            "trace {i}: objective"
        );
    }
    println!(
        "skew vs HiGHS over {} traces: max |Δα| = {:.3e}, max rel |Δβ| = {:.3e}",
        fixture.traces.len(),
        worst.0,
        worst.1
    );
}

/// The predictor's skew estimator keeps a *cumulative* envelope (every point since the last
/// clock step, hull only). On every trace short enough to fit the fixture's window, it must
/// solve the same linear programme as HiGHS.
#[test]
fn cumulative_envelope_equals_highs_linprog() {
    let fixture: SkewFixture = load("skew_lp.json");
    let mut checked = 0;
    for (i, trace) in fixture.traces.iter().enumerate() {
        if trace.t.len() > trace.window {
            continue;
        }
        let mut env = LowerEnvelope::cumulative(trace.window);
        for (&t, &d) in trace.t.iter().zip(&trace.d) {
            assert!(env.push(t, d), "trace {i}: rejected point");
        }
        assert_eq!(env.len(), trace.t.len());
        let line = env
            .line()
            .unwrap_or_else(|| panic!("trace {i}: no estimate"));
        let objective = env.len() as f64 * line.at(env.mean_t().unwrap_or(f64::NAN));
        assert!(close(line.slope, trace.alpha, 1e-9), "trace {i}: slope");
        assert!(
            close(line.intercept, trace.beta, 1e-9),
            "trace {i}: intercept"
        );
        assert!(
            close(objective, trace.objective, 1e-9),
            "trace {i}: objective"
        );
        checked += 1;
    }
    assert!(checked >= 60, "{checked} traces");
}

#[derive(Deserialize)]
struct KalmanFixture {
    cases: Vec<KalmanCase>,
}

#[derive(Deserialize)]
struct KalmanCase {
    params: TrendParams,
    a0: [f64; 2],
    p0: [[f64; 2]; 2],
    y: Vec<f64>,
    filtered_state: Vec<[f64; 2]>,
    filtered_cov: Vec<[[f64; 2]; 2]>,
    predicted_state: Vec<[f64; 2]>,
    predicted_cov: Vec<[[f64; 2]; 2]>,
    forecast_innovations: Vec<f64>,
    forecast_innovation_var: Vec<f64>,
    llf: f64,
    loglikelihood_burn: usize,
    llf_obs: Vec<f64>,
    forecast_1_mean: f64,
    forecast_1_var: f64,
}

fn assert_cov(a: [[f64; 2]; 2], b: [[f64; 2]; 2], what: &str, worst: &mut f64) {
    for r in 0..2 {
        for c in 0..2 {
            *worst = worst.max((a[r][c] - b[r][c]).abs() / b[r][c].abs().max(1.0));
            assert!(close(a[r][c], b[r][c], 1e-9), "{what}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn kalman_equals_statsmodels_unobserved_components() {
    let fixture: KalmanFixture = load("kalman_llt.json");
    let mut worst = 0.0f64;
    for (ci, case) in fixture.cases.iter().enumerate() {
        let p = case.params;
        let mut f = LocalLinearTrend::new(case.a0, case.p0);
        let mut llf = 0.0;
        let mut llf_tol = 0.0;
        for (i, &y) in case.y.iter().enumerate() {
            let at = format!("case {ci}, t={i}");
            for k in 0..2 {
                assert!(
                    close(f.state()[k], case.predicted_state[i][k], 1e-9),
                    "{at}: predicted state"
                );
            }
            assert_cov(f.covariance(), case.predicted_cov[i], &at, &mut worst);
            let inn = f.update(y, &p);
            // An innovation is a difference of two numbers of the size of `y`: compare it at
            // that scale.
            assert!(
                (inn.value - case.forecast_innovations[i]).abs() <= 1e-9 * y.abs().max(1.0),
                "{at}: innovation {} vs {}",
                inn.value,
                case.forecast_innovations[i]
            );
            assert!(
                close(inn.variance, case.forecast_innovation_var[i], 1e-9),
                "{at}: F"
            );
            // Its log-likelihood term inherits that error through v²/F: d(ll)/dv = −v/F.
            let ll = inn.log_likelihood();
            let ll_tol = 1e-9
                * ll.abs()
                    .max(1.0)
                    .max(inn.value.abs() * y.abs() / inn.variance);
            assert!(
                (ll - case.llf_obs[i]).abs() <= ll_tol,
                "{at}: llf_obs {ll} vs {}",
                case.llf_obs[i]
            );
            if i >= case.loglikelihood_burn {
                llf += ll;
                llf_tol += ll_tol;
            }
            for k in 0..2 {
                worst = worst.max(
                    (f.state()[k] - case.filtered_state[i][k]).abs()
                        / case.filtered_state[i][k].abs().max(1.0),
                );
                assert!(
                    close(f.state()[k], case.filtered_state[i][k], 1e-9),
                    "{at}: filtered state {:?} vs {:?}",
                    f.state(),
                    case.filtered_state[i]
                );
            }
            assert_cov(f.covariance(), case.filtered_cov[i], &at, &mut worst);
            if i + 1 == case.y.len() {
                let fc = f.forecast(1.0, &p);
                assert!(
                    close(fc.mean, case.forecast_1_mean, 1e-9),
                    "case {ci}: forecast"
                );
                assert!(
                    close(fc.variance, case.forecast_1_var, 1e-9),
                    "case {ci}: forecast var"
                );
            }
            f.predict(1.0, &p);
        }
        let n = case.y.len();
        assert!(close(f.state()[0], case.predicted_state[n][0], 1e-9));
        assert!(
            (llf - case.llf).abs() <= llf_tol,
            "case {ci}: llf {llf} vs {}",
            case.llf
        );
    }
    println!("kalman vs statsmodels: max relative difference {worst:.3e}");
}

#[derive(Deserialize)]
struct ForestFixture {
    dims: usize,
    x: Vec<Vec<f32>>,
    anomaly: Vec<bool>,
    sklearn_auc_mean: f64,
    n_estimators: usize,
    max_samples: usize,
}

#[test]
fn forest_auc_matches_scikit_learn() {
    let fixture: ForestFixture = load("forest_auc.json");
    let flat: Vec<f32> = fixture.x.iter().flatten().copied().collect();
    let mut aucs = Vec::new();
    for seed in 0..20u64 {
        let params = ForestParams {
            trees: fixture.n_estimators,
            subsample: fixture.max_samples,
            seed,
        };
        let forest = IsolationForest::fit(&flat, fixture.dims, &params)
            .unwrap_or_else(|| panic!("fit failed"));
        let scores: Vec<f64> = fixture.x.iter().map(|row| forest.score(row)).collect();
        aucs.push(roc_auc(&scores, &fixture.anomaly).unwrap_or(f64::NAN));
    }
    let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
    println!(
        "isolation forest AUC over 20 seeds: ours {mean:.4}, scikit-learn {:.4}",
        fixture.sklearn_auc_mean
    );
    assert!(
        (mean - fixture.sklearn_auc_mean).abs() <= 0.02,
        "ours {mean} vs scikit-learn {}",
        fixture.sklearn_auc_mean
    );
}
