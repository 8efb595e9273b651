//! `--windows-auth ntlm`: connection-bound Windows authentication, as IIS
//! and Kestrel do it.
//!
//! A request without credentials gets 401 with `WWW-Authenticate:
//! Negotiate` and `WWW-Authenticate: NTLM`. The client sends a NEGOTIATE
//! (`Authorization: NTLM <base64>` or `Negotiate <base64>`), gets the
//! CHALLENGE in a 401 under the same scheme, and answers with an
//! AUTHENTICATE on the *same* TCP connection; if that proves the user's
//! password, the request proceeds and the connection belongs to that user
//! from then on, so later requests on it need no `Authorization`. An
//! AUTHENTICATE on any other connection (which holds no challenge) gets a
//! fresh 401. A new NEGOTIATE on an authenticated connection restarts the
//! handshake, as IIS does.
//!
//! User names compare ignoring case; any domain is accepted (it is part of
//! the NTLMv2 hash, so it must be the one the client hashed).
//!
//! Not supported: SPNEGO-wrapped tokens and Kerberos. A `Negotiate` token
//! that is not a raw NTLMSSP message gets a fresh 401 challenge.
//!
//! HTTP/2 connections are treated like HTTP/1.1 ones (real servers refuse
//! NTLM over h2); clients should authenticate over HTTP/1.1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use rand::RngCore as _;
use serde_json::json;

use crate::sim::handlers::{full, json, Body};
use crate::sim::ntlm;
use crate::sim::state::SimState;
use crate::sim::SimUser;

/// Connection ids are unique across every simulator in the process.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The body IIS sends with its 401 (shortened).
const UNAUTHORIZED_BODY: &str = "<!DOCTYPE html><title>401 - Unauthorized</title><h1>401 - Unauthorized: Access is denied due to invalid credentials.</h1>\n";

/// The HTTP authentication scheme a handshake runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Ntlm,
    Negotiate,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Ntlm => "NTLM",
            Scheme::Negotiate => "Negotiate",
        }
    }
}

/// Where one connection's handshake stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum AuthState {
    #[default]
    Fresh,
    Challenged {
        scheme: Scheme,
        server_challenge: [u8; 8],
    },
    Authenticated {
        user: String,
        scheme: Scheme,
    },
}

/// One TCP connection's identity and Windows-auth state.
#[derive(Debug)]
pub struct ConnectionAuth {
    id: u64,
    state: Mutex<AuthState>,
}

