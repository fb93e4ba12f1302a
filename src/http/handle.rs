//! The per-request session handle and the token exchange around a request.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::header::{CACHE_CONTROL, HeaderName, HeaderValue};

use crate::clock::as_ms;
use crate::drift::{DriftAdvice, TelemetrySample};
use crate::error::Error;
use crate::manager::{RequestInfo, Session, SessionAnalytics, SessionManager, SessionStatus};
use crate::session::SessionContext;
use crate::token::Token;

use super::SessionExchange;
use super::rejection::Rejection;
use super::transport::{EXPIRES_IN_HEADER, IDLE_EXPIRES_IN_HEADER};

/// What the request brought.
#[derive(Debug, Clone)]
enum Presence {
    /// A valid session; `token` is the client's live token after this
    /// request.
    Active { session: Box<Session>, token: Token },
    /// No token.
    Missing,
    /// A token that was refused, and why.
    Rejected(Rejection),
}

/// What the response must do to the client's token.
#[derive(Debug, Clone)]
enum Write {
    Nothing,
    Token(Token, Duration),
    Clear,
}

#[derive(Debug)]
struct State {
    presence: Presence,
    write: Write,
}

/// The session of one request, placed in the request extensions by the
/// layer (or the actix-web middleware).
///
/// Read the session with [`session`](Self::session); change it with the
/// async methods, whose effect on the client's token (a new cookie, a
/// removed one) is written onto the response by the layer.
#[derive(Clone)]
pub struct SessionHandle {
    manager: SessionManager,
    context: SessionContext,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl SessionHandle {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The validated session, if the request carried a valid token.
    pub fn session(&self) -> Option<Session> {
        match &self.lock().presence {
            Presence::Active { session, .. } => Some((**session).clone()),
            _ => None,
        }
    }

    /// The session, or the reason there is none (`missing_token`,
    /// `token_reused`, ...), ready to answer with.
    pub fn require(&self) -> Result<Session, Rejection> {
        match &self.lock().presence {
            Presence::Active { session, .. } => Ok((**session).clone()),
            Presence::Missing => Err(Rejection::missing_token()),
            Presence::Rejected(r) => Err(r.clone()),
        }
    }

    fn live_token(&self) -> Result<Token, Rejection> {
        match &self.lock().presence {
            Presence::Active { token, .. } => Ok(token.clone()),
            Presence::Missing => Err(Rejection::missing_token()),
            Presence::Rejected(r) => Err(r.clone()),
        }
    }

    fn activate(&self, session: Session, token: Token) {
        let max_age = session.expires_in();
        let mut state = self.lock();
        state.write = Write::Token(token.clone(), max_age);
        state.presence = Presence::Active {
            session: Box::new(session),
            token,
        };
    }

    fn reject(&self, e: &Error) -> Rejection {
        let r = Rejection::from(e);
        if r.ends_session() {
            let mut state = self.lock();
            state.write = Write::Clear;
            state.presence = Presence::Rejected(r.clone());
        }
        r
    }

    /// Creates a session for `user_id` (after you authenticated them) and
    /// hands its token to the client. A session the request already had
    /// is ended first: a login always gets a fresh id.
    pub async fn login(&self, user_id: impl Into<String>) -> Result<Session, Rejection> {
        if let Ok(old) = self.live_token() {
            self.manager
                .terminate_session(old.expose())
                .await
                .map_err(|e| Rejection::from(&e))?;
        }
        let created = self
            .manager
            .create_session(user_id, self.context.clone())
            .await
            .map_err(|e| Rejection::from(&e))?;
        self.activate(created.session.clone(), created.token);
        Ok(created.session)
    }

    /// Ends the session and removes the client's token.
    pub async fn logout(&self) -> Result<(), Rejection> {
        let token = self.live_token()?;
        self.manager
            .terminate_session(token.expose())
            .await
            .map_err(|e| Rejection::from(&e))?;
        let mut state = self.lock();
        state.write = Write::Clear;
        state.presence = Presence::Missing;
        Ok(())
    }

    /// Two-phase renewal, phase one: the client receives the new session's
    /// token; the old one keeps working until confirmed or the grace ends.
    pub async fn renew(&self) -> Result<Session, Rejection> {
        let token = self.live_token()?;
        let renewed = self
            .manager
            .renew_session(token.expose())
            .await
            .map_err(|e| self.reject(&e))?;
        self.activate(renewed.session.clone(), renewed.token);
        Ok(renewed.session)
    }

    /// Two-phase renewal, phase two: retires the old credentials.
    pub async fn confirm_renewal(&self) -> Result<Session, Rejection> {
        let token = self.live_token()?;
        self.manager
            .confirm_renewal(token.expose())
            .await
            .map_err(|e| self.reject(&e))
    }

    /// Sets the session's permissions; the session moves to a new id whose
    /// token the client receives (fixation protection).
    pub async fn set_permissions(&self, permissions: Vec<String>) -> Result<Session, Rejection> {
        let token = self.live_token()?;
        let elevated = self
            .manager
            .set_session_permissions(token.expose(), permissions)
            .await
            .map_err(|e| self.reject(&e))?;
        self.activate(elevated.session.clone(), elevated.token);
        Ok(elevated.session)
    }

    /// Updates the recorded context with the fields set in `update`.
    pub async fn update_context(&self, update: SessionContext) -> Result<Session, Rejection> {
        let token = self.live_token()?;
        self.manager
            .update_session_context(token.expose(), update)
            .await
            .map_err(|e| self.reject(&e))
    }

    /// Usage statistics of the session.
    pub async fn analytics(&self) -> Result<SessionAnalytics, Rejection> {
        let token = self.live_token()?;
        self.manager
            .session_analytics(token.expose())
            .await
            .map_err(|e| self.reject(&e))
    }

    /// Feeds a telemetry report to the drift predictor, as
    /// `POST /session/telemetry` does; see
    /// [`SessionManager::ingest_telemetry`].
    pub async fn report_telemetry(
        &self,
        sample: &TelemetrySample,
        operation: Option<&str>,
    ) -> Result<DriftAdvice, Rejection> {
        let session = self.require()?;
        self.manager
            .ingest_telemetry(&session, sample, operation)
            .await
            .map_err(|e| self.reject(&e))
    }

    /// Relative times and renewal advice, as `GET /session/status` serves.
    pub fn status(&self) -> Result<SessionStatus, Rejection> {
        self.require().map(|s| self.manager.status(&s))
    }

    /// The manager behind this handle.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }
}

impl SessionExchange {
    /// Validates the request's token (if any) and returns the handle for
    /// the request. Never fails: a refusal is recorded in the handle.
    pub async fn begin(&self, token: Option<String>, request: RequestInfo) -> SessionHandle {
        let manager = self.manager().clone();
        let context = request.context.clone().unwrap_or_default();
        let (presence, write) = match token {
            None => (Presence::Missing, Write::Nothing),
            Some(presented) => match manager.validate(&presented, &request).await {
                Ok(v) => {
                    let max_age = v.session.expires_in();
                    let write = v
                        .next_token
                        .clone()
                        .map_or(Write::Nothing, |t| Write::Token(t, max_age));
                    let token = v.next_token.unwrap_or_else(|| Token::presented(presented));
                    (
                        Presence::Active {
                            session: Box::new(v.session),
                            token,
                        },
                        write,
                    )
                }
                Err(e) => {
                    let r = Rejection::from(&e);
                    let write = if r.ends_session() {
                        Write::Clear
                    } else {
                        Write::Nothing
                    };
                    (Presence::Rejected(r), write)
                }
            },
        };
        SessionHandle {
            manager,
            context,
            state: Arc::new(Mutex::new(State { presence, write })),
        }
    }

    /// The headers to add to the response: the next token (or its
    /// removal) with `Cache-Control: no-store`, and the relative expiry
    /// times of an active session.
    pub fn finish(&self, handle: &SessionHandle) -> Vec<(HeaderName, HeaderValue)> {
        let state = handle.lock();
        let mut headers = Vec::with_capacity(4);
        let carried = match &state.write {
            Write::Nothing => None,
            Write::Token(token, max_age) => self.token_transport().write(token, *max_age),
            Write::Clear => self.token_transport().clear(),
        };
        if let Some(h) = carried {
            headers.push(h);
            headers.push((CACHE_CONTROL, HeaderValue::from_static("no-store")));
        }
        if let Presence::Active { session, .. } = &state.presence {
            headers.push((
                HeaderName::from_static(EXPIRES_IN_HEADER),
                HeaderValue::from(as_ms(session.expires_in())),
            ));
            headers.push((
                HeaderName::from_static(IDLE_EXPIRES_IN_HEADER),
                HeaderValue::from(as_ms(session.idle_expires_in())),
            ));
        }
        headers
    }
}
