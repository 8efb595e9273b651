//! Every way the gateway refuses a request, its status, and the
//! `application/problem+json` body (RFC 9457) it answers with.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::pipeline::grants::GrantError;
use crate::pipeline::session::SessionError;
use crate::rate::retry_after_secs;
use crate::rules::cookies::CookieError;
use crate::rules::csrf::CsrfError;
use crate::rules::headers::{HeaderError, X_REQUEST_ID};
use crate::rules::path::PathError;
use crate::rules::target::{HostError, TargetError};
use crate::transport::upstream::{Body, UpstreamError};

/// A request the gateway answers itself. The `Display` text is the
/// problem's `detail`: written for an operator, never holding a secret.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Cookie(#[from] CookieError),
    #[error("the request body is larger than limits.max_body_bytes")]
    BodyTooLarge,
    #[error("the request body stalled longer than limits.body_timeout")]
    BodyStalled,
    #[error("no route matches this path and method")]
    NoRoute,
    #[error("this route is denied by the gateway's configuration")]
    Denied,
    #[error(transparent)]
    Csrf(#[from] CsrfError),
    #[error("this route needs a signed-in PSU session and the request carries no complete session cookie")]
    NoSession,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("the signed-in user holds none of the roles this route requires")]
    MissingRole,
    /// `session.cookie_shape = "aspnet"` and a session cookie is not a Data
    /// Protection payload: it cannot be a PSU session, so PSU is not asked.
    #[error("the session cookie is not an ASP.NET Core Data Protection payload, so it cannot be a PSU session (session.cookie_shape); sign in again")]
    CookieShape,
    /// The route's `rate_limit` for this client address is spent.
    #[error("this client sent this route more requests than its rate_limit allows; try again after Retry-After seconds")]
    RateLimited { retry_after: std::time::Duration },
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the request could not be rebuilt for the upstream")]
    Unforwardable,
    /// NTLM / Negotiate on HTTP/2: the listener resets the stream with
    /// `HTTP_1_1_REQUIRED` instead of sending this answer.
    #[error("NTLM and Negotiate authenticate a connection, which HTTP/2 cannot carry; retry over HTTP/1.1")]
    Http11Required,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Target(TargetError::Trace) => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::Target(TargetError::NotOriginForm | TargetError::Connect) => {
                StatusCode::BAD_REQUEST
            }
            Rejection::Host(HostError::NotServed) => StatusCode::MISDIRECTED_REQUEST,
            Rejection::Host(
                HostError::Missing
                | HostError::Multiple
                | HostError::Malformed
                | HostError::Mismatch,
            ) => StatusCode::BAD_REQUEST,
            Rejection::Path(
                PathError::NotAbsolute
                | PathError::EncodedDelimiter
                | PathError::Backslash
                | PathError::ControlCharacter
                | PathError::Fragment
                | PathError::DotSegment
                | PathError::EmptySegment
                | PathError::InvalidUtf8
                | PathError::MalformedEscape
                | PathError::AmbiguousCase,
            ) => StatusCode::BAD_REQUEST,
            Rejection::Header(
                HeaderError::Underscore
                | HeaderError::Duplicate(_)
                | HeaderError::ContentLength
                | HeaderError::TransferEncoding
                | HeaderError::LengthAndEncoding
                | HeaderError::H2cUpgrade,
            ) => StatusCode::BAD_REQUEST,
            Rejection::Cookie(CookieError::Tossing { .. } | CookieError::NotText) => {
                StatusCode::BAD_REQUEST
            }
            Rejection::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyStalled => StatusCode::REQUEST_TIMEOUT,
            Rejection::NoRoute => StatusCode::NOT_FOUND,
            Rejection::Denied => StatusCode::FORBIDDEN,
            Rejection::Csrf(CsrfError::CrossSite | CsrfError::ForeignOrigin) => {
                StatusCode::FORBIDDEN
            }
            Rejection::NoSession => StatusCode::UNAUTHORIZED,
            Rejection::Session(SessionError::Rejected { .. }) => StatusCode::UNAUTHORIZED,
            Rejection::Session(SessionError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Session(SessionError::Throttled { .. }) => StatusCode::TOO_MANY_REQUESTS,
            Rejection::Session(SessionError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::MissingRole => StatusCode::FORBIDDEN,
            Rejection::CookieShape => StatusCode::UNAUTHORIZED,
            Rejection::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Rejection::Grant(GrantError::Refused | GrantError::NoRoles) => StatusCode::FORBIDDEN,
            Rejection::Grant(GrantError::Unavailable { .. } | GrantError::Busy) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Rejection::Upstream(UpstreamError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            Rejection::Upstream(UpstreamError::Busy(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Upstream(
                UpstreamError::Connect(_)
                | UpstreamError::Protocol(_)
                | UpstreamError::UnexpectedSwitch
                | UpstreamError::PinConnect(_)
                | UpstreamError::Pinned(_)
                | UpstreamError::PinEnded,
            ) => StatusCode::BAD_GATEWAY,
            Rejection::Upstream(UpstreamError::PinLimit) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Unforwardable => StatusCode::BAD_REQUEST,
            Rejection::Http11Required => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }

    /// A short, fixed label for logs and metrics (no user input in it).
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Target(_) => "target",
            Rejection::Host(_) => "host",
            Rejection::Path(_) => "path",
            Rejection::Header(_) | Rejection::Cookie(_) | Rejection::Unforwardable => "header",
            Rejection::BodyTooLarge => "size",
            Rejection::BodyStalled => "timeout",
            Rejection::NoRoute => "no_route",
            Rejection::Denied => "denied",
            Rejection::Csrf(_) => "csrf",
            Rejection::NoSession | Rejection::Session(SessionError::Rejected { .. }) => {
                "unauthenticated"
            }
            Rejection::MissingRole => "role",
            Rejection::Session(SessionError::Unavailable { .. }) => "introspection",
            Rejection::Session(SessionError::Throttled { .. }) => "miss_rate",
            Rejection::Session(SessionError::Busy) => "introspection_busy",
            Rejection::CookieShape => "cookie_shape",
            Rejection::RateLimited { .. } => "rate_limit",
            Rejection::Grant(GrantError::Refused | GrantError::NoRoles) => "grant_refused",
            Rejection::Grant(GrantError::Unavailable { .. }) => "grant",
            Rejection::Grant(GrantError::Busy) => "introspection_busy",
            Rejection::Upstream(UpstreamError::Timeout(_)) => "timeout",
            Rejection::Upstream(UpstreamError::Busy(_)) => "upstream_busy",
            Rejection::Upstream(UpstreamError::PinLimit) => "pin_limit",
            Rejection::Http11Required => "http11_required",
            Rejection::Upstream(_) => "upstream",
        }
    }

    /// Seconds for `Retry-After`: when a budget refills for a 429, a
    /// second when a cap was full, five when PSU itself could not answer.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Rejection::Session(SessionError::Throttled { retry_after })
            | Rejection::RateLimited { retry_after } => Some(retry_after_secs(*retry_after)),
            Rejection::Session(SessionError::Busy)
            | Rejection::Grant(GrantError::Busy)
            | Rejection::Upstream(UpstreamError::Busy(_) | UpstreamError::PinLimit) => Some(1),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(5),
            _ => None,
        }
    }
}

/// Builds the problem+json response for a rejection.
pub fn problem_response(
    rejection: &Rejection,
    request_id: &HeaderValue,
    close: bool,
) -> Response<Body> {
    let status = rejection.status();
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": rejection.to_string(),
        "request_id": request_id.to_str().unwrap_or(""),
    });
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_REQUEST_ID, request_id.clone());
    if let Some(secs) = rejection.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
