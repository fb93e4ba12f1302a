//! Policies and their defaults, loadable from TOML or YAML with serde.
//!
//! ```
//! use rolling_session::{Config, config::Rotation};
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

#[cfg(feature = "drift")]
use crate::drift::DriftConfig;

/// Every policy of the session manager. `Config::default()` is the secure
/// default described on each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Renewable lifetime of a session. Default 8 h. With
    /// [`sliding_expiry`](Self::sliding_expiry) (the default) an active
    /// session is renewed by the server before it runs out, so only the
    /// idle and absolute timeouts end it.
    #[serde(with = "humantime_serde")]
    pub expiration_time: Duration,
    /// A session with no request for this long ends. Default 30 min.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Lifetime from creation that renewal never extends. Default 7 days;
    /// when left at its default it grows to `expiration_time` if that is
    /// longer.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Renewal is allowed only within this time before expiry. Default 1 h;
    /// when left at its default it shrinks to a quarter of
    /// `expiration_time` if that is shorter than 1 h.
    #[serde(with = "humantime_serde")]
    pub renewal_threshold: Duration,
    /// Renewals a client may ask for per session (the refresh route,
    /// [`SessionManager::renew_session`](crate::SessionManager::renew_session)).
    /// Default 10. The server's own sliding renewals do not count: the
    /// absolute timeout bounds them.
    pub max_renewals: u32,
    /// Sliding expiry, default on: a request that arrives within
    /// `renewal_threshold` of the session's expiry renews it on the server
    /// (at most one extra store round trip per `expiration_time -
    /// renewal_threshold` of activity), so a user who keeps using the site
    /// stays signed in, without JavaScript, until the idle timeout or the
    /// absolute timeout ends the session. Off: the session ends at
    /// `expiration_time` unless the client renews it.
    pub sliding_expiry: bool,
    /// The lifetimes of sessions created with "remember me"
    /// ([`LoginOptions::remember_me`](crate::LoginOptions::remember_me)),
    /// whose cookie outlives the browser.
    pub remember_me: RememberMe,
    /// The most bytes a session's data may hold (every key's and
    /// serialized value's length). Default 16 KiB. A write past it fails
    /// with `session_data_too_large` (413) and writes nothing.
    pub max_data_bytes: usize,
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
    /// Out-of-range values are clamped rather than refused. Without the
    /// `drift` feature there is no such field: a `[drift]` section is then
    /// refused as an unknown field rather than silently ignored.
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    pub drift: DriftConfig,
    /// Which sites may send state-changing requests (`docs/security.md`,
    /// cross-site requests).
    pub csrf: CsrfPolicy,
    /// Limits on creating sessions: a cap on all sessions, a rate per
    /// client IP.
    pub admission: AdmissionPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            expiration_time: Duration::from_secs(8 * 3600),
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(7 * 24 * 3600),
            renewal_threshold: Duration::from_secs(3600),
            max_renewals: 10,
            sliding_expiry: true,
            remember_me: RememberMe::default(),
            max_data_bytes: 16 * 1024,
            max_concurrent_sessions: 5,
            on_session_limit: SessionLimitPolicy::EvictOldest,
            rotation: Rotation::EveryRequest,
            token: TokenGrace::default(),
            context: ContextPolicy::default(),
            #[cfg(feature = "drift")]
            drift: DriftConfig::default(),
            csrf: CsrfPolicy::default(),
            admission: AdmissionPolicy::default(),
        }
    }
}

