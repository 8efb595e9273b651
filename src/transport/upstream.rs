//! The pooled client towards PSU (pipeline step 11).
//!
//! One hyper-util client per serving worker thread (see `workers.rs`):
//! keep-alive connections are reused across requests and introspections, so
//! the hot path never pays a TCP or TLS handshake towards PSU, and a request
//! only borrows connections driven by its own thread.
//!
//! `upstream.max_inflight` caps the requests waiting for PSU's answer at
//! once (sent -> response head, the span `upstream_timeout` bounds; a body
//! still streaming or a WebSocket tunnel holds no place): beyond it a
//! request queues up to `upstream.queue_timeout`. Each pool keeps up to
//! `max(pool_max_idle, max_inflight)` idle connections: hyper-util closes a
//! connection that comes back to a full idle list, so a cap below the
//! concurrency turned a steady load into a new connection per request. The
//! in-flight cap bounds how many connections a load can keep busy, so
//! keeping that many idle costs no more connections than the load opened,
//! and `pool_idle_timeout` closes them once the load is gone.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_rustls::builderstates::WantsProtocols1;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use rustls::crypto::ring;
use rustls::RootCertStore;
use tokio::sync::{Notify, Semaphore};

use crate::config::{Upstream, UpstreamProtocol};
use crate::transport::pinned::{ClientPin, PinMetrics, Pinned};

/// Errors a body can end with, from either side.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of everything the gateway sends and returns.
pub type Body = BoxBody<Bytes, BoxError>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the upstream could not be reached")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream connection failed")]
    Protocol(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream switched protocols without being asked to")]
    UnexpectedSwitch,
    /// `upstream.max_inflight` requests were waiting for PSU for the whole
    /// `queue_timeout`.
    #[error("PSU already has upstream.max_inflight requests in flight and none finished within {0:?}; try again shortly")]
    Busy(Duration),
    /// `upstream.max_pinned` client connections already hold their own
    /// upstream connection.
    #[error("upstream.max_pinned connections are already pinned for Windows authentication; try again shortly")]
    PinLimit,
    #[error("a pinned upstream connection could not be opened")]
    PinConnect(#[source] BoxError),
    #[error("the pinned upstream connection failed")]
    Pinned(#[source] hyper::Error),
    /// PSU closed the connection this client connection was pinned to; the
    /// client must connect (and authenticate) again.
    #[error(
        "PSU closed the connection this client connection was authenticated on; connect again"
    )]
    PinEnded,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamBuildError {
    #[error("cannot build the upstream TLS config: {0}")]
    Tls(#[from] rustls::Error),
    #[error("upstream.server_name is not a valid name")]
    ServerName,
}

type Pool = Client<Counted<HttpsConnector<HttpConnector>>, Body>;

/// A connector that counts the connections it is asked to open.
#[derive(Clone)]
struct Counted<C> {
    inner: C,
    opened: Counter,
}

impl<C: tower_service::Service<Uri>> tower_service::Service<Uri> for Counted<C> {
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        self.opened.inc();
        self.inner.call(uri)
    }
}

/// What the upstream client counts.
#[derive(Clone, Default)]
pub struct UpstreamMetrics {
    /// Connections the pools open.
    pub opened: Counter,
    pub pinned: PinMetrics,
}

#[derive(Clone)]
pub struct UpstreamClient {
    /// One per worker, each keeping up to `max(pool_max_idle, max_inflight)`
    /// idle connections (see the module docs).
    pools: Arc<[Pool]>,
    /// `upstream.max_inflight` places, shared by every worker's pool.
    inflight: Arc<Semaphore>,
    queue_timeout: Duration,
    scheme: Scheme,
    authority: http::uri::Authority,
    /// Opens pinned connections: HTTP/1.1 whatever `upstream.protocol`
    /// says, as HTTP/2 cannot carry connection-bound authentication.
    pin_connector: HttpsConnector<HttpConnector>,
    /// `upstream.max_pinned` places.
    pin_places: Arc<Semaphore>,
    pin_metrics: PinMetrics,
}

impl UpstreamClient {
    pub fn new(config: &Upstream, metrics: UpstreamMetrics) -> Result<Self, UpstreamBuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let builder = connector_builder(config)?;
        let workers = crate::transport::workers::default_count();
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle.max(config.max_inflight))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let pin_connector = connector_builder(config)?
            .enable_http1()
            .wrap_connector(http.clone());
        let connector = match config.protocol {
            UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
            UpstreamProtocol::H2 => {
                client.http2_only(true);
                builder.enable_http2().wrap_connector(http)
            }
        };
        let connector = Counted {
            inner: connector,
            opened: metrics.opened,
        };
        Ok(Self {
            pools: (0..workers)
                .map(|_| client.build(connector.clone()))
                .collect(),
            inflight: Arc::new(Semaphore::new(config.max_inflight)),
            queue_timeout: config.queue_timeout,
            scheme: config.scheme.clone(),
            authority: config.authority.clone(),
            pin_connector,
            pin_places: metrics.pinned.places(config.max_pinned),
            pin_metrics: metrics.pinned,
        })
    }

    /// The upstream URI for a normalized path and the client's raw query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Option<Uri> {
        let pq = match query {
            Some(q) => PathAndQuery::try_from(format!("{path}?{q}")).ok()?,
            None => PathAndQuery::try_from(path).ok()?,
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .ok()
    }

    pub fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    /// Sends a request once one of `max_inflight` places is free (waiting
    /// up to `queue_timeout`); `timeout` bounds the wait for the response
    /// head, which frees the place.
    pub async fn send(
        &self,
        request: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let _place = self.inflight_place().await?;
        let pool = &self.pools[crate::transport::workers::current() % self.pools.len()];
        match tokio::time::timeout(timeout, pool.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout(timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect(e)),
            Ok(Err(e)) => Err(UpstreamError::Protocol(e)),
        }
    }
}

