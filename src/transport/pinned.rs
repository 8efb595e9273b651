//! Pinned upstream connections, for authentication that belongs to a TCP
//! connection rather than to a request (NTLM, Negotiate).
//!
//! A [`ClientPin`] lives as long as one client connection. Once the
//! pipeline decides the connection is pinned, its requests go over one
//! HTTP/1.1 connection to PSU that the pin opens on first use and owns: it
//! is never in a pool, so no other client connection can be answered on
//! the identity PSU bound to it. The two connections end together:
//! dropping the pin (the client connection closed) aborts the upstream
//! connection's driver, which closes its socket; when PSU closes its side,
//! [`ClientPin::upstream_closed`] resolves and the listener closes the
//! client connection after the response in flight. A pin whose upstream
//! connection ended never opens another one: the client connection is done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::transport::upstream::{Body, UpstreamError};

/// Marks a response the listener must not send: on HTTP/2 it resets the
/// stream with `HTTP_1_1_REQUIRED` instead, so the browser retries the
/// request over HTTP/1.1, where connection-bound authentication works.
#[derive(Debug, Clone, Copy)]
pub struct Http11Required;

/// Pinned connections now and in total, for the metrics, and the
/// `upstream.max_pinned` places: one set for the process, like the
/// metrics, so a reload neither resets the count nor resizes it.
#[derive(Clone, Default)]
pub struct PinMetrics {
    pub open: Gauge,
    pub total: Counter,
    places: Arc<std::sync::OnceLock<Arc<Semaphore>>>,
}

impl PinMetrics {
    /// The places, sized by the first config that asks.
    pub(crate) fn places(&self, max_pinned: usize) -> Arc<Semaphore> {
        self.places
            .get_or_init(|| Arc::new(Semaphore::new(max_pinned)))
            .clone()
    }
}

/// One client connection's claim on a dedicated upstream connection.
#[derive(Default)]
pub struct ClientPin {
    /// Set once the connection is pinned (a credential was sent or a
    /// challenge answered): from then on every request that may carry
    /// client credentials goes over the pinned connection.
    pinned: AtomicBool,
    state: Mutex<State>,
    /// Told when the upstream connection ended.
    closed: Arc<Notify>,
}

#[derive(Default)]
enum State {
    #[default]
    Unopened,
    Open(Pinned),
    /// The upstream connection ended; nothing more goes over this pin.
    Ended,
}

/// An open upstream connection and what it holds while it lives.
pub(crate) struct Pinned {
    sender: SendRequest<Body>,
    driver: JoinHandle<()>,
    metrics: PinMetrics,
    /// One of `upstream.max_pinned`.
    _place: OwnedSemaphorePermit,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // The driver owns the socket: aborting it closes the connection.
        self.driver.abort();
        self.metrics.open.dec();
    }
}

impl Pinned {
    /// Starts driving a fresh HTTP/1.1 connection; `closed` is told when it
    /// ends (PSU closed it, or it failed).
    pub(crate) fn start<I>(
        sender: SendRequest<Body>,
        connection: hyper::client::conn::http1::Connection<I, Body>,
        closed: Arc<Notify>,
        metrics: PinMetrics,
        place: OwnedSemaphorePermit,
    ) -> Self
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        metrics.open.inc();
        metrics.total.inc();
        let driver = tokio::spawn(async move {
            // With upgrades: a WebSocket on a pinned connection continues
            // over this same upstream connection.
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "pinned upstream connection failed");
            }
            closed.notify_one();
        });
        Self {
            sender,
            driver,
            metrics,
            _place: place,
        }
    }
}

impl ClientPin {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Whether this client connection is pinned.
    pub fn is_pinned(&self) -> bool {
        self.pinned.load(Ordering::Relaxed)
    }

    /// Pins the connection (a 401 challenge offered connection-bound
    /// authentication): the client's answer goes over its own connection.
    pub fn pin(&self) {
        self.pinned.store(true, Ordering::Relaxed);
    }

    /// Resolves once the pinned upstream connection has ended.
    pub async fn upstream_closed(&self) {
        self.closed.notified().await;
    }

    /// Sends `request` over this pin's upstream connection, opening it
    /// with `open` on first use. Requests on one client connection come
    /// one at a time (HTTP/1.1), so the lock is never contended.
    pub(crate) async fn send<F, Fut>(
        &self,
        mut request: Request<Body>,
        open: F,
    ) -> Result<Response<Incoming>, UpstreamError>
    where
        F: FnOnce(Arc<Notify>) -> Fut,
        Fut: std::future::Future<Output = Result<Pinned, UpstreamError>>,
    {
        self.pin();
        let mut state = self.state.lock().await;
        if matches!(*state, State::Unopened) {
            *state = State::Open(open(self.closed.clone()).await?);
        }
        let State::Open(pinned) = &mut *state else {
            return Err(UpstreamError::PinEnded);
        };
        if pinned.sender.ready().await.is_err() {
            *state = State::Ended;
            return Err(UpstreamError::PinEnded);
        }
        // The connection was opened towards the upstream's authority: the
        // request line carries only the path (origin form).
        *request.uri_mut() = origin_form(request.uri());
        *request.version_mut() = Version::HTTP_11;
        let sent = pinned.sender.send_request(request);
        drop(state);
        sent.await.map_err(UpstreamError::Pinned)
    }
}

fn origin_form(uri: &Uri) -> Uri {
    uri.path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_keeps_only_path_and_query() {
        let uri: Uri = "https://psu.internal:5000/api/v1/x?a=1&b".parse().unwrap();
        assert_eq!(origin_form(&uri).to_string(), "/api/v1/x?a=1&b");
        let bare: Uri = "https://psu.internal:5000".parse().unwrap();
        assert_eq!(origin_form(&bare).to_string(), "/");
    }

    #[test]
    fn a_pin_starts_unpinned_and_stays_pinned() {
        let pin = ClientPin::new();
        assert!(!pin.is_pinned());
        pin.pin();
        assert!(pin.is_pinned());
    }
}
