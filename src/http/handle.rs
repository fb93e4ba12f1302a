//! The per-request session handle and the token exchange around a request.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::clock::as_ms;
use crate::data::SessionData;
#[cfg(feature = "drift")]
use crate::drift::{DriftAdvice, TelemetrySample};
use crate::error::{Error, ErrorKind};
use crate::manager::{
    LoginOptions, RequestInfo, SessionAnalytics, SessionInfo, SessionManager, SessionStatus,
};
use crate::record::SessionContext;
use crate::token::Token;

use super::SessionExchange;

mod data;
mod view;
pub use data::{DataError, SessionValue};
use view::DataView;

/// What the request brought.
// Unboxed on purpose: the state lives in the handle's one allocation, and a
// box for the session would be one more per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Presence {
    /// A valid session; `token` is the client's live token after this
    /// request, `held` the one it holds while the request is in flight
    /// (the token it presented, or a login's first token).
    Active {
        session: SessionInfo,
        token: Token,
        held: Token,
    },
    /// No token.
    Missing,
    /// A token that was refused, and why.
    Rejected(Error),
    /// A token not validated yet: the refresh route, whose renewal is the
    /// request's validation and its one rotation (see
    /// [`SessionExchange::begin`](super::SessionExchange::begin)).
    Deferred {
        presented: Token,
        request: Box<RequestInfo>,
    },
}

/// What the response must do to the client's token.
#[derive(Debug, Clone)]
enum Write {
    Nothing,
    /// Send this token, with the cookie's `Max-Age` (`None`: a
    /// browser-session cookie). `issued` is when the server issued it;
    /// `None` for a new lineage's first token (login), which nothing can
    /// have abandoned.
    Token(Token, Option<Duration>, Option<Issued>),
    Clear,
}

/// When a token was issued: on the monotonic clock, and on the manager's
/// clock (the one the sequence rule measures T with). A response leaving
/// too late by either goes without the token.
#[derive(Debug, Clone, Copy)]
struct Issued {
    at: Instant,
    at_ms: u64,
}

impl Issued {
    fn at(session: &SessionInfo) -> Self {
        Self {
            at: Instant::now(),
            at_ms: session.observed_at_ms(),
        }
    }

    fn older_than(&self, deadline: Duration, manager: &SessionManager) -> bool {
        // With a real-time clock the monotonic reading says it all (and a
        // wall clock stepped back cannot hide a late response).
        self.at.elapsed() > deadline
            || (!manager.clock_follows_real_time()
                && manager.now_ms().saturating_sub(self.at_ms) > as_ms(deadline))
    }
}

#[derive(Debug)]
struct State {
    presence: Presence,
    write: Write,
    /// The session's data as this request sees it: as read with the
    /// validation, with this request's changes on top (see [`data`]).
    data: DataView,
}

impl State {
    fn new(presence: Presence, write: Write, data: SessionData) -> Self {
        Self {
            presence,
            write,
            data: DataView::new(data),
        }
    }
}

/// The session of one request, placed in the request extensions by the
/// layer (or the actix-web middleware).
///
/// Read the session with [`session`](Self::session); change it with the
/// async methods, whose effect on the client's token (a new cookie, a
/// removed one) is written onto the response by the layer. With the
/// `axum` or `actix` feature it is an extractor.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::post};
/// use rolling_session::http::{Rejection, Session, SessionLayer};
/// use rolling_session::{KeyRing, SessionManager, TokenKey};
///
/// async fn login(handle: Session) -> Result<String, Rejection> {
///     // ...authenticate first. A session the request had is ended: a
///     // login always gets a fresh id (no fixation).
///     let session = handle.login("alice").await?;
///     Ok(format!("welcome {}", session.user_id()))
/// }
///
/// async fn sudo(handle: Session) -> Result<&'static str, Rejection> {
///     handle.require()?; // 401 with the reason when there is no session
///     // ...check the password again, then elevate (a fresh id as well).
///     handle.set_permissions(vec!["admin".into()]).await?;
///     Ok("elevated")
/// }
///
/// async fn logout(handle: Session) -> Result<&'static str, Rejection> {
///     handle.logout().await?; // ends the session and clears the cookie
///     Ok("bye")
/// }
///
/// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
/// let app: Router = Router::new()
///     .route("/login", post(login))
///     .route("/sudo", post(sudo))
///     .route("/logout", post(logout))
///     .layer(SessionLayer::new(manager));
/// # }
/// # Ok::<(), rolling_session::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Session {
    // One allocation per request, and a clone (into the extensions, for
    // each extractor) is one reference count.
    inner: Arc<Shared>,
}

