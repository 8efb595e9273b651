//! Request entry point: read and record the request, apply the front door
//! and Windows auth, route.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::sim::recorder::RecordedRequest;
use crate::sim::state::SimState;
use crate::sim::windows_auth::{self, ConnectionAuth};
use crate::sim::{apptoken, auth, frontdoor, pages, static_mode};
use crate::sim::{streams, websocket};

/// Every simulator response has a small in-memory body.
pub type Body = BoxBody<Bytes, Infallible>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// Requests to PSU's auth endpoints are tiny; anything bigger is a test bug.
const MAX_BODY: usize = 1024 * 1024;
/// `/sim/status` never sleeps longer than this, whatever `delay_ms` says.
const MAX_DELAY: Duration = Duration::from_secs(600);

/// A request after its body was read, as the PSU logic sees it.
#[derive(Debug)]
pub struct SimRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

/// Serves one request arriving on `conn`. Never fails: every problem
/// becomes a response.
pub async fn handle(
    state: &SimState,
    conn: &ConnectionAuth,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Response<Body> {
    if let Some(stats) = &state.static_stats {
        return static_mode::handle(state, stats, request).await;
    }
    if normalize(request.uri().path()) == "/sim/sink" {
        return streams::sink(state, request).await;
    }
    let path = normalize(request.uri().path());
    let _in_flight = state.recorder.concurrency.enter(&path);
    if path == "/api/v1/accessible" && !state.introspect_delay.is_zero() {
        tokio::time::sleep(state.introspect_delay).await;
    }
    let upgrade = hyper::upgrade::on(&mut request);
    let (parts, body) = request.into_parts();
    let (body, trailers, body_error) = match read_body(body).await {
        Ok((body, trailers)) => (body, trailers, None),
        Err(status) => (Bytes::new(), None, Some(status)),
    };
    let mut request = SimRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        version: parts.version,
        headers: parts.headers,
        body,
        peer,
    };
    // Recorded before the front door so tests see what arrived on the wire.
    let mut recorded = record(&request, body_error.is_none());
    recorded.trailers = trailers;
    state.recorder.record(recorded);
    if let Some(status) = body_error {
        return text(status, "the request body could not be read\n");
    }
    if let Some(rejection) = frontdoor::apply(state, &mut request.headers) {
        return rejection;
    }
    if let Some(challenge) = windows_auth::check(state, conn, &request.headers) {
        return challenge;
    }
    if normalize(&request.path) == "/dashboardhub" {
        return match crate::transport::tunnel::wants_websocket(request.version, &request.headers) {
            true if request.method == Method::GET => websocket::accept(&request.headers, upgrade),
            _ => text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n"),
        };
    }
    route(state, conn, &request).await
}

async fn read_body(body: Incoming) -> Result<(Bytes, Option<HeaderMap>), StatusCode> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            Ok((collected.to_bytes(), trailers))
        }
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

fn record(request: &SimRequest, body_complete: bool) -> RecordedRequest {
    RecordedRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        version: request.version,
        headers: request.headers.clone(),
        body: request.body.clone(),
        body_complete,
        trailers: None,
    }
}

