//! Renewal, sliding expiry, elevation and the timing advice the client
//! schedules by.

use std::sync::Arc;

use crate::clock::as_ms;
use crate::error::{Error, ErrorKind};
use crate::events::SessionEvent;
use crate::record::Rotate;
use crate::record::{SessionId, SessionMeta, SessionRecord};

use super::info::ms;
use super::{NewSession, SessionInfo, SessionManager, SessionStatus};

/// Who asked for a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Renewal {
    /// The client (the refresh route, a handler): counts against
    /// `max_renewals`.
    Client,
    /// The server, under sliding expiry: bounded by the absolute lifetime
    /// only.
    Sliding,
}

impl SessionManager {
    /// Relative times and renewal advice for a session, as served by
    /// `GET /session/status`.
    pub fn status(&self, session: &SessionInfo) -> SessionStatus {
        let r = &session.record;
        let now = session.now_ms;
        let renewal_allowed_in_ms = self.renewal_opens_at(r).map(|at| at.saturating_sub(now));
        SessionStatus {
            active: true,
            user_id: r.user_id.to_string(),
            expires_in_ms: as_ms(session.expires_in()),
            idle_expires_in_ms: as_ms(session.idle_expires_in()),
            idle_timeout_ms: r.meta.idle_timeout_ms,
            absolute_expires_in_ms: as_ms(session.absolute_expires_in()),
            renewal_allowed_in_ms,
            refresh_recommended: renewal_allowed_in_ms == Some(0),
            renewals: r.meta.renewals,
            request_count: r.sequence.requests,
            rotations: r.sequence.counter,
            server_timestamp: now,
        }
    }

    /// When renewal opens, or `None` if the session cannot be renewed.
    pub(super) fn renewal_opens_at(&self, r: &SessionRecord) -> Option<u64> {
        let cfg = &self.inner.config;
        let renewable =
            r.meta.renewals < cfg.max_renewals && r.meta.expires_at < r.meta.absolute_expires_at;
        renewable.then(|| {
            r.meta
                .expires_at
                .saturating_sub(as_ms(cfg.renewal_threshold))
        })
    }

    /// Renews a session: the lineage moves to a new id with an extended
    /// lifetime (never past the absolute lifetime), and the returned token
    /// replaces the presented one. It is a rotation: the old id's tokens
    /// follow the sequence rule like any predecessor (accepted within the
    /// grace, theft after), and the whole lineage stays one session for
    /// theft detection, so a copy cannot renew its way out of it.
    ///
    /// Needs the live token: a token another request already moved past,
    /// or one still waiting for its successor's response, gets
    /// [`ErrorKind::NotLive`] (retry with the latest token) and changes
    /// nothing. A token whose successor's response was lost renews (the
    /// recovery case of the rule).
    pub async fn renew_session(&self, token: &str) -> Result<NewSession, Error> {
        self.renew_with(token, Rotate::Always, Renewal::Client)
            .await
    }

    /// [`renew_session`](Self::renew_session) with a token this request
    /// was just issued and has not delivered (a renewal inside a handler):
    /// the token is replaced, never used, so a lost response leaves the
    /// client with the token it presented, which the rule recovers.
    pub(crate) async fn renew_session_undelivered(&self, token: &str) -> Result<NewSession, Error> {
        self.renew_with(token, Rotate::ReplaceUndelivered, Renewal::Client)
            .await
    }

    /// Whether `session` is due a sliding renewal
    /// ([`Config::sliding_expiry`]): its renewable lifetime ends within
    /// `renewal_threshold` (and within half of `expiration_time`, so that a
    /// threshold as long as the lifetime does not renew on every request),
    /// and the absolute lifetime leaves room to extend it.
    pub(crate) fn sliding_renewal_due(&self, session: &SessionInfo) -> bool {
        let cfg = &self.inner.config;
        let meta = &session.record.meta;
        let window = cfg.renewal_threshold.min(cfg.expiration_time / 2);
        cfg.sliding_expiry
            && meta.expires_at < meta.absolute_expires_at
            && session.now_ms >= meta.expires_at.saturating_sub(as_ms(window))
    }

    /// The server's own renewal of an active session under sliding expiry,
    /// with the token this request was just issued (replaced, never used:
    /// see [`renew_session_undelivered`](Self::renew_session_undelivered)).
    /// It does not count against `max_renewals`.
    pub(crate) async fn slide_undelivered(&self, token: &str) -> Result<NewSession, Error> {
        self.renew_with(token, Rotate::ReplaceUndelivered, Renewal::Sliding)
            .await
    }

