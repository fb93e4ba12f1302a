//! The contract every [`SessionStore`] must keep, as one async call
//! (feature `test-util`).
//!
//! [`run`] checks a store end to end: records round-trip exactly, ids
//! conflict, [`update_meta`](SessionStore::update_meta) never touches the
//! sequence, [`verify_and_advance`](SessionStore::verify_and_advance)
//! applies [`SessionRecord::advance`] exactly (a randomized differential
//! check against a local copy), atomically under concurrent requests,
//! expiry verdicts at their exact boundaries, the per-user index, the
//! errors, and numbers up to the documented limits. It panics with a
//! message naming the failed check, like `assert!`.
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

use super::SessionStore;
use crate::error::StoreError;
use crate::sequence::{AdvanceRequest, RevocationReason, Rotate, SequenceState, Verdict};
use crate::session::{SessionContext, SessionFlags, SessionId, SessionMeta, SessionRecord};

const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

/// Runs every check of the suite against `store`; panics on the first
/// failure.
pub async fn run(store: Arc<dyn SessionStore>) {
    records_round_trip(&*store).await;
    errors(&*store).await;
    update_meta_leaves_the_sequence(&*store).await;
    sequence_rule(&*store).await;
    expiry(&*store).await;
    user_index(&*store).await;
    large_numbers(&*store).await;
    concurrent_requests_are_atomic(store.clone()).await;
    concurrent_meta_updates_never_move_the_sequence(store.clone()).await;
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

/// A session created at `now` with every meta field set, so a store that
/// drops a field fails the round trip.
fn sample(user: &str, now: u64) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate(),
        user_id: user.to_owned(),
        created_at: now,
        meta: SessionMeta {
            context: SessionContext {
                ip: Some("203.0.113.7".parse().expect("an IP literal")),
                user_agent: Some("Mozilla/5.0 (conformance) \"quoted\" ü".into()),
                device_id: Some("device-1".into()),
                location: Some("eu-west".into()),
            },
            permissions: vec!["read".into(), "write:{all}".into()],
            expires_at: now + 8 * HOUR,
            absolute_expires_at: now + 24 * HOUR,
            idle_timeout_ms: 30 * MIN,
            renewals: 2,
            flags: SessionFlags {
                elevated: true,
                context_mismatch: false,
                anomaly: true,
            },
            renewed_from: Some(SessionId::generate()),
            superseded_by: None,
        },
        sequence: SequenceState::new(now),
    }
}

