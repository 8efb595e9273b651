//! The TLS listener: accept, handshake, serve HTTP/1.1 and h2 on one port.
//!
//! On shutdown the accept loop stops at once and every connection follows
//! one stop signal: requests in flight (and a fresh connection's first
//! request) finish, tunnels get the rest of `shutdown_grace`. Each accepted
//! connection is served on one of the per-core workers
//! (`transport::workers`) or, without workers (tests, the demo), on the
//! caller's runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::serve::generation::{Generation, Generations};
use crate::serve::proxy_protocol;
use crate::transport::pinned::{ClientPin, Http11Required};
use crate::transport::slot::{ClientConnections, ConnectionSlot};
use crate::transport::watchdog::{Activity, Tracked, Watched};
use crate::transport::workers::Workers;

/// A bound listener and the generations it serves from.
pub struct Server {
    listener: TcpListener,
    dispatcher: Dispatcher,
}

impl Server {
    pub fn new(
        listener: TcpListener,
        generations: Arc<Generations>,
        workers: Option<Workers>,
    ) -> Self {
        Self {
            listener,
            dispatcher: Dispatcher {
                generations,
                clients: Arc::default(),
                stopping: watch::channel(false).0,
                workers,
            },
        }
    }

    /// Serves until `shutdown` resolves, then drains within
    /// `shutdown_grace`.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        self.dispatcher.serve(self.listener, shutdown).await;
    }
}

/// Hands accepted connections to the workers and tells them when to stop.
struct Dispatcher {
    generations: Arc<Generations>,
    /// Connections open per client address.
    clients: Arc<ClientConnections>,
    /// Turns true when shutdown begins.
    stopping: watch::Sender<bool>,
    /// Where connections are served; `None`: on the accepting runtime.
    workers: Option<Workers>,
}

impl Dispatcher {
    /// Serves one accepted connection on a worker (or this runtime).
    fn dispatch(&self, stream: std::net::TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        let conn = Connection {
            peer,
            generations: self.generations.clone(),
            generation: self.generations.current(),
            clients: self.clients.clone(),
            stopping: self.stopping.subscribe(),
        };
        let task = conn.serve(stream, slot);
        match &self.workers {
            Some(workers) => workers.spawn(task),
            None => drop(tokio::spawn(task)),
        }
    }

    async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // At most max_connections are served; beyond that new connections
        // wait in the kernel's backlog until one closes. The size is fixed
        // for the process: a reload cannot change it.
        let max_connections = self.generations.current().config().limits.max_connections;
        let slots = Arc::new(Semaphore::new(max_connections));
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
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
            self.dispatch(stream, peer, slot);
        }
        // Connections the kernel completed but the loop had not accepted
        // would be reset when the listener closes; a balancer that already
        // forwarded a request on one would lose it. Take them first.
        if let Ok(listener) = listener.into_std() {
            while let Ok((stream, peer)) = listener.accept() {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    break;
                };
                if stream.set_nonblocking(true).is_ok() {
                    self.dispatch(stream, peer, slot);
                }
            }
        }
        // The listener is closed: new connections are refused from here.
        let grace = self.generations.current().config().limits.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        let _ = self.stopping.send(true);
        tracing::info!(?grace, "stopped accepting; draining");
        // Every connection and every tunnel holds a slot until it ends.
        let drained = slots.acquire_many(u32::try_from(max_connections).unwrap_or(u32::MAX));
        if tokio::time::timeout_at(deadline, drained).await.is_err() {
            tracing::warn!(
                ?grace,
                "shutdown grace elapsed with connections or tunnels still open"
            );
        }
        if let Some(workers) = self.workers {
            workers.stop().await;
        }
    }
}

/// How long a connection that has not sent a request yet is given to send
/// one once shutdown begins (never more than `header_timeout`).
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(1);