struct Shared {
    // The exchange (settings and manager) the request came through, moved
    // in rather than cloned: the layer reads it back from the handle.
    exchange: SessionExchange,
    context: SessionContext,
    state: Mutex<State>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The validated session, if the request carried a valid token.
    pub fn session(&self) -> Option<SessionInfo> {
        match &self.lock().presence {
            Presence::Active { session, .. } => Some(session.clone()),
            _ => None,
        }
    }

    /// The session, or the reason there is none (`missing_token`,
    /// `token_reused`, ...), ready to answer with.
    pub fn require(&self) -> Result<SessionInfo, Error> {
        match &self.lock().presence {
            Presence::Active { session, .. } => Ok(session.clone()),
            Presence::Missing => Err(ErrorKind::MissingToken.into()),
            Presence::Rejected(e) => Err(e.clone()),
            Presence::Deferred { .. } => Err(ErrorKind::NotValidated.into()),
        }
    }

    /// The session of a logged-in user, or the reason there is none: the
    /// [`require`](Self::require) refusals, and 401 `login_required` for an
    /// anonymous session. The [`SessionInfo`] extractors use it.
    pub fn user(&self) -> Result<SessionInfo, Error> {
        let session = self.require()?;
        if session.is_anonymous() {
            return Err(ErrorKind::LoginRequired.into());
        }
        Ok(session)
    }

    pub(crate) fn is_deferred(&self) -> bool {
        matches!(self.lock().presence, Presence::Deferred { .. })
    }

    /// The live token, and whether this request issued it (so the client
    /// does not hold it yet: renewal and elevation must replace it rather
    /// than use it).
    fn live_token_undelivered(&self) -> Result<(Token, bool), Error> {
        match &self.lock().presence {
            Presence::Active { token, held, .. } => Ok((token.clone(), token != held)),
            Presence::Deferred { presented, .. } => Ok((presented.clone(), false)),
            Presence::Missing => Err(ErrorKind::MissingToken.into()),
            Presence::Rejected(e) => Err(e.clone()),
        }
    }

    fn live_token(&self) -> Result<Token, Error> {
        match &self.lock().presence {
            Presence::Active { token, .. } => Ok(token.clone()),
            Presence::Deferred { presented, .. } => Ok(presented.clone()),
            Presence::Missing => Err(ErrorKind::MissingToken.into()),
            Presence::Rejected(e) => Err(e.clone()),
        }
    }

    fn activate(&self, session: SessionInfo, token: Token, issued: Option<Issued>) {
        let max_age = cookie_max_age(&session);
        let mut state = self.lock();
        state.write = Write::Token(token.clone(), max_age, issued);
        let held = match (&state.presence, issued) {
            // Renewal, elevation: the client still holds what it presented.
            (Presence::Active { held, .. }, Some(_)) => held.clone(),
            (Presence::Deferred { presented, .. }, Some(_)) => presented.clone(),
            _ => token.clone(),
        };
        state.presence = Presence::Active {
            session,
            token,
            held,
        };
    }

    /// A failed operation: a store failure is counted and logged (once,
    /// here, where it happened: `rolling_session_store_errors_total`), and
    /// a refusal that ended the session is recorded. The cookie is left
    /// alone: see [`Rejection::ends_session`].
    fn failed(&self, e: Error) -> Error {
        super::report::store_failure(&e);
        if e.kind().ends_session() {
            self.lock().presence = Presence::Rejected(e.clone());
        }
        e
    }

    /// Creates a session for `user_id` (after you authenticated them) and
    /// hands its token to the client. A session the request already had
    /// is ended first: a login always gets a fresh id.
    ///
    /// The cookie ends when the browser closes; use
    /// [`login_with`](Self::login_with) for "remember me".
    pub async fn login(&self, user_id: impl Into<String>) -> Result<SessionInfo, Error> {
        self.login_with(user_id, LoginOptions::default()).await
    }

