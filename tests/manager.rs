//! The session lifecycle through the public API, with an injected clock.

use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rolling_session::{
    Config, ErrorKind, KeyRing, MemoryStore, SessionContext, SessionManager, SessionStore,
    TokenKey, clock::ManualClock, config::MismatchAction, config::Rotation,
    config::SessionLimitPolicy, events::MemorySink, events::SessionEvent,
    events::TerminationReason, manager::RequestInfo, store::Verdict, token::Token,
};

const T0: u64 = 1_800_000_000_000;
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

struct Fixture {
    manager: SessionManager,
    clock: ManualClock,
    events: Arc<MemorySink>,
    store: Arc<MemoryStore>,
    /// The manager's key ring, to mint and check tokens as the server would.
    keys: KeyRing,
}

fn fixture(config: Config) -> Fixture {
    let clock = ManualClock::new(T0);
    let events = Arc::new(MemorySink::new());
    let store = Arc::new(MemoryStore::new());
    let keys = KeyRing::new(TokenKey::new(1, [5; 32]));
    let manager = SessionManager::builder(keys.clone())
        .shared_store(store.clone())
        .clock(clock.clone())
        .events(events.clone())
        .config(config)
        .build()
        .unwrap();
    Fixture {
        manager,
        clock,
        events,
        store,
        keys,
    }
}

fn ctx(ua: &str) -> SessionContext {
    SessionContext {
        ip: Some("192.0.2.7".parse().unwrap()),
        user_agent: Some(ua.into()),
        device_id: Some("device-1".into()),
        location: Some("eu-west".into()),
    }
}

async fn step(m: &SessionManager, token: &Token) -> Token {
    let v = m.validate_session(token.expose()).await.unwrap();
    v.next_token.unwrap_or_else(|| token.clone())
}

fn kind(r: Result<impl std::fmt::Debug, rolling_session::Error>) -> ErrorKind {
    r.unwrap_err().kind().clone()
}

#[tokio::test]
async fn six_requests_six_distinct_tokens_same_user() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let mut seen = vec![login.token.clone()];
    let mut token = login.token;
    for _ in 0..6 {
        let v = f.manager.validate_session(token.expose()).await.unwrap();
        assert_eq!(v.session.user_id(), "alice");
        assert_eq!(v.verdict, Verdict::Rotated);
        token = v.next_token.unwrap();
        assert!(!seen.contains(&token));
        seen.push(token.clone());
    }
    assert_eq!(seen.len(), 7);
}

#[tokio::test]
async fn replay_after_grace_revokes_and_kills_the_newest_token_with_both_contexts() {
    let f = fixture(Config::default());
    let login = f
        .manager
        .create_session("alice", ctx("victim"))
        .await
        .unwrap();
    let stolen = login.token.clone();
    let newest = step(&f.manager, &step(&f.manager, &login.token).await).await;

    // Token 0 was retired when token 1 was first used; past its grace it
    // reveals a copy.
    f.clock.advance(Duration::from_secs(11));
    let info = RequestInfo {
        safe_method: false,
        context: Some(ctx("thief")),
    };
    let err = f
        .manager
        .validate(stolen.expose(), &info)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::TokenReused);
    assert_eq!(err.reason(), "token_reused");
    assert_eq!(
        kind(f.manager.validate_session(newest.expose()).await),
        ErrorKind::SessionRevoked
    );
    let theft = f
        .events
        .events()
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::TheftDetected {
                session_context,
                request_context,
                presented_counter,
                live_counter,
                lineage,
                ..
            } => Some((
                session_context,
                request_context,
                presented_counter,
                live_counter,
                lineage,
            )),
            _ => None,
        })
        .expect("theft event");
    assert_eq!(theft.0.user_agent.as_deref(), Some("victim"));
    assert_eq!(theft.1.unwrap().user_agent.as_deref(), Some("thief"));
    assert_eq!((theft.2, theft.3), (0, 2));
    assert_eq!(theft.4, [login.session.id()]);
}

