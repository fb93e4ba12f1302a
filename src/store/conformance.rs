//! The contract every [`SessionStore`] must keep, as one async call
//! (feature `test-util`).
//!
//! [`run`] checks a store end to end: records round-trip exactly, a
//! lineage is found from every id it had and from no other id (not even
//! one sharing its lineage key), a taken lineage key conflicts,
//! [`update_meta`](SessionStore::update_meta) never touches the sequence,
//! [`verify_and_advance`](SessionStore::verify_and_advance) applies
//! [`SessionRecord::advance`] exactly (case by case, and in a long seeded
//! random differential walk against a local copy), atomically under
//! concurrent requests (racing rotations, renewals and elevations), expiry
//! verdicts at their exact boundaries, the per-user index, creation under
//! the per-user limit ([`create_limited`](SessionStore::create_limited):
//! the rule, and 16 parallel logins of one user under both policies), the
//! errors, and numbers up to the documented limits.
//! It panics with a message naming the failed check, like `assert!`.
//!
//! Every check uses fresh random session ids and user ids, so the suite
//! can run against a store that holds other data, and several runs can
//! share one store. Times are around the wall clock's now, so stores with
//! native expiry (Redis TTLs) keep the records for as long as the checks
//! need them. Concurrency checks spawn tokio tasks: run the suite from a
//! multi-threaded runtime (`#[tokio::test(flavor = "multi_thread")]`) to
//! make them real.
//!
//! ```
//! use std::sync::Arc;
//! use rolling_session::MemoryStore;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! rolling_session::store::conformance::run(Arc::new(MemoryStore::new())).await;
//! # });
//! ```
//!
//! Your own store: implement [`SessionStore`], then call [`run`] from a
//! test. `examples/custom_store.rs` does it for a SQLite store.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{DataChanges, DataLimit, SessionData, SessionLimit, SessionStore};
use crate::error::StoreError;
use crate::record::{AdvanceRequest, Retirement, RevocationReason, Rotate, SequenceState, Verdict};
use crate::record::{
    RecordSeal, SessionContext, SessionFlags, SessionId, SessionMeta, SessionRecord,
};

const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

/// Runs every check of the suite against `store`; panics on the first
/// failure.
pub async fn run(store: Arc<dyn SessionStore>) {
    records_round_trip(&*store).await;
    errors(&*store).await;
    lineage_ids(&*store).await;
    update_meta_leaves_the_sequence(&*store).await;
    sequence_rule(&*store).await;
    expiry(&*store).await;
    user_index(&*store).await;
    large_numbers(&*store).await;
    create_limited(&*store).await;
    concurrent_requests_are_atomic(store.clone()).await;
    concurrent_elevations_move_the_lineage_once(store.clone()).await;
    concurrent_meta_updates_never_move_the_sequence(store.clone()).await;
    concurrent_creates_respect_the_limit(store.clone()).await;
    session_data(&*store).await;
    concurrent_data_writers_keep_every_key(store.clone()).await;
    data_writes_race_with_requests(store.clone()).await;
    differential(&*store, 0x5EED_F00D, 400).await;
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, crate::clock::as_ms)
}

fn fresh_user(check: &str) -> String {
    format!("conformance/{check}/{}", SessionId::generate())
}

/// An id with the lineage key of `record` (its first 8 bytes) that is not
/// one of its ids: a lineage-key collision, which the store must treat as
/// an unknown session.
pub fn foreign_id(record: &SessionRecord) -> SessionId {
    loop {
        let id = record.id.next_generation();
        if !record.has_id(&id) {
            return id;
        }
    }
}

/// A session created at `now` with every meta field set, so a store that
/// drops a field fails the round trip.
fn sample(user: &str, now: u64) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate(),
        previous_ids: Box::default(),
        user_id: user.into(),
        created_at: now,
        meta: SessionMeta {
            context: SessionContext {
                ip: Some("203.0.113.7".parse().expect("an IP literal")),
                user_agent: Some("Mozilla/5.0 (conformance) \"quoted\" ü".into()),
                device_id: Some("device-1".into()),
                location: Some("eu-west".into()),
            },
            permissions: vec!["read".into(), "write:{all}".into()].into(),
            previous_permissions: vec!["read".into()].into(),
            expires_at: now + 8 * HOUR,
            absolute_expires_at: now + 24 * HOUR,
            idle_timeout_ms: 30 * MIN,
            renewals: 2,
            flags: SessionFlags {
                elevated: true,
                context_mismatch: false,
                anomaly: true,
                remembered: true,
            },
            // Stores never check it, but must keep it.
            seal: Some(RecordSeal::from_parts(3, [0x5a; 16])),
        },
        sequence: SequenceState::new(now),
    }
}

/// A request presenting `presented` with a token of `session`: grace
/// K = 1, T = 10 s, rotation on every request, no new id, no fast-forward.
fn request(session: SessionId, presented: u64, now_ms: u64) -> AdvanceRequest {
    AdvanceRequest {
        session,
        presented,
        now_ms,
        grace_depth: 1,
        grace_window_ms: 10 * SEC,
        rotate: Rotate::Always,
        new_id: None,
        max_ahead: 0,
    }
}

async fn create(store: &dyn SessionStore, record: &SessionRecord) {
    store
        .create(record)
        .await
        .unwrap_or_else(|e| panic!("create failed: {e:?}"));
}

async fn load(store: &dyn SessionStore, id: &SessionId) -> Option<SessionRecord> {
    store
        .load(id)
        .await
        .unwrap_or_else(|e| panic!("load failed: {e:?}"))
}

/// Applies `req` (to the session its id names) to the store and to a
/// local copy; checks both agree. `None` when `req.session` is not an id
/// of the local lineage: the store must then answer `None` and change
/// nothing.
async fn apply(
    store: &dyn SessionStore,
    local: &mut SessionRecord,
    req: &AdvanceRequest,
    check: &str,
) -> Option<Verdict> {
    let got = store
        .verify_and_advance(&req.session, req)
        .await
        .unwrap_or_else(|e| panic!("{check}: verify_and_advance failed: {e:?}"));
    if !local.has_id(&req.session) {
        assert_eq!(
            got, None,
            "{check}: verify_and_advance with an id that is not the lineage's ({req:?})"
        );
        return None;
    }
    let expected = local.advance(req);
    let got = got.unwrap_or_else(|| panic!("{check}: verify_and_advance lost the session"));
    assert_eq!(
        got.verdict, expected,
        "{check}: verdict for {req:?} (store) vs SessionRecord::advance"
    );
    assert_eq!(
        &*got.record, local,
        "{check}: record after {req:?} (store) vs SessionRecord::advance"
    );
    Some(expected)
}

/// [`apply`] with an id of the lineage.
async fn step(
    store: &dyn SessionStore,
    local: &mut SessionRecord,
    req: &AdvanceRequest,
    check: &str,
) -> Verdict {
    apply(store, local, req, check)
        .await
        .unwrap_or_else(|| panic!("{check}: {req:?} names no id of the lineage"))
}

/// [`step`], and the verdict must be `want`.
async fn expect(
    store: &dyn SessionStore,
    local: &mut SessionRecord,
    req: AdvanceRequest,
    want: Verdict,
    check: &str,
) {
    let got = step(store, local, &req, check).await;
    assert_eq!(got, want, "{check}: {req:?}");
}

/// The id of `record` is absent for every operation, and the record is
/// left as it was.
async fn assert_absent(
    store: &dyn SessionStore,
    id: &SessionId,
    record: &SessionRecord,
    check: &str,
) {
    assert_eq!(load(store, id).await, None, "{check}: load({id:?}) is None");
    let req = request(*id, record.sequence.counter, record.sequence.last_seen_at);
    assert!(
        matches!(store.verify_and_advance(id, &req).await, Ok(None)),
        "{check}: verify_and_advance({id:?}) is Ok(None)"
    );
    assert!(
        matches!(
            store.update_meta(id, &record.meta).await,
            Err(StoreError::NotFound)
        ),
        "{check}: update_meta({id:?}) is NotFound"
    );
    assert!(
        matches!(store.delete(id).await, Ok(false)),
        "{check}: delete({id:?}) is Ok(false)"
    );
    assert_eq!(
        load(store, &record.id).await.as_ref(),
        Some(record),
        "{check}: the lineage is untouched by requests with {id:?}"
    );
}

