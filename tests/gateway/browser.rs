//! A real browser through the gateway: Debian's chromium, driven by
//! playwright-core (tests/browser/e2e.mjs), signs in on the simulator's login
//! page, runs the dashboard (usersession fetch, WebSocket hub) and lets pages
//! of two other origins try to use the session. Asserts on the script's
//! report and on what the simulator received. Screenshot:
//! target/browser/dashboard.png.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use psu_gateway::sim::{Sim, SimOptions};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::*;

/// The hub needs a session, like PSU's own hubs; the pages stay public.
const HUB_ROUTE: &str = "[[route]]\nname = \"hub\"\npath = \"/dashboardhub\"\naccess = \"session\"\n\n[[route]]\nname = \"pages\"";

/// The script gives up after 90 s; this only catches a hung node.
const NODE_LIMIT: Duration = Duration::from_secs(120);

fn chromium() -> PathBuf {
    std::env::var_os("E2E_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

/// Chromium, node and tests/browser/node_modules; a loud skip without them
/// outside CI, a failure under `CI=true` (.ci/run installs them).
fn browser_available(root: &Path) -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = [
        (!chromium().exists()).then_some("chromium (apt-get install chromium)"),
        (!node).then_some("node (apt-get install nodejs npm)"),
        (!root
            .join("tests/browser/node_modules/playwright-core")
            .exists())
        .then_some("playwright-core (npm ci --prefix tests/browser)"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must install {} (.ci/run does)",
        missing.join(", ")
    );
    eprintln!(
        "SKIPPED: the browser test needs {}; see .ci/run",
        missing.join(", ")
    );
    false
}

/// A second server on `https://localhost:<other port>`: same site as the
/// gateway (so the browser sends the session cookie), another origin.
async fn same_site_server(cert_out: &Path) -> Sim {
    let (pem, tls) = server_tls(&["localhost"]);
    std::fs::write(cert_out, pem).unwrap();
    let options = SimOptions {
        tls: Some(tls),
        ..SimOptions::default()
    };
    Sim::spawn(options, TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .expect("same-site server")
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("report has no string at {pointer}"))
}

// Multi-threaded: the gateway and simulators serve while node runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_uses_the_api_with_its_session_and_never_sees_the_token() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !browser_available(root) {
        return;
    }
    let stack = Setup::default()
        .edit("[[route]]\nname = \"pages\"", HUB_ROUTE)
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let same_site_cert = dir.path().join("same-site.crt");
    let same_site = same_site_server(&same_site_cert).await;
    let screenshot = root.join("target/browser/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let certs = std::env::join_paths([stack.ca_path(), same_site_cert]).unwrap();

    let started = Instant::now();
    let run = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/e2e.mjs"))
        .current_dir(root)
        .env("E2E_GATEWAY_URL", stack.url(""))
        .env("E2E_CROSS_SITE_URL", format!("http://{}", stack.sim.addr()))
        .env(
            "E2E_SAME_SITE_URL",
            format!("https://localhost:{}", same_site.addr().port()),
        )
        .env("E2E_TOKEN", &stack.token)
        .env("E2E_CERTS", certs)
        .env("E2E_SCREENSHOT", &screenshot)
        .env("E2E_CHROMIUM", chromium())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(NODE_LIMIT, run)
        .await
        .expect("the browser script finished within its limit")
        .expect("run node");
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    eprintln!("browser run took {:?}", started.elapsed());
    assert!(
        !stderr.contains(&stack.token),
        "the token reached the script's log"
    );
    assert!(output.status.success(), "e2e.mjs failed: {}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}"));
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());

    // The run itself went through: nothing errored, every body was read.
    assert_eq!(report["errors"], serde_json::json!([]), "errors");
    assert_eq!(report["page_errors"], serde_json::json!([]), "page errors");
    assert_eq!(
        report["unread_bodies"],
        serde_json::json!([]),
        "bodies the scan could not read"
    );

    // The token never reached a page: no header, body, handshake, frame,
    // DOM or script-visible cookie carried it.
    assert_eq!(report["token_leaks"], serde_json::json!([]), "token leaked");
    let scanned = &report["scanned"];
    assert!(scanned["responses"].as_u64().unwrap() >= 8, "{scanned}");
    assert!(scanned["bodies"].as_u64().unwrap() >= 6, "{scanned}");
    assert_eq!(scanned["ws_handshakes"], 1, "{scanned}");
    assert!(scanned["ws_frames"].as_u64().unwrap() >= 1, "{scanned}");
    assert_eq!(report["dashboard"]["token_in_dom"], false);
    assert_eq!(report["dashboard"]["script_sees_cookie"], false);

    // The dashboard signed in, read the API and talked to its hub.
    let dashboard = &report["dashboard"];
    assert_eq!(text(dashboard, "/url"), stack.url("/dashboard"));
    assert!(
        text(dashboard, "/usersession_status").starts_with("ok: HTTP 200"),
        "{dashboard}"
    );
    let sessions = dashboard["sessions"].as_array().unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("admin (Web")),
        "{dashboard}"
    );
    assert_eq!(text(dashboard, "/ws_status"), "ok: echoed", "{dashboard}");
    assert_eq!(text(dashboard, "/ws_echo"), "hello from the dashboard");
    assert_eq!(dashboard["ws_handshake_status"], 101);
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    // Other origins: the page cannot read the API, and the gateway refused
    // the requests themselves (403) whether or not the cookie came along.
    let foreign = report["foreign"].as_array().unwrap();
    assert_eq!(foreign.len(), 2, "{foreign:?}");
    for page in foreign {
        assert!(
            text(page, "/cors_status").starts_with("blocked: TypeError"),
            "{page}"
        );
        assert_eq!(text(page, "/no_cors_status"), "sent: opaque", "{page}");
        assert_eq!(page["token_in_dom"], false);
    }
    let requests = report["api_requests"].as_array().unwrap();
    let from =
        |page: &str| -> Vec<&Value> { requests.iter().filter(|r| r["page"] == page).collect() };
    let own = from("dashboard");
    assert_eq!(own.len(), 1, "{requests:?}");
    assert_eq!(own[0]["status"], 200, "{}", own[0]);
    assert_eq!(own[0]["cookie_sent"], true, "{}", own[0]);
    for (page, cookie) in [("cross-site", false), ("same-site", true)] {
        let attempts = from(page);
        assert_eq!(attempts.len(), 2, "{page}: {requests:?}");
        for attempt in attempts {
            // Chromium may cancel an opaque no-cors response before it is
            // recorded (seen once in a loaded CI run); then the request
            // must at least have failed. Nothing reaches PSU either way
            // (asserted below).
            let aborted = attempt["via"] == "no-cors"
                && attempt["status"].is_null()
                && attempt["failure"].is_string();
            assert!(aborted || attempt["status"] == 403, "{page}: {attempt}");
            // SameSite=Lax keeps the cookie off cross-site requests; on the
            // same site only the gateway's Origin check stops them.
            assert_eq!(attempt["cookie_sent"], cookie, "{page}: {attempt}");
        }
    }

    // Upstream: exactly the dashboard's call, with the injected token and
    // without the cookie; the hub got the session; nothing from elsewhere.
    let usersession = stack.upstream_saw("/api/v1/usersession");
    assert_eq!(
        usersession.len(),
        1,
        "only the dashboard's call reached PSU"
    );
    assert_eq!(
        header(&usersession[0], "x-psu-authorization"),
        [bearer(&stack.token)]
    );
    assert!(header(&usersession[0], "cookie").is_empty());
    assert_eq!(usersession[0].query, None);
    let hub = stack.upstream_saw("/dashboardhub");
    assert_eq!(hub.len(), 1);
    assert_eq!(header(&hub[0], "upgrade"), ["websocket"]);
    assert!(header(&hub[0], "x-psu-authorization").is_empty());
    assert_eq!(stack.upstream_saw("/sim/other-origin").len(), 1);
    assert!(same_site
        .recorder()
        .requests()
        .iter()
        .all(|r| r.path == "/sim/other-origin" || r.path == "/favicon.ico"));
}
