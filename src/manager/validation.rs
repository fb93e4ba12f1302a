//! Validating a request: the token, the store's atomic advance, and the
//! verdict's consequences (events, metrics, the context policy).

use std::sync::Arc;

use crate::clock::as_ms;
use crate::config::{MismatchAction, Rotation};
use crate::error::{Error, ErrorKind, StoreError};
use crate::events::{SessionEvent, TerminationReason};
use crate::record::{AdvanceRequest, RevocationReason, Rotate, Verdict};
use crate::record::{SessionContext, SessionId, SessionRecord};
use crate::store::Advance;
use crate::token::VerifiedToken;

use super::{RequestInfo, SessionInfo, SessionManager, Validated};

impl SessionManager {
    /// Validates a token as a request with an unsafe method and no context:
    /// see [`validate`](Self::validate).
    pub async fn validate_session(&self, token: &str) -> Result<Validated, Error> {
        self.validate(token, &RequestInfo::default()).await
    }

    /// Verifies a token, applies the sequence rule and the policies in one
    /// store round trip, and returns the session with the token to send
    /// back.
    pub async fn validate(&self, token: &str, request: &RequestInfo) -> Result<Validated, Error> {
        self.validate_bytes(token.as_bytes(), request).await
    }

    /// [`validate`](Self::validate) of a token's bytes (the request path
    /// holds a [`Token`](crate::token::Token), whose text needs no UTF-8
    /// check to be verified).
    pub(crate) async fn validate_bytes(
        &self,
        token: &[u8],
        request: &RequestInfo,
    ) -> Result<Validated, Error> {
        let rotate = match self.inner.config.rotation {
            Rotation::EveryRequest => Rotate::Always,
            Rotation::UnsafeMethods if request.safe_method => Rotate::Never,
            Rotation::UnsafeMethods => Rotate::Always,
            Rotation::EveryNRequests(n) => Rotate::EveryN(n),
            Rotation::AtMostEvery(d) => Rotate::MinInterval(as_ms(d)),
        };
        self.check(token, rotate, request.context.as_ref(), None)
            .await
    }

    /// Token verification, the store's atomic advance, and the verdict's
    /// consequences (events, metrics, context policy).
    pub(super) async fn check(
        &self,
        token: &[u8],
        rotate: Rotate,
        context: Option<&SessionContext>,
        new_id: Option<SessionId>,
    ) -> Result<Validated, Error> {
        let verified = self.inner.keys.verify_bytes(token)?;
        let now = self.now_ms();
        let request = AdvanceRequest {
            rotate,
            new_id,
            max_ahead: u64::from(self.inner.config.token.max_ahead),
            ..self.advance_request(&verified, now)
        };
        let advance = match self
            .inner
            .store
            .verify_and_advance(&verified.session_id, &request)
            .await
        {
            Ok(advance) => advance,
            Err(e) => return Err(self.read_failed(&verified.session_id, e)),
        };
        let Some(advance) = advance else {
            count_request(Verdict::Unknown);
            return Err(ErrorKind::UnknownSession.into());
        };
        // Destructured at once, and one `record` throughout: every binding
        // alive across an `await` below takes room in this future.
        let Advance {
            verdict,
            mut record,
            data,
        } = advance;
        count_request(verdict);
        // Nothing of the record is used before its seal checks: not even
        // the user id of a theft report.
        self.check_seal(&verified.session_id, &record)?;
        if verdict.is_accepted() && now >= record.meta.ends_at() {
            // The store accepted a request its own (sealed) record says
            // is past the session's end: the deadline it decided on was
            // rewritten.
            return Err(self.tampered(
                verified.session_id,
                StoreError::corrupt(
                    "the store accepted a request after the sealed end of the session",
                ),
            ));
        }
        if !verdict.is_accepted() {
            // Boxed: the refusal path is rare and its future is large.
            Box::pin(self.refuse_unless_accepted(&verified, verdict, &record, context)).await?;
        }
        if verdict == Verdict::FastForward {
            // The newest retirement starts at the live counter the store
            // had before it moved forward.
            let stored_counter = record
                .sequence
                .retired
                .last()
                .map_or(record.sequence.counter, |r| r.from);
            self.emit(SessionEvent::StoreRolledBack {
                session_id: record.id,
                user_id: record.user_id.to_string(),
                presented_counter: verified.counter,
                stored_counter,
            });
        }
        let next_token = verdict.issues_token().then(|| {
            self.emit(SessionEvent::Rotated {
                session_id: record.id,
                counter: record.sequence.counter,
            });
            self.inner.keys.mint(&record.id, record.sequence.counter)
        });
        if verified.session_id != record.id && new_id != Some(record.id) {
            // A token of an earlier id, within its grace: it keeps the
            // permissions it had, never those an elevation granted since.
            // (Not the request that just moved the lineage to `new_id`:
            // its record is the session's own, written back by renewal
            // and elevation.)
            let previous = record.previous_ids.last() == Some(&verified.session_id);
            let meta = &mut Arc::make_mut(&mut record).meta;
            meta.permissions = if previous {
                std::mem::take(&mut meta.previous_permissions)
            } else {
                Box::default()
            };
        }
        if let Some(ctx) = context {
            let fields = self.context_mismatch(&record, ctx);
            if !fields.is_empty() {
                record = Box::pin(self.act_on_context_mismatch(record, ctx, fields)).await?;
            }
        }
        if next_token.is_some()
            && record.meta.seal.map(|s| s.key_id()) != Some(self.inner.keys.current().id())
        {
            Box::pin(self.reseal(&record.id)).await;
        }
        Ok(Validated {
            session: SessionInfo {
                record,
                now_ms: now,
            },
            verdict,
            next_token,
            data,
        })
    }

