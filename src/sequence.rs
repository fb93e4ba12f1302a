//! The sequence rule: what a presented counter means against the stored one.
//!
//! This is the reference implementation every store applies atomically
//! inside [`SessionStore::verify_and_advance`](crate::SessionStore::verify_and_advance)
//! (the Redis store runs the same rule as a Lua script; the conformance
//! suite holds both to it).
//!
//! | presented counter `c` vs stored `n`                 | verdict                      |
//! |-----------------------------------------------------|------------------------------|
//! | `c == n`                                            | accept; rotate if the policy says so |
//! | `n - K <= c < n`, retired less than `T` ago         | accept, no advance: [`Verdict::Grace`] |
//! | `c > n`                                             | reject, no revocation: [`Verdict::Ahead`] |
//! | otherwise (older than the grace)                    | theft: revoke, [`Verdict::Reused`] |

use serde::{Deserialize, Serialize};

use crate::session::SessionRecord;

/// Why a session was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RevocationReason {
    /// A token was used after its grace: the credential was copied.
    TokenReused,
}

/// The token sequence of a session: the only state a request changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceState {
    /// The counter of the one live token.
    pub counter: u64,
    /// Requests accepted, rotated or not.
    pub requests: u64,
    /// Time of the last accepted request, ms since the epoch.
    pub last_seen_at: u64,
    /// Time of the last rotation (or creation), ms since the epoch.
    pub last_rotated_at: u64,
    /// When each of the last few counters was retired, newest last; at most
    /// the grace depth entries. `retired_at[len - k]` is when counter
    /// `counter - k` stopped being the live one.
    pub retired_at: Vec<u64>,
    /// Set once the session is revoked; never cleared.
    pub revoked: Option<RevocationReason>,
}

impl SequenceState {
    /// The sequence of a session created at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            last_seen_at: now_ms,
            last_rotated_at: now_ms,
            ..Self::default()
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
    /// Rotate when at least this many ms passed since the last rotation.
    MinInterval(u64),
}

/// One request's input to `verify_and_advance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvanceRequest {
    /// The counter opened from the presented token.
    pub presented: u64,
    /// The request's time, ms since the epoch.
    pub now_ms: u64,
    /// How many predecessors of the live token are still accepted (K).
    pub grace_depth: u32,
    /// For how long after its retirement a predecessor is accepted (T), ms.
    pub grace_window_ms: u64,
    /// Whether to rotate if the presented token is the live one.
    pub rotate: Rotate,
}

/// What the store decided. Only `Rotated`, `Current` and `Grace` accept the
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// The live token: accepted and the counter advanced.
    Rotated,
    /// The live token: accepted, no rotation on this request.
    Current,
    /// A recent predecessor within the grace: accepted, not advanced; the
    /// client should be answered with the live token.
    Grace,
    /// A counter the server never issued: rejected, session untouched.
    Ahead,
    /// A token older than the grace: the session is now revoked.
    Reused,
    /// The session was revoked earlier.
    Revoked,
    /// The session's lifetime (renewable or absolute) is over.
    Expired,
    /// The session was idle for longer than its idle timeout.
    IdleTimeout,
}