impl UpstreamClient {
    /// One of `max_inflight` places, waiting up to `queue_timeout`.
    async fn inflight_place(&self) -> Result<tokio::sync::SemaphorePermit<'_>, UpstreamError> {
        match self.inflight.try_acquire() {
            Ok(place) => Ok(place),
            Err(_) => tokio::time::timeout(self.queue_timeout, self.inflight.acquire())
                .await
                .map_err(|_| UpstreamError::Busy(self.queue_timeout))?
                .map_err(|_| UpstreamError::Busy(self.queue_timeout)),
        }
    }

    /// Sends a request over the client connection's own upstream
    /// connection (see `pinned.rs`), opening it on first use; the same
    /// in-flight cap and `timeout` as [`Self::send`] apply, and opening
    /// takes one of `max_pinned` places or fails at once.
    pub async fn send_pinned(
        &self,
        pin: &ClientPin,
        request: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let _place = self.inflight_place().await?;
        let open = |closed| self.open_pinned(closed);
        tokio::time::timeout(timeout, pin.send(request, open))
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))?
    }

    async fn open_pinned(&self, closed: Arc<Notify>) -> Result<Pinned, UpstreamError> {
        let place = self
            .pin_places
            .clone()
            .try_acquire_owned()
            .map_err(|_| UpstreamError::PinLimit)?;
        let base = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| UpstreamError::PinConnect(e.into()))?;
        let mut connector = self.pin_connector.clone();
        let io = tower_service::Service::call(&mut connector, base)
            .await
            .map_err(UpstreamError::PinConnect)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| UpstreamError::PinConnect(e.into()))?;
        Ok(Pinned::start(
            sender,
            connection,
            closed,
            self.pin_metrics.clone(),
            place,
        ))
    }
}

/// TLS (or plain HTTP) towards the upstream, with `upstream.server_name`.
fn connector_builder(
    config: &Upstream,
) -> Result<hyper_rustls::HttpsConnectorBuilder<WantsProtocols1>, UpstreamBuildError> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(config)?)
        .https_or_http();
    Ok(match &config.server_name {
        Some(name) => {
            let name = rustls_pki_types::ServerName::try_from(name.clone())
                .map_err(|_| UpstreamBuildError::ServerName)?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    })
}

/// System roots plus `upstream.ca`: an operator's private CA adds to the
/// trust store rather than replacing it.
pub(crate) fn client_tls(config: &Upstream) -> Result<rustls::ClientConfig, UpstreamBuildError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(config.ca.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tls)
}
