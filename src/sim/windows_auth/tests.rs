//! The per-connection handshake: legs, restarts, refusals, header parsing.

use super::*;
use crate::sim::recorder::Recorder;
use crate::sim::SimOptions;

const CHALLENGE: [u8; 8] = [7; 8];

fn users() -> Vec<SimUser> {
    vec![SimUser::new("Alice", "wonder", &["Reader"])]
}

fn token(scheme: Scheme, msg: Vec<u8>) -> Offer {
    Offer::Token(scheme, msg)
}

/// Runs legs 1 and 2 from `current`; returns the state and the CHALLENGE.
fn challenged(current: AuthState, scheme: Scheme) -> (AuthState, Vec<u8>) {
    let offer = token(scheme, ntlm::client_negotiate());
    match advance(current, offer, &users(), CHALLENGE) {
        (next, Step::Challenge(got, type2)) => {
            assert_eq!(got, scheme);
            (next, type2)
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn leg_three_offer(type2: &[u8], user: &str, password: &str) -> Offer {
    let type3 = ntlm::client_authenticate(type2, user, "ANYDOMAIN", password).unwrap();
    token(Scheme::Ntlm, type3)
}

#[test]
fn three_legs_make_the_connection_the_users() {
    let (state, type2) = challenged(AuthState::Fresh, Scheme::Ntlm);
    assert_eq!(
        state,
        AuthState::Challenged {
            scheme: Scheme::Ntlm,
            server_challenge: CHALLENGE
        }
    );
    let (state, step) = advance(
        state,
        leg_three_offer(&type2, "alice", "wonder"),
        &users(),
        CHALLENGE,
    );
    assert_eq!(step, Step::Proceed);
    let authenticated = AuthState::Authenticated {
        user: "Alice".to_owned(),
        scheme: Scheme::Ntlm,
    };
    assert_eq!(state, authenticated, "the configured spelling of the name");
    let (state, step) = advance(state, Offer::Nothing, &users(), CHALLENGE);
    assert_eq!((state, step), (authenticated, Step::Proceed));
}

#[test]
fn wrong_password_or_unknown_user_is_refused() {
    for (user, password) in [("alice", "wrong"), ("mallory", "wonder")] {
        let (state, type2) = challenged(AuthState::Fresh, Scheme::Negotiate);
        let offer = leg_three_offer(&type2, user, password);
        assert_eq!(
            advance(state, offer, &users(), CHALLENGE),
            (AuthState::Fresh, Step::Refuse)
        );
    }
}

#[test]
fn leg_three_without_a_challenge_is_refused() {
    let (_, type2) = challenged(AuthState::Fresh, Scheme::Ntlm);
    let offer = leg_three_offer(&type2, "alice", "wonder");
    assert_eq!(
        advance(AuthState::Fresh, offer, &users(), CHALLENGE),
        (AuthState::Fresh, Step::Refuse)
    );
}

#[test]
fn a_new_negotiate_restarts_an_authenticated_connection() {
    let authenticated = AuthState::Authenticated {
        user: "Alice".to_owned(),
        scheme: Scheme::Ntlm,
    };
    let (state, _) = challenged(authenticated, Scheme::Ntlm);
    assert!(matches!(state, AuthState::Challenged { .. }));
}

#[test]
fn no_credentials_or_unusable_ones_get_fresh_challenges() {
    for offer in [Offer::Nothing, Offer::Unusable] {
        let (state, _) = challenged(AuthState::Fresh, Scheme::Ntlm);
        assert_eq!(
            advance(state, offer, &users(), CHALLENGE),
            (AuthState::Fresh, Step::Refuse)
        );
    }
    let challenge_as_token = token(Scheme::Ntlm, ntlm::challenge_message(0, CHALLENGE, 0));
    assert_eq!(
        advance(AuthState::Fresh, challenge_as_token, &users(), CHALLENGE).1,
        Step::Refuse
    );
}

fn headers(values: &[&'static str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(AUTHORIZATION, HeaderValue::from_static(value));
    }
    headers
}

#[test]
fn offers_are_read_from_authorization() {
    let type1 = STANDARD.encode(ntlm::client_negotiate());
    let ntlm_header = HeaderValue::from_str(&format!("ntlm {type1}")).unwrap();
    let mut map = headers(&["Bearer abc"]);
    map.append(AUTHORIZATION, ntlm_header);
    assert_eq!(
        offer(&map),
        Offer::Token(Scheme::Ntlm, ntlm::client_negotiate())
    );
    assert_eq!(offer(&headers(&["Bearer abc"])), Offer::Nothing);
    assert_eq!(offer(&HeaderMap::new()), Offer::Nothing);
    // SPNEGO (an ASN.1 0x60 token), bad base64, nothing at all.
    for value in [
        "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag",
        "NTLM !!!",
        "NTLM",
        "Negotiate ",
    ] {
        assert_eq!(offer(&headers(&[value])), Offer::Unusable, "{value}");
    }
}

fn state(windows_auth: bool) -> SimState {
    let opts = SimOptions {
        windows_auth,
        users: users(),
        ..SimOptions::default()
    };
    SimState::new(opts, Recorder::new())
}

#[test]
fn check_is_off_unless_enabled_and_whoami_needs_a_user() {
    let conn = ConnectionAuth::new();
    assert!(check(&state(false), &conn, &HeaderMap::new()).is_none());
    let refused = check(&state(true), &conn, &HeaderMap::new()).unwrap();
    assert_eq!(refused.status(), 401);
    let challenges: Vec<_> = refused.headers().get_all(WWW_AUTHENTICATE).iter().collect();
    assert_eq!(challenges, ["Negotiate", "NTLM"]);
    assert_eq!(whoami(&conn, false).status(), 401);
    assert!(ConnectionAuth::new().id() > conn.id(), "ids increase");
}

#[test]
fn check_answers_leg_two_under_the_clients_scheme() {
    let conn = ConnectionAuth::new();
    let type1 = STANDARD.encode(ntlm::client_negotiate());
    let mut map = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Negotiate {type1}")).unwrap();
    map.insert(AUTHORIZATION, value);
    let leg2 = check(&state(true), &conn, &map).unwrap();
    let challenge = leg2.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    let type2 = STANDARD
        .decode(challenge.strip_prefix("Negotiate ").unwrap())
        .unwrap();
    assert_eq!(ntlm::message_type(&type2), Some(2));
    assert!(conn.user().is_none());
}
