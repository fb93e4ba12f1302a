//! The sequence half of a session: its counters and retirements, and the
//! requests and verdicts of the sequence rule ([`SessionRecord::advance`](super::SessionRecord::advance)).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::SessionId;
use super::retired::Retirements;
use crate::error::ParseVerdictError;

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
    pub retired: Retirements,
    /// Set once the session is revoked; never cleared.
    pub revoked: Option<RevocationReason>,
}

/// Counters `from..=to` stopped being usable at `at`: the holder presented
/// a newer one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

    pub(super) fn retire(&mut self, from: u64, to: u64, at: u64, req: &AdvanceRequest) {
        // Forget what no request could be granted any more: older than the
        // window, or beyond the depth. A forgotten counter is theft.
        let horizon = at.saturating_sub(req.grace_window_ms);
        let keep = usize::try_from(req.grace_depth).unwrap_or(usize::MAX);
        self.retired
            .retire(Retirement { from, to, at }, horizon, keep);
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
    /// At most this many retirements are remembered (K; the manager's
    /// configuration allows 1 to 256). The `MemoryStore` keeps at most
    /// [`MAX_RETIRED`](super::MAX_RETIRED) whatever is asked.
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
/// use rolling_session::store::Verdict;
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
