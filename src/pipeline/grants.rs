//! Per-user credentials (`credential.mode = "per-user"`): each signed-in
//! user's own PSU token, granted by PSU and cached, for inject routes.
//!
//! The call then runs in the visiting user's context with that user's
//! roles, and nobody creates a token by hand. Tokens are cached under a
//! SHA-256 of (identity, role set), in memory only, bounded by
//! `session.cache_max_entries`, and dropped with the generation on reload.
//! A miss holds quick_cache's placeholder while it asks PSU, so concurrent
//! first requests of one user wait for that one grant, as introspection
//! does; a failure is handed to those waiters, then removed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, COOKIE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use quick_cache::sync::Cache;
use tokio::sync::Semaphore;

use crate::config::{Credential, Grant, PerUser};
use crate::pipeline::credential::{ActiveToken, TokenStore};
use crate::pipeline::metrics::Metrics;
use crate::pipeline::session::{Identity, IntrospectionContext};
use crate::rules::cookies::SessionCookies;
use crate::rules::headers::{set_forwarding, ForwardedFor};
use crate::transport::upstream::{Body, UpstreamClient};

/// The largest grant answer the gateway reads.
const MAX_GRANT_BODY: usize = 64 * 1024;
/// A token is not reused once its own expiry is this close.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Why the user has no token for this request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("PSU refused to grant this user a token for the Management API; ask its administrator to allow it (a self-grant may need a role), or use a shared token")]
    Refused,
    #[error(
        "none of the signed-in user's roles is in credential.grant_roles, so no token is granted"
    )]
    NoRoles,
    /// `reason` is for the log; clients only see the generic message.
    #[error("PSU could not grant this user a token right now; try again shortly")]
    Unavailable { reason: String },
    #[error("PSU is already answering as many calls as session.max_inflight_introspections allows; try again shortly")]
    Busy,
}

#[derive(Debug, Clone)]
enum Verdict {
    Minted(Arc<ActiveToken>),
    Refused,
    /// Handed to the requests that waited for this grant, then removed.
    Failed(Arc<str>),
}

#[derive(Debug, Clone)]
struct Entry {
    verdict: Verdict,
    until: Instant,
}

impl Entry {
    /// As in the session cache: a verdict that had not expired when the
    /// request arrived; a failure only if it came after the request did.
    fn usable(&self, arrived: Instant) -> bool {
        match self.verdict {
            Verdict::Minted(_) | Verdict::Refused => arrived < self.until,
            Verdict::Failed(_) => self.until >= arrived,
        }
    }
}

/// The users' tokens and how to get more.
pub struct UserTokens {
    cache: Cache<[u8; 32], Entry>,
    credential: Credential,
    per_user: PerUser,
    upstream: UpstreamClient,
    /// Shared with introspection: `session.max_inflight_introspections`.
    places: Arc<Semaphore>,
    timeout: Duration,
    negative_ttl: Duration,
    metrics: Arc<Metrics>,
}

/// What a grant call needs to know about the request.
pub struct GrantRequest<'a> {
    pub identity: &'a Identity,
    pub cookies: &'a SessionCookies,
    pub ctx: &'a IntrospectionContext<'a>,
    /// Delegated grants: the granting token, used on `grant_path` only.
    pub granting: Option<&'a TokenStore>,
}