/// A configuration that cannot work, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session configuration: {0}")]
pub struct ConfigError(&'static str);

impl ConfigError {
    pub(crate) fn weak_key() -> Self {
        Self(
            "the key ring holds a placeholder token key (fewer than 16 distinct byte values, \
             e.g. all zeros): load a real one with TokenKey::from_env, or make one with \
             `cargo run --example keygen`",
        )
    }
}

impl Config {
    /// The configuration with its dependent defaults settled: a field left
    /// at its default follows the field it depends on, so that setting one
    /// field never trips another the user did not set.
    ///
    /// - `absolute_timeout` (default 7 days) grows to `expiration_time`;
    /// - `renewal_threshold` (default 1 h) shrinks to a quarter of
    ///   `expiration_time`;
    /// - `remember_me.absolute_timeout` (default 30 days) grows to
    ///   `absolute_timeout`.
    ///
    /// The session manager applies it when it is built; values the user
    /// set are never changed.
    ///
    /// ```
    /// use rolling_session::Config;
    /// use std::time::Duration;
    ///
    /// let config: Config = toml::from_str(r#"expiration_time = "30m""#)?;
    /// let config = config.with_dependent_defaults();
    /// assert_eq!(config.renewal_threshold, Duration::from_secs(450));
    /// config.validate()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_dependent_defaults(mut self) -> Self {
        let defaults = Self::default();
        if self.absolute_timeout == defaults.absolute_timeout
            && self.absolute_timeout < self.expiration_time
        {
            self.absolute_timeout = self.expiration_time;
        }
        if self.renewal_threshold == defaults.renewal_threshold
            && self.renewal_threshold > self.expiration_time
        {
            self.renewal_threshold = self.expiration_time / 4;
        }
        if self.remember_me.absolute_timeout == defaults.remember_me.absolute_timeout
            && self.remember_me.absolute_timeout < self.absolute_timeout
        {
            self.remember_me.absolute_timeout = self.absolute_timeout;
        }
        self
    }

    /// Checks that the policies fit together, after
    /// [`with_dependent_defaults`](Self::with_dependent_defaults). Each
    /// error names the line to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let settled = self.clone().with_dependent_defaults();
        settled.check()
    }

    fn check(&self) -> Result<(), ConfigError> {
        let zero = Duration::ZERO;
        if self.expiration_time == zero || self.idle_timeout == zero {
            return Err(ConfigError(
                "expiration_time and idle_timeout must be positive",
            ));
        }
        if self.absolute_timeout < self.expiration_time {
            return Err(ConfigError(
                "absolute_timeout is shorter than expiration_time: raise absolute_timeout \
                 (e.g. `absolute_timeout = \"7d\"`) or remove the line to follow expiration_time",
            ));
        }
        if self.renewal_threshold > self.expiration_time {
            return Err(ConfigError(
                "renewal_threshold exceeds expiration_time: lower renewal_threshold to a \
                 fraction of expiration_time (e.g. a quarter), or remove the line to follow it",
            ));
        }
        if self.remember_me.idle_timeout.is_zero()
            || self.remember_me.absolute_timeout < self.remember_me.idle_timeout
        {
            return Err(ConfigError(
                "remember_me.idle_timeout must be positive and at most \
                 remember_me.absolute_timeout",
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
        if self
            .csrf
            .allowed_origins
            .iter()
            .any(|o| crate::http::Origin::parse(o).is_none())
        {
            return Err(ConfigError(
                "csrf.allowed_origins must be origins: scheme://host[:port], no path",
            ));
        }
        let a = &self.admission;
        if a.max_sessions == Some(0) || a.per_ip_logins == Some(0) || a.per_ip_window.is_zero() {
            return Err(ConfigError(
                "admission.max_sessions and admission.per_ip_logins must be at least 1, \
                 admission.per_ip_window positive",
            ));
        }
        Ok(())
    }

    pub(crate) fn error(reason: &'static str) -> ConfigError {
        ConfigError(reason)
    }
}

/// Limits on creating sessions, against login floods: each session is kept
/// (and costs memory) for up to the idle timeout, so an unbounded flood of
/// logins is an unbounded amount of memory. Both limits are off by default.
///
/// - `max_sessions`: sessions the store may hold in all (live ones and
///   those the sweep has not removed yet). A login beyond is refused with
///   503 `session_capacity` and `Retry-After`. Needs a store that counts
///   its sessions ([`MemoryStore`](crate::MemoryStore)); the limit holds
///   per node, whatever the parallelism of logins. A Redis deployment
///   bounds its memory with Redis's `maxmemory` instead (a full Redis
///   refuses writes: 503 `store_unavailable`).
/// - `per_ip_logins` per `per_ip_window`: sessions one client IP address
///   (an IPv6 /64 counts as one) may create; beyond, 429
///   `too_many_logins` with `Retry-After`. Counted on each node; the IP is
///   the request context's (behind a proxy, set a context extractor that
///   reads the address your proxy vouches for).
///
/// ```
/// use rolling_session::Config;
///
/// let config: Config = toml::from_str(r#"
///     [admission]
///     max_sessions = 1000000
///     per_ip_logins = 20
///     per_ip_window = "1m"
/// "#).unwrap();
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionPolicy {
    /// Sessions the store may hold in all. Default: no limit.
    pub max_sessions: Option<u64>,
    /// Sessions one client IP may create per `per_ip_window`. Default: no
    /// limit.
    pub per_ip_logins: Option<u32>,
    /// The window of `per_ip_logins`. Default 1 min.
    #[serde(with = "humantime_serde")]
    pub per_ip_window: Duration,
}

impl Default for AdmissionPolicy {
    fn default() -> Self {
        Self {
            max_sessions: None,
            per_ip_logins: None,
            per_ip_window: Duration::from_secs(60),
        }
    }
}

/// Which requests with unsafe methods (not GET, HEAD, OPTIONS, TRACE) the
/// session layer lets through, by the site that sent them.
///
/// Browsers say where a request comes from in `Sec-Fetch-Site`
/// (`same-origin`, `same-site`, `cross-site`, `none`) and `Origin`. The
/// layer lets through `same-origin` and `none` (the user typed or
/// bookmarked it: no page can cause that), and `same-site` or `cross-site`
/// only from an origin in `allowed_origins`. Without `Sec-Fetch-Site`
/// (older browsers), the `Origin` must be the request's own host or an
/// allowed origin. A request with neither header is let through: it does
/// not come from a current browser, so no other site can have caused it
/// with the user's cookie. Anything else is refused with 403
/// `cross_site_request` before the session is looked at.
///
/// ```
/// use rolling_session::Config;
///
/// let config: Config = toml::from_str(r#"
///     [csrf]
///     allowed_origins = ["https://app.example.com"]
/// "#).unwrap();
/// config.validate().unwrap();
/// assert!(config.csrf.enabled);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsrfPolicy {
    /// Check the sending site of unsafe requests. Default true; turn it
    /// off only if something in front of the layer does the same.
    pub enabled: bool,
    /// Other origins (`scheme://host[:port]`, e.g. a front end on a
    /// sibling subdomain) allowed to send unsafe requests. Default none.
    pub allowed_origins: Vec<String>,
}

impl Default for CsrfPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_origins: Vec::new(),
        }
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

