//! Policies and their defaults, loadable from TOML or YAML with serde.
//!
//! ```
//! use rolling_session::{Config, Rotation};
//! use std::time::Duration;
//!
//! let config: Config = toml::from_str(r#"
//!     expiration_time = "8h"
//!     idle_timeout = "30m"
//!     absolute_timeout = "7d"
//!     renewal_threshold = "1h"
//!     max_renewals = 10
//!     max_concurrent_sessions = 5
//!     rotation = { every_n_requests = 3 }
//!
//!     [token]
//!     grace_window = "10s"
//! "#).unwrap();
//! assert_eq!(config.absolute_timeout, Duration::from_secs(7 * 24 * 3600));
//! assert_eq!(config.rotation, Rotation::EveryNRequests(3));
//! config.validate().unwrap();
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::drift::DriftConfig;

/// Every policy of the session manager. `Config::default()` is the secure
/// default described on each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Renewable lifetime of a session. Default 8 h.
    #[serde(with = "humantime_serde")]
    pub expiration_time: Duration,
    /// A session with no request for this long ends. Default 30 min.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Lifetime from creation that renewal never extends. Default 7 days.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Renewal is allowed only within this time before expiry. Default 1 h.
    #[serde(with = "humantime_serde")]
    pub renewal_threshold: Duration,
    /// Renewals allowed per session. Default 10.
    pub max_renewals: u32,
    /// Live sessions allowed per user. Default 5.
    pub max_concurrent_sessions: usize,
    /// What to do when a user at the limit logs in again. Default: evict
    /// the oldest session.
    pub on_session_limit: SessionLimitPolicy,
    /// When tokens rotate. Default: every request.
    pub rotation: Rotation,
    /// The grace that keeps legitimate concurrency from looking like theft.
    pub token: TokenGrace,
    /// Checks of the request context against the session's.
    pub context: ContextPolicy,
    /// The drift predictor fed by client telemetry (`docs/drift.md`).
    /// Out-of-range values are clamped rather than refused.
    pub drift: DriftConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            expiration_time: Duration::from_secs(8 * 3600),
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(7 * 24 * 3600),
            renewal_threshold: Duration::from_secs(3600),
            max_renewals: 10,
            max_concurrent_sessions: 5,
            on_session_limit: SessionLimitPolicy::EvictOldest,
            rotation: Rotation::EveryRequest,
            token: TokenGrace::default(),
            context: ContextPolicy::default(),
            drift: DriftConfig::default(),
        }
    }
}

/// A configuration that cannot work, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session configuration: {0}")]
pub struct ConfigError(&'static str);

impl Config {
    /// Checks that the policies fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = Duration::ZERO;
        if self.expiration_time == zero || self.idle_timeout == zero {
            return Err(ConfigError(
                "expiration_time and idle_timeout must be positive",
            ));
        }
        if self.absolute_timeout < self.expiration_time {
            return Err(ConfigError(
                "absolute_timeout must be at least expiration_time",
            ));
        }
        if self.renewal_threshold > self.expiration_time {
            return Err(ConfigError(
                "renewal_threshold must not exceed expiration_time",
            ));
        }
        if self.max_concurrent_sessions == 0 {
            return Err(ConfigError("max_concurrent_sessions must be at least 1"));
        }
        if self.token.grace_depth == 0 || self.token.grace_depth > 256 {
            return Err(ConfigError("token.grace_depth must be between 1 and 256"));
        }
        if self.token.grace_min.is_zero() || self.token.grace_min > self.token.grace_window {
            return Err(ConfigError(
                "token.grace_min must be positive and at most token.grace_window",
            ));
        }
        if let Rotation::EveryNRequests(0) = self.rotation {
            return Err(ConfigError("rotation.every_n_requests must be at least 1"));
        }
        Ok(())
    }
}

/// What happens when a user with `max_concurrent_sessions` logs in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionLimitPolicy {
    /// Refuse the new session (`session_limit`).
    Refuse,
    /// End the user's oldest session to make room.
    EvictOldest,
}

/// When a session's token rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rotation {
    /// On every request (the default, and the strongest).
    EveryRequest,
    /// On requests with unsafe methods (not GET, HEAD, OPTIONS, TRACE).
    UnsafeMethods,
    /// On every n-th request.
    EveryNRequests(u64),
    /// At most once per interval.
    AtMostEvery(#[serde(with = "humantime_serde")] Duration),
}