    pub(super) async fn renew_with(
        &self,
        token: &str,
        rotate: Rotate,
        kind: Renewal,
    ) -> Result<NewSession, Error> {
        let verified = self.inner.keys.verify(token)?;
        let cfg = &self.inner.config;
        let now = self.now_ms();
        let current = self
            .load_checked(&verified.session_id)
            .await?
            .ok_or(ErrorKind::UnknownSession)?;
        if kind == Renewal::Client && current.meta.renewals >= cfg.max_renewals {
            return Err(ErrorKind::RenewalLimit {
                max: cfg.max_renewals,
            }
            .into());
        }
        let Some(opens_at) = self.renewal_opens_at(&current) else {
            return Err(ErrorKind::RenewalPastAbsolute.into());
        };
        if now < opens_at {
            return Err(ErrorKind::RenewalTooEarly {
                allowed_in: ms(opens_at - now),
            }
            .into());
        }
        let (from, renewed) = self
            .move_to_new_id(token, &current, rotate, |meta| {
                meta.expires_at = now
                    .saturating_add(as_ms(cfg.expiration_time))
                    .min(meta.absolute_expires_at);
                if kind == Renewal::Client {
                    meta.renewals += 1;
                }
            })
            .await?;
        self.emit(SessionEvent::Renewed {
            from,
            to: renewed.session.id(),
            renewals: renewed.session.record.meta.renewals,
        });
        Ok(renewed)
    }

    /// Rotates the lineage onto a new id and applies `change` to its
    /// metadata: renewal and elevation. Returns the id it had and the new
    /// credentials.
    pub(super) async fn move_to_new_id(
        &self,
        token: &str,
        current: &SessionRecord,
        rotate: Rotate,
        change: impl FnOnce(&mut SessionMeta),
    ) -> Result<(SessionId, NewSession), Error> {
        let new_id = current.id.next_generation();
        let validated = self
            .check(token.as_bytes(), rotate, None, Some(new_id))
            .await?;
        let Some(token) = validated.next_token else {
            return Err(ErrorKind::NotLive.into());
        };
        let mut record = validated.session.record;
        if record.id != new_id {
            // Another renewal or elevation won the race.
            return Err(ErrorKind::NotLive.into());
        }
        let from = record.previous_ids.last().copied().unwrap_or(record.id);
        let owned = Arc::make_mut(&mut record);
        change(&mut owned.meta);
        self.write_meta(owned).await?;
        // Same client, same clock: its drift state moves to the new id.
        self.inner.drift.rename(&from, record.id);
        let now_ms = validated.session.now_ms;
        Ok((
            from,
            NewSession {
                session: SessionInfo { record, now_ms },
                token,
            },
        ))
    }

    /// Kept for clients of the two-phase renewal: called with the renewed
    /// token, it validates it (its first use retires the old id's tokens,
    /// as for any rotation) and returns the session. Idempotent;
    /// [`ErrorKind::NothingToConfirm`] if the session was never renewed or
    /// elevated.
    pub async fn confirm_renewal(&self, token: &str) -> Result<SessionInfo, Error> {
        let session = self
            .check(token.as_bytes(), Rotate::Never, None, None)
            .await?
            .session;
        if session.record.previous_ids.is_empty() {
            return Err(ErrorKind::NothingToConfirm.into());
        }
        Ok(session)
    }

    /// Sets the session's permissions. The lineage moves to a new id
    /// (fixation protection) exactly as in
    /// [`renew_session`](Self::renew_session): the returned token replaces
    /// the presented one, which must be the live token
    /// ([`ErrorKind::NotLive`] otherwise). Requests still in flight with the
    /// old id's tokens keep the old permissions until their grace ends.
    pub async fn set_session_permissions(
        &self,
        token: &str,
        permissions: Vec<String>,
    ) -> Result<NewSession, Error> {
        self.elevate_with(token, permissions, Rotate::Always).await
    }

    /// [`set_session_permissions`](Self::set_session_permissions) with a
    /// token this request was just issued and has not delivered (see
    /// [`renew_session_undelivered`](Self::renew_session_undelivered)).
    pub(crate) async fn set_session_permissions_undelivered(
        &self,
        token: &str,
        permissions: Vec<String>,
    ) -> Result<NewSession, Error> {
        self.elevate_with(token, permissions, Rotate::ReplaceUndelivered)
            .await
    }

    pub(super) async fn elevate_with(
        &self,
        token: &str,
        permissions: Vec<String>,
        rotate: Rotate,
    ) -> Result<NewSession, Error> {
        let verified = self.inner.keys.verify(token)?;
        let current = self
            .load_checked(&verified.session_id)
            .await?
            .ok_or(ErrorKind::UnknownSession)?;
        let (_, elevated) = self
            .move_to_new_id(token, &current, rotate, |meta| {
                meta.previous_permissions =
                    std::mem::replace(&mut meta.permissions, permissions.into());
                meta.flags.elevated = true;
            })
            .await?;
        Ok(elevated)
    }
}
