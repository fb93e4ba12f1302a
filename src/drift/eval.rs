//! The predictor's building blocks, for checking them against reference implementations
//! (`tests/golden.rs`) and for the offline evaluation (`tests/drift_eval.rs`,
//! `benches/drift_eval.rs`). Applications need none of it: [`DriftPredictor`] uses these
//! internally. Not needed by applications.
//!
//! ```
//! use rolling_session::drift::eval::{ForestParams, IsolationForest, roc_auc};
//!
//! // Nine points on a line and one far away.
//! let mut data: Vec<f32> = (0..9).flat_map(|i| [i as f32, i as f32]).collect();
//! data.extend([40.0, -40.0]);
//! let forest = IsolationForest::fit(&data, 2, &ForestParams::default()).expect("enough rows");
//! let scores: Vec<f64> = data.chunks(2).map(|row| forest.score(row)).collect();
//! let labels: Vec<bool> = (0..10).map(|i| i == 9).collect();
//! assert!(roc_auc(&scores, &labels).expect("both classes") > 0.5);
//! ```
//!
//! [`DriftPredictor`]: crate::drift::DriftPredictor

use super::SessionDrift;
pub use super::ensemble::{MODEL_NAMES, MODELS};
pub use super::forecast::LocalLinearTrend;
pub use super::forest::{ForestParams, IsolationForest, roc_auc};
pub use super::skew::LowerEnvelope;

/// Each forecast model's last rate estimate (operations per second) for the session, in the
/// order of [`MODEL_NAMES`].
#[must_use]
pub fn model_rates(state: &SessionDrift) -> [f64; MODELS] {
    state.ensemble().last_rates()
}