    pub(super) async fn refuse_unless_accepted(
        &self,
        verified: &VerifiedToken,
        verdict: Verdict,
        record: &SessionRecord,
        context: Option<&SessionContext>,
    ) -> Result<(), Error> {
        let kind = match verdict {
            Verdict::Ahead => ErrorKind::TokenAhead,
            Verdict::Unknown => ErrorKind::UnknownSession,
            Verdict::Revoked => match record.sequence.revoked {
                Some(RevocationReason::Evicted) => ErrorKind::SessionEvicted,
                _ => ErrorKind::SessionRevoked,
            },
            Verdict::Reused => {
                self.inner.drift.forget(&record.id);
                self.emit(SessionEvent::TheftDetected {
                    session_id: record.id,
                    lineage: record.all_ids().collect(),
                    user_id: record.user_id.to_string(),
                    presented_counter: verified.counter,
                    live_counter: record.sequence.counter,
                    session_context: record.meta.context.clone(),
                    request_context: context.cloned(),
                });
                ErrorKind::TokenReused
            }
            Verdict::Expired | Verdict::IdleTimeout => {
                let idle = verdict == Verdict::IdleTimeout;
                self.emit(SessionEvent::Expired {
                    session_id: record.id,
                    idle,
                });
                // Best effort: the sweeper deletes it later anyway.
                let _ = self.inner.store.delete(&record.id).await;
                if idle {
                    ErrorKind::IdleTimeout
                } else {
                    ErrorKind::SessionExpired {
                        absolute: self.now_ms() >= record.meta.absolute_expires_at,
                    }
                }
            }
            _ => return Ok(()),
        };
        Err(kind.into())
    }

