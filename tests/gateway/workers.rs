//! Serving on per-core worker threads (what `psu-gateway run` does): every
//! connection on one worker, one session cache and one policy for all.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_every_worker_share_one_session_cache() {
    let stack = Arc::new(Setup::default().workers(2).start().await);
    let cookie = Arc::new(stack.sign_in("admin", "admin").await);
    // Each request on a new connection: the connections go round-robin
    // over both workers, all at once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (stack, cookie) = (stack.clone(), cookie.clone());
        let proto = if i % 2 == 0 { Proto::H1 } else { Proto::H2 };
        tasks.push(tokio::spawn(async move {
            stack
                .send_with(
                    proto,
                    http::Method::GET,
                    "/api/v1/usersession",
                    &[("cookie", &cookie)],
                    bytes::Bytes::new(),
                )
                .await
                .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(stack.introspections(), 1, "one cache for every worker");
    let seen = stack.upstream_saw("/api/v1/usersession");
    assert_eq!(seen.len(), 40);
    let token = bearer(&stack.token);
    assert!(seen
        .iter()
        .all(|r| header(r, "x-psu-authorization") == [token.as_str()]
            && header(r, "cookie").is_empty()));
    stack
        .get("/api/v1/usersession", &[])
        .await
        .assert_problem(401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_tunnel_lives_on_its_worker() {
    let stack = Setup::default()
        .workers(2)
        .edit(
            "[[route]]\nname = \"pages\"",
            "[[route]]\nname = \"hub\"\npath = \"/dashboardhub\"\naccess = \"session\"\n\n[[route]]\nname = \"pages\"",
        )
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    let mut conn = stack.connect().await;
    let upgrade = format!(
        "GET /dashboardhub HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: {cookie}\r\n\r\n"
    );
    conn.write_all(upgrade.as_bytes()).await.unwrap();
    let head = read_response(&mut conn).await;
    assert_eq!(raw_status(&head), 101, "{head}");
    let mut socket = WebSocketStream::from_raw_socket(conn, Role::Client, None).await;
    socket
        .send(Message::text("through a worker"))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "through a worker");
}
