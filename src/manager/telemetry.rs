//! Client telemetry into the drift predictor.

#[cfg(feature = "drift")]
use crate::drift::{AnomalyAction, DriftAdvice, DriftPredictor, SampleContext, TelemetrySample};
use crate::error::{Error, ErrorKind};
use crate::events::{SessionEvent, TerminationReason};

use super::{SessionInfo, SessionManager};

impl SessionManager {
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    /// Feeds one telemetry report of the session's client to the drift
    /// predictor (`POST /session/telemetry`) and acts on the advice: the
    /// session's token grace window follows its measured round trips, and
    /// an anomaly is flagged on the session, reported as
    /// [`SessionEvent::Anomaly`] and answered with the configured
    /// [`AnomalyAction`]. `operation` names the kind of work the client is
    /// doing, for [`DriftConfig::criticality`](crate::drift::DriftConfig::criticality).
    ///
    /// ```
    /// use rolling_session::drift::TelemetrySample;
    /// use rolling_session::{KeyRing, clock::ManualClock, SessionContext, SessionManager, TokenKey};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new(1_700_000_000_000);
    /// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1)))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let login = manager.create_session("alice", SessionContext::default()).await?;
    /// let mut operations = 0;
    /// for _ in 0..5 {
    ///     clock.advance(Duration::from_secs(10));
    ///     operations += 4;
    ///     let sample = TelemetrySample {
    ///         timestamp: manager.now_ms() as i64 - 120, // the client's clock
    ///         operation_count: operations,
    ///         client_entropy: 0.5,
    ///         echo_server_timestamp: None,
    ///     };
    ///     let advice = manager.ingest_telemetry(&login.session, &sample, None).await?;
    ///     assert_eq!(advice.skew_ms, 120.0);
    /// }
    /// // A counter that goes down is refused (HTTP 400).
    /// clock.advance(Duration::from_secs(10));
    /// let bad = TelemetrySample { timestamp: manager.now_ms() as i64, operation_count: 1, client_entropy: 0.5, echo_server_timestamp: None };
    /// let err = manager.ingest_telemetry(&login.session, &bad, None).await.unwrap_err();
    /// assert_eq!(err.reason(), "counter_decreased");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidTelemetry`] for a refused report,
    /// [`ErrorKind::SessionRevoked`] when the anomaly action revoked the
    /// session, and store errors.
    pub async fn ingest_telemetry(
        &self,
        session: &SessionInfo,
        sample: &TelemetrySample,
        operation: Option<&str>,
    ) -> Result<DriftAdvice, Error> {
        let record = &session.record;
        let now = self.now_ms();
        let ctx = SampleContext {
            session_age_ms: now.saturating_sub(record.created_at),
            token_expires_in_ms: record.meta.ends_at().saturating_sub(now),
            operation,
        };
        let advice = self.inner.drift.ingest(record.id, sample, ctx, now)?;
        let Some(action) = advice.anomaly else {
            return Ok(advice);
        };
        self.emit(SessionEvent::Anomaly {
            session_id: record.id,
            user_id: record.user_id.to_string(),
            score: advice.anomaly_score,
            action,
        });
        if action == AnomalyAction::Revoke {
            self.terminate_id(&record.id, TerminationReason::Anomaly)
                .await?;
            return Err(ErrorKind::SessionRevoked.into());
        }
        if !record.meta.flags.anomaly {
            // Re-read: the request's copy may predate a renewal or elevation
            // whose metadata must not be overwritten.
            if let Some(mut fresh) = self.load_checked(&record.id).await? {
                fresh.meta.flags.anomaly = true;
                self.write_meta(&mut fresh).await?;
            }
        }
        Ok(advice)
    }

    /// The drift predictor shared by the manager's sessions.
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    pub fn drift_predictor(&self) -> &DriftPredictor {
        self.inner.drift.predictor()
    }

    /// How many sessions have drift state on this node.
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    pub fn drift_tracked_sessions(&self) -> usize {
        self.inner.drift.len()
    }

    /// Telemetry reports that reached this node after another node had
    /// answered the session's previous report: a sign that the balancer
    /// does not keep each session on one node, which the drift state
    /// assumes (`docs/drift.md`, "Several nodes"). Also counted in the
    /// metric `rolling_session_telemetry_answered_elsewhere_total`.
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    pub fn telemetry_answered_elsewhere(&self) -> u64 {
        self.inner.drift.answered_elsewhere_count()
    }
}