/// A created record loads back equal, field for field, from each of its
/// ids: a fresh one, and a renewed, revoked one with a long retired list.
pub async fn records_round_trip(store: &dyn SessionStore) {
    let now = wall_ms();
    let user = fresh_user("round_trip");
    let plain = sample(&user, now);
    create(store, &plain).await;
    assert_eq!(
        load(store, &plain.id).await.as_ref(),
        Some(&plain),
        "records_round_trip: a created record loads back equal"
    );

    let mut worn = sample(&user, now);
    let first = worn.id;
    worn.previous_ids = [first, first.next_generation()].into();
    worn.id = first.next_generation();
    worn.meta.context = SessionContext::default();
    worn.meta.permissions = Box::default();
    worn.meta.previous_permissions = vec!["a".into(), "b,c".into()].into();
    worn.sequence = SequenceState {
        counter: 42,
        presented: Some(40),
        requests: 99,
        last_seen_at: now - 5,
        issued_at: now - 10,
        retired: vec![
            Retirement {
                from: 7,
                to: 7,
                at: now - 30,
            },
            Retirement {
                from: 38,
                to: 39,
                at: now - 20,
            },
            Retirement {
                from: 41,
                to: 42,
                at: now - 10,
            },
        ]
        .into(),
        revoked: Some(RevocationReason::TokenReused),
    };
    create(store, &worn).await;
    for id in worn.all_ids() {
        assert_eq!(
            load(store, &id).await.as_ref(),
            Some(&worn),
            "records_round_trip: a renewed, revoked record loads back equal from {id:?}"
        );
    }

    // p == n: the live token is in use.
    let mut live = sample(&user, now);
    live.sequence.counter = 3;
    live.sequence.presented = Some(3);
    create(store, &live).await;
    assert_eq!(
        load(store, &live.id).await.as_ref(),
        Some(&live),
        "records_round_trip: presented == counter"
    );
    assert_eq!(
        load(store, &SessionId::generate()).await,
        None,
        "records_round_trip: an unknown id loads as None"
    );
}

/// Conflicts on the lineage key, unknown sessions, ids that share a
/// lineage key without being the lineage's, and what each operation
/// answers for them.
pub async fn errors(store: &dyn SessionStore) {
    let check = "errors";
    let now = wall_ms();
    let user = fresh_user(check);
    let record = sample(&user, now);
    create(store, &record).await;

    // Another id with the same lineage key, another user: the key is taken.
    let mut twin = sample(&fresh_user("errors-twin"), now + 1);
    twin.id = foreign_id(&record);
    assert_eq!(twin.lineage(), record.lineage());
    assert!(
        matches!(store.create(&twin).await, Err(StoreError::Conflict)),
        "{check}: creating a record whose lineage key is taken is a Conflict"
    );
    // The very same id, the same user.
    let mut same = sample(&user, now + 2);
    same.id = record.id;
    assert!(
        matches!(store.create(&same).await, Err(StoreError::Conflict)),
        "{check}: creating a taken id is a Conflict"
    );
    assert_eq!(
        load(store, &record.id).await.as_ref(),
        Some(&record),
        "{check}: a conflicting create leaves the original untouched"
    );
    assert!(
        store
            .list_by_user(&twin.user_id)
            .await
            .expect("list_by_user")
            .is_empty(),
        "{check}: a conflicting create lists nothing for its user"
    );

    // The twin's id was never stored: absent everywhere.
    assert_absent(store, &twin.id, &record, check).await;

    let unknown = SessionId::generate();
    assert!(
        matches!(
            store.update_meta(&unknown, &record.meta).await,
            Err(StoreError::NotFound)
        ),
        "{check}: update_meta of an unknown session is NotFound"
    );
    assert_eq!(
        load(store, &unknown).await,
        None,
        "{check}: update_meta of an unknown session creates nothing"
    );
    assert!(
        matches!(
            store
                .verify_and_advance(&unknown, &request(unknown, 0, now))
                .await,
            Ok(None)
        ),
        "{check}: verify_and_advance of an unknown session is Ok(None)"
    );
    assert!(
        matches!(store.delete(&unknown).await, Ok(false)),
        "{check}: deleting an unknown session is Ok(false)"
    );
    assert!(
        matches!(store.delete(&record.id).await, Ok(true)),
        "{check}: deleting a session is Ok(true)"
    );
    assert!(
        matches!(store.delete(&record.id).await, Ok(false)),
        "{check}: deleting it again is Ok(false)"
    );
    assert_eq!(load(store, &record.id).await, None, "{check}: deleted");
    // The key is free again.
    create(store, &twin).await;
    assert_eq!(
        load(store, &twin.id).await.as_ref(),
        Some(&twin),
        "{check}: a freed lineage key can be created again"
    );
    assert_eq!(
        load(store, &record.id).await,
        None,
        "{check}: the new lineage does not answer for the deleted one's id"
    );
}

/// Renewal and elevation (`new_id`) move the lineage to a new id: every
/// id it had finds it for every operation, an id that merely shares its
/// lineage key finds nothing, and a delete through any id removes it all.
pub async fn lineage_ids(store: &dyn SessionStore) {
    let check = "lineage_ids";
    let now = wall_ms();
    let user = fresh_user(check);
    let mut r = sample(&user, now);
    create(store, &r).await;
    let first = r.id;
    let second = first.next_generation();
    expect(
        store,
        &mut r,
        AdvanceRequest {
            new_id: Some(second),
            ..request(first, 0, now + 1)
        },
        Verdict::Rotated,
        check,
    )
    .await;
    assert_eq!(
        (r.id, &r.previous_ids[..]),
        (second, &[first][..]),
        "{check}: new_id moves the lineage"
    );
    let third = second.next_generation();
    expect(
        store,
        &mut r,
        AdvanceRequest {
            new_id: Some(third),
            rotate: Rotate::Never,
            ..request(second, 1, now + 2)
        },
        Verdict::Rotated,
        check,
    )
    .await;
    assert_eq!(r.all_ids().collect::<Vec<_>>(), vec![first, second, third]);
    for id in r.all_ids() {
        assert_eq!(
            load(store, &id).await.as_ref(),
            Some(&r),
            "{check}: found from {id:?}"
        );
    }
    let foreign = foreign_id(&r);
    assert_absent(store, &foreign, &r, check).await;

    // A token of the first id within its grace, through the first id.
    expect(
        store,
        &mut r,
        request(first, 0, now + 3),
        Verdict::Grace,
        check,
    )
    .await;
    // Meta through an earlier id.
    let mut meta = r.meta.clone();
    meta.permissions = vec!["elevated".into()].into();
    meta.previous_permissions = vec!["read".into()].into();
    store
        .update_meta(&second, &meta)
        .await
        .unwrap_or_else(|e| panic!("{check}: update_meta through an earlier id: {e:?}"));
    r.meta = meta;
    assert_eq!(
        load(store, &third).await.as_ref(),
        Some(&r),
        "{check}: update_meta through an earlier id"
    );
    let listed = store.list_by_user(&user).await.expect("list_by_user");
    assert_eq!(
        listed,
        vec![r.clone()],
        "{check}: the lineage is listed once, with its current id"
    );
    // The live token goes on with the current id.
    expect(
        store,
        &mut r,
        request(third, 2, now + 4),
        Verdict::Rotated,
        check,
    )
    .await;
    assert!(
        store.delete(&second).await.expect("delete"),
        "{check}: delete through an earlier id"
    );
    for id in [first, second, third] {
        assert_eq!(load(store, &id).await, None, "{check}: deleted, {id:?}");
    }
    assert!(
        store.list_by_user(&user).await.expect("list").is_empty(),
        "{check}: nothing listed after delete"
    );
}

/// `update_meta` replaces the meta and nothing else, even with a meta read
/// before requests advanced the sequence.
pub async fn update_meta_leaves_the_sequence(store: &dyn SessionStore) {
    let check = "update_meta";
    let now = wall_ms();
    let mut local = sample(&fresh_user(check), now);
    create(store, &local).await;
    let id = local.id;
    let stale_meta = local.meta.clone();
    for i in 0..3 {
        step(store, &mut local, &request(id, i, now + i), check).await;
    }
    let mut meta = stale_meta;
    meta.permissions = vec!["admin".into()].into();
    meta.previous_permissions = vec!["read".into(), "write:{all}".into()].into();
    meta.flags.context_mismatch = true;
    meta.expires_at += HOUR;
    meta.renewals += 1;
    store
        .update_meta(&local.id, &meta)
        .await
        .unwrap_or_else(|e| panic!("update_meta failed: {e:?}"));
    local.meta = meta;
    assert_eq!(
        load(store, &local.id).await.as_ref(),
        Some(&local),
        "update_meta_leaves_the_sequence: the meta is replaced, the sequence kept"
    );
    expect(
        store,
        &mut local,
        request(id, 3, now + 10),
        Verdict::Rotated,
        check,
    )
    .await;
}