    /// [`login`](Self::login) with options, e.g. the login form's "remember
    /// me" box: a persistent cookie and the longer
    /// [`Config::remember_me`](crate::Config::remember_me) lifetimes.
    ///
    /// ```
    /// use rolling_session::{Error, LoginOptions, Session};
    ///
    /// async fn login(handle: Session, remember: bool) -> Result<(), Error> {
    ///     // ...check the password first.
    ///     let options = LoginOptions::default().remember_me(remember);
    ///     handle.login_with("alice", options).await?;
    ///     Ok(())
    /// }
    /// ```
    pub async fn login_with(
        &self,
        user_id: impl Into<String>,
        options: LoginOptions,
    ) -> Result<SessionInfo, Error> {
        if self.live_token().is_ok() {
            self.end_current().await?;
        }
        let created = self
            .manager()
            .create_session_with(user_id, self.inner.context.clone(), options)
            .await
            .map_err(|e| self.failed(e))?;
        self.activate(created.session.clone(), created.token, None);
        // The data the visitor had (an anonymous session's cart, a `next`
        // URL...) moves to the new session, written with this request's
        // other changes; or is dropped, if asked.
        let mut state = self.lock();
        if options.keep_data {
            state.data.carry_over();
        } else {
            state.data.reset();
        }
        drop(state);
        Ok(created.session)
    }

    /// Ends the session and removes the client's token.
    pub async fn logout(&self) -> Result<(), Error> {
        self.end_current().await?;
        let mut state = self.lock();
        state.write = Write::Clear;
        state.presence = Presence::Missing;
        state.data.reset();
        Ok(())
    }

    /// Ends the request's session: by id when it was validated (one store
    /// call), else (the refresh route) with its token, checked first.
    async fn end_current(&self) -> Result<(), Error> {
        let validated = match &self.lock().presence {
            Presence::Active { session, .. } => Some(session.id()),
            _ => None,
        };
        let ended = match validated {
            Some(id) => {
                self.manager()
                    .terminate_id(&id, crate::events::TerminationReason::Logout)
                    .await
            }
            None => {
                let token = self.live_token()?;
                self.manager().terminate_session(token.expose()).await
            }
        };
        ended.map_err(|e| self.failed(e))
    }

    /// Renews the session (see [`SessionManager::renew_session`]): the
    /// client receives the renewed token.
    ///
    /// On the refresh route the request was not validated first (see
    /// [`SessionExchange::begin`](super::SessionExchange::begin)): the renewal is its validation, with
    /// the token the client presented. If the renewal is refused before
    /// the token was checked (too early, limits), the request is validated
    /// then, like any other.
    pub async fn renew(&self) -> Result<SessionInfo, Error> {
        let (token, undelivered) = self.live_token_undelivered()?;
        let renewal = if undelivered {
            self.manager()
                .renew_session_undelivered(token.expose())
                .await
        } else {
            self.manager().renew_session(token.expose()).await
        };
        let renewed = match renewal {
            Ok(renewed) => renewed,
            Err(refused) => {
                let deferred = match &self.lock().presence {
                    Presence::Deferred { request, .. } => Some((**request).clone()),
                    _ => None,
                };
                if let Some(request) = deferred.filter(|_| !refused.kind().ends_session()) {
                    super::report::store_failure(&refused);
                    let (presence, write, data) = validate(self.manager(), token, &request).await;
                    let mut state = self.lock();
                    state.presence = presence;
                    state.write = write;
                    state.data.reread(data);
                    if let Presence::Rejected(e) = &state.presence {
                        return Err(e.clone());
                    }
                    return Err(refused);
                }
                return Err(self.failed(refused));
            }
        };
        let issued = Issued::at(&renewed.session);
        self.activate(renewed.session.clone(), renewed.token, Some(issued));
        Ok(renewed.session)
    }

    /// Sliding expiry ([`Config::sliding_expiry`](crate::Config)): renews a
    /// session whose lifetime is about to end with the token this request
    /// was issued (replaced, never used). If the renewal fails, the issued
    /// token is not sent either, whatever the store did: the client keeps
    /// the token it presented, which the sequence rule recovers like a
    /// lost response. `token` is the one [`slide_due`](Self::slide_due)
    /// found due.
    async fn slide(&self, token: Token) {
        match self.manager().slide_undelivered(token.expose()).await {
            Ok(renewed) => {
                let issued = Issued::at(&renewed.session);
                self.activate(renewed.session, renewed.token, Some(issued));
            }
            Err(e) => {
                tracing::debug!(error = %e, "sliding renewal failed; the client keeps its token");
                self.lock().write = Write::Nothing;
            }
        }
    }

