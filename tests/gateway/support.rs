//! Test harness: the simulator as upstream, a gateway on 127.0.0.1:0 with an
//! rcgen certificate, and clients that speak real TLS to it (in `tls`,
//! re-exported here).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use psu_gateway::config;
use psu_gateway::control::run::{self, RunningGateway};
use psu_gateway::sim::{RecordedRequest, Sim, SimOptions};
use tokio::net::TcpListener;

mod tls;
pub use tls::*;

pub const SESSION_COOKIE: &str = ".AspNetCore.Identity.Application";

/// Routes most tests use; `{extra_routes}` in a template adds more.
pub const DEFAULT_ROUTES: &str = r#"
[[route]]
name = "usersession"
path = "/api/v1/usersession"
methods = ["GET"]
access = "inject"
roles = ["Administrator"]

[[route]]
name = "signin"
path = "/api/v1/signin"
methods = ["POST"]
access = "public"

[[route]]
name = "signout"
path = "/api/v1/signout"
methods = ["POST"]
access = "public"

[[route]]
name = "session-echo"
path = "/sim/echo"
access = "session"

[[route]]
name = "status"
prefix = "/sim/status"
access = "public"

[[route]]
name = "tokens"
prefix = "/api/v1/apptoken"
access = "deny"

[[route]]
name = "pages"
prefix = "/"
access = "public"
"#;

/// Just the two routes the job needs: sign-in, and usersession with the
/// token injected.
pub const SIGNIN_AND_USERSESSION: &str = r#"
[[route]]
name = "usersession"
path = "/api/v1/usersession"
methods = ["GET"]
access = "inject"

[[route]]
name = "signin"
path = "/api/v1/signin"
methods = ["POST"]
access = "public"
"#;

/// The config every test starts from, in config.md's form. `{upstream}` is
/// replaced by the simulator's URL.
pub const BASE_CONFIG: &str = r#"
[listen]
addr = "127.0.0.1:0"

[tls]
cert = "gateway.crt"
key = "gateway.key"

[upstream]
url = "{upstream}"

[session]
cookies = [".AspNetCore.Identity.Application"]
introspect_path = "/api/v1/accessible"
identity_pointer = "/identity"
roles_pointer = "/roles"

[credential]
header = "X-PSU-Authorization"
scheme = "Bearer"
token_file = "app-token"
"#;

pub struct Setup {
    pub sim: SimOptions,
    /// The certificate clients trust; `None`: the rcgen one `start` writes.
    ca: Option<Vec<u8>>,
    /// Config text; `{upstream}` becomes the simulator's http URL,
    /// `{upstream_tls}` its https URL (for a simulator with `tls` set).
    pub config: String,
    /// The gateway's certificate and key (PEM); `None`: a fresh dev cert.
    pub cert: Option<(String, String)>,
    /// Serve on this many worker threads, as `run` does; `None`: on the
    /// test's runtime.
    pub workers: Option<usize>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            sim: SimOptions::default(),
            ca: None,
            config: format!("{BASE_CONFIG}{DEFAULT_ROUTES}"),
            cert: None,
            workers: None,
        }
    }
}

impl Setup {
    /// Replaces `from` with `to` in the config text; panics when absent so a
    /// test never silently runs on the default.
    pub fn edit(mut self, from: &str, to: &str) -> Self {
        assert!(self.config.contains(from), "config has no {from:?}");
        self.config = self.config.replacen(from, to, 1);
        self
    }

    /// For configs that name their own certificate.
    pub fn with_ca(mut self, pem: Vec<u8>) -> Self {
        self.ca = Some(pem);
        self
    }

    pub fn sim(mut self, f: impl FnOnce(&mut SimOptions)) -> Self {
        f(&mut self.sim);
        self
    }

    /// Serves connections on `count` worker threads.
    pub fn workers(mut self, count: usize) -> Self {
        self.workers = Some(count);
        self
    }

    /// Serves this certificate and key (PEM) instead of a dev cert.
    pub fn cert(mut self, cert_pem: String, key_pem: String) -> Self {
        self.cert = Some((cert_pem, key_pem));
        self
    }

    pub async fn start(self) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = match self.cert {
            None => psu_gateway::cli::devcert::write(
                dir.path(),
                &["localhost".to_owned(), "127.0.0.1".to_owned()],
            )
            .expect("dev cert"),
            Some((cert_pem, key_pem)) => {
                let paths = psu_gateway::cli::devcert::DevCertPaths::in_dir(dir.path());
                std::fs::write(&paths.cert, cert_pem).unwrap();
                psu_gateway::cli::devcert::write_private(&paths.key, key_pem.as_bytes()).unwrap();
                paths
            }
        };
        let ca = self
            .ca
            .unwrap_or_else(|| std::fs::read(&cert.cert).expect("read cert"));
        let sim = Sim::spawn(self.sim, TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .expect("sim");
        let token = write_app_token(&sim, dir.path());
        let text = self
            .config
            .replace("{upstream}", &format!("http://{}", sim.addr()))
            .replace("{upstream_tls}", &format!("https://{}", sim.addr()));
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &text).unwrap();
        let loaded = config::load(&path).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = match self.workers {
            None => run::spawn(loaded.config, listener),
            Some(count) => run::spawn_on_workers(loaded.config, listener, count),
        }
        .expect("gateway");
        Stack {
            addr: gateway.addr(),
            _gateway: gateway,
            sim,
            token,
            ca,
            dir,
        }
    }
}