/// The rule's cases one by one: rotation, pending, recovery, grace, ahead,
/// reuse, revoked, their boundaries, deeper grace, each rotation policy,
/// and `new_id`.
pub async fn sequence_rule(store: &dyn SessionStore) {
    let check = "sequence_rule";
    let now = wall_ms();
    let user = fresh_user(check);
    let t = 10 * SEC;

    let mut r = sample(&user, now);
    create(store, &r).await;
    let id = r.id;
    let cases = [
        (request(id, 0, now + 1_000), Verdict::Rotated),
        // p again while n is in flight.
        (request(id, 0, now + 1_500), Verdict::Pending),
        (request(id, 5, now + 1_501), Verdict::Ahead),
        (request(id, 1, now + 2_000), Verdict::Rotated),
        // Retired when 1 was first presented.
        (request(id, 0, now + 3_000), Verdict::Grace),
        // p again, exactly 2T after n was issued.
        (request(id, 1, now + 2_000 + 2 * t), Verdict::Pending),
        // One ms later: n's response was lost.
        (request(id, 1, now + 2_001 + 2 * t), Verdict::Recovered),
        // The live token (3) is used: p = 1 retired.
        (request(id, 3, now + 2_002 + 2 * t), Verdict::Rotated),
        (request(id, 1, now + 2_003 + 2 * t), Verdict::Grace),
        // 2 was abandoned by the recovery: theft at once.
        (request(id, 2, now + 2_004 + 2 * t), Verdict::Reused),
        (request(id, 4, now + 2_005 + 2 * t), Verdict::Revoked),
    ];
    for (req, want) in cases {
        expect(store, &mut r, req, want, check).await;
    }

    // The grace of a retired token, at its boundary.
    let mut r = sample(&user, now);
    create(store, &r).await;
    let id = r.id;
    for (req, want) in [
        (request(id, 0, now + 1), Verdict::Rotated),
        (request(id, 1, now + 2), Verdict::Rotated),
        (request(id, 0, now + 2 + t), Verdict::Grace),
        (request(id, 0, now + 3 + t), Verdict::Reused),
    ] {
        expect(store, &mut r, req, want, check).await;
    }

    // K = 3: three retirements remembered.
    let mut r = sample(&user, now);
    create(store, &r).await;
    let id = r.id;
    let deep = |presented, now_ms| AdvanceRequest {
        grace_depth: 3,
        ..request(id, presented, now_ms)
    };
    for c in 0..5 {
        expect(store, &mut r, deep(c, now + c + 1), Verdict::Rotated, check).await;
    }
    expect(store, &mut r, deep(2, now + 10), Verdict::Grace, check).await;
    expect(store, &mut r, deep(1, now + 10), Verdict::Grace, check).await;
    expect(store, &mut r, deep(0, now + 10), Verdict::Reused, check).await;

    // Fast-forward: a counter at most N ahead (the store lost writes).
    let mut r = sample(&user, now);
    create(store, &r).await;
    let id = r.id;
    let ahead = |presented, now_ms| AdvanceRequest {
        grace_depth: 8,
        max_ahead: 3,
        ..request(id, presented, now_ms)
    };
    for (req, want) in [
        (ahead(0, now + 1), Verdict::Rotated),
        (ahead(1, now + 2), Verdict::Rotated),
        // p = 1, n = 2: 6 is more than 3 ahead.
        (ahead(6, now + 3), Verdict::Ahead),
        (ahead(5, now + 4), Verdict::FastForward),
        // 5 is live and in use now; 1 and 2..=4 were retired at now + 4.
        (ahead(5, now + 5), Verdict::Rotated),
        (ahead(3, now + 6), Verdict::Grace),
        (ahead(1, now + 4 + t), Verdict::Grace),
        (ahead(2, now + 5 + t), Verdict::Reused),
    ] {
        expect(store, &mut r, req, want, check).await;
    }
    // An undelivered token is never fast-forwarded.
    let mut r = sample(&user, now);
    create(store, &r).await;
    let replace = AdvanceRequest {
        rotate: Rotate::ReplaceUndelivered,
        max_ahead: 3,
        ..request(r.id, 2, now + 1)
    };
    expect(store, &mut r, replace, Verdict::Ahead, check).await;

    // Rotation policies, and new_id.
    let mut r = sample(&user, now);
    create(store, &r).await;
    let with = |id, rotate, now_ms, presented| AdvanceRequest {
        rotate,
        ..request(id, presented, now_ms)
    };
    let id = r.id;
    let policies = [
        (with(id, Rotate::Never, now + 1, 0), Verdict::Current),
        (with(id, Rotate::EveryN(3), now + 2, 0), Verdict::Current),
        (with(id, Rotate::EveryN(3), now + 3, 0), Verdict::Rotated),
        (with(id, Rotate::EveryN(1), now + 4, 1), Verdict::Rotated),
        (with(id, Rotate::EveryN(0), now + 5, 2), Verdict::Rotated),
        // 45 ms since 3 was issued.
        (
            with(id, Rotate::MinInterval(100), now + 50, 3),
            Verdict::Current,
        ),
        (
            with(id, Rotate::MinInterval(100), now + 105, 3),
            Verdict::Rotated,
        ),
        // A request stamped before the live token was issued (another
        // node's clock): no negative interval.
        (
            with(id, Rotate::MinInterval(0), now + 100, 4),
            Verdict::Rotated,
        ),
        (
            with(id, Rotate::MinInterval(1), now + 100, 5),
            Verdict::Current,
        ),
    ];
    for (req, want) in policies {
        expect(store, &mut r, req, want, check).await;
    }
    // A new id forces the rotation whatever the policy.
    let renewed = id.next_generation();
    expect(
        store,
        &mut r,
        AdvanceRequest {
            new_id: Some(renewed),
            ..with(id, Rotate::Never, now + 101, 5)
        },
        Verdict::Rotated,
        check,
    )
    .await;
    assert_eq!(
        (r.id, r.previous_ids.clone()),
        (renewed, [id].into()),
        "{check}"
    );
    // A new id of another lineage, or the current id: rotated, not moved.
    for new_id in [SessionId::generate(), renewed] {
        let presented = r.sequence.counter;
        expect(
            store,
            &mut r,
            AdvanceRequest {
                new_id: Some(new_id),
                ..with(renewed, Rotate::Never, now + 102, presented)
            },
            Verdict::Rotated,
            check,
        )
        .await;
        assert_eq!(
            (r.id, r.previous_ids.clone()),
            (renewed, [id].into()),
            "{check}: new_id {new_id:?} must not move the lineage"
        );
    }
    // A new id on a request that issues nothing: not moved.
    let presented = r.sequence.counter - 1;
    expect(
        store,
        &mut r,
        AdvanceRequest {
            new_id: Some(renewed.next_generation()),
            ..with(renewed, Rotate::Always, now + 103, presented)
        },
        Verdict::Pending,
        check,
    )
    .await;
    assert_eq!(
        r.id, renewed,
        "{check}: a pending request does not move the lineage"
    );
    // ... but a recovery does.
    let moved = renewed.next_generation();
    expect(
        store,
        &mut r,
        AdvanceRequest {
            new_id: Some(moved),
            ..with(id, Rotate::Never, now + 103 + 2 * t, presented)
        },
        Verdict::Recovered,
        check,
    )
    .await;
    assert_eq!(
        r.id, moved,
        "{check}: a recovery with new_id moves the lineage"
    );
}

