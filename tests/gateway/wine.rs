//! The Windows binary under Wine: `.ci/windows-build` cross-compiles
//! `psu-gateway.exe` (x86_64-pc-windows-gnu) and these tests run it with
//! Debian's wine64 in front of the (Linux) simulator: `check` exit codes
//! with drive-letter paths, `run` with PEM and with PFX, a graceful stop,
//! the `service` commands through Wine's service manager, and the demo.
//! One test, in order: they share one Wine prefix and its service manager.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use psu_gateway::sim::{Sim, SimOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::child::logged_addr;
use crate::support::*;

const WINE: &str = "/usr/lib/wine/wine64";
const WINESERVER: &str = "/usr/lib/wine/wineserver";

fn exe() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/windows/x86_64-pc-windows-gnu/debug/psu-gateway.exe")
}

/// Whether wine64 and the cross-built binary are here; a line when not.
fn available() -> bool {
    let missing: Vec<String> = [
        (Path::new(WINE).to_path_buf(), "apt-get install wine64"),
        (exe(), "run .ci/windows-build"),
    ]
    .into_iter()
    .filter(|(path, _)| !path.exists())
    .map(|(path, fix)| format!("{} ({fix})", path.display()))
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must provide {missing:?} (.ci/run does)"
    );
    eprintln!("SKIPPED: the Wine tests need {}", missing.join(", "));
    false
}

/// A Wine prefix of its own, with a wineserver that stays up (services
/// live as long as it does) and is killed when the test ends.
struct Prefix {
    dir: tempfile::TempDir,
}

