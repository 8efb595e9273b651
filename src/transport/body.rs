//! The request body as it streams to PSU: size cap, gap timeout, no trailers.
//!
//! The body is never buffered; these checks run frame by frame, so a body
//! that grows past `max_body_bytes` or stalls longer than `body_timeout` is
//! cut off mid-stream and the upstream request is aborted (PSU never sees a
//! complete oversized request). Request trailers are dropped: they would be
//! headers that arrive after every check has run.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a guarded body stopped early; read after the upstream call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    TooLarge,
    Stalled,
}

/// Shared between the body (which sets it) and the pipeline (which reads it).
#[derive(Debug, Default, Clone)]
pub struct FaultFlag(Arc<AtomicU8>);

impl FaultFlag {
    fn set(&self, fault: BodyFault) {
        let code = match fault {
            BodyFault::TooLarge => 1,
            BodyFault::Stalled => 2,
        };
        self.0.store(code, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<BodyFault> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(BodyFault::TooLarge),
            2 => Some(BodyFault::Stalled),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("the request body exceeds limits.max_body_bytes")]
    TooLarge,
    #[error("the request body stalled longer than limits.body_timeout")]
    Stalled,
    #[error(transparent)]
    Client(#[from] hyper::Error),
}

pin_project_lite::pin_project! {
    pub struct GuardedBody<B> {
        #[pin]
        inner: B,
        limit: u64,
        seen: u64,
        gap: Duration,
        #[pin]
        deadline: Sleep,
        waiting: bool,
        fault: FaultFlag,
    }
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, limit: u64, gap: Duration, fault: FaultFlag) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
            gap,
            deadline: tokio::time::sleep(gap),
            waiting: false,
            fault,
        }
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error>,
{
    type Data = Bytes;
    type Error = GuardError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, GuardError>>> {
        let mut this = self.project();
        // The gap is measured from when the consumer asks for data, so a
        // slow upstream does not count against the client.
        if !*this.waiting {
            *this.waiting = true;
            this.deadline.as_mut().reset(Instant::now() + *this.gap);
        }
        loop {
            let frame = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => {
                    ready!(this.deadline.as_mut().poll(cx));
                    this.fault.set(BodyFault::Stalled);
                    return Poll::Ready(Some(Err(GuardError::Stalled)));
                }
                Poll::Ready(frame) => frame,
            };
            *this.waiting = false;
            let frame = match frame {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(frame)) => frame,
            };
            if let Some(data) = frame.data_ref() {
                *this.seen += data.len() as u64;
                if *this.seen > *this.limit {
                    this.fault.set(BodyFault::TooLarge);
                    return Poll::Ready(Some(Err(GuardError::TooLarge)));
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            // Trailers: dropped; keep reading to the end of the body.
            *this.waiting = true;
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn stream(
        chunks: Vec<Result<Frame<Bytes>, hyper::Error>>,
    ) -> impl Body<Data = Bytes, Error = hyper::Error> {
        StreamBody::new(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn passes_small_bodies_and_drops_trailers() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-psu-authorization", "Bearer smuggled".parse().unwrap());
        let body = stream(vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::trailers(trailers)),
        ]);
        let fault = FaultFlag::default();
        let collected = GuardedBody::new(body, 3, Duration::from_secs(5), fault.clone())
            .collect()
            .await
            .unwrap();
        assert!(collected.trailers().is_none());
        assert_eq!(collected.to_bytes(), "abc");
        assert_eq!(fault.get(), None);
    }

    #[tokio::test]
    async fn cuts_off_past_the_limit() {
        let body = stream(vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::data(Bytes::from_static(b"d"))),
        ]);
        let fault = FaultFlag::default();
        let result = GuardedBody::new(body, 3, Duration::from_secs(5), fault.clone())
            .collect()
            .await;
        assert!(matches!(result, Err(GuardError::TooLarge)));
        assert_eq!(fault.get(), Some(BodyFault::TooLarge));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let body = StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, hyper::Error>,
        >());
        let fault = FaultFlag::default();
        let started = Instant::now();
        let result = GuardedBody::new(body, 10, Duration::from_secs(30), fault.clone())
            .collect()
            .await;
        assert!(matches!(result, Err(GuardError::Stalled)));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(fault.get(), Some(BodyFault::Stalled));
    }
}
