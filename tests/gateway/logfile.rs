//! `[log] file`: a running gateway writes its lines to a daily file, not
//! stderr, and keeps `keep` rotated files (a Windows service has no
//! console, so this is where its logs go).

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use psu_gateway::sim::{Sim, SimOptions};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::child::{logged_addr, prepare};
use crate::support::*;

/// The text of the one log file named `psu-gateway.<date>.log` in `dir`.
fn today(dir: &Path) -> Option<String> {
    let stamp = time::OffsetDateTime::now_utc().date();
    std::fs::read_to_string(dir.join(format!("psu-gateway.{stamp}.log"))).ok()
}

/// Waits (up to 30 s) for a line containing `needle` in today's file, woken
/// by the directory's change events.
pub(crate) async fn wait_line(dir: &Path, needle: &str) -> String {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .unwrap();
    watcher.watch(dir, RecursiveMode::NonRecursive).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found =
            today(dir).and_then(|t| t.lines().find(|l| l.contains(needle)).map(str::to_owned));
        if let Some(line) = found {
            return line;
        }
        let event = tokio::time::timeout_at(deadline, rx.recv()).await;
        assert!(
            event.is_ok(),
            "no {needle:?} in the log file within 30s:\n{}",
            today(dir).unwrap_or_default()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_go_to_the_daily_file_and_old_files_beyond_keep_are_removed() {
    let sim = Sim::spawn(
        SimOptions::default(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let config = format!(
        "{BASE_CONFIG}{DEFAULT_ROUTES}\n[log]\nfile = \"logs/psu-gateway.log\"\nkeep = 2\n"
    );
    let (dir, _token) = prepare(&sim, &config);
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    for day in 1..=4 {
        std::fs::write(
            logs.join(format!("psu-gateway.2026-01-0{day}.log")),
            "old\n",
        )
        .unwrap();
    }
    std::fs::write(logs.join("other.txt"), "not a log\n").unwrap();
    let mut child = crate::child::spawn_run(dir.path(), "info");
    let listening = wait_line(&logs, " listening ").await;
    let addr = logged_addr(&listening);
    let ca = std::fs::read(dir.path().join("gateway.crt")).unwrap();
    let answer = raw_tls(
        addr,
        &ca,
        b"GET /sim/status/200 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 200);
    let access = wait_line(&logs, "path=\"/sim/status/200\"").await;
    assert!(access.contains("status=200"), "{access}");
    assert!(!access.contains('\u{1b}'), "no colours in a file: {access}");

    // Two rotated files kept beside today's (which two: the oldest by
    // creation time go, and these four were created within the same
    // instant); other files untouched.
    let names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let stamp = time::OffsetDateTime::now_utc().date();
    let old = names
        .iter()
        .filter(|n| n.starts_with("psu-gateway.2026-01-"))
        .count();
    assert_eq!(old, 2, "{names:?}");
    assert!(
        names.contains(&format!("psu-gateway.{stamp}.log")),
        "{names:?}"
    );
    assert!(names.contains(&"other.txt".to_owned()), "{names:?}");
    assert_eq!(names.len(), 4, "{names:?}");
    child.start_kill().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(
        !stderr.contains("listening"),
        "stderr got log lines: {stderr}"
    );
}

#[test]
fn keep_without_file_and_a_bad_file_are_config_errors() {
    let dir = crate::cli::workdir();
    for (log, key, message) in [
        (
            "[log]\nkeep = 3\n",
            "log.keep",
            "only applies with log.file",
        ),
        (
            "[log]\nfile = \"logs/\"\n",
            "log.file",
            "expected a file path",
        ),
        (
            "[log]\nfile = \"x.log\"\nkeep = 0\n",
            "log.keep",
            "must be an integer",
        ),
    ] {
        let config = format!("{}\n{log}", crate::cli::valid_config());
        let out = crate::cli::check(dir.path(), &config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{log}: {stderr}");
        assert!(
            stderr.contains(&format!(": {key}: ")) && stderr.contains(message),
            "{log}: {stderr}"
        );
    }
}
