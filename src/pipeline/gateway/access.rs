//! Steps 7 to 9b for one request: the route's own rate, the session
//! cookies, the session PSU confirms, and in per-user mode the user's own
//! token. Each either lets the request on or refuses it.

use std::sync::Arc;

use http::header::COOKIE;
use http::HeaderMap;

use super::{Exchange, Gateway};
use crate::config::CookieShape;
use crate::pipeline::credential::ActiveToken;
use crate::pipeline::grants::{GrantError, GrantRequest};
use crate::pipeline::problem::Rejection;
use crate::pipeline::record::Record;
use crate::pipeline::session::{self, CacheOutcome, Identity, IntrospectionContext};
use crate::rules::cookies::{extract_session, CookieError, SessionCookies, SessionLookup};
use crate::rules::routes::{Access, Route};

/// A session PSU confirmed, for the steps after step 9.
pub(super) struct User {
    identity: Arc<Identity>,
    cookies: SessionCookies,
}

impl Gateway {
    /// Cookie tossing is refused on every route: PSU would pick one of the
    /// duplicates, the gateway another.
    /// A Cookie field that is not text never authenticates, but it is still
    /// read (lossily) for duplicates, so a stray byte cannot hide tossing.
    pub(super) fn session_cookies(
        &self,
        headers: &HeaderMap,
        cookie: &Result<Option<String>, CookieError>,
    ) -> Result<SessionLookup, Rejection> {
        let Some(sessions) = &self.sessions else {
            return Ok(SessionLookup::Absent);
        };
        match cookie {
            Ok(Some(cookie)) => Ok(extract_session(cookie, sessions.cookie_names())?),
            Ok(None) => Ok(SessionLookup::Absent),
            Err(_) => {
                let fields: Vec<String> = headers
                    .get_all(COOKIE)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                extract_session(&fields.join("; "), sessions.cookie_names())?;
                Ok(SessionLookup::Absent)
            }
        }
    }

    pub(super) fn check_route_rate(
        &self,
        route: &Route,
        ex: &Exchange<'_>,
    ) -> Result<(), Rejection> {
        // Most routes have no limit: no lookup for them.
        if route.rate_limit.is_none() {
            return Ok(());
        }
        let Some(limiter) = self.route_limits.get(&route.name) else {
            return Ok(());
        };
        limiter
            .check(ex.peer.ip())
            .map_err(|t| Rejection::RateLimited {
                retry_after: t.retry_after,
            })
    }

    pub(super) async fn authenticate(
        &self,
        route: &Route,
        session: SessionLookup,
        ex: &Exchange<'_>,
        host: &str,
        record: &mut Record,
    ) -> Result<User, Rejection> {
        let (Some(sessions), SessionLookup::Present(cookies)) = (&self.sessions, session) else {
            record.cache = Some(CacheOutcome::None);
            return Err(Rejection::NoSession);
        };
        // A value that cannot be a PSU session is not worth PSU's time.
        if sessions.cookie_shape() == CookieShape::AspNet && !cookies.all_data_protection_payloads()
        {
            record.cache = Some(CacheOutcome::None);
            return Err(Rejection::CookieShape);
        }
        let ctx = IntrospectionContext {
            peer: ex.peer.ip().to_canonical(),
            host,
            upstream_host: self.upstream_host(host),
            request_id: ex.request_id,
        };
        let (identity, outcome) = match sessions.authenticate(&cookies, &ctx).await {
            Ok(found) => found,
            Err(e) => {
                let outcome = match &e {
                    session::SessionError::Rejected { outcome } => *outcome,
                    session::SessionError::Unavailable { .. }
                    | session::SessionError::Throttled { .. }
                    | session::SessionError::Busy => CacheOutcome::Miss,
                };
                record.cache = Some(outcome);
                self.metrics.session_lookup(outcome.as_str());
                return Err(e.into());
            }
        };
        record.cache = Some(outcome);
        self.metrics.session_lookup(outcome.as_str());
        record.identity.clone_from(&identity.name);
        if identity.has_any_role(&route.roles) {
            Ok(User { identity, cookies })
        } else {
            Err(Rejection::MissingRole)
        }
    }

    /// The signed-in user's own token on inject routes in per-user mode;
    /// `None` elsewhere.
    pub(super) async fn user_token(
        &self,
        route: &Route,
        user: Option<&User>,
        ex: &Exchange<'_>,
        host: &str,
    ) -> Result<Option<Arc<ActiveToken>>, Rejection> {
        let (Some(tokens), Access::Inject, Some(user)) = (&self.user_tokens, route.access, user)
        else {
            return Ok(None);
        };
        let ctx = IntrospectionContext {
            peer: ex.peer.ip().to_canonical(),
            host,
            upstream_host: self.upstream_host(host),
            request_id: ex.request_id,
        };
        let request = GrantRequest {
            identity: &user.identity,
            cookies: &user.cookies,
            ctx: &ctx,
            granting: self.token.as_ref(),
        };
        match tokens.token_for(&request).await {
            Ok(token) => Ok(Some(token)),
            Err(e) => {
                if let GrantError::Unavailable { reason } = &e {
                    tracing::warn!(request_id = ex.request_id.to_str().unwrap_or(""), %reason, "per-user token grant unavailable");
                }
                Err(e.into())
            }
        }
    }
}