/// One accepted TCP connection, from TLS handshake to the last response.
/// Its timeouts and TLS settings come from the generation in use when it
/// was accepted; each request on it uses the generation in use when the
/// request arrives.
struct Connection {
    peer: SocketAddr,
    generations: Arc<Generations>,
    generation: Arc<Generation>,
    clients: Arc<ClientConnections>,
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(mut self, stream: std::net::TcpStream, permit: OwnedSemaphorePermit) {
        let limits = self.generation.config().limits.clone();
        let mut stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "cannot register the connection");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        // One budget from accept to handshake done, PROXY header included.
        let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
        let config = self.generation.config();
        let peer = match proxy_protocol::client_addr(&mut stream, self.peer, config, deadline).await
        {
            Ok(client) => client,
            Err(e) => return e.log(self.peer),
        };
        // Before the handshake: a client over its share costs no TLS work.
        let Some(seat) = self
            .clients
            .admit(peer.ip(), limits.max_connections_per_client)
        else {
            self.generations.metrics().client_connections_refused.inc();
            tracing::debug!(%peer, max = limits.max_connections_per_client, "connection closed: its client address has limits.max_connections_per_client open");
            return;
        };
        let slot = ConnectionSlot::new(
            permit,
            seat,
            self.generations.metrics().active_connections.clone(),
        );
        let accepted =
            tokio::time::timeout_at(deadline, self.generation.acceptor.accept(stream)).await;
        let tls = match accepted {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.generations.metrics().tls_handshake_failures.inc();
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                self.generations.metrics().tls_handshake_failures.inc();
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let http1 = tls.get_ref().1.alpn_protocol() != Some(b"h2");
        let activity = Activity::new(http1);
        let io = TokioIo::new(Watched::new(tls, activity.clone()));
        let generations = self.generations;
        let requests = activity.clone();
        // NTLM / Negotiate bind an HTTP/1.1 connection, never an h2 one.
        let pin = http1.then(ClientPin::new);
        let service_pin = pin.clone();
        let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(slot.clone());
            if let Some(pin) = &service_pin {
                request.extensions_mut().insert(pin.clone());
            }
            let gateway = generations.current().gateway.clone();
            let in_flight = requests.request_started();
            // Boxed: hyper spawns each h2 stream's future as a task and
            // keeps each HTTP/1 request's in place, and the unboxed one
            // (about 2.6 KiB) was copied whole on the way.
            Box::pin(async move {
                let response = gateway.handle(request, peer).await;
                if response.extensions().get::<Http11Required>().is_some() {
                    // hyper resets the h2 stream with the reason it finds
                    // in the service's error.
                    return Err(h2::Error::from(h2::Reason::HTTP_1_1_REQUIRED));
                }
                Ok(response.map(|body| Tracked::new(body, in_flight)))
            })
        });
        let conn = self
            .generation
            .http
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        tokio::pin!(conn);
        // Stop after the request in flight, or, on a connection that has
        // not sent one yet, after its first: a client (or a balancer) that
        // connected just before shutdown began is about to send a request,
        // and closing on it would lose that request.
        let stop = async {
            let _ = self.stopping.wait_for(|stopping| *stopping).await;
            tracing::debug!(%peer, "shutdown: the connection closes after its current or first request");
            let first = limits.header_timeout.min(FIRST_REQUEST_WAIT);
            let _ = tokio::time::timeout(first, activity.first_request()).await;
        };
        tokio::pin!(stop);
        // PSU closed the connection this one is pinned to: close this one
        // too, after the response in flight.
        let pin_closed = async {
            match &pin {
                Some(pin) => pin.upstream_closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(pin_closed);
        let mut stopped = false;
        loop {
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                expired = activity.expired(limits.header_timeout, limits.idle_timeout, limits.idle_timeout.max(limits.upstream_timeout)) => {
                    tracing::debug!(%peer, ?expired, "connection closed by timeout");
                    return;
                }
                () = &mut stop, if !stopped => {
                    stopped = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = &mut pin_closed, if !stopped => {
                    stopped = true;
                    tracing::debug!(%peer, "the pinned upstream connection closed; closing the client connection");
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
