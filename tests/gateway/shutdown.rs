//! SIGTERM on a real `psu-gateway run` process: stop accepting, let the
//! request in flight finish, exit 0.

use std::time::{Duration, Instant};

use psu_gateway::sim::{Sim, SimOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

use crate::support::*;
use crate::websocket::echo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    psu_gateway::cli::devcert::write(dir.path(), &["localhost".to_owned()]).unwrap();
    let ca = std::fs::read(dir.path().join("gateway.crt")).unwrap();
    let sim = Sim::spawn(
        SimOptions::default(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    // A free port for the child: bound here, released just before it starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[listen]\naddr = \"127.0.0.1:{port}\"\n\n[tls]\ncert = \"gateway.crt\"\nkey = \"gateway.key\"\n\n[limits]\nshutdown_grace = \"20s\"\n\n[upstream]\nurl = \"http://{}\"\n\n[[route]]\nname = \"all\"\nprefix = \"/\"\naccess = \"public\"\n",
        sim.addr()
    );
    std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
    let mut child = crate::child::spawn_run(dir.path(), "info");
    let mut logs = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = async {
        while let Some(line) = logs.next_line().await.unwrap() {
            if line.contains("listening") {
                return;
            }
        }
        panic!("the gateway exited before listening");
    };
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("listening within 30s");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let slow = tokio::spawn({
        let ca = ca.clone();
        async move {
            raw_tls(addr, &ca, b"GET /sim/status/200?delay_ms=1500 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await
        }
    });
    // Wait until the request is inside the simulator, i.e. in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.recorder().count("/sim/status/200") == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the simulator"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());

    let response = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .expect("in-flight request finished")
        .unwrap();
    assert_eq!(raw_status(&response), 200, "{response}");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exited")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    // Nothing listens any more.
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "the listener is closed");
    let mut rest = String::new();
    while let Ok(Some(line)) = logs.next_line().await {
        rest.push_str(&line);
    }
    assert!(!rest.contains("ERROR"), "{rest}");
}

/// A WebSocket tunnel through a child gateway: the upgraded TLS stream.
async fn open_tunnel(
    gateway: &crate::child::ChildGateway,
) -> tokio_tungstenite::WebSocketStream<TlsStream> {
    use tokio::io::AsyncWriteExt;
    let mut tls = client_tls(&gateway.ca);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let mut conn = connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    conn.write_all(b"GET /dashboardhub HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let head = read_response(&mut conn).await;
    assert_eq!(raw_status(&head), 101, "{head}");
    tokio_tungstenite::WebSocketStream::from_raw_socket(
        conn,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await
}

/// Waits for the log line that says the listener is closed. (Probing the
/// freed port instead could reach whatever bound it next.)
async fn until_closed(gateway: &crate::child::ChildGateway) {
    gateway.wait_log("stopped accepting; draining").await;
}

fn grace_config(grace: &str) -> String {
    format!("{BASE_CONFIG}\n[limits]\nshutdown_grace = \"{grace}\"\n{DEFAULT_ROUTES}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_tunnel_finish_then_exits_0() {
    let mut gateway = crate::child::ChildGateway::start(&grace_config("30s")).await;
    let mut socket = open_tunnel(&gateway).await;
    echo(&mut socket, "before").await;
    gateway.signal("TERM");
    until_closed(&gateway).await;
    // The process is still running (the tunnel holds it): nothing answers.
    assert!(
        tokio::net::TcpStream::connect(gateway.addr).await.is_err(),
        "still accepting after 'stopped accepting'"
    );
    // Stopped accepting, but the tunnel still carries traffic.
    echo(&mut socket, "after SIGTERM").await;
    // Close handshake, then the client hangs up, as a browser does.
    socket.close(None).await.unwrap();
    while let Some(Ok(_)) = futures_util::StreamExt::next(&mut socket).await {}
    drop(socket);
    let started = Instant::now();
    assert_eq!(gateway.exit_code(Duration::from_secs(20)).await, Some(0));
    // It left as soon as the tunnel closed, well inside the 30 s grace.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_a_tunnel_still_open_after_the_grace() {
    use futures_util::StreamExt;
    let mut gateway = crate::child::ChildGateway::start(&grace_config("1s")).await;
    let mut socket = open_tunnel(&gateway).await;
    echo(&mut socket, "before").await;
    let signalled = Instant::now();
    gateway.signal("TERM");
    assert_eq!(gateway.exit_code(Duration::from_secs(20)).await, Some(0));
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "left before the grace: {waited:?}"
    );
    // The tunnel is gone with the process.
    let end = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("closed");
    assert!(
        !matches!(
            end,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_)))
        ),
        "{end:?}"
    );
    let logs = gateway.log_lines().join("\n");
    assert!(logs.contains("shutdown grace elapsed"), "{logs}");
}

/// Connections accepted before SIGTERM whose TLS handshake and first
/// request arrive after the gateway began stopping (a balancer's fresh
/// connections) still get their answer; only then are they closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_with_no_request_yet_get_their_first_one_served() {
    use tokio::io::AsyncWriteExt;
    let config = format!("{BASE_CONFIG}{DEFAULT_ROUTES}");
    let mut gateway = crate::child::ChildGateway::start(&config).await;
    let mut tcp = Vec::new();
    for _ in 0..8 {
        tcp.push(tokio::net::TcpStream::connect(gateway.addr).await.unwrap());
    }
    gateway.signal("TERM");
    until_closed(&gateway).await;
    let mut tls = client_tls(&gateway.ca);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let mut answers = Vec::new();
    for tcp in tcp {
        let connector = connector.clone();
        answers.push(tokio::spawn(async move {
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut fresh = connector.connect(name, tcp).await.unwrap();
            fresh
                .write_all(b"GET /sim/status/200 HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .unwrap();
            let response = read_response(&mut fresh).await;
            wait_closed(&mut fresh, Duration::from_secs(10)).await;
            response
        }));
    }
    for answer in answers {
        let response = answer.await.unwrap();
        assert_eq!(raw_status(&response), 200, "{response:?}");
        assert!(
            response.to_ascii_lowercase().contains("connection: close"),
            "{response}"
        );
    }
    assert_eq!(gateway.exit_code(Duration::from_secs(20)).await, Some(0));
    assert_eq!(gateway.sim.recorder().count("/sim/status/200"), 8);
}
