//! The actix-web middleware: [`SessionExchange`]'s four steps around the
//! inner service, types converted and nothing else.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;

use super::response;
use crate::http::{Inspected, Rejection, RequestHead, Session, SessionExchange};

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
            let exchange = handle.exchange();
            if let Err(answer) = exchange.gate(&handle) {
                let mut res = response(answer);
                write_headers(exchange, &handle, res.headers_mut());
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
            write_headers(exchange, &handle, res.headers_mut());
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