/// Expired, absolute and idle verdicts at their exact boundaries, leaving
/// the record untouched; and `sweep_expired` never removes a live session.
pub async fn expiry(store: &dyn SessionStore) {
    let check = "expiry";
    let now = wall_ms();
    let user = fresh_user(check);

    let mut r = sample(&user, now);
    r.meta.idle_timeout_ms = 10 * HOUR;
    create(store, &r).await;
    let id = r.id;
    let end = r.meta.expires_at;
    expect(
        store,
        &mut r,
        request(id, 0, end - 1),
        Verdict::Rotated,
        check,
    )
    .await;
    let before = r.clone();
    expect(store, &mut r, request(id, 1, end), Verdict::Expired, check).await;
    assert_eq!(r, before, "{check}: an expired request changes nothing");

    let mut r = sample(&user, now);
    r.meta.expires_at = r.meta.absolute_expires_at + HOUR;
    r.meta.idle_timeout_ms = 48 * HOUR;
    create(store, &r).await;
    let id = r.id;
    let end = r.meta.absolute_expires_at;
    expect(
        store,
        &mut r,
        request(id, 0, end - 1),
        Verdict::Rotated,
        check,
    )
    .await;
    expect(store, &mut r, request(id, 1, end), Verdict::Expired, check).await;

    let mut r = sample(&user, now);
    create(store, &r).await;
    let id = r.id;
    let idle = r.meta.idle_timeout_ms;
    expect(
        store,
        &mut r,
        request(id, 0, now + idle - 1),
        Verdict::Rotated,
        check,
    )
    .await;
    let seen = r.sequence.last_seen_at;
    let before = r.clone();
    expect(
        store,
        &mut r,
        request(id, 1, seen + idle),
        Verdict::IdleTimeout,
        check,
    )
    .await;
    assert_eq!(r, before, "{check}: an idle request changes nothing");

    // Long dead at the sweep's time, so a sweep cannot touch what other
    // suites sharing the store are using.
    let mut dying = sample(&user, now - 2 * HOUR);
    dying.meta.idle_timeout_ms = SEC;
    create(store, &dying).await;
    let mut live = sample(&user, now - 2 * HOUR);
    live.meta.idle_timeout_ms = 4 * HOUR;
    create(store, &live).await;
    let swept = store
        .sweep_expired(now - HOUR)
        .await
        .unwrap_or_else(|e| panic!("sweep_expired failed: {e:?}"));
    assert!(
        load(store, &live.id).await.is_some(),
        "{check}: sweep_expired removed a live session"
    );
    if swept > 0 {
        assert_eq!(
            load(store, &dying.id).await,
            None,
            "{check}: sweep_expired counted a removal but kept the dead session"
        );
    }
}

/// `list_by_user` finds exactly a user's lineages (with their current
/// ids); `delete` (through any id) and `delete_by_user` keep it exact and
/// leave other users alone.
pub async fn user_index(store: &dyn SessionStore) {
    let check = "user_index";
    let now = wall_ms();
    let alice = format!("{} {{odd}} ü*?[x]", fresh_user(check));
    let bob = fresh_user(check);
    let mut mine: Vec<SessionRecord> = (0..3).map(|_| sample(&alice, now)).collect();
    let theirs = sample(&bob, now);
    for r in mine.iter().chain([&theirs]) {
        create(store, r).await;
    }
    // One of alice's sessions is renewed: listed once, with its new id.
    let old_id = mine[0].id;
    let renewed = AdvanceRequest {
        new_id: Some(old_id.next_generation()),
        ..request(old_id, 0, now + 1)
    };
    step(store, &mut mine[0], &renewed, check).await;
    assert_ne!(mine[0].id, old_id);

    let ids = |records: &[SessionRecord]| records.iter().map(|r| r.id).collect::<BTreeSet<_>>();
    let listed = store.list_by_user(&alice).await.expect("list_by_user");
    assert_eq!(
        listed.len(),
        3,
        "{check}: list_by_user lists each lineage once"
    );
    assert_eq!(ids(&listed), ids(&mine), "{check}: list_by_user");
    for r in &listed {
        assert_eq!(
            load(store, &r.id).await.as_ref(),
            Some(r),
            "{check}: listed records are the stored ones"
        );
    }
    assert!(
        store.delete(&old_id).await.expect("delete"),
        "{check}: delete through the renewed session's old id"
    );
    let listed = store.list_by_user(&alice).await.expect("list_by_user");
    assert_eq!(ids(&listed), ids(&mine[1..]), "{check}: after delete");
    assert_eq!(
        store.delete_by_user(&alice).await.expect("delete_by_user"),
        2,
        "{check}: delete_by_user counts what it deleted"
    );
    assert!(
        store.list_by_user(&alice).await.expect("list").is_empty(),
        "{check}: nothing left after delete_by_user"
    );
    for r in &mine {
        assert_eq!(load(store, &r.id).await, None, "{check}: deleted by user");
    }
    assert_eq!(
        ids(&store.list_by_user(&bob).await.expect("list")),
        ids(std::slice::from_ref(&theirs)),
        "{check}: another user's sessions are untouched"
    );
    assert_eq!(
        store
            .delete_by_user(&fresh_user(check))
            .await
            .expect("delete_by_user"),
        0,
        "{check}: an unknown user has nothing to delete"
    );
}

/// Counters and request counts up to 2^52, and deadlines at `u64::MAX`
/// (sessions that never end) round-trip and advance exactly, through
/// every branch that computes a counter.
pub async fn large_numbers(store: &dyn SessionStore) {
    let check = "large_numbers";
    let now = wall_ms();
    let mut r = sample(&fresh_user(check), now);
    let big = 1u64 << 52;
    r.sequence.counter = big;
    r.sequence.presented = Some(big - 1);
    r.sequence.requests = big - 1;
    r.sequence.retired = vec![Retirement {
        from: big - 3,
        to: big - 2,
        at: now,
    }]
    .into();
    r.meta.expires_at = u64::MAX;
    r.meta.absolute_expires_at = u64::MAX;
    r.meta.idle_timeout_ms = u64::MAX;
    create(store, &r).await;
    assert_eq!(
        load(store, &r.id).await.as_ref(),
        Some(&r),
        "{check}: round trip"
    );
    let id = r.id;
    let t = 10 * SEC;
    for (req, want) in [
        (request(id, big - 2, now + 1), Verdict::Grace),
        (request(id, big, now + 1), Verdict::Rotated),
        (request(id, big, now + 2), Verdict::Pending),
        (request(id, big + 7, now + 3), Verdict::Ahead),
        (request(id, big + 1, now + 3), Verdict::Rotated),
        (request(id, big, now + 4), Verdict::Grace),
        (request(id, big + 1, now + 4 + 2 * t), Verdict::Recovered),
        (request(id, big + 3, now + 5 + 2 * t), Verdict::Rotated),
        (request(id, big + 1, now + 6 + 2 * t), Verdict::Grace),
    ] {
        expect(store, &mut r, req, want, check).await;
    }
    assert_eq!(r.sequence.counter, big + 4);
    assert_eq!(
        load(store, &r.id).await.as_ref(),
        Some(&r),
        "{check}: stored"
    );
}