pub struct Stack {
    pub addr: SocketAddr,
    /// Dropping it stops the gateway, so the stack owns it.
    _gateway: RunningGateway,
    pub sim: Sim,
    pub token: String,
    ca: Vec<u8>,
    dir: tempfile::TempDir,
}

/// What came back from the gateway.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The whole response, body collected.
    pub async fn read(response: http::Response<hyper::body::Incoming>) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a gateway-made problem+json with this status.
    pub fn assert_problem(&self, status: u16) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.headers["content-type"], "application/problem+json");
        assert_eq!(self.headers["cache-control"], "no-store");
        let json = self.json();
        assert_eq!(json["status"], status);
        assert!(json["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(
            json["request_id"],
            self.headers["x-request-id"].to_str().unwrap()
        );
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Proto {
    H1,
    H2,
}

impl Stack {
    /// The running config generation, its metrics and reload.
    pub fn live(&self) -> &Arc<psu_gateway::control::live::Live> {
        self._gateway.live()
    }

    /// The directory holding the config, certificate, key and token.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The gateway's certificate (PEM), to trust from outside clients.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("gateway.crt")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// The gateway's certificate (PEM), for clients built by hand.
    pub fn ca(&self) -> &[u8] {
        &self.ca
    }

    pub fn client(&self, proto: Proto) -> TestClient {
        tls_client(&self.ca, proto)
    }

    /// Sends one request over HTTP/1.1.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send_with(Proto::H1, method, path, headers, Bytes::new())
            .await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers).await
    }

    pub async fn send_with(
        &self,
        proto: Proto,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).unwrap();
        let response =
            tokio::time::timeout(Duration::from_secs(20), self.client(proto).request(request))
                .await
                .expect("gateway answered within 20s")
                .expect("request failed");
        let version = response.version();
        assert_eq!(
            version == http::Version::HTTP_2,
            proto == Proto::H2,
            "negotiated {version:?}"
        );
        Reply::read(response).await
    }

    /// Signs in through the gateway and returns the `Cookie` header value.
    pub async fn sign_in(&self, user: &str, password: &str) -> String {
        let body = serde_json::json!({"username": user, "password": password}).to_string();
        let reply = self
            .send_with(
                Proto::H1,
                Method::POST,
                "/api/v1/signin",
                &[("content-type", "application/json")],
                Bytes::from(body),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "sign-in failed: {:?}",
            reply.body
        );
        let cookies: Vec<String> = reply
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect();
        assert!(!cookies.is_empty(), "no Set-Cookie");
        cookies.join("; ")
    }

    /// Requests the simulator received at `path`.
    pub fn upstream_saw(&self, path: &str) -> Vec<RecordedRequest> {
        self.sim
            .recorder()
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn introspections(&self) -> usize {
        self.upstream_saw("/api/v1/accessible").len()
    }

    /// Writes raw bytes over TLS and reads until the gateway closes.
    pub async fn raw(&self, bytes: &[u8]) -> String {
        raw_tls(self.addr, &self.ca, bytes).await
    }
}

pub fn header<'a>(request: &'a RecordedRequest, name: &str) -> Vec<&'a str> {
    request
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// Mints an Administrator app token with `sim`'s key, writes it to
/// `dir/app-token` (with the trailing newline editors leave) and returns it.
pub fn write_app_token(sim: &Sim, dir: &std::path::Path) -> String {
    let token = sim
        .mint_token("gateway", &["Administrator"], Duration::from_secs(3600))
        .token
        .expose()
        .to_owned();
    // Readable by its owner only, as `check` expects of a secret.
    psu_gateway::cli::devcert::write_private(
        &dir.join("app-token"),
        format!("{token}\n").as_bytes(),
    )
    .unwrap();
    token
}

/// Whether `program` runs (`program version_arg` exits 0). Outside CI a
/// missing tool prints a SKIPPED line naming `install`; under `CI=true`
/// it fails the test, as `.ci/run` installs every tool.
pub fn tool_available(program: &str, version_arg: &str, install: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install {program} (.ci/run does)"
        );
        eprintln!("SKIPPED: {program} is not installed ({install})");
    }
    found
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A session cookie value with the shape of a real one (an ASP.NET Core
/// Data Protection payload) that no PSU issued: the gateway asks PSU about
/// it. `seed` must be base64url text.
pub fn forged_session(seed: &str) -> String {
    format!("CfDJ8{seed}{}", "A".repeat(64))
}
