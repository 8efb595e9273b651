//! The simulator over real sockets: PSU's auth behaviour, front-door modes,
//! recording, h2c, TLS and shutdown.

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
async fn sign_in_sets_a_cookie_that_accessible_accepts() {
    let h = Harness::start(|_| {}).await;
    let reply = h.sign_in("admin", "admin").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"returnUrl": "/admin"}));
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap();
    let (pair, attributes) = set_cookie.split_once("; ").unwrap();
    let value = pair.strip_prefix(&format!("{COOKIE}=")).unwrap();
    assert_eq!(value.len(), 64);
    assert_eq!(attributes, "path=/; secure; samesite=lax; httponly");

    let me = h
        .get(
            "/api/v1/accessible",
            &[("cookie", &format!("theme=dark; {pair}"))],
        )
        .await;
    assert_eq!(me.status, 200);
    assert!(me.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        me.json(),
        serde_json::json!({"identity": "admin", "roles": ["Administrator"]})
    );

    let anonymous = h.get("/api/v1/accessible", &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.body.len()),
        (StatusCode::UNAUTHORIZED, 0)
    );
    let forged = h
        .get(
            "/api/v1/accessible",
            &[("cookie", &format!("{COOKIE}=forged"))],
        )
        .await;
    assert_eq!(forged.status, 401);
}

#[tokio::test]
async fn bad_credentials_are_refused_without_a_cookie() {
    let h = Harness::start(|_| {}).await;
    let wrong = h.sign_in("admin", "reader").await;
    assert_eq!(
        (wrong.status, wrong.body.len()),
        (StatusCode::UNAUTHORIZED, 0)
    );
    assert!(wrong.headers.get("set-cookie").is_none());
    assert_eq!(h.sign_in("nobody", "nobody").await.status, 401);
    let garbage = h
        .send(Method::POST, "/api/v1/signin", &[], "{not json")
        .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(h.get("/api/v1/signin", &[]).await.status, 405);
}

#[tokio::test]
async fn accessible_also_takes_an_app_token() {
    let h = Harness::start(|_| {}).await;
    let token = h.token(&["Reader", "Operator"]);
    let me = h
        .get("/api/v1/accessible", &[("authorization", &bearer(&token))])
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json(),
        serde_json::json!({"identity": "script", "roles": ["Reader", "Operator"]})
    );
}

#[tokio::test]
async fn usersession_needs_an_app_token_with_an_allowed_role() {
    let h = Harness::start(|_| {}).await;
    let cookie = h.cookie("admin").await;
    h.cookie("reader").await;
    let admin = h.token(&["Administrator"]);

    let reply = h
        .get(
            "/api/v1/usersession",
            &[("x-psu-authorization", &bearer(&admin))],
        )
        .await;
    assert_eq!(reply.status, 200);
    let sessions = reply.json();
    let list = sessions.as_array().expect("an array");
    assert_eq!(list.len(), 2, "{sessions}");
    assert_eq!(list[0]["identity"], "admin");
    assert_eq!(list[0]["remoteIpAddress"], "127.0.0.1");
    for field in ["id", "timestamp", "source", "userAgent"] {
        assert!(list[0].get(field).is_some(), "{field}");
    }
    assert_eq!(
        h.get("/api/v1/usersession", &[("authorization", &bearer(&admin))])
            .await
            .status,
        200
    );

    let refused: [(&str, String, u16); 5] = [
        ("cookie", cookie, 401),
        ("x-psu-authorization", bearer("not.a.token"), 401),
        ("x-psu-authorization", format!("Basic {admin}"), 401),
        ("x-psu-authorization", bearer(&h.token(&["Reader"])), 403),
        ("authorization", bearer(&h.token(&[])), 403),
    ];
    for (name, value, status) in &refused {
        let reply = h.get("/api/v1/usersession", &[(name, value)]).await;
        assert_eq!(reply.status.as_u16(), *status, "{name}: {value}");
        assert!(reply.body.is_empty());
    }
}

#[tokio::test]
async fn x_psu_authorization_wins_over_authorization() {
    let h = Harness::start(|_| {}).await;
    let good = bearer(&h.token(&["Administrator"]));
    let reply = h
        .get(
            "/api/v1/usersession",
            &[
                ("authorization", &good),
                ("x-psu-authorization", "Bearer junk"),
            ],
        )
        .await;
    assert_eq!(reply.status, 401);
    let reply = h
        .get(
            "/api/v1/usersession",
            &[
                ("authorization", "Bearer junk"),
                ("x-psu-authorization", &good),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn revoked_and_foreign_tokens_are_refused() {
    let h = Harness::start(|_| {}).await;
    let minted = h.sim.mint_token("script", &["Administrator"], HOUR);
    let header = bearer(minted.token.expose());
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &header)])
            .await
            .status,
        200
    );
    h.sim.revoke(&minted.hash);
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &header)])
            .await
            .status,
        401
    );

    let preset =
        psu_gateway::sim::mint_token(b"other-key", "x", &["Administrator".to_owned()], HOUR);
    let foreign = bearer(preset.token.expose());
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &foreign)])
            .await
            .status,
        401
    );

    let revoked_at_start = Harness::start(|o| o.revoked = vec![minted.hash.clone()]).await;
    let fresh = revoked_at_start.token(&["Administrator"]);
    let same_hash_elsewhere = revoked_at_start
        .get(
            "/api/v1/usersession",
            &[("x-psu-authorization", &bearer(&fresh))],
        )
        .await;
    assert_eq!(
        same_hash_elsewhere.status, 200,
        "only the listed hash is revoked"
    );
}

