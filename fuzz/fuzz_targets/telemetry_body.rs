//! Any bytes as a `POST /session/telemetry` body: decoded or refused with a
//! reason, then fed to the predictor (twice, out of order), never a panic
//! and never a non-finite advice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolling_session::drift::{
    DriftConfig, DriftPredictor, SampleContext, SessionDrift, TelemetryReport,
};

fuzz_target!(|data: &[u8]| {
    let Ok(report) = TelemetryReport::from_json(data) else {
        return;
    };
    let predictor = DriftPredictor::new(DriftConfig::default());
    let mut state = SessionDrift::new();
    let ctx = SampleContext {
        session_age_ms: 60_000,
        token_expires_in_ms: 600_000,
        operation: report.operation.as_deref(),
    };
    for now in [1_700_000_000_000_i64, 1_700_000_010_000, 1_699_999_990_000] {
        if let Ok(advice) = predictor.ingest(&mut state, &report.sample, ctx, now) {
            assert!(advice.skew_ms.is_finite() && advice.drift_ppm.is_finite());
            assert!((0.0..=1.0).contains(&advice.anomaly_score));
        }
    }
});
