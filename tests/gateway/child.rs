//! A real `psu-gateway run` process for tests that send it signals: its
//! config, certificate and token in a temp dir, the simulator in-process as
//! its upstream, its stderr collected line by line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use psu_gateway::sim::{Sim, SimOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::support::*;

pub struct ChildGateway {
    child: Child,
    pub addr: SocketAddr,
    /// The admin listener, when the config has one.
    pub admin: Option<SocketAddr>,
    pub sim: Sim,
    pub token: String,
    pub ca: Vec<u8>,
    dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
    logged: Arc<Notify>,
}

/// Writes a dev certificate, a token minted by `sim` and `config`
/// (`{upstream}` replaced) into a temp dir.
pub fn prepare(sim: &Sim, config: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    psu_gateway::cli::devcert::write(dir.path(), &["localhost".to_owned()]).unwrap();
    let token = write_app_token(sim, dir.path());
    let text = config.replace("{upstream}", &format!("http://{}", sim.addr()));
    std::fs::write(dir.path().join("gateway.toml"), text).unwrap();
    (dir, token)
}

/// `psu-gateway run --config gateway.toml` in `dir`, stderr piped, killed
/// when dropped.
pub fn spawn_run(dir: &Path, filter: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_psu-gateway"))
        .args(["run", "--config", "gateway.toml"])
        .current_dir(dir)
        .env("RUST_LOG", filter)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// SIGINT (Ctrl-C; under Wine it reaches the Windows process as one), then
/// the exit status, within 30 s.
pub async fn interrupt(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exited within 30s of SIGINT")
        .unwrap()
}

impl ChildGateway {
    /// Starts the simulator and a gateway process on `config` (listen and
    /// admin addresses may use port 0: the bound ones are read from the log).
    pub async fn start(config: &str) -> Self {
        Self::start_with_log(config, "info").await
    }

    /// The same, with this `RUST_LOG` filter.
    pub async fn start_with_log(config: &str, filter: &str) -> Self {
        Self::start_with_sim(config, SimOptions::default(), filter).await
    }

    /// The same, in front of a simulator with these options.
    pub async fn start_with_sim(config: &str, sim: SimOptions, filter: &str) -> Self {
        let sim = Sim::spawn(sim, TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .unwrap();
        let (dir, token) = prepare(&sim, config);
        let mut child = spawn_run(dir.path(), filter);
        let logs = Arc::new(Mutex::new(Vec::new()));
        let logged = Arc::new(Notify::new());
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn({
            let logs = logs.clone();
            let logged = logged.clone();
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().unwrap().push(line);
                    logged.notify_waiters();
                }
                logs.lock().unwrap().push("<stderr closed>".to_owned());
                logged.notify_waiters();
            }
        });
        let ca = std::fs::read(dir.path().join("gateway.crt")).unwrap();
        let mut gateway = Self {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            admin: None,
            sim,
            token,
            ca,
            dir,
            logs,
            logged,
        };
        let line = gateway.wait_log(" listening ").await;
        gateway.addr = logged_addr(&line);
        gateway.admin = gateway
            .log_lines()
            .iter()
            .find(|l| l.contains("admin listener ready"))
            .map(|l| logged_addr(l));
        gateway
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) for a log line containing `needle` and returns it.
    pub async fn wait_log(&self, needle: &str) -> String {
        self.wait_log_count(needle, 1).await
    }

    /// Waits until `count` log lines contain `needle`; returns the last.
    pub async fn wait_log_count(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.logged.notified();
            let lines = self.log_lines();
            let found: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
            if found.len() >= count {
                return found[count - 1].clone();
            }
            assert!(
                !lines.iter().any(|l| l == "<stderr closed>"),
                "the gateway exited before logging {needle:?}:\n{}",
                lines.join("\n")
            );
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                tokio::time::timeout(left, notified).await.is_ok(),
                "no log line with {needle:?} within 30s:\n{}",
                lines.join("\n")
            );
        }
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits (up to `limit`) for the process to exit; its exit code.
    pub async fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("the gateway exited in time")
            .unwrap()
            .code()
    }

    pub fn client(&self, proto: Proto) -> TestClient {
        tls_client(&self.ca, proto)
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A plain HTTP/1.1 GET to the admin listener: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        self.admin_request("GET", path, "").await
    }

    pub async fn admin_request(&self, method: &str, path: &str, extra: &str) -> (u16, String) {
        let admin = self.admin.expect("the config has [admin]");
        let mut stream = TcpStream::connect(admin).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
            .await
            .expect("the admin listener answered")
            .unwrap();
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = raw_status(&text);
        let body = text
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, body)| body.to_owned());
        (status, body)
    }

    /// Signs in through the gateway and returns the `Cookie` header value.
    pub async fn sign_in(&self) -> String {
        let request = http::Request::post(self.url("/api/v1/signin"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                r#"{"username":"admin","password":"admin"}"#,
            )))
            .unwrap();
        let response = self.client(Proto::H1).request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The `addr=` field of a log line.
pub fn logged_addr(line: &str) -> SocketAddr {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line:?}"))
        .parse()
        .unwrap()
}

/// One GET through `client`: the status, or the transport error.
pub async fn status_of(
    client: &TestClient,
    url: &str,
    cookie: Option<&str>,
) -> Result<u16, String> {
    let mut request = http::Request::get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(status)
}
