//! The sequence rule: what a presented counter means against the stored one.
//!
//! This is the reference implementation every store applies atomically
//! inside [`SessionStore::verify_and_advance`](crate::SessionStore::verify_and_advance)
//! (the Redis store runs the same rule as a Lua script; the conformance
//! suite and the protocol model checker hold both to it). `docs/protocol.md`
//! argues each case against both adversaries: a thief with a copy made at
//! the worst moment, and an honest browser on a bad network.
//!
//! The lineage keeps the live counter `n`, the highest counter ever
//! presented `p` (`None` before the first request), when `n` was issued,
//! and recent retirements. A request presents `c`:
//!
//! | case                                   | verdict | answer |
//! |----------------------------------------|---------|--------|
//! | `c > n + N`                            | [`Verdict::Ahead`]: refused, nothing changes | 401, cookie kept |
//! | `n < c <= n + N`                        | [`Verdict::FastForward`]: the store lost writes; `n = p = c` | no token |
//! | `c == n`                               | [`Verdict::Rotated`] / [`Verdict::Current`] | the next token / none |
//! | `c == p < n`, `n` issued `<= 2T` ago    | [`Verdict::Pending`]: a burst or a retry while `n` is in flight | no token |
//! | `c == p < n`, `n` issued `> 2T` ago     | [`Verdict::Recovered`]: `n`'s response was lost; `(p, n]` abandoned | a fresh token |
//! | `c < n` otherwise, retired `<= T` ago   | [`Verdict::Grace`]: in flight when its successor was first used | no token |
//! | `c < n` otherwise (abandoned ones too)  | [`Verdict::Reused`]: two holders, the lineage is revoked | 401 |
//!
//! A counter is *retired* when a newer counter is first presented (the
//! holder moved past it). Abandoned counters are never retired: nobody
//! honest holds one, so presenting one is theft at once. Grace answers
//! never carry a token: a copy within its grace is served but can never
//! move forward, and the honest client's cookie jar can never be rolled
//! back, because every token travels in exactly one response.
//!
//! The tag check before the store guarantees that `c` was minted by the
//! server, and a store that keeps its writes never sees a minted counter
//! above `n`: `c > n` means the store lost writes (a failover with
//! replication lag, a restart from an older snapshot). Within `N`
//! ([`AdvanceRequest::max_ahead`], `token.max_ahead`, default 64) the
//! sequence is moved forward to `c` as if `c` were the live token in use,
//! and everything before it is retired now; `docs/protocol.md` argues it.

use serde::{Deserialize, Serialize};

mod id;
mod meta;
mod retired;
mod sequence;

pub use id::{LineageKey, SessionId};
pub use meta::{RecordSeal, SessionContext, SessionFlags, SessionMeta};
pub use retired::{MAX_RETIRED, Retirements};
pub use sequence::{AdvanceRequest, Retirement, RevocationReason, Rotate, SequenceState, Verdict};

/// A session lineage as a store keeps it: one record from login to logout,
/// whatever renewals and elevations happened in between.
///
/// Stores key it by [`lineage`](Self::lineage) and must find it from any of
/// its ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// In this order (`repr(C)`): what every request reads (the id it is found
// by, the sequence, the meta's deadlines and seal) in the record's first
// 144 bytes, next to the reference counts a store's `Arc` puts before it,
// so that a request to a record out of the CPU's caches waits for three
// cache lines instead of five (docs/benchmarks.md, validate).
#[repr(C)]
pub struct SessionRecord {
    /// The session's current id (the last renewal or elevation gave it).
    pub id: SessionId,
    /// The token sequence, written only by `verify_and_advance`.
    pub sequence: SequenceState,
    /// The descriptive half, written by `update_meta`.
    pub meta: SessionMeta,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// The ids the lineage had before, oldest first. Their tokens are
    /// predecessors of the live one: accepted within the grace, theft after.
    #[serde(default)]
    pub previous_ids: Box<[SessionId]>,
    /// The user the session belongs to (boxed: 8 bytes less than a
    /// `String` in every record).
    pub user_id: Box<str>,
}

impl SessionRecord {
    /// The key a store keeps the record under.
    pub fn lineage(&self) -> LineageKey {
        self.id.lineage()
    }

    /// Whether `id` is the current or an earlier id of this lineage.
    pub fn has_id(&self, id: &SessionId) -> bool {
        self.id == *id || self.previous_ids.contains(id)
    }