    /// The token a sliding renewal would replace, if one is due.
    fn slide_due(&self) -> Option<Token> {
        match &self.lock().presence {
            Presence::Active {
                session,
                token,
                held,
            } if token != held => self
                .manager()
                .sliding_renewal_due(session)
                .then(|| token.clone()),
            _ => None,
        }
    }

    /// Confirms a renewal (see [`SessionManager::confirm_renewal`]).
    ///
    /// The request was validated already: this answers from that
    /// validation, with no store call.
    pub async fn confirm_renewal(&self) -> Result<SessionInfo, Error> {
        let session = self.require()?;
        if session.record().previous_ids.is_empty() {
            return Err(ErrorKind::NothingToConfirm.into());
        }
        Ok(session)
    }

    /// Sets the session's permissions; the session moves to a new id whose
    /// token the client receives (fixation protection).
    pub async fn set_permissions(&self, permissions: Vec<String>) -> Result<SessionInfo, Error> {
        let (token, undelivered) = self.live_token_undelivered()?;
        let elevation = if undelivered {
            self.manager()
                .set_session_permissions_undelivered(token.expose(), permissions)
                .await
        } else {
            self.manager()
                .set_session_permissions(token.expose(), permissions)
                .await
        };
        let elevated = elevation.map_err(|e| self.failed(e))?;
        let issued = Issued::at(&elevated.session);
        self.activate(elevated.session.clone(), elevated.token, Some(issued));
        Ok(elevated.session)
    }

    /// Updates the recorded context with the fields set in `update`.
    /// The session is addressed by id (it was validated already): one
    /// store call to read it afresh and one to write, the token sequence
    /// untouched.
    pub async fn update_context(&self, update: SessionContext) -> Result<SessionInfo, Error> {
        let id = self.require()?.id();
        let session = self
            .manager()
            .update_context_of(&id, update)
            .await
            .map_err(|e| self.failed(e))?;
        if let Presence::Active { session: held, .. } = &mut self.lock().presence {
            held.record_mut().meta = session.record().meta.clone();
        }
        Ok(session)
    }

    /// Usage statistics of the session, as of this request's validation
    /// (no store call: reading them never counts as a request).
    pub async fn analytics(&self) -> Result<SessionAnalytics, Error> {
        self.require().map(|s| self.manager().analytics(&s))
    }

    /// Feeds a telemetry report to the drift predictor, as
    /// `POST /session/telemetry` does; see
    /// [`SessionManager::ingest_telemetry`].
    #[cfg(feature = "drift")]
    #[cfg_attr(docsrs, doc(cfg(feature = "drift")))]
    pub async fn report_telemetry(
        &self,
        sample: &TelemetrySample,
        operation: Option<&str>,
    ) -> Result<DriftAdvice, Error> {
        let session = self.require()?;
        self.manager()
            .ingest_telemetry(&session, sample, operation)
            .await
            .map_err(|e| self.failed(e))
    }

    /// Relative times and renewal advice, as `GET /session/status` serves.
    pub fn status(&self) -> Result<SessionStatus, Error> {
        self.require().map(|s| self.manager().status(&s))
    }

    /// The manager behind this handle.
    pub fn manager(&self) -> &SessionManager {
        self.inner.exchange.manager()
    }

    /// The exchange the request came through.
    pub(crate) fn exchange(&self) -> &SessionExchange {
        &self.inner.exchange
    }
}

/// What the response must do to the client's token, as
/// [`SessionExchange::finish`](super::SessionExchange::finish) writes it:
/// borrowed from the handle's state, so that a response costs no copy of
/// the token.
#[derive(Debug)]
pub(crate) enum Carry<'a> {
    Nothing,
    /// Send this token, with the cookie's `Max-Age`.
    Token(&'a Token, Option<Duration>),
    Clear,
}

