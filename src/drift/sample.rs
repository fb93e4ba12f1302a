//! The predictor's input: the client's [`TelemetrySample`] and the caller's [`SampleContext`].

use serde::{Deserialize, Serialize};

/// One telemetry report as the client posts it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySample {
    /// Client clock at sending, ms since the epoch.
    pub timestamp: i64,
    /// The client's operation count; never decreases within a session.
    pub operation_count: u64,
    /// A client-side randomness measure (not personal data); any finite number.
    pub client_entropy: f64,
    /// The `server_timestamp` of the last response the client received, for round trips.
    #[serde(default)]
    pub echo_server_timestamp: Option<i64>,
}

/// What the caller knows about the session and request that the telemetry does not carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleContext<'a> {
    /// Time since the session was created.
    pub session_age_ms: u64,
    /// Time until the current token expires naturally.
    pub token_expires_in_ms: u64,
    /// The operation type, looked up in
    /// [`DriftConfig::criticality`](super::DriftConfig::criticality).
    pub operation: Option<&'a str>,
}