    /// Every id of the lineage, oldest first, the current one last.
    pub fn all_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.previous_ids
            .iter()
            .copied()
            .chain(std::iter::once(self.id))
    }

    /// Why the session can no longer be used at `now_ms` (revoked,
    /// expired, idle too long), or `None` while it is live: the first
    /// checks of [`advance`](Self::advance), and the one liveness rule
    /// every other operation uses.
    pub fn end_reason(&self, now_ms: u64) -> Option<Verdict> {
        if self.sequence.revoked.is_some() {
            Some(Verdict::Revoked)
        } else if now_ms >= self.meta.ends_at() {
            Some(Verdict::Expired)
        } else if now_ms >= self.idle_deadline() {
            Some(Verdict::IdleTimeout)
        } else {
            None
        }
    }

    /// Whether the session can still be used at `now_ms`
    /// ([`end_reason`](Self::end_reason) is `None`).
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.end_reason(now_ms).is_none()
    }

    /// When the session ends for inactivity if no request comes first.
    pub fn idle_deadline(&self) -> u64 {
        self.sequence
            .last_seen_at
            .saturating_add(self.meta.idle_timeout_ms)
    }

    /// When a store may forget the record: the earliest of its deadlines.
    /// Revoked records are kept until then too, so a late replay still
    /// reports `session_revoked` rather than an unknown session.
    pub fn purge_at(&self) -> u64 {
        self.meta.ends_at().min(self.idle_deadline())
    }
}

impl SessionRecord {
    /// Applies the sequence rule to this record in place and says what it
    /// decided. Stores call this under their lock (or transaction) so that
    /// the read, the decision and the write are one atomic step.
    pub fn advance(&mut self, req: &AdvanceRequest) -> Verdict {
        let now = req.now_ms;
        if let Some(ended) = self.end_reason(now) {
            return ended;
        }
        if !self.has_id(&req.session) {
            return Verdict::Unknown;
        }
        let c = req.presented;
        let live = self.sequence.counter;
        if c > live {
            if req.rotate == Rotate::ReplaceUndelivered || c - live > req.max_ahead {
                return Verdict::Ahead;
            }
            // The server minted `c` (its tag verified before the store was
            // asked), so the store lost the writes that issued it. `c` is
            // taken as the live token in use, without a new token (one
            // minted now for `c + 1` could reach the jar after a newer one
            // the lost writes had issued). Everything the store knew is
            // retired now, so requests still in flight with those tokens
            // are served within the grace, and a second holder of one is
            // caught after it.
            self.accept(now);
            let seq = &mut self.sequence;
            if let Some(p) = seq.presented
                && p < live
            {
                seq.retire(p, p, now, req);
            }
            seq.retire(live, c - 1, now, req);
            seq.counter = c;
            seq.presented = Some(c);
            seq.issued_at = now;
            return Verdict::FastForward;
        }
        if req.rotate == Rotate::ReplaceUndelivered {
            // Renewal or elevation inside a handler, with the token this
            // same request was just issued: it never reached the client,
            // so it is replaced rather than used (using it would retire
            // the client's token, and a lost response would then leave the
            // client holding a token past its grace). Anything else means
            // another request moved the session on: nothing changes.
            if c != live || self.sequence.presented == Some(live) {
                return Verdict::Pending;
            }
            self.issue(now, req);
            return Verdict::Rotated;
        }
        if c == live {
            self.accept(now);
            let seq = &mut self.sequence;
            if seq.presented != Some(live) {
                // First use of the live token: its predecessor is retired.
                if let Some(p) = seq.presented {
                    seq.retire(p, p, now, req);
                }
                seq.presented = Some(live);
            }
            let rotate = req.new_id.is_some()
                || match req.rotate {
                    Rotate::Always => true,
                    Rotate::Never => false,
                    Rotate::EveryN(n) => n <= 1 || seq.requests.is_multiple_of(n),
                    Rotate::MinInterval(ms) => now.saturating_sub(seq.issued_at) >= ms,
                    Rotate::ReplaceUndelivered => unreachable!("handled above"),
                };
            if !rotate {
                return Verdict::Current;
            }
            self.issue(now, req);
            return Verdict::Rotated;
        }
        if self.sequence.presented == Some(c) {
            self.accept(now);
            // The live token's response may still be on its way for T
            // (response leg), and a request sent just before it arrived
            // travels for up to T more (request leg): wait 2T.
            if now.saturating_sub(self.sequence.issued_at) <= req.grace_window_ms.saturating_mul(2)
            {
                return Verdict::Pending;
            }
            // `p+1..=n` are abandoned: no retirement is recorded for them,
            // so presenting one later is theft at once. Nobody honest holds
            // one: its response would have arrived within T of its issue,
            // and every request sent with `p` before that within 2T.
            self.issue(now, req);
            return Verdict::Recovered;
        }
        match self.sequence.retired_at(c) {
            Some(at) if now.saturating_sub(at) <= req.grace_window_ms => {
                self.accept(now);
                Verdict::Grace
            }
            _ => {
                self.sequence.revoked = Some(RevocationReason::TokenReused);
                Verdict::Reused
            }
        }
    }

