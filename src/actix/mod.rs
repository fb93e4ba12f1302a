//! actix-web 4 adapter: the middleware, extractors and a scope with the
//! session routes. Conversions only; the logic lives in [`crate::http`].
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use rolling_session::actix::{SessionMiddleware, scope};
//! use rolling_session::http::SessionExchange;
//! use rolling_session::{KeyRing, SessionInfo, SessionManager, TokenKey};
//!
//! async fn me(session: SessionInfo) -> String {
//!     session.user_id().to_owned()
//! }
//!
//! # #[actix_web::main] async fn main() -> std::io::Result<()> {
//! let manager = SessionManager::builder(KeyRing::new(TokenKey::generate(1))).build().unwrap();
//! let exchange = SessionExchange::new(manager);
//! HttpServer::new(move || {
//!     App::new()
//!         .service(scope(&exchange))
//!         .route("/me", web::get().to(me))
//!         .wrap(SessionMiddleware::new(exchange.clone()))
//! })
//! .bind("127.0.0.1:8080")?
//! .run()
//! .await
//! # }
//! ```

mod middleware;

pub use middleware::{SessionMiddleware, SessionMiddlewareService};

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::http::ROUTE_BODY_LIMIT;
use crate::http::{Rejection, RouteResponse, Session, SessionExchange, SessionRoute};
use crate::manager::SessionInfo;

pub(crate) fn response(answer: RouteResponse) -> HttpResponse {
    let mut res = HttpResponse::build(status(answer.status.as_u16()));
    if let Some(seconds) = answer.retry_after {
        res.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
    }
    res.content_type(answer.content_type).body(answer.body)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        status(self.status.as_u16())
    }

    fn error_response(&self) -> HttpResponse {
        response(RouteResponse::rejection_json(self))
    }
}

/// A session error answers as its [`Rejection`]: handlers may return
/// `Result<_, rolling_session::Error>`.
impl ResponseError for crate::Error {
    fn status_code(&self) -> StatusCode {
        Rejection::from(self).status_code()
    }

    fn error_response(&self) -> HttpResponse {
        Rejection::from(self).error_response()
    }
}

fn handle_of(req: &HttpRequest) -> Result<Session, Rejection> {
    req.extensions().get::<Session>().cloned().ok_or_else(|| {
        Rejection::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "session_layer_missing",
            "the route is not wrapped in rolling_session::actix::SessionMiddleware".into(),
        )
    })
}

impl FromRequest for Session {
    type Error = Rejection;
    type Future = Ready<Result<Self, Rejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(handle_of(req))
    }
}

/// A logged-in user's session, or a 401 with the reason there is none (an
/// anonymous visitor's session answers `login_required`). Use
/// `Option<SessionInfo>` for routes where a session is optional.
impl FromRequest for SessionInfo {
    type Error = Rejection;
    type Future = Ready<Result<Self, Rejection>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(handle_of(req).and_then(|h| Ok(h.user()?)))
    }
}

/// The session routes under the exchange's prefix.
pub fn scope(exchange: &SessionExchange) -> actix_web::Scope {
    let mut scope = web::scope(exchange.prefix());
    for (method, path, route) in SessionRoute::ALL {
        let exchange = exchange.clone();
        let method = actix_web::http::Method::from_bytes(method.as_str().as_bytes())
            .unwrap_or(actix_web::http::Method::GET);
        scope = scope.route(
            path,
            web::method(method).to(move |handle: Session, req: HttpRequest, body: web::Bytes| {
                let exchange = exchange.clone();
                async move {
                    let content_type = req
                        .headers()
                        .get(actix_web::http::header::CONTENT_TYPE)
                        .map(|v| v.as_bytes());
                    response(exchange.respond(route, &handle, content_type, &body).await)
                }
            }),
        );
    }
    // Telemetry reports are tiny; refuse large bodies before buffering them.
    scope.app_data(web::PayloadConfig::new(ROUTE_BODY_LIMIT))
}
