//! conf/haproxy.cfg as shipped, run by Debian's haproxy in front of two
//! `psu-gateway run` processes speaking the PROXY protocol: both serve, PSU
//! hears of the real client, and stopping one loses no new request.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use psu_gateway::sim::{Sim, SimOptions};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::proxy_protocol::{connect_from, tls_request, CLIENT_IP};
use crate::support::header;

const SHIPPED: &str = include_str!("../../conf/haproxy.cfg");
const WORKERS: usize = 4;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Collects a child's output lines for assertions and failure messages,
/// until the stream ends.
fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    into: &Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    let into = into.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().unwrap().push(line);
        }
    })
}

/// Polls `ready` until it holds; panics with `what` and `log` after 30s.
async fn wait_for(what: &str, log: &Mutex<Vec<String>>, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} within 30s; output:\n{}",
            log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One `psu-gateway run` child expecting PROXY headers from 127.0.0.1.
struct Instance {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    async fn start(dir: &Path, name: &str, upstream: SocketAddr) -> Self {
        let config = format!(
            "[listen]\naddr = \"127.0.0.1:0\"\nproxy_protocol = true\n\n[tls]\ncert = \"gateway.crt\"\nkey = \"gateway.key\"\n\n[limits]\nshutdown_grace = \"20s\"\n\n[forwarding]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[upstream]\nurl = \"http://{upstream}\"\n\n[[route]]\nname = \"all\"\nprefix = \"/\"\naccess = \"public\"\n"
        );
        let file = format!("{name}.toml");
        std::fs::write(dir.join(&file), config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_psu-gateway"))
            .args(["run", "--config", &file, "--log-format", "json"])
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::default();
        collect(child.stderr.take().unwrap(), &log);
        // Port 0: the bound address is read from the "listening" line.
        let bound = || {
            let lines = log.lock().unwrap();
            lines
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["message"] == "listening")
                .map(|v| v["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap())
        };
        let listening = format!("{name} listening");
        wait_for(&listening, &log, || bound().is_some()).await;
        let addr = bound().unwrap();
        Self { child, addr, log }
    }

    /// Access-log lines (JSON) for requests to `path`.
    fn served(&self, path: &str) -> Vec<serde_json::Value> {
        let lines = self.log.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access" && v["path"] == path)
            .collect()
    }

    fn terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(kill.unwrap().success());
    }
}

/// The shipped file with only its three addresses changed. Not running as
/// root, haproxy cannot switch user or chroot, so those lines are dropped.
fn haproxy_config(front: u16, gw1: SocketAddr, gw2: SocketAddr) -> String {
    let mut text = SHIPPED.to_owned();
    for (from, to) in [
        ("bind :443", format!("bind 127.0.0.1:{front}")),
        ("127.0.0.1:8443", gw1.to_string()),
        ("127.0.0.1:8444", gw2.to_string()),
    ] {
        assert_eq!(text.matches(from).count(), 1, "conf/haproxy.cfg: {from}");
        text = text.replace(from, &to);
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
    if !root {
        eprintln!("note: not root, so conf/haproxy.cfg runs without user/group/chroot");
        let privileged = |l: &&str| {
            matches!(
                l.split_whitespace().next(),
                Some("user" | "group" | "chroot")
            )
        };
        // haproxy refuses a file whose last line has no newline.
        text = text
            .lines()
            .filter(|l| !privileged(l))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    text
}

/// Starts haproxy on the shipped config in front of two instances, on a
/// free port, and waits until it forwards. haproxy cannot report a port it
/// chose, so the port is picked here; if another process takes it first,
/// haproxy exits and a new one is tried.
async fn start_balancer(
    bin: &str,
    dir: &Path,
    gw1: &Instance,
    gw2: &Instance,
    ca: &[u8],
) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    for attempt in 1..=5 {
        let front: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let cfg: PathBuf = dir.join("haproxy.cfg");
        std::fs::write(&cfg, haproxy_config(front.port(), gw1.addr, gw2.addr)).unwrap();
        let mut haproxy = Command::new(bin)
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let output = [
            collect(haproxy.stdout.take().unwrap(), &log),
            collect(haproxy.stderr.take().unwrap(), &log),
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = haproxy.try_wait().unwrap() {
                // haproxy -db does not fork: its pipes close as it exits.
                for reader in output {
                    let closed = tokio::time::timeout(Duration::from_secs(10), reader).await;
                    closed.expect("haproxy's output closed").unwrap();
                }
                let text = log.lock().unwrap().join("\n");
                assert!(
                    text.contains("cannot bind"),
                    "haproxy exited ({status}):\n{text}"
                );
                eprintln!(
                    "haproxy: port {} was taken (attempt {attempt}), another",
                    front.port()
                );
                break;
            }
            // Bounded: while haproxy starts, the port may belong to
            // another process that never answers.
            let ready = request(front, ca, "/sim/status/200?ready");
            if let Ok(Ok(200)) = tokio::time::timeout(Duration::from_secs(2), ready).await {
                return (haproxy, front, log);
            }
            let text = log.lock().unwrap().join("\n");
            assert!(
                Instant::now() < deadline,
                "haproxy never forwarded:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("haproxy found no free port in 5 attempts");
}

/// haproxy on PATH, or where Debian puts it (a non-root PATH has no sbin).
fn haproxy_binary() -> Option<&'static str> {
    let found = ["haproxy", "/usr/sbin/haproxy"].into_iter().find(|bin| {
        let version = std::process::Command::new(bin).arg("-v").output();
        version.is_ok_and(|out| out.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install haproxy (.ci/run does)"
        );
        eprintln!("SKIPPED: haproxy is not installed (apt-get install haproxy)");
    }
    found
}

/// One request through the balancer on a new connection from 127.0.0.2.
async fn request(front: SocketAddr, ca: &[u8], path: &str) -> Result<u16, String> {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let tcp = connect_from(IpAddr::from(CLIENT_IP), front).await;
    let response = tls_request(tcp, ca, b"", raw.as_bytes()).await?;
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {response:?}"))
}

struct Outcome {
    started: Instant,
    ended: Instant,
    result: Result<u16, String>,
}

type Outcomes = Arc<Mutex<Vec<Outcome>>>;

/// `WORKERS` clients sending one request after another until `stop`.
fn load(
    front: SocketAddr,
    ca: &Arc<Vec<u8>>,
    stop: &Arc<AtomicBool>,
) -> (Outcomes, Vec<JoinHandle<()>>) {
    let outcomes = Outcomes::default();
    let workers = (0..WORKERS).map(|w| {
        let (ca, stop, outcomes) = (ca.clone(), stop.clone(), outcomes.clone());
        tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let started = Instant::now();
                let path = format!("/sim/status/202?delay_ms=20&w={w}&i={i}");
                let result = request(front, &ca, &path).await;
                let ended = Instant::now();
                outcomes.lock().unwrap().push(Outcome {
                    started,
                    ended,
                    result,
                });
            }
        })
    });
    let workers = workers.collect();
    (outcomes, workers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_behind_haproxy_share_load_and_survive_losing_one() {
    let Some(haproxy) = haproxy_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    psu_gateway::cli::devcert::write(dir.path(), &["localhost".to_owned()]).unwrap();
    let ca = Arc::new(std::fs::read(dir.path().join("gateway.crt")).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Sim::spawn(SimOptions::default(), listener).await.unwrap();
    let mut gw1 = Instance::start(dir.path(), "gw1", sim.addr()).await;
    let gw2 = Instance::start(dir.path(), "gw2", sim.addr()).await;
    let (mut haproxy, front, balancer_log) =
        start_balancer(haproxy, dir.path(), &gw1, &gw2, &ca).await;

    // Both instances serve, and each hears of the real client.
    for i in 0..20 {
        let path = format!("/sim/status/201?i={i}");
        assert_eq!(request(front, &ca, &path).await, Ok(201), "request {i}");
    }
    let served = |gw: &Instance| gw.served("/sim/status/201").len();
    wait_for("20 access-log lines", &gw1.log, || {
        served(&gw1) + served(&gw2) == 20
    })
    .await;
    let (by_gw1, by_gw2) = (served(&gw1), served(&gw2));
    assert!(by_gw1 > 0 && by_gw2 > 0, "gw1 {by_gw1}, gw2 {by_gw2}");
    for line in gw1
        .served("/sim/status/201")
        .iter()
        .chain(&gw2.served("/sim/status/201"))
    {
        let peer = line["peer"].as_str().unwrap();
        assert!(peer.starts_with("127.0.0.2:"), "access log peer {peer}");
    }
    let seen = sim.recorder().requests();
    let seen: Vec<_> = seen
        .iter()
        .filter(|r| r.path == "/sim/status/201")
        .collect();
    assert_eq!(seen.len(), 20);
    for r in seen {
        assert_eq!(header(r, "x-forwarded-for"), ["127.0.0.2"]);
    }

    // Under steady load, gw1 gets SIGTERM.
    let stop = Arc::new(AtomicBool::new(false));
    let (outcomes, workers) = load(front, &ca, &stop);
    let load_served = |gw: &Instance| gw.served("/sim/status/202").len();
    wait_for("both instances under load", &gw1.log, || {
        load_served(&gw1) >= 10 && load_served(&gw2) >= 10
    })
    .await;
    let signalled = Instant::now();
    gw1.terminate();
    // Logged once the listener is closed, so `closed` is no earlier than
    // the close. (Probing the freed port instead could reach whatever
    // bound it next.)
    wait_for("gw1 closing its listener", &gw1.log, || {
        gw1.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("stopped accepting; draining"))
    })
    .await;
    let closed = Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(30), gw1.child.wait()).await;
    let exited = Instant::now();
    assert_eq!(exit.expect("gw1 exited").unwrap().code(), Some(0));
    let down = || {
        balancer_log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("gw1 is DOWN"))
    };
    wait_for("haproxy marking gw1 down", &balancer_log, down).await;
    let after = |o: &Outcome| o.started > closed;
    wait_for("60 requests after gw1 stopped", &gw2.log, || {
        outcomes.lock().unwrap().iter().filter(|o| after(o)).count() >= 60
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    // Nothing is lost: requests in flight on gw1 finish there, a
    // connection gw1 accepted but had no request on yet gets its first
    // request served before gw1 closes it, and new connections go to gw2.
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        outcomes.len(),
        failed
            .iter()
            .map(|f| (f.started.checked_duration_since(closed), &f.result))
            .collect::<Vec<_>>()
    );
    for o in outcomes.iter().filter(|o| o.result.is_ok()) {
        assert_eq!(o.result, Ok(202));
    }
    let seen = sim.recorder().requests();
    let loaded: Vec<_> = seen
        .iter()
        .filter(|r| r.path == "/sim/status/202")
        .collect();
    for r in &loaded {
        assert_eq!(header(r, "x-forwarded-for"), ["127.0.0.2"]);
    }
    // tcplog's last retry count has a '+' when the connection was
    // redispatched: the path that saved requests gw1 refused.
    let redispatched = balancer_log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("gateways/gw2") && l.contains("/+"))
        .count();
    assert!(redispatched > 0, "no connection was redispatched to gw2");
    let slowest_after = outcomes
        .iter()
        .filter(|o| after(o))
        .map(|o| o.ended - o.started)
        .max()
        .unwrap();
    eprintln!(
        "haproxy: {} requests under load ({} failed, {redispatched} redispatched from gw1 to gw2), gw1 served {}, gw2 {}; SIGTERM -> listener closed {:?}, -> exit {:?}; slowest request after the close {:?}",
        outcomes.len(),
        failed.len(),
        load_served(&gw1),
        load_served(&gw2),
        closed - signalled,
        exited - signalled,
        slowest_after,
    );
    let _ = haproxy.kill().await;
}