/// Many requests at once: with one live token, exactly one rotates and
/// the rest are pending; with one live token and a new id each (racing
/// renewals), exactly one moves the lineage; with workers racing along
/// the sequence, the counter ends at exactly the number of rotations and
/// no request is lost.
pub async fn concurrent_requests_are_atomic(store: Arc<dyn SessionStore>) {
    let check = "concurrent_requests_are_atomic";
    let now = wall_ms();
    let r = sample(&fresh_user(check), now);
    create(&*store, &r).await;
    let race = |presented: u64, new_ids: Vec<Option<SessionId>>| {
        let tasks: Vec<_> = new_ids
            .into_iter()
            .enumerate()
            .map(|(i, new_id)| {
                let store = store.clone();
                let id = r.id;
                tokio::spawn(async move {
                    let req = AdvanceRequest {
                        grace_window_ms: MIN,
                        new_id,
                        ..request(id, presented, now + 1 + i as u64)
                    };
                    let a = store
                        .verify_and_advance(&id, &req)
                        .await
                        .unwrap_or_else(|e| panic!("{check}: {e:?}"))
                        .unwrap_or_else(|| panic!("{check}: the session was lost"));
                    (new_id, a)
                })
            })
            .collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap_or_else(|e| panic!("{check}: task: {e}")));
            }
            out
        }
    };
    let verdicts: Vec<Verdict> = race(0, vec![None; 32])
        .await
        .into_iter()
        .map(|(_, a)| a.verdict)
        .collect();
    let rotated = verdicts.iter().filter(|v| **v == Verdict::Rotated).count();
    let pending = verdicts.iter().filter(|v| **v == Verdict::Pending).count();
    assert_eq!(
        (rotated, pending),
        (1, 31),
        "{check}: 32 requests with one live token: one rotates, 31 are pending ({verdicts:?})"
    );
    let stored = load(&*store, &r.id).await.expect("stored");
    assert_eq!(stored.sequence.counter, 1, "{check}: counter");
    assert_eq!(stored.sequence.presented, Some(0), "{check}: presented");
    assert_eq!(stored.sequence.requests, 32, "{check}: requests");

    // Racing renewals of the live token 1.
    let new_ids: Vec<Option<SessionId>> = (0..16).map(|_| Some(r.id.next_generation())).collect();
    let outcomes = race(1, new_ids).await;
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, a)| a.verdict == Verdict::Rotated)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{check}: 16 renewals of one live token: one rotates"
    );
    assert!(
        outcomes
            .iter()
            .all(|(_, a)| matches!(a.verdict, Verdict::Rotated | Verdict::Pending)),
        "{check}: the losers of a renewal race are pending"
    );
    let (winner_id, won) = winners[0];
    assert_eq!(Some(won.record.id), *winner_id, "{check}: the winner's id");
    let stored = load(&*store, &r.id).await.expect("stored");
    assert_eq!(
        (
            stored.id,
            stored.previous_ids.clone(),
            stored.sequence.counter
        ),
        (won.record.id, [r.id].into(), 2),
        "{check}: exactly one renewal moved the lineage"
    );

    let r = sample(&fresh_user(check), now);
    create(&*store, &r).await;
    let latest = Arc::new(AtomicU64::new(0));
    let workers = 8u64;
    let per_worker = 25u64;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (store, latest, id) = (store.clone(), latest.clone(), r.id);
            tokio::spawn(async move {
                let mut rotations = 0u64;
                for i in 0..per_worker {
                    // A grace as deep as the whole run: a worker may fall
                    // behind by any number of rotations, and must not be
                    // taken for a thief here.
                    let req = AdvanceRequest {
                        grace_depth: (workers * per_worker) as u32,
                        grace_window_ms: HOUR,
                        ..request(id, latest.load(Ordering::SeqCst), now + w * 1000 + i)
                    };
                    let a = store
                        .verify_and_advance(&id, &req)
                        .await
                        .expect("verify_and_advance")
                        .expect("session");
                    assert!(
                        a.verdict.is_accepted(),
                        "concurrent_requests_are_atomic: {req:?} got {:?}",
                        a.verdict
                    );
                    if a.verdict.issues_token() {
                        rotations += 1;
                    }
                    latest.fetch_max(a.record.sequence.counter, Ordering::SeqCst);
                }
                rotations
            })
        })
        .collect();
    let mut rotations = 0;
    for t in tasks {
        rotations += t.await.unwrap_or_else(|e| panic!("{check}: worker: {e}"));
    }
    let stored = load(&*store, &r.id).await.expect("stored");
    assert_eq!(
        stored.sequence.counter, rotations,
        "{check}: the counter moved once per token issued"
    );
    assert_eq!(
        stored.sequence.requests,
        workers * per_worker,
        "{check}: every accepted request was counted"
    );
}

fn limit(max: usize, evict_oldest: bool, now_ms: u64) -> SessionLimit {
    SessionLimit {
        max,
        evict_oldest,
        now_ms,
    }
}

/// The user's live sessions at `now` (as the limit counts them).
async fn live(store: &dyn SessionStore, user: &str, now: u64) -> Vec<SessionRecord> {
    store
        .list_by_user(user)
        .await
        .unwrap_or_else(|e| panic!("list_by_user failed: {e:?}"))
        .into_iter()
        .filter(|r| r.is_live(now))
        .collect()
}

/// [`SessionStore::create_limited`], one call at a time: below the limit
/// it creates; at the limit it refuses (writing nothing) or evicts the
/// oldest live session (by creation time; reported by its current id,
/// kept revoked as [`RevocationReason::Evicted`]); dead sessions (revoked,
/// expired, idle) do not count; a taken lineage key is a conflict that
/// evicts nothing; other users are untouched.
pub async fn create_limited(store: &dyn SessionStore) {
    let check = "create_limited";
    let now = wall_ms();
    let user = fresh_user(check);
    let other = fresh_user(check);
    let bystander = sample(&other, now);
    create(store, &bystander).await;

    // Two dead sessions first: revoked, and past its lifetime.
    let mut revoked = sample(&user, now - 5 * SEC);
    revoked.sequence.revoked = Some(RevocationReason::TokenReused);
    create(store, &revoked).await;
    let mut expired = sample(&user, now - 5 * SEC);
    expired.meta.expires_at = now - SEC;
    create(store, &expired).await;

    // Three live ones, created in this order.
    let mut mine = Vec::new();
    for age in [3, 2, 1] {
        let r = sample(&user, now - age * SEC);
        let created = store
            .create_limited(&r, &limit(3, false, now))
            .await
            .unwrap_or_else(|e| panic!("{check}: below the limit: {e:?}"));
        assert!(
            created.evicted.is_empty(),
            "{check}: below the limit nothing is evicted (dead sessions do not count)"
        );
        assert_eq!(
            load(store, &r.id).await.as_ref(),
            Some(&r),
            "{check}: created"
        );
        mine.push(r);
    }
    // Refused at the limit: nothing written.
    let refused = sample(&user, now);
    assert!(
        matches!(
            store.create_limited(&refused, &limit(3, false, now)).await,
            Err(StoreError::SessionLimit { max: 3 })
        ),
        "{check}: the fourth live session is refused with SessionLimit"
    );
    assert_eq!(
        load(store, &refused.id).await,
        None,
        "{check}: refused is not stored"
    );
    assert_eq!(
        live(store, &user, now).await.len(),
        3,
        "{check}: after a refusal"
    );

    // The oldest is renewed (its current id changes), then evicted.
    let old_id = mine[0].id;
    let renewed = AdvanceRequest {
        new_id: Some(old_id.next_generation()),
        ..request(old_id, 0, now)
    };
    step(store, &mut mine[0], &renewed, check).await;
    let newcomer = sample(&user, now);
    let created = store
        .create_limited(&newcomer, &limit(3, true, now))
        .await
        .unwrap_or_else(|e| panic!("{check}: evicting: {e:?}"));
    assert_eq!(
        created.evicted,
        vec![mine[0].id],
        "{check}: the oldest live session is evicted, named by its current id"
    );
    let tombstone = load(store, &old_id)
        .await
        .unwrap_or_else(|| panic!("{check}: an evicted session is kept until its purge time"));
    assert_eq!(
        tombstone.sequence.revoked,
        Some(RevocationReason::Evicted),
        "{check}: an evicted session is revoked as Evicted"
    );
    let mut expected = mine[0].clone();
    expected.sequence.revoked = Some(RevocationReason::Evicted);
    assert_eq!(
        tombstone, expected,
        "{check}: eviction changes nothing else"
    );
    let req = request(mine[0].id, mine[0].sequence.counter, now + 1);
    let a = store
        .verify_and_advance(&mine[0].id, &req)
        .await
        .unwrap_or_else(|e| panic!("{check}: {e:?}"))
        .unwrap_or_else(|| panic!("{check}: the evicted session is gone"));
    assert_eq!(
        a.verdict,
        Verdict::Revoked,
        "{check}: an evicted session is revoked"
    );
    let ids = |records: Vec<SessionRecord>| records.iter().map(|r| r.id).collect::<BTreeSet<_>>();
    assert_eq!(
        ids(live(store, &user, now).await),
        ids(vec![mine[1].clone(), mine[2].clone(), newcomer.clone()]),
        "{check}: the live sessions after an eviction"
    );

    // Two over the limit (a smaller limit now): the two oldest go.
    let last = sample(&user, now + 1);
    let created = store
        .create_limited(&last, &limit(2, true, now + 1))
        .await
        .unwrap_or_else(|e| panic!("{check}: evicting two: {e:?}"));
    assert_eq!(
        created.evicted,
        vec![mine[1].id, mine[2].id],
        "{check}: as many of the oldest as needed, oldest first"
    );
    assert_eq!(
        ids(live(store, &user, now + 1).await),
        ids(vec![newcomer.clone(), last.clone()]),
        "{check}: the limit holds"
    );

    // A taken lineage key: a conflict that evicts nothing.
    let mut twin = sample(&user, now + 2);
    twin.id = foreign_id(&last);
    assert!(
        matches!(
            store.create_limited(&twin, &limit(2, true, now + 2)).await,
            Err(StoreError::Conflict)
        ),
        "{check}: a taken lineage key is a Conflict"
    );
    assert_eq!(
        ids(live(store, &user, now + 2).await),
        ids(vec![newcomer, last]),
        "{check}: a conflict evicts nothing"
    );
    assert_eq!(
        load(store, &bystander.id).await.as_ref(),
        Some(&bystander),
        "{check}: another user's session is untouched"
    );
    assert_eq!(
        live(store, &other, now).await.len(),
        1,
        "{check}: another user's sessions are untouched"
    );
}

