//! `ingest` never panics and always answers within its documented ranges, whatever it is fed.

use proptest::prelude::*;
use rolling_session::drift::{
    AnomalyAction, DriftConfig, DriftPredictor, SampleContext, SessionDrift, TelemetrySample,
};

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(-0.0),
        -10.0..10.0f64,
    ]
}

fn any_i64() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), Just(0i64)]
}

#[derive(Debug, Clone)]
struct Step {
    advance_ms: i64,
    client_skew_ms: i64,
    raw_timestamp: Option<i64>,
    count_delta: u64,
    raw_count: Option<u64>,
    entropy: f64,
    echo: Option<i64>,
    age_ms: u64,
    expires_ms: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![-100_000i64..100_000, 0i64..40_000, any_i64()],
        prop_oneof![-5_000i64..5_000, any_i64()],
        proptest::option::weighted(0.1, any_i64()),
        prop_oneof![0u64..100, any::<u64>()],
        proptest::option::weighted(0.1, any::<u64>()),
        any_f64(),
        proptest::option::of(prop_oneof![-1_000i64..60_000, any_i64()]),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                advance_ms,
                client_skew_ms,
                raw_timestamp,
                count_delta,
                raw_count,
                entropy,
                echo,
                age_ms,
                expires_ms,
            )| Step {
                advance_ms,
                client_skew_ms,
                raw_timestamp,
                count_delta,
                raw_count,
                entropy,
                echo,
                age_ms,
                expires_ms,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ingest_never_panics(steps in proptest::collection::vec(step(), 1..80), start in any_i64(), action in 0u8..3) {
        let mut cfg = DriftConfig::default();
        cfg.anomaly_action = match action { 0 => AnomalyAction::Log, 1 => AnomalyAction::RequireRefresh, _ => AnomalyAction::Revoke };
        cfg.forest_enabled = true;
        cfg.forest_min_train = 16;
        cfg.forest_retrain_every = 32;
        cfg.forest_trees = 10;
        let predictor = DriftPredictor::new(cfg);
        let mut state = SessionDrift::new();
        let mut now = start;
        let mut count = 0u64;
        for s in steps {
            now = now.saturating_add(s.advance_ms);
            count = count.saturating_add(s.count_delta);
            let sample = TelemetrySample {
                timestamp: s.raw_timestamp.unwrap_or(now.saturating_sub(s.client_skew_ms)),
                operation_count: s.raw_count.unwrap_or(count),
                client_entropy: s.entropy,
                echo_server_timestamp: s.echo.map(|e| now.saturating_sub(e)),
            };
            let ctx = SampleContext { session_age_ms: s.age_ms, token_expires_in_ms: s.expires_ms, operation: Some("payment") };
            let before = state.clone();
            match predictor.ingest(&mut state, &sample, ctx, now) {
                Ok(a) => {
                    prop_assert!(a.skew_ms.is_finite() && a.drift_ppm.is_finite());
                    prop_assert!((0.0..=1.0).contains(&a.anomaly_score));
                    prop_assert!(a.rtt_ms.is_none_or(f64::is_finite));
                    prop_assert!((30_000..=60_000).contains(&a.horizon_ms));
                    prop_assert!(a.grace_window_ms >= predictor.config().grace_min_ms);
                    prop_assert!(a.grace_window_ms <= predictor.config().grace_max_ms);
                    prop_assert!(a.predicted_operation_count >= sample.operation_count);
                    prop_assert!(state.size_bytes() <= 8 * 1024);
                }
                Err(e) => {
                    prop_assert!(!e.reason().is_empty());
                    prop_assert_eq!(&state, &before);
                }
            }
        }
    }

    #[test]
    fn telemetry_json_never_panics(body in ".{0,200}") {
        let _ = serde_json::from_str::<TelemetrySample>(&body);
    }
}
