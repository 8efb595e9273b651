//! NTLM / Negotiate through the gateway against the simulator's
//! connection-bound authentication (`--windows-auth ntlm`): each client
//! connection keeps its own upstream connection, so no identity crosses
//! from one client connection to another.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use psu_gateway::sim::ntlm;
use rustls_pki_types::ServerName;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::child::ChildGateway;
use crate::support::*;
use psu_gateway::sim::SimOptions;

/// How long a close may take before the test fails (a bound, not a wait:
/// each test returns as soon as the close is seen).
const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A gateway whose upstream authenticates connections with NTLM.
fn windows_setup() -> Setup {
    Setup::default().sim(|s| s.windows_auth = true)
}

/// One HTTP/1.1 client connection to the gateway, kept open across
/// requests (a pooled client would defeat the point).
pub struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    driver: JoinHandle<()>,
}

impl Conn {
    pub async fn open(stack: &Stack) -> Conn {
        let tls = stack.connect().await;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        let driver = tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        Conn { sender, driver }
    }

    pub async fn send(&mut self, request: http::request::Builder) -> http::Response<Incoming> {
        let request = request.header("host", "localhost");
        self.sender.ready().await.expect("connection open");
        let response = self
            .sender
            .send_request(request.body(Empty::new()).unwrap());
        response.await.expect("response")
    }

    pub async fn get(&mut self, path: &str, authorization: Option<&str>) -> Reply {
        let mut request = Request::get(path).header("host", "localhost");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        self.sender.ready().await.expect("connection open");
        let response = self
            .sender
            .send_request(request.body(Empty::new()).unwrap())
            .await
            .expect("response");
        Reply::read(response).await
    }

    /// The three legs of NTLM on this connection, as `user`.
    pub async fn sign_in(&mut self, user: &str, password: &str) -> Reply {
        let negotiate = format!("NTLM {}", BASE64.encode(ntlm::client_negotiate()));
        let challenge = self.get("/sim/whoami", Some(&negotiate)).await;
        assert_eq!(challenge.status, 401, "leg 2 is a 401 challenge");
        let type2 = challenge.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .strip_prefix("NTLM ")
            .expect("an NTLM challenge")
            .to_owned();
        let type2 = BASE64.decode(type2).unwrap();
        let type3 = ntlm::client_authenticate(&type2, user, "", password).unwrap();
        let authenticate = format!("NTLM {}", BASE64.encode(type3));
        self.get("/sim/whoami", Some(&authenticate)).await
    }

    /// Who the simulator says this connection is; `None` for a 401.
    pub async fn whoami(&mut self) -> Option<String> {
        let reply = self.get("/sim/whoami", None).await;
        match reply.status {
            StatusCode::OK => Some(reply.json()["user"].as_str().unwrap().to_owned()),
            StatusCode::UNAUTHORIZED => None,
            other => panic!("whoami answered {other}"),
        }
    }

    /// Resolves when the gateway has closed this connection.
    /// The client keeps its side open: only the gateway can end it.
    pub async fn closed(self) {
        let Conn { sender, driver } = self;
        driver.await.unwrap();
        drop(sender);
    }
}

