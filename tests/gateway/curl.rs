//! The README's curl sequence, run as written against a live gateway.

use std::process::Command;

use crate::support::*;

pub(crate) fn curl_available() -> bool {
    tool_available("curl", "--version", "apt-get install curl")
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_owned())
}

// Multi-threaded: curl blocks this thread while the gateway serves on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_curl_sequence_works() {
    if !curl_available() {
        return;
    }
    let stack = Setup::default().start().await;
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("jar").display().to_string();
    let ca = stack.ca_path().display().to_string();
    let (signin, _) = curl(&[
        "--cacert",
        &ca,
        "-c",
        &jar,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"username":"admin","password":"admin"}"#,
        &stack.url("/api/v1/signin"),
    ]);
    assert_eq!(signin, 200);
    let (status, body) = curl(&[
        "--cacert",
        &ca,
        "-b",
        &jar,
        &stack.url("/api/v1/usersession"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .is_array(),
        "{body}"
    );
    let (status, body) = curl(&["--cacert", &ca, &stack.url("/api/v1/usersession")]);
    assert_eq!(status, 401);
    assert!(body.contains("\"status\":401"), "{body}");
    let (status, _) = curl(&[
        "--cacert",
        &ca,
        "-b",
        &jar,
        "-H",
        "X-PSU-Authorization: Bearer forged",
        &stack.url("/api/v1/usersession"),
    ]);
    assert_eq!(status, 200);
    let seen = stack.upstream_saw("/api/v1/usersession");
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|r| header(r, "x-psu-authorization") == [bearer(&stack.token)]));
}
