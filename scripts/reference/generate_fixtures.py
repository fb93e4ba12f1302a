"""Golden fixtures for the drift predictor, computed by independent reference implementations.

(a) skew_lp.json     Moon's lower-envelope linear programme solved by scipy.optimize.linprog (HiGHS)
(b) kalman_llt.json  statsmodels UnobservedComponents('local linear trend') with fixed variances
(c) forest_auc.json  scikit-learn IsolationForest AUC over 20 seeds on labelled data

Everything is seeded; running twice writes identical files.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import scipy
import sklearn
import statsmodels
import statsmodels.api as sm
from scipy.optimize import linprog
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

WINDOW = 128


def versions():
    return {
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "statsmodels": statsmodels.__version__,
    }


# ---------------------------------------------------------------------------------------------
# (a) Skew: maximise alpha*mean(t) + beta  s.t.  alpha*t_i + beta <= d_i  (Moon et al. 1999)
# ---------------------------------------------------------------------------------------------
def lower_hull(points):
    hull = []
    for p in points:
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            if (a[0] - o[0]) * (p[1] - o[1]) - (a[1] - o[1]) * (p[0] - o[0]) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def skew_traces(rng, count):
    traces = []
    while len(traces) < count:
        n = int(rng.integers(10, 201))
        heavy = len(traces) % 3 == 2
        gaps = rng.uniform(5_000.0, 30_000.0, size=n)
        t = rng.uniform(0.0, 1_000.0) + np.cumsum(gaps)
        alpha = rng.uniform(-200e-6, 200e-6)
        beta = rng.uniform(-5_000.0, 5_000.0)
        if heavy:
            noise = 5.0 * (rng.pareto(1.5, size=n) + 1.0)
        else:
            noise = rng.exponential(10.0, size=n)
        d = alpha * t + beta + 20.0 + noise
        tw, dw = t[-WINDOW:], d[-WINDOW:]
        m = len(tw)
        res = linprog(
            c=[-tw.sum(), -float(m)],
            A_ub=np.column_stack([tw, np.ones(m)]),
            b_ub=dw,
            bounds=[(None, None), (None, None)],
            method="highs",
        )
        assert res.status == 0, res.message
        # Skip (rare) degenerate traces whose mean time sits on a hull vertex: the optimum
        # would not be unique.
        hull = lower_hull(list(zip(tw.tolist(), dw.tolist())))
        mean_t = float(tw.mean())
        if min(abs(h[0] - mean_t) for h in hull) < 1.0:
            continue
        traces.append(
            {
                "t": t.tolist(),
                "d": d.tolist(),
                "window": WINDOW,
                "heavy_tailed": heavy,
                "true_alpha": alpha,
                "alpha": float(res.x[0]),
                "beta": float(res.x[1]),
                "objective": float(-res.fun),
            }
        )
    return traces


# ---------------------------------------------------------------------------------------------
# (b) Kalman local linear trend on a regular grid
# ---------------------------------------------------------------------------------------------
def numpy_llt(y, params, a0, p0):
    """Plain reimplementation, only to check that statsmodels used our initialisation."""
    s_irr, s_lvl, s_trd = params
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    Q = np.diag([s_lvl, s_trd])
    a, P = np.array(a0, float), np.array(p0, float)
    out = []
    for obs in y:
        f = P[0, 0] + s_irr
        v = obs - a[0]
        K = P[:, 0] / f
        a = a + K * v
        P = P - np.outer(K, P[0, :])
        out.append(a.copy())
        a = F @ a
        P = F @ P @ F.T + Q
    return np.array(out)


def kalman_cases(rng):
    cases = []
    specs = [
        # (sigma2 irregular, level, trend), length, rate, P0
        ((1.0, 0.5, 0.01), 150, 2.0, (100.0, 10.0)),
        ((4.0, 2.0, 0.1), 150, 10.0, (1_000.0, 100.0)),
        ((0.25, 0.1, 0.001), 150, 0.5, (10.0, 1.0)),
        ((1.0, 5.0, 0.5), 150, 30.0, (1_000.0, 1_000.0)),
        ((2.0, 0.5, 0.05), 150, 5.0, (100.0, 100.0)),
    ]
    for params, n, rate, p0diag in specs:
        rates = rate + np.cumsum(rng.normal(0.0, math.sqrt(params[2]), size=n))
        level = np.cumsum(np.maximum(rates, 0.0)) + np.cumsum(rng.normal(0.0, math.sqrt(params[1]), size=n))
        y = np.maximum.accumulate(np.round(level + rng.normal(0.0, math.sqrt(params[0]), size=n)))
        a0 = [float(y[0]), 0.0]
        p0 = np.diag(p0diag)
        mod = sm.tsa.UnobservedComponents(y, level="local linear trend")
        mod.ssm.initialize_known(np.array(a0), p0)
        # No steady-state shortcut: statsmodels otherwise freezes P once it stops changing by
        # more than 1e-19, which is an approximation of the filter, not the filter.
        mod.ssm.tolerance = 0.0
        res = mod.filter(np.array(params))
        check = numpy_llt(y, params, a0, p0)
        assert np.allclose(check.T, res.filtered_state, rtol=1e-10, atol=1e-8), "initialisation"
        fc = res.get_forecast(steps=1)
        cases.append(
            {
                "params": {
                    "observation_variance": params[0],
                    "level_variance": params[1],
                    "slope_variance": params[2],
                },
                "a0": a0,
                "p0": p0.tolist(),
                "y": y.tolist(),
                "filtered_state": res.filtered_state.T.tolist(),
                "filtered_cov": [m.tolist() for m in np.moveaxis(res.filtered_state_cov, 2, 0)],
                "predicted_state": res.predicted_state.T.tolist(),
                "predicted_cov": [m.tolist() for m in np.moveaxis(res.predicted_state_cov, 2, 0)],
                "forecast_innovations": res.forecasts_error[0].tolist(),
                "forecast_innovation_var": res.forecasts_error_cov[0, 0].tolist(),
                "llf": float(res.llf),
                # statsmodels leaves the first `loglikelihood_burn` observations out of llf.
                "loglikelihood_burn": int(res.loglikelihood_burn),
                "llf_obs": res.llf_obs.tolist(),
                "forecast_1_mean": float(fc.predicted_mean[0]),
                "forecast_1_var": float(fc.var_pred_mean[0]),
            }
        )
    return cases


# ---------------------------------------------------------------------------------------------
# (c) Isolation Forest AUC
# ---------------------------------------------------------------------------------------------
def forest_case(rng):
    n_normal, n_anom, dims = 1000, 60, 5
    centres = np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [4.0, -2.0, 1.0, 0.0, 3.0]])
    scales = np.array([1.0, 0.5, 2.0, 1.0, 0.8])
    which = rng.integers(0, 2, size=n_normal)
    normal = centres[which] + rng.normal(size=(n_normal, dims)) * scales
    # Anomalies: a wide cloud that overlaps the normal data, and "inflation" points with a
    # large first feature.
    wide = rng.normal(size=(n_anom // 2, dims)) * scales * 3.5 + centres.mean(axis=0)
    inflation = centres[rng.integers(0, 2, size=n_anom // 2)] + rng.normal(size=(n_anom // 2, dims)) * scales
    inflation[:, 0] += rng.uniform(3.0, 8.0, size=n_anom // 2)
    X = np.vstack([normal, wide, inflation]).astype(np.float32)
    y = np.concatenate([np.zeros(n_normal, bool), np.ones(n_anom, bool)])
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    aucs = []
    for seed in range(20):
        f = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(X)
        aucs.append(float(roc_auc_score(y, -f.score_samples(X))))
    return {
        "dims": dims,
        "x": [[float(v) for v in row] for row in X],
        "anomaly": y.tolist(),
        "sklearn_auc": aucs,
        "sklearn_auc_mean": float(np.mean(aucs)),
        "n_estimators": 100,
        "max_samples": 256,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240604)
    fixtures = {
        "skew_lp.json": {"versions": versions(), "traces": skew_traces(rng, 120)},
        "kalman_llt.json": {"versions": versions(), "cases": kalman_cases(rng)},
        "forest_auc.json": {"versions": versions(), **forest_case(rng)},
    }
    for name, body in fixtures.items():
        (out / name).write_text(json.dumps(body, separators=(",", ":")) + "\n")
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
