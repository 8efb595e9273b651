//! A real browser: Debian's Chromium, headless, driven by playwright-core
//! (`tests/browser/e2e.mjs`) through a live gateway and simulator.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The dashboard's hub needs a session like a PSU app's SignalR hub.
const HUB_ROUTE: &str = "[[route]]\nname = \"hub\"\npath = \"/dashboardhub\"\naccess = \"session\"\n\n[[route]]\nname = \"pages\"";

fn browser_available(root: &Path) -> bool {
    let chromium =
        Path::new("/usr/bin/chromium").exists() || std::env::var_os("CHROMIUM").is_some();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let playwright = root
        .join("tests/browser/node_modules/playwright-core")
        .exists();
    if chromium && node && playwright {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must install chromium, node and tests/browser (.ci/run does)"
    );
    eprintln!("SKIPPED: browser test needs /usr/bin/chromium (apt-get install chromium), node, and `npm ci --prefix tests/browser`");
    false
}

// Multi-threaded: the node script blocks this thread while the gateway serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_uses_the_api_and_the_hub_and_never_sees_the_token() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !browser_available(root) {
        return;
    }
    let stack = Setup::default()
        .edit("[[route]]\nname = \"pages\"", HUB_ROUTE)
        .start()
        .await;
    let profile = tempfile::tempdir().unwrap();
    let screenshot = root.join("target/browser/dashboard.png");
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&screenshot);
    let run = Command::new("timeout")
        .args(["120", "node", "tests/browser/e2e.mjs"])
        .current_dir(root)
        .env("GATEWAY_URL", stack.url(""))
        .env("SIM_URL", format!("http://{}", stack.sim.addr()))
        .env("APP_TOKEN", &stack.token)
        .env("SCREENSHOT", &screenshot)
        .env("USER_DATA_DIR", profile.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "e2e.mjs failed: {stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert!(
        report["usersession"].as_str().unwrap().starts_with("ok "),
        "{report}"
    );
    assert_eq!(report["ws"], "echo: ping from the dashboard", "{report}");
    assert_eq!(
        report["leaks"],
        serde_json::json!([]),
        "the page saw the app token: {report}"
    );
    assert!(report["responses"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(
        report["crossOrigin"], "blocked",
        "another origin read the API: {report}"
    );
    assert!(screenshot.exists());

    // What PSU saw: the dashboard's one call, with the token; the hub
    // upgrade with the user's cookie; nothing from the other origin.
    let calls = stack.upstream_saw("/api/v1/usersession");
    assert_eq!(
        calls.len(),
        1,
        "{:?}",
        calls.iter().map(|c| &c.headers).collect::<Vec<_>>()
    );
    assert_eq!(
        header(&calls[0], "x-psu-authorization"),
        [bearer(&stack.token)]
    );
    let hub = stack.upstream_saw("/dashboardhub");
    assert_eq!(hub.len(), 1);
    assert!(header(&hub[0], "cookie")[0].contains(SESSION_COOKIE));
}
