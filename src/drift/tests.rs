//! Behaviour of [`DriftPredictor::ingest`].

use super::*;

const T0: i64 = 1_700_000_000_000;

fn sample(timestamp: i64, count: u64) -> TelemetrySample {
    TelemetrySample {
        timestamp,
        operation_count: count,
        client_entropy: 0.5,
        echo_server_timestamp: None,
    }
}

fn ctx(age_ms: u64) -> SampleContext<'static> {
    SampleContext {
        session_age_ms: age_ms,
        token_expires_in_ms: 600_000,
        operation: None,
    }
}

/// Feeds `n` regular reports (10 s apart, 2 ops/s, client 300 ms behind); returns the time
/// of the last one.
fn warm_up(p: &DriftPredictor, s: &mut SessionDrift, n: u64) -> i64 {
    let mut now = T0;
    for i in 0..n {
        now = T0 + 10_000 * i as i64;
        let jitter = i * 7 % 5;
        p.ingest(s, &sample(now - 300, 20 * i + jitter), ctx(10_000 * i), now)
            .unwrap_or_else(|e| panic!("report {i}: {e}"));
    }
    now
}

#[test]
fn predictor_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DriftPredictor>();
    assert_send_sync::<SessionDrift>();
}

#[test]
fn rejections_have_reasons_and_leave_state_alone() {
    let p = DriftPredictor::new(DriftConfig::default());
    let mut s = SessionDrift::new();
    let now = warm_up(&p, &mut s, 5);
    let before = s.clone();
    let later = now + 10_000;
    let cases = [
        (
            TelemetrySample {
                client_entropy: f64::NAN,
                ..sample(later, 100)
            },
            later,
            "non_finite",
        ),
        (sample(later, 1), later, "counter_decreased"),
        (
            sample(later - 2 * 86_400_000, 100),
            later,
            "timestamp_out_of_range",
        ),
        (sample(i64::MIN, 100), later, "timestamp_out_of_range"),
        (sample(i64::MAX, 100), later, "timestamp_out_of_range"),
        (
            TelemetrySample {
                echo_server_timestamp: Some(later + 60_000),
                ..sample(later, 100)
            },
            later,
            "echo_out_of_range",
        ),
        (sample(now + 100, 100), now + 100, "rate_limited"),
    ];
    for (bad, at, reason) in cases {
        let err = p
            .ingest(&mut s, &bad, ctx(0), at)
            .err()
            .unwrap_or_else(|| panic!("{reason} accepted"));
        assert_eq!(err.reason(), reason, "{err}");
        assert_eq!(s, before, "{reason} changed the state");
    }
    let limited = p
        .ingest(&mut s, &sample(now + 100, 100), ctx(0), now + 100)
        .err();
    assert_eq!(
        limited.as_ref().and_then(TelemetryError::retry_after_ms),
        Some(2_400)
    );
    assert!(limited.is_some_and(|e| e.is_rate_limited()));
    assert_eq!(
        TelemetryError::Malformed("x".into()).reason(),
        "malformed_telemetry"
    );
}

#[test]
fn regular_session_is_calm() {
    let p = DriftPredictor::new(DriftConfig::default());
    let mut s = SessionDrift::new();
    let mut now = T0;
    let mut last = None;
    for i in 0..60u64 {
        now = T0 + 10_000 * i as i64;
        last = p
            .ingest(
                &mut s,
                &sample(now - 300, 20 * i + (i * 7 % 5)),
                ctx(10_000 * i),
                now,
            )
            .ok();
        if let Some(a) = &last {
            assert!(a.anomaly.is_none(), "report {i}: {a:?}");
        }
    }
    let a = last.unwrap_or_else(|| panic!("no advice"));
    assert_eq!(a.server_timestamp, now);
    assert!((a.skew_ms - 300.0).abs() < 5.0, "{a:?}");
    assert!(a.drift_ppm.abs() < 100.0, "{a:?}");
    assert!(!a.refresh, "{a:?}");
    // 2 ops/s over 45 s on top of the last count.
    let expected = 20.0 * 59.0 + 90.0;
    assert!(
        (a.predicted_operation_count as f64 - expected).abs() < 10.0,
        "{a:?}"
    );
    assert_eq!(a.horizon_ms, 45_000);
    assert_eq!(a.rtt_ms, None);
    assert_eq!(a.grace_window_ms, 10_000);
}

