//! PSU-format app tokens: HS256 JWTs minted and verified with `ring::hmac`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde_json::{json, Map, Value};

use crate::secret::Secret;

/// `iss` of every PSU app token.
pub const ISSUER: &str = "IronmanSoftware";
/// `aud` (and `sub`) of every PSU app token.
pub const AUDIENCE: &str = "PowerShellUniversal";
/// The identity's name, as .NET's `ClaimTypes.Name`.
pub const NAME_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
/// A GUID per token; PSU revokes tokens by this value.
pub const HASH_CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/hash";
/// Roles, as .NET's `ClaimTypes.Role`: a string for one role, an array for several.
pub const ROLE_CLAIM: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";

/// A freshly minted token and the hash claim that revokes it.
#[derive(Clone, Debug)]
pub struct MintedToken {
    pub token: Secret,
    pub hash: String,
}

/// What a valid token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    pub identity: String,
    pub hash: String,
    pub roles: Vec<String>,
    /// Unix seconds; `None` when the token carries no `nbf`.
    pub not_before: Option<u64>,
    /// Unix seconds.
    pub expires: u64,
}

impl TokenClaims {
    /// Role names compare exactly, as .NET's `ClaimsPrincipal.IsInRole` does.
    pub fn has_any_role(&self, allowed: &[String]) -> bool {
        self.roles.iter().any(|role| allowed.contains(role))
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not three base64url segments of JSON")]
    Malformed,
    #[error("the token algorithm {0:?} is not HS256")]
    UnsupportedAlgorithm(String),
    #[error("the token signature does not match the signing key")]
    BadSignature,
    #[error("the token claim {0:?} is missing or has the wrong type")]
    MissingClaim(&'static str),
    #[error("the token issuer is not {ISSUER}")]
    WrongIssuer,
    #[error("the token audience is not {AUDIENCE}")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has been revoked")]
    Revoked,
}

/// Mints a token valid from now for `ttl` (whole seconds), signed with `key`.
pub fn mint_token(key: &[u8], identity: &str, roles: &[String], ttl: Duration) -> MintedToken {
    mint_token_at(key, identity, roles, SystemTime::now(), ttl)
}

/// Mints a token as if issued at `now`: tests use it for tokens that have
/// already expired.
pub fn mint_token_at(
    key: &[u8],
    identity: &str,
    roles: &[String],
    now: SystemTime,
    ttl: Duration,
) -> MintedToken {
    let hash = uuid::Uuid::new_v4().to_string();
    let not_before = unix_seconds(now);
    let mut claims = Map::new();
    claims.insert(NAME_CLAIM.into(), identity.into());
    claims.insert(HASH_CLAIM.into(), hash.clone().into());
    claims.insert("sub".into(), AUDIENCE.into());
    // PSU writes one role as a plain string and several as an array.
    match roles {
        [] => {}
        [one] => {
            claims.insert(ROLE_CLAIM.into(), one.clone().into());
        }
        many => {
            claims.insert(ROLE_CLAIM.into(), many.to_vec().into());
        }
    }
    claims.insert("nbf".into(), not_before.into());
    claims.insert(
        "exp".into(),
        not_before.saturating_add(ttl.as_secs()).into(),
    );
    claims.insert("iss".into(), ISSUER.into());
    claims.insert("aud".into(), AUDIENCE.into());
    let header = json!({"alg": "HS256", "typ": "JWT"});
    MintedToken {
        token: Secret::new(sign(key, &header, &Value::Object(claims))),
        hash,
    }
}

/// Signs arbitrary header and claims; tests use it to forge odd tokens.
pub(crate) fn sign(key: &[u8], header: &Value, claims: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Checks signature, algorithm, issuer, audience and lifetime at `now`.
/// Revocation is the caller's business: it needs the server's revoked set.
pub fn verify_token(key: &[u8], token: &str, now: SystemTime) -> Result<TokenClaims, TokenError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
    if payload.contains('.') {
        return Err(TokenError::Malformed);
    }
    // The algorithm is checked before the signature so `alg: none` and
    // friends can never reach a code path that trusts the payload.
    check_algorithm(&decode_json(header)?)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, signing_input.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    read_claims(&decode_json(payload)?, unix_seconds(now))
}

fn decode_json(segment: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed),
    }
}

fn check_algorithm(header: &Map<String, Value>) -> Result<(), TokenError> {
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "HS256" => Ok(()),
        Some(Value::String(alg)) => Err(TokenError::UnsupportedAlgorithm(alg.clone())),
        _ => Err(TokenError::UnsupportedAlgorithm(String::new())),
    }
}

fn read_claims(claims: &Map<String, Value>, now: u64) -> Result<TokenClaims, TokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
        return Err(TokenError::WrongIssuer);
    }
    if !audience_matches(claims.get("aud")) {
        return Err(TokenError::WrongAudience);
    }
    // No clock-skew allowance (.NET allows 5 minutes by default): tests need
    // exact boundaries.
    let expires = seconds_claim(claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now >= expires {
        return Err(TokenError::Expired);
    }
    let not_before = seconds_claim(claims, "nbf")?;
    if not_before.is_some_and(|nbf| now < nbf) {
        return Err(TokenError::NotYetValid);
    }
    Ok(TokenClaims {
        identity: string_claim(claims, NAME_CLAIM, "name")?,
        hash: string_claim(claims, HASH_CLAIM, "hash")?,
        roles: roles_claim(claims.get(ROLE_CLAIM))?,
        not_before,
        expires,
    })
}

fn audience_matches(aud: Option<&Value>) -> bool {
    match aud {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    }
}

fn seconds_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or(TokenError::MissingClaim(name)),
    }
}

fn string_claim(
    claims: &Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<String, TokenError> {
    match claims.get(key) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        _ => Err(TokenError::MissingClaim(name)),
    }
}

fn roles_claim(value: Option<&Value>) -> Result<Vec<String>, TokenError> {
    let invalid = || TokenError::MissingClaim("role");
    match value {
        None => Ok(Vec::new()),
        Some(Value::String(role)) => Ok(vec![role.clone()]),
        Some(Value::Array(list)) => list
            .iter()
            .map(|r| r.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
