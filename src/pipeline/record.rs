//! What the access and audit log lines report about one request, and the
//! two lines themselves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Response;

use super::credential::ActiveToken;
use super::gateway::{declared_length, Exchange};
use super::session::CacheOutcome;
use crate::rules::routes::Access;
use crate::transport::upstream::Body;

/// The access log's target (`RUST_LOG=access=off` turns it off).
pub const ACCESS: &str = "access";
/// The audit trail's target.
pub const AUDIT: &str = "audit";

/// What the access and audit lines report about one request; the pipeline
/// fills it in step by step.
#[derive(Debug, Default)]
pub(super) struct Record {
    pub(super) path: Option<String>,
    pub(super) route: Option<String>,
    pub(super) access: Option<Access>,
    pub(super) identity: Option<String>,
    pub(super) cache: Option<CacheOutcome>,
    /// The token this request carried upstream, for the audit line.
    pub(super) token: Option<Arc<ActiveToken>>,
    pub(super) upstream_time: Option<Duration>,
    /// Sent over the client connection's own upstream connection.
    pub(super) pinned: bool,
}

impl Record {
    /// The request was sent on with the app token. Inject routes need a
    /// `[credential]`, so this is exactly "the route injects and every
    /// check passed".
    pub(super) fn injected(&self) -> bool {
        self.token.is_some()
    }

    /// One line per request on the `access` target.
    pub(super) fn log_access(
        &self,
        method: &http::Method,
        ex: &Exchange<'_>,
        bytes_in: Option<u64>,
        response: &Response<Body>,
        started: Instant,
    ) {
        // Declared sizes: the bodies stream, so the log line is written when
        // the response head goes out.
        let bytes_out = declared_length(response.headers());
        tracing::info!(
            target: ACCESS,
            request_id = ex.request_id.to_str().unwrap_or(""),
            peer = %ex.peer,
            method = %method,
            path = self.path.as_deref().unwrap_or("-"),
            route = self.route.as_deref().unwrap_or("-"),
            access = self.access.map_or("-", Access::as_str),
            identity = self.identity.as_deref().unwrap_or("-"),
            status = response.status().as_u16(),
            bytes_in,
            bytes_out,
            total_ms = started.elapsed().as_secs_f64() * 1000.0,
            upstream_ms = self.upstream_time.map(|d| d.as_secs_f64() * 1000.0),
            cache = self.cache.unwrap_or(CacheOutcome::None).as_str(),
            injected = self.injected(),
            pinned = self.pinned,
        );
    }

    /// Every request the token went out on, on its own `audit` target.
    pub(super) fn log_audit(
        &self,
        method: &http::Method,
        ex: &Exchange<'_>,
        response: &Response<Body>,
        token_fingerprint: &str,
        credential: &'static str,
    ) {
        tracing::info!(
            target: AUDIT,
            request_id = ex.request_id.to_str().unwrap_or(""),
            identity = self.identity.as_deref().unwrap_or("-"),
            route = self.route.as_deref().unwrap_or("-"),
            method = %method,
            path = self.path.as_deref().unwrap_or("-"),
            peer = %ex.peer,
            upstream_status = response.status().as_u16(),
            token = token_fingerprint,
            credential,
        );
    }
}