impl Default for ConnectionAuth {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionAuth {
    /// A new connection: the next id, not authenticated.
    pub fn new() -> Self {
        Self {
            id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(AuthState::Fresh),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The user this connection is authenticated as, if it is.
    pub fn user(&self) -> Option<String> {
        match &*self.lock() {
            AuthState::Authenticated { user, .. } => Some(user.clone()),
            _ => None,
        }
    }

    /// A handler that panicked mid-update left plain data; keep serving.
    fn lock(&self) -> MutexGuard<'_, AuthState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a request's `Authorization` offers for Windows auth.
#[derive(Debug, PartialEq, Eq)]
enum Offer {
    /// No NTLM or Negotiate credentials (maybe other schemes).
    Nothing,
    /// A decoded NTLMSSP message under this scheme.
    Token(Scheme, Vec<u8>),
    /// NTLM/Negotiate credentials that are not NTLMSSP (bad base64,
    /// SPNEGO, Kerberos, an empty token).
    Unusable,
}

/// What the request gets.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Proceed,
    /// Leg 2: a 401 carrying this CHALLENGE.
    Challenge(Scheme, Vec<u8>),
    /// A 401 with fresh `Negotiate` and `NTLM` challenges.
    Refuse,
}

/// Runs Windows auth for one request when `--windows-auth` is on: `None`
/// lets the request proceed as the connection's user, `Some` is the 401
/// to answer with.
pub fn check(
    state: &SimState,
    conn: &ConnectionAuth,
    headers: &HeaderMap,
) -> Option<Response<Body>> {
    if !state.windows_auth {
        return None;
    }
    let offer = offer(headers);
    let mut server_challenge = [0; 8];
    rand::rng().fill_bytes(&mut server_challenge);
    let step = {
        let mut current = conn.lock();
        let (next, step) = advance(
            std::mem::take(&mut *current),
            offer,
            &state.users,
            server_challenge,
        );
        *current = next;
        step
    };
    match step {
        Step::Proceed => None,
        Step::Challenge(scheme, type2) => Some(leg_two(scheme, &type2)),
        Step::Refuse => Some(fresh_challenge()),
    }
}

/// `GET /sim/whoami`: the connection's user and id, or a 401 challenge;
/// with `close` (`?close=1`) the simulator closes the connection after
/// answering, as a restarting PSU would.
pub fn whoami(conn: &ConnectionAuth, close: bool) -> Response<Body> {
    let mut response = match conn.user() {
        Some(user) => json(
            StatusCode::OK,
            &json!({ "user": user, "connection": conn.id() }),
        ),
        None => fresh_challenge(),
    };
    if close {
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The state transition for one request; pure but for the clock.
fn advance(
    current: AuthState,
    offer: Offer,
    users: &[SimUser],
    server_challenge: [u8; 8],
) -> (AuthState, Step) {
    let token = match offer {
        Offer::Nothing if matches!(current, AuthState::Authenticated { .. }) => {
            return (current, Step::Proceed)
        }
        Offer::Nothing | Offer::Unusable => return (AuthState::Fresh, Step::Refuse),
        Offer::Token(scheme, token) => (scheme, token),
    };
    match (ntlm::message_type(&token.1), current) {
        (Some(1), _) => leg_one(token.0, &token.1, server_challenge),
        (
            Some(3),
            AuthState::Challenged {
                server_challenge, ..
            },
        ) => leg_three(token.0, &token.1, &server_challenge, users),
        _ => (AuthState::Fresh, Step::Refuse),
    }
}

fn leg_one(scheme: Scheme, type1: &[u8], server_challenge: [u8; 8]) -> (AuthState, Step) {
    let Ok(negotiate) = ntlm::parse_negotiate(type1) else {
        return (AuthState::Fresh, Step::Refuse);
    };
    let type2 = ntlm::challenge_message(negotiate.flags, server_challenge, ntlm::filetime_now());
    let next = AuthState::Challenged {
        scheme,
        server_challenge,
    };
    (next, Step::Challenge(scheme, type2))
}

fn leg_three(
    scheme: Scheme,
    type3: &[u8],
    server_challenge: &[u8; 8],
    users: &[SimUser],
) -> (AuthState, Step) {
    let Ok(auth) = ntlm::parse_authenticate(type3) else {
        return (AuthState::Fresh, Step::Refuse);
    };
    match verified_user(&auth, server_challenge, users) {
        Some(user) => (AuthState::Authenticated { user, scheme }, Step::Proceed),
        None => (AuthState::Fresh, Step::Refuse),
    }
}

/// The simulator's name of the user whose password the response proves.
fn verified_user(
    auth: &ntlm::Authenticate,
    server_challenge: &[u8; 8],
    users: &[SimUser],
) -> Option<String> {
    let claimed = auth.user.to_lowercase();
    users
        .iter()
        .filter(|user| user.name.to_lowercase() == claimed)
        .find(|user| ntlm::verify_ntlmv2(auth, server_challenge, user.password.expose()))
        .map(|user| user.name.clone())
}

/// The first NTLM or Negotiate credentials in `Authorization`.
fn offer(headers: &HeaderMap) -> Offer {
    for value in headers.get_all(AUTHORIZATION) {
        let Ok(value) = value.to_str() else { continue };
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        let scheme = if scheme.eq_ignore_ascii_case("ntlm") {
            Scheme::Ntlm
        } else if scheme.eq_ignore_ascii_case("negotiate") {
            Scheme::Negotiate
        } else {
            continue;
        };
        return match STANDARD.decode(token.trim()) {
            Ok(bytes) if ntlm::message_type(&bytes).is_some() => Offer::Token(scheme, bytes),
            _ => Offer::Unusable,
        };
    }
    Offer::Nothing
}

fn unauthorized() -> Response<Body> {
    let mut response = Response::new(full(UNAUTHORIZED_BODY));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// 401 inviting either scheme, as IIS with Windows auth sends.
pub fn fresh_challenge() -> Response<Body> {
    let mut response = unauthorized();
    let headers = response.headers_mut();
    headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
    headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("NTLM"));
    response
}

/// 401 carrying the CHALLENGE under the client's scheme.
fn leg_two(scheme: Scheme, type2: &[u8]) -> Response<Body> {
    let value = format!("{} {}", scheme.name(), STANDARD.encode(type2));
    let Ok(value) = HeaderValue::from_str(&value) else {
        return fresh_challenge();
    };
    let mut response = unauthorized();
    response.headers_mut().insert(WWW_AUTHENTICATE, value);
    response
}

#[cfg(test)]
mod tests;
