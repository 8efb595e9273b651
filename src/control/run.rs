//! The running process: the first generation, the listener, the admin
//! listener, the file watchers and the signals, started together and
//! stopped together.
//!
//! `run` binds the configured addresses and serves on the per-core workers;
//! `spawn` (tests, the demo) serves an already bound listener on the
//! caller's runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::control::live::{Live, ReloadError};
use crate::control::{admin, rotation, signals};
use crate::pipeline::metrics::Metrics;
use crate::serve::listener::Server;
use crate::transport::workers::{self, Workers};

/// Why the gateway did not start; nothing is left listening.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Build(#[from] ReloadError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the worker threads: {0}")]
    Workers(std::io::Error),
}

/// A gateway serving in the background; dropping it does not stop it,
/// [`RunningGateway::shutdown`] does.
pub struct RunningGateway {
    addr: SocketAddr,
    live: Arc<Live>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningGateway {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The config generation in use; [`Live::reload`] replaces it.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Stops accepting, waits for in-flight requests, then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts the gateway on an already bound listener (tests bind port 0),
/// with the token and certificate files watched, serving connections on
/// the caller's runtime.
pub fn spawn(config: Config, listener: TcpListener) -> Result<RunningGateway, StartError> {
    start(config, listener, None)
}

/// [`spawn`], but serving connections on `count` worker threads as [`run`]
/// does.
pub fn spawn_on_workers(
    config: Config,
    listener: TcpListener,
    count: usize,
) -> Result<RunningGateway, StartError> {
    let workers = Workers::start(count).map_err(StartError::Workers)?;
    start(config, listener, Some(workers))
}

fn start(
    config: Config,
    listener: TcpListener,
    workers: Option<Workers>,
) -> Result<RunningGateway, StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen.addr,
        source,
    })?;
    let live = Arc::new(Live::new(config, Arc::new(Metrics::new()))?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = Server::new(listener, live.generations().clone(), workers);
    let watched = live.clone();
    let task = tokio::spawn(async move {
        let watcher = rotation::spawn(watched);
        server
            .serve(async {
                let _ = stopped.await;
            })
            .await;
        watcher.abort();
    });
    Ok(RunningGateway {
        addr,
        live,
        stop: Some(stop),
        task,
    })
}

/// Binds `listen.addr` (and `admin.addr`) and serves until `shutdown`
/// resolves; SIGHUP reloads.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let addr = config.listen.addr;
    let admin = config.admin.clone();
    let live = Arc::new(Live::new(config, Arc::new(Metrics::new()))?);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let admin = match admin {
        Some(admin) => Some(admin::spawn(&admin, live.clone()).await?),
        None => None,
    };
    let workers = Workers::start(workers::default_count()).map_err(StartError::Workers)?;
    tracing::info!(addr = %bound, workers = workers.count(), "listening");
    let hangups = tokio::spawn(signals::reload_on_hangup(live.clone()));
    let watcher = rotation::spawn(live.clone());
    Server::new(listener, live.generations().clone(), Some(workers))
        .serve(shutdown)
        .await;
    watcher.abort();
    hangups.abort();
    if let Some(admin) = admin {
        admin.abort();
    }
    Ok(())
}
