//! Per-connection timers hyper cannot apply the way `[limits]` means them.
//!
//! hyper's own header-read timer also runs while a keep-alive connection
//! sits idle, which would make `idle_timeout` unreachable whenever it is
//! longer than `header_timeout`. So the connection's I/O is watched here:
//! a request head that started arriving must be complete within
//! `header_timeout` (slowloris), and a connection with no request in flight
//! and no bytes either way is closed after `idle_timeout`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a connection was closed by the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    HeaderTimeout,
    IdleTimeout,
    /// A request in flight with no byte moving either way (a peer that
    /// stopped reading its response, or a stalled stream).
    Stalled,
}

/// What one connection has been doing, updated from the I/O and the service.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    /// Milliseconds since `base` of the last activity.
    last: AtomicU64,
    /// Milliseconds since `base` of the last byte read or written, whatever
    /// the protocol.
    last_io: AtomicU64,
    /// Milliseconds since `base` + 1 of the first byte of a request head not
    /// yet handed to the service; 0 when none is arriving.
    head_started: AtomicU64,
    in_flight: AtomicUsize,
    /// Requests handed to the service so far.
    requests: AtomicU64,
    /// Wakes the timer when a head starts arriving or a request ends.
    changed: Notify,
    /// Wakes [`Activity::first_request`].
    first: Notify,
    /// HTTP/1: bytes are requests. h2: PINGs and SETTINGS are bytes too, so
    /// only requests count as activity (a client pinging forever is idle).
    http1: bool,
}

impl Activity {
    pub fn new(http1: bool) -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            last: AtomicU64::new(0),
            last_io: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            changed: Notify::new(),
            first: Notify::new(),
            http1,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
    }

    fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    fn on_io(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    fn on_read(&self) {
        self.on_io();
        if !self.http1 {
            return;
        }
        let now = self.now_ms();
        self.last.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let started = self.head_started.compare_exchange(
                0,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            if started.is_ok() {
                self.changed.notify_one();
            }
        }
    }

    fn on_write(&self) {
        self.on_io();
        if self.http1 {
            self.touch();
        }
    }

    /// Marks a request as in flight until the returned guard is dropped
    /// (the gateway drops it with the response body).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.touch();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
        if self.requests.fetch_add(1, Ordering::AcqRel) == 0 {
            self.first.notify_waiters();
        }
        InFlight(self.clone())
    }

    /// Resolves once the connection has handed a request to the service.
    pub async fn first_request(&self) {
        loop {
            let notified = self.first.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.requests.load(Ordering::Acquire) > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when the connection has broken one of the limits. `stall`
    /// bounds a request in flight with no byte moving either way; it must
    /// cover the wait for PSU's response head (`upstream_timeout`).
    pub async fn expired(
        &self,
        header_timeout: Duration,
        idle_timeout: Duration,
        stall: Duration,
    ) -> Expired {
        let header_ms = millis(header_timeout);
        let idle_ms = millis(idle_timeout);
        let stall_ms = millis(stall);
        loop {
            let now = self.now_ms();
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            let head = self.head_started.load(Ordering::Relaxed);
            let (deadline, reason) = if busy {
                let last_io = self
                    .last_io
                    .load(Ordering::Relaxed)
                    .max(self.last.load(Ordering::Relaxed));
                (last_io.saturating_add(stall_ms), Some(Expired::Stalled))
            } else if head > 0 {
                (
                    (head - 1).saturating_add(header_ms),
                    Some(Expired::HeaderTimeout),
                )
            } else {
                let last = self.last.load(Ordering::Relaxed);
                (last.saturating_add(idle_ms), Some(Expired::IdleTimeout))
            };
            match reason {
                Some(reason) if now >= deadline => return reason,
                _ => {
                    let wake = self.base + Duration::from_millis(deadline.max(now + 1));
                    tokio::select! {
                        () = tokio::time::sleep_until(wake) => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

impl Activity {
    /// Resolves once no byte went either way for `timeout` (tunnels).
    pub async fn idle(&self, timeout: Duration) {
        let timeout_ms = millis(timeout);
        loop {
            let now = self.now_ms();
            let deadline = self.last.load(Ordering::Relaxed).saturating_add(timeout_ms);
            if now >= deadline {
                return;
            }
            tokio::time::sleep_until(self.base + Duration::from_millis(deadline)).await;
        }
    }
}

/// Durations from config are capped (see `duration.rs`); this keeps the
/// arithmetic above far from overflow whatever it is given.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .min(u64::MAX / 4)
}

/// A request in flight; dropping it makes the connection idle again.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // Touch first: a timer that sees no request in flight must also
        // see the moment this one ended.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it is done.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        guard: InFlight,
    }
}

impl<B> Tracked<B> {
    pub fn new(inner: B, guard: InFlight) -> Self {
        Self { inner, guard }
    }
}

impl<B: http_body::Body> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// I/O that reports every read and write to an [`Activity`].
    pub struct Watched<T> {
        #[pin]
        io: T,
        activity: Arc<Activity>,
    }
}

impl<T> Watched<T> {
    pub fn new(io: T, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.io.poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.io.poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
