//! Live reload on a real process: SIGHUP, `psu-gateway reload` and the
//! admin `POST /reload` swap the config without failing a request; a bad
//! config is refused with `check`'s text and the old one keeps serving.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::child::*;
use crate::support::*;

/// Generation `n` serves `/sim/status/{200 + n}` and no other status path,
/// so which table is live is visible from outside.
fn config(n: u16, admin: &str) -> String {
    format!(
        r#"{BASE_CONFIG}
{admin}
{SIGNIN_AND_USERSESSION}
[[route]]
name = "generation"
path = "/sim/status/{}"
access = "public"
"#,
        200 + n
    )
}

/// Polls until `path` answers `want` through a fresh request; panics after 10 s.
async fn until_status(gateway: &ChildGateway, client: &TestClient, path: &str, want: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = status_of(client, &gateway.url(path), None).await;
        if got == Ok(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path}: wanted {want}, last {got:?}\n{}",
            gateway.log_lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sighup_reloads_under_load_fail_no_request() {
    let gateway = ChildGateway::start(&config(0, "")).await;
    let cookie = gateway.sign_in().await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    // Four HTTP/1.1 keep-alive clients and two h2 clients with three
    // streams each, all on the inject route.
    let mut load = Vec::new();
    for (proto, tasks) in [(Proto::H1, 4), (Proto::H2, 2)] {
        for _ in 0..tasks {
            let client = gateway.client(proto);
            let streams = if proto == Proto::H2 { 3 } else { 1 };
            for _ in 0..streams {
                let client = client.clone();
                let url = gateway.url("/api/v1/usersession");
                let (cookie, stop, done, failures) =
                    (cookie.clone(), stop.clone(), done.clone(), failures.clone());
                load.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match status_of(&client, &url, Some(&cookie)).await {
                            Ok(200) => {}
                            other => failures
                                .lock()
                                .unwrap()
                                .push(format!("{proto:?}: {other:?}")),
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
        }
    }
    let probe = gateway.client(Proto::H1);
    for n in 1..=20u16 {
        std::fs::write(
            gateway.config_path(),
            config(n, "").replace("{upstream}", &format!("http://{}", gateway.sim.addr())),
        )
        .unwrap();
        gateway.signal("HUP");
        until_status(
            &gateway,
            &probe,
            &format!("/sim/status/{}", 200 + n),
            200 + n,
        )
        .await;
        // The previous generation's route is gone: the gateway's own 404.
        let old = status_of(
            &probe,
            &gateway.url(&format!("/sim/status/{}", 199 + n)),
            None,
        )
        .await;
        assert_eq!(old, Ok(404), "after reload {n}");
    }
    // At least 2,000 requests overall, across the reloads.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < 2000 {
        assert!(std::time::Instant::now() < deadline, "load too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(done.load(Ordering::Relaxed) >= 2000);
    // Every reload was applied and logged; each went to PSU with the token.
    gateway.wait_log_count("config reloaded", 20).await;
    let injected = gateway.sim.recorder().requests();
    let with_token = injected
        .iter()
        .filter(|r| r.path == "/api/v1/usersession")
        .filter(|r| header(r, "x-psu-authorization") == [bearer(&gateway.token)])
        .count();
    assert!(with_token >= 2000, "{with_token}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_with_checks_text_and_the_old_one_serves() {
    // A fixed admin port is needed here: `psu-gateway reload` finds the
    // instance through the config's admin.addr.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("[admin]\naddr = \"127.0.0.1:{port}\"\n");
    let gateway = ChildGateway::start(&config(0, &admin)).await;
    let upstream = format!("http://{}", gateway.sim.addr());
    let client = gateway.client(Proto::H1);
    until_status(&gateway, &client, "/sim/status/200", 200).await;

    let broken = config(1, &admin)
        .replace("{upstream}", &upstream)
        .replace("[admin]", "[limits]\nheader_timeout = \"soon\"\n\n[admin]");
    std::fs::write(gateway.config_path(), &broken).unwrap();
    let check = cli(&gateway, "check");
    assert_eq!(check.status.code(), Some(2));
    let reload = cli(&gateway, "reload");
    assert_eq!(reload.status.code(), Some(2), "{reload:?}");
    let check_text = String::from_utf8_lossy(&check.stderr).into_owned();
    assert!(check_text.contains("gateway.toml:"), "{check_text}");
    assert!(check_text.contains("limits.header_timeout"), "{check_text}");
    // The CLI validates before asking; the running instance says the same.
    assert_eq!(String::from_utf8_lossy(&reload.stderr), check_text);
    let (status, body) = gateway.admin_request("POST", "/reload", "").await;
    assert_eq!(status, 422);
    assert_eq!(body.trim_end(), check_text.trim_end());
    gateway.wait_log("config reload refused").await;
    // SIGHUP with the same file: refused too, and still serving.
    gateway.signal("HUP");
    gateway.wait_log_count("config reload refused", 2).await;
    assert_eq!(
        status_of(&client, &gateway.url("/sim/status/200"), None).await,
        Ok(200)
    );
    assert_eq!(
        status_of(&client, &gateway.url("/sim/status/201"), None).await,
        Ok(404)
    );

    // A key only a restart can change is refused, by name.
    let moved = config(1, &admin)
        .replace("{upstream}", &upstream)
        .replace(&format!("127.0.0.1:{port}"), "127.0.0.1:1");
    std::fs::write(gateway.config_path(), moved).unwrap();
    let (status, body) = gateway.admin_request("POST", "/reload", "").await;
    assert_eq!(status, 422);
    assert!(
        body.contains("admin.addr: cannot change while running"),
        "{body}"
    );

    // Fixed: the CLI reload takes it.
    std::fs::write(
        gateway.config_path(),
        config(1, &admin).replace("{upstream}", &upstream),
    )
    .unwrap();
    let reload = cli(&gateway, "reload");
    assert_eq!(reload.status.code(), Some(0), "{reload:?}");
    assert_eq!(String::from_utf8_lossy(&reload.stdout), "reloaded\n");
    assert_eq!(
        status_of(&client, &gateway.url("/sim/status/201"), None).await,
        Ok(201)
    );
    assert_eq!(
        status_of(&client, &gateway.url("/sim/status/200"), None).await,
        Ok(404)
    );

    let (_, metrics) = gateway.admin_get("/metrics").await;
    assert!(
        metrics.contains("psu_gateway_config_reloads_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("psu_gateway_config_reloads_total{outcome=\"failed\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn reload_without_an_admin_listener_says_to_send_sighup() {
    let dir = tempfile::tempdir().unwrap();
    psu_gateway::cli::devcert::write(dir.path(), &["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("app-token"), "t0ken\n").unwrap();
    std::fs::write(
        dir.path().join("gateway.toml"),
        config(0, "").replace("{upstream}", "http://127.0.0.1:5000"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_psu-gateway"))
        .args(["reload", "--config", "gateway.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gateway.toml: admin: no [admin] listener"),
        "{stderr}"
    );
    assert!(stderr.contains("SIGHUP"), "{stderr}");
}

fn cli(gateway: &ChildGateway, command: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_psu-gateway"))
        .args([command, "--config", "gateway.toml"])
        .current_dir(gateway.dir())
        .output()
        .unwrap()
}
