//! The response future of [`SessionService`](super::SessionService): the
//! tower side of the request path in [`SessionExchange`] (inspect, begin,
//! gate, call the inner service, finish), types converted and nothing else.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::exchange::Inspected;
use super::{DataError, Rejection, RouteResponse, Session, SessionExchange};

// The exchange moves into the validation and on into the handle, where the
// later states read it: one reference count per request on the shared
// settings, not one per state (every core touches that count).
type Validation = Pin<Box<dyn Future<Output = Session> + Send>>;
type Saving = Pin<Box<dyn Future<Output = (Session, Result<(), DataError>)> + Send>>;

pin_project! {
    /// Validates the token, then calls the inner service, then writes the
    /// next token onto its response.
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // An excluded path: the inner service's answer as it is.
        Passing {
            #[pin]
            future: S::Future,
        },
        Validating {
            validation: Validation,
            request: Option<Request<ReqBody>>,
            service: S,
        },
        Calling {
            #[pin]
            future: S::Future,
            handle: Session,
        },
        // The handler changed the session's data: written before the
        // response leaves (a new anonymous session's token goes with it).
        Saving {
            saving: Saving,
            response: Option<Response<ResBody>>,
        },
        // Refused before the session was looked at (a cross-site request).
        Refused {
            answer: Option<Response<Bytes>>,
        },
    }
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn new(
        exchange: SessionExchange,
        mut service: S,
        request: Request<ReqBody>,
    ) -> Self {
        let (parts, body) = request.into_parts();
        let state = match exchange.inspect_parts(&parts) {
            Inspected::Skip => State::Passing {
                future: service.call(Request::from_parts(parts, body)),
            },
            Inspected::Refuse(rejection) => State::Refused {
                answer: Some(route_response(exchange.rejection_response(&rejection))),
            },
            Inspected::Session { token, request } => {
                let refresh = exchange.is_refresh(parts.method.as_str(), parts.uri.path());
                let validation: Validation = Box::pin(exchange.begin_with(token, request, refresh));
                State::Validating {
                    validation,
                    request: Some(Request::from_parts(parts, body)),
                    service,
                }
            }
        };
        Self { state }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Passing { future } => return future.poll(cx),
                StateProj::Validating {
                    validation,
                    request,
                    service,
                } => {
                    let handle = ready!(validation.as_mut().poll(cx));
                    let mut request = request.take().expect("polled after completion");
                    if let Err(answer) = handle.exchange().gate(&handle) {
                        let mut res = route_response(answer);
                        write_headers(&handle, &mut res);
                        return Poll::Ready(Ok(res));
                    }
                    request.extensions_mut().insert(handle.clone());
                    let future = service.call(request);
                    this.state.set(State::Calling { future, handle });
                }
                StateProj::Calling { future, handle } => {
                    let mut res = ready!(future.poll(cx))?;
                    rerender_rejection(handle.exchange(), &mut res);
                    if handle.is_modified() {
                        // The state's own handle is dropped here, so the
                        // save may find itself the last one.
                        let saving: Saving = Box::pin(handle.clone().save_last());
                        this.state.set(State::Saving {
                            saving,
                            response: Some(res),
                        });
                        continue;
                    }
                    write_headers(handle, &mut res);
                    return Poll::Ready(Ok(res));
                }
                StateProj::Saving { saving, response } => {
                    let (handle, saved) = ready!(saving.as_mut().poll(cx));
                    let mut res = response.take().expect("polled after completion");
                    if let Err(e) = saved {
                        let refusal = handle.exchange().rejection_response(&Rejection::from(e));
                        res = route_response(refusal);
                    }
                    write_headers(&handle, &mut res);
                    return Poll::Ready(Ok(res));
                }
                StateProj::Refused { answer } => {
                    let answer = answer.take().expect("polled after completion");
                    return Poll::Ready(Ok(answer.map(ResBody::from)));
                }
            }
        }
    }
}

fn route_response<B: From<Bytes>>(answer: RouteResponse) -> Response<B> {
    let mut res = Response::new(B::from(answer.body));
    *res.status_mut() = answer.status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    if let Some(seconds) = answer.retry_after {
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    res
}

/// A handler (or an extractor) answered with a [`Rejection`]: its body is
/// rendered in the exchange's format, like the layer's own refusals.
fn rerender_rejection<B: From<Bytes>>(exchange: &SessionExchange, res: &mut Response<B>) {
    if let Some(rejection) = res.extensions_mut().remove::<Rejection>() {
        let (content_type, body) = exchange.render(&rejection);
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        *res.body_mut() = B::from(body);
    }
}

fn write_headers<B>(handle: &Session, res: &mut Response<B>) {
    let headers = res.headers_mut();
    handle.exchange().finish_each(handle, |name, value| {
        headers.append(name, value);
    });
}
