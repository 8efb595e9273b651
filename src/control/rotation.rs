//! Watches the token, certificate and key files and re-reads them when they
//! change, so a rotated token or certificate is used without a restart.
//!
//! Directories are watched, not files: secret managers and `kubectl`
//! replace a file by renaming a new one over it (or swapping a symlink),
//! which a watch on the old inode never sees. inotify can also miss events
//! (a full queue, a network filesystem), so the files are re-read on a
//! timer as well.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::control::live::Live;
use crate::serve::generation::Generation;

/// The fallback re-read period when no file event arrives.
pub const REREAD_EVERY: Duration = Duration::from_secs(30);

/// Writers often truncate then write: wait for a burst of events to settle
/// before reading, so a half-written file is not reported as broken.
const SETTLE: Duration = Duration::from_millis(100);

/// Runs until aborted.
pub fn spawn(live: Arc<Live>) -> JoinHandle<()> {
    tokio::spawn(watch_files(live))
}

async fn watch_files(live: Arc<Live>) {
    let (tx, mut events) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            // A full channel already holds a wake-up.
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(error = %e, every = ?REREAD_EVERY, "cannot watch files; re-reading them on a timer only");
            None
        }
    };
    let mut generations = live.changes();
    let mut watched = BTreeSet::new();
    let mut timer = tokio::time::interval(REREAD_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer.tick().await;
    loop {
        if let Some(watcher) = watcher.as_mut() {
            watched = rewatch(watcher, watched, directories(&live.current()));
        }
        tokio::select! {
            Some(()) = events.recv() => {
                tokio::time::sleep(SETTLE).await;
                while events.try_recv().is_ok() {}
                live.refresh_files().await;
            }
            _ = timer.tick() => live.refresh_files().await,
            changed = generations.changed() => if changed.is_err() { return },
        }
    }
}

/// The directories holding the files one generation reads.
fn directories(generation: &Generation) -> BTreeSet<PathBuf> {
    let tls = &generation.config().tls;
    let mut files: Vec<&Path> = tls.source.files();
    if let Some(token) = generation.gateway.token().and_then(|t| t.file()) {
        files.push(token);
    }
    files
        .into_iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .collect()
}

/// Moves the watches to `wanted`, keeping those already in place.
fn rewatch(
    watcher: &mut RecommendedWatcher,
    mut watched: BTreeSet<PathBuf>,
    wanted: BTreeSet<PathBuf>,
) -> BTreeSet<PathBuf> {
    for gone in watched.difference(&wanted) {
        let _ = watcher.unwatch(gone);
    }
    watched.retain(|d| wanted.contains(d));
    for dir in wanted {
        if watched.contains(&dir) {
            continue;
        }
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(dir);
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; its files are re-read on a timer only")
            }
        }
    }
    watched
}
