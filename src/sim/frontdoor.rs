//! Deployment pitfalls in front of PSU: IIS Windows auth without anonymous
//! access, and a layer that eats the `Authorization` header.

use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::sim::handlers::{full, Body};
use crate::sim::state::SimState;

/// The body IIS sends with its 401 challenge (shortened).
const IIS_401: &str = "<!DOCTYPE html><title>401 - Unauthorized</title><h1>401 - Unauthorized: Access is denied due to invalid credentials.</h1>\n";

/// Runs the configured front-door modes on a request before PSU sees it:
/// `Some(response)` when the front door answers by itself.
pub fn apply(state: &SimState, headers: &mut HeaderMap) -> Option<Response<Body>> {
    if !state.iis_anonymous && !has_negotiate(headers) {
        return Some(iis_challenge());
    }
    if state.strip_authorization {
        headers.remove(AUTHORIZATION);
    }
    None
}

/// IIS accepts any `Negotiate` blob here; the simulator does not speak Kerberos.
fn has_negotiate(headers: &HeaderMap) -> bool {
    headers.get_all(AUTHORIZATION).iter().any(|value| {
        let scheme = value
            .as_bytes()
            .split(|b| *b == b' ')
            .next()
            .unwrap_or_default();
        scheme.eq_ignore_ascii_case(b"negotiate")
    })
}

fn iis_challenge() -> Response<Body> {
    let mut response = Response::new(full(IIS_401));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
    headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("NTLM"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::recorder::Recorder;
    use crate::sim::SimOptions;

    fn state(iis_anonymous: bool, strip_authorization: bool) -> SimState {
        let opts = SimOptions {
            iis_anonymous,
            strip_authorization,
            ..SimOptions::default()
        };
        SimState::new(opts, Recorder::new())
    }

    fn headers(authorization: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static(authorization));
        headers
    }

    #[test]
    fn iis_without_anonymous_challenges_all_but_negotiate() {
        let state = state(false, false);
        let rejection = apply(&state, &mut headers("Bearer abc")).unwrap();
        assert_eq!(rejection.status(), 401);
        let challenges: Vec<_> = rejection
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .collect();
        assert_eq!(challenges, ["Negotiate", "NTLM"]);
        assert!(apply(&state, &mut HeaderMap::new()).is_some());
        assert!(apply(&state, &mut headers("negotiate YIIabc")).is_none());
    }

    #[test]
    fn strip_mode_removes_authorization_only() {
        let mut seen = headers("Bearer abc");
        seen.insert(
            "x-psu-authorization",
            HeaderValue::from_static("Bearer xyz"),
        );
        assert!(apply(&state(true, true), &mut seen).is_none());
        assert!(seen.get(AUTHORIZATION).is_none());
        assert!(seen.get("x-psu-authorization").is_some());
        let mut kept = headers("Bearer abc");
        assert!(apply(&state(true, false), &mut kept).is_none());
        assert!(kept.get(AUTHORIZATION).is_some());
    }
}