/// A predecessor presented after its successor was used is in flight: it is
/// accepted within the grace but never answered with a token (it must not
/// be upgraded to the live one), and it moves nothing.
#[tokio::test]
async fn predecessor_within_grace_is_accepted_without_a_token() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let next = step(&f.manager, &login.token).await;
    let live = step(&f.manager, &next).await; // the holder moved past token 0
    f.clock.advance(Duration::from_secs(9));
    let v = f
        .manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
    assert_eq!(v.verdict, Verdict::Grace);
    assert_eq!(v.next_token, None, "a grace answer never carries a token");
    assert_eq!(v.session.record().sequence.counter, 2, "nothing moved");
    let v = f.manager.validate_session(live.expose()).await.unwrap();
    assert_eq!(v.verdict, Verdict::Rotated);
}

/// The last presented token again while its successor was never presented:
/// a burst or a retry waits (no token) while the successor may still be on
/// its way (2T), and after that the successor's response is taken as lost
/// and a fresh token is issued.
#[tokio::test]
async fn a_retry_waits_while_the_answer_may_arrive_and_recovers_a_lost_one_after() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let lost = step(&f.manager, &login.token).await; // its response never arrives
    // For 2T (20 s) after its issue, the lost token may still be on its way.
    for _ in 0..6 {
        f.clock.advance(Duration::from_secs(3));
        let v = f
            .manager
            .validate_session(login.token.expose())
            .await
            .unwrap();
        assert_eq!((v.verdict, v.next_token), (Verdict::Pending, None));
    }
    f.clock.advance(Duration::from_secs(3));
    let v = f
        .manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
    assert_eq!(v.verdict, Verdict::Recovered);
    let fresh = v.next_token.expect("a recovery issues a token");
    assert_ne!(fresh, lost);
    assert_eq!(
        f.manager
            .validate_session(fresh.expose())
            .await
            .unwrap()
            .verdict,
        Verdict::Rotated
    );
    // The abandoned token is a copy from now on: theft once its grace ends.
    f.clock.advance(Duration::from_secs(11));
    assert_eq!(
        kind(f.manager.validate_session(lost.expose()).await),
        ErrorKind::TokenReused
    );
    let thefts = f
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e, SessionEvent::TheftDetected { .. }))
        .count();
    assert_eq!(thefts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_applied_in_random_order_are_never_theft() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let first = login.token.clone();
    let mut client = login.token;
    let mut rng = rand::thread_rng();
    for _round in 0..60 {
        let mut tasks = Vec::new();
        for i in 0..16u64 {
            let (m, t) = (f.manager.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(i * 37 % 200)).await;
                m.validate_session(t.expose()).await
            }));
        }
        let mut responses = Vec::new();
        for t in tasks {
            let v = t
                .await
                .unwrap()
                .expect("legitimate concurrency must be accepted");
            responses.push(v.next_token);
        }
        responses.shuffle(&mut rng);
        for next in responses.into_iter().flatten() {
            client = next; // the browser's cookie jar: last response wins
        }
        f.clock.advance(Duration::from_millis(250));
    }
    let theft = f
        .events
        .events()
        .iter()
        .filter(|e| matches!(e, SessionEvent::TheftDetected { .. }))
        .count();
    assert_eq!(theft, 0);
    assert_eq!(
        f.manager
            .session_analytics(client.expose())
            .await
            .unwrap()
            .rotations,
        60
    );

    f.clock.advance(Duration::from_secs(11));
    assert_eq!(
        kind(f.manager.validate_session(first.expose()).await),
        ErrorKind::TokenReused
    );
    assert_eq!(
        kind(f.manager.validate_session(client.expose()).await),
        ErrorKind::SessionRevoked
    );
}

