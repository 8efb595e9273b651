//! Slow and greedy peers: every timeout and size limit of `[limits]`.
//!
//! The gateway runs with real sockets, so these use short real timeouts
//! (a few hundred milliseconds) rather than tokio's paused clock, which
//! would advance while the runtime waits on the kernel. The unit tests of
//! `body.rs` cover the body gap timer with a paused clock.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn with_limits(limits: &str) -> Setup {
    Setup::default().edit("[upstream]", &format!("[limits]\n{limits}\n\n[upstream]"))
}

#[tokio::test]
async fn idle_keep_alive_is_closed_by_idle_timeout() {
    let stack = with_limits("idle_timeout = \"400ms\"\nheader_timeout = \"5s\"")
        .start()
        .await;
    let mut conn = stack.connect().await;
    // The gateway's last activity is after this instant.
    let idle_since = Instant::now();
    conn.write_all(b"GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut conn).await;
    assert_eq!(raw_status(&response), 204);
    let rest = wait_closed(&mut conn, Duration::from_secs(10)).await;
    let idle = idle_since.elapsed();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(idle >= Duration::from_millis(400), "closed after {idle:?}");
    assert!(
        idle < Duration::from_secs(4),
        "closed after {idle:?}: idle_timeout, not header_timeout"
    );
}

#[tokio::test]
async fn a_silent_tcp_peer_is_dropped_by_handshake_timeout() {
    let stack = with_limits("handshake_timeout = \"300ms\"").start().await;
    let mut tcp = TcpStream::connect(stack.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("closed within 10s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // The listener still serves others.
    assert_eq!(stack.get("/sim/status/204", &[]).await.status, 204);
}

#[tokio::test]
async fn slowloris_heads_are_cut_by_header_timeout() {
    let stack = with_limits("header_timeout = \"300ms\"").start().await;
    let mut conn = stack.connect().await;
    let started = Instant::now();
    conn.write_all(b"GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let rest = wait_closed(&mut conn, Duration::from_secs(10)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(stack.sim.recorder().requests().is_empty());
}

#[tokio::test]
async fn a_stalled_body_gets_408() {
    let stack = with_limits("body_timeout = \"300ms\"").start().await;
    let mut conn = stack.connect().await;
    let started = Instant::now();
    conn.write_all(
        b"POST /sim/status/200 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhalf!",
    )
    .await
    .unwrap();
    let response = read_response(&mut conn).await;
    assert_eq!(raw_status(&response), 408, "{response}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        stack.upstream_saw("/sim/status/200").is_empty(),
        "the simulator never got a complete request"
    );
}

#[tokio::test]
async fn bodies_over_max_body_bytes_get_413() {
    let stack = with_limits("max_body_bytes = 1024").start().await;
    // Declared too large: refused before anything is forwarded.
    let mut conn = stack.connect().await;
    conn.write_all(
        b"POST /sim/status/200 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1025\r\n\r\n",
    )
    .await
    .unwrap();
    let response = read_response(&mut conn).await;
    assert_eq!(raw_status(&response), 413, "{response}");
    // Chunked, growing past the limit mid-stream.
    let mut conn = stack.connect().await;
    let chunk = format!("200\r\n{}\r\n", "x".repeat(0x200));
    conn.write_all(
        b"POST /sim/status/200 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        conn.write_all(chunk.as_bytes()).await.unwrap();
    }
    conn.write_all(b"0\r\n\r\n").await.unwrap();
    let response = read_response(&mut conn).await;
    assert_eq!(raw_status(&response), 413, "{response}");
    // Exactly at the limit passes.
    let mut conn = stack.connect().await;
    let body = "y".repeat(1024);
    conn.write_all(format!("POST /sim/status/200 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1024\r\n\r\n{body}").as_bytes()).await.unwrap();
    let response = read_response(&mut conn).await;
    assert_eq!(raw_status(&response), 200, "{response}");
    let seen = stack.upstream_saw("/sim/status/200");
    let complete: Vec<usize> = seen
        .iter()
        .filter(|r| r.body_complete)
        .map(|r| r.body.len())
        .collect();
    assert_eq!(
        complete,
        [1024],
        "only the body within the limit reached the simulator whole"
    );
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let stack = with_limits("max_header_bytes = 8192\nmax_headers = 20")
        .start()
        .await;
    let big = format!(
        "GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    let response = stack.raw(big.as_bytes()).await;
    assert_eq!(raw_status(&response), 431, "{response}");
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = stack.raw(format!("GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\n{many}Connection: close\r\n\r\n").as_bytes()).await;
    assert_eq!(raw_status(&response), 431, "{response}");
    assert!(stack.sim.recorder().requests().is_empty());
    let fine = stack
        .raw(b"GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(raw_status(&fine), 204);
}

#[tokio::test]
async fn max_connections_queues_new_ones_until_a_slot_frees() {
    let stack = with_limits("max_connections = 2").start().await;
    let mut first = stack.connect().await;
    let mut second = stack.connect().await;
    // A third TCP connection is accepted by the kernel but not served: its
    // TLS handshake cannot finish while both slots are taken.
    let pending = tokio::spawn(stack.connect_owned());
    for conn in [&mut first, &mut second] {
        conn.write_all(b"GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            raw_status(&read_response(conn).await),
            204,
            "existing connections keep working"
        );
    }
    assert!(!pending.is_finished(), "the third connection must wait");
    drop(first);
    let mut third = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("served once a slot frees")
        .unwrap();
    third
        .write_all(b"GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut third).await), 204);
}

/// A client that stops reading its response holds a connection slot only
/// until nothing has moved for max(idle_timeout, upstream_timeout).
#[tokio::test]
async fn a_peer_that_stops_reading_is_cut_off() {
    let stack = with_limits("idle_timeout = \"500ms\"\nupstream_timeout = \"500ms\"")
        .start()
        .await;
    let mut conn = stack.connect().await;
    conn.write_all(b"GET /sim/large?bytes=209715200 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 4096];
    let n = conn.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // Being the slow reader is what this test is about.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest = wait_closed(&mut conn, Duration::from_secs(20)).await;
    assert!(
        rest.len() < 100 << 20,
        "read {} bytes: the connection was not cut",
        rest.len()
    );
}
