//! WebSocket pass-through: a tunnel only after PSU's 101, never on inject
//! routes, and a refused upgrade leaves an ordinary HTTP connection.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::*;

const HUB_ROUTE: &str = "[[route]]\nname = \"hub\"\npath = \"/dashboardhub\"\naccess = \"session\"\n\n[[route]]\nname = \"pages\"";

/// Sends `text` and asserts it comes back within 10 s.
pub async fn echo(socket: &mut WebSocketStream<TlsStream>, text: &str) {
    socket.send(Message::text(text)).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), text);
}

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn a_signed_in_page_gets_an_echoing_tunnel() {
    let stack = Setup::default()
        .edit("[[route]]\nname = \"pages\"", HUB_ROUTE)
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    // The raw request says `Host: localhost`, so that is its own origin.
    let origin = "https://localhost";
    let mut conn = stack.connect().await;
    conn.write_all(
        upgrade(
            "/dashboardhub",
            &format!("Cookie: {cookie}\r\nOrigin: {origin}\r\n"),
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_response(&mut conn).await;
    assert_eq!(raw_status(&head), 101, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let mut socket = WebSocketStream::from_raw_socket(conn, Role::Client, None).await;
    for text in ["hello", "second message"] {
        echo(&mut socket, text).await;
    }
    let seen = stack.upstream_saw("/dashboardhub");
    assert_eq!(seen.len(), 1);
    assert_eq!(header(&seen[0], "upgrade"), ["websocket"]);
    assert_eq!(header(&seen[0], "cookie"), [cookie.as_str()]);
    assert!(header(&seen[0], "x-psu-authorization").is_empty());
}

#[tokio::test]
async fn a_refused_upgrade_stays_http_and_the_next_request_is_checked() {
    let stack = Setup::default()
        .edit("[[route]]\nname = \"pages\"", HUB_ROUTE)
        .start()
        .await;
    // No session: 401 from the gateway, then the next bytes are a new request.
    let bytes = format!(
        "{}GET /api/v1/usersession HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        upgrade("/dashboardhub", "")
    );
    let output = stack.raw(bytes.as_bytes()).await;
    let codes: Vec<&str> = output
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &output[at + 9..at + 12])
        .collect();
    assert_eq!(codes, ["401", "401"], "{output}");
    // PSU refusing the upgrade (426 on a public route): returned as is, the
    // connection stays HTTP and the pipelined request is answered on its own.
    let bytes = format!(
        "{}GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        upgrade("/sim/status/426", "")
    );
    let output = stack.raw(bytes.as_bytes()).await;
    let codes: Vec<&str> = output
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &output[at + 9..at + 12])
        .collect();
    assert_eq!(codes, ["426", "204"], "{output}");
    assert!(stack.upstream_saw("/dashboardhub").is_empty());
    assert!(stack.upstream_saw("/api/v1/usersession").is_empty());
}

#[tokio::test]
async fn inject_routes_never_upgrade() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let bytes = upgrade(
        "/api/v1/usersession",
        &format!("Cookie: {cookie}\r\nConnection: close\r\n"),
    );
    let output = stack.raw(bytes.as_bytes()).await;
    assert_eq!(raw_status(&output), 200, "{output}");
    let seen = stack.upstream_saw("/api/v1/usersession");
    assert!(
        header(&seen[0], "upgrade").is_empty(),
        "the upgrade was not forwarded"
    );
    assert!(header(&seen[0], "sec-websocket-key").len() == 1);
}

#[tokio::test]
async fn idle_tunnels_are_closed() {
    let stack = Setup::default()
        .edit("[[route]]\nname = \"pages\"", HUB_ROUTE)
        .edit(
            "[upstream]",
            "[limits]\ntunnel_idle_timeout = \"300ms\"\n\n[upstream]",
        )
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    let mut conn = stack.connect().await;
    conn.write_all(upgrade("/dashboardhub", &format!("Cookie: {cookie}\r\n")).as_bytes())
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut conn).await), 101);
    let opened = Instant::now();
    wait_closed(&mut conn, Duration::from_secs(10)).await;
    assert!(
        opened.elapsed() >= Duration::from_millis(250),
        "{:?}",
        opened.elapsed()
    );
}
