//! Accept loop: one task per connection, optional TLS, HTTP/1.1 and h2c, graceful stop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::sim::handlers;
use crate::sim::state::SimState;
use crate::sim::windows_auth::ConnectionAuth;

/// How long a stop waits for in-flight requests (a `/sim/status` delay may
/// be much longer) before abandoning them.
const GRACE: Duration = Duration::from_secs(5);
/// A client that never finishes its TLS handshake must not pin a task.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off after a failed accept (e.g. out of file descriptors) so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Starts serving in a background task. Sending on (or dropping) the
/// returned sender stops accepting and drains connections; the task ends
/// when they are done or [`GRACE`] has passed.
pub fn start(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<SimState>,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, tls, state, stop_rx));
    (stop_tx, task)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<SimState>,
    mut stop: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            // A send or a dropped sender both mean stop.
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    state.recorder.concurrency.connection_accepted();
                    let open = state.recorder.concurrency.connection_opened();
                    let watcher = graceful.watcher();
                    let served = serve_connection(stream, peer, tls.clone(), Arc::clone(&state), watcher);
                    tokio::spawn(async move {
                        served.await;
                        drop(open);
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "psu-sim accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("psu-sim stopped with requests still in flight");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    state: Arc<SimState>,
    watcher: Watcher,
) {
    let result = match tls {
        None => drive(TokioIo::new(stream), peer, state, watcher).await,
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => drive(TokioIo::new(stream), peer, state, watcher).await,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %peer, "psu-sim TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "psu-sim TLS handshake timed out");
                    return;
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "psu-sim connection ended with an error");
    }
}

/// Serves HTTP/1.1 or HTTP/2 (prior knowledge, or ALPN under TLS) on one
/// connection until the client leaves or a graceful stop finishes it. The
/// connection's Windows-auth state lives as long as the connection.
async fn drive<I>(
    io: I,
    peer: SocketAddr,
    state: Arc<SimState>,
    watcher: Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = Arc::new(ConnectionAuth::new());
    let service = service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        let conn = Arc::clone(&conn);
        async move { Ok::<_, Infallible>(handlers::handle(&state, &conn, peer, request).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    watcher.watch(connection).await
}
