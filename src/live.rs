//! The configuration generation in use, and how a new one replaces it.
//!
//! A [`Generation`] is everything built from one config: the request
//! pipeline ([`Gateway`]), the TLS acceptor, the HTTP settings. Reload builds
//! a whole new generation off to the side and swaps one pointer; requests
//! already running keep the `Arc` they started with, new ones load the new
//! one. A config that fails validation never replaces a working one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{self, Config, ConfigError, ConfigErrors, Tls};
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::token::Refresh;
use crate::{server, tls};

/// Why a reload was refused; the generation in use keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Same text as `psu-gateway check`.
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("cannot build the TLS listener: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamBuildError),
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
    fn build(config: Config, metrics: &Arc<Metrics>) -> Result<Self, ReloadError> {
        let acceptor = TlsAcceptor::from(tls::server_config(&config.tls)?);
        let http = Arc::new(server::http_builder(&config.limits));
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
}

/// The generation in use and the means to replace it.
pub struct Live {
    source: PathBuf,
    current: ArcSwap<Generation>,
    metrics: Arc<Metrics>,
    /// One reload or file refresh at a time, so two cannot interleave
    /// their read-build-swap steps.
    swapping: tokio::sync::Mutex<()>,
    /// Bumped on every swap, so the file watcher can follow new paths.
    generation: watch::Sender<u64>,
}

impl Live {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, ReloadError> {
        let source = config.source.clone();
        let first = Generation::build(config, &metrics)?;
        Ok(Self {
            source,
            current: ArcSwap::from_pointee(first),
            metrics,
            swapping: tokio::sync::Mutex::new(()),
            generation: watch::channel(0).0,
        })
    }

    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Changes whenever a new generation is swapped in.
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Re-reads the config file and everything it names (certificate, key,
    /// token) and swaps them in; on any error the running config stays.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one = self.swapping.lock().await;
        let result = self.build_next().map(|next| {
            let routes = next.config().routes.routes().len();
            self.swap(next);
            routes
        });
        self.metrics.config_reload(result.is_ok());
        match &result {
            Ok(routes) => {
                tracing::info!(config = %self.source.display(), routes, "config reloaded")
            }
            Err(e) => tracing::error!(
                config = %self.source.display(),
                "config reload refused; the running config stays in use:\n{e}"
            ),
        }
        result.map(|_| ())
    }

    fn build_next(&self) -> Result<Generation, ReloadError> {
        let loaded = config::load(&self.source).map_err(ReloadError::Config)?;
        restart_only(self.current().gateway.config(), &loaded.config)
            .map_err(ReloadError::Config)?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        Generation::build(loaded.config, &self.metrics)
    }

    fn swap(&self, next: Generation) {
        self.current.store(Arc::new(next));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Re-reads the token file and the certificate and key files; a file
    /// that cannot be used leaves what is in use in place, logs an error and
    /// counts a failure.
    pub async fn refresh_files(&self) {
        let _one = self.swapping.lock().await;
        let current = self.current();
        if let Some(token) = current.gateway.token() {
            match token.refresh() {
                Ok(Refresh::Unchanged) => {}
                Ok(Refresh::Rotated { old, new }) => {
                    self.metrics.token_loaded(token.current().loaded_at);
                    tracing::info!(old, new, "app token rotated");
                }
                Err(e) => {
                    self.metrics.token_reload_failures.inc();
                    tracing::error!(error = %e, "cannot use the token file; the previous token stays in use");
                }
            }
        }
        match self.reread_certificate(&current) {
            Ok(None) => {}
            Ok(Some(next)) => {
                self.swap(next);
                tracing::info!("certificate reloaded");
            }
            Err(e) => {
                self.metrics.cert_reload_failures.inc();
                tracing::error!(error = %e, "cannot use the certificate or key files; the previous certificate stays in use");
            }
        }
    }

    /// A generation serving the certificate now on disk, or `None` when it
    /// is the one in use.
    fn reread_certificate(&self, current: &Generation) -> Result<Option<Generation>, String> {
        let tls = &current.config().tls;
        let certs = tls::read_certs(&tls.cert_path)?;
        let key = tls::read_key(&tls.key_path)?;
        if certs == current.certs && key.secret_der() == current.key.secret_der() {
            return Ok(None);
        }
        let fresh = Tls {
            cert_path: tls.cert_path.clone(),
            key_path: tls.key_path.clone(),
            certs: certs.clone(),
            key: key.clone_key(),
            min_version: tls.min_version,
            hsts: tls.hsts.clone(),
        };
        let acceptor = TlsAcceptor::from(tls::server_config(&fresh).map_err(|e| e.to_string())?);
        Ok(Some(Generation {
            gateway: current.gateway.clone(),
            acceptor,
            http: current.http.clone(),
            certs,
            key,
        }))
    }
}

/// Keys a running process cannot change: the sockets it holds and the
/// connection limit its accept loop was sized with.
fn restart_only(running: &Config, next: &Config) -> Result<(), ConfigErrors> {
    let admin = |c: &Config| c.admin.as_ref().map(|a| (a.addr, a.allow_remote));
    let changed = [
        ("listen.addr", running.listen.addr != next.listen.addr),
        (
            "listen.proxy_protocol",
            running.listen.proxy_protocol != next.listen.proxy_protocol,
        ),
        ("admin.addr", admin(running) != admin(next)),
        (
            "limits.max_connections",
            running.limits.max_connections != next.limits.max_connections,
        ),
    ];
    let errors: Vec<ConfigError> = changed
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| ConfigError {
            file: next.source.clone(),
            position: None,
            key: (*key).to_owned(),
            message: "cannot change while running; restart the gateway to apply it".to_owned(),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}
