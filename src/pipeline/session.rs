//! Session authentication (pipeline step 9): is this cookie a live PSU session?
//!
//! PSU's cookie is encrypted with ASP.NET Data Protection, so only PSU can
//! answer; the gateway asks it (introspection) and caches the verdict under a
//! SHA-256 of the cookies, never the cookies themselves. A miss holds
//! quick_cache's placeholder for its key while it asks PSU, so concurrent
//! requests with the same cookies wait for that one introspection instead
//! of stampeding PSU, and share its answer, failures included.
//!
//! A miss is PSU work, so it is admitted first: the client address pays
//! from its `session.miss_rate` budget (hits never do), and at most
//! `session.max_inflight_introspections` introspections run at once.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, COOKIE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use prometheus_client::metrics::counter::Counter;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use tokio::sync::Semaphore;

use crate::config::{CookieShape, Session};
use crate::pipeline::metrics::Metrics;
use crate::rate::ClientLimiter;
use crate::rules::cookies::SessionCookies;
use crate::rules::headers::{set_forwarding, ForwardedFor};
use crate::transport::upstream::{Body, UpstreamClient};

/// A client may spend twice its `miss_rate` in one burst (a dashboard
/// opening several tabs at sign-in).
const MISS_BURST: std::num::NonZeroU32 = std::num::NonZeroU32::new(2).unwrap();
/// The largest introspection body the gateway reads.
const MAX_INTROSPECTION_BODY: usize = 64 * 1024;
/// How often a miss also drops every expired verdict. quick_cache frees
/// room only when it needs some, and from its cold entries first, so an
/// expired verdict that had been hot would otherwise keep its place.
const DROP_EXPIRED_EVERY: Duration = Duration::from_secs(10);

/// Who the session belongs to, as introspection reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub name: Option<String>,
    /// Lower-case, for case-insensitive role checks.
    pub roles: Vec<String>,
    /// The same roles as PSU spelled them, for a delegated token grant.
    pub role_names: Vec<String>,
    /// The per-user token cache's key for this (identity, role set),
    /// computed once per session check rather than once per request.
    pub key: [u8; 32],
}

impl Identity {
    /// An identity as introspection reported it, `role_names` as PSU
    /// spelled them.
    pub fn new(name: Option<String>, role_names: Vec<String>) -> Self {
        let roles: Vec<String> = role_names.iter().map(|r| r.to_lowercase()).collect();
        let key = identity_key(name.as_deref().unwrap_or(""), &roles);
        Self {
            name,
            roles,
            role_names,
            key,
        }
    }

    /// Whether the user holds at least one of `required` (lower-case).
    pub fn has_any_role(&self, required: &[String]) -> bool {
        required.is_empty() || required.iter().any(|r| self.roles.contains(r))
    }
}

#[derive(Debug, Clone)]
enum Verdict {
    Valid(Arc<Identity>),
    Invalid,
    /// PSU gave no verdict. Handed to the requests that waited for this
    /// introspection, then removed: never served to a later request.
    Unavailable(Arc<str>),
}

/// A cache entry: the verdict and when it stops counting.
#[derive(Debug, Clone)]
struct Entry {
    verdict: Verdict,
    until: Instant,
}

/// How the cache took part, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    Negative,
    None,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Negative => "negative",
            CacheOutcome::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("PSU does not accept this session (signed out, expired or forged); sign in again")]
    Rejected { outcome: CacheOutcome },
    /// `reason` is for the log; clients only see the generic message.
    #[error("PSU could not confirm the session right now; try again shortly")]
    Unavailable { reason: String },
    /// The client address spent its `session.miss_rate` budget.
    #[error("this client presented more new session cookies than session.miss_rate allows; try again after Retry-After seconds")]
    Throttled { retry_after: Duration },
    /// `session.max_inflight_introspections` were running for the whole
    /// `introspect_timeout`.
    #[error("PSU is already checking as many sessions as session.max_inflight_introspections allows; try again shortly")]
    Busy,
}

