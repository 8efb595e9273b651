//! The simulator's `--windows-auth ntlm` over real sockets: real curl, the
//! Rust NTLM client on one kept-open HTTP/1.1 connection, a leg on the
//! wrong connection, and WebSocket on an authenticated connection.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use psu_gateway::sim::{ntlm, Sim, SimOptions, SimUser};

use super::Reply;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const PASSWORD: &str = "Wonder-land 1";

async fn sim() -> Sim {
    let mut users = vec![SimUser::new("alice", PASSWORD, &["Reader"])];
    users.extend(psu_gateway::sim::default_users());
    let opts = SimOptions {
        windows_auth: true,
        users,
        ..SimOptions::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Sim::spawn(opts, listener).await.unwrap()
}

impl Reply {
    fn challenges(&self) -> Vec<&str> {
        let all = self.headers.get_all("www-authenticate");
        all.iter().map(|v| v.to_str().unwrap()).collect()
    }

    /// The CHALLENGE of a leg-2 answer under `scheme`.
    fn type2(&self, scheme: &str) -> Vec<u8> {
        assert_eq!(self.status, 401, "leg 2 is a 401");
        let challenges = self.challenges();
        assert_eq!(challenges.len(), 1, "{challenges:?}");
        let token = challenges[0]
            .strip_prefix(&format!("{scheme} "))
            .unwrap_or_else(|| panic!("a {scheme} challenge: {challenges:?}"));
        BASE64.decode(token).unwrap()
    }

    fn assert_fresh_challenge(&self) {
        assert_eq!(self.status, 401);
        let mut challenges = self.challenges();
        challenges.sort_unstable();
        assert_eq!(challenges, ["NTLM", "Negotiate"]);
    }
}

/// One HTTP/1.1 connection kept open across requests.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
}

impl Conn {
    async fn open(sim: &Sim) -> Conn {
        let tcp = TcpStream::connect(sim.addr()).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(connection.with_upgrades());
        Conn { sender }
    }

    async fn send(
        &mut self,
        request: http::request::Builder,
    ) -> hyper::Response<hyper::body::Incoming> {
        let request = request
            .header("host", "localhost")
            .body(Empty::new())
            .unwrap();
        self.sender.ready().await.expect("connection open");
        self.sender.send_request(request).await.expect("response")
    }

