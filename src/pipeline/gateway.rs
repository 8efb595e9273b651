//! The request pipeline, in behaviour.md's order. `handle` logs and turns
//! rejections into problem responses around `pipeline`, a straight run of
//! steps that each either pass the request on or refuse it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, CONTENT_LENGTH, COOKIE, SEC_WEBSOCKET_KEY, TRANSFER_ENCODING};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::config::{Config, UpstreamProtocol};
use crate::pipeline::credential::TokenStore;
use crate::pipeline::grants::UserTokens;
use crate::pipeline::metrics::{Metrics, RouteCounters};
use crate::pipeline::problem::{problem_response, Rejection};
use crate::pipeline::session::SessionAuth;
use crate::rate::ClientLimiter;
use crate::rules::cookies::join_cookie_fields;
use crate::rules::headers;
use crate::rules::path::{normalize_path, route_key};
use crate::rules::routes::{Access, Route};
use crate::rules::target::{check_target, validated_host};
use crate::transport::body::{BodyFault, FaultFlag};
use crate::transport::pinned::Http11Required;
use crate::transport::slot::ConnectionSlot;
use crate::transport::upstream::{
    Body, UpstreamBuildError, UpstreamClient, UpstreamError, UpstreamMetrics,
};
use crate::{rules::csrf, transport::tunnel};

use super::record::Record;

mod access;
mod forward;
mod pinning;

use forward::rewrite_response;
use pinning::Carrier;

/// Everything a request needs: config, the upstream pool, the session
/// cache, the token. One `Gateway` per config generation: a reload builds a
/// new one and requests already running finish on the old.
pub struct Gateway {
    config: Config,
    upstream: UpstreamClient,
    sessions: Option<SessionAuth>,
    token: Option<TokenStore>,
    metrics: Arc<Metrics>,
    counters: RouteCounters,
    /// Each rate-limited route's per-client budget, by route name.
    route_limits: HashMap<String, ClientLimiter>,
    /// Per-user mode: each user's own token.
    user_tokens: Option<UserTokens>,
}

/// Facts about one request that every step may need.
pub(super) struct Exchange<'a> {
    pub(super) peer: SocketAddr,
    /// The client (the TCP peer, or the PROXY header's source) is in
    /// `forwarding.trusted_proxies`.
    trusted: bool,
    pub(super) request_id: &'a HeaderValue,
}