/// 16 logins of one user at once with a limit of 5, under each policy,
/// twice (the second wave finds the user at the limit): never more than 5
/// live; with eviction every login succeeds and exactly 11 sessions per
/// wave are evicted, each once, each kept revoked; with refusal exactly 5
/// logins succeed in all and 27 are refused.
pub async fn concurrent_creates_respect_the_limit(store: Arc<dyn SessionStore>) {
    let check = "concurrent_creates_respect_the_limit";
    const LOGINS: usize = 16;
    const MAX: usize = 5;
    for evict_oldest in [true, false] {
        let user = fresh_user(check);
        let mut created_ids = BTreeSet::new();
        let mut evicted_ids = Vec::new();
        let mut refused = 0;
        for wave in 0..2u64 {
            let now = wall_ms();
            let tasks: Vec<_> = (0..LOGINS)
                .map(|i| {
                    let store = store.clone();
                    let r = sample(&user, now + wave * 100 + i as u64 % 3);
                    tokio::spawn(async move {
                        let out = store
                            .create_limited(&r, &limit(MAX, evict_oldest, now + wave * 100))
                            .await;
                        (r.id, out)
                    })
                })
                .collect();
            for t in tasks {
                let (id, out) = t.await.unwrap_or_else(|e| panic!("{check}: task: {e}"));
                match out {
                    Ok(created) => {
                        created_ids.insert(id);
                        evicted_ids.extend(created.evicted);
                    }
                    Err(StoreError::SessionLimit { max: MAX }) if !evict_oldest => refused += 1,
                    Err(e) => panic!("{check} (evict {evict_oldest}): create_limited: {e:?}"),
                }
            }
            let live_now = live(&*store, &user, now + wave * 100).await;
            assert_eq!(
                live_now.len(),
                MAX,
                "{check} (evict {evict_oldest}): after wave {wave}, exactly the limit is live"
            );
        }
        let unique: BTreeSet<_> = evicted_ids.iter().copied().collect();
        if evict_oldest {
            assert_eq!(
                (created_ids.len(), evicted_ids.len(), unique.len()),
                (2 * LOGINS, 2 * LOGINS - MAX, 2 * LOGINS - MAX),
                "{check}: every login succeeds, 16 - 5 evicted in the first wave and 16 in the second, each once"
            );
            assert!(
                unique.is_subset(&created_ids),
                "{check}: only sessions of this user are evicted"
            );
            for id in &unique {
                let r = load(&*store, id)
                    .await
                    .unwrap_or_else(|| panic!("{check}: an evicted session is kept"));
                assert_eq!(
                    r.sequence.revoked,
                    Some(RevocationReason::Evicted),
                    "{check}: evicted sessions are revoked"
                );
            }
        } else {
            assert_eq!(
                (created_ids.len(), refused, evicted_ids.len()),
                (MAX, 2 * LOGINS - MAX, 0),
                "{check}: with refusal, exactly 5 logins succeed and 11 + 16 are refused"
            );
        }
    }
}

/// 16 elevations of one live token at once (a new id each, then the new
/// permissions written by the winner, as the manager does): exactly one
/// moves the lineage, the others are pending and never see a new id, and
/// the stored permissions are the winner's.
pub async fn concurrent_elevations_move_the_lineage_once(store: Arc<dyn SessionStore>) {
    let check = "concurrent_elevations";
    let now = wall_ms();
    let r = sample(&fresh_user(check), now);
    create(&*store, &r).await;
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let (store, id, mut meta) = (store.clone(), r.id, r.meta.clone());
            tokio::spawn(async move {
                let new_id = id.next_generation();
                let req = AdvanceRequest {
                    grace_window_ms: MIN,
                    new_id: Some(new_id),
                    ..request(id, 0, now + 1 + i)
                };
                let a = store
                    .verify_and_advance(&id, &req)
                    .await
                    .expect("verify_and_advance")
                    .expect("the session");
                let won = a.verdict == Verdict::Rotated && a.record.id == new_id;
                if won {
                    meta.previous_permissions = std::mem::take(&mut meta.permissions);
                    meta.permissions = vec![format!("elevated-{i}")].into();
                    store
                        .update_meta(&new_id, &meta)
                        .await
                        .expect("update_meta by the winner");
                }
                (won, a, meta)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (won, a, meta) = t.await.unwrap_or_else(|e| panic!("{check}: task: {e}"));
        if won {
            winners.push((a.record.id, meta));
        } else {
            assert_eq!(a.verdict, Verdict::Pending, "{check}: a loser is pending");
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{check}: exactly one elevation moves the lineage"
    );
    let (winner, meta) = winners.pop().expect("one winner");
    let stored = load(&*store, &r.id).await.expect("stored");
    assert_eq!(
        (
            stored.id,
            stored.previous_ids.clone(),
            stored.sequence.counter
        ),
        (winner, [r.id].into(), 1),
        "{check}: one new id, one new token"
    );
    assert_eq!(stored.meta, meta, "{check}: the winner's permissions");
}

type AdvanceTask = tokio::task::JoinHandle<Result<Option<super::Advance>, StoreError>>;

/// `n` concurrent requests presenting the live token 0 of `id` without
/// rotating, at `now`, `now + 1`, ...
fn spawn_reads(store: &Arc<dyn SessionStore>, id: SessionId, now: u64, n: u64) -> Vec<AdvanceTask> {
    (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let req = AdvanceRequest {
                    rotate: Rotate::Never,
                    ..request(id, 0, now + i)
                };
                store.verify_and_advance(&id, &req).await
            })
        })
        .collect()
}

/// Every one of [`spawn_reads`]' requests was served as `Current`.
async fn expect_current(tasks: Vec<AdvanceTask>, check: &str) {
    for t in tasks {
        let a = t.await.expect("task").expect("advance").expect("session");
        assert_eq!(a.verdict, Verdict::Current, "{check}");
    }
}

/// `update_meta` racing requests: the sequence counts every request and
/// the meta is one of those written.
pub async fn concurrent_meta_updates_never_move_the_sequence(store: Arc<dyn SessionStore>) {
    let check = "concurrent_meta_updates";
    let now = wall_ms();
    let r = sample(&fresh_user(check), now);
    create(&*store, &r).await;
    let n = 40u64;
    let advances = spawn_reads(&store, r.id, now, n);
    let updates: Vec<_> = (0..n)
        .map(|i| {
            let (store, id) = (store.clone(), r.id);
            let mut meta = r.meta.clone();
            meta.permissions = vec![format!("p{i}")].into();
            tokio::spawn(async move { store.update_meta(&id, &meta).await })
        })
        .collect();
    expect_current(advances, check).await;
    for t in updates {
        t.await.expect("task").expect("update_meta");
    }
    let stored = load(&*store, &r.id).await.expect("stored");
    assert_eq!(stored.sequence.requests, n, "{check}: requests lost");
    assert_eq!(stored.sequence.counter, 0, "{check}: counter moved");
    assert_eq!(stored.sequence.presented, Some(0), "{check}: presented");
    assert_eq!(
        stored.sequence.last_seen_at,
        now + n - 1,
        "{check}: last seen"
    );
    let p = &stored.meta.permissions;
    assert!(
        p.len() == 1 && p[0].starts_with('p'),
        "{check}: meta is one of those written: {p:?}"
    );
}

fn set(pairs: &[(&str, &[u8])]) -> DataChanges {
    let mut changes = DataChanges::default();
    for (k, v) in pairs {
        changes.set(*k, v.to_vec());
    }
    changes
}

fn data_limit(now_ms: u64) -> DataLimit {
    DataLimit {
        max_bytes: 16 * 1024,
        now_ms,
    }
}

