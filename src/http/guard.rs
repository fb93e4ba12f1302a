//! Route guards in the axum-login style: "this route needs a logged-in
//! user", "this route needs permission P".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Request, Response, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Rejection, Session};

/// A tower layer for the routes that need a logged-in user (and, with
/// [`permission`](Self::permission), a permission). Put it on those routes,
/// inside the [`SessionLayer`](super::SessionLayer).
///
/// Without a logged-in user (no session, an expired one, or an anonymous
/// visitor's), a browser (`Accept: text/html`) with a
/// [`login_url`](Self::login_url) set is redirected there (303) with
/// `?next=` and the path it asked for; other clients get 401
/// `login_required` (or the session's own refusal, like `token_reused`).
/// A logged-in user without the permission gets 403
/// `permission_required`. Refusals are rendered in the session layer's
/// [`RejectionFormat`](super::RejectionFormat).
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::get};
/// use rolling_session::http::{RequireLogin, SessionLayer};
/// use rolling_session::{KeyRing, SessionInfo, SessionManager, TokenKey};
///
/// async fn account(session: SessionInfo) -> String {
///     format!("hello {}", session.user_id())
/// }
///
/// let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build()?;
/// let app: Router = Router::new()
///     .route("/admin", get(|| async { "admin" }))
///     .route_layer(RequireLogin::new().permission("admin").login_url("/login"))
///     .route("/account", get(account))
///     .route_layer(RequireLogin::new().login_url("/login"))
///     .route("/login", get(|| async { "the login form" }))
///     .layer(SessionLayer::new(manager));
/// # }
/// # Ok::<(), rolling_session::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequireLogin {
    login_url: Option<Arc<str>>,
    permission: Option<Arc<str>>,
}

impl RequireLogin {
    /// Needs a logged-in user; answers 401 to every client until
    /// [`login_url`](Self::login_url) is set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to send browsers without a logged-in user: `url?next=<the
    /// path and query asked for>` (`&next=` if `url` has a query).
    #[must_use]
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = Some(url.into().into());
        self
    }

    /// Also needs `permission` ([`SessionInfo::has_permission`](crate::SessionInfo::has_permission)).
    #[must_use]
    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permission = Some(permission.into().into());
        self
    }

    /// What to answer instead of calling the route, if anything.
    fn refusal<B>(&self, request: &Request<B>) -> Option<Refusal> {
        let Some(handle) = request.extensions().get::<Session>() else {
            return Some(Refusal::Reject(Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "session_layer_missing",
                "the route is not behind rolling_session::http::SessionLayer".into(),
            )));
        };
        let session = match handle.user() {
            Ok(session) => session,
            Err(refused) => {
                return Some(match (&self.login_url, wants_html(request)) {
                    (Some(url), true) if refused.kind().ends_session() => {
                        Refusal::Redirect(login_redirect(url, request.uri()))
                    }
                    _ => Refusal::Reject(Rejection::from(refused)),
                });
            }
        };
        match &self.permission {
            Some(p) if !session.has_permission(p) => {
                Some(Refusal::Reject(Rejection::permission_required(p)))
            }
            _ => None,
        }
    }
}

enum Refusal {
    Redirect(String),
    Reject(Rejection),
}

impl Refusal {
    fn into_response<B: From<Bytes>>(self) -> Response<B> {
        match self {
            Refusal::Redirect(location) => {
                let mut res = Response::new(B::from(Bytes::new()));
                *res.status_mut() = StatusCode::SEE_OTHER;
                if let Ok(value) = HeaderValue::try_from(location) {
                    res.headers_mut().insert(LOCATION, value);
                }
                res
            }
            Refusal::Reject(rejection) => {
                // JSON here; the session layer renders it again in its
                // format (it finds the rejection in the extensions).
                let mut res = Response::new(B::from(rejection.to_json()));
                *res.status_mut() = rejection.status;
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                res.extensions_mut().insert(rejection);
                res
            }
        }
    }
}

/// Whether the client is a browser navigating (it asks for HTML).
fn wants_html<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("text/html")))
}

/// What `next`'s value escapes: everything but RFC 3986's unreserved
/// characters and `/`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `url?next=<path and query>`, the path percent-encoded as a query value.
fn login_redirect(url: &str, asked: &http::Uri) -> String {
    let next = asked.path_and_query().map_or("/", |pq| pq.as_str());
    let separator = if url.contains('?') { '&' } else { '?' };
    let encoded = utf8_percent_encode(next, QUERY_VALUE);
    format!("{url}{separator}next={encoded}")
}

impl<S> Layer<S> for RequireLogin {
    type Service = RequireLoginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireLoginService {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service of [`RequireLogin`].
#[derive(Debug, Clone)]
pub struct RequireLoginService<S> {
    inner: S,
    guard: RequireLogin,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireLoginService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let kind = match self.guard.refusal(&request) {
            Some(refusal) => Kind::Refused {
                response: Some(refusal.into_response()),
            },
            None => Kind::Allowed {
                future: self.inner.call(request),
            },
        };
        GuardFuture { kind }
    }
}

pin_project! {
    /// The response future of [`RequireLoginService`].
    pub struct GuardFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        // The route runs.
        Allowed {
            #[pin]
            future: F,
        },
        // The guard answers.
        Refused {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B, E> Future for GuardFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Allowed { future } => future.poll(cx),
            KindProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_keeps_the_path_and_query_encoded() {
        let uri: http::Uri = "/orders/7?tab=a b&x=1".replace(' ', "%20").parse().unwrap();
        assert_eq!(
            login_redirect("/login", &uri),
            "/login?next=/orders/7%3Ftab%3Da%2520b%26x%3D1"
        );
        assert_eq!(
            login_redirect("/login?lang=en", &"/".parse().unwrap()),
            "/login?lang=en&next=/"
        );
    }
}