/// The grace of the sequence rule (`docs/protocol.md`): how long a
/// retired token is still accepted (without ever being answered with a new
/// one), and how long a retry of the last presented token waits for its
/// successor's response before the server concludes it was lost.
///
/// The drift predictor may size the window from the client's measured round
/// trips, but only inside `[grace_min, grace_window]`: the client can move
/// neither bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenGrace {
    /// T, the ceiling. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub grace_window: Duration,
    /// The floor telemetry can bring T down to. Default 2 s. A response
    /// leaving the server more than half of this after its token was
    /// issued goes without the token (the client recovers on its next
    /// request), so that no late response can roll a cookie jar back.
    #[serde(with = "humantime_serde")]
    pub grace_min: Duration,
    /// K: at most this many retirements are remembered (each rotation
    /// retires one token, and retirements older than the window are
    /// forgotten anyway); a token retired before them is treated as retired
    /// too long ago. Default 64 (64 rotations while one request is in
    /// flight), at most 256.
    pub grace_depth: u32,
    /// N: how far ahead of the store's live counter a token (whose tag
    /// verified, so the server minted it) may be and still be accepted,
    /// fast-forwarding the sequence: the store lost the writes that issued
    /// it (a failover with replication lag, a restart from an older
    /// snapshot). Default 64; `0` refuses every such token
    /// (`token_ahead`). `docs/protocol.md` argues the rule.
    pub max_ahead: u32,
}

impl Default for TokenGrace {
    fn default() -> Self {
        Self {
            grace_window: Duration::from_secs(10),
            grace_min: Duration::from_secs(2),
            grace_depth: 64,
            max_ahead: 64,
        }
    }
}

/// Which context fields are compared on each request, and what a mismatch
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextPolicy {
    /// Compare the client IP. Default false: mobile clients change networks.
    pub check_ip: bool,
    /// Compare the `User-Agent`. Default true.
    pub check_user_agent: bool,
    /// Compare the device id. Default true.
    pub check_device: bool,
    /// What a mismatch does. Default: allow and record an event.
    pub on_mismatch: MismatchAction,
}

impl Default for ContextPolicy {
    fn default() -> Self {
        Self {
            check_ip: false,
            check_user_agent: true,
            check_device: true,
            on_mismatch: MismatchAction::Allow,
        }
    }
}

/// What a context mismatch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MismatchAction {
    /// Let the request through, flag the session and emit an event.
    Allow,
    /// End the session and require re-authentication (`context_mismatch`).
    Reauthenticate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let c = Config::default();
        assert_eq!(c.expiration_time, Duration::from_secs(8 * 3600));
        assert_eq!(c.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.absolute_timeout, Duration::from_secs(604_800));
        assert_eq!(c.renewal_threshold, Duration::from_secs(3600));
        assert_eq!((c.max_renewals, c.max_concurrent_sessions), (10, 5));
        assert_eq!(c.token.grace_window, Duration::from_secs(10));
        assert_eq!(c.token.grace_depth, 64);
        assert_eq!(c.token.grace_min, Duration::from_secs(2));
        assert_eq!(c.rotation, Rotation::EveryRequest);
        c.validate().unwrap();
    }

    #[test]
    fn loads_from_yaml() {
        let c: Config = serde_yaml_ng::from_str(
            "expiration_time: 2h\nidle_timeout: 15m\nrotation: unsafe_methods\n\
             on_session_limit: refuse\ncontext:\n  on_mismatch: reauthenticate\n  check_ip: true\n\
             token:\n  grace_window: 3s\n  grace_depth: 2\n",
        )
        .unwrap();
        assert_eq!(c.expiration_time, Duration::from_secs(7200));
        assert_eq!(c.rotation, Rotation::UnsafeMethods);
        assert_eq!(c.on_session_limit, SessionLimitPolicy::Refuse);
        assert_eq!(c.context.on_mismatch, MismatchAction::Reauthenticate);
        assert!(c.context.check_ip && c.context.check_user_agent);
        assert_eq!(c.token.grace_depth, 2);
        assert_eq!(c.max_renewals, 10, "unset fields keep defaults");
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(toml::from_str::<Config>("expiration_tme = \"8h\"").is_err());
        assert!(toml::from_str::<Config>("idle_timeout = \"soon\"").is_err());
        let c: Config = toml::from_str("absolute_timeout = \"1h\"").unwrap();
        assert!(c.validate().is_err());
        let c: Config = toml::from_str("rotation = { at_most_every = \"30s\" }").unwrap();
        assert_eq!(c.rotation, Rotation::AtMostEvery(Duration::from_secs(30)));
    }
}
