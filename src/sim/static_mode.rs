//! `sim --static`: a minimal upstream for load tests, answered from memory
//! with nothing recorded, so the upstream is never what a benchmark measures.
//!
//! It keeps only what a proxy in front of it needs: introspection that
//! accepts any non-empty session cookie (no sign-in, so a load generator can
//! invent a new session per request), a `usersession` that wants a bearer
//! token in `X-PSU-Authorization` and no session cookie (proof the proxy
//! injected and stripped), a self-grant of one fixed token (per-user mode),
//! large downloads, an upload sink, and counters.
//! It trusts every cookie: never put it in front of anything real.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::sim::auth::{bearer_token, X_PSU_AUTHORIZATION};
use crate::sim::handlers::{empty, full, json, Body};
use crate::sim::state::SimState;
use crate::sim::streams;

/// What `/api/v1/usersession` answers: one session, about the size of PSU's.
const USERSESSION: &str = r#"[{"id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","identity":"bench","roles":["Administrator"],"userAgent":"load","remoteIpAddress":"127.0.0.1","startTime":"2026-01-01T00:00:00Z","lastActivity":"2026-01-01T00:00:00Z"}]"#;
/// Every other path: a small static page.
const PAGE: &str = "<!doctype html><title>PSU</title><p>static upstream</p>\n";

/// Counters read at `/sim/stats`, so a benchmark can tell how many
/// introspections a proxy made for how many requests.
#[derive(Debug, Default)]
pub struct StaticStats {
    requests: AtomicU64,
    introspections: AtomicU64,
}

/// Serves one request in static mode. Never fails.
pub async fn handle(
    state: &SimState,
    stats: &StaticStats,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path();
    if path == "/sim/stats" {
        return json(
            StatusCode::OK,
            &json!({
                "requests": stats.requests.load(Ordering::Relaxed),
                "introspections": stats.introspections.load(Ordering::Relaxed),
            }),
        );
    }
    stats.requests.fetch_add(1, Ordering::Relaxed);
    if path == "/sim/sink" {
        let (bytes, complete) = streams::count_body(request.into_body()).await;
        return streams::sink_answer(bytes, complete);
    }
    let get = request.method() == Method::GET;
    match path {
        "/sim/large" if get => streams::large(request.uri().query()),
        "/api/v1/accessible" if get => {
            stats.introspections.fetch_add(1, Ordering::Relaxed);
            introspect(state, request.headers())
        }
        "/api/v1/usersession" if get => usersession(state, request.headers()),
        "/api/v1/apptoken/grant" if get => grant(state, request.headers()),
        "/api/v1/apptoken/grant" if request.method() == Method::POST => {
            // A delegated grant: any bearer token grants; the body is read and dropped.
            let granting = bearer_token(request.headers()).is_some();
            let _ = request.into_body().collect().await;
            if granting {
                granted()
            } else {
                empty(StatusCode::UNAUTHORIZED)
            }
        }
        _ => {
            // Whatever the client sent is read and dropped so the
            // connection stays usable for the next request.
            let _ = request.into_body().collect().await;
            with_type(full(PAGE), "text/html; charset=utf-8")
        }
    }
}

/// Any non-empty session cookie is a live session of `bench`.
fn introspect(state: &SimState, headers: &HeaderMap) -> Response<Body> {
    match state.cookie.read(headers) {
        Some(_) => json(
            StatusCode::OK,
            &json!({"identity": "bench", "roles": ["Administrator"]}),
        ),
        None => empty(StatusCode::UNAUTHORIZED),
    }
}

/// A self-grant for any session cookie: one fixed, unsigned token for
/// `bench` that expires in a year, so a per-user gateway grants once and
/// then serves from its cache, as it would in front of PSU.
fn grant(state: &SimState, headers: &HeaderMap) -> Response<Body> {
    if state.cookie.read(headers).is_none() {
        return empty(StatusCode::UNAUTHORIZED);
    }
    granted()
}

fn granted() -> Response<Body> {
    // {"alg":"none"}.{"exp":4102444800,"sub":"bench"}.sig: exp is 2100-01-01.
    const TOKEN: &str = "eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDAsInN1YiI6ImJlbmNoIn0.c2ln";
    json(
        StatusCode::OK,
        &json!({"id": 1, "token": TOKEN, "identity": {"name": "bench"}}),
    )
}

/// A bearer token in `X-PSU-Authorization` and no session cookie, as a
/// proxy that injects and strips sends it; the token is not verified.
fn usersession(state: &SimState, headers: &HeaderMap) -> Response<Body> {
    let injected = headers.contains_key(X_PSU_AUTHORIZATION) && bearer_token(headers).is_some();
    if !injected || state.cookie.read(headers).is_some() {
        return empty(StatusCode::UNAUTHORIZED);
    }
    with_type(
        full(Bytes::from_static(USERSESSION.as_bytes())),
        "application/json; charset=utf-8",
    )
}

fn with_type(body: Body, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::recorder::Recorder;
    use crate::sim::SimOptions;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn introspection_takes_any_session_cookie_and_nothing_else() {
        let state = SimState::new(SimOptions::default(), Recorder::new());
        let cases: [(&[(&'static str, &'static str)], StatusCode); 5] = [
            (
                &[("cookie", ".AspNetCore.Identity.Application=anything")],
                StatusCode::OK,
            ),
            (
                &[("cookie", "a=1; .AspNetCore.Identity.Application=x; b=2")],
                StatusCode::OK,
            ),
            (
                &[("cookie", ".AspNetCore.Identity.Application=")],
                StatusCode::UNAUTHORIZED,
            ),
            (&[("cookie", "other=1")], StatusCode::UNAUTHORIZED),
            (&[], StatusCode::UNAUTHORIZED),
        ];
        for (pairs, status) in cases {
            assert_eq!(
                introspect(&state, &headers(pairs)).status(),
                status,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn usersession_wants_an_injected_token_and_no_session_cookie() {
        let state = SimState::new(SimOptions::default(), Recorder::new());
        let cases: [(&[(&'static str, &'static str)], StatusCode); 5] = [
            (&[("x-psu-authorization", "Bearer t")], StatusCode::OK),
            (
                &[
                    ("x-psu-authorization", "Bearer t"),
                    ("cookie", "theme=dark"),
                ],
                StatusCode::OK,
            ),
            (&[("authorization", "Bearer t")], StatusCode::UNAUTHORIZED),
            (
                &[("x-psu-authorization", "Basic t")],
                StatusCode::UNAUTHORIZED,
            ),
            (
                &[
                    ("x-psu-authorization", "Bearer t"),
                    ("cookie", ".AspNetCore.Identity.Application=s"),
                ],
                StatusCode::UNAUTHORIZED,
            ),
        ];
        for (pairs, status) in cases {
            assert_eq!(
                usersession(&state, &headers(pairs)).status(),
                status,
                "{pairs:?}"
            );
        }
    }
}