#[tokio::test]
async fn a_minted_counter_ahead_fast_forwards_within_n_and_is_refused_beyond() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let id = login.session.id();
    // Beyond N (64): refused, nothing changes, no revocation.
    let far = f.keys.mint(&id, 65);
    assert_eq!(
        kind(f.manager.validate_session(far.expose()).await),
        ErrorKind::TokenAhead
    );
    // Within N: the store lost the writes that issued it. Accepted without
    // a new token, reported, and the sequence continues from it.
    let ahead = f.keys.mint(&id, 7);
    let v = f.manager.validate_session(ahead.expose()).await.unwrap();
    assert_eq!(v.verdict, Verdict::FastForward);
    assert!(v.next_token.is_none());
    assert!(f.events.events().iter().any(|e| matches!(
        e,
        SessionEvent::StoreRolledBack {
            presented_counter: 7,
            stored_counter: 0,
            ..
        }
    )));
    let next = step(&f.manager, &ahead).await;
    assert_eq!(next, f.keys.mint(&id, 8));
    // The login token is older than 7: retired at the fast-forward.
    f.clock.advance(11 * Duration::from_secs(1));
    assert_eq!(
        kind(f.manager.validate_session(login.token.expose()).await),
        ErrorKind::TokenReused
    );
    // With N = 0 every counter ahead is refused.
    let mut config = Config::default();
    config.token.max_ahead = 0;
    let f = fixture(config);
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let ahead = f.keys.mint(&login.session.id(), 1);
    assert_eq!(
        kind(f.manager.validate_session(ahead.expose()).await),
        ErrorKind::TokenAhead
    );
    f.manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
}

#[tokio::test]
async fn timeouts_idle_lifetime_and_absolute() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    f.clock.advance(31 * MIN);
    assert_eq!(
        kind(f.manager.validate_session(login.token.expose()).await),
        ErrorKind::IdleTimeout
    );
    assert!(f.store.is_empty(), "an idle session is deleted when found");

    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let mut token = login.token;
    for _ in 0..(8 * 3 - 1) {
        f.clock.advance(20 * MIN);
        token = step(&f.manager, &token).await;
    }
    f.clock.advance(20 * MIN);
    assert_eq!(
        kind(f.manager.validate_session(token.expose()).await),
        ErrorKind::SessionExpired { absolute: false }
    );
}

#[tokio::test]
async fn renewal_is_windowed_limited_and_bounded_by_the_absolute_lifetime() {
    let config = Config {
        max_renewals: 2,
        idle_timeout: 10 * HOUR,
        absolute_timeout: 20 * HOUR,
        ..Config::default()
    };
    let f = fixture(config);
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    match kind(f.manager.renew_session(login.token.expose()).await) {
        ErrorKind::RenewalTooEarly { allowed_in } => assert_eq!(allowed_in, 7 * HOUR),
        other => panic!("{other:?}"),
    }
    // Nothing to confirm before a renewal.
    assert_eq!(
        kind(f.manager.confirm_renewal(login.token.expose()).await),
        ErrorKind::NothingToConfirm
    );
    f.clock.advance(7 * HOUR + MIN);
    let old = login.token;
    let renewed = f.manager.renew_session(old.expose()).await.unwrap();
    assert_ne!(renewed.session.id(), login.session.id());
    assert_eq!(
        renewed.session.id().lineage(),
        login.session.id().lineage(),
        "renewal continues the lineage"
    );
    assert_eq!(*renewed.session.record().previous_ids, [login.session.id()]);
    assert_eq!(renewed.session.expires_in(), 8 * HOUR);
    assert!(f.events.events().contains(&SessionEvent::Renewed {
        from: login.session.id(),
        to: renewed.session.id(),
        renewals: 1
    }));
    // A request in flight with the old token is accepted as the renewed
    // session but handed no token: the client's jar keeps the renewed one.
    let v = f.manager.validate_session(old.expose()).await.unwrap();
    assert_eq!((v.verdict, v.next_token), (Verdict::Pending, None));
    assert_eq!(v.session.id(), renewed.session.id());
    assert_eq!(
        kind(
            f.manager
                .set_session_permissions(old.expose(), vec!["admin".into()])
                .await
        ),
        ErrorKind::NotLive
    );
    // Confirming validates the renewed token; it is idempotent.
    for _ in 0..2 {
        let s = f
            .manager
            .confirm_renewal(renewed.token.expose())
            .await
            .unwrap();
        assert_eq!(s.id(), renewed.session.id());
    }
    // The old token is now a retired predecessor: accepted within its grace.
    let v = f.manager.validate_session(old.expose()).await.unwrap();
    assert_eq!((v.verdict, v.next_token), (Verdict::Grace, None));

    // Second renewal: capped by the absolute lifetime (20 h from creation).
    f.clock.advance(7 * HOUR + MIN);
    let second = f
        .manager
        .renew_session(renewed.token.expose())
        .await
        .unwrap();
    assert_eq!(
        second.session.absolute_expires_in(),
        second.session.expires_in()
    );
    assert_eq!(
        second.session.expires_in(),
        20 * HOUR - (14 * HOUR + 2 * MIN)
    );
    assert_eq!(
        *second.session.record().previous_ids,
        [login.session.id(), renewed.session.id()]
    );
    // Renewal limit reached (2), whatever the window says.
    f.clock.advance(5 * HOUR);
    assert_eq!(
        kind(f.manager.renew_session(second.token.expose()).await),
        ErrorKind::RenewalLimit { max: 2 }
    );
}