/// Counts verdicts pushed out while still fresh because the cache is full.
/// Expired entries stay until pushed out too; those are not counted.
#[derive(Clone)]
struct CountEvictions(Counter);

impl Lifecycle<[u8; 32], Entry> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _: &mut (), _: [u8; 32], entry: Entry) {
        if Instant::now() < entry.until {
            self.0.inc();
        }
    }
}

/// A verdict weighs 1 against `cache_max_entries`. A failure weighs 0: it
/// is in the cache only between handing it to the waiters and removing
/// it, and must not push a live session out on its way.
#[derive(Clone)]
struct VerdictWeight;

impl Weighter<[u8; 32], Entry> for VerdictWeight {
    fn weight(&self, _: &[u8; 32], entry: &Entry) -> u64 {
        match entry.verdict {
            Verdict::Valid(_) | Verdict::Invalid => 1,
            Verdict::Unavailable(_) => 0,
        }
    }
}

type VerdictCache = Cache<[u8; 32], Entry, VerdictWeight, DefaultHashBuilder, CountEvictions>;

/// What the introspection request says about the original request.
pub struct IntrospectionContext<'a> {
    pub peer: IpAddr,
    /// The request's validated Host, for X-Forwarded-Host.
    pub host: &'a str,
    /// The Host sent to PSU (`upstream.preserve_host`).
    pub upstream_host: &'a str,
    pub request_id: &'a HeaderValue,
}

pub struct SessionAuth {
    cache: VerdictCache,
    /// When expired verdicts were last dropped.
    dropped_expired: Mutex<Instant>,
    config: Session,
    upstream: UpstreamClient,
    metrics: Arc<Metrics>,
    /// Each client address's `miss_rate` budget.
    misses: ClientLimiter,
    /// `max_inflight_introspections` places, shared with per-user grants.
    introspections: Arc<Semaphore>,
}

impl SessionAuth {
    pub fn new(config: Session, upstream: UpstreamClient, metrics: Arc<Metrics>) -> Self {
        let capacity = usize::try_from(config.cache_max_entries).unwrap_or(usize::MAX);
        let cache = Cache::with(
            capacity,
            config.cache_max_entries,
            VerdictWeight,
            DefaultHashBuilder::default(),
            CountEvictions(metrics.session_cache_evictions.clone()),
        );
        let burst = config.miss_rate.count.saturating_mul(MISS_BURST);
        Self {
            cache,
            dropped_expired: Mutex::new(Instant::now()),
            misses: ClientLimiter::new(config.miss_rate, burst),
            introspections: Arc::new(Semaphore::new(config.max_inflight_introspections)),
            config,
            upstream,
            metrics,
        }
    }

    pub fn cookie_names(&self) -> &[String] {
        &self.config.cookies
    }

    /// The places introspection and grant calls share.
    pub fn psu_calls(&self) -> &Arc<Semaphore> {
        &self.introspections
    }

    pub fn cookie_shape(&self) -> CookieShape {
        self.config.cookie_shape
    }

    /// A valid session's identity, or why there is none.
    pub async fn authenticate(
        &self,
        cookies: &SessionCookies,
        ctx: &IntrospectionContext<'_>,
    ) -> Result<(Arc<Identity>, CacheOutcome), SessionError> {
        let (verdict, outcome) = self.verdict(cookies, ctx).await?;
        match verdict {
            Verdict::Valid(identity) => Ok((identity, outcome)),
            Verdict::Invalid => Err(SessionError::Rejected {
                outcome: match outcome {
                    CacheOutcome::Hit => CacheOutcome::Negative,
                    other => other,
                },
            }),
            Verdict::Unavailable(reason) => {
                tracing::warn!(request_id = ctx.request_id.to_str().unwrap_or(""), %reason, "session introspection unavailable");
                Err(SessionError::Unavailable {
                    reason: reason.to_string(),
                })
            }
        }
    }