impl Gateway {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, UpstreamBuildError> {
        let upstream = UpstreamClient::new(
            &config.upstream,
            UpstreamMetrics {
                opened: metrics.upstream_connections_opened.clone(),
                pinned: metrics.pinned.clone(),
            },
        )?;
        let sessions = config
            .session
            .clone()
            .map(|s| SessionAuth::new(s, upstream.clone(), metrics.clone()));
        let token = config
            .credential
            .as_ref()
            .and_then(|c| c.token.as_ref().map(|t| TokenStore::new(c, t)));
        let user_tokens = match (&config.credential, &config.session, &sessions) {
            (Some(credential), Some(session), Some(auth)) => credential.per_user().map(|p| {
                UserTokens::new(
                    credential.clone(),
                    p.clone(),
                    upstream.clone(),
                    auth.psu_calls().clone(),
                    session,
                    metrics.clone(),
                )
            }),
            _ => None,
        };
        if let Some(token) = &token {
            metrics.token_loaded(token.current().loaded_at);
        }
        let counters = metrics.route_counters(&config.routes);
        let route_limits = config
            .routes
            .routes()
            .iter()
            .filter_map(|route| {
                let rate = route.rate_limit?;
                Some((route.name.clone(), ClientLimiter::new(rate, rate.count)))
            })
            .collect();
        Ok(Self {
            config,
            upstream,
            sessions,
            token,
            metrics,
            counters,
            route_limits,
            user_tokens,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn upstream(&self) -> &UpstreamClient {
        &self.upstream
    }

    /// The operator's token, when the config names one: injected in shared
    /// mode, sent only on `grant_path` for a delegated per-user grant.
    pub fn token(&self) -> Option<&TokenStore> {
        self.token.as_ref()
    }

    /// Whether inject routes carry each user's own token.
    pub fn per_user(&self) -> bool {
        self.user_tokens.is_some()
    }

    /// Serves one request; never fails (rejections become problem+json).
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        let trusted = self.is_trusted(peer);
        let request_id = headers::request_id(request.headers(), trusted);
        let method = request.method().clone();
        let version = request.version();
        let close_on_error = version < Version::HTTP_2 && has_body_framing(request.headers());
        let bytes_in = declared_length(request.headers());
        let mut record = Record::default();
        let ex = Exchange {
            peer,
            trusted,
            request_id: &request_id,
        };
        let mut response = match self.pipeline(request, &ex, &mut record).await {
            Ok(response) => response,
            Err(rejection) => {
                self.metrics.rejection(rejection.reason());
                tracing::debug!(request_id = %request_id.to_str().unwrap_or(""), reason = rejection.reason(), error = %rejection, "rejected");
                let close = close_on_error
                    || matches!(
                        rejection,
                        Rejection::Header(_) | Rejection::Upstream(UpstreamError::PinEnded)
                    );
                let mut response = problem_response(&rejection, &request_id, close);
                if let Rejection::Http11Required = rejection {
                    response.extensions_mut().insert(Http11Required);
                }
                response
            }
        };
        if let Some(hsts) = &self.config.tls.hsts {
            response
                .headers_mut()
                .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        record.log_access(&method, &ex, bytes_in, &response, started);
        self.counters.answered(
            record.route.as_deref(),
            response.status(),
            record.injected(),
        );
        if let Some(took) = record.upstream_time {
            self.metrics.upstream_seconds.observe(took.as_secs_f64());
        }
        if let Some(token) = record.token.take() {
            let credential = if self.per_user() {
                "per-user"
            } else {
                "shared"
            };
            record.log_audit(&method, &ex, &response, &token.fingerprint, credential);
        }
        response
    }

    async fn pipeline(
        &self,
        mut request: Request<Incoming>,
        ex: &Exchange<'_>,
        record: &mut Record,
    ) -> Result<Response<Body>, Rejection> {
        // 3. Only origin-form targets: one opinion about where the request goes.
        check_target(request.method(), request.uri(), request.version())?;
        // 4. One Host, and one this gateway serves.
        let host = validated_host(
            request.uri(),
            request.headers(),
            request.version(),
            &self.config.listen.hostnames,
        )?;
        // 5. The path that is matched is the path that is forwarded.
        let path = normalize_path(request.uri().path())?;
        record.path = Some(path.clone());
        let key = route_key(&path)?;
        // 6. Header shapes that let two parsers disagree are refused.
        let credential_header = self.config.credential.as_ref().map(|c| &c.header);
        headers::check_sanity(request.headers(), credential_header)?;
        self.check_declared_length(request.headers())?;
        let cookie = join_cookie_fields(request.headers().get_all(COOKIE));
        let session = self.session_cookies(request.headers(), &cookie)?;
        let cookie = cookie.ok().flatten();
        // 7. The allowlist, and the route's own rate per client (a sign-in
        // route's against password guessing).
        let route = self.route(&key, &request, record)?;
        self.check_route_rate(route, ex)?;
        let mut user = None;
        if route.access.needs_session() {
            // 8. A session used cross-site is a forged request.
            csrf::check(
                request.headers(),
                &host,
                self.config.csrf.allowed_origins.as_deref(),
            )?;
            // 9. The session must be live in PSU, with a role when required.
            user = Some(self.authenticate(route, session, ex, &host, record).await?);
        }
        // 9b. Per-user mode: the user's own token for an inject route.
        let own_token = self.user_token(route, user.as_ref(), ex, &host).await?;
        // 9c. NTLM / Negotiate: this client connection's own upstream
        // connection, or the pool.
        let carrier = self.carrier(&mut request, route)?;
        // A WebSocket becomes a tunnel only on public and session routes,
        // towards an HTTP/1.1 upstream, and only once PSU answered 101.
        let websocket = tunnel::wants_websocket(request.version(), request.headers())
            && matches!(route.access, Access::Public | Access::Session)
            && (self.config.upstream.protocol == UpstreamProtocol::Http1
                || matches!(carrier, Carrier::Pin(_)));
        // The connection's slot travels with the tunnel, so tunnels count
        // against max_connections for as long as they live.
        let client_upgrade = websocket.then(|| tunnel::Client {
            upgrade: hyper::upgrade::on(&mut request),
            key: request.headers().get(SEC_WEBSOCKET_KEY).cloned(),
            slot: request.extensions().get::<ConnectionSlot>().cloned(),
        });
        // 10. Strip, then set.
        let fault = FaultFlag::default();
        let (mut upstream_request, token) =
            self.rewrite(request, route, ex, &path, &host, cookie, own_token, &fault)?;
        record.token = token;
        if websocket {
            tunnel::set_upgrade_headers(upstream_request.headers_mut());
        }
        // 11. Forward, streaming the body under its size and gap limits.
        let sent = Instant::now();
        let timeout = self.config.limits.upstream_timeout;
        let response = match &carrier {
            Carrier::Pin(pin) => {
                record.pinned = true;
                let sent = self.upstream.send_pinned(pin, upstream_request, timeout);
                sent.await
            }
            Carrier::Pool | Carrier::PoolUntilChallenged(_) | Carrier::PoolUntilChallengedOnH2 => {
                self.upstream.send(upstream_request, timeout).await
            }
        };
        record.upstream_time = Some(sent.elapsed());
        let response = response.map_err(|e| match fault.get() {
            Some(BodyFault::TooLarge) => Rejection::BodyTooLarge,
            Some(BodyFault::Stalled) => Rejection::BodyStalled,
            None => e.into(),
        })?;
        carrier.after_answer(&response)?;
        // 12. Response rewrite.
        match client_upgrade {
            Some(client) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                // Only a real WebSocket handshake for this client's key: any
                // other 101 would hand the client a raw connection to PSU.
                if !tunnel::is_websocket_accept(response.headers(), client.key.as_ref()) {
                    return Err(UpstreamError::UnexpectedSwitch.into());
                }
                let idle = self.config.limits.tunnel_idle_timeout;
                Ok(tunnel::open(response, client, idle, ex.request_id))
            }
            // A 101 nobody asked for would hand PSU the raw connection.
            _ if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                Err(UpstreamError::UnexpectedSwitch.into())
            }
            _ => Ok(rewrite_response(response, route, ex.request_id)),
        }
    }

    /// With `listen.proxy_protocol`, `peer` is the client the balancer
    /// reported, so a client's own X-Forwarded-For is kept only when that
    /// client is itself a trusted proxy.
    fn is_trusted(&self, peer: SocketAddr) -> bool {
        self.config.forwarding.trusts(peer.ip())
    }

    fn check_declared_length(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        match declared_length(headers) {
            Some(length) if length > self.config.limits.max_body_bytes => {
                Err(Rejection::BodyTooLarge)
            }
            _ => Ok(()),
        }
    }

    fn route(
        &self,
        key: &str,
        request: &Request<Incoming>,
        record: &mut Record,
    ) -> Result<&Route, Rejection> {
        let route = self
            .config
            .routes
            .find(key, request.method())
            .ok_or(Rejection::NoRoute)?;
        record.route = Some(route.name.clone());
        record.access = Some(route.access);
        match route.access {
            Access::Deny => Err(Rejection::Denied),
            Access::Public | Access::Session | Access::Inject => Ok(route),
        }
    }
}

pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn has_body_framing(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers.get_all(CONTENT_LENGTH).iter().any(|v| v != "0")
}
