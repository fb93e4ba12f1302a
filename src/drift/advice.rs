//! The predictor's answer to one report: [`DriftAdvice`].

use serde::Serialize;

use super::AnomalyAction;

/// The predictor's answer to one report. The serialised form is the telemetry response; the
/// `#[serde(skip)]` fields are for the caller.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftAdvice {
    /// Server time of the report (ms since the epoch).
    pub server_timestamp: i64,
    /// Server clock minus client clock plus the minimum one-way delay (ms).
    pub skew_ms: f64,
    /// Rate of the server clock relative to the client's (ppm; positive: server faster).
    pub drift_ppm: f64,
    /// Upper bound on the round trip, from echoed timestamps; `None` before any echo.
    pub rtt_ms: Option<f64>,
    /// Forecast operation count at the horizon.
    pub predicted_operation_count: u64,
    /// The forecast horizon.
    pub horizon_ms: u64,
    /// 0..1; at or above the configured threshold the report is flagged.
    pub anomaly_score: f64,
    /// Refresh before the token's natural expiry.
    pub refresh: bool,
    /// When to refresh, in client milliseconds from receipt of this advice.
    pub refresh_in_ms: u64,
    /// Grace window `T` for the rolling tokens, sized from the round trip.
    #[serde(skip)]
    pub grace_window_ms: u64,
    /// The configured action when the report is flagged as anomalous.
    #[serde(skip)]
    pub anomaly: Option<AnomalyAction>,
    /// A clock step (client or server) was detected; the skew estimate restarted.
    #[serde(skip)]
    pub clock_step: bool,
}