/// The data a request reads: [`verify_and_advance`] with a non-rotating
/// request of the live token.
async fn read_data(store: &dyn SessionStore, id: &SessionId, now: u64, check: &str) -> SessionData {
    let live = load(store, id).await.map_or(0, |r| r.sequence.counter);
    let req = AdvanceRequest {
        rotate: Rotate::Never,
        ..request(*id, live, now)
    };
    let advance = store
        .verify_and_advance(id, &req)
        .await
        .unwrap_or_else(|e| panic!("{check}: verify_and_advance failed: {e:?}"))
        .unwrap_or_else(|| panic!("{check}: the session is gone"));
    assert!(
        advance.verdict.is_accepted(),
        "{check}: {:?}",
        advance.verdict
    );
    advance.data
}

/// Session data ([`write_data`](SessionStore::write_data)): written key by
/// key, returned with every accepted request (and never with a refused
/// one), bound to its lineage across new ids, limited in size (a refused
/// write changes nothing), never moving the sequence, refused on dead and
/// unknown sessions, and deleted with the session.
pub async fn session_data(store: &dyn SessionStore) {
    let check = "session_data";
    let now = wall_ms();
    let r = sample(&fresh_user(check), now);
    create(store, &r).await;
    let other = sample(&fresh_user(check), now);
    create(store, &other).await;
    assert!(
        read_data(store, &r.id, now, check).await.is_empty(),
        "{check}: new session has data"
    );

    let cart: &[u8] = br#"["apple","pear"]"#;
    let first = set(&[("cart", cart), ("csrf", b"\"t0k3n\"")]);
    store
        .write_data(&r.id, &first, &data_limit(now))
        .await
        .unwrap_or_else(|e| panic!("{check}: write_data failed: {e:?}"));
    let data = read_data(store, &r.id, now + 1, check).await;
    let before = load(store, &r.id).await.expect("stored");
    assert_eq!(data.get("cart"), Some(cart), "{check}: cart");
    assert_eq!(data.get("csrf"), Some(&b"\"t0k3n\""[..]), "{check}: csrf");
    assert_eq!(data.len(), 2, "{check}: keys");
    assert!(
        read_data(store, &other.id, now + 1, check).await.is_empty(),
        "{check}: data leaked to another session"
    );

    // Writes never move the sequence.
    store
        .write_data(&r.id, &set(&[("n", b"1")]), &data_limit(now + 2))
        .await
        .expect("write");
    let after = load(store, &r.id).await.expect("stored");
    assert_eq!(
        after.sequence,
        before.sequence.clone(),
        "{check}: a data write moved the sequence"
    );

    // Per key: a removal and a write leave the other keys alone.
    let mut second = DataChanges::default();
    second.remove("csrf");
    second.set("n", b"2".to_vec());
    store
        .write_data(&r.id, &second, &data_limit(now + 3))
        .await
        .expect("write");
    let data = read_data(store, &r.id, now + 4, check).await;
    assert_eq!(
        data.iter().collect::<Vec<_>>(),
        vec![("cart", cart), ("n", &b"2"[..])],
        "{check}: after a removal"
    );

    // The size limit: exactly at it is fine, one byte over changes nothing.
    let size = data.size();
    let limit = DataLimit {
        max_bytes: size + 10,
        now_ms: now + 5,
    };
    let fits = set(&[("pad", b"1234567")]); // 3 + 7 = 10 bytes
    store
        .write_data(&r.id, &fits, &limit)
        .await
        .expect("a write at the limit");
    let over = set(&[("pad", b"12345678")]);
    match store.write_data(&r.id, &over, &limit).await {
        Err(StoreError::DataTooLarge { size: got, max }) => {
            assert_eq!(max, size + 10, "{check}: max");
            assert_eq!(got, size + 11, "{check}: size reported");
        }
        other => panic!("{check}: a write over the limit: {other:?}"),
    }
    let data = read_data(store, &r.id, now + 6, check).await;
    assert_eq!(
        data.get("cart"),
        Some(cart),
        "{check}: a refused write changed a key"
    );
    assert_eq!(
        data.get("pad"),
        Some(&b"1234567"[..]),
        "{check}: a refused write changed a key"
    );

    // Clear, then writes, in one step.
    let mut reset = DataChanges::default();
    reset.clear();
    reset.set("fresh", b"true".to_vec());
    store
        .write_data(&r.id, &reset, &data_limit(now + 7))
        .await
        .expect("clear");
    let data = read_data(store, &r.id, now + 8, check).await;
    assert_eq!(
        data.iter().collect::<Vec<_>>(),
        vec![("fresh", &b"true"[..])],
        "{check}: clear"
    );

    // A new id of the lineage (renewal, elevation) keeps the data, and
    // writes through it.
    let mut local = load(store, &r.id).await.expect("stored");
    let new_id = r.id.next_generation();
    let req = AdvanceRequest {
        new_id: Some(new_id),
        ..request(r.id, local.sequence.counter, now + 9)
    };
    step(store, &mut local, &req, check).await;
    assert_eq!(
        read_data(store, &new_id, now + 10, check)
            .await
            .get("fresh"),
        Some(&b"true"[..]),
        "{check}: data after a new id"
    );
    store
        .write_data(&new_id, &set(&[("k", b"1")]), &data_limit(now + 11))
        .await
        .expect("write via the new id");

    // Unknown ids, a foreign id of the lineage key: NotFound, nothing written.
    for id in [SessionId::generate(), foreign_id(&local)] {
        assert!(
            matches!(
                store
                    .write_data(&id, &set(&[("x", b"1")]), &data_limit(now))
                    .await,
                Err(StoreError::NotFound)
            ),
            "{check}: write_data({id:?}) on no session"
        );
    }
    // A dead session (past its idle deadline) takes no data.
    let idle_end = local.idle_deadline().max(now + 12);
    assert!(
        matches!(
            store
                .write_data(&new_id, &set(&[("x", b"1")]), &data_limit(idle_end + 1))
                .await,
            Err(StoreError::NotFound)
        ),
        "{check}: write_data on an idle session"
    );

    // A refused request gets no data; theft revokes the session and drops it.
    let theft = AdvanceRequest {
        rotate: Rotate::Always,
        ..request(new_id, 0, now + 30 * SEC)
    };
    let refused = store
        .verify_and_advance(&new_id, &theft)
        .await
        .expect("advance")
        .expect("session");
    assert!(
        !refused.verdict.is_accepted(),
        "{check}: a replay of counter 0 was accepted: {:?}",
        refused.verdict
    );
    assert!(
        refused.data.is_empty(),
        "{check}: a refused request got the data"
    );
    assert!(
        matches!(
            store
                .write_data(&new_id, &set(&[("x", b"1")]), &data_limit(now + 31 * SEC))
                .await,
            Err(StoreError::NotFound)
        ),
        "{check}: write_data on a revoked session"
    );

    // Deleting the session deletes its data: a session created again under
    // the same lineage key has none.
    assert!(
        store.delete(&other.id).await.expect("delete"),
        "{check}: delete"
    );
    store
        .write_data(&r.id, &set(&[("x", b"1")]), &data_limit(now))
        .await
        .ok();
    assert!(
        store.delete(&r.id).await.expect("delete"),
        "{check}: delete"
    );
    let again = SessionRecord {
        id: r.id,
        ..sample(&fresh_user(check), now)
    };
    create(store, &again).await;
    assert!(
        read_data(store, &again.id, now + 1, check).await.is_empty(),
        "{check}: data outlived its session"
    );
    store.delete(&again.id).await.expect("delete");
}

/// 16 concurrent writers of distinct keys: every write survives (per-key
/// writes, no read-modify-write of the whole data). Then 16 writers of one
/// key: the key holds one of the values written (last writer wins).
pub async fn concurrent_data_writers_keep_every_key(store: Arc<dyn SessionStore>) {
    let check = "concurrent_data_writers";
    let now = wall_ms();
    let r = sample(&fresh_user(check), now);
    create(&*store, &r).await;
    let writers: Vec<_> = (0..16u32)
        .map(|i| {
            let (store, id) = (store.clone(), r.id);
            tokio::spawn(async move {
                let changes = set(&[(&format!("key{i}"), i.to_string().as_bytes())]);
                store.write_data(&id, &changes, &data_limit(now)).await
            })
        })
        .collect();
    for w in writers {
        w.await
            .expect("task")
            .unwrap_or_else(|e| panic!("{check}: write_data: {e:?}"));
    }
    let data = read_data(&*store, &r.id, now + 1, check).await;
    for i in 0..16u32 {
        assert_eq!(
            data.get(&format!("key{i}")),
            Some(i.to_string().as_bytes()),
            "{check}: key{i} was lost"
        );
    }
    let same: Vec<_> = (0..16u32)
        .map(|i| {
            let (store, id) = (store.clone(), r.id);
            tokio::spawn(async move {
                store
                    .write_data(
                        &id,
                        &set(&[("same", i.to_string().as_bytes())]),
                        &data_limit(now),
                    )
                    .await
            })
        })
        .collect();
    for w in same {
        w.await.expect("task").expect("write_data");
    }
    let data = read_data(&*store, &r.id, now + 2, check).await;
    let value: u32 = std::str::from_utf8(data.get("same").expect("same"))
        .expect("utf-8")
        .parse()
        .expect("a number");
    assert!(value < 16, "{check}: one of the values written");
    assert_eq!(data.len(), 17, "{check}: keys");
    store.delete(&r.id).await.expect("delete");
}