/// Renewal is a rotation of the lineage: once the renewed token is in use,
/// the old id's token is a predecessor like any other, theft after its
/// grace, and theft revokes every id of the lineage.
#[tokio::test]
async fn a_stale_token_of_the_old_id_after_renewal_revokes_the_whole_lineage() {
    let f = fixture(Config {
        idle_timeout: 8 * HOUR,
        ..Config::default()
    });
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    f.clock.advance(7 * HOUR + MIN);
    let token = step(&f.manager, &login.token).await;
    let renewed = f.manager.renew_session(token.expose()).await.unwrap();
    let live = step(&f.manager, &renewed.token).await;
    f.clock.advance(Duration::from_secs(11));
    assert_eq!(
        kind(f.manager.validate_session(token.expose()).await),
        ErrorKind::TokenReused
    );
    for t in [&live, &renewed.token, &login.token] {
        assert_eq!(
            kind(f.manager.validate_session(t.expose()).await),
            ErrorKind::SessionRevoked
        );
    }
    let lineage = f
        .events
        .events()
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::TheftDetected {
                session_id,
                lineage,
                ..
            } => Some((session_id, lineage)),
            _ => None,
        })
        .expect("theft event");
    assert_eq!(lineage.0, renewed.session.id());
    assert_eq!(lineage.1, [login.session.id(), renewed.session.id()]);
}

/// Renewal needs the live token. A token whose successor is in flight or
/// already in use gets `NotLive` (409 `token_not_live`) and nothing
/// changes; the live token then renews.
#[tokio::test]
async fn renewal_with_a_token_that_is_not_live_is_refused_and_changes_nothing() {
    let mut config = Config::default();
    config.renewal_threshold = config.expiration_time;
    let f = fixture(config);
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let t1 = step(&f.manager, &login.token).await;
    let before = f.store.load(&login.session.id()).await.unwrap().unwrap();
    // Token 0 while token 1's response is in flight (pending).
    let e = f
        .manager
        .renew_session(login.token.expose())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::NotLive);
    assert_eq!(e.reason(), "token_not_live");
    let t2 = step(&f.manager, &t1).await;
    // Token 0 within its grace, token 1 pending: neither renews.
    for t in [&login.token, &t1] {
        assert_eq!(
            kind(f.manager.renew_session(t.expose()).await),
            ErrorKind::NotLive
        );
        assert_eq!(
            kind(
                f.manager
                    .set_session_permissions(t.expose(), vec!["admin".into()])
                    .await
            ),
            ErrorKind::NotLive
        );
    }
    let now = f.store.load(&login.session.id()).await.unwrap().unwrap();
    assert_eq!(now.id, before.id);
    assert!(now.previous_ids.is_empty());
    assert_eq!(now.meta.renewals, 0);
    assert!(now.meta.permissions.is_empty());
    assert_eq!(now.sequence.counter, 2);
    assert!(
        !f.events
            .events()
            .iter()
            .any(|e| matches!(e, SessionEvent::Renewed { .. }))
    );
    let renewed = f.manager.renew_session(t2.expose()).await.unwrap();
    assert_eq!(renewed.session.record().meta.renewals, 1);
}

