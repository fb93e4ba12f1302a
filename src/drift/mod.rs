//! The drift predictor: turns periodic client telemetry into refresh and anomaly advice.
//!
//! Each session posts a [`TelemetrySample`] every 5–30 s. [`DriftPredictor::ingest`] validates
//! it, updates the session's [`SessionDrift`] and answers with a [`DriftAdvice`]:
//!
//! | step | module | model |
//! |---|---|---|
//! | clock skew and drift | `skew` | lower envelope (Moon et al. 1999) of every report since the last clock step, as an incremental convex hull (Zhang et al. 2002); step detection; `skew_ms` an upper bound |
//! | operation-count forecast | `ensemble` | mean rate since login, another model when its own record is significantly better, a regime for "the user left" |
//! | predicted drift | `forecast` | Kalman local linear trend with irregular `Δt` |
//! | dynamic threshold | `threshold` | forecast variance × noise scale × Student-t / normal quantile × age, drift and criticality factors |
//! | per-session anomalies | `evidence` | leaky bucket on the count against the session's own rate and bursts; clock anchor that survives steps; replay check |
//! | cross-session anomalies (opt-in) | `forest` | Isolation Forest (Liu et al. 2008), seeded, retrained from a reservoir |
//!
//! The model, its limits and measured figures are in `docs/drift.md`.
//!
//! Time is always passed in (`now_ms`, server milliseconds since the epoch) so tests and
//! callers control it; the HTTP layer supplies its clock.
//!
//! # Example
//!
//! ```
//! use rolling_session::drift::{DriftConfig, DriftPredictor, SampleContext, SessionDrift, TelemetrySample};
//!
//! let predictor = DriftPredictor::new(DriftConfig::default());
//! let mut state = SessionDrift::new();
//! let mut now = 1_700_000_000_000_i64;
//! for i in 0..10u64 {
//!     now += 10_000;
//!     let sample = TelemetrySample {
//!         timestamp: now - 250, // the client clock is 250 ms behind, delay included
//!         operation_count: 3 * i,
//!         client_entropy: 0.4,
//!         echo_server_timestamp: None,
//!     };
//!     let ctx = SampleContext { session_age_ms: 10_000 * i, token_expires_in_ms: 300_000, operation: None };
//!     let advice = predictor.ingest(&mut state, &sample, ctx, now).expect("valid telemetry");
//!     assert!((advice.skew_ms - 250.0).abs() < 1e-6);
//!     assert!((0.0..=1.0).contains(&advice.anomaly_score));
//! }
//! // Too soon after the previous report: rate limited (the HTTP layer answers 429).
//! let early = TelemetrySample { timestamp: now, operation_count: 30, client_entropy: 0.4, echo_server_timestamp: None };
//! let ctx = SampleContext { session_age_ms: 100_000, token_expires_in_ms: 300_000, operation: None };
//! let err = predictor.ingest(&mut state, &early, ctx, now + 10).unwrap_err();
//! assert_eq!(err.reason(), "rate_limited");
//! ```
//!
//! # Caveats
//!
//! * One-way timestamps measure offset *plus minimum delay*; see `docs/drift.md`.
//! * `rtt_ms` is an upper bound (it includes however long the client held the echoed
//!   timestamp), so the grace window errs on the generous side.
//! * A user who becomes much busier than ever before looks like a second user, and an honest
//!   clock change of more than a second like a jumped clock; the default anomaly action is
//!   therefore [`AnomalyAction::Log`].
//! * The forest (off by default) learns from whatever traffic it sees, attackers included;
//!   its retraining is bounded but not poisoning-proof.
//!
//! # Layout
//!
//! The public surface is the types re-exported here. Behind it, [`DriftPredictor`]
//! (`predictor.rs`) runs one report through the steps above; `config.rs`, `sample.rs`,
//! `advice.rs`, `error.rs` and `report.rs` hold the types it reads and returns; `state.rs` the
//! per-session [`SessionDrift`]; `pool.rs` the shared forest; `registry.rs` the manager's
//! per-lineage states. The algorithm modules are private; [`eval`] exposes the few pieces the
//! reference tests, the evaluation harness and the benches check.

mod advice;
mod config;
// Its `pub` items are there for `eval` (feature `test-util`).
#[cfg_attr(not(feature = "test-util"), allow(dead_code, unreachable_pub))]
mod ensemble;
mod error;
mod evidence;
// Its `pub` items are there for `eval` (feature `test-util`).
#[cfg_attr(not(feature = "test-util"), allow(dead_code, unreachable_pub))]
mod forecast;
// Its `pub` items are there for `eval` (feature `test-util`).
#[cfg_attr(not(feature = "test-util"), allow(dead_code, unreachable_pub))]
mod forest;
mod pool;
mod predictor;
mod registry;
mod report;
mod sample;
// Its `pub` items are there for `eval` (feature `test-util`).
#[cfg_attr(not(feature = "test-util"), allow(dead_code, unreachable_pub))]
mod skew;
// Its `pub` items are there for `eval` (feature `test-util`).
#[cfg_attr(not(feature = "test-util"), allow(dead_code, unreachable_pub))]
mod state;
mod threshold;

/// The internals the evaluation harness and golden tests drive (feature
/// `test-util`).
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod eval;

pub use advice::DriftAdvice;
pub use config::{AnomalyAction, DriftConfig};
pub use error::TelemetryError;
pub use forecast::TrendParams;
pub use predictor::DriftPredictor;
pub(crate) use registry::DriftRegistry;
pub use report::{MAX_REPORT_BYTES, TelemetryReport};
pub use sample::{SampleContext, TelemetrySample};
pub use state::SessionDrift;

#[cfg(test)]
mod tests;

/// `a − b` as `f64`: the same value as `(i128::from(a) - i128::from(b)) as f64` (both
/// conversions round to nearest), without the 128-bit conversion routine when the difference
/// fits in `i64` — always, for the timestamps a report may carry.
pub(crate) fn diff_f64(a: i64, b: i64) -> f64 {
    match a.checked_sub(b) {
        Some(d) => d as f64,
        None => (i128::from(a) - i128::from(b)) as f64,
    }
}