/// Data writes racing with rotating requests: neither loses anything (the
/// sequence counts every request, every key is there).
pub async fn data_writes_race_with_requests(store: Arc<dyn SessionStore>) {
    let check = "data_writes_race_with_requests";
    let now = wall_ms();
    let r = sample(&fresh_user(check), now);
    create(&*store, &r).await;
    let n = 24u64;
    let advances = spawn_reads(&store, r.id, now, n);
    let writes: Vec<_> = (0..n)
        .map(|i| {
            let (store, id) = (store.clone(), r.id);
            tokio::spawn(async move {
                store
                    .write_data(&id, &set(&[(&format!("w{i}"), b"1")]), &data_limit(now))
                    .await
            })
        })
        .collect();
    expect_current(advances, check).await;
    for w in writes {
        w.await.expect("task").expect("write_data");
    }
    let stored = load(&*store, &r.id).await.expect("stored");
    assert_eq!(stored.sequence.requests, n, "{check}: requests lost");
    assert_eq!(stored.sequence.counter, 0, "{check}: counter moved");
    assert_eq!(
        read_data(&*store, &r.id, now + n, check).await.len(),
        n as usize,
        "{check}: keys lost"
    );
    store.delete(&r.id).await.expect("delete");
}

/// A small deterministic generator (SplitMix64), so the suite needs no
/// random-number crate and a failure names a seed that reproduces it.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Random requests applied both to the store and to a local
/// [`SessionRecord::advance`]: verdicts and records must agree at every
/// step. The walk presents counters around the live one (the live one,
/// `p`, recent predecessors, counters ahead, anything), with tokens of
/// the current id, of earlier ids and of ids that only share the lineage
/// key; moves the lineage to new ids (`new_id`) now and then; varies the
/// time steps (backwards too), the grace (K, T) and the rotation policy;
/// and mixes in meta updates through any id. Sessions are replaced when
/// they die.
///
/// Deterministic for a seed (ids aside, which no decision depends on);
/// with `steps >= 300` it also checks that the walk reached every verdict
/// a store can answer, so a generator that stopped covering a case fails
/// loudly rather than passing quietly.
pub async fn differential(store: &dyn SessionStore, seed: u64, steps: u64) {
    let check = format!("differential (seed {seed:#x})");
    let mut rng = SplitMix(seed);
    let user = fresh_user("differential");
    let base = wall_ms();
    let mut now = base;
    let mut local = sample(&user, now);
    create(store, &local).await;
    let mut seen = BTreeSet::new();
    let (mut moves, mut foreign, mut earlier) = (0u64, 0u64, 0u64);
    for i in 0..steps {
        now = match rng.below(20) {
            0..=1 => now.saturating_sub(rng.below(2 * SEC)),
            2..=10 => now + rng.below(500),
            11..=16 => now + rng.below(8 * SEC),
            _ => now + rng.below(45 * MIN),
        };
        let ids: Vec<SessionId> = local.all_ids().collect();
        if rng.chance(8) {
            let mut meta = local.meta.clone();
            match rng.below(4) {
                0 => meta.permissions = vec![format!("p{i}")].into(),
                1 => meta.expires_at = now + rng.below(2 * HOUR),
                2 => meta.previous_permissions = vec![format!("q{i}"), String::new()].into(),
                _ => meta.idle_timeout_ms = rng.below(40 * MIN),
            }
            let through = rng.pick(&ids);
            store
                .update_meta(&through, &meta)
                .await
                .unwrap_or_else(|e| panic!("{check}: update_meta at step {i}: {e:?}"));
            local.meta = meta;
        }
        let seq = &local.sequence;
        let live = seq.counter;
        let presented = match rng.below(20) {
            0..=6 => live,
            7..=9 => seq.presented.unwrap_or(live),
            10..=11 if !seq.retired.is_empty() => {
                let r = rng.pick(&seq.retired.to_vec());
                r.from + rng.below(r.to - r.from + 1)
            }
            10..=14 => live.saturating_sub(1 + rng.below(3)),
            15..=16 => live + 1 + rng.below(4),
            _ => rng.below(live + 2),
        };
        let session = match rng.below(20) {
            19 => foreign_id(&local),
            13.. if !local.previous_ids.is_empty() => rng.pick(&local.previous_ids),
            _ => local.id,
        };
        let new_id = match rng.below(20) {
            0..=2 => Some(local.id.next_generation()),
            3 => Some(SessionId::generate()),
            4 => Some(rng.pick(&ids)),
            _ => None,
        };
        let rotate = match rng.below(7) {
            0 | 1 => Rotate::Always,
            2 => Rotate::Never,
            3 => Rotate::EveryN(rng.below(4)),
            4 => Rotate::ReplaceUndelivered,
            _ => Rotate::MinInterval(rng.below(3 * SEC)),
        };
        let req = AdvanceRequest {
            session,
            presented,
            now_ms: now,
            grace_depth: rng.below(4) as u32,
            grace_window_ms: match rng.below(6) {
                0 => 0,
                1 => rng.below(20 * SEC),
                _ => rng.below(5 * SEC),
            },
            rotate,
            new_id,
            max_ahead: match rng.below(3) {
                0 => 0,
                1 => rng.below(3),
                _ => 64,
            },
        };
        let member = local.has_id(&session);
        let before = local.clone();
        let got = store
            .verify_and_advance(&session, &req)
            .await
            .unwrap_or_else(|e| panic!("{check}: step {i}: {e:?}"));
        match got {
            _ if !member => {
                foreign += 1;
                assert_eq!(
                    got, None,
                    "{check}: step {i}: an id that is not the lineage's: {req:?}"
                );
            }
            None if now >= local.purge_at() => {
                // A store with native expiry may forget a session past
                // its deadlines.
                local = sample(&user, now);
                create(store, &local).await;
                continue;
            }
            None => panic!("{check}: step {i}: the store lost a live session"),
            Some(a) => {
                let expected = local.advance(&req);
                seen.insert(expected.as_str());
                earlier += u64::from(session != before.id && expected.is_accepted());
                moves += u64::from(local.id != before.id);
                assert_eq!(
                    a.verdict, expected,
                    "{check}: step {i}: verdict for {req:?} on {before:?}"
                );
                assert_eq!(
                    *a.record, local,
                    "{check}: step {i}: record after {req:?} on {before:?}"
                );
            }
        }
        if rng.chance(10) {
            let through = rng.pick(&local.all_ids().collect::<Vec<_>>());
            assert_eq!(
                load(store, &through).await.as_ref(),
                Some(&local),
                "{check}: step {i}: load after advance"
            );
        }
        if !local.is_live(now) && rng.chance(60) {
            let through = rng.pick(&local.all_ids().collect::<Vec<_>>());
            assert!(
                store.delete(&through).await.expect("delete"),
                "{check}: step {i}: delete"
            );
            local = sample(&user, now);
            create(store, &local).await;
        }
    }
    store.delete_by_user(&user).await.expect("delete_by_user");
    if steps >= 300 {
        // The walk is long enough to have reached every verdict; if not,
        // the generator (not the store) needs fixing.
        for v in [
            "rotated",
            "current",
            "pending",
            "recovered",
            "grace",
            "ahead",
            "reused",
            "revoked",
        ] {
            assert!(
                seen.contains(v),
                "{check}: no {v} verdict in {steps} steps: {seen:?}"
            );
        }
        assert!(
            seen.contains("expired") || seen.contains("idle_timeout"),
            "{check}: no expiry in {steps} steps: {seen:?}"
        );
        assert!(
            moves > 0 && foreign > 0 && earlier > 0,
            "{check}: {moves} lineage moves, {foreign} foreign ids, {earlier} accepted \
             requests with earlier ids in {steps} steps"
        );
    }
}
