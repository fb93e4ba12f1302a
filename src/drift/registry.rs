//! [`DriftRegistry`]: the manager's memory of each session's telemetry: one [`SessionDrift`]
//! per session lineage that reports, the grace window its round trips
//! sized, and when it last reported.
//!
//! The state is keyed by the [`LineageKey`]: renewal and elevation move a
//! session to a new id of the same lineage, and the client (and its clock)
//! stay the same. Every id of the lineage, a predecessor's included, finds
//! the same state, so a token of an earlier id is judged with the same
//! window T as the live one (the sequence rule keeps one sequence per
//! lineage).
//!
//! The state lives on the node that received the reports, not in the
//! store: it is advice, not a credential, and a node that has none falls
//! back to the configured grace window.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{
    DriftAdvice, DriftConfig, DriftPredictor, SampleContext, SessionDrift, TelemetryError,
    TelemetrySample,
};
use crate::record::{LineageKey, SessionId};

/// One session's drift state.
#[derive(Debug)]
struct Tracked {
    drift: SessionDrift,
    grace_window_ms: u64,
    reported_at_ms: u64,
}

/// The predictor and the per-session states it updates.
#[derive(Debug)]
pub(crate) struct DriftRegistry {
    predictor: DriftPredictor,
    sessions: DashMap<LineageKey, Tracked>,
    /// Mirrors `sessions.len()` without locking every shard, so requests of
    /// a service whose clients send no telemetry skip the map entirely.
    tracked: AtomicUsize,
    /// Reports showing that another node answered this lineage's previous
    /// report (no sticky routing).
    elsewhere: AtomicU64,
}

impl DriftRegistry {
    pub(crate) fn new(config: DriftConfig) -> Self {
        Self {
            predictor: DriftPredictor::new(config),
            sessions: DashMap::new(),
            tracked: AtomicUsize::new(0),
            elsewhere: AtomicU64::new(0),
        }
    }

    pub(crate) fn predictor(&self) -> &DriftPredictor {
        &self.predictor
    }

