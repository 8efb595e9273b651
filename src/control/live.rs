//! Reload: how a new configuration generation replaces the one in use.
//!
//! Reload builds a whole new [`Generation`] off to the side and swaps one
//! pointer; requests already running keep the one they started with. A
//! config that fails validation never replaces a working one. The token,
//! certificate and key files are re-read the same way when they change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{self, Config, ConfigError, ConfigErrors};
use crate::pipeline::credential::Refresh;
use crate::pipeline::metrics::Metrics;
use crate::serve::generation::{BuildError, Generation, Generations};

/// Why a reload was refused; the generation in use keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Same text as `psu-gateway check`.
    #[error("{0}")]
    Config(ConfigErrors),
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The generation in use and the means to replace it.
pub struct Live {
    source: PathBuf,
    generations: Arc<Generations>,
    /// One reload or file refresh at a time, so two cannot interleave
    /// their read-build-swap steps.
    swapping: tokio::sync::Mutex<()>,
}

impl Live {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, ReloadError> {
        let source = config.source.clone();
        let first = Generation::build(config, &metrics)?;
        Ok(Self {
            source,
            generations: Arc::new(Generations::new(first, metrics)),
            swapping: tokio::sync::Mutex::new(()),
        })
    }

    /// What the listener serves from.
    pub fn generations(&self) -> &Arc<Generations> {
        &self.generations
    }

    pub fn current(&self) -> Arc<Generation> {
        self.generations.current()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        self.generations.metrics()
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Changes whenever a new generation is swapped in.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generations.changes()
    }

    /// Re-reads the config file and everything it names (certificate, key,
    /// token) and swaps them in; on any error the running config stays.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one = self.swapping.lock().await;
        let result = self.build_next().map(|next| {
            let routes = next.config().routes.routes().len();
            self.generations.swap(next);
            routes
        });
        self.metrics().config_reload(result.is_ok());
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
        Ok(Generation::build(loaded.config, self.metrics())?)
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
                    self.metrics().token_loaded(token.current().loaded_at);
                    tracing::info!(old, new, "app token rotated");
                }
                Err(e) => {
                    self.metrics().token_reload_failures.inc();
                    tracing::error!(error = %e, "cannot use the token file; the previous token stays in use");
                }
            }
        }
        match current.with_certificate_on_disk() {
            Ok(None) => {}
            Ok(Some(next)) => {
                self.generations.swap(next);
                tracing::info!("certificate reloaded");
            }
            Err(e) => {
                self.metrics().cert_reload_failures.inc();
                tracing::error!(error = %e, "cannot use the certificate or key files; the previous certificate stays in use");
            }
        }
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
