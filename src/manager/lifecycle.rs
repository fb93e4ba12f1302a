//! Creating sessions, ending them, listing them, their data and context.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::as_ms;
use crate::config::SessionLimitPolicy;
use crate::data::{DataChanges, DataLimit};
use crate::error::{Error, ErrorKind, StoreError};
use crate::events::{SessionEvent, TerminationReason};
use crate::record::{Rotate, SequenceState};
use crate::record::{SessionContext, SessionFlags, SessionId, SessionMeta, SessionRecord};
use crate::store::SessionLimit;

use super::{LoginOptions, NewSession, SessionAnalytics, SessionInfo, SessionManager};

impl SessionManager {
    /// Creates a session for an authenticated user (always a fresh id:
    /// fixation protection), enforcing the per-user session limit in the
    /// same atomic store step
    /// ([`SessionStore::create_limited`](crate::SessionStore::create_limited)): however many logins of one user
    /// run in parallel, at most `max_concurrent_sessions` are live.
    /// Sessions evicted to make room are revoked (their next request gets
    /// `session_evicted`) and reported as
    /// [`SessionEvent::Terminated`] with [`TerminationReason::Evicted`].
    ///
    /// The session's cookie ends when the browser closes; see
    /// [`create_session_with`](Self::create_session_with) for "remember me".
    pub async fn create_session(
        &self,
        user_id: impl Into<String>,
        context: SessionContext,
    ) -> Result<NewSession, Error> {
        self.create_session_with(user_id, context, LoginOptions::default())
            .await
    }

    /// [`create_session`](Self::create_session) with options: "remember
    /// me" gives the session a persistent cookie and the
    /// [`Config::remember_me`](crate::Config::remember_me) lifetimes.
    pub async fn create_session_with(
        &self,
        user_id: impl Into<String>,
        context: SessionContext,
        options: LoginOptions,
    ) -> Result<NewSession, Error> {
        let user_id = user_id.into();
        let cfg = &self.inner.config;
        let now = self.now_ms();
        let admission = &self.inner.admission;
        if let Err(retry_after) = admission.check_ip(&cfg.admission, context.ip, now) {
            metrics::counter!("rolling_session_logins_refused_total", "reason" => "too_many_logins")
                .increment(1);
            return Err(ErrorKind::TooManyLogins { retry_after }.into());
        }
        let store = &self.inner.store;
        // Held until the session is stored.
        let _admitted = admission
            .reserve(&cfg.admission, || store.session_count())
            .map_err(|()| {
                metrics::counter!("rolling_session_logins_refused_total", "reason" => "session_capacity")
                    .increment(1);
                Error::from(ErrorKind::AtCapacity {
                    retry_after: crate::admission::CAPACITY_RETRY,
                })
            })?;
        let limit = SessionLimit {
            max: cfg.max_concurrent_sessions,
            evict_oldest: cfg.on_session_limit == SessionLimitPolicy::EvictOldest,
            now_ms: now,
        };
        // A remembered session has no renewable lifetime: only its own idle
        // and absolute timeouts end it.
        let (idle_timeout, absolute_expires_at, expires_at) = if options.remember_me {
            let absolute = now.saturating_add(as_ms(cfg.remember_me.absolute_timeout));
            (cfg.remember_me.idle_timeout, absolute, absolute)
        } else {
            let absolute = now.saturating_add(as_ms(cfg.absolute_timeout));
            let expires = now.saturating_add(as_ms(cfg.expiration_time)).min(absolute);
            (cfg.idle_timeout, absolute, expires)
        };
        let record = SessionRecord {
            id: SessionId::generate(),
            previous_ids: Box::default(),
            user_id: user_id.into(),
            created_at: now,
            meta: SessionMeta {
                context,
                permissions: Box::default(),
                expires_at,
                absolute_expires_at,
                idle_timeout_ms: as_ms(idle_timeout),
                renewals: 0,
                flags: SessionFlags {
                    remembered: options.remember_me,
                    ..SessionFlags::default()
                },
                previous_permissions: Box::default(),
                seal: None,
            },
            sequence: SequenceState::new(now),
        };
        let mut record = record;
        let mut attempts = 0;
        // A fresh id's lineage key (its first 8 bytes) may, very rarely,
        // be taken: draw again.
        let created = loop {
            record.meta.seal = Some(self.inner.keys.seal_record(&record));
            // Anonymous sessions belong to no user, so no user's limit.
            let stored = if record.user_id.is_empty() {
                self.inner
                    .store
                    .create(&record)
                    .await
                    .map(|()| Default::default())
            } else {
                self.inner.store.create_limited(&record, &limit).await
            };
            match stored {
                Err(StoreError::Conflict) if attempts < 3 => {
                    attempts += 1;
                    record.id = SessionId::generate();
                }
                other => break other?,
            }
        };
        for session_id in created.evicted {
            self.inner.drift.forget(&session_id);
            self.emit(SessionEvent::Terminated {
                session_id,
                reason: TerminationReason::Evicted,
            });
            // The evicted record is kept (revoked) until its purge time:
            // read back which device it was, for the audit trail. A failed
            // read only leaves the context empty.
            let device = match self.inner.store.load(&session_id).await {
                Ok(Some(evicted)) => evicted.meta.context,
                _ => SessionContext::default(),
            };
            self.emit(SessionEvent::Evicted {
                session_id,
                user_id: record.user_id.to_string(),
                device,
                replaced_by: record.id,
            });
        }
        self.emit(SessionEvent::Created {
            session_id: record.id,
            user_id: record.user_id.to_string(),
        });
        Ok(self.new_session(record, now))
    }