fn request(presented: u64, now_ms: u64) -> AdvanceRequest {
    AdvanceRequest {
        presented,
        now_ms,
        grace_depth: 1,
        grace_window_ms: 10 * SEC,
        rotate: Rotate::Always,
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

/// Applies `req` to the store and to a local copy; checks both agree and
/// returns the verdict.
async fn step(
    store: &dyn SessionStore,
    local: &mut SessionRecord,
    req: &AdvanceRequest,
    check: &str,
) -> Verdict {
    let expected = local.advance(req);
    let got = store
        .verify_and_advance(&local.id, req)
        .await
        .unwrap_or_else(|e| panic!("{check}: verify_and_advance failed: {e:?}"))
        .unwrap_or_else(|| panic!("{check}: verify_and_advance lost the session"));
    assert_eq!(
        got.verdict, expected,
        "{check}: verdict for {req:?} (store) vs SessionRecord::advance"
    );
    assert_eq!(
        &got.record, local,
        "{check}: record after {req:?} (store) vs SessionRecord::advance"
    );
    expected
}

/// A created record loads back equal, field for field, including a
/// revoked one and one with a long retired list.
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
    worn.meta.context = SessionContext::default();
    worn.meta.permissions.clear();
    worn.meta.renewed_from = None;
    worn.meta.superseded_by = Some(SessionId::generate());
    worn.sequence = SequenceState {
        counter: 42,
        requests: 99,
        last_seen_at: now - 5,
        last_rotated_at: now - 10,
        retired_at: vec![now - 30, now - 20, now - 10],
        revoked: Some(RevocationReason::TokenReused),
    };
    create(store, &worn).await;
    assert_eq!(
        load(store, &worn.id).await.as_ref(),
        Some(&worn),
        "records_round_trip: a revoked, superseded record loads back equal"
    );
    assert_eq!(
        load(store, &SessionId::generate()).await,
        None,
        "records_round_trip: an unknown id loads as None"
    );
}

/// Conflicts, unknown sessions, and what each operation answers for them.
pub async fn errors(store: &dyn SessionStore) {
    let now = wall_ms();
    let user = fresh_user("errors");
    let record = sample(&user, now);
    create(store, &record).await;
    let mut twin = sample(&user, now + 1);
    twin.id = record.id;
    twin.user_id = fresh_user("errors-twin");
    assert!(
        matches!(store.create(&twin).await, Err(StoreError::Conflict)),
        "errors: creating a taken id is a Conflict"
    );
    assert_eq!(
        load(store, &record.id).await.as_ref(),
        Some(&record),
        "errors: a conflicting create leaves the original untouched"
    );
    let unknown = SessionId::generate();
    assert!(
        matches!(
            store.update_meta(&unknown, &record.meta).await,
            Err(StoreError::NotFound)
        ),
        "errors: update_meta of an unknown session is NotFound"
    );
    assert_eq!(
        load(store, &unknown).await,
        None,
        "errors: update_meta of an unknown session creates nothing"
    );
    assert!(
        matches!(
            store.verify_and_advance(&unknown, &request(0, now)).await,
            Ok(None)
        ),
        "errors: verify_and_advance of an unknown session is Ok(None)"
    );
    assert!(
        matches!(store.delete(&unknown).await, Ok(false)),
        "errors: deleting an unknown session is Ok(false)"
    );
    assert!(
        matches!(store.delete(&record.id).await, Ok(true)),
        "errors: deleting a session is Ok(true)"
    );
    assert!(
        matches!(store.delete(&record.id).await, Ok(false)),
        "errors: deleting it again is Ok(false)"
    );
    assert_eq!(load(store, &record.id).await, None, "errors: deleted");
}

/// `update_meta` replaces the meta and nothing else, even with a meta read
/// before requests advanced the sequence.
pub async fn update_meta_leaves_the_sequence(store: &dyn SessionStore) {
    let now = wall_ms();
    let mut local = sample(&fresh_user("update_meta"), now);
    create(store, &local).await;
    let stale_meta = local.meta.clone();
    for i in 0..3 {
        step(store, &mut local, &request(i, now + i), "update_meta").await;
    }
    let mut meta = stale_meta;
    meta.permissions = vec!["admin".into()];
    meta.flags.context_mismatch = true;
    meta.expires_at += HOUR;
    meta.superseded_by = Some(SessionId::generate());
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
    // The superseded flag now stops rotation.
    let v = step(store, &mut local, &request(3, now + 10), "update_meta").await;
    assert_eq!(v, Verdict::Current, "a superseded session does not rotate");
}

/// The rule's cases one by one: rotation, grace, ahead, reuse, revoked,
/// deeper grace, and each rotation policy.
pub async fn sequence_rule(store: &dyn SessionStore) {
    let check = "sequence_rule";
    let now = wall_ms();
    let user = fresh_user(check);

    let mut r = sample(&user, now);
    create(store, &r).await;
    let cases = [
        (request(0, now + 1_000), Verdict::Rotated),
        (request(0, now + 11_000), Verdict::Grace),
        (request(5, now + 11_001), Verdict::Ahead),
        (request(1, now + 11_002), Verdict::Rotated),
        (request(2, now + 11_003), Verdict::Rotated),
        (request(2, now + 11_004), Verdict::Grace),
        (request(1, now + 11_005), Verdict::Reused),
        (request(3, now + 11_006), Verdict::Revoked),
    ];
    for (req, want) in cases {
        assert_eq!(
            step(store, &mut r, &req, check).await,
            want,
            "{check}: {req:?}"
        );
    }

    let mut r = sample(&user, now);
    create(store, &r).await;
    let deep = |presented, now_ms| AdvanceRequest {
        grace_depth: 3,
        ..request(presented, now_ms)
    };
    for c in 0..5 {
        step(store, &mut r, &deep(c, now + c + 1), check).await;
    }
    assert_eq!(
        step(store, &mut r, &deep(2, now + 10), check).await,
        Verdict::Grace
    );
    assert_eq!(
        step(store, &mut r, &deep(1, now + 10), check).await,
        Verdict::Reused
    );

    let mut r = sample(&user, now);
    create(store, &r).await;
    let with = |rotate, now_ms, presented| AdvanceRequest {
        rotate,
        ..request(presented, now_ms)
    };
    let policies = [
        (with(Rotate::Never, now + 1, 0), Verdict::Current),
        (with(Rotate::EveryN(3), now + 2, 0), Verdict::Current),
        (with(Rotate::EveryN(3), now + 3, 0), Verdict::Rotated),
        (with(Rotate::EveryN(1), now + 4, 1), Verdict::Rotated),
        (with(Rotate::EveryN(0), now + 5, 2), Verdict::Rotated),
        (
            with(Rotate::MinInterval(100), now + 50, 3),
            Verdict::Current,
        ),
        (
            with(Rotate::MinInterval(100), now + 105, 3),
            Verdict::Rotated,
        ),
        // A request stamped before the last rotation (another node's
        // clock): no negative interval.
        (with(Rotate::MinInterval(0), now + 100, 4), Verdict::Rotated),
        (with(Rotate::MinInterval(1), now + 100, 5), Verdict::Current),
    ];
    for (req, want) in policies {
        assert_eq!(
            step(store, &mut r, &req, check).await,
            want,
            "{check}: {req:?}"
        );
    }
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
    let end = r.meta.expires_at;
    assert_eq!(
        step(store, &mut r, &request(0, end - 1), check).await,
        Verdict::Rotated
    );
    let before = r.clone();
    assert_eq!(
        step(store, &mut r, &request(1, end), check).await,
        Verdict::Expired
    );
    assert_eq!(r, before, "{check}: an expired request changes nothing");

    let mut r = sample(&user, now);
    r.meta.expires_at = r.meta.absolute_expires_at + HOUR;
    r.meta.idle_timeout_ms = 48 * HOUR;
    create(store, &r).await;
    let end = r.meta.absolute_expires_at;
    assert_eq!(
        step(store, &mut r, &request(0, end), check).await,
        Verdict::Expired
    );

    let mut r = sample(&user, now);
    create(store, &r).await;
    let idle = r.meta.idle_timeout_ms;
    assert_eq!(
        step(store, &mut r, &request(0, now + idle - 1), check).await,
        Verdict::Rotated
    );
    let seen = r.sequence.last_seen_at;
    assert_eq!(
        step(store, &mut r, &request(1, seen + idle), check).await,
        Verdict::IdleTimeout
    );

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

/// `list_by_user` finds exactly a user's sessions; `delete` and
/// `delete_by_user` keep it exact and leave other users alone.
pub async fn user_index(store: &dyn SessionStore) {
    let check = "user_index";
    let now = wall_ms();
    let alice = format!("{} {{odd}} ü*?[x]", fresh_user(check));
    let bob = fresh_user(check);
    let mine: Vec<SessionRecord> = (0..3).map(|_| sample(&alice, now)).collect();
    let theirs = sample(&bob, now);
    for r in mine.iter().chain([&theirs]) {
        create(store, r).await;
    }
    let ids = |records: &[SessionRecord]| records.iter().map(|r| r.id).collect::<BTreeSet<_>>();
    let listed = store.list_by_user(&alice).await.expect("list_by_user");
    assert_eq!(ids(&listed), ids(&mine), "{check}: list_by_user");
    for r in &listed {
        assert_eq!(
            load(store, &r.id).await.as_ref(),
            Some(r),
            "{check}: listed records are the stored ones"
        );
    }
    assert!(store.delete(&mine[0].id).await.expect("delete"));
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
/// (sessions that never end) round-trip and advance exactly.
pub async fn large_numbers(store: &dyn SessionStore) {
    let check = "large_numbers";
    let now = wall_ms();
    let mut r = sample(&fresh_user(check), now);
    let big = 1u64 << 52;
    r.sequence.counter = big;
    r.sequence.requests = big - 1;
    r.meta.expires_at = u64::MAX;
    r.meta.absolute_expires_at = u64::MAX;
    r.meta.idle_timeout_ms = u64::MAX;
    create(store, &r).await;
    assert_eq!(
        load(store, &r.id).await.as_ref(),
        Some(&r),
        "{check}: round trip"
    );
    assert_eq!(
        step(store, &mut r, &request(big, now + 1), check).await,
        Verdict::Rotated
    );
    assert_eq!(r.sequence.counter, big + 1);
    assert_eq!(
        step(store, &mut r, &request(big, now + 2), check).await,
        Verdict::Grace
    );
    assert_eq!(
        step(store, &mut r, &request(big + 7, now + 3), check).await,
        Verdict::Ahead
    );
    assert_eq!(
        load(store, &r.id).await.as_ref(),
        Some(&r),
        "{check}: stored"
    );
}

/// Many requests at once: with one token, exactly one rotates and the rest
/// get the grace; with workers racing along the sequence, the counter ends
/// at exactly the number of rotations and no request is lost.
pub async fn concurrent_requests_are_atomic(store: Arc<dyn SessionStore>) {
    let check = "concurrent_requests_are_atomic";
    let now = wall_ms();
    let r = sample(&fresh_user(check), now);
    create(&*store, &r).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            let id = r.id;
            tokio::spawn(async move {
                let req = AdvanceRequest {
                    grace_window_ms: MIN,
                    ..request(0, now + 1 + i)
                };
                store.verify_and_advance(&id, &req).await
            })
        })
        .collect();
    let mut verdicts = Vec::new();
    for t in tasks {
        let advance = t
            .await
            .expect("task")
            .unwrap_or_else(|e| panic!("{check}: {e:?}"))
            .expect("session");
        verdicts.push(advance.verdict);
    }
    let rotated = verdicts.iter().filter(|v| **v == Verdict::Rotated).count();
    let grace = verdicts.iter().filter(|v| **v == Verdict::Grace).count();
    assert_eq!(
        (rotated, grace),
        (1, 31),
        "{check}: 32 requests with one token: one rotates, 31 get the grace ({verdicts:?})"
    );
    let stored = load(&*store, &r.id).await.expect("stored");
    assert_eq!(stored.sequence.counter, 1, "{check}: counter");
    assert_eq!(stored.sequence.requests, 32, "{check}: requests");

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
                        ..request(latest.load(Ordering::SeqCst), now + w * 1000 + i)
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
                    if a.verdict == Verdict::Rotated {
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
        "{check}: the counter moved once per Rotated verdict"
    );
    assert_eq!(
        stored.sequence.requests,
        workers * per_worker,
        "{check}: every accepted request was counted"
    );
}

/// `update_meta` racing requests: the sequence counts every request and
/// the meta is one of those written.
pub async fn concurrent_meta_updates_never_move_the_sequence(store: Arc<dyn SessionStore>) {
    let check = "concurrent_meta_updates";
    let now = wall_ms();
    let r = sample(&fresh_user(check), now);
    create(&*store, &r).await;
    let n = 40u64;
    let advances: Vec<_> = (0..n)
        .map(|i| {
            let (store, id) = (store.clone(), r.id);
            tokio::spawn(async move {
                let req = AdvanceRequest {
                    rotate: Rotate::Never,
                    ..request(0, now + i)
                };
                store.verify_and_advance(&id, &req).await
            })
        })
        .collect();
    let updates: Vec<_> = (0..n)
        .map(|i| {
            let (store, id) = (store.clone(), r.id);
            let mut meta = r.meta.clone();
            meta.permissions = vec![format!("p{i}")];
            tokio::spawn(async move { store.update_meta(&id, &meta).await })
        })
        .collect();
    for t in advances {
        let a = t.await.expect("task").expect("advance").expect("session");
        assert_eq!(a.verdict, Verdict::Current, "{check}");
    }
    for t in updates {
        t.await.expect("task").expect("update_meta");
    }
    let stored = load(&*store, &r.id).await.expect("stored");
    assert_eq!(stored.sequence.requests, n, "{check}: requests lost");
    assert_eq!(stored.sequence.counter, 0, "{check}: counter moved");
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
}

/// Random requests applied both to the store and to a local
/// [`SessionRecord::advance`]: verdicts and records must agree at every
/// step. Sessions are replaced when they die; meta updates (superseding,
/// shorter or longer lifetimes) are mixed in.
pub async fn differential(store: &dyn SessionStore, seed: u64, steps: u64) {
    let check = format!("differential (seed {seed:#x})");
    let mut rng = SplitMix(seed);
    let user = fresh_user("differential");
    let base = wall_ms();
    let mut now = base;
    let mut local = sample(&user, now);
    create(store, &local).await;
    let mut seen = BTreeSet::new();
    for i in 0..steps {
        now = match rng.below(10) {
            0 => now.saturating_sub(rng.below(2 * SEC)),
            1..=5 => now + rng.below(500),
            6..=8 => now + rng.below(8 * SEC),
            _ => now + rng.below(45 * MIN),
        };
        if rng.chance(8) {
            let mut meta = local.meta.clone();
            match rng.below(3) {
                0 => {
                    meta.superseded_by = match meta.superseded_by {
                        Some(_) => None,
                        None => Some(SessionId::generate()),
                    }
                }
                1 => meta.expires_at = now + rng.below(2 * HOUR),
                _ => meta.idle_timeout_ms = rng.below(40 * MIN),
            }
            store
                .update_meta(&local.id, &meta)
                .await
                .unwrap_or_else(|e| panic!("{check}: update_meta at step {i}: {e:?}"));
            local.meta = meta;
        }
        let live = local.sequence.counter;
        let presented = match rng.below(10) {
            0..=4 => live,
            5..=7 => live.saturating_sub(1 + rng.below(3)),
            8 => live + 1 + rng.below(2),
            _ => rng.below(live + 2),
        };
        let rotate = match rng.below(6) {
            0 | 1 => Rotate::Always,
            2 => Rotate::Never,
            3 => Rotate::EveryN(rng.below(4)),
            _ => Rotate::MinInterval(rng.below(3 * SEC)),
        };
        let req = AdvanceRequest {
            presented,
            now_ms: now,
            grace_depth: rng.below(4) as u32,
            grace_window_ms: rng.below(5 * SEC),
            rotate,
        };
        let expected = local.clone().advance(&req);
        let got = store
            .verify_and_advance(&local.id, &req)
            .await
            .unwrap_or_else(|e| panic!("{check}: step {i}: {e:?}"));
        match got {
            None if now >= local.purge_at() => {
                // A store with native expiry may forget a session past
                // its deadlines.
                local = sample(&user, now);
                create(store, &local).await;
                continue;
            }
            None => panic!("{check}: step {i}: the store lost a live session"),
            Some(a) => {
                seen.insert(expected.as_str());
                local.advance(&req);
                assert_eq!(
                    a.verdict, expected,
                    "{check}: step {i}: verdict for {req:?}"
                );
                assert_eq!(a.record, local, "{check}: step {i}: record after {req:?}");
            }
        }
        if rng.chance(10) {
            assert_eq!(
                load(store, &local.id).await.as_ref(),
                Some(&local),
                "{check}: step {i}: load after advance"
            );
        }
        if local.is_dead(now) && rng.chance(30) {
            store.delete(&local.id).await.expect("delete");
            local = sample(&user, now);
            create(store, &local).await;
        }
    }
    store.delete_by_user(&user).await.expect("delete_by_user");
    if steps >= 200 {
        // The walk is long enough to have reached every verdict; if not,
        // the generator (not the store) needs fixing.
        for v in ["rotated", "current", "grace", "ahead", "reused", "revoked"] {
            assert!(
                seen.contains(v),
                "{check}: no {v} verdict in {steps} steps: {seen:?}"
            );
        }
        assert!(
            seen.contains("expired") || seen.contains("idle_timeout"),
            "{check}: no expiry in {steps} steps: {seen:?}"
        );
    }
}