/// The renewal's response is lost: the client keeps its old token, and
/// once the renewed token can no longer be on its way (2T), its next
/// request recovers into the renewed session.
#[tokio::test]
async fn a_lost_renewal_response_is_recovered_into_the_renewed_session() {
    let mut config = Config::default();
    config.renewal_threshold = config.expiration_time;
    let f = fixture(config);
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    f.clock.advance(MIN);
    let lost = f.manager.renew_session(login.token.expose()).await.unwrap();
    f.clock.advance(Duration::from_secs(21));
    let v = f
        .manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
    assert_eq!(v.verdict, Verdict::Recovered);
    assert_eq!(v.session.id(), lost.session.id());
    assert_eq!(v.session.record().meta.renewals, 1);
    assert_eq!(
        v.session.expires_in(),
        8 * HOUR - Duration::from_secs(21),
        "the renewed lifetime"
    );
    let fresh = v.next_token.unwrap();
    f.manager.validate_session(fresh.expose()).await.unwrap();
    f.manager.confirm_renewal(fresh.expose()).await.unwrap();
}

#[tokio::test]
async fn per_user_limit_refuses_or_evicts_the_oldest() {
    let config = Config {
        max_concurrent_sessions: 2,
        on_session_limit: SessionLimitPolicy::Refuse,
        ..Config::default()
    };
    let f = fixture(config);
    f.manager.create_session("bob", ctx("a")).await.unwrap();
    f.manager.create_session("bob", ctx("b")).await.unwrap();
    assert_eq!(
        kind(f.manager.create_session("bob", ctx("c")).await),
        ErrorKind::SessionLimit { max: 2 }
    );
    f.manager.create_session("carol", ctx("a")).await.unwrap();

    let f = fixture(Config {
        max_concurrent_sessions: 2,
        ..Config::default()
    });
    let first = f.manager.create_session("bob", ctx("a")).await.unwrap();
    f.clock.advance(MIN);
    f.manager.create_session("bob", ctx("b")).await.unwrap();
    f.clock.advance(MIN);
    let third = f.manager.create_session("bob", ctx("c")).await.unwrap();
    let live = f.manager.active_sessions("bob").await.unwrap();
    let agents: Vec<_> = live
        .iter()
        .map(|s| s.context().user_agent.as_deref().unwrap().to_owned())
        .collect();
    assert_eq!(agents, ["b", "c"]);
    assert_eq!(
        kind(f.manager.validate_session(first.token.expose()).await),
        ErrorKind::SessionEvicted
    );
    assert!(f.events.events().contains(&SessionEvent::Terminated {
        session_id: first.session.id(),
        reason: TerminationReason::Evicted
    }));
    // The audit trail says which device lost its session, to which login.
    let evictions: Vec<_> = f
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e, SessionEvent::Evicted { .. }))
        .collect();
    assert_eq!(
        evictions,
        [SessionEvent::Evicted {
            session_id: first.session.id(),
            user_id: "bob".into(),
            device: ctx("a"),
            replaced_by: third.session.id(),
        }]
    );
}

#[tokio::test]
async fn context_mismatch_allows_with_event_or_requires_reauthentication() {
    let f = fixture(Config::default());
    let login = f
        .manager
        .create_session("alice", ctx("firefox"))
        .await
        .unwrap();
    let info = RequestInfo {
        safe_method: true,
        context: Some(ctx("curl")),
    };
    let v = f
        .manager
        .validate(login.token.expose(), &info)
        .await
        .unwrap();
    assert!(v.session.flags().context_mismatch);
    assert!(f.events.events().iter().any(|e| matches!(
        e,
        SessionEvent::ContextMismatch { fields, .. } if fields == &["user_agent"]
    )));

    let mut config = Config::default();
    config.context.on_mismatch = MismatchAction::Reauthenticate;
    let f = fixture(config);
    let login = f
        .manager
        .create_session("alice", ctx("firefox"))
        .await
        .unwrap();
    let err = f
        .manager
        .validate(login.token.expose(), &info)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::ContextMismatch {
            fields: vec!["user_agent"]
        }
    );
    assert!(f.store.is_empty());
    // The IP is not compared by default.
    let f = fixture(Config::default());
    let login = f
        .manager
        .create_session("alice", ctx("firefox"))
        .await
        .unwrap();
    let mut moved = ctx("firefox");
    moved.ip = Some("198.51.100.1".parse().unwrap());
    let info = RequestInfo {
        safe_method: true,
        context: Some(moved),
    };
    let v = f
        .manager
        .validate(login.token.expose(), &info)
        .await
        .unwrap();
    assert!(!v.session.flags().context_mismatch);
}

