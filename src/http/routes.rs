//! The session routes, framework-neutral: the adapters only map paths to
//! [`SessionRoute`]s and hand the answer back to their framework.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;

#[cfg(feature = "drift")]
use crate::drift::TelemetryReport;
#[cfg(feature = "drift")]
use crate::error::Error;

use super::SessionExchange;
use super::handle::Session;
use super::rejection::Rejection;

/// Bodies above this size are refused by the adapters before the session
/// routes read them; `POST telemetry` then applies its own, smaller limit.
#[cfg(any(feature = "axum", feature = "actix"))]
pub(crate) const ROUTE_BODY_LIMIT: usize = 64 * 1024;

/// The browser client, served at `GET {prefix}/client.js`.
pub const CLIENT_JS: &str = include_str!("../../client/rolling-session.js");

/// One of the routes under the prefix (default `/session`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRoute {
    /// `GET status`: remaining times and refresh advice.
    Status,
    /// `POST refresh`: two-phase renewal, phase one.
    Refresh,
    /// `POST refresh/confirm`: phase two.
    Confirm,
    /// `GET client.js`: the browser client.
    ClientJs,
    /// `POST telemetry`: a client report in, drift advice out. Without the
    /// `drift` feature it answers `404` with `{"error":"drift_disabled"}`.
    Telemetry,
}

impl SessionRoute {
    /// Every route with its method and path below the prefix.
    pub const ALL: [(Method, &'static str, SessionRoute); 5] = [
        (Method::GET, "/status", SessionRoute::Status),
        (Method::POST, "/refresh", SessionRoute::Refresh),
        (Method::POST, "/refresh/confirm", SessionRoute::Confirm),
        (Method::GET, "/client.js", SessionRoute::ClientJs),
        (Method::POST, "/telemetry", SessionRoute::Telemetry),
    ];
}

/// A route's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteResponse {
    /// The status.
    pub status: StatusCode,
    /// The content type.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
    /// The `Retry-After` header, in whole seconds (a 429 or 503 that says
    /// when to retry).
    pub retry_after: Option<u64>,
}

impl RouteResponse {
    fn json(value: &impl Serialize) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            retry_after: None,
        }
    }

    /// A rejection as JSON (what an extractor answers before the layer
    /// renders it in its own format).
    pub fn rejection_json(rejection: &Rejection) -> Self {
        Self {
            status: rejection.status,
            content_type: "application/json",
            body: rejection.to_json(),
            retry_after: rejection.retry_after_header(),
        }
    }
}

#[derive(Serialize)]
struct Renewed<T: Serialize> {
    #[serde(flatten)]
    status: T,
    pending_confirmation: bool,
}

impl SessionExchange {
    /// Answers one of the session routes for the request's handle;
    /// `content_type` and `body` are the request's (read by
    /// `POST telemetry` only, which requires `application/json`: 415
    /// `unsupported_media_type` otherwise, so that no form or `text/plain`
    /// body a page can send without CORS is ever parsed).
    pub async fn respond(
        &self,
        route: SessionRoute,
        handle: &Session,
        content_type: Option<&[u8]>,
        body: &[u8],
    ) -> RouteResponse {
        let result = match route {
            SessionRoute::ClientJs => {
                return RouteResponse {
                    status: StatusCode::OK,
                    content_type: "text/javascript; charset=utf-8",
                    body: Bytes::from_static(CLIENT_JS.as_bytes()),
                    retry_after: None,
                };
            }
            SessionRoute::Status => handle
                .status()
                .map(|s| RouteResponse::json(&s))
                .map_err(Rejection::from),
            SessionRoute::Refresh => match handle.renew().await {
                Ok(session) => Ok(RouteResponse::json(&Renewed {
                    status: handle.manager().status(&session),
                    pending_confirmation: true,
                })),
                Err(e) => Err(Rejection::from(e)),
            },
            SessionRoute::Telemetry if !super::origin::is_json(content_type) => Err(handle
                .require()
                .err()
                .map_or_else(super::origin::not_json, Rejection::from)),
            #[cfg(feature = "drift")]
            SessionRoute::Telemetry => match TelemetryReport::from_json(body) {
                // `report_telemetry` answers 401 without a session.
                Ok(report) => handle
                    .report_telemetry(&report.sample, report.operation.as_deref())
                    .await
                    .map(|advice| RouteResponse::json(&advice))
                    .map_err(Rejection::from),
                // A missing or refused session outranks a malformed body.
                Err(e) => Err(Rejection::from(
                    handle.require().err().unwrap_or_else(|| Error::from(e)),
                )),
            },
            #[cfg(not(feature = "drift"))]
            SessionRoute::Telemetry => {
                let _ = body;
                return RouteResponse {
                    status: StatusCode::NOT_FOUND,
                    content_type: "application/json",
                    body: Bytes::from_static(br#"{"error":"drift_disabled"}"#),
                    retry_after: None,
                };
            }
            SessionRoute::Confirm => handle
                .confirm_renewal()
                .await
                .map(|_| RouteResponse::json(&serde_json::json!({ "confirmed": true })))
                .map_err(Rejection::from),
        };
        result.unwrap_or_else(|r| self.rejection_response(&r))
    }
}
