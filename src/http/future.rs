//! The response future of [`SessionService`](super::SessionService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{RouteResponse, SessionExchange, SessionHandle};

type Validation = Pin<Box<dyn Future<Output = SessionHandle> + Send>>;

pin_project! {
    /// Validates the token, then calls the inner service, then writes the
    /// next token onto its response.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        exchange: SessionExchange,
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Validating {
            validation: Validation,
            request: Option<Request<ReqBody>>,
            service: S,
        },
        Calling {
            #[pin]
            future: S::Future,
            handle: SessionHandle,
        },
        // Refused before the session was looked at (a cross-site request).
        Refused {
            answer: Option<RouteResponse>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn new(exchange: SessionExchange, service: S, request: Request<ReqBody>) -> Self {
        let (parts, body) = request.into_parts();
        let (token, info) = match exchange.inspect_parts(&parts) {
            Ok(inspected) => inspected,
            Err(rejection) => {
                let answer = Some(exchange.rejection_response(&rejection));
                return Self {
                    exchange,
                    state: State::Refused { answer },
                };
            }
        };
        let method = parts.method.clone();
        let path = parts.uri.path().to_owned();
        let request = Request::from_parts(parts, body);
        let begin = exchange.clone();
        let validation: Validation =
            Box::pin(async move { begin.begin_at(token, info, method.as_str(), &path).await });
        Self {
            exchange,
            state: State::Validating {
                validation,
                request: Some(request),
                service,
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Validating {
                    validation,
                    request,
                    service,
                } => {
                    let handle = ready!(validation.as_mut().poll(cx));
                    let mut request = request.take().expect("polled after completion");
                    if this.exchange.is_required()
                        && !handle.is_deferred()
                        && let Err(rejection) = handle.require()
                    {
                        let answer = this.exchange.rejection_response(&rejection);
                        let mut res = answer_response(answer);
                        write_headers(this.exchange, &handle, &mut res);
                        return Poll::Ready(Ok(res));
                    }
                    request.extensions_mut().insert(handle.clone());
                    let future = service.call(request);
                    this.state.set(State::Calling { future, handle });
                }
                StateProj::Calling { future, handle } => {
                    let mut res = ready!(future.poll(cx))?;
                    write_headers(this.exchange, handle, &mut res);
                    return Poll::Ready(Ok(res));
                }
                StateProj::Refused { answer } => {
                    let answer = answer.take().expect("polled after completion");
                    return Poll::Ready(Ok(answer_response(answer)));
                }
            }
        }
    }
}

fn answer_response<B: From<Bytes>>(answer: RouteResponse) -> Response<B> {
    let mut res = Response::new(B::from(answer.body));
    *res.status_mut() = answer.status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    res
}

fn write_headers<B>(exchange: &SessionExchange, handle: &SessionHandle, res: &mut Response<B>) {
    let headers = res.headers_mut();
    for (name, value) in exchange.finish(handle) {
        headers.append(name, value);
    }
}