impl Prefix {
    async fn start() -> Prefix {
        let prefix = Prefix {
            dir: tempfile::tempdir().unwrap(),
        };
        // Make the prefix and wait until Wine is done setting it up (a
        // service created meanwhile is lost), then keep a wineserver up.
        // No pipes: these leave processes behind, and waiting for their
        // pipes to close would never end.
        for (program, args) in [
            (WINE, &["wineboot", "--init"][..]),
            (WINESERVER, &["-w"]),
            (WINESERVER, &["-p"]),
            // Starts services.exe and its helpers here, so they hold no
            // later command's pipes.
            (WINE, &["cmd", "/c", "exit"]),
        ] {
            let status = prefix
                .command(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .unwrap();
            assert!(status.success(), "{program} {args:?}: {status:?}");
        }
        prefix
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("WINEPREFIX", self.dir.path())
            .env("WINEDEBUG", "-all")
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        command
    }

    /// `psu-gateway.exe args...`, to completion.
    async fn gateway(&self, args: &[&str]) -> Output {
        let run = self.command(WINE).arg(exe()).args(args).output();
        tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("finished within 120s")
            .unwrap()
    }

    /// Wine's own `sc.exe`.
    async fn sc(&self, args: &[&str]) -> String {
        let out = self
            .command(WINE)
            .env("WINEDEBUG", "-all,err+sc")
            .arg("sc")
            .args(args)
            .output()
            .await
            .unwrap();
        format!(
            "{}{} ({})",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status
        )
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = std::process::Command::new(WINESERVER)
            .arg("-k")
            .env("WINEPREFIX", self.dir.path())
            .status();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `path` as Wine's Windows side names it: `Z:\tmp\...`.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// A config for `sim` in `dir`, every path a Windows one in single quotes
/// (TOML literal strings keep backslashes as they are).
fn config(dir: &Path, sim: &Sim, tls: &str, extra: &str) -> String {
    let token = windows_path(&dir.join("app-token"));
    format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n\n[tls]\n{tls}\n\n[upstream]\nurl = \"http://{}\"\n\n\
         [session]\ncookies = [\".AspNetCore.Identity.Application\"]\nintrospect_path = \"/api/v1/accessible\"\n\n\
         [credential]\ntoken_file = '{token}'\n{extra}{SIGNIN_AND_USERSESSION}",
        sim.addr()
    )
}

/// Signs in and calls usersession through the gateway at `addr`; the
/// simulator must have received the injected token.
async fn sign_in_and_call(addr: std::net::SocketAddr, ca: &[u8], sim: &Sim, token: &str) {
    let client = tls_client(ca, Proto::H1);
    let url = format!("https://localhost:{}", addr.port());
    let cookie = crate::demo::sign_in(&client, &url, "admin").await;
    sim.recorder().clear();
    let call = Request::get(format!("{url}/api/v1/usersession"))
        .header("cookie", cookie)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = Reply::read(client.request(call).await.unwrap()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let seen = sim.recorder().requests();
    let call = seen
        .iter()
        .find(|r| r.path == "/api/v1/usersession")
        .unwrap();
    assert_eq!(header(call, "x-psu-authorization"), [bearer(token)]);
}

/// `run --config` under Wine until its listening line; returns the
/// process and the address.
async fn start_run(prefix: &Prefix, config: &Path) -> (Child, std::net::SocketAddr, Vec<String>) {
    let mut child = prefix
        .command(WINE)
        .arg(exe())
        .args(["run", "--config", &windows_path(config)])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if line.contains(" listening ") {
                return logged_addr(&line);
            }
        }
        panic!("run ended before listening:\n{}", seen.join("\n"));
    })
    .await
    .expect("listening within 60s");
    // The rest of stderr is drained so the process never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_binary_under_wine() {
    if !available() {
        return;
    }
    let prefix = Prefix::start().await;
    let sim = Sim::spawn(
        SimOptions::default(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certs = psu_gateway::cli::devcert::write(dir.path(), &["localhost".to_owned()]).unwrap();
    let token = write_app_token(&sim, dir.path());
    let ca = std::fs::read(&certs.cert).unwrap();
    let pem = format!(
        "cert = '{}'\nkey = '{}'",
        windows_path(&certs.cert),
        windows_path(&certs.key)
    );

    // check: exit 0 with drive-letter paths, 2 with the error's place.
    let good = dir.path().join("gateway.toml");
    std::fs::write(&good, config(dir.path(), &sim, &pem, "")).unwrap();
    let check_good = ["check", "--config", &windows_path(&good)];
    let out = prefix.gateway(&check_good).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("readable by"),
        "{out:?}"
    );
    // Wine derives a file's DACL from its mode: o+r allows Everyone.
    let token_file = dir.path().join("app-token");
    set_mode(&token_file, 0o644);
    let out = prefix.gateway(&check_good).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: credential.token_file ")
            && stderr.contains("is readable by Everyone"),
        "{stderr}"
    );
    set_mode(&token_file, 0o600);
    let bad = dir.path().join("bad.toml");
    let text = config(dir.path(), &sim, &pem, "").replace("127.0.0.1:0", "localhost:eight");
    std::fs::write(&bad, text).unwrap();
    let out = prefix
        .gateway(&["check", "--config", &windows_path(&bad)])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.toml:2:8: listen.addr: "), "{stderr}");

    // run with PEM, then with a PFX; Ctrl-C drains and exits 0.
    let (mut child, addr, _) = start_run(&prefix, &good).await;
    sign_in_and_call(addr, &ca, &sim, &token).await;
    let status = crate::child::interrupt(&mut child).await;
    assert!(status.success(), "{status:?}");
    let pfx = crate::pfx::pfx_from_pem(
        &std::fs::read_to_string(&certs.cert).unwrap(),
        &std::fs::read_to_string(&certs.key).unwrap(),
        "pfx-pass",
    );
    std::fs::write(dir.path().join("gateway.pfx"), pfx).unwrap();
    std::fs::write(dir.path().join("pfx-password"), "pfx-pass\r\n").unwrap();
    let pfx_tls = format!(
        "pfx = '{}'\npfx_password_file = '{}'",
        windows_path(&dir.path().join("gateway.pfx")),
        windows_path(&dir.path().join("pfx-password"))
    );
    let with_pfx = dir.path().join("pfx.toml");
    std::fs::write(&with_pfx, config(dir.path(), &sim, &pfx_tls, "")).unwrap();
    let (mut child, addr, _) = start_run(&prefix, &with_pfx).await;
    sign_in_and_call(addr, &ca, &sim, &token).await;
    let status = crate::child::interrupt(&mut child).await;
    assert!(status.success(), "{status:?}");

