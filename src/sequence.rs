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

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseVerdictError;
use crate::session::{SessionId, SessionRecord};

/// Why a session was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RevocationReason {
    /// A token was used after its grace: the credential was copied.
    TokenReused,
    /// A newer login of the same user took the session's place under the
    /// per-user session limit (`on_session_limit = "evict_oldest"`). The
    /// record is kept, revoked, until it would have been purged, so the
    /// session's next request learns why (`session_evicted`).
    Evicted,
}

/// The token sequence of a session lineage: the only state a request
/// changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceState {
    /// `n`: the counter of the newest token issued (the live token).
    pub counter: u64,
    /// `p`: the highest counter ever presented; `None` until the first
    /// request. `p == Some(n)` once the live token is in use.
    pub presented: Option<u64>,
    /// Requests accepted, rotated or not.
    pub requests: u64,
    /// Time of the last accepted request, ms since the epoch.
    pub last_seen_at: u64,
    /// When the live token was issued, ms since the epoch.
    pub issued_at: u64,
    /// Recent retirements, oldest first: at most the grace depth, none
    /// older than the grace window.
    pub retired: Vec<Retirement>,
    /// Set once the session is revoked; never cleared.
    pub revoked: Option<RevocationReason>,
}

/// Counters `from..=to` stopped being usable at `at`: the holder presented
/// a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    /// The first counter retired.
    pub from: u64,
    /// The last counter retired.
    pub to: u64,
    /// When, ms since the epoch.
    pub at: u64,
}

impl SequenceState {
    /// The sequence of a session created at `now_ms`: token 0 issued.
    pub fn new(now_ms: u64) -> Self {
        Self {
            last_seen_at: now_ms,
            issued_at: now_ms,
            ..Self::default()
        }
    }

    /// When counter `c` was retired, if that is still remembered.
    pub fn retired_at(&self, c: u64) -> Option<u64> {
        self.retired
            .iter()
            .rev()
            .find(|r| r.from <= c && c <= r.to)
            .map(|r| r.at)
    }

    fn retire(&mut self, from: u64, to: u64, at: u64, req: &AdvanceRequest) {
        // Forget what no request could be granted any more: older than the
        // window, or beyond the depth. A forgotten counter is theft.
        let horizon = at.saturating_sub(req.grace_window_ms);
        self.retired.retain(|r| r.at >= horizon);
        self.retired.push(Retirement { from, to, at });
        let keep = (req.grace_depth as usize).max(1);
        if self.retired.len() > keep {
            let excess = self.retired.len() - keep;
            self.retired.drain(..excess);
        }
    }
}

/// Whether this request moves the session onto a new token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotate {
    /// Rotate now.
    Always,
    /// Do not rotate on this request.
    Never,
    /// Rotate when the request count after this request is a multiple of `n`.
    EveryN(u64),
    /// Rotate when at least this many ms passed since the live token was
    /// issued.
    MinInterval(u64),
    /// The presented token is the live one and was issued by this same
    /// request, never delivered (a renewal or elevation inside a handler):
    /// replace it by the next one instead of using it. The server sets this
    /// only for tokens it has not sent, never from client input.
    ReplaceUndelivered,
}

/// One request's input to `verify_and_advance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvanceRequest {
    /// The session id the presented token carries (any id of the lineage).
    pub session: SessionId,
    /// The counter opened from the presented token.
    pub presented: u64,
    /// The request's time, ms since the epoch.
    pub now_ms: u64,
    /// At most this many retirements are remembered (K).
    pub grace_depth: u32,
    /// For how long after its retirement a counter is still accepted, and
    /// for how long a retry of `p` waits for the live token's response (T),
    /// ms.
    pub grace_window_ms: u64,
    /// Whether to rotate if the presented token is the live one.
    pub rotate: Rotate,
    /// Renewal and elevation: if this request issues a token, the lineage
    /// moves to this id (it must share the lineage key) and the token is
    /// minted for it.
    pub new_id: Option<SessionId>,
    /// N: a (validly tagged) counter at most this far ahead of the store's
    /// live counter means the store lost writes, and fast-forwards the
    /// sequence ([`Verdict::FastForward`]); further ahead, or with `0`, it
    /// is refused ([`Verdict::Ahead`]).
    #[serde(default)]
    pub max_ahead: u64,
}

