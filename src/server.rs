//! The TLS listener: accept, handshake, serve HTTP/1.1 and h2 on one port.
//!
//! The accept loop follows hyper-util's graceful-shutdown example: every
//! connection is watched so a shutdown signal stops accepting and lets
//! requests in flight finish. `run` serves each accepted connection on one
//! of the per-core workers (`workers.rs`); `spawn` (tests, the demo) serves
//! on the caller's runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, Limits};
use crate::proxy::Gateway;
use crate::tls;
use crate::watchdog::{Activity, Tracked, Watched};
use crate::workers::{self, Workers};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the TLS listener: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamBuildError),
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
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningGateway {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for in-flight requests, then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts the gateway on an already bound listener (tests bind port 0).
pub fn spawn(config: Config, listener: TcpListener) -> Result<RunningGateway, StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen.addr,
        source,
    })?;
    let server = Server::new(config, listener, None)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    Ok(RunningGateway {
        addr,
        stop: Some(stop),
        task,
    })
}

/// Binds `listen.addr` and serves until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let addr = config.listen.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let workers = Workers::start(workers::default_count()).map_err(StartError::Workers)?;
    tracing::info!(%addr, workers = workers.count(), "listening");
    Server::new(config, listener, Some(workers))?
        .serve(shutdown)
        .await;
    Ok(())
}

/// [`spawn`], but serving connections on `count` worker threads as [`run`]
/// does.
pub fn spawn_on_workers(
    config: Config,
    listener: TcpListener,
    count: usize,
) -> Result<RunningGateway, StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen.addr,
        source,
    })?;
    let workers = Workers::start(count).map_err(StartError::Workers)?;
    let server = Server::new(config, listener, Some(workers))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    Ok(RunningGateway {
        addr,
        stop: Some(stop),
        task,
    })
}

struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    gateway: Arc<Gateway>,
    limits: Limits,
    /// Where connections are served; `None`: on the accepting runtime.
    workers: Option<Workers>,
}

impl Server {
    fn new(
        config: Config,
        listener: TcpListener,
        workers: Option<Workers>,
    ) -> Result<Self, StartError> {
        let acceptor = TlsAcceptor::from(tls::server_config(&config.tls)?);
        let limits = config.limits.clone();
        let gateway = Arc::new(Gateway::new(config)?);
        Ok(Self {
            listener,
            acceptor,
            gateway,
            limits,
            workers,
        })
    }

    async fn serve(self, shutdown: impl Future<Output = ()>) {
        let builder = Arc::new(http_builder(&self.limits));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        // At most max_connections are served; beyond that new connections
        // wait in the kernel's backlog until one closes.
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Deregistered from this runtime's I/O driver, so the runtime
            // that serves it polls its socket.
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "cannot hand the connection over");
                    continue;
                }
            };
            let conn = Connection {
                peer,
                acceptor: self.acceptor.clone(),
                gateway: self.gateway.clone(),
                builder: builder.clone(),
                limits: self.limits.clone(),
            };
            let task = conn.serve(stream, graceful.watcher(), slot);
            match &self.workers {
                Some(workers) => workers.spawn(task),
                None => drop(tokio::spawn(task)),
            }
        }
        drop(self.listener);
        let grace = self.limits.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "shutdown grace elapsed with connections still open");
        }
        if let Some(workers) = self.workers {
            workers.stop().await;
        }
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
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

/// One of the `max_connections` slots. A WebSocket tunnel keeps a clone, so
/// the slot frees only when the connection and its tunnel are both gone.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// One accepted TCP connection, from TLS handshake to the last response.
struct Connection {
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    gateway: Arc<Gateway>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
}

impl Connection {
    async fn serve(
        self,
        stream: std::net::TcpStream,
        watcher: Watcher,
        slot: OwnedSemaphorePermit,
    ) {
        let slot = ConnectionSlot(Arc::new(slot));
        let peer = self.peer;
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot register the connection");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let tls =
            match tokio::time::timeout(self.limits.handshake_timeout, self.acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
        let http1 = tls.get_ref().1.alpn_protocol() != Some(b"h2");
        let activity = Activity::new(http1);
        let io = TokioIo::new(Watched::new(tls, activity.clone()));
        let gateway = self.gateway;
        let requests = activity.clone();
        let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(slot.clone());
            let gateway = gateway.clone();
            let in_flight = requests.request_started();
            async move {
                let response = gateway.handle(request, peer).await;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Tracked::new(body, in_flight)),
                )
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        let limits = &self.limits;
        tokio::select! {
            served = watcher.watch(conn.into_owned()) => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            expired = activity.expired(limits.header_timeout, limits.idle_timeout, limits.idle_timeout.max(limits.upstream_timeout)) => {
                tracing::debug!(%peer, ?expired, "connection closed by timeout");
            }
        }
    }
}
