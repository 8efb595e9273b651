//! Thread-per-core serving: one single-threaded tokio runtime per core.
//!
//! Why: on tokio's work-stealing runtime a client connection's task and the
//! pooled upstream connection its request borrows usually run on different
//! threads, so every proxied request pays futex wake-ups and cache-line
//! transfers between cores. Measured on the 2-core machine with the load
//! bench, that cost ~15% of cache-hit throughput on HTTP/1.1 and ~40% on
//! h2. Here a connection is handed to one worker for its whole life, and the
//! upstream pool is split per worker (see `upstream.rs`), so the request,
//! its upstream connection and both sockets' I/O stay on one thread.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// How long a stopping worker waits for its blocking tasks (DNS lookups).
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Which worker the calling thread is; 0 on any other thread.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// How many workers a server starts: one per core the process may use.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The running workers. Tasks are handed out round-robin.
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` (at least one) worker threads.
    pub fn start(count: usize) -> std::io::Result<Self> {
        let mut workers = Self {
            handles: Vec::new(),
            next: AtomicUsize::new(0),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for index in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            workers.stops.push(stop);
            workers.threads.push(
                std::thread::Builder::new()
                    .name(format!("psu-worker-{index}"))
                    .spawn(move || {
                        INDEX.with(|i| i.set(index));
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                        runtime.shutdown_timeout(STOP_TIMEOUT);
                    })?,
            );
        }
        Ok(workers)
    }

    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs `task` on the next worker.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(task);
    }

    /// Stops every worker; tasks still running there are dropped.
    pub async fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_go_round_robin_and_know_their_worker() {
        let workers = Workers::start(2).unwrap();
        assert_eq!(workers.count(), 2);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel();
            workers.spawn(async move {
                let _ = tx.send((current(), std::thread::current().name().map(str::to_owned)));
            });
            seen.push(rx.await.unwrap());
        }
        let indexes: Vec<usize> = seen.iter().map(|s| s.0).collect();
        assert_eq!(indexes, [0, 1, 0, 1]);
        assert_eq!(seen[1].1.as_deref(), Some("psu-worker-1"));
        assert_eq!(current(), 0, "outside the workers");
        workers.stop().await;
    }

    #[tokio::test]
    async fn stop_drops_pending_tasks_and_joins() {
        let workers = Workers::start(1).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        workers.spawn(async move {
            std::future::pending::<()>().await;
            drop(tx);
        });
        tokio::time::timeout(Duration::from_secs(5), workers.stop())
            .await
            .expect("stopped");
        assert!(rx.await.is_err(), "the pending task was dropped");
    }
}
