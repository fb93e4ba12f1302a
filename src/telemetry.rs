//! The per-session drift state the manager keeps: the drift module's
//! `DriftRegistry` with the `drift` feature; without it, a registry that
//! keeps nothing, so every request gets the configured grace window.

#[cfg(feature = "drift")]
pub(crate) use crate::drift::DriftRegistry;

#[cfg(not(feature = "drift"))]
use crate::record::SessionId;

/// The registry without the `drift` feature: no state, no sizing.
#[cfg(not(feature = "drift"))]
#[derive(Debug, Default)]
pub(crate) struct DriftRegistry;

#[cfg(not(feature = "drift"))]
impl DriftRegistry {
    pub(crate) fn grace_window_ms(&self, _id: &SessionId) -> Option<u64> {
        None
    }

    pub(crate) fn rename(&self, _from: &SessionId, _to: SessionId) {}

    pub(crate) fn forget(&self, _id: &SessionId) {}

    pub(crate) fn forget_silent(&self, _reported_before_ms: u64) -> usize {
        0
    }
}