fn metric(stack: &Stack, name: &str) -> u64 {
    let scrape = stack.live().metrics().encode();
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{scrape}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn two_users_interleaved_never_see_each_other_and_a_third_inherits_nothing() {
    let stack = windows_setup().start().await;
    let mut alice = Conn::open(&stack).await;
    let mut bob = Conn::open(&stack).await;
    let mut anonymous = Conn::open(&stack).await;
    assert_eq!(
        alice.sign_in("admin", "admin").await.json()["user"],
        "admin"
    );
    assert_eq!(
        bob.sign_in("reader", "reader").await.json()["user"],
        "reader"
    );
    let (mut seen_alice, mut seen_bob, mut seen_anonymous) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..50 {
        seen_alice.push(alice.whoami().await);
        seen_bob.push(bob.whoami().await);
        seen_anonymous.push(anonymous.whoami().await);
    }
    let count = |seen: &[Option<String>], who: Option<&str>| {
        seen.iter().filter(|s| s.as_deref() == who).count()
    };
    eprintln!(
        "cross-user: 150 requests after sign-in; alice's conn answered as admin {}, as reader {}; \
         bob's as reader {}, as admin {}; the anonymous conn: 401 {}, an identity {}; \
         upstream connections accepted by the simulator {}",
        count(&seen_alice, Some("admin")),
        count(&seen_alice, Some("reader")),
        count(&seen_bob, Some("reader")),
        count(&seen_bob, Some("admin")),
        count(&seen_anonymous, None),
        50 - count(&seen_anonymous, None),
        stack.sim.recorder().concurrency.connections(),
    );
    assert_eq!(count(&seen_alice, Some("admin")), 50, "{seen_alice:?}");
    assert_eq!(count(&seen_bob, Some("reader")), 50, "{seen_bob:?}");
    assert_eq!(count(&seen_anonymous, None), 50, "{seen_anonymous:?}");
    // The anonymous connection was challenged, so it is pinned too: to an
    // upstream connection nobody authenticated.
    assert_eq!(metric(&stack, "psu_gateway_pinned_connections"), 3);
    assert_eq!(metric(&stack, "psu_gateway_pinned_connections_total"), 3);
}

#[tokio::test]
async fn the_upstream_connection_closes_with_the_client_connection() {
    let stack = windows_setup().start().await;
    let mut alice = Conn::open(&stack).await;
    alice.sign_in("admin", "admin").await;
    let open = stack.sim.recorder().concurrency.open_connections();
    assert!(open >= 1);
    drop(alice);
    // The pinned connection is the only one the simulator sees closing.
    let closed = stack.sim.recorder().concurrency.until_open(open - 1);
    tokio::time::timeout(LIMIT, closed)
        .await
        .expect("the simulator saw the pinned connection close");
    assert_eq!(metric(&stack, "psu_gateway_pinned_connections"), 0);
    assert_eq!(metric(&stack, "psu_gateway_pinned_connections_total"), 1);
}

#[tokio::test]
async fn the_client_connection_closes_when_psu_closes_the_pinned_one() {
    let stack = windows_setup().start().await;
    let mut alice = Conn::open(&stack).await;
    alice.sign_in("admin", "admin").await;
    let reply = alice.get("/sim/whoami?close=1", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["user"], "admin");
    tokio::time::timeout(LIMIT, alice.closed())
        .await
        .expect("the gateway closed the client connection");
}

#[tokio::test]
async fn a_credential_sent_on_a_second_connection_authenticates_nothing() {
    let stack = windows_setup().start().await;
    let mut first = Conn::open(&stack).await;
    let negotiate = format!("NTLM {}", BASE64.encode(ntlm::client_negotiate()));
    let challenge = first.get("/sim/whoami", Some(&negotiate)).await;
    let type2 = challenge.headers["www-authenticate"].to_str().unwrap()[5..].to_owned();
    let type3 =
        ntlm::client_authenticate(&BASE64.decode(type2).unwrap(), "admin", "", "admin").unwrap();
    let mut second = Conn::open(&stack).await;
    let reply = second
        .get(
            "/sim/whoami",
            Some(&format!("NTLM {}", BASE64.encode(type3))),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(first.whoami().await, None);
    assert_eq!(second.whoami().await, None);
}

#[tokio::test]
async fn a_challenge_pins_and_plain_traffic_stays_pooled() {
    let stack = windows_setup().start().await;
    let mut first = Conn::open(&stack).await;
    // No credential yet: PSU's challenge alone pins the connection.
    assert_eq!(first.whoami().await, None);
    assert_eq!(metric(&stack, "psu_gateway_pinned_connections_total"), 0);
    let reply = first.sign_in("admin", "admin").await;
    assert_eq!(reply.json()["user"], "admin");
    assert_eq!(metric(&stack, "psu_gateway_pinned_connections_total"), 1);

    // Without Windows authentication, 4 client connections x 10 requests
    // share the pool.
    let plain = Setup::default().start().await;
    let before = plain.sim.recorder().concurrency.connections();
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(Conn::open(&plain).await);
    }
    for _ in 0..10 {
        for conn in &mut conns {
            assert_eq!(conn.get("/sim/status/200", None).await.status, 200);
        }
    }
    let opened = plain.sim.recorder().concurrency.connections() - before;
    eprintln!(
        "plain traffic: 40 requests on 4 client connections opened {opened} upstream connection(s)"
    );
    assert!(
        opened <= 1,
        "{opened} upstream connections for sequential requests"
    );
    assert_eq!(metric(&plain, "psu_gateway_pinned_connections_total"), 0);
}

#[tokio::test]
async fn max_pinned_refuses_one_more_with_503() {
    let stack = windows_setup()
        .edit("[session]", "max_pinned = 1\n\n[session]")
        .start()
        .await;
    let mut first = Conn::open(&stack).await;
    first.sign_in("admin", "admin").await;
    // A reload builds a new upstream client; the places stay the process's.
    stack.live().reload().await.unwrap();
    let mut second = Conn::open(&stack).await;
    let negotiate = format!("NTLM {}", BASE64.encode(ntlm::client_negotiate()));
    let reply = second.get("/sim/whoami", Some(&negotiate)).await;
    reply.assert_problem(503);
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(first.whoami().await.as_deref(), Some("admin"));
}

#[tokio::test]
async fn h2_gets_http_1_1_required_for_credentials_and_for_challenges() {
    let stack = windows_setup().start().await;
    let mut tls = client_tls(stack.ca());
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(stack.addr).await.unwrap();
    let stream = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let negotiate = format!("NTLM {}", BASE64.encode(ntlm::client_negotiate()));
    for authorization in [Some(negotiate.as_str()), None] {
        let mut request = Request::get(stack.url("/sim/whoami"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let mut client = client.clone().ready().await.unwrap();
        let (response, _) = client
            .send_request(request.body(()).unwrap(), true)
            .unwrap();
        let error = response.await.expect_err("the stream is reset");
        assert_eq!(
            error.reason(),
            Some(h2::Reason::HTTP_1_1_REQUIRED),
            "{authorization:?}: {error}"
        );
    }
    // The connection itself lives on: a route that strips credentials is
    // answered (by the gateway: no session).
    let mut client = client.ready().await.unwrap();
    let request = Request::get(stack.url("/sim/echo"))
        .header("authorization", negotiate.as_str())
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    drain(response.into_body()).await;
}

async fn drain(mut body: h2::RecvStream) {
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
}

// Multi-threaded: curl blocks a thread while the gateway process serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_curl_ntlm_through_the_gateway_names_the_user_and_logs_pinned() {
    if !crate::curl::curl_available() {
        return;
    }
    let sim = SimOptions {
        windows_auth: true,
        ..SimOptions::default()
    };
    let config = format!("{BASE_CONFIG}{DEFAULT_ROUTES}");
    let gateway = ChildGateway::start_with_sim(&config, sim, "info").await;
    let ca = gateway.dir().join("gateway.crt");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca)
        .args(["--ntlm", "-u", "admin:admin", "--http1.1"])
        .arg(gateway.url("/sim/whoami"))
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whoami: serde_json::Value = serde_json::from_str(&body).expect(&body);
    assert_eq!(whoami["user"], "admin");
    // Two requests: the negotiate leg (401 challenge), the authenticate
    // leg (200), both over the pinned connection.
    let line = gateway.wait_log_count("pinned=true", 2).await;
    assert!(line.contains("status=200"), "{line}");
}

#[tokio::test]
async fn off_strips_ntlm_and_negotiate_and_keeps_other_schemes() {
    let stack = Setup::default()
        .edit("[session]", "windows_auth = \"off\"\n\n[session]")
        .start()
        .await;
    for (sent, kept) in [
        ("NTLM TlRMTVNTUAABAAAA", None),
        ("negotiate YIIabc", None),
        ("Basic YWRtaW46YWRtaW4=", Some("Basic YWRtaW46YWRtaW4=")),
    ] {
        stack.sim.recorder().clear();
        let reply = stack
            .get("/sim/status/200", &[("authorization", sent)])
            .await;
        assert_eq!(reply.status, 200);
        let seen = stack.upstream_saw("/sim/status/200");
        assert_eq!(
            header(&seen[0], "authorization"),
            kept.into_iter().collect::<Vec<_>>()
        );
    }
    assert_eq!(metric(&stack, "psu_gateway_pinned_connections_total"), 0);
}

#[tokio::test]
async fn inject_and_session_routes_never_pin() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let mut conn = Conn::open(&stack).await;
    let negotiate = "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for path in ["/api/v1/usersession", "/sim/echo"] {
        stack.sim.recorder().clear();
        let mut request = Request::get(path)
            .header("host", "localhost")
            .header("authorization", negotiate)
            .header("cookie", &cookie);
        request = request.header("accept", "application/json");
        conn.sender.ready().await.unwrap();
        let response = conn
            .sender
            .send_request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, 200, "{path}");
        let seen = stack.upstream_saw(path);
        assert!(header(&seen[0], "authorization").is_empty(), "{path}");
    }
    assert_eq!(metric(&stack, "psu_gateway_pinned_connections_total"), 0);
}

#[tokio::test]
async fn a_websocket_on_a_pinned_connection_uses_the_pinned_upstream_connection() {
    let stack = windows_setup().start().await;
    let mut conn = Conn::open(&stack).await;
    assert_eq!(conn.sign_in("admin", "admin").await.status, 200);
    let accepted = stack.sim.recorder().concurrency.connections();
    let response = conn.send(crate::simulator::ntlm::websocket_upgrade()).await;
    // The simulator answers 101 only on an authenticated connection.
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let mut socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    socket.send(Message::text("hello")).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello");
    assert_eq!(
        stack.sim.recorder().concurrency.connections(),
        accepted,
        "no new upstream connection"
    );
}
