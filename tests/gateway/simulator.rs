//! The simulator over real sockets: the harness, pages, recording, h2c,
//! TLS, shutdown and static mode here; PSU's sessions in `sessions`, app
//! tokens and front-door modes in `tokens`, app-token grants in `grants`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use psu_gateway::sim::{Sim, SimOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod grants;
pub(crate) mod ntlm;
mod sessions;
mod tokens;

const COOKIE: &str = ".AspNetCore.Identity.Application";
const HOUR: Duration = Duration::from_secs(3600);

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `Cookie` header a browser would send back.
    fn cookie_header(&self) -> String {
        let pairs: Vec<&str> = self
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap())
            .collect();
        pairs.join("; ")
    }
}

struct Harness {
    sim: Sim,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Harness {
    async fn start(configure: impl FnOnce(&mut SimOptions)) -> Self {
        let mut opts = SimOptions::default();
        configure(&mut opts);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = Sim::spawn(opts, listener).await.unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { sim, client }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        send_with(&self.client, &self.sim, method, path, headers, body).await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, "").await
    }

    async fn sign_in(&self, user: &str, password: &str) -> Reply {
        let body = serde_json::json!({"username": user, "password": password}).to_string();
        self.send(
            Method::POST,
            "/api/v1/signin",
            &[("content-type", "application/json")],
            &body,
        )
        .await
    }

    /// Signs in and returns the `Cookie` header value.
    async fn cookie(&self, user: &str) -> String {
        let reply = self.sign_in(user, user).await;
        assert_eq!(reply.status, 200);
        reply.cookie_header()
    }

    fn token(&self, roles: &[&str]) -> String {
        self.sim
            .mint_token("script", roles, HOUR)
            .token
            .expose()
            .to_owned()
    }
}

async fn send_with(
    client: &Client<HttpConnector, Full<Bytes>>,
    sim: &Sim,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", sim.addr()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("answered in 10s")
        .expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn status_route_answers_any_code_after_a_real_delay() {
    let h = Harness::start(|_| {}).await;
    let reply = h.get("/sim/status/503", &[]).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "503 Service Unavailable\n");
    let started = Instant::now();
    let delayed = h.get("/sim/status/200?delay_ms=50", &[]).await;
    assert_eq!(delayed.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(h.get("/sim/status/nope", &[]).await.status, 400);
}

#[tokio::test]
async fn pages_echo_and_unknown_paths() {
    let h = Harness::start(|_| {}).await;
    for path in ["/", "/login", "/dashboard", "/sim/other-origin"] {
        let page = h.get(path, &[]).await;
        assert_eq!(page.status, 200);
        assert!(page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    assert!(String::from_utf8_lossy(&h.get("/login", &[]).await.body).contains("/api/v1/signin"));
    let echo = h
        .send(
            Method::PUT,
            "/sim/echo?a=1",
            &[("x-test", "one"), ("x-test", "two")],
            "",
        )
        .await
        .json();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/sim/echo");
    assert_eq!(echo["query"], "a=1");
    assert_eq!(echo["headers"]["x-test"], serde_json::json!(["one", "two"]));
    assert_eq!(h.get("/x", &[]).await.status, 404);
    assert_eq!(
        h.get("/API/V1/Accessible/", &[]).await.status,
        401,
        "routing ignores case and a trailing slash"
    );
}

#[tokio::test]
async fn the_recorder_keeps_every_request_as_received() {
    let h = Harness::start(|_| {}).await;
    h.sign_in("admin", "admin").await;
    h.send(
        Method::POST,
        "/Odd/Path?q=/api/v1/usersession",
        &[("x-custom", "1")],
        "payload",
    )
    .await;
    let seen = h.sim.recorder().requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].path, "/api/v1/signin");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[0].body, r#"{"password":"admin","username":"admin"}"#);
    assert_eq!(seen[1].path, "/Odd/Path");
    assert_eq!(seen[1].query.as_deref(), Some("q=/api/v1/usersession"));
    assert_eq!(seen[1].version, Version::HTTP_11);
    assert_eq!(seen[1].headers["x-custom"], "1");
    assert_eq!(seen[1].body, "payload");
    assert_eq!(h.sim.recorder().count("/api/v1/signin"), 1);
    h.sim.recorder().clear();
    assert!(h.sim.recorder().requests().is_empty());
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let h = Harness::start(|_| {}).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let reply = send_with(&client, &h.sim, Method::GET, "/sim/echo", &[], "").await;
    assert_eq!(reply.json()["version"], "HTTP/2.0");
    assert_eq!(h.sim.recorder().requests()[0].version, Version::HTTP_2);
}

#[tokio::test]
async fn tls_wraps_connections_when_configured() {
    let generated = psu_gateway::cli::devcert::generate(&["localhost".to_owned()]).unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(generated.cert_pem.as_bytes())
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_slice(generated.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .unwrap();
    let h = Harness::start(|o| o.tls = Some(Arc::new(server))).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs[0].clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(h.sim.addr()).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /sim/status/418 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 418"), "{response}");
    assert_eq!(h.sim.recorder().count("/sim/status/418"), 1);
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_stops_listening() {
    let h = Harness::start(|_| {}).await;
    assert_eq!(h.get("/sim/status/200", &[]).await.status, 200);
    let addr = h.sim.addr();
    // The client keeps its connection alive; a graceful stop must still end promptly.
    tokio::time::timeout(Duration::from_secs(5), h.sim.shutdown())
        .await
        .expect("shutdown within 5s");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn invalid_cookie_names_are_refused_at_spawn() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let opts = SimOptions {
        cookie_name: "bad name".into(),
        ..SimOptions::default()
    };
    let error = Sim::spawn(opts, listener).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn static_mode_answers_from_memory_counts_and_records_nothing() {
    let h = Harness::start(|o| o.static_upstream = true).await;
    let session = format!("{COOKIE}=invented-{}", uuid::Uuid::new_v4());
    let introspection = h.get("/api/v1/accessible", &[("cookie", &session)]).await;
    assert_eq!(introspection.status, 200, "any session cookie is live");
    assert_eq!(introspection.json()["roles"][0], "Administrator");
    assert_eq!(h.get("/api/v1/accessible", &[]).await.status, 401);
    let injected = [("x-psu-authorization", "Bearer anything")];
    let sessions = h.get("/api/v1/usersession", &injected).await;
    assert_eq!(sessions.status, 200);
    assert_eq!(sessions.json()[0]["identity"], "bench");
    let with_cookie = [
        ("x-psu-authorization", "Bearer x"),
        ("cookie", session.as_str()),
    ];
    assert_eq!(
        h.get("/api/v1/usersession", &with_cookie).await.status,
        401,
        "a session cookie that reached usersession was not stripped"
    );
    assert_eq!(h.get("/api/v1/usersession", &[]).await.status, 401);
    assert_eq!(h.get("/any/page", &[]).await.status, 200);
    let large = h.get("/sim/large?bytes=300000", &[]).await;
    assert_eq!(large.body.len(), 300_000);
    let sink = h.send(Method::POST, "/sim/sink", &[], "12345").await;
    assert_eq!(sink.json()["bytes"], 5);
    let stats = h.get("/sim/stats", &[]).await.json();
    assert_eq!(stats["requests"], 8, "{stats}");
    assert_eq!(stats["introspections"], 2, "{stats}");
    assert!(h.sim.recorder().requests().is_empty(), "nothing recorded");
}