/// What the store decided. [`is_accepted`](Self::is_accepted) says which
/// verdicts let the request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// The live token: accepted and a new token issued.
    Rotated,
    /// The live token: accepted, no rotation on this request.
    Current,
    /// `p` again while the token issued for it may still be in flight (a
    /// burst, a retry within 2T of its issue): accepted, no new token.
    Pending,
    /// `p` again more than 2T after its successor was issued, and the
    /// successor was never presented: its response was lost. Accepted; a fresh token is
    /// issued and the unused ones are abandoned.
    Recovered,
    /// A retired token within the grace (a request in flight when the
    /// holder moved on): accepted, no new token.
    Grace,
    /// A counter ahead of the live one by more than `max_ahead`: refused,
    /// nothing changes.
    Ahead,
    /// A counter ahead of the live one by at most `max_ahead`: the server
    /// minted it (its tag verified), so the store lost the writes that
    /// issued it. Accepted without a new token: the sequence moves to it
    /// (it becomes the live token, in use) and every earlier counter the
    /// store knew of is retired now.
    FastForward,
    /// A token retired longer than the grace ago: two parties hold the
    /// lineage; it is now revoked.
    Reused,
    /// The session was revoked earlier.
    Revoked,
    /// The session's lifetime (renewable or absolute) is over.
    Expired,
    /// The session was idle for longer than its idle timeout.
    IdleTimeout,
    /// The token's id is not an id of this lineage (a lineage-key
    /// collision): refused as an unknown session, nothing changes.
    Unknown,
}

impl Verdict {
    /// Every verdict, in declaration order.
    pub const ALL: [Verdict; 12] = [
        Self::Rotated,
        Self::Current,
        Self::Pending,
        Self::Recovered,
        Self::Grace,
        Self::Ahead,
        Self::FastForward,
        Self::Reused,
        Self::Revoked,
        Self::Expired,
        Self::IdleTimeout,
        Self::Unknown,
    ];

    /// Whether the request is let through.
    pub fn is_accepted(self) -> bool {
        matches!(
            self,
            Self::Rotated
                | Self::Current
                | Self::Pending
                | Self::Recovered
                | Self::Grace
                | Self::FastForward
        )
    }

    /// Whether the request was answered with a newly issued token.
    pub fn issues_token(self) -> bool {
        matches!(self, Self::Rotated | Self::Recovered)
    }

    /// The verdict's snake_case name, as used in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::Current => "current",
            Self::Pending => "pending",
            Self::Recovered => "recovered",
            Self::Grace => "grace",
            Self::Ahead => "ahead",
            Self::FastForward => "fast_forward",
            Self::Reused => "reused",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::IdleTimeout => "idle_timeout",
            Self::Unknown => "unknown",
        }
    }
}

/// Reads the names [`Verdict::as_str`] writes.
///
/// ```
/// use rolling_session::Verdict;
///
/// assert_eq!("fast_forward".parse(), Ok(Verdict::FastForward));
/// assert!("FastForward".parse::<Verdict>().is_err());
/// ```
impl FromStr for Verdict {
    type Err = ParseVerdictError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == name)
            .ok_or_else(|| ParseVerdictError {
                name: name.to_owned(),
            })
    }
}

impl SessionRecord {
    /// Applies the sequence rule to this record in place and says what it
    /// decided. Stores call this under their lock (or transaction) so that
    /// the read, the decision and the write are one atomic step.
    pub fn advance(&mut self, req: &AdvanceRequest) -> Verdict {
        let now = req.now_ms;
        if self.sequence.revoked.is_some() {
            return Verdict::Revoked;
        }
        if now >= self.meta.ends_at() {
            return Verdict::Expired;
        }
        if now >= self.idle_deadline() {
            return Verdict::IdleTimeout;
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
            self.previous_ids.push(self.id);
            self.id = new_id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{SessionId, SessionMeta};
    use proptest::prelude::*;

    const HOUR: u64 = 3_600_000;
    const T: u64 = 10_000;

    fn id() -> SessionId {
        SessionId::from_bytes([1; 16])
    }

    pub(crate) fn record(now: u64) -> SessionRecord {
        SessionRecord {
            id: id(),
            previous_ids: vec![],
            user_id: "alice".into(),
            created_at: now,
            meta: SessionMeta {
                context: Default::default(),
                permissions: vec![],
                previous_permissions: vec![],
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
        assert_eq!(r.previous_ids, vec![id()]);
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