impl Verdict {
    /// Whether the request is let through.
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Rotated | Self::Current | Self::Grace)
    }

    /// The verdict's snake_case name, as used in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::Current => "current",
            Self::Grace => "grace",
            Self::Ahead => "ahead",
            Self::Reused => "reused",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::IdleTimeout => "idle_timeout",
        }
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
        let seq = &mut self.sequence;
        let live = seq.counter;
        if req.presented > live {
            return Verdict::Ahead;
        }
        if req.presented < live {
            let age = live - req.presented;
            let retired = usize::try_from(age)
                .ok()
                .filter(|&k| k <= req.grace_depth as usize && k <= seq.retired_at.len())
                .map(|k| seq.retired_at[seq.retired_at.len() - k]);
            return match retired {
                Some(at) if now.saturating_sub(at) <= req.grace_window_ms => {
                    seq.requests += 1;
                    seq.last_seen_at = seq.last_seen_at.max(now);
                    Verdict::Grace
                }
                _ => {
                    seq.revoked = Some(RevocationReason::TokenReused);
                    Verdict::Reused
                }
            };
        }
        seq.requests += 1;
        seq.last_seen_at = seq.last_seen_at.max(now);
        let rotate = self.meta.superseded_by.is_none()
            && match req.rotate {
                Rotate::Always => true,
                Rotate::Never => false,
                Rotate::EveryN(n) => n <= 1 || seq.requests.is_multiple_of(n),
                Rotate::MinInterval(ms) => now.saturating_sub(seq.last_rotated_at) >= ms,
            };
        if !rotate {
            return Verdict::Current;
        }
        seq.counter += 1;
        seq.last_rotated_at = now;
        seq.retired_at.push(now);
        let keep = req.grace_depth as usize;
        if seq.retired_at.len() > keep {
            let excess = seq.retired_at.len() - keep;
            seq.retired_at.drain(..excess);
        }
        Verdict::Rotated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{SessionId, SessionMeta};
    use proptest::prelude::*;

    const HOUR: u64 = 3_600_000;

    pub(crate) fn record(now: u64) -> SessionRecord {
        SessionRecord {
            id: SessionId::from_bytes([1; 16]),
            user_id: "alice".into(),
            created_at: now,
            meta: SessionMeta {
                context: Default::default(),
                permissions: vec![],
                expires_at: now + 8 * HOUR,
                absolute_expires_at: now + 168 * HOUR,
                idle_timeout_ms: HOUR / 2,
                renewals: 0,
                flags: Default::default(),
                renewed_from: None,
                superseded_by: None,
            },
            sequence: SequenceState::new(now),
        }
    }

    fn req(presented: u64, now_ms: u64) -> AdvanceRequest {
        AdvanceRequest {
            presented,
            now_ms,
            grace_depth: 1,
            grace_window_ms: 10_000,
            rotate: Rotate::Always,
        }
    }

    #[test]
    fn live_token_rotates() {
        let mut r = record(0);
        assert_eq!(r.advance(&req(0, 1)), Verdict::Rotated);
        assert_eq!(r.sequence.counter, 1);
        assert_eq!(r.sequence.retired_at, vec![1]);
    }

    #[test]
    fn predecessor_within_grace_is_accepted_without_advance() {
        let mut r = record(0);
        r.advance(&req(0, 1_000));
        assert_eq!(r.advance(&req(0, 11_000)), Verdict::Grace);
        assert_eq!(r.sequence.counter, 1);
        assert_eq!(r.sequence.revoked, None);
    }

    #[test]
    fn predecessor_after_grace_is_theft_and_kills_the_live_token() {
        let mut r = record(0);
        r.advance(&req(0, 1_000));
        assert_eq!(r.advance(&req(0, 11_001)), Verdict::Reused);
        assert_eq!(r.sequence.revoked, Some(RevocationReason::TokenReused));
        assert_eq!(r.advance(&req(1, 11_002)), Verdict::Revoked);
    }

    #[test]
    fn older_than_depth_is_theft_even_within_the_window() {
        let mut r = record(0);
        r.advance(&req(0, 1));
        r.advance(&req(1, 2));
        assert_eq!(r.advance(&req(0, 3)), Verdict::Reused);
    }

    #[test]
    fn deeper_grace_accepts_older_predecessors() {
        let mut r = record(0);
        let deep = |presented, now_ms| AdvanceRequest {
            grace_depth: 3,
            ..req(presented, now_ms)
        };
        for c in 0..5 {
            assert_eq!(r.advance(&deep(c, c + 1)), Verdict::Rotated);
        }
        assert_eq!(r.sequence.retired_at.len(), 3);
        assert_eq!(r.advance(&deep(2, 10)), Verdict::Grace);
        assert_eq!(r.advance(&deep(1, 10)), Verdict::Reused);
    }

    #[test]
    fn ahead_is_rejected_without_revocation() {
        let mut r = record(0);
        assert_eq!(r.advance(&req(5, 1)), Verdict::Ahead);
        assert_eq!(r.sequence.revoked, None);
        assert_eq!(r.advance(&req(0, 2)), Verdict::Rotated);
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
        r.meta.superseded_by = Some(SessionId::from_bytes([2; 16]));
        assert_eq!(r.advance(&with(Rotate::Always, 104, 2)), Verdict::Current);
    }

    proptest! {
        /// Whatever sequence of presented counters arrives, the live counter
        /// never decreases, revocation is permanent, and only `Rotated`
        /// moves the counter, by exactly one.
        #[test]
        fn invariants(steps in proptest::collection::vec((0u64..8, 0u64..20_000), 1..60)) {
            let mut r = record(0);
            let mut now = 0;
            for (presented, dt) in steps {
                now += dt;
                let before = r.sequence.clone();
                let v = r.advance(&req(presented, now));
                prop_assert!(r.sequence.counter >= before.counter);
                if before.revoked.is_some() {
                    prop_assert_eq!(v, Verdict::Revoked);
                }
                match v {
                    Verdict::Rotated => prop_assert_eq!(r.sequence.counter, before.counter + 1),
                    _ => prop_assert_eq!(r.sequence.counter, before.counter),
                }
                if v == Verdict::Ahead {
                    prop_assert_eq!(&r.sequence, &before);
                }
            }
        }
    }
}