async fn route(state: &SimState, conn: &ConnectionAuth, request: &SimRequest) -> Response<Body> {
    let path = normalize(&request.path);
    if let Some(code) = path.strip_prefix("/sim/status/") {
        return status(code, request.query.as_deref()).await;
    }
    match path.as_str() {
        "/sim/sse" => return streams::sse(request.query.as_deref()),
        "/sim/large" => return streams::large(request.query.as_deref()),
        "/sim/grpc" => return streams::grpc(&request.body),
        _ => {}
    }
    let method = &request.method;
    match path.as_str() {
        "/" => only(method, &Method::GET, || html(pages::HOME)),
        "/login" => only(method, &Method::GET, || html(pages::LOGIN)),
        "/dashboard" => only(method, &Method::GET, || html(pages::DASHBOARD)),
        "/sim/other-origin" => only(method, &Method::GET, || html(pages::OTHER_ORIGIN)),
        "/api/v1/signin" => only(method, &Method::POST, || auth::signin(state, request)),
        "/api/v1/signout" => only(method, &Method::POST, || auth::signout(state, request)),
        "/api/v1/accessible" => only(method, &Method::GET, || auth::accessible(state, request)),
        "/api/v1/usersession" => only(method, &Method::GET, || auth::usersession(state, request)),
        "/api/v1/apptoken/grant" if state.grant_outage() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "grants are failing\n")
        }
        "/api/v1/apptoken/grant" => match *method {
            Method::GET => apptoken::self_grant(state, request),
            Method::POST => apptoken::delegated_grant(state, request),
            _ => method_not_allowed("GET, POST"),
        },
        "/sim/echo" => echo(request),
        "/sim/whoami" => only(method, &Method::GET, || {
            let close = query_value(request.query.as_deref(), "close") == Some("1");
            windows_auth::whoami(conn, close)
        }),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// ASP.NET routing ignores case and a trailing slash.
fn normalize(path: &str) -> String {
    let lower = path.to_ascii_lowercase();
    match lower.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

fn only(
    method: &Method,
    allowed: &Method,
    handler: impl FnOnce() -> Response<Body>,
) -> Response<Body> {
    if method == allowed {
        return handler();
    }
    method_not_allowed(allowed.as_str())
}

/// 405 naming the methods the route takes.
fn method_not_allowed(allow: &str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    if let Ok(value) = HeaderValue::from_str(allow) {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

/// `/sim/status/{code}?delay_ms=N`: any status after a real sleep, so
/// timeouts in front of the simulator can be exercised.
async fn status(code: &str, query: Option<&str>) -> Response<Body> {
    let Some(status) = code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| s.as_u16() >= 200)
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "expected /sim/status/{code} with a code from 200 to 999\n",
        );
    };
    let delay = match query_value(query, "delay_ms").map(str::parse::<u64>) {
        None => Duration::ZERO,
        Some(Ok(millis)) => Duration::from_millis(millis).min(MAX_DELAY),
        Some(Err(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "delay_ms must be a whole number of milliseconds\n",
            )
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return empty(status);
    }
    text(status, &format!("{status}\n"))
}

fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `/sim/echo`: the request as the PSU logic saw it (after the front door).
fn echo(request: &SimRequest) -> Response<Body> {
    let mut headers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in &request.headers {
        headers
            .entry(name.as_str())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    json(
        StatusCode::OK,
        &json!({
            "method": request.method.as_str(),
            "path": request.path,
            "query": request.query,
            "version": format!("{:?}", request.version),
            "headers": headers,
        }),
    )
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    with_body(status, "text/plain; charset=utf-8", body.to_owned())
}

pub fn html(body: &'static str) -> Response<Body> {
    with_body(StatusCode::OK, "text/html; charset=utf-8", body)
}

pub fn json(status: StatusCode, body: &Value) -> Response<Body> {
    with_body(status, "application/json; charset=utf-8", body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_ignore_case_and_trailing_slash() {
        assert_eq!(normalize("/API/V1/UserSession/"), "/api/v1/usersession");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("//"), "/");
        assert_eq!(normalize("/login"), "/login");
    }

    #[test]
    fn query_values_are_found_by_exact_name() {
        assert_eq!(query_value(Some("a=1&delay_ms=20"), "delay_ms"), Some("20"));
        assert_eq!(query_value(Some("xdelay_ms=5"), "delay_ms"), None);
        assert_eq!(query_value(None, "delay_ms"), None);
    }

    #[tokio::test]
    async fn status_route_validates_its_input() {
        assert_eq!(status("503", None).await.status(), 503);
        assert_eq!(status("204", Some("delay_ms=1")).await.status(), 204);
        for code in ["abc", "99", "100", "1000", ""] {
            assert_eq!(status(code, None).await.status(), 400, "{code}");
        }
        assert_eq!(status("200", Some("delay_ms=soon")).await.status(), 400);
    }
}
