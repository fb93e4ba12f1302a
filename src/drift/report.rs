//! The body of `POST /session/telemetry`, decoded from untrusted bytes.

use serde::Deserialize;

use super::{TelemetryError, TelemetrySample};

/// The largest report body accepted; a report is about 150 bytes.
pub const MAX_REPORT_BYTES: usize = 4 * 1024;

/// One decoded telemetry request: the sample and, optionally, the kind of
/// operation the client is busy with (looked up in
/// [`DriftConfig::criticality`](super::DriftConfig::criticality)).
///
/// ```
/// use rolling_session::drift::TelemetryReport;
///
/// let report = TelemetryReport::from_json(
///     br#"{"timestamp": 1700000000000, "operation_count": 12, "client_entropy": 0.4,
///          "echo_server_timestamp": null, "operation": "checkout"}"#,
/// )?;
/// assert_eq!(report.sample.operation_count, 12);
/// assert_eq!(report.operation.as_deref(), Some("checkout"));
///
/// let err = TelemetryReport::from_json(br#"{"timestamp": "soon"}"#).unwrap_err();
/// assert_eq!(err.reason(), "malformed_telemetry");
/// # Ok::<(), rolling_session::drift::TelemetryError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryReport {
    /// The sample for [`DriftPredictor::ingest`](crate::drift::DriftPredictor::ingest).
    pub sample: TelemetrySample,
    /// The operation type, if the client named one.
    pub operation: Option<String>,
}

#[derive(Deserialize)]
struct Wire {
    timestamp: i64,
    operation_count: u64,
    client_entropy: f64,
    #[serde(default)]
    echo_server_timestamp: Option<i64>,
    #[serde(default)]
    operation: Option<String>,
}

impl TelemetryReport {
    /// Decodes a JSON object. Unknown fields are ignored (newer clients);
    /// anything else that is not a report is refused.
    ///
    /// # Errors
    ///
    /// [`TelemetryError::Malformed`] for a body larger than
    /// [`MAX_REPORT_BYTES`], anything but a JSON object, missing fields and
    /// wrong types (including numbers out of range: a negative count, a
    /// float that overflows). Values are checked later, by the predictor.
    pub fn from_json(body: &[u8]) -> Result<Self, TelemetryError> {
        if body.len() > MAX_REPORT_BYTES {
            return Err(TelemetryError::Malformed(format!(
                "the body has {} bytes; at most {MAX_REPORT_BYTES} are accepted",
                body.len()
            )));
        }
        // serde would also read a struct from a JSON array.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(TelemetryError::Malformed(
                "the body must be a JSON object".into(),
            ));
        }
        let wire: Wire =
            serde_json::from_slice(body).map_err(|e| TelemetryError::Malformed(e.to_string()))?;
        Ok(Self {
            sample: TelemetrySample {
                timestamp: wire.timestamp,
                operation_count: wire.operation_count,
                client_entropy: wire.client_entropy,
                echo_server_timestamp: wire.echo_server_timestamp,
            },
            operation: wire.operation,
        })
    }
}
