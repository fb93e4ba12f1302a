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
#![cfg(feature = "actix")]
#![cfg_attr(docsrs, doc(cfg(feature = "actix")))]

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;

use crate::http::ROUTE_BODY_LIMIT;
use crate::http::{
    Inspected, Rejection, RequestHead, RouteResponse, Session, SessionExchange, SessionRoute,
};
use crate::manager::SessionInfo;

fn response(answer: RouteResponse) -> HttpResponse {
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

/// Applies rolling sessions to every request, like
/// [`SessionLayer`](crate::http::SessionLayer) does for tower.
#[derive(Clone, Debug)]
pub struct SessionMiddleware {
    exchange: SessionExchange,
}

impl SessionMiddleware {
    /// The middleware for `exchange`'s settings.
    pub fn new(exchange: SessionExchange) -> Self {
        Self { exchange }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionMiddlewareService {
            service: Rc::new(service),
            exchange: self.exchange.clone(),
        }))
    }
}

/// The service made by [`SessionMiddleware`].
pub struct SessionMiddlewareService<S> {
    service: Rc<S>,
    exchange: SessionExchange,
}

impl<S, B> Service<ServiceRequest> for SessionMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let headers = |name: &str| -> Vec<&[u8]> {
            req.headers().get_all(name).map(|v| v.as_bytes()).collect()
        };
        let head = RequestHead::new(
            &headers,
            req.method().as_str(),
            req.path(),
            req.peer_addr().map(|a| a.ip()),
        )
        .with_authority(req.uri().authority().map(|a| a.as_str()));
        let (token, request) = match self.exchange.inspect(&head) {
            Inspected::Skip => {
                let service = self.service.clone();
                return Box::pin(async move { Ok(service.call(req).await?.map_into_left_body()) });
            }
            Inspected::Refuse(rejection) => {
                // Refused before the session is looked at.
                let res = response(self.exchange.rejection_response(&rejection));
                return Box::pin(ready(Ok(req.into_response(res).map_into_right_body())));
            }
            Inspected::Session { token, request } => (token, request),
        };
        let (service, exchange) = (self.service.clone(), self.exchange.clone());
        let refresh = exchange.is_refresh(req.method().as_str(), req.path());
        Box::pin(async move {
            let handle = exchange.begin_with(token, request, refresh).await;
            if let Err(answer) = exchange.gate(&handle) {
                let mut res = response(answer);
                write_headers(&exchange, &handle, res.headers_mut());
                return Ok(req.into_response(res).map_into_right_body());
            }
            req.extensions_mut().insert(handle.clone());
            let res = service.call(req).await?;
            // A handler's or extractor's `Rejection`: in the exchange's
            // format, like the middleware's own refusals.
            let rejected = res
                .response()
                .error()
                .and_then(|e| {
                    e.as_error::<Rejection>()
                        .cloned()
                        .or_else(|| e.as_error::<crate::Error>().map(Rejection::from))
                })
                .map(|r| exchange.render(&r));
            let mut res = match rejected {
                Some((content_type, body)) => res.map_body(|head, _| {
                    head.headers_mut().insert(
                        actix_web::http::header::CONTENT_TYPE,
                        HeaderValue::from_static(content_type),
                    );
                    EitherBody::right(BoxBody::new(body))
                }),
                None => res.map_into_left_body(),
            };
            // The handler's data changes, written before the response
            // leaves; a failed write answers with its refusal instead.
            if let Err(e) = handle.save().await {
                let refusal = response(exchange.rejection_response(&Rejection::from(e)));
                let (req, _) = res.into_parts();
                res = ServiceResponse::new(req, refusal).map_into_right_body();
            }
            write_headers(&exchange, &handle, res.headers_mut());
            Ok(res)
        })
    }
}

fn write_headers(
    exchange: &SessionExchange,
    handle: &Session,
    headers: &mut actix_web::http::header::HeaderMap,
) {
    for (name, value) in exchange.finish(handle) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
}
