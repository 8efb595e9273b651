//! How busy the simulator was: requests in flight at once (per path and in
//! all), connections accepted and open now, so tests can assert that the
//! gateway's caps held at the upstream, that its pool reused connections
//! and that it closed the ones it should.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Counts {
    /// Path -> (in flight now, most ever in flight).
    by_path: HashMap<String, (usize, usize)>,
    now: usize,
    most: usize,
}

/// Shared by clones.
#[derive(Clone, Debug, Default)]
pub struct Concurrency {
    counts: Arc<Mutex<Counts>>,
    connections: Arc<AtomicUsize>,
    open: Arc<OpenCount>,
}

/// Connections open now, with a wake-up whenever one closes.
#[derive(Debug, Default)]
struct OpenCount {
    now: AtomicUsize,
    closed: tokio::sync::Notify,
}

/// One open connection; dropping it counts the connection closed.
#[derive(Debug)]
pub struct OpenConnection {
    open: Arc<OpenCount>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.now.fetch_sub(1, Ordering::Relaxed);
        self.open.closed.notify_waiters();
    }
}

/// One request in flight; dropping it ends it.
#[derive(Debug)]
pub struct InFlight {
    counts: Arc<Mutex<Counts>>,
    path: String,
}

impl Concurrency {
    /// Counts a request to `path` until the guard is dropped.
    pub fn enter(&self, path: &str) -> InFlight {
        let mut counts = lock(&self.counts);
        counts.now += 1;
        counts.most = counts.most.max(counts.now);
        let entry = counts.by_path.entry(path.to_owned()).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
        InFlight {
            counts: self.counts.clone(),
            path: path.to_owned(),
        }
    }

    /// The most requests to `path` that were in flight at once.
    pub fn most_in_flight(&self, path: &str) -> usize {
        lock(&self.counts).by_path.get(path).map_or(0, |c| c.1)
    }

    /// The most requests to any path that were in flight at once.
    pub fn most_in_flight_overall(&self) -> usize {
        lock(&self.counts).most
    }

    pub fn connection_accepted(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection open until the guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        self.open.now.fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            open: Arc::clone(&self.open),
        }
    }

    /// TCP connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.now.load(Ordering::Relaxed)
    }

    /// Resolves once at most `n` connections are open.
    pub async fn until_open(&self, n: usize) {
        loop {
            let closed = self.open.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open_connections() <= n {
                return;
            }
            closed.await;
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Forgets the maxima (not what is in flight now).
    pub fn reset(&self) {
        let mut counts = lock(&self.counts);
        counts.most = counts.now;
        for entry in counts.by_path.values_mut() {
            entry.1 = entry.0;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.now -= 1;
        if let Some(entry) = counts.by_path.get_mut(&self.path) {
            entry.0 -= 1;
        }
    }
}

fn lock(counts: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxima_per_path_and_overall() {
        let c = Concurrency::default();
        let a1 = c.enter("/a");
        let a2 = c.enter("/a");
        let b = c.enter("/b");
        drop(a1);
        let _a3 = c.enter("/a");
        assert_eq!(c.most_in_flight("/a"), 2);
        assert_eq!(c.most_in_flight("/b"), 1);
        assert_eq!(c.most_in_flight_overall(), 3);
        drop((a2, b));
        c.reset();
        assert_eq!(c.most_in_flight("/a"), 1);
        assert_eq!(c.most_in_flight_overall(), 1);
        c.connection_accepted();
        assert_eq!(c.connections(), 1);
    }

    #[tokio::test]
    async fn open_connections_count_down_as_guards_drop() {
        let c = Concurrency::default();
        let (first, second) = (c.connection_opened(), c.connection_opened());
        assert_eq!(c.open_connections(), 2);
        c.until_open(2).await;
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.until_open(0).await }
        });
        drop(first);
        assert_eq!(c.open_connections(), 1);
        drop(second);
        waiter.await.unwrap();
        assert_eq!(c.open_connections(), 0);
    }
}