    pub(super) fn new_session(&self, record: SessionRecord, now_ms: u64) -> NewSession {
        NewSession {
            token: self.inner.keys.mint(&record.id, record.sequence.counter),
            session: SessionInfo {
                record: record.into(),
                now_ms,
            },
        }
    }

    /// Writes `changes` to the data of the session `id` is an id of, in
    /// one store round trip, under [`Config::max_data_bytes`](crate::Config::max_data_bytes); see
    /// [`SessionStore::write_data`](crate::SessionStore::write_data). The token sequence does not move.
    pub async fn write_session_data(
        &self,
        id: &SessionId,
        changes: &DataChanges,
    ) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let limit = DataLimit {
            max_bytes: self.inner.config.max_data_bytes,
            now_ms: self.now_ms(),
        };
        self.inner
            .store
            .write_data(id, changes, &limit)
            .await
            .map_err(Error::from)
    }

    /// Creates an anonymous session (a visitor who has not logged in, with
    /// an empty user id) to hold data. It rolls like any other session and
    /// counts against `admission`, but not against a user's session limit.
    pub async fn create_anonymous(&self, context: SessionContext) -> Result<NewSession, Error> {
        self.create_session_with(String::new(), context, LoginOptions::default())
            .await
    }

    /// Ends the session the token belongs to (logout), with its whole
    /// lineage. Any token of the lineage may log out, but it is checked
    /// first: a copy used after its grace is reported as theft (and the
    /// lineage revoked) rather than silently ending the session. Ending an
    /// already ended session succeeds.
    pub async fn terminate_session(&self, token: &str) -> Result<(), Error> {
        let verified = self.inner.keys.verify(token)?;
        match self
            .check(token.as_bytes(), Rotate::Never, None, None)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == &ErrorKind::TokenReused => return Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Store) => {
                return Err(e);
            }
            Err(_) => {}
        }
        self.terminate_id(&verified.session_id, TerminationReason::Logout)
            .await
    }

    /// Ends a session by id (administration, anomaly response).
    pub async fn terminate_id(
        &self,
        id: &SessionId,
        reason: TerminationReason,
    ) -> Result<(), Error> {
        self.inner.drift.forget(id);
        if self.inner.store.delete(id).await? {
            self.emit(SessionEvent::Terminated {
                session_id: *id,
                reason,
            });
        }
        Ok(())
    }

    /// The user's live sessions (not expired, idle, revoked or superseded).
    /// A record that fails its integrity check is left out and reported
    /// ([`SessionEvent::RecordTampered`]).
    pub async fn active_sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, Error> {
        let now = self.now_ms();
        let mut sessions: Vec<SessionInfo> = self
            .inner
            .store
            .list_by_user(user_id)
            .await?
            .into_iter()
            .filter(|r| self.check_seal(&r.id, r).is_ok() && *r.user_id == *user_id)
            .filter(|r| r.is_live(now))
            .map(|record| SessionInfo {
                record: record.into(),
                now_ms: now,
            })
            .collect();
        sessions.sort_by_key(|s| s.record.created_at);
        Ok(sessions)
    }

    /// Ends every session of the user (log out everywhere); returns how
    /// many were ended.
    pub async fn terminate_all_user_sessions(&self, user_id: &str) -> Result<u64, Error> {
        // Tampered records are deleted too (and reported): their ids are
        // only used for the events.
        let ids: Vec<SessionId> = self
            .inner
            .store
            .list_by_user(user_id)
            .await?
            .iter()
            .inspect(|r| {
                let _ = self.check_seal(&r.id, r);
            })
            .map(|r| r.id)
            .collect();
        let n = self.inner.store.delete_by_user(user_id).await?;
        for session_id in ids {
            self.inner.drift.forget(&session_id);
            self.emit(SessionEvent::Terminated {
                session_id,
                reason: TerminationReason::LogoutEverywhere,
            });
        }
        Ok(n)
    }

    /// Updates the recorded context with the fields set in `update`.
    pub async fn update_session_context(
        &self,
        token: &str,
        update: SessionContext,
    ) -> Result<SessionInfo, Error> {
        let session = self.peek(token).await?;
        self.update_context_of(&session.id(), update).await
    }

    /// [`update_session_context`](Self::update_session_context) for a
    /// session already validated (by id): reads the record afresh, so a
    /// concurrent elevation's permissions are never written back over.
    pub async fn update_context_of(
        &self,
        id: &SessionId,
        update: SessionContext,
    ) -> Result<SessionInfo, Error> {
        let mut record = self
            .load_checked(id)
            .await?
            .filter(|r| r.is_live(self.now_ms()))
            .ok_or(ErrorKind::UnknownSession)?;
        record.meta.context.merge(update);
        self.write_meta(&mut record).await?;
        Ok(SessionInfo {
            record: record.into(),
            now_ms: self.now_ms(),
        })
    }

    /// Usage statistics of the token's session.
    pub async fn session_analytics(&self, token: &str) -> Result<SessionAnalytics, Error> {
        Ok(self.analytics(&self.peek(token).await?))
    }

    /// Usage statistics of a session already read (no store call).
    pub fn analytics(&self, session: &SessionInfo) -> SessionAnalytics {
        let r = &session.record;
        SessionAnalytics {
            session_id: r.id,
            user_id: r.user_id.to_string(),
            duration_ms: session.now_ms.saturating_sub(r.created_at),
            last_activity_at: r.sequence.last_seen_at,
            request_count: r.sequence.requests,
            rotations: r.sequence.counter,
            renewals: r.meta.renewals,
            flags: r.meta.flags,
        }
    }

    /// Deletes expired sessions from the store now, and the drift state of
    /// sessions that sent no telemetry for an idle timeout; returns how many
    /// sessions were deleted.
    pub async fn sweep_expired(&self) -> Result<u64, Error> {
        let now = self.now_ms();
        let silent_since = now.saturating_sub(as_ms(self.inner.config.idle_timeout));
        self.inner.drift.forget_silent(silent_since);
        Ok(self.inner.store.sweep_expired(now).await?)
    }

    /// Spawns a tokio task that sweeps expired sessions every `every`. The
    /// task holds only a weak reference and stops when the manager is
    /// dropped.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let manager = SessionManager { inner };
                if let Err(e) = manager.sweep_expired().await {
                    tracing::warn!(error = %e, "sweeping expired sessions failed");
                }
            }
        })
    }
}
