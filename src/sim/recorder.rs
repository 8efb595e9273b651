//! Every request the simulator received, as it arrived, for tests to assert on.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, Method, Version};

use crate::sim::concurrency::Concurrency;

/// One request as it came off the wire (before any front-door mode touched it).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// False when the body ended early (reset, aborted, too large).
    pub body_complete: bool,
    /// Request trailers, when the body carried any.
    pub trailers: Option<HeaderMap>,
}

/// A shared, append-only log of requests. Clones share the same log.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    recorded: Arc<tokio::sync::Notify>,
    /// Requests in flight and connections accepted.
    pub concurrency: Concurrency,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, request: RecordedRequest) {
        self.lock().push(request);
        self.recorded.notify_waiters();
    }

    /// Resolves once `n` requests with exactly this path have arrived.
    pub async fn arrived(&self, path: &str, n: usize) {
        loop {
            let recorded = self.recorded.notified();
            tokio::pin!(recorded);
            recorded.as_mut().enable();
            if self.count(path) >= n {
                return;
            }
            recorded.await;
        }
    }

    /// A snapshot, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    /// How many requests had exactly this path.
    pub fn count(&self, path: &str) -> usize {
        self.lock().iter().filter(|r| r.path == path).count()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// A panicking test thread must not hide later requests from other
    /// tests, so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> RecordedRequest {
        RecordedRequest {
            method: Method::GET,
            path: path.into(),
            query: None,
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            body_complete: true,
            trailers: None,
        }
    }

    #[test]
    fn records_counts_and_clears_across_clones() {
        let recorder = Recorder::new();
        let other = recorder.clone();
        recorder.record(request("/a"));
        other.record(request("/b"));
        recorder.record(request("/a"));
        assert_eq!(other.count("/a"), 2);
        assert_eq!(
            recorder
                .requests()
                .iter()
                .map(|r| r.path.as_str())
                .collect::<Vec<_>>(),
            ["/a", "/b", "/a"]
        );
        other.clear();
        assert!(recorder.requests().is_empty());
    }
}