/// The lifetimes of a "remember me" session: its cookie has a `Max-Age`
/// and survives the browser closing, and it may stay idle far longer than
/// a browser-session login.
///
/// ```
/// use rolling_session::Config;
/// use std::time::Duration;
///
/// let config: Config = toml::from_str(r#"
///     [remember_me]
///     idle_timeout = "14d"
///     absolute_timeout = "90d"
/// "#)?;
/// assert_eq!(config.remember_me.idle_timeout, Duration::from_secs(14 * 86_400));
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RememberMe {
    /// Idle time after which a remembered session ends. Default 7 days.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Lifetime from login that nothing extends. Default 30 days.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
}

impl Default for RememberMe {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(7 * 86_400),
            absolute_timeout: Duration::from_secs(30 * 86_400),
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
        assert!(c.sliding_expiry);
        assert_eq!(c.remember_me.idle_timeout, Duration::from_secs(7 * 86_400));
        assert_eq!(
            c.remember_me.absolute_timeout,
            Duration::from_secs(30 * 86_400)
        );
        c.validate().unwrap();
        assert_eq!(c.clone().with_dependent_defaults(), c);
    }

    #[test]
    fn one_field_set_never_trips_a_default_it_depends_on() {
        let short: Config = toml::from_str("expiration_time = \"30m\"").unwrap();
        short.validate().unwrap();
        let short = short.with_dependent_defaults();
        assert_eq!(short.renewal_threshold, Duration::from_secs(450));
        let long: Config = toml::from_str("expiration_time = \"10d\"").unwrap();
        long.validate().unwrap();
        let long = long.with_dependent_defaults();
        assert_eq!(long.absolute_timeout, Duration::from_secs(10 * 86_400));
        let longer: Config = toml::from_str("absolute_timeout = \"60d\"").unwrap();
        assert_eq!(
            longer
                .with_dependent_defaults()
                .remember_me
                .absolute_timeout,
            Duration::from_secs(60 * 86_400)
        );
        // What the user set is never moved: a conflict names the line.
        let set: Config =
            toml::from_str("expiration_time = \"30m\"\nrenewal_threshold = \"2h\"").unwrap();
        let err = set.validate().unwrap_err().to_string();
        assert!(err.contains("renewal_threshold"), "{err}");
        let set: Config =
            toml::from_str("expiration_time = \"10d\"\nabsolute_timeout = \"8d\"").unwrap();
        let err = set.validate().unwrap_err().to_string();
        assert!(err.contains("absolute_timeout = \"7d\""), "{err}");
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
        for origin in ["example.com", "https://example.com/app", "null", "https://"] {
            let mut c = Config::default();
            c.csrf.allowed_origins = vec![origin.into()];
            assert!(c.validate().is_err(), "{origin}");
        }
        let c: Config = serde_json::from_str(
            r#"{"csrf": {"allowed_origins": ["https://app.example.com", "http://localhost:8080"]}}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert!(toml::from_str::<Config>("idle_timeout = \"soon\"").is_err());
        let c: Config = toml::from_str("absolute_timeout = \"1h\"").unwrap();
        assert!(c.validate().is_err());
        assert!(toml::from_str::<Config>("[remember_me]\nidle = \"1d\"").is_err());
        let c: Config = toml::from_str("rotation = { at_most_every = \"30s\" }").unwrap();
        assert_eq!(c.rotation, Rotation::AtMostEvery(Duration::from_secs(30)));
    }
}
