//! The drift predictor wired into the session manager: anomaly actions,
//! the grace window sized from measured round trips, and the life of the
//! per-session drift state.

use std::sync::Arc;
use std::time::Duration;

use rolling_session::drift::{AnomalyAction, TelemetrySample};
use rolling_session::{
    Config, ErrorKind, KeyRing, SessionContext, SessionManager, TokenKey, clock::ManualClock,
    events::MemorySink, events::SessionEvent, events::TerminationReason, store::Verdict,
};

fn manager(config: Config) -> (SessionManager, ManualClock, Arc<MemorySink>) {
    let clock = ManualClock::new(1_800_000_000_000);
    let sink = Arc::new(MemorySink::default());
    let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .config(config)
        .clock(clock.clone())
        .events(sink.clone())
        .build()
        .unwrap();
    (manager, clock, sink)
}

fn sample(manager: &SessionManager, operation_count: u64, echo: Option<i64>) -> TelemetrySample {
    TelemetrySample {
        timestamp: manager.now_ms() as i64 - 300,
        operation_count,
        client_entropy: 0.5,
        echo_server_timestamp: echo,
    }
}

/// 30 calm reports, 10 s apart, 2 operations a second.
async fn warm_up(
    manager: &SessionManager,
    clock: &ManualClock,
    session: &rolling_session::SessionInfo,
) -> u64 {
    let mut count = 0;
    for i in 0..30u64 {
        clock.advance(Duration::from_secs(10));
        count = 20 * i + i * 7 % 5;
        let advice = manager
            .ingest_telemetry(session, &sample(manager, count, None), None)
            .await
            .unwrap();
        assert_eq!(advice.anomaly, None, "report {i}: {advice:?}");
    }
    count
}

#[tokio::test]
async fn anomaly_with_revoke_action_ends_the_session() {
    let mut config = Config::default();
    config.drift.anomaly_action = AnomalyAction::Revoke;
    let (manager, clock, sink) = manager(config);
    let login = manager
        .create_session("alice", SessionContext::default())
        .await
        .unwrap();
    let count = warm_up(&manager, &clock, &login.session).await;

    // The operation count jumps by 2 000 per report instead of 20.
    let mut revoked = false;
    for j in 1..=2u64 {
        clock.advance(Duration::from_secs(10));
        let inflated = sample(&manager, count + 2_000 * j, None);
        match manager
            .ingest_telemetry(&login.session, &inflated, None)
            .await
        {
            Ok(advice) => assert_eq!(advice.anomaly, None),
            Err(e) => {
                assert_eq!(e.kind(), &ErrorKind::SessionRevoked);
                revoked = true;
                break;
            }
        }
    }
    assert!(revoked, "inflation was not caught within two reports");
    let events = sink.events();
    assert!(events.iter().any(|e| matches!(e,
        SessionEvent::Anomaly { user_id, action: AnomalyAction::Revoke, score, .. }
            if user_id == "alice" && *score >= 0.7)));
    assert!(events.iter().any(|e| matches!(
        e,
        SessionEvent::Terminated {
            reason: TerminationReason::Anomaly,
            ..
        }
    )));
    assert!(
        manager
            .validate_session(login.token.expose())
            .await
            .is_err()
    );
    assert_eq!(manager.drift_tracked_sessions(), 0);
}

#[tokio::test]
async fn anomaly_with_log_action_flags_the_session_and_keeps_it() {
    let (manager, clock, sink) = manager(Config::default());
    let login = manager
        .create_session("bob", SessionContext::default())
        .await
        .unwrap();
    let count = warm_up(&manager, &clock, &login.session).await;
    let mut flagged = false;
    for j in 1..=2u64 {
        clock.advance(Duration::from_secs(10));
        let advice = manager
            .ingest_telemetry(
                &login.session,
                &sample(&manager, count + 2_000 * j, None),
                None,
            )
            .await
            .unwrap();
        if advice.anomaly == Some(AnomalyAction::Log) {
            flagged = true;
            break;
        }
    }
    assert!(flagged, "inflation was not caught within two reports");
    assert!(sink.events().iter().any(|e| matches!(
        e,
        SessionEvent::Anomaly {
            action: AnomalyAction::Log,
            ..
        }
    )));
    let analytics = manager
        .session_analytics(login.token.expose())
        .await
        .unwrap();
    assert!(analytics.flags.anomaly);
}

/// Measured round trips of 300 ms size the grace window to 4 × 300 ms =
/// 1.2 s, which the operator's floor `token.grace_min` (2 s) raises to 2 s:
/// a retired token presented 1.5 s later is still in flight, 3 s later it
/// is theft, where the configured 10 s would still have let it through.
#[tokio::test]
async fn grace_window_is_sized_from_measured_round_trips_within_the_operator_bounds() {
    let (manager, clock, _) = manager(Config::default());
    let measured = manager
        .create_session("carol", SessionContext::default())
        .await
        .unwrap();
    let unmeasured = manager
        .create_session("dave", SessionContext::default())
        .await
        .unwrap();
    let mut echo = None;
    for i in 0..5u64 {
        let advice = manager
            .ingest_telemetry(&measured.session, &sample(&manager, i, echo), None)
            .await
            .unwrap();
        // The client sees a later response's server timestamp 2.7 s on and
        // sends its next report 300 ms after that.
        echo = Some(advice.server_timestamp + 2_700);
        clock.advance(Duration::from_millis(3_000));
        if i == 4 {
            assert_eq!(advice.rtt_ms, Some(300.0));
            assert_eq!(advice.grace_window_ms, 1_200);
        }
    }

    for (login, theft) in [(&measured, true), (&unmeasured, false)] {
        let first = login.token.clone();
        let next = manager.validate_session(first.expose()).await.unwrap();
        // The holder uses its next token: the first one is retired now.
        manager
            .validate_session(next.next_token.unwrap().expose())
            .await
            .unwrap();
        clock.advance(Duration::from_millis(1_500));
        let in_flight = manager.validate_session(first.expose()).await.unwrap();
        assert_eq!(in_flight.verdict, Verdict::Grace, "never below grace_min");
        clock.advance(Duration::from_millis(1_500));
        let replay = manager.validate_session(first.expose()).await;
        if theft {
            assert_eq!(replay.unwrap_err().kind(), &ErrorKind::TokenReused);
        } else {
            assert_eq!(replay.unwrap().verdict, Verdict::Grace);
        }
    }
}

