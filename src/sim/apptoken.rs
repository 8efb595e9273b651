//! `/api/v1/apptoken/grant`: an app token for the signed-in user (GET), or
//! for any identity by an administrator's app token (POST).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Response, StatusCode};

use crate::sim::auth::{app_token, session_identity};
use crate::sim::grant_request::parse_delegated;
use crate::sim::grants::{GrantForm, Issued};
use crate::sim::handlers::{empty, json, text, Body, SimRequest};
use crate::sim::state::SimState;
use crate::sim::token::mint_token_at;

/// The role PSU requires to grant tokens to other identities.
const ADMINISTRATOR: &str = "Administrator";

/// `GET`: the session's user gets a token with exactly their roles, valid
/// for the configured grant lifetime. PSU wants a web session here; an app
/// token alone is no session.
pub fn self_grant(state: &SimState, request: &SimRequest) -> Response<Body> {
    let Some((identity, roles)) = session_identity(state, &request.headers) else {
        return empty(StatusCode::UNAUTHORIZED);
    };
    if !may_self_grant(&state.self_grant_roles, &roles) {
        return empty(StatusCode::FORBIDDEN);
    }
    let now = whole_seconds(SystemTime::now());
    let expires = now.saturating_add(state.grant_ttl.as_secs());
    grant(state, GrantForm::Session, &identity, &roles, now, expires)
}

/// `POST`: an Administrator token grants `{Identity:{Name}, Role,
/// Expiration}`; the identity need not exist (PSU creates it).
pub fn delegated_grant(state: &SimState, request: &SimRequest) -> Response<Body> {
    let Some(claims) = app_token(state, &request.headers) else {
        return empty(StatusCode::UNAUTHORIZED);
    };
    if !claims.roles.iter().any(|role| role == ADMINISTRATOR) {
        return empty(StatusCode::FORBIDDEN);
    }
    let now = SystemTime::now();
    let wanted = match parse_delegated(&request.body, now) {
        Ok(wanted) => wanted,
        Err(error) => return text(StatusCode::BAD_REQUEST, &format!("{error}\n")),
    };
    let now = whole_seconds(now);
    let form = GrantForm::Delegated;
    grant(
        state,
        form,
        &wanted.identity,
        &wanted.roles,
        now,
        wanted.expires,
    )
}

/// With no self-grant roles configured anyone may; otherwise the user needs
/// one of them. Compared ignoring case, as an operator types role names.
fn may_self_grant(required: &[String], held: &[String]) -> bool {
    required.is_empty()
        || held
            .iter()
            .any(|role| required.iter().any(|r| r.eq_ignore_ascii_case(role)))
}

/// Mints a token valid from `now` to `expires` (Unix seconds), records the
/// grant and answers with PSU's JSON.
fn grant(
    state: &SimState,
    form: GrantForm,
    identity: &str,
    roles: &[String],
    now: u64,
    expires: u64,
) -> Response<Body> {
    let created = UNIX_EPOCH + Duration::from_secs(now);
    let ttl = Duration::from_secs(expires.saturating_sub(now));
    let key = state.signing_key.expose().as_bytes();
    let minted = mint_token_at(key, identity, roles, created, ttl);
    let answer = state.grants().record(Issued {
        form,
        identity,
        roles,
        token: minted.token.expose(),
        hash: &minted.hash,
        created,
        expires: created + ttl,
    });
    json(StatusCode::OK, &answer)
}

fn whole_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(list: &[&str]) -> Vec<String> {
        list.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn self_grant_roles_restrict_only_when_set() {
        assert!(may_self_grant(&[], &[]));
        assert!(may_self_grant(&[], &roles(&["Reader"])));
        let operators = roles(&["operator", "Administrator"]);
        assert!(may_self_grant(&operators, &roles(&["Reader", "Operator"])));
        assert!(may_self_grant(&operators, &roles(&["ADMINISTRATOR"])));
        assert!(!may_self_grant(&operators, &roles(&["Reader"])));
        assert!(!may_self_grant(&operators, &[]));
    }
}