#[tokio::test]
async fn elevation_moves_the_session_to_a_new_id() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let elevated = f
        .manager
        .set_session_permissions(login.token.expose(), vec!["admin:write".into()])
        .await
        .unwrap();
    assert_ne!(elevated.session.id(), login.session.id());
    assert_eq!(
        elevated.session.id().lineage(),
        login.session.id().lineage()
    );
    assert!(elevated.session.has_permission("admin:write"));
    assert!(elevated.session.flags().elevated);
    // A request in flight with the old token keeps the old permissions and
    // gets no token.
    let old = f
        .manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
    assert_eq!((old.verdict, old.next_token), (Verdict::Pending, None));
    assert!(!old.session.has_permission("admin:write"));
    let v = f
        .manager
        .validate_session(elevated.token.expose())
        .await
        .unwrap();
    assert!(v.session.has_permission("admin:write"));
    let live = v.next_token.unwrap();
    // Within its grace the old token never gains the new permissions...
    f.clock.advance(Duration::from_secs(5));
    let old = f
        .manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
    assert_eq!(old.verdict, Verdict::Grace);
    assert!(!old.session.has_permission("admin:write"));
    // ...and after it, it is theft: the elevated session dies with it.
    f.clock.advance(Duration::from_secs(6));
    assert_eq!(
        kind(f.manager.validate_session(login.token.expose()).await),
        ErrorKind::TokenReused
    );
    assert_eq!(
        kind(f.manager.validate_session(live.expose()).await),
        ErrorKind::SessionRevoked
    );
}

