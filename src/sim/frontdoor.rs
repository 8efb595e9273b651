//! Deployment pitfalls in front of PSU: IIS Windows auth without anonymous
//! access, and a layer that eats the `Authorization` header.

use http::header::AUTHORIZATION;
use http::{HeaderMap, Response};

use crate::sim::handlers::Body;
use crate::sim::state::SimState;
use crate::sim::windows_auth;

/// Runs the configured front-door modes on a request before PSU sees it:
/// `Some(response)` when the front door answers by itself.
pub fn apply(state: &SimState, headers: &mut HeaderMap) -> Option<Response<Body>> {
    if !state.iis_anonymous && !has_negotiate(headers) {
        return Some(windows_auth::fresh_challenge());
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

#[cfg(test)]
mod tests {
    use http::header::WWW_AUTHENTICATE;
    use http::HeaderValue;

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