    /// The verdict on these cookies: cached, the answer of an introspection
    /// this request waited for (a failure is shared only with those), or
    /// PSU's answer now; an error when the miss is not admitted.
    async fn verdict(
        &self,
        cookies: &SessionCookies,
        ctx: &IntrospectionContext<'_>,
    ) -> Result<(Verdict, CacheOutcome), SessionError> {
        let key = cookies.cache_key();
        let arrived = Instant::now();
        loop {
            match self.cache.get_value_or_guard_async(&key).await {
                Ok(entry) if entry.usable(arrived) => {
                    return Ok((entry.verdict, CacheOutcome::Hit))
                }
                Ok(_) => {
                    self.cache.remove_if(&key, |entry| !entry.usable(arrived));
                }
                Err(placeholder) => {
                    // Refused here, the placeholder is dropped unfilled:
                    // a request waiting on the same cookies takes its own
                    // turn, paying from its own client's budget.
                    self.misses
                        .check(ctx.peer)
                        .map_err(|t| SessionError::Throttled {
                            retry_after: t.retry_after,
                        })?;
                    let timeout = self.config.introspect_timeout;
                    let Ok(Ok(_place)) =
                        tokio::time::timeout(timeout, self.introspections.acquire()).await
                    else {
                        return Err(SessionError::Busy);
                    };
                    self.drop_expired_now_and_then();
                    // Boxed: the introspection's state is three times the
                    // rest of this future's, and only a miss needs it;
                    // every request's future is moved whole on spawn.
                    let verdict = Box::pin(self.introspect(cookies, ctx)).await;
                    let until = Instant::now() + self.ttl(&verdict);
                    let _ = placeholder.insert(Entry {
                        verdict: verdict.clone(),
                        until,
                    });
                    if matches!(verdict, Verdict::Unavailable(_)) {
                        self.cache
                            .remove_if(&key, |e| matches!(e.verdict, Verdict::Unavailable(_)));
                    }
                    return Ok((verdict, CacheOutcome::Miss));
                }
            }
        }
    }

    /// On a miss, at most every [`DROP_EXPIRED_EVERY`]: a pass over the
    /// cache, far cheaper than the introspection the miss is about to make.
    fn drop_expired_now_and_then(&self) {
        let Ok(mut last) = self.dropped_expired.try_lock() else {
            return;
        };
        if last.elapsed() >= DROP_EXPIRED_EVERY {
            *last = Instant::now();
            drop(last);
            self.drop_expired();
        }
    }

    fn drop_expired(&self) {
        let now = Instant::now();
        self.cache.retain(|_, entry| now < entry.until);
    }

    fn ttl(&self, verdict: &Verdict) -> Duration {
        match verdict {
            Verdict::Valid(_) => self.config.cache_ttl,
            Verdict::Invalid => self.config.negative_cache_ttl,
            Verdict::Unavailable(_) => Duration::ZERO,
        }
    }

    async fn introspect(
        &self,
        cookies: &SessionCookies,
        ctx: &IntrospectionContext<'_>,
    ) -> Verdict {
        let started = Instant::now();
        let verdict = self
            .ask_psu(cookies, ctx)
            .await
            .unwrap_or_else(|Unavailable(reason)| Verdict::Unavailable(reason.into()));
        let outcome = match &verdict {
            Verdict::Valid(_) => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unavailable(_) => "failed",
        };
        self.metrics.introspection(outcome, started.elapsed());
        verdict
    }