#[tokio::test]
async fn listing_updating_terminating_and_analytics() {
    let f = fixture(Config::default());
    let a = f.manager.create_session("alice", ctx("a")).await.unwrap();
    let b = f.manager.create_session("alice", ctx("b")).await.unwrap();
    f.manager.create_session("zoe", ctx("z")).await.unwrap();
    assert_eq!(f.manager.active_sessions("alice").await.unwrap().len(), 2);

    let updated = f
        .manager
        .update_session_context(
            a.token.expose(),
            SessionContext {
                location: Some("us-east".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.context().location.as_deref(), Some("us-east"));
    assert_eq!(updated.context().user_agent.as_deref(), Some("a"));

    f.clock.advance(MIN);
    let t = step(&f.manager, &a.token).await;
    let stats = f.manager.session_analytics(t.expose()).await.unwrap();
    assert_eq!(stats.duration_ms, 60_000);
    assert_eq!(stats.rotations, 1);
    // Reads never mutate (issue 14): the context update and the analytics
    // are not requests; only the validation counts.
    assert_eq!(stats.request_count, 1, "validate only");
    assert_eq!(stats.last_activity_at, T0 + 60_000);
    let again = f.manager.session_analytics(t.expose()).await.unwrap();
    assert_eq!(again, stats, "a second read changed nothing");
    let stored = f.manager.active_sessions("alice").await.unwrap();
    let stored = stored.iter().find(|s| s.id() == a.session.id()).unwrap();
    assert_eq!(
        stored.record().sequence.requests,
        1,
        "reads counted in the store"
    );

    f.manager.terminate_session(b.token.expose()).await.unwrap();
    f.manager.terminate_session(b.token.expose()).await.unwrap();
    assert_eq!(f.manager.active_sessions("alice").await.unwrap().len(), 1);
    assert_eq!(
        f.manager
            .terminate_all_user_sessions("alice")
            .await
            .unwrap(),
        1
    );
    assert!(f.manager.active_sessions("alice").await.unwrap().is_empty());
    assert_eq!(f.manager.active_sessions("zoe").await.unwrap().len(), 1);
}

#[tokio::test]
async fn rotation_policies_through_the_manager() {
    let f = fixture(Config {
        rotation: Rotation::UnsafeMethods,
        ..Config::default()
    });
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let get = RequestInfo {
        safe_method: true,
        context: None,
    };
    let v = f
        .manager
        .validate(login.token.expose(), &get)
        .await
        .unwrap();
    assert_eq!((v.verdict, v.next_token), (Verdict::Current, None));
    let v = f
        .manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
    assert_eq!(v.verdict, Verdict::Rotated);

    let f = fixture(Config {
        rotation: Rotation::AtMostEvery(Duration::from_secs(30)),
        ..Config::default()
    });
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let v = f
        .manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
    assert_eq!(v.verdict, Verdict::Current);
    f.clock.advance(Duration::from_secs(30));
    let v = f
        .manager
        .validate_session(login.token.expose())
        .await
        .unwrap();
    assert_eq!(v.verdict, Verdict::Rotated);
}

#[tokio::test]
async fn key_rotation_logs_nobody_out() {
    let clock = ManualClock::new(T0);
    let store = Arc::new(MemoryStore::new());
    let old_key = TokenKey::new(1, [1; 32]);
    let before = SessionManager::builder(KeyRing::new(old_key.clone()))
        .shared_store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let login = before.create_session("alice", ctx("ua")).await.unwrap();

    let rotated = KeyRing::new(TokenKey::new(2, [2; 32])).with_accepted(old_key);
    let after = SessionManager::builder(rotated.clone())
        .shared_store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let v = after.validate_session(login.token.expose()).await.unwrap();
    let next = v.next_token.unwrap();
    assert_eq!(rotated.verify(next.expose()).unwrap().key_id, 2);

    // Once the old key is dropped, only tokens under the new key work.
    let retired = SessionManager::builder(KeyRing::new(TokenKey::new(2, [2; 32])))
        .shared_store(store)
        .clock(clock)
        .build()
        .unwrap();
    assert!(matches!(
        kind(retired.validate_session(login.token.expose()).await),
        ErrorKind::MalformedToken(_)
    ));
    retired.validate_session(next.expose()).await.unwrap();
}

#[tokio::test]
async fn a_store_dump_holds_no_token() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let mut issued = vec![login.token.clone()];
    for _ in 0..3 {
        let next = step(&f.manager, issued.last().unwrap()).await;
        issued.push(next);
    }
    let dump = serde_json::to_string(&f.store.list_by_user("alice").await.unwrap()).unwrap();
    for token in &issued {
        let t = token.expose();
        assert!(!dump.contains(t));
        assert!(!dump.contains(&t[2..20]), "no fragment of the sealed part");
    }
    assert!(!dump.contains("tag") && !dump.contains("key"));
}

#[tokio::test]
async fn sweeper_removes_dead_sessions() {
    let f = fixture(Config::default());
    f.manager.create_session("alice", ctx("ua")).await.unwrap();
    let keep = f.manager.create_session("bob", ctx("ua")).await.unwrap();
    f.clock.advance(20 * MIN);
    step(&f.manager, &keep.token).await;
    f.clock.advance(15 * MIN);
    assert_eq!(f.manager.sweep_expired().await.unwrap(), 1);
    assert_eq!(f.store.len(), 1);
}

#[tokio::test]
async fn junk_tokens_are_malformed_not_panics() {
    let f = fixture(Config::default());
    for junk in ["", "x", &"A".repeat(56), &"é".repeat(28), &"A".repeat(8192)] {
        let e = f.manager.validate_session(junk).await.unwrap_err();
        assert_eq!(e.reason(), "malformed_token", "{junk:?}");
    }
}

/// Reads do not count as requests, yet a copied token used for a read
/// after its grace is still theft: the session is revoked.
#[tokio::test]
async fn a_stale_token_used_for_a_read_is_still_theft() {
    let f = fixture(Config::default());
    let login = f.manager.create_session("alice", ctx("a")).await.unwrap();
    let next = step(&f.manager, &login.token).await;
    step(&f.manager, &next).await;
    f.clock.advance(MIN);
    let err = f
        .manager
        .session_analytics(login.token.expose())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::TokenReused);
    assert!(f.manager.active_sessions("alice").await.unwrap().is_empty());
}