    fn accept(&mut self, now: u64) {
        let seq = &mut self.sequence;
        seq.requests += 1;
        seq.last_seen_at = seq.last_seen_at.max(now);
    }

    fn issue(&mut self, now: u64, req: &AdvanceRequest) {
        let seq = &mut self.sequence;
        seq.counter += 1;
        seq.issued_at = now;
        if let Some(new_id) = req.new_id
            && new_id != self.id
            && new_id.lineage() == self.id.lineage()
        {
            // Exactly as long as needed: a lineage rarely has more than
            // a few ids, and a renewal is rare next to the requests.
            let mut ids = std::mem::take(&mut self.previous_ids).into_vec();
            ids.push(self.id);
            self.previous_ids = ids.into_boxed_slice();
            self.id = new_id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every request reads lies in the record's first 144 bytes
    /// (three cache lines with an `Arc`'s counts before it), the rest
    /// after it.
    #[test]
    fn what_a_request_reads_lies_together() {
        use std::mem::{offset_of, size_of};
        let hot_end = [
            offset_of!(SessionRecord, id) + size_of::<SessionId>(),
            offset_of!(SessionRecord, sequence) + size_of::<SequenceState>(),
            offset_of!(SessionRecord, meta)
                + offset_of!(SessionMeta, expires_at)
                + size_of::<u64>(),
            offset_of!(SessionRecord, meta)
                + offset_of!(SessionMeta, absolute_expires_at)
                + size_of::<u64>(),
            offset_of!(SessionRecord, meta)
                + offset_of!(SessionMeta, idle_timeout_ms)
                + size_of::<u64>(),
            offset_of!(SessionRecord, meta)
                + offset_of!(SessionMeta, seal)
                + size_of::<Option<RecordSeal>>(),
        ]
        .into_iter()
        .max();
        assert!(hot_end <= Some(144), "{hot_end:?}");
        for cold in [
            offset_of!(SessionRecord, meta) + offset_of!(SessionMeta, context),
            offset_of!(SessionRecord, user_id),
            offset_of!(SessionRecord, previous_ids),
        ] {
            assert!(cold >= 144, "{cold}");
        }
    }

    #[test]
    fn session_ids_are_random_and_round_trip_as_hex() {
        let a = SessionId::generate();
        assert_ne!(a, SessionId::generate());
        let hex = a.to_string();
        assert_eq!(hex.len(), 32);
        assert_eq!(SessionId::parse_hex(&hex), Some(a));
        assert_eq!(SessionId::parse_hex("zz"), None);
        assert_eq!(SessionId::parse_hex(&"é".repeat(16)), None);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), a);
    }