impl Session {
    /// The handle over a new state, built where it lives: in the handle's
    /// one allocation, rather than moved there through each wrapper.
    #[inline(always)]
    fn with_state(
        exchange: SessionExchange,
        context: Option<SessionContext>,
        presence: Presence,
        write: Write,
        data: SessionData,
    ) -> Self {
        Self {
            inner: Arc::new(Shared {
                exchange,
                context: context.unwrap_or_default(),
                state: Mutex::new(State::new(presence, write, data)),
            }),
        }
    }

    /// A request without a token.
    pub(crate) fn missing(exchange: SessionExchange, request: RequestInfo) -> Self {
        Self::with_state(
            exchange,
            request.context,
            Presence::Missing,
            Write::Nothing,
            SessionData::default(),
        )
    }

    /// A request to the refresh route: validated by its renewal (see
    /// [`SessionExchange::begin`](super::SessionExchange::begin)).
    pub(crate) fn deferred(
        exchange: SessionExchange,
        presented: Token,
        request: RequestInfo,
    ) -> Self {
        let presence = Presence::Deferred {
            presented,
            request: Box::new(request.clone()),
        };
        Self::with_state(
            exchange,
            request.context,
            presence,
            Write::Nothing,
            SessionData::default(),
        )
    }

    /// A request with a token, validated (and renewed under sliding
    /// expiry when due).
    pub(crate) async fn validated(
        exchange: SessionExchange,
        presented: Token,
        request: RequestInfo,
    ) -> Self {
        let (presence, write, data) = validate(exchange.manager(), presented, &request).await;
        let handle = Self::with_state(exchange, request.context, presence, write, data);
        // Boxed: a renewal's future is as large as a validation's, and
        // only a request near the end of the session's lifetime needs it.
        if let Some(token) = handle.slide_due() {
            Box::pin(handle.slide(token)).await;
        }
        handle
    }

    /// Hands `write` what the response must carry, and the
    /// `(expires_in, idle_expires_in)` of an active session. A token issued
    /// more than `deadline` ago is not sent: too late to be sure it is
    /// still the one to hold, the client recovers on its next request
    /// instead.
    pub(crate) fn outgoing<R>(
        &self,
        deadline: Duration,
        write: impl FnOnce(Carry<'_>, Option<(Duration, Duration)>) -> R,
    ) -> R {
        let state = self.lock();
        let expiry = match &state.presence {
            Presence::Active { session, .. } => {
                Some((session.expires_in(), session.idle_expires_in()))
            }
            _ => None,
        };
        let carry = match &state.write {
            Write::Nothing => Carry::Nothing,
            Write::Token(_, _, Some(issued)) if issued.older_than(deadline, self.manager()) => {
                metrics::counter!("rolling_session_late_tokens_dropped_total").increment(1);
                Carry::Nothing
            }
            Write::Token(token, max_age, _) => Carry::Token(token, *max_age),
            Write::Clear => Carry::Clear,
        };
        write(carry, expiry)
    }
}

/// The cookie's `Max-Age`: none for a browser-session login (the cookie
/// ends with the browser); for a remembered one, until the session would
/// end if no other request came (idle or lifetime, whichever is first).
fn cookie_max_age(session: &SessionInfo) -> Option<Duration> {
    session
        .flags()
        .remembered
        .then(|| session.expires_in().min(session.idle_expires_in()))
}

/// Validates `presented` as one request: the handle's state after it.
async fn validate(
    manager: &SessionManager,
    presented: Token,
    request: &RequestInfo,
) -> (Presence, Write, SessionData) {
    match manager.validate_bytes(presented.as_bytes(), request).await {
        Ok(v) => {
            let max_age = cookie_max_age(&v.session);
            let issued = Issued::at(&v.session);
            let write = v
                .next_token
                .clone()
                .map_or(Write::Nothing, |t| Write::Token(t, max_age, Some(issued)));
            let token = v.next_token.unwrap_or_else(|| presented.clone());
            (
                Presence::Active {
                    session: v.session,
                    token,
                    held: presented,
                },
                write,
                v.data,
            )
        }
        // Never clear the cookie on a refusal: the jar may already hold a
        // newer token than the one refused.
        Err(e) => {
            super::report::store_failure(&e);
            (
                Presence::Rejected(e),
                Write::Nothing,
                SessionData::default(),
            )
        }
    }
}