    async fn get(&mut self, path: &str, authorization: Option<&str>) -> Reply {
        let mut request = Request::get(path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = self.send(request).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Legs 1 and 2: the CHALLENGE this connection got under `scheme`.
    async fn negotiate(&mut self, scheme: &str) -> Vec<u8> {
        let type1 = format!("{scheme} {}", BASE64.encode(ntlm::client_negotiate()));
        self.get("/sim/whoami", Some(&type1)).await.type2(scheme)
    }

    /// All three legs as `user`; the reply to leg 3.
    async fn sign_in(&mut self, scheme: &str, user: &str, password: &str) -> Reply {
        let type2 = self.negotiate(scheme).await;
        let type3 = ntlm::client_authenticate(&type2, user, "", password).unwrap();
        let type3 = format!("{scheme} {}", BASE64.encode(type3));
        self.get("/sim/whoami", Some(&type3)).await
    }
}

/// Runs curl without blocking the runtime serving the simulator; returns
/// the status and the body.
async fn curl(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_owned())
}

#[tokio::test]
async fn real_curl_ntlm_names_the_user() {
    if !crate::curl::curl_available() {
        return;
    }
    let sim = sim().await;
    let url = format!("http://{}/sim/whoami", sim.addr());
    for user in ["alice", "ALICE", "CORP\\alice"] {
        let credentials = format!("{user}:{PASSWORD}");
        let (status, body) = curl(&["--ntlm", "-u", &credentials, &url]).await;
        assert_eq!(status, 200, "{user}: {body}");
        let whoami: Value = serde_json::from_str(&body).expect(&body);
        assert_eq!(whoami["user"], "alice", "{user}: {body}");
        assert!(whoami["connection"].as_u64().is_some(), "{body}");
    }
    let wrong = format!("alice:{PASSWORD}x");
    let (status, _) = curl(&["--ntlm", "-u", &wrong, &url]).await;
    assert_eq!(status, 401, "a wrong password");
    let (status, _) = curl(&[&url]).await;
    assert_eq!(status, 401, "no credentials");
}

#[tokio::test]
async fn a_fresh_connection_gets_both_challenges_on_every_path() {
    let sim = sim().await;
    let mut conn = Conn::open(&sim).await;
    for path in ["/sim/whoami", "/sim/echo", "/", "/api/v1/accessible"] {
        conn.get(path, None).await.assert_fresh_challenge();
    }
    let bearer = conn.get("/sim/echo", Some("Bearer abc")).await;
    bearer.assert_fresh_challenge();
    let spnego = "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag";
    conn.get("/sim/whoami", Some(spnego))
        .await
        .assert_fresh_challenge();
    assert_eq!(
        sim.recorder().count("/sim/echo"),
        2,
        "challenged requests are recorded"
    );
}

#[tokio::test]
async fn the_handshake_makes_the_connection_the_users() {
    let sim = sim().await;
    for scheme in ["NTLM", "Negotiate"] {
        let mut conn = Conn::open(&sim).await;
        let signed_in = conn.sign_in(scheme, "alice", PASSWORD).await;
        assert_eq!(signed_in.status, 200, "{scheme}");
        let whoami = signed_in.json();
        assert_eq!(whoami["user"], "alice");
        let id = whoami["connection"].as_u64().unwrap();

        // Later requests need no Authorization and stay alice's.
        for _ in 0..3 {
            let again = conn.get("/sim/whoami", None).await;
            assert_eq!(again.status, 200);
            assert_eq!(
                again.json(),
                serde_json::json!({"user": "alice", "connection": id})
            );
        }
        assert_eq!(conn.get("/sim/echo", None).await.status, 200);
        let bearer = conn.get("/sim/echo", Some("Bearer abc")).await;
        assert_eq!(bearer.status, 200, "other schemes pass to PSU");

        // Another connection is somebody else's business.
        let mut other = Conn::open(&sim).await;
        other
            .get("/sim/whoami", None)
            .await
            .assert_fresh_challenge();
    }
}

#[tokio::test]
async fn a_new_negotiate_restarts_the_handshake() {
    let sim = sim().await;
    let mut conn = Conn::open(&sim).await;
    assert_eq!(conn.sign_in("NTLM", "alice", PASSWORD).await.status, 200);
    let switched = conn.sign_in("NTLM", "reader", "reader").await;
    assert_eq!(switched.json()["user"], "reader");
    conn.negotiate("NTLM").await;
    conn.get("/sim/whoami", None).await.assert_fresh_challenge();
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_are_refused() {
    let sim = sim().await;
    let mut conn = Conn::open(&sim).await;
    for (user, password) in [("alice", "admin"), ("nobody", PASSWORD)] {
        conn.sign_in("NTLM", user, password)
            .await
            .assert_fresh_challenge();
    }
    conn.get("/sim/whoami", None).await.assert_fresh_challenge();
}

#[tokio::test]
async fn leg_three_on_another_connection_fails() {
    let sim = sim().await;
    let mut first = Conn::open(&sim).await;
    let type2 = first.negotiate("NTLM").await;
    let type3 = ntlm::client_authenticate(&type2, "alice", "", PASSWORD).unwrap();
    let type3 = format!("NTLM {}", BASE64.encode(type3));
    let mut second = Conn::open(&sim).await;
    second
        .get("/sim/whoami", Some(&type3))
        .await
        .assert_fresh_challenge();
    second
        .get("/sim/whoami", None)
        .await
        .assert_fresh_challenge();
    // The first connection still holds its challenge: there it works.
    let on_first = first.get("/sim/whoami", Some(&type3)).await;
    assert_eq!(on_first.json()["user"], "alice");
}

#[tokio::test]
async fn whoami_close_ends_the_connection() {
    let sim = sim().await;
    let mut conn = Conn::open(&sim).await;
    conn.sign_in("NTLM", "alice", PASSWORD).await;
    let open = sim.recorder().concurrency.open_connections();
    let reply = conn.get("/sim/whoami?close=1", None).await;
    assert_eq!(reply.json()["user"], "alice");
    assert_eq!(reply.headers["connection"], "close");
    sim.recorder().concurrency.until_open(open - 1).await;
}

/// A WebSocket upgrade request for `/dashboardhub`.
pub(crate) fn websocket_upgrade() -> http::request::Builder {
    Request::get("/dashboardhub")
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

#[tokio::test]
async fn websocket_works_on_an_authenticated_connection_only() {
    let sim = sim().await;
    let mut anonymous = Conn::open(&sim).await;
    let refused = anonymous.send(websocket_upgrade()).await;
    assert_eq!(refused.status(), 401);

    let mut conn = Conn::open(&sim).await;
    assert_eq!(conn.sign_in("NTLM", "alice", PASSWORD).await.status, 200);
    let response = conn.send(websocket_upgrade()).await;
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let mut socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    socket.send(Message::text("hello")).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello");
}