    /// The grace window sized from the session's measured round trips, if
    /// it has reported.
    pub(crate) fn grace_window_ms(&self, id: &SessionId) -> Option<u64> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.sessions.get(&id.lineage()).map(|t| t.grace_window_ms)
    }

    /// Feeds one report to the predictor. A rejected report changes nothing.
    pub(crate) fn ingest(
        &self,
        id: SessionId,
        sample: &TelemetrySample,
        ctx: SampleContext<'_>,
        now_ms: u64,
    ) -> Result<DriftAdvice, TelemetryError> {
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        match self.sessions.entry(id.lineage()) {
            Entry::Occupied(mut slot) => {
                let tracked = slot.get_mut();
                // The client echoes the server timestamp of the last answer
                // it received. This node answered at `reported_at_ms`; a
                // later (not future) echo was minted by another node.
                if sample
                    .echo_server_timestamp
                    .and_then(|e| u64::try_from(e).ok())
                    .is_some_and(|e| e > tracked.reported_at_ms && e <= now_ms)
                {
                    self.answered_elsewhere();
                }
                let advice = self
                    .predictor
                    .ingest(&mut tracked.drift, sample, ctx, now)?;
                tracked.grace_window_ms = advice.grace_window_ms;
                tracked.reported_at_ms = now_ms;
                Ok(advice)
            }
            Entry::Vacant(slot) => {
                let mut drift = SessionDrift::new();
                let advice = self.predictor.ingest(&mut drift, sample, ctx, now)?;
                slot.insert(Tracked {
                    drift,
                    grace_window_ms: advice.grace_window_ms,
                    reported_at_ms: now_ms,
                });
                self.tracked.fetch_add(1, Ordering::Relaxed);
                Ok(advice)
            }
        }
    }

    /// Carries a session's state over to the id that replaces it (renewal,
    /// elevation): the client and its clock are the same. Within a lineage
    /// (the case for renewal and elevation) the state is already shared.
    pub(crate) fn rename(&self, from: &SessionId, to: SessionId) {
        if from.lineage() == to.lineage() {
            return;
        }
        if let Some((_, tracked)) = self.sessions.remove(&from.lineage())
            && self.sessions.insert(to.lineage(), tracked).is_some()
        {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drops the state of the session (lineage) `id` is an id of.
    pub(crate) fn forget(&self, id: &SessionId) {
        if self.tracked.load(Ordering::Relaxed) > 0 && self.sessions.remove(&id.lineage()).is_some()
        {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drops the states of sessions that have not reported since
    /// `reported_before_ms`; returns how many.
    pub(crate) fn forget_silent(&self, reported_before_ms: u64) -> usize {
        let before = self.sessions.len();
        self.sessions
            .retain(|_, t| t.reported_at_ms >= reported_before_ms);
        let removed = before.saturating_sub(self.sessions.len());
        self.tracked.store(self.sessions.len(), Ordering::Relaxed);
        removed
    }

    /// Sessions with drift state.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Reports so far whose echoed server timestamp shows that another node
    /// answered the session's previous report.
    pub(crate) fn answered_elsewhere_count(&self) -> u64 {
        self.elsewhere.load(Ordering::Relaxed)
    }

    /// Counts a report that another node's answer preceded: the balancer
    /// does not route a session's telemetry to one node, so each node
    /// learns part of it (`docs/drift.md`, "Several nodes"). Logged on the
    /// first occurrence and then at every power of two.
    fn answered_elsewhere(&self) {
        metrics::counter!("rolling_session_telemetry_answered_elsewhere_total").increment(1);
        let n = self.elsewhere.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                reports = n,
                "telemetry of a session reached this node after another node answered it: \
                 route each session to one node (sticky sessions) for drift advice and grace \
                 sizing to use all of its reports"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(timestamp: i64, operation_count: u64) -> TelemetrySample {
        TelemetrySample {
            timestamp,
            operation_count,
            client_entropy: 0.5,
            echo_server_timestamp: None,
        }
    }

    fn ctx() -> SampleContext<'static> {
        SampleContext {
            session_age_ms: 60_000,
            token_expires_in_ms: 3_600_000,
            operation: None,
        }
    }

    #[test]
    fn tracks_renames_and_forgets() {
        let registry = DriftRegistry::new(DriftConfig::default());
        let (a, b) = (SessionId::generate(), SessionId::generate());
        assert_eq!(registry.grace_window_ms(&a), None);
        let now = 1_700_000_000_000_u64;
        registry
            .ingest(a, &sample(now as i64, 1), ctx(), now)
            .unwrap();
        assert!(registry.grace_window_ms(&a).is_some());
        assert_eq!(registry.len(), 1);

        registry.rename(&a, b);
        assert_eq!(registry.grace_window_ms(&a), None);
        assert!(registry.grace_window_ms(&b).is_some());
        assert_eq!(registry.len(), 1);

        // A rejected report (counter went down) leaves the state alone.
        let later = now + 10_000;
        let err = registry
            .ingest(b, &sample(later as i64, 0), ctx(), later)
            .unwrap_err();
        assert_eq!(err.reason(), "counter_decreased");

        assert_eq!(registry.forget_silent(now), 0);
        assert_eq!(registry.forget_silent(now + 1), 1);
        assert_eq!(registry.grace_window_ms(&b), None);
        registry.forget(&b);
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn a_report_answered_by_another_node_is_counted() {
        let registry = DriftRegistry::new(DriftConfig::default());
        let id = SessionId::generate();
        let now = 1_700_000_000_000_u64;
        let with_echo = |t: u64, count: u64, echo: Option<u64>| TelemetrySample {
            echo_server_timestamp: echo.map(|e| e as i64),
            ..sample(t as i64, count)
        };
        registry
            .ingest(id, &with_echo(now, 1, None), ctx(), now)
            .unwrap();
        // Sticky: the echo is this node's own answer.
        let t1 = now + 5_000;
        registry
            .ingest(id, &with_echo(t1, 2, Some(now)), ctx(), t1)
            .unwrap();
        assert_eq!(registry.answered_elsewhere_count(), 0);
        // A lost answer: the client echoes an older one. Not elsewhere.
        let t2 = t1 + 5_000;
        registry
            .ingest(id, &with_echo(t2, 3, Some(now)), ctx(), t2)
            .unwrap();
        assert_eq!(registry.answered_elsewhere_count(), 0);
        // Another node answered at t2 + 4 s; this node last answered at t2.
        let t3 = t2 + 10_000;
        registry
            .ingest(id, &with_echo(t3, 4, Some(t2 + 4_000)), ctx(), t3)
            .unwrap();
        assert_eq!(registry.answered_elsewhere_count(), 1);
        // An echo from the future (the predictor tolerates 5 s) is not evidence.
        let t4 = t3 + 5_000;
        registry
            .ingest(id, &with_echo(t4, 5, Some(t4 + 3_000)), ctx(), t4)
            .unwrap();
        assert_eq!(registry.answered_elsewhere_count(), 1);
    }

    #[test]
    fn every_id_of_a_lineage_shares_its_state() {
        let registry = DriftRegistry::new(DriftConfig::default());
        let first = SessionId::generate();
        let renewed = first.next_generation();
        let now = 1_700_000_000_000_u64;
        registry
            .ingest(first, &sample(now as i64, 1), ctx(), now)
            .unwrap();
        registry.rename(&first, renewed);
        let window = registry.grace_window_ms(&renewed);
        assert!(window.is_some());
        assert_eq!(
            registry.grace_window_ms(&first),
            window,
            "a predecessor's window"
        );
        assert_eq!(registry.len(), 1);
        registry.forget(&first);
        assert_eq!(registry.grace_window_ms(&renewed), None);
        assert_eq!(registry.len(), 0);
    }
}