    async fn ask_psu(
        &self,
        cookies: &SessionCookies,
        ctx: &IntrospectionContext<'_>,
    ) -> Result<Verdict, Unavailable> {
        let request = self.introspection_request(cookies, ctx)?;
        let response = self
            .upstream
            .send(request, self.config.introspect_timeout)
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Ok(Verdict::Invalid);
        }
        if !status.is_success() {
            return Err(Unavailable(format!(
                "the introspection endpoint answered {status}"
            )));
        }
        if self.config.identity_pointer.is_none() && self.config.roles_pointer.is_none() {
            return Ok(Verdict::Valid(Arc::new(Identity::default())));
        }
        let body = tokio::time::timeout(
            self.config.introspect_timeout,
            Limited::new(response.into_body(), MAX_INTROSPECTION_BODY).collect(),
        )
        .await
        .map_err(|_| Unavailable("the introspection body did not arrive in time".to_owned()))?
        .map_err(|_| Unavailable("the introspection body could not be read".to_owned()))?
        .to_bytes();
        identity_from_body(&body, &self.config).map(|identity| Verdict::Valid(Arc::new(identity)))
    }

    fn introspection_request(
        &self,
        cookies: &SessionCookies,
        ctx: &IntrospectionContext<'_>,
    ) -> Result<Request<Body>, Unavailable> {
        let path = self.config.introspect_path.path();
        let uri = self
            .upstream
            .uri(path, self.config.introspect_path.query())
            .ok_or_else(|| Unavailable("introspect_path is not a valid URI".to_owned()))?;
        let mut cookie = HeaderValue::from_str(&cookies.cookie_header())
            .map_err(|_| Unavailable("cookie not representable".to_owned()))?;
        cookie.set_sensitive(true);
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .map_err(|e| Unavailable(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(COOKIE, cookie);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Ok(host) = HeaderValue::from_str(ctx.upstream_host) {
            headers.insert(HOST, host);
        }
        set_forwarding(
            headers,
            &ForwardedFor {
                peer: ctx.peer,
                host: ctx.host,
                request_id: ctx.request_id,
                earlier: None,
            },
        );
        Ok(request)
    }
}

impl Entry {
    /// Whether a request that arrived at `arrived` may use this entry: a
    /// verdict that had not expired when it arrived; a failure only if it
    /// happened after the request arrived, so it was (or raced) the
    /// introspection the request waited for.
    fn usable(&self, arrived: Instant) -> bool {
        match self.verdict {
            Verdict::Valid(_) | Verdict::Invalid => arrived < self.until,
            Verdict::Unavailable(_) => self.until >= arrived,
        }
    }
}

/// Why introspection gave no verdict. Never cached: the next request retries.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unavailable(String);

/// Reads identity and roles through the configured JSON pointers. A body
/// that does not parse counts as unavailable, not as "no roles": a broken
/// endpoint must not quietly demote or promote anyone.
fn identity_from_body(body: &[u8], config: &Session) -> Result<Identity, Unavailable> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| Unavailable("the introspection body is not JSON".to_owned()))?;
    let name = config
        .identity_pointer
        .as_deref()
        .and_then(|p| json.pointer(p))
        .and_then(|v| v.as_str().map(str::to_owned));
    let roles = match config.roles_pointer.as_deref().map(|p| json.pointer(p)) {
        None | Some(None) | Some(Some(serde_json::Value::Null)) => Vec::new(),
        Some(Some(serde_json::Value::String(role))) => vec![role.clone()],
        Some(Some(serde_json::Value::Array(items))) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Unavailable("roles must be strings".to_owned()))?,
        Some(Some(_)) => {
            return Err(Unavailable(
                "roles must be a string or an array of strings".to_owned(),
            ))
        }
    };
    Ok(Identity::new(name, roles))
}

/// SHA-256 over the length-prefixed, lower-cased name and sorted roles: no
/// identity and role list spells another's.
pub fn identity_key(name: &str, roles: &[String]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut roles: Vec<String> = roles.iter().map(|r| r.to_lowercase()).collect();
    roles.sort();
    let mut hasher = Sha256::new();
    hasher.update(b"psu-gateway per-user token v1");
    for part in std::iter::once(name.to_lowercase()).chain(roles) {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests;