#[tokio::test]
async fn allowed_roles_are_configurable() {
    let h = Harness::start(|o| o.allowed_roles = vec!["Operator".into()]).await;
    let operator = bearer(&h.token(&["Reader", "Operator"]));
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &operator)])
            .await
            .status,
        200
    );
    let admin = bearer(&h.token(&["Administrator"]));
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &admin)])
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn strip_authorization_breaks_bearer_but_not_x_psu_authorization() {
    let h = Harness::start(|o| o.strip_authorization = true).await;
    let header = bearer(&h.token(&["Administrator"]));
    assert_eq!(
        h.get("/api/v1/usersession", &[("authorization", &header)])
            .await
            .status,
        401
    );
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &header)])
            .await
            .status,
        200
    );
    let seen = h.sim.recorder().requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].headers["authorization"],
        header.as_str(),
        "recorded as it arrived, before stripping"
    );
    let echo = h
        .get("/sim/echo", &[("authorization", &header)])
        .await
        .json();
    assert!(
        echo["headers"].get("authorization").is_none(),
        "PSU never saw it: {echo}"
    );
}

#[tokio::test]
async fn iis_without_anonymous_challenges_everything_but_negotiate() {
    let h = Harness::start(|o| o.iis_anonymous = false).await;
    let token = bearer(&h.token(&["Administrator"]));
    for (method, path, headers) in [
        (
            Method::GET,
            "/sim/status/200",
            vec![("authorization", token.as_str())],
        ),
        (
            Method::GET,
            "/api/v1/usersession",
            vec![("x-psu-authorization", token.as_str())],
        ),
        (Method::POST, "/api/v1/signin", vec![]),
        (Method::GET, "/", vec![]),
    ] {
        let reply = h.send(method, path, &headers, "").await;
        assert_eq!(reply.status, 401, "{path}");
        let challenges: Vec<_> = reply.headers.get_all("www-authenticate").iter().collect();
        assert_eq!(challenges, ["Negotiate", "NTLM"], "{path}");
    }
    let through = h
        .get(
            "/sim/status/204",
            &[("authorization", "Negotiate YIIGfAYGKwYBBQUCoIIGcDCCBmyg")],
        )
        .await;
    assert_eq!(through.status, 204);
    assert_eq!(
        h.sim.recorder().requests().len(),
        5,
        "rejected requests are recorded too"
    );
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let h = Harness::start(|_| {}).await;
    let cookie = h.cookie("admin").await;
    let other = h.cookie("admin").await;
    let reply = h
        .send(Method::POST, "/api/v1/signout", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with(&format!("{COOKIE}=; expires=Thu, 01 Jan 1970")));
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        401
    );
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &other)])
            .await
            .status,
        200,
        "other sessions live on"
    );
    assert_eq!(
        h.send(Method::POST, "/api/v1/signout", &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn expire_sessions_ends_every_session() {
    let h = Harness::start(|_| {}).await;
    let cookie = h.cookie("admin").await;
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    h.sim.expire_sessions();
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        401
    );
    let admin = bearer(&h.token(&["Administrator"]));
    let list = h
        .get("/api/v1/usersession", &[("x-psu-authorization", &admin)])
        .await
        .json();
    assert_eq!(list, serde_json::json!([]));
    let fresh = h.cookie("admin").await;
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &fresh)])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn session_ttl_applies_from_sign_in() {
    let h = Harness::start(|o| o.session_ttl = Duration::ZERO).await;
    let cookie = h.cookie("admin").await;
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn chunked_cookies_round_trip_and_need_every_chunk() {
    let h = Harness::start(|o| {
        o.cookie_chunk_size = Some(16);
        o.cookie_name = "psu".into();
    })
    .await;
    let reply = h.sign_in("admin", "admin").await;
    let names: Vec<String> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["psu", "psuC1", "psuC2", "psuC3", "psuC4"]);
    assert!(reply.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("psu=chunks-4;"));
    let cookie = reply.cookie_header();
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    let missing: Vec<&str> = cookie
        .split("; ")
        .filter(|c| !c.starts_with("psuC3="))
        .collect();
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &missing.join("; "))])
            .await
            .status,
        401
    );
    let signout = h
        .send(Method::POST, "/api/v1/signout", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(
        signout.headers.get_all("set-cookie").iter().count(),
        5,
        "every chunk is deleted"
    );
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
    let generated = psu_gateway::devcert::generate(&["localhost".to_owned()]).unwrap();
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