    #[test]
    fn record_seals_round_trip_as_text() {
        let seal = RecordSeal::from_parts(7, [0xab; 16]);
        let text = seal.to_string();
        assert_eq!(text, format!("7.{}", "ab".repeat(16)));
        assert_eq!(RecordSeal::parse(&text), Some(seal));
        let json = serde_json::to_string(&seal).unwrap();
        assert_eq!(serde_json::from_str::<RecordSeal>(&json).unwrap(), seal);
        for bad in [
            "",
            ".",
            "7",
            "7.",
            "256.abababababababababababababababab",
            "-1.abababababababababababababababab",
            "7.ABABABABABABABABABABABABABABABAB",
            "7.abababababababababababababababa",
            "7.abababababababababababababababab0",
            "7.abababababababababababababababé",
            "1234.abababababababababababababababab",
        ] {
            assert_eq!(RecordSeal::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn merge_keeps_unset_fields() {
        let mut ctx = SessionContext {
            ip: Some("10.0.0.1".parse().unwrap()),
            user_agent: Some("ua".into()),
            device_id: None,
            location: Some("eu".into()),
        };
        ctx.merge(SessionContext {
            location: Some("us".into()),
            ..Default::default()
        });
        assert_eq!(ctx.user_agent.as_deref(), Some("ua"));
        assert_eq!(ctx.location.as_deref(), Some("us"));
        assert_eq!(ctx.ip, Some("10.0.0.1".parse().unwrap()));
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;
    use crate::error::ParseVerdictError;
    use proptest::prelude::*;

    const HOUR: u64 = 3_600_000;
    const T: u64 = 10_000;

    fn id() -> SessionId {
        SessionId::from_bytes([1; 16])
    }

    pub(crate) fn record(now: u64) -> SessionRecord {
        SessionRecord {
            id: id(),
            previous_ids: Box::default(),
            user_id: "alice".into(),
            created_at: now,
            meta: SessionMeta {
                context: Default::default(),
                permissions: Box::default(),
                previous_permissions: Box::default(),
                expires_at: now + 8 * HOUR,
                absolute_expires_at: now + 168 * HOUR,
                idle_timeout_ms: HOUR / 2,
                renewals: 0,
                flags: Default::default(),
                seal: None,
            },
            sequence: SequenceState::new(now),
        }
    }

    fn req(presented: u64, now_ms: u64) -> AdvanceRequest {
        AdvanceRequest {
            session: id(),
            presented,
            now_ms,
            grace_depth: 16,
            grace_window_ms: T,
            rotate: Rotate::Always,
            new_id: None,
            max_ahead: 0,
        }
    }

    #[test]
    fn live_token_rotates_and_its_first_use_retires_the_previous() {
        let mut r = record(0);
        assert_eq!(r.advance(&req(0, 1)), Verdict::Rotated);
        assert_eq!(r.sequence.counter, 1);
        assert_eq!(r.sequence.presented, Some(0));
        assert!(r.sequence.retired.is_empty(), "0 is pending, not retired");
        assert_eq!(r.advance(&req(1, 5)), Verdict::Rotated);
        assert_eq!(r.sequence.retired_at(0), Some(5));
    }

    #[test]
    fn a_burst_with_one_token_rotates_once_and_the_rest_wait() {
        let mut r = record(0);
        assert_eq!(r.advance(&req(0, 1)), Verdict::Rotated);
        for t in 2..8 {
            assert_eq!(r.advance(&req(0, t)), Verdict::Pending);
        }
        assert_eq!(r.sequence.counter, 1);
    }

    #[test]
    fn a_lost_response_is_recovered_after_any_pause() {
        let mut r = record(0);
        assert_eq!(r.advance(&req(0, 1)), Verdict::Rotated);
        // Token 1's response was lost; the client comes back later. For
        // 2T it may still be on its way: served without a token.
        assert_eq!(r.advance(&req(0, 1 + 2 * T)), Verdict::Pending);
        assert_eq!(r.advance(&req(0, 2 + 2 * T)), Verdict::Recovered);
        assert_eq!(r.sequence.counter, 2);
        // Token 1 was abandoned: presenting it later is theft.
        assert_eq!(r.advance(&req(2, 3 + 2 * T)), Verdict::Rotated);
        assert_eq!(r.advance(&req(1, 3 * T)), Verdict::Reused);
    }

    #[test]
    fn a_copy_used_after_the_victim_moved_on_is_theft_after_the_grace() {
        let mut r = record(0);
        r.advance(&req(0, 1)); // victim: 0 -> 1
        r.advance(&req(1, 2)); // victim uses 1: 0 retired at 2
        assert_eq!(r.advance(&req(0, 2 + T)), Verdict::Grace, "in flight");
        assert_eq!(r.advance(&req(0, 3 + T)), Verdict::Reused);
        assert_eq!(r.sequence.revoked, Some(RevocationReason::TokenReused));
        assert_eq!(r.advance(&req(2, 4 + T)), Verdict::Revoked);
    }

    #[test]
    fn a_thief_who_recovers_is_caught_when_the_victim_returns() {
        let mut r = record(0);
        r.advance(&req(0, 1)); // victim: 0 -> 1, holds 1, goes quiet
        assert_eq!(r.advance(&req(0, 100_000)), Verdict::Recovered); // thief
        assert_eq!(r.sequence.counter, 2);
        // The victim's token 1 was abandoned by the thief's recovery.
        assert_eq!(r.advance(&req(1, 200_000)), Verdict::Reused);
    }

    #[test]
    fn an_undelivered_token_is_replaced_not_used() {
        let mut r = record(0);
        assert_eq!(r.advance(&req(0, 1)), Verdict::Rotated); // 1 issued, not sent yet
        let next = id().next_generation();
        let elevate = AdvanceRequest {
            new_id: Some(next),
            rotate: Rotate::ReplaceUndelivered,
            ..req(1, 2)
        };
        assert_eq!(r.advance(&elevate), Verdict::Rotated);
        assert_eq!((r.sequence.counter, r.sequence.presented), (2, Some(0)));
        assert_eq!(r.id, next);
        // The response was lost: the client's token 0 is still `p` and
        // recovers after any pause; token 1 never existed for anyone.
        assert_eq!(r.advance(&req(0, 1 + 3 * T)), Verdict::Recovered);
        // Replacing a token that is no longer the live one changes nothing.
        let before = r.clone();
        assert_eq!(
            r.advance(&AdvanceRequest {
                rotate: Rotate::ReplaceUndelivered,
                ..req(2, 5 * T)
            }),
            Verdict::Pending
        );
        assert_eq!(r, before);
    }

    #[test]
    fn ahead_is_refused_without_revocation() {
        let mut r = record(0);
        assert_eq!(r.advance(&req(5, 1)), Verdict::Ahead);
        assert_eq!(r.sequence.revoked, None);
        assert_eq!(r.advance(&req(0, 2)), Verdict::Rotated);
    }

    #[test]
    fn a_minted_token_ahead_of_the_store_fast_forwards_within_n() {
        let ahead = |presented, now_ms| AdvanceRequest {
            max_ahead: 3,
            ..req(presented, now_ms)
        };
        let mut r = record(0);
        assert_eq!(r.advance(&ahead(0, 1)), Verdict::Rotated);
        assert_eq!(r.advance(&ahead(1, 2)), Verdict::Rotated);
        // The store lost writes: the client holds 4, the store has n = 2.
        let before = r.clone();
        assert_eq!(r.advance(&ahead(6, 3)), Verdict::Ahead, "more than N");
        assert_eq!(r, before);
        assert_eq!(r.advance(&ahead(4, 3)), Verdict::FastForward);
        assert_eq!((r.sequence.counter, r.sequence.presented), (4, Some(4)));
        // Everything the store knew of before 4 is retired now (0 was
        // retired when 1 was first used).
        for c in 1..4 {
            assert_eq!(r.sequence.retired_at(c), Some(3), "{c}");
        }
        assert_eq!(r.sequence.retired_at(0), Some(2));
        // A burst with 4 still in flight, then the next request rotates.
        assert_eq!(r.advance(&ahead(4, 4)), Verdict::Rotated);
        assert_eq!(r.advance(&ahead(4, 5)), Verdict::Pending);
        // A copy of 3 is served within the grace, theft after it.
        assert_eq!(r.advance(&ahead(3, 3 + T)), Verdict::Grace);
        assert_eq!(r.advance(&ahead(3, 4 + T)), Verdict::Reused);
        // With N = 0 nothing is ever fast-forwarded.
        let mut r = record(0);
        assert_eq!(r.advance(&req(1, 1)), Verdict::Ahead);
    }

    #[test]
    fn a_foreign_id_is_unknown_and_changes_nothing() {
        let mut r = record(0);
        let before = r.clone();
        let foreign = AdvanceRequest {
            session: SessionId::from_bytes([2; 16]),
            ..req(0, 1)
        };
        assert_eq!(r.advance(&foreign), Verdict::Unknown);
        assert_eq!(r, before);
    }

    #[test]
    fn a_new_id_continues_the_lineage() {
        let mut r = record(0);
        let next = id().next_generation();
        let renew = AdvanceRequest {
            new_id: Some(next),
            rotate: Rotate::Never,
            ..req(0, 1)
        };
        assert_eq!(r.advance(&renew), Verdict::Rotated, "renewal always issues");
        assert_eq!(r.id, next);
        assert_eq!(*r.previous_ids, [id()]);
        // The old id's token is a predecessor like any other.
        assert_eq!(
            r.advance(&AdvanceRequest {
                session: next,
                ..req(1, 2)
            }),
            Verdict::Rotated
        );
        assert_eq!(r.advance(&req(0, 3)), Verdict::Grace);
        assert_eq!(r.advance(&req(0, 3 + T)), Verdict::Reused);
    }

    #[test]
    fn retirements_are_forgotten_after_the_window_and_beyond_the_depth() {
        let mut r = record(0);
        let shallow = |presented, now_ms| AdvanceRequest {
            grace_depth: 3,
            ..req(presented, now_ms)
        };
        for c in 0..10 {
            assert_eq!(r.advance(&shallow(c, c + 1)), Verdict::Rotated);
        }
        assert_eq!(r.sequence.retired.len(), 3);
        assert_eq!(r.advance(&shallow(7, 20)), Verdict::Grace);
        assert_eq!(r.advance(&shallow(5, 20)), Verdict::Reused, "older than K");
        let mut r = record(0);
        r.advance(&req(0, 1));
        r.advance(&req(1, 2));
        r.advance(&req(2, 5 * T));
        assert_eq!(r.sequence.retired.len(), 1, "0's retirement aged out");
    }

    #[test]
    fn timeouts() {
        let mut r = record(0);
        assert_eq!(r.advance(&req(0, HOUR / 2)), Verdict::IdleTimeout);
        let mut r = record(0);
        r.meta.idle_timeout_ms = u64::MAX;
        assert_eq!(r.advance(&req(0, 8 * HOUR)), Verdict::Expired);
    }

    #[test]
    fn rotation_policies() {
        let mut r = record(0);
        let with = |rotate, now_ms, presented| AdvanceRequest {
            rotate,
            ..req(presented, now_ms)
        };
        assert_eq!(r.advance(&with(Rotate::Never, 1, 0)), Verdict::Current);
        // requests is now 1; EveryN(3) rotates on the 3rd request.
        assert_eq!(r.advance(&with(Rotate::EveryN(3), 2, 0)), Verdict::Current);
        assert_eq!(r.advance(&with(Rotate::EveryN(3), 3, 0)), Verdict::Rotated);
        assert_eq!(
            r.advance(&with(Rotate::MinInterval(100), 50, 1)),
            Verdict::Current
        );
        assert_eq!(
            r.advance(&with(Rotate::MinInterval(100), 103, 1)),
            Verdict::Rotated
        );
    }

    #[test]
    fn verdict_names_round_trip() {
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
        }
        assert_eq!(
            "nope".parse::<Verdict>(),
            Err(ParseVerdictError {
                name: "nope".into()
            })
        );
        assert!("".parse::<Verdict>().is_err());
        assert!("Rotated".parse::<Verdict>().is_err());
    }

    proptest! {
        /// Whatever sequence of presented counters arrives, the live counter
        /// never decreases, revocation is permanent, only token-issuing
        /// verdicts move the counter (by one), `p <= n`, and refusals
        /// other than theft change nothing.
        #[test]
        fn invariants(steps in proptest::collection::vec((0u64..8, 0u64..20_000), 1..60)) {
            let mut r = record(0);
            let mut now = 0;
            for (presented, dt) in steps {
                now += dt;
                let before = r.sequence.clone();
                let v = r.advance(&AdvanceRequest {
                    max_ahead: 2,
                    ..req(presented, now)
                });
                prop_assert!(r.sequence.counter >= before.counter);
                prop_assert!(r.sequence.presented.is_none_or(|p| p <= r.sequence.counter));
                if before.revoked.is_some() {
                    prop_assert_eq!(v, Verdict::Revoked);
                }
                if v.issues_token() {
                    prop_assert_eq!(r.sequence.counter, before.counter + 1);
                } else if v == Verdict::FastForward {
                    prop_assert!(presented > before.counter && presented <= before.counter + 2);
                    prop_assert_eq!(r.sequence.counter, presented);
                    prop_assert_eq!(r.sequence.presented, Some(presented));
                } else {
                    prop_assert_eq!(r.sequence.counter, before.counter);
                }
                if matches!(v, Verdict::Ahead | Verdict::Unknown | Verdict::Revoked) {
                    prop_assert_eq!(&r.sequence, &before);
                }
            }
        }
    }
}