/// A client cannot raise its window above the operator's ceiling: round
/// trips of a minute size the predictor's window at 4 minutes, and `token.grace_window`
/// (10 s) still bounds it.
#[tokio::test]
async fn slow_round_trips_never_raise_the_window_above_the_ceiling() {
    let mut config = Config::default();
    // The predictor itself would allow up to 5 minutes.
    config.drift.grace_max_ms = 300_000;
    let (manager, clock, _) = manager(config);
    let login = manager
        .create_session("gina", SessionContext::default())
        .await
        .unwrap();
    let mut echo = None;
    let mut sized = 0;
    for i in 0..5u64 {
        let advice = manager
            .ingest_telemetry(&login.session, &sample(&manager, i, echo), None)
            .await
            .unwrap();
        sized = advice.grace_window_ms;
        // The echo comes back a minute after it was sent.
        echo = Some(advice.server_timestamp + 10_000);
        clock.advance(Duration::from_secs(70));
    }
    assert_eq!(sized, 240_000, "4 x the 60 s round trip");
    let first = login.token.clone();
    let next = manager.validate_session(first.expose()).await.unwrap();
    manager
        .validate_session(next.next_token.unwrap().expose())
        .await
        .unwrap();
    clock.advance(Duration::from_millis(10_001));
    let replay = manager.validate_session(first.expose()).await;
    assert_eq!(
        replay.unwrap_err().kind(),
        &ErrorKind::TokenReused,
        "the client's advice ({sized} ms) cannot stretch T past 10 s"
    );
}

#[tokio::test]
async fn drift_state_follows_renewal_and_ends_with_the_session() {
    let mut config = Config::default();
    config.renewal_threshold = config.expiration_time;
    let (manager, clock, _) = manager(config);
    let login = manager
        .create_session("erin", SessionContext::default())
        .await
        .unwrap();
    manager
        .ingest_telemetry(&login.session, &sample(&manager, 50, None), None)
        .await
        .unwrap();
    assert_eq!(manager.drift_tracked_sessions(), 1);

    let renewed = manager.renew_session(login.token.expose()).await.unwrap();
    clock.advance(Duration::from_secs(10));
    // The renewed session carries the client's state: its counter cannot
    // go back below 50.
    let err = manager
        .ingest_telemetry(&renewed.session, &sample(&manager, 10, None), None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "counter_decreased");
    assert_eq!(manager.drift_tracked_sessions(), 1);

    manager
        .terminate_session(renewed.token.expose())
        .await
        .unwrap();
    assert_eq!(manager.drift_tracked_sessions(), 0);

    // States of sessions that stop reporting are swept after an idle timeout.
    let other = manager
        .create_session("frank", SessionContext::default())
        .await
        .unwrap();
    manager
        .ingest_telemetry(&other.session, &sample(&manager, 1, None), None)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(29 * 60));
    manager.sweep_expired().await.unwrap();
    assert_eq!(manager.drift_tracked_sessions(), 1);
    clock.advance(Duration::from_secs(2 * 60));
    manager.sweep_expired().await.unwrap();
    assert_eq!(manager.drift_tracked_sessions(), 0);
}

/// Two nodes behind a round-robin balancer: each sees every other report,
/// and the echoed server timestamps show it; one node alone (sticky routing)
/// counts nothing.
#[tokio::test]
async fn reports_answered_by_another_node_are_counted() {
    let (node_a, clock, _) = manager(Config::default());
    let node_b = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let login = node_a
        .create_session("alice", SessionContext::default())
        .await
        .unwrap();
    let mut echo = None;
    for i in 0..10u64 {
        clock.advance(Duration::from_secs(5));
        let node = if i % 2 == 0 { &node_a } else { &node_b };
        let advice = node
            .ingest_telemetry(&login.session, &sample(node, i, echo), None)
            .await
            .unwrap();
        echo = Some(advice.server_timestamp);
    }
    // Each node's state misses half the reports; from its second report on,
    // each one follows an answer of the other node.
    assert_eq!(node_a.telemetry_answered_elsewhere(), 4);
    assert_eq!(node_b.telemetry_answered_elsewhere(), 4);

    // Sticky: node A alone.
    let (sticky, clock, _) = manager(Config::default());
    let login = sticky
        .create_session("bob", SessionContext::default())
        .await
        .unwrap();
    let mut echo = None;
    for i in 0..10u64 {
        clock.advance(Duration::from_secs(5));
        let advice = sticky
            .ingest_telemetry(&login.session, &sample(&sticky, i, echo), None)
            .await
            .unwrap();
        echo = Some(advice.server_timestamp);
    }
    assert_eq!(sticky.telemetry_answered_elsewhere(), 0);
}