    // The service: install, start through the service manager, serve,
    // stop (drains), uninstall. Its lines go to [log] file.
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = format!(
        "\n[log]\nfile = '{}'\n",
        windows_path(&logs.join("psu-gateway.log"))
    );
    // `reload --config` finds the admin listener through the file, so
    // its port is a free one picked now.
    let admin_port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = format!("{log}\n[admin]\naddr = \"127.0.0.1:{admin_port}\"\n");
    let service_config = dir.path().join("service.toml");
    std::fs::write(&service_config, config(dir.path(), &sim, &pem, &log)).unwrap();
    let install = [
        "service",
        "install",
        "--config",
        &windows_path(&service_config),
        "--name",
        "psu-gw-test",
    ];
    let out = prefix.gateway(&install).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let started = prefix.sc(&["start", "psu-gw-test"]).await;
    assert!(
        started.contains("PENDING") || started.contains("RUNNING"),
        "sc start: {started:?}"
    );
    let listening = crate::logfile::wait_line(&logs, " listening ").await;
    let addr = logged_addr(&listening);
    sign_in_and_call(addr, &ca, &sim, &token).await;
    // No SIGHUP for a service: `reload` through the admin listener. The
    // new config serves a route the old one did not.
    let status = || {
        raw_tls(
            addr,
            &ca,
            b"GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
    };
    assert_eq!(raw_status(&status().await), 404);
    let more = format!(
        "{log}\n[[route]]\nname = \"status\"\nprefix = \"/sim/status\"\naccess = \"public\"\n"
    );
    std::fs::write(&service_config, config(dir.path(), &sim, &pem, &more)).unwrap();
    let out = prefix
        .gateway(&["reload", "--config", &windows_path(&service_config)])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(raw_status(&status().await), 204);
    // What sc prints for the stop depends on how far the drain got when
    // it asked; the drain line and STOPPED below are what count.
    let stopping = prefix.sc(&["stop", "psu-gw-test"]).await;
    crate::logfile::wait_line(&logs, "stopped accepting; draining").await;
    let mut stopped = false;
    for _ in 0..30 {
        // Each query is a process round trip of about a second.
        if prefix
            .sc(&["query", "psu-gw-test"])
            .await
            .contains("STOPPED")
        {
            stopped = true;
            break;
        }
    }
    assert!(
        stopped,
        "the service did not report STOPPED; sc stop said {stopping:?}"
    );
    let out = prefix
        .gateway(&["service", "uninstall", "--name", "psu-gw-test"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = prefix
        .gateway(&["service", "uninstall", "--name", "psu-gw-test"])
        .await;
    assert_eq!(out.status.code(), Some(1), "uninstalling twice: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    // The demo prints PowerShell on Windows and serves.
    let demo_dir = tempfile::tempdir().unwrap();
    let mut demo = prefix
        .command(WINE)
        .arg(exe())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .current_dir(demo_dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = out.next_line().await.unwrap() {
            let done = line.contains("Ctrl-C stops everything");
            printed.push(line);
            if done {
                return;
            }
        }
    })
    .await
    .expect("the demo printed its instructions within 60s");
    let text = printed.join("\n");
    assert!(text.contains("Invoke-RestMethod"), "{text}");
    assert!(text.contains("-SessionVariable psu"), "{text}");
    assert!(!text.contains("curl "), "{text}");
    demo.start_kill().unwrap();
}