#[test]
fn counter_inflation_is_flagged_within_two_reports() {
    let cfg = DriftConfig {
        anomaly_action: AnomalyAction::RequireRefresh,
        ..DriftConfig::default()
    };
    let p = DriftPredictor::new(cfg);
    let mut s = SessionDrift::new();
    let now = warm_up(&p, &mut s, 30);
    // The count jumps by 2 000 instead of 20.
    let mut flagged_at = None;
    for j in 1..=2u64 {
        let t = now + 10_000 * j as i64;
        let a = p
            .ingest(
                &mut s,
                &sample(t - 300, 20 * 29 + 2_000 * j),
                ctx(300_000 + 10_000 * j),
                t,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        if a.anomaly.is_some() {
            assert!(a.refresh && a.refresh_in_ms == 0, "{a:?}");
            assert!(a.anomaly_score >= 0.7);
            flagged_at = Some(j);
            break;
        }
    }
    assert!(flagged_at.is_some(), "inflation not flagged");
    assert_eq!(s.anomalies(), 1);
}

#[test]
fn clock_step_is_reported_and_refreshes() {
    let p = DriftPredictor::new(DriftConfig::default());
    let mut s = SessionDrift::new();
    let now = warm_up(&p, &mut s, 10);
    let t = now + 10_000;
    let a = p
        .ingest(&mut s, &sample(t + 3_600_000, 200), ctx(100_000), t)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(a.clock_step && a.refresh && a.refresh_in_ms == 0, "{a:?}");
    assert_eq!(s.clock_steps(), 1);
    // The estimate restarts on the new offset.
    let t2 = t + 10_000;
    let a = p
        .ingest(&mut s, &sample(t2 + 3_600_000, 220), ctx(110_000), t2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!a.clock_step);
    assert!((a.skew_ms + 3_600_000.0).abs() < 1.0, "{a:?}");
}

#[test]
fn server_clock_stepping_back_is_accepted_as_a_step() {
    let p = DriftPredictor::new(DriftConfig::default());
    let mut s = SessionDrift::new();
    let now = warm_up(&p, &mut s, 5);
    let a = p
        .ingest(
            &mut s,
            &sample(now + 10_000, 100),
            ctx(60_000),
            now - 60_000,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(a.clock_step);
}

#[test]
fn grace_window_follows_round_trip() {
    let cfg = DriftConfig {
        grace_min_ms: 500,
        grace_max_ms: 5_000,
        grace_rtt_multiplier: 4.0,
        ..DriftConfig::default()
    };
    let p = DriftPredictor::new(cfg);
    let mut s = SessionDrift::new();
    let mut prev_server = None;
    let mut advice = None;
    for i in 0..5u64 {
        let now = T0 + 10_000 * i as i64;
        // The client echoes the last server timestamp; 300 ms after it, the next report.
        let echo: Option<i64> = prev_server;
        let now = echo.map_or(now, |e| e + 300);
        let smp = TelemetrySample {
            echo_server_timestamp: echo,
            ..sample(now, i)
        };
        let a = p
            .ingest(&mut s, &smp, ctx(0), now)
            .unwrap_or_else(|e| panic!("{e}"));
        prev_server = Some(a.server_timestamp + 2_700); // a later response seen by the client
        advice = Some(a);
    }
    let a = advice.unwrap_or_else(|| panic!("no advice"));
    assert_eq!(a.rtt_ms, Some(300.0));
    assert_eq!(a.grace_window_ms, 1_200);
}

#[test]
fn rate_change_triggers_refresh_sooner_for_critical_operations() {
    let mut cfg = DriftConfig::default();
    cfg.criticality.insert("payment".into(), 0.3);
    let p = DriftPredictor::new(cfg);
    let mut s = SessionDrift::new();
    let now = warm_up(&p, &mut s, 40);
    // The rate goes from 2 to 3 ops/s: a real change, not an attack-sized jump.
    let mut s_plain = s.clone();
    let mut s_crit = s.clone();
    let mut first_plain = None;
    let mut first_crit = None;
    for j in 1..=12u64 {
        let t = now + 10_000 * j as i64;
        let smp = sample(t - 300, 20 * 39 + 30 * j);
        let age = 400_000 + 10_000 * j;
        let a = p
            .ingest(&mut s_plain, &smp, ctx(age), t)
            .unwrap_or_else(|e| panic!("{e}"));
        let c = p
            .ingest(
                &mut s_crit,
                &smp,
                SampleContext {
                    operation: Some("payment"),
                    ..ctx(age)
                },
                t,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        if a.refresh && first_plain.is_none() {
            first_plain = Some(j);
        }
        if c.refresh && first_crit.is_none() {
            first_crit = Some(j);
        }
        assert!(
            c.refresh || !a.refresh,
            "critical must refresh whenever plain does"
        );
    }
    let crit = first_crit.unwrap_or(u64::MAX);
    assert!(crit <= 12, "critical operation never refreshed");
    assert!(crit <= first_plain.unwrap_or(u64::MAX));
    s = s_crit;
    assert!(s.samples() > 40);
}

#[test]
fn state_stays_small_and_round_trips_through_serde() {
    let p = DriftPredictor::new(DriftConfig::default());
    let mut s = SessionDrift::new();
    warm_up(&p, &mut s, 1_000);
    assert!(s.size_bytes() <= 8 * 1024, "{} bytes", s.size_bytes());
    let json = serde_json::to_string(&s).unwrap_or_default();
    let back: SessionDrift = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, s);
}

#[test]
fn forest_trains_from_the_reservoir() {
    let cfg = DriftConfig {
        forest_enabled: true,
        forest_min_train: 64,
        forest_retrain_every: 200,
        ..DriftConfig::default()
    };
    let p = DriftPredictor::new(cfg);
    assert_eq!(p.forest_generation(), 0);
    let mut sessions: Vec<SessionDrift> = (0..10).map(|_| SessionDrift::new()).collect();
    for i in 0..30u64 {
        for (k, s) in sessions.iter_mut().enumerate() {
            let now = T0 + 10_000 * i as i64 + k as i64;
            let a = p
                .ingest(s, &sample(now - 100, 5 * i), ctx(10_000 * i), now)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!((0.0..=1.0).contains(&a.anomaly_score));
        }
    }
    assert_eq!(p.forest_generation(), 2);
    assert!(p.forest_bytes() > 0);
    assert!(p.retrain_now());
    assert_eq!(p.forest_generation(), 3);
}

#[test]
fn config_deserialises_with_defaults_and_clamps() {
    let cfg: DriftConfig = serde_json::from_str(
        r#"{"horizon_ms": 5000, "anomaly_action": "require_refresh", "criticality": {"payment": 0.5}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.anomaly_action, AnomalyAction::RequireRefresh);
    assert_eq!(cfg.min_sample_interval_ms, 2_500);
    let p = DriftPredictor::new(cfg);
    assert_eq!(p.config().horizon_ms, 30_000);
    assert_eq!(p.config().criticality_factor(Some("payment")), 0.5);
    assert_eq!(p.config().criticality_factor(Some("read")), 1.0);
    let bad = DriftConfig {
        confidence: f64::NAN,
        grace_min_ms: 9_000,
        grace_max_ms: 1_000,
        ..DriftConfig::default()
    }
    .sanitized();
    assert_eq!(bad.confidence, 0.99);
    assert_eq!(bad.grace_max_ms, 9_000);
    let s: TelemetrySample =
        serde_json::from_str(r#"{"timestamp": 1, "operation_count": 2, "client_entropy": 0.5}"#)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.echo_server_timestamp, None);
    assert!(
        serde_json::from_str::<TelemetrySample>(
            r#"{"timestamp": 1, "operation_count": -2, "client_entropy": 0.5}"#
        )
        .is_err()
    );
}

#[test]
fn advice_serialises_exactly_the_response_fields() {
    let p = DriftPredictor::new(DriftConfig::default());
    let mut s = SessionDrift::new();
    let a = p
        .ingest(&mut s, &sample(T0, 0), ctx(0), T0)
        .unwrap_or_else(|e| panic!("{e}"));
    let v = serde_json::to_value(&a).unwrap_or_default();
    let mut keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "anomaly_score",
            "drift_ppm",
            "horizon_ms",
            "predicted_operation_count",
            "refresh",
            "refresh_in_ms",
            "rtt_ms",
            "server_timestamp",
            "skew_ms"
        ]
    );
}

#[test]
fn corrupted_state_is_repaired_not_panicked_on() {
    let p = DriftPredictor::new(DriftConfig::default());
    let mut s = SessionDrift::new();
    let now = warm_up(&p, &mut s, 20);
    let mut json = serde_json::to_value(&s).unwrap_or_default();
    json["trend"]["x"] = serde_json::json!([1e308, -1e308]);
    json["baseline_rate"] = serde_json::json!(1e308);
    json["clock"]["envelope"]["hull"] = serde_json::json!([[5.0, 1.0], [1.0, 2.0], [3.0, 9.0]]);
    let mut broken: SessionDrift = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
    let t = now + 10_000;
    let a = p.ingest(&mut broken, &sample(t - 300, 1_000), ctx(0), t);
    assert!(a.is_ok_and(|a| a.skew_ms.is_finite() && a.anomaly_score.is_finite()));
}

#[test]
fn state_is_repaired_once_per_configuration_and_after_loading() {
    let p = DriftPredictor::new(DriftConfig::default());
    let mut s = SessionDrift::new();
    let now = warm_up(&p, &mut s, 20);
    assert_eq!(s.repaired.0, 128, "repaired for the default window");

    // Loaded from a store: not marked, so the next report repairs it.
    let json = serde_json::to_string(&s).unwrap_or_default();
    let mut loaded: SessionDrift = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.repaired.0, 0);
    assert_eq!(loaded, s, "the mark is not state");

    // Another configuration repairs again, to its own window.
    let small = DriftPredictor::new(DriftConfig {
        skew_window: 16,
        ..DriftConfig::default()
    });
    let t = now + 10_000;
    small
        .ingest(&mut loaded, &sample(t - 300, 500), ctx(10_000 * 21), t)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.repaired.0, 16);
}

#[test]
fn config_refuses_unknown_keys() {
    let known: DriftConfig = serde_json::from_str(r#"{"horizon_ms": 40000}"#).unwrap();
    assert_eq!(known.horizon_ms, 40_000);
    assert_eq!(known.skew_window, DriftConfig::default().skew_window);

    let err = serde_json::from_str::<DriftConfig>(r#"{"horizon_msx": 1}"#).unwrap_err();
    assert!(err.to_string().contains("horizon_msx"), "{err}");
    let err =
        serde_json::from_str::<DriftConfig>(r#"{"trend": {"level_varianc": 1.0}}"#).unwrap_err();
    assert!(err.to_string().contains("level_varianc"), "{err}");
}
