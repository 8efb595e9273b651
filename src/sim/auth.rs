//! PSU's auth endpoints: sign-in, sign-out, `accessible` and `usersession`.

use std::time::{Instant, SystemTime};

use http::header::{AUTHORIZATION, SET_COOKIE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::sim::handlers::{empty, json, Body, SimRequest};
use crate::sim::sessions::NewSession;
use crate::sim::state::SimState;
use crate::sim::token::TokenClaims;

/// PSU reads its app token from this header first; when present,
/// `Authorization` is ignored.
pub const X_PSU_AUTHORIZATION: &str = "x-psu-authorization";

#[derive(Deserialize)]
struct SignIn {
    username: String,
    password: String,
}

/// `POST /api/v1/signin`: JSON credentials in, session cookie out.
pub fn signin(state: &SimState, request: &SimRequest) -> Response<Body> {
    let Ok(form) = serde_json::from_slice::<SignIn>(&request.body) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let Some(user) = state.authenticate(&form.username, &form.password) else {
        return empty(StatusCode::UNAUTHORIZED);
    };
    let who = NewSession {
        identity: &user.name,
        roles: &user.roles,
        user_agent: header_text(&request.headers, USER_AGENT.as_str()),
        remote_ip: request.peer.ip(),
    };
    let value = state.sessions().start(who, Instant::now());
    let response = json(StatusCode::OK, &json!({"returnUrl": "/admin"}));
    with_cookies(response, state.cookie.set_cookies(&value))
}

/// `POST /api/v1/signout`: ends the cookie's session (if any) and deletes
/// the cookie, chunks included. Always 200, as PSU.
pub fn signout(state: &SimState, request: &SimRequest) -> Response<Body> {
    let read = state.cookie.read(&request.headers);
    if let Some(cookie) = &read {
        state.sessions().end(&cookie.value);
    }
    let chunks = read.map_or(0, |c| c.chunks);
    with_cookies(empty(StatusCode::OK), state.cookie.delete_cookies(chunks))
}

/// `GET /api/v1/accessible`: who the caller is, by session cookie or app token.
pub fn accessible(state: &SimState, request: &SimRequest) -> Response<Body> {
    if let Some((identity, roles)) = session_identity(state, &request.headers) {
        return identity_json(&identity, &roles);
    }
    match token_claims(state, &request.headers) {
        Some(Ok(claims)) => identity_json(&claims.identity, &claims.roles),
        _ => empty(StatusCode::UNAUTHORIZED),
    }
}

/// `GET /api/v1/usersession`: app token only (a session cookie is not
/// enough), with one of the allowed roles.
pub fn usersession(state: &SimState, request: &SimRequest) -> Response<Body> {
    let Some(claims) = app_token(state, &request.headers) else {
        return empty(StatusCode::UNAUTHORIZED);
    };
    if !claims.has_any_role(&state.allowed_roles) {
        return empty(StatusCode::FORBIDDEN);
    }
    let sessions = state.sessions();
    let list: Vec<Value> = sessions
        .live(Instant::now())
        .iter()
        .map(|s| s.to_json())
        .collect();
    drop(sessions);
    json(StatusCode::OK, &Value::Array(list))
}

/// The identity and roles of the request's live session cookie, if any.
pub fn session_identity(state: &SimState, headers: &HeaderMap) -> Option<(String, Vec<String>)> {
    let cookie = state.cookie.read(headers)?;
    let sessions = state.sessions();
    let session = sessions.lookup(&cookie.value, Instant::now())?;
    Some((session.identity.clone(), session.roles.clone()))
}

/// The app token's claims as PSU checks them (header choice, signature,
/// claims, revocation); `None` when the request carries no bearer token.
/// The request's valid app token; `None` (PSU answers 401) without one.
pub fn app_token(state: &SimState, headers: &HeaderMap) -> Option<TokenClaims> {
    match token_claims(state, headers)? {
        Ok(claims) => Some(claims),
        Err(error) => {
            tracing::debug!(%error, "psu-sim refused an app token");
            None
        }
    }
}

pub fn token_claims(
    state: &SimState,
    headers: &HeaderMap,
) -> Option<Result<TokenClaims, crate::sim::TokenError>> {
    let token = bearer_token(headers)?;
    Some(state.check_token(token, SystemTime::now()))
}

/// The bearer token PSU would read: from `X-PSU-Authorization` when that
/// header exists, else from `Authorization`. Another scheme is no token.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(X_PSU_AUTHORIZATION)
        .or_else(|| headers.get(AUTHORIZATION))?;
    let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn identity_json(identity: &str, roles: &[String]) -> Response<Body> {
    json(
        StatusCode::OK,
        &json!({"identity": identity, "roles": roles}),
    )
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Adds `Set-Cookie` headers; a value that is not a valid header (only
/// possible with a bad cookie name) turns the answer into a 500.
fn with_cookies(mut response: Response<Body>, cookies: Vec<String>) -> Response<Body> {
    for cookie in cookies {
        match HeaderValue::from_str(&cookie) {
            Ok(value) => {
                response.headers_mut().append(SET_COOKIE, value);
            }
            Err(_) => return empty(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn x_psu_authorization_wins_over_authorization() {
        let both = headers(&[
            ("authorization", "Bearer a"),
            ("x-psu-authorization", "Bearer b"),
        ]);
        assert_eq!(bearer_token(&both), Some("b"));
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer  a ")])),
            Some("a")
        );
        let psu_not_bearer = headers(&[
            ("authorization", "Bearer a"),
            ("x-psu-authorization", "Basic b"),
        ]);
        assert_eq!(
            bearer_token(&psu_not_bearer),
            None,
            "Authorization is ignored once X-PSU-Authorization exists"
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