impl UserTokens {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        credential: Credential,
        per_user: PerUser,
        upstream: UpstreamClient,
        places: Arc<Semaphore>,
        session: &crate::config::Session,
        metrics: Arc<Metrics>,
    ) -> Self {
        let capacity = usize::try_from(session.cache_max_entries).unwrap_or(usize::MAX);
        Self {
            cache: Cache::new(capacity),
            credential,
            per_user,
            upstream,
            places,
            timeout: session.introspect_timeout,
            negative_ttl: session.negative_cache_ttl,
            metrics,
        }
    }

    /// This user's own token: cached, the one a grant this request waited
    /// for returned, or PSU's answer now.
    pub async fn token_for(&self, req: &GrantRequest<'_>) -> Result<Arc<ActiveToken>, GrantError> {
        let key = req.identity.key;
        let arrived = Instant::now();
        loop {
            match self.cache.get_value_or_guard_async(&key).await {
                Ok(entry) if entry.usable(arrived) => return entry.verdict.into_result(),
                Ok(_) => {
                    self.cache.remove_if(&key, |e| !e.usable(arrived));
                }
                Err(placeholder) => {
                    // Refused before any call: nothing to cache, and the
                    // placeholder's waiters find the same.
                    let roles = self.roles_for(req.identity)?;
                    let Ok(Ok(_place)) =
                        tokio::time::timeout(self.timeout, self.places.acquire()).await
                    else {
                        return Err(GrantError::Busy);
                    };
                    let started = Instant::now();
                    let (verdict, until) = match Box::pin(self.grant(req, &roles)).await {
                        Ok((token, until)) => (Verdict::Minted(token), until),
                        Err(Denied::Refused) => {
                            (Verdict::Refused, Instant::now() + self.negative_ttl)
                        }
                        Err(Denied::Failed(reason)) => {
                            (Verdict::Failed(reason.into()), Instant::now())
                        }
                    };
                    let outcome = match verdict {
                        Verdict::Minted(_) => "granted",
                        Verdict::Refused => "refused",
                        Verdict::Failed(_) => "failed",
                    };
                    self.metrics.grant(outcome, started.elapsed());
                    let _ = placeholder.insert(Entry {
                        verdict: verdict.clone(),
                        until,
                    });
                    if matches!(verdict, Verdict::Failed(_)) {
                        self.cache
                            .remove_if(&key, |e| matches!(e.verdict, Verdict::Failed(_)));
                    }
                    self.metrics
                        .minted_tokens
                        .set(i64::try_from(self.cache.len()).unwrap_or(i64::MAX));
                    return verdict.into_result();
                }
            }
        }
    }

    /// The roles the token carries: the user's own for a session grant
    /// (PSU decides them); for a delegated grant the user's roles, kept to
    /// `grant_roles` when set, as PSU spells them.
    fn roles_for(&self, identity: &Identity) -> Result<Vec<String>, GrantError> {
        let mut roles = match (&self.per_user.grant, &self.per_user.grant_roles) {
            (Grant::Session, _) | (Grant::Delegated, None) => identity.role_names.clone(),
            (Grant::Delegated, Some(allowed)) => allowed
                .iter()
                .filter(|role| identity.roles.contains(&role.to_lowercase()))
                .cloned()
                .collect(),
        };
        if self.per_user.grant == Grant::Delegated && roles.is_empty() {
            return Err(GrantError::NoRoles);
        }
        roles.sort();
        Ok(roles)
    }

    async fn grant(
        &self,
        req: &GrantRequest<'_>,
        roles: &[String],
    ) -> Result<(Arc<ActiveToken>, Instant), Denied> {
        let request = self.grant_request(req, roles)?;
        let response = self
            .upstream
            .send(request, self.timeout)
            .await
            .map_err(|e| Denied::Failed(e.to_string()))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Denied::Refused);
        }
        if !status.is_success() {
            return Err(Denied::Failed(format!(
                "the grant endpoint answered {status}"
            )));
        }
        let body = tokio::time::timeout(
            self.timeout,
            Limited::new(response.into_body(), MAX_GRANT_BODY).collect(),
        )
        .await
        .map_err(|_| Denied::Failed("the grant answer did not arrive in time".to_owned()))?
        .map_err(|_| Denied::Failed("the grant answer could not be read".to_owned()))?
        .to_bytes();
        let secret = token_from_body(&body, &self.per_user.token_pointer)?;
        let until = reuse_until(
            Instant::now(),
            SystemTime::now(),
            self.per_user.token_ttl,
            crate::config::token::jwt_exp(secret.expose()).and_then(|exp| u64::try_from(exp).ok()),
        );
        Ok((Arc::new(ActiveToken::new(&self.credential, secret)), until))
    }

    fn grant_request(
        &self,
        req: &GrantRequest<'_>,
        roles: &[String],
    ) -> Result<Request<Body>, Denied> {
        let pq = &self.per_user.grant_path;
        let uri = self
            .upstream
            .uri(pq.path(), pq.query())
            .ok_or_else(|| Denied::Failed("grant_path is not a valid URI".to_owned()))?;
        let (method, body, credential) = match self.per_user.grant {
            Grant::Session => (Method::GET, Bytes::new(), None),
            Grant::Delegated => {
                let granting = req
                    .granting
                    .ok_or_else(|| Denied::Failed("no granting token is loaded".to_owned()))?;
                let name = req.identity.name.as_deref().ok_or_else(|| {
                    Denied::Failed("the session check named no identity".to_owned())
                })?;
                let expiration = SystemTime::now() + self.per_user.token_ttl;
                let body = delegated_body(name, roles, expiration);
                (
                    Method::POST,
                    Bytes::from(body),
                    Some(granting.current().header_value.clone()),
                )
            }
        };
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body).map_err(|never| match never {}).boxed())
            .map_err(|e| Denied::Failed(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Ok(host) = HeaderValue::from_str(req.ctx.upstream_host) {
            headers.insert(HOST, host);
        }
        match credential {
            // The user's own session asks for the user's own token.
            None => {
                let mut cookie = HeaderValue::from_str(&req.cookies.cookie_header())
                    .map_err(|_| Denied::Failed("cookie not representable".to_owned()))?;
                cookie.set_sensitive(true);
                headers.insert(COOKIE, cookie);
            }
            // The granting token goes on this request and no other.
            Some(value) => {
                headers.insert(self.credential.header.clone(), value);
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
        }
        set_forwarding(
            headers,
            &ForwardedFor {
                peer: req.ctx.peer,
                host: req.ctx.host,
                request_id: req.ctx.request_id,
                earlier: None,
            },
        );
        Ok(request)
    }

    /// Tokens held now.
    pub fn held(&self) -> usize {
        self.cache.len()
    }
}

impl Verdict {
    fn into_result(self) -> Result<Arc<ActiveToken>, GrantError> {
        match self {
            Verdict::Minted(token) => Ok(token),
            Verdict::Refused => Err(GrantError::Refused),
            Verdict::Failed(reason) => Err(GrantError::Unavailable {
                reason: reason.to_string(),
            }),
        }
    }
}

/// Why a grant call gave no token.
enum Denied {
    Refused,
    Failed(String),
}

/// The token at `pointer` in a grant answer, checked like a token file.
fn token_from_body(body: &[u8], pointer: &str) -> Result<crate::secret::Secret, Denied> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| Denied::Failed("the grant answer is not JSON".to_owned()))?;
    let text = json
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            Denied::Failed(
                "the grant answer has no token string at credential.token_pointer".to_owned(),
            )
        })?;
    crate::config::token::parse_token(text)
        .map_err(|e| Denied::Failed(format!("the granted token is unusable: {e}")))
}

/// When reuse stops: after `ttl`, and never later than `EXPIRY_MARGIN`
/// before the token's own `exp` (an instant already past when it is that
/// close: the token serves this request only).
pub fn reuse_until(now: Instant, wall: SystemTime, ttl: Duration, exp: Option<u64>) -> Instant {
    let by_ttl = now + ttl;
    let Some(exp) = exp else { return by_ttl };
    let wall_secs = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let left = Duration::from_secs(exp.saturating_sub(wall_secs)).saturating_sub(EXPIRY_MARGIN);
    by_ttl.min(now + left)
}

/// `{"Identity":{"Name":..},"Role":"r1,r2","Expiration":"<RFC 3339 UTC>"}`.
pub fn delegated_body(identity: &str, roles: &[String], expiration: SystemTime) -> String {
    serde_json::json!({
        "Identity": {"Name": identity},
        "Role": roles.join(","),
        "Expiration": crate::duration::rfc3339(expiration),
    })
    .to_string()
}

#[cfg(test)]
mod tests;
