//! The drift predictor's behaviour on realistic traffic, pinned on fixed seeds (issue 18). The
//! traces come from `tests/drift_sim` (steady, bursty and ramp-then-leave users; attacks); the
//! full tables are printed by `cargo bench --bench drift_eval` and quoted in `docs/drift.md`.
//! Populations here are small so that the file runs in a few seconds in a debug build.

mod drift_sim;

use drift_sim::{Attack, Class, Population, Run};
use rolling_session::drift::{DriftPredictor, SampleContext, SessionDrift, TelemetrySample};

const THRESHOLD: f64 = 0.7;

fn population(cadence_ms: f64) -> (Population, Vec<Run>) {
    let mut pop = Population::new(cadence_ms, 24, 8, 1_805);
    pop.duration_s = 480.0;
    pop.spread_s = 240.0;
    let runs = pop.run();
    (pop, runs)
}

#[test]
fn honest_sessions_never_alarm_and_are_rarely_told_to_refresh() {
    for cadence in [1_000.0, 5_000.0] {
        let (_, runs) = population(cadence);
        for class in Class::ALL {
            let h = drift_sim::honest(&runs, Some(class), THRESHOLD);
            assert_eq!(h.alarmed, 0, "{cadence} ms, {}: {h:?}", class.name());
            assert_eq!(h.rejected, 0, "{cadence} ms, {}: {h:?}", class.name());
            assert_eq!(h.expired_unrefreshed, 0, "{cadence} ms, {}", class.name());
            assert!(
                h.refreshed_unneeded * 10 <= h.sessions,
                "{cadence} ms, {}: {h:?}",
                class.name()
            );
        }
    }
}

#[test]
fn every_attack_is_detected_and_stays_flagged() {
    for cadence in [1_000.0, 5_000.0] {
        let (_, runs) = population(cadence);
        for attack in Attack::ALL {
            let r = drift_sim::attack(&runs, attack, THRESHOLD);
            let name = attack.name();
            assert!(r.auc_reports >= 0.95, "{cadence} ms, {name}: {r:?}");
            // ×10 of a nearly idle user (a few operations a minute) can stay within what its
            // bursts allow: one such session of the eight may go unflagged.
            let missable = usize::from(attack == Attack::Inflate(10.0));
            assert!(
                r.detected + missable >= r.sessions,
                "{cadence} ms, {name}: {r:?}"
            );
            assert_eq!(r.held, r.detected, "{cadence} ms, {name}: {r:?}");
            assert_eq!(r.early_flags, 0, "{cadence} ms, {name}: {r:?}");
        }
    }
}

#[test]
fn skew_is_an_upper_bound_and_drift_matches_the_offline_envelope() {
    for cadence in [1_000.0, 5_000.0] {
        let (_, runs) = population(cadence);
        let h = drift_sim::honest(&runs, None, THRESHOLD);
        assert_eq!(h.skew_violations, 0, "{cadence} ms: {h:?}");
        assert!(h.skew_median_excess_ms < 40.0, "{cadence} ms: {h:?}");
        for row in drift_sim::drift_errors(&runs, &[10, 20, 40, 80]) {
            assert!(
                row.online_median <= 2.0 * row.offline_median + 1e-9,
                "{cadence} ms: {row:?}"
            );
        }
    }
}

#[test]
fn forecast_keeps_up_with_the_best_naive_baseline() {
    for cadence in [1_000.0, 5_000.0] {
        let (pop, runs) = population(cadence);
        for class in Class::ALL {
            let r = drift_sim::forecast_mae(&runs, class, pop.config.horizon_ms);
            // Within 2 % of the best baseline on these small populations (24 sessions per class) (the full evaluation
            // in docs/drift.md gives the exact figures), and far better than the worst.
            assert!(
                r.forecast <= 1.02 * r.best_baseline(),
                "{cadence} ms, {}: {r:?}",
                class.name()
            );
            let worst = r.last.max(r.recent).max(r.mean);
            assert!(
                r.forecast < 0.9 * worst,
                "{cadence} ms, {}: {r:?}",
                class.name()
            );
        }
    }
}

fn feed(p: &DriftPredictor, s: &mut SessionDrift, t_ms: i64, count: u64) -> f64 {
    let sample = TelemetrySample {
        timestamp: t_ms - 250,
        operation_count: count,
        client_entropy: 0.7,
        echo_server_timestamp: None,
    };
    let ctx = SampleContext {
        session_age_ms: (t_ms - drift_sim::T0) as u64,
        token_expires_in_ms: 3_600_000,
        operation: None,
    };
    p.ingest(s, &sample, ctx, t_ms)
        .map(|a| a.anomaly_score)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The example: one honest click burst used to score a robust z ≥ 6.
#[test]
fn honest_click_bursts_do_not_alarm_even_right_after_login() {
    let p = DriftPredictor::new(drift_sim::demo_config());
    let mut s = SessionDrift::new();
    let mut count = 0;
    for i in 1..=300i64 {
        // Idle, then bursts of 30 operations within three reports, every 40 s; two bursts back
        // to back at 120 s; the first one 3 s after login.
        if i % 40 == 3 || i == 123 {
            count += 30;
        }
        let score = feed(&p, &mut s, drift_sim::T0 + 1_000 * i, count);
        assert!(score < THRESHOLD, "report {i}: {score}");
    }
}

#[test]
fn a_jump_after_a_quiet_start_alarms_at_once_and_holds() {
    let p = DriftPredictor::new(drift_sim::demo_config());
    let mut s = SessionDrift::new();
    let mut count = 0;
    for i in 1..=200i64 {
        count += u64::from(i % 2 == 0);
        assert!(feed(&p, &mut s, drift_sim::T0 + 1_000 * i, count) < THRESHOLD);
    }
    count += 500;
    for i in 201..=260i64 {
        count += u64::from(i % 2 == 0);
        let score = feed(&p, &mut s, drift_sim::T0 + 1_000 * i, count);
        assert!(score >= THRESHOLD, "report {i}: {score}");
    }
}
