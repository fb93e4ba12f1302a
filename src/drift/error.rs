//! [`TelemetryError`]: why a report was rejected.

/// Why a report was rejected. The HTTP layer maps [`TelemetryError::RateLimited`] to 429 and
/// the others to 400, with [`TelemetryError::reason`] as the machine-readable reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A number is NaN or infinite.
    #[error("`{field}` is not a finite number")]
    NonFinite {
        /// The offending field.
        field: &'static str,
    },
    /// `operation_count` went down.
    #[error("operation_count decreased from {previous} to {received}")]
    CounterDecreased {
        /// The last accepted count.
        previous: u64,
        /// The count received.
        received: u64,
    },
    /// `timestamp` is absurdly far from server time.
    #[error("timestamp is {offset_ms} ms from server time; at most {limit_ms} ms is accepted")]
    TimestampOutOfRange {
        /// Server time minus client timestamp (saturated).
        offset_ms: i64,
        /// The configured limit.
        limit_ms: u64,
    },
    /// `echo_server_timestamp` is in the future or absurdly old.
    #[error(
        "echo_server_timestamp is {age_ms} ms old; it must be between -{future_ms} and {limit_ms} ms"
    )]
    EchoOutOfRange {
        /// Server time minus the echoed timestamp (saturated).
        age_ms: i64,
        /// Tolerated future skew between server nodes.
        future_ms: i64,
        /// The configured limit.
        limit_ms: u64,
    },
    /// Reports arrive faster than the configured minimum interval.
    #[error(
        "report came {elapsed_ms} ms after the previous one; the minimum is {min_interval_ms} ms"
    )]
    RateLimited {
        /// Time since the previous accepted report.
        elapsed_ms: u64,
        /// The configured minimum interval.
        min_interval_ms: u64,
    },
    /// The body could not be decoded (wrong types, missing fields); built by the HTTP layer
    /// from its decoder's error.
    #[error("malformed telemetry: {0}")]
    Malformed(String),
}

impl TelemetryError {
    /// The snake_case reason for the JSON error body.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NonFinite { .. } => "non_finite",
            Self::CounterDecreased { .. } => "counter_decreased",
            Self::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Self::EchoOutOfRange { .. } => "echo_out_of_range",
            Self::RateLimited { .. } => "rate_limited",
            Self::Malformed(_) => "malformed_telemetry",
        }
    }

    /// Milliseconds until a report would be accepted, for `Retry-After`.
    #[must_use]
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                elapsed_ms,
                min_interval_ms,
            } => Some(min_interval_ms.saturating_sub(*elapsed_ms)),
            _ => None,
        }
    }

    /// Whether this is the rate limit (HTTP 429) rather than bad input (HTTP 400).
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::RateLimited { .. })
    }
}
