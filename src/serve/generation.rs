//! What one config builds for serving, and the one in use.
//!
//! A [`Generation`] is everything built from one config: the request
//! pipeline ([`Gateway`]), the TLS acceptor, the HTTP settings. The
//! listener reads [`Generations::current`] once per connection (timeouts,
//! TLS) and once per request (the pipeline); whoever replaces it (reload,
//! certificate rotation) swaps one pointer, and requests already running
//! keep the `Arc` they started with.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{tls, Config, Limits, Tls};
use crate::pipeline::gateway::Gateway;
use crate::pipeline::metrics::Metrics;
use crate::transport::upstream::UpstreamBuildError;

/// Why a generation could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the TLS listener: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Upstream(#[from] UpstreamBuildError),
}

/// Everything built from one config.
pub struct Generation {
    pub gateway: Arc<Gateway>,
    pub acceptor: TlsAcceptor,
    pub http: Arc<auto::Builder<TokioExecutor>>,
    /// The certificate chain and key the acceptor serves, to tell whether
    /// the files on disk changed.
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Generation {
    pub fn build(config: Config, metrics: &Arc<Metrics>) -> Result<Self, BuildError> {
        let acceptor = TlsAcceptor::from(tls::server_config(&config.tls)?);
        let http = Arc::new(http_builder(&config.limits));
        let certs = config.tls.certs.clone();
        let key = config.tls.key.clone_key();
        let gateway = Arc::new(Gateway::new(config, metrics.clone())?);
        Ok(Self {
            gateway,
            acceptor,
            http,
            certs,
            key,
        })
    }

    pub fn config(&self) -> &Config {
        self.gateway.config()
    }

    /// This generation serving the certificate now on disk, or `None` when
    /// it is the one in use.
    pub fn with_certificate_on_disk(&self) -> Result<Option<Generation>, String> {
        let tls = &self.config().tls;
        let (certs, key) = tls::read_source(&tls.source)?;
        if certs == self.certs && key.secret_der() == self.key.secret_der() {
            return Ok(None);
        }
        let fresh = Tls {
            source: tls.source.clone(),
            certs: certs.clone(),
            key: key.clone_key(),
            min_version: tls.min_version,
            hsts: tls.hsts.clone(),
        };
        let acceptor = TlsAcceptor::from(tls::server_config(&fresh).map_err(|e| e.to_string())?);
        Ok(Some(Generation {
            gateway: self.gateway.clone(),
            acceptor,
            http: self.http.clone(),
            certs,
            key,
        }))
    }
}

/// The generation in use, and the process's metrics, which outlive every
/// generation.
pub struct Generations {
    current: ArcSwap<Generation>,
    metrics: Arc<Metrics>,
    /// Bumped on every swap, so the file watcher can follow new paths.
    changes: watch::Sender<u64>,
}

impl Generations {
    pub fn new(first: Generation, metrics: Arc<Metrics>) -> Self {
        Self {
            current: ArcSwap::from_pointee(first),
            metrics,
            changes: watch::channel(0).0,
        }
    }

    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Changes whenever a new generation is swapped in.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Puts `next` in use for new connections and requests.
    pub fn swap(&self, next: Generation) {
        self.current.store(Arc::new(next));
        self.changes.send_modify(|g| *g += 1);
    }
}

/// hyper's connection settings for `[limits]`.
pub(crate) fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // header_timeout and idle_timeout are enforced by the watchdog:
        // hyper's header timer would also cut idle keep-alive connections.
        .header_read_timeout(None)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}