    /// The context fields the policy checks that differ from the session's.
    pub(super) fn context_mismatch(
        &self,
        record: &SessionRecord,
        presented: &SessionContext,
    ) -> Vec<&'static str> {
        let policy = self.inner.config.context;
        let stored = &record.meta.context;
        let mut fields = Vec::new();
        let differs = |a: &Option<Box<str>>, b: &Option<Box<str>>| matches!((a, b), (Some(a), Some(b)) if a != b);
        if policy.check_ip && matches!((stored.ip, presented.ip), (Some(a), Some(b)) if a != b) {
            fields.push("ip");
        }
        if policy.check_user_agent && differs(&stored.user_agent, &presented.user_agent) {
            fields.push("user_agent");
        }
        if policy.check_device && differs(&stored.device_id, &presented.device_id) {
            fields.push("device_id");
        }
        fields
    }

    pub(super) async fn act_on_context_mismatch(
        &self,
        mut record: Arc<SessionRecord>,
        presented: &SessionContext,
        fields: Vec<&'static str>,
    ) -> Result<Arc<SessionRecord>, Error> {
        let policy = self.inner.config.context;
        let stored = &record.meta.context;
        self.emit(SessionEvent::ContextMismatch {
            session_id: record.id,
            fields: fields.clone(),
            session_context: stored.clone(),
            request_context: presented.clone(),
        });
        match policy.on_mismatch {
            MismatchAction::Reauthenticate => {
                self.terminate_id(&record.id, TerminationReason::ContextMismatch)
                    .await?;
                Err(ErrorKind::ContextMismatch { fields }.into())
            }
            MismatchAction::Allow => {
                if !record.meta.flags.context_mismatch {
                    let owned = Arc::make_mut(&mut record);
                    owned.meta.flags.context_mismatch = true;
                    self.write_meta(owned).await?;
                }
                Ok(record)
            }
        }
    }

    /// Checks `token` as a request would, without being one: the record is
    /// read and the sequence rule applied to a copy, so nothing is counted
    /// or rotated (reads never mutate). A token the rule would refuse goes
    /// through the real, atomic check instead, so a copied token used for
    /// a read is still caught (and the session revoked) like on any route.
    /// The request `verified` makes at `now` under the configured grace:
    /// no rotation, no new id, no fast-forward (callers set those).
    fn advance_request(&self, verified: &VerifiedToken, now: u64) -> AdvanceRequest {
        AdvanceRequest {
            session: verified.session_id,
            presented: verified.counter,
            now_ms: now,
            grace_depth: self.inner.config.token.grace_depth,
            grace_window_ms: self.grace_window_ms(&verified.session_id),
            rotate: Rotate::Never,
            new_id: None,
            max_ahead: 0,
        }
    }

    pub(super) async fn peek(&self, token: &str) -> Result<SessionInfo, Error> {
        let verified = self.inner.keys.verify(token)?;
        let now = self.now_ms();
        if let Some(mut record) = self.load_checked(&verified.session_id).await? {
            let request = self.advance_request(&verified, now);
            let stored = record.clone();
            if record.advance(&request).is_accepted() {
                return Ok(SessionInfo {
                    record: stored.into(),
                    now_ms: now,
                });
            }
        }
        self.check(token.as_bytes(), Rotate::Never, None, None)
            .await
            .map(|v| v.session)
    }
}

/// Counts a request by verdict (`rolling_session_requests_total`), with a
/// literal label per verdict: the metrics macro keeps those in statics,
/// where a computed label allocates on every request.
fn count_request(verdict: Verdict) {
    macro_rules! count {
        ($name:literal) => {
            metrics::counter!("rolling_session_requests_total", "verdict" => $name).increment(1)
        };
    }
    match verdict {
        Verdict::Rotated => count!("rotated"),
        Verdict::Current => count!("current"),
        Verdict::Pending => count!("pending"),
        Verdict::Recovered => count!("recovered"),
        Verdict::Grace => count!("grace"),
        Verdict::Ahead => count!("ahead"),
        Verdict::FastForward => count!("fast_forward"),
        Verdict::Reused => count!("reused"),
        Verdict::Revoked => count!("revoked"),
        Verdict::Expired => count!("expired"),
        Verdict::IdleTimeout => count!("idle_timeout"),
        Verdict::Unknown => count!("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::count_request;
    use crate::record::Verdict;

    #[test]
    fn request_counter_labels_are_the_verdict_names() {
        let all = [
            Verdict::Rotated,
            Verdict::Current,
            Verdict::Pending,
            Verdict::Recovered,
            Verdict::Grace,
            Verdict::Ahead,
            Verdict::FastForward,
            Verdict::Reused,
            Verdict::Revoked,
            Verdict::Expired,
            Verdict::IdleTimeout,
            Verdict::Unknown,
        ];
        let labels =
            super::super::recorded_label_values(|| all.into_iter().for_each(count_request));
        let mut names: Vec<String> = all.iter().map(|v| v.as_str().to_owned()).collect();
        names.sort();
        assert_eq!(labels, names);
    }
}
