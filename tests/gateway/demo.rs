//! `psu-gateway demo` as a user runs it: a child process, its printed
//! commands followed, Ctrl-C (SIGINT) to stop it.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::support::{tls_client, Proto};

const BIN: &str = env!("CARGO_BIN_EXE_psu-gateway");

/// A running demo in a fresh directory.
struct Demo {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    url: String,
    banner: String,
    /// Kept open: the demo prints "stopping" on Ctrl-C.
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

async fn start_demo(extra: &[&str]) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let read_banner = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            let done = line.contains("Ctrl-C stops everything");
            printed.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read_banner)
        .await
        .expect("demo printed its banner");
    let banner = printed.join("\n");
    let url = banner
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("gateway")
                .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        })
        .expect("gateway URL in the banner");
    Demo {
        child,
        dir,
        url,
        banner,
        _stdout: stdout,
    }
}

/// Signs `user` (password = name, as the demo's users) in through the
/// gateway and returns the session cookie.
pub(crate) async fn sign_in(client: &crate::support::TestClient, url: &str, user: &str) -> String {
    let body = format!(r#"{{"username":"{user}","password":"{user}"}}"#);
    let signin = Request::post(format!("{url}/api/v1/signin"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(signin).await.unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn demo_serves_the_printed_commands_and_stops_on_ctrl_c() {
    let Demo {
        mut child,
        dir,
        url,
        banner,
        _stdout,
    } = start_demo(&[]).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{banner}");
    for needle in [
        "/api/v1/signin",
        "-b /tmp/psu-jar",
        "X-PSU-Authorization: Bearer forged",
        "--cacert",
    ] {
        assert!(banner.contains(needle), "{needle} missing from:\n{banner}");
    }
    let token_path = dir.path().join("target/demo/app-token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let client = tls_client(
        &std::fs::read(dir.path().join("certs/gateway.crt")).unwrap(),
        Proto::H1,
    );
    let cookie = sign_in(&client, &url, "admin").await;
    let get = |headers: &[(&str, &str)]| {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(format!("{url}/api/v1/usersession"));
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        client.request(request.body(Full::new(Bytes::new())).unwrap())
    };
    let ok = get(&[("cookie", &cookie)]).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body = ok.into_body().collect().await.unwrap().to_bytes();
    assert!(serde_json::from_slice::<serde_json::Value>(&body)
        .unwrap()
        .is_array());
    assert_eq!(get(&[]).await.unwrap().status(), 401);
    assert_eq!(
        get(&[
            ("cookie", &cookie),
            ("x-psu-authorization", "Bearer forged")
        ])
        .await
        .unwrap()
        .status(),
        200
    );
    assert_eq!(
        get(&[("x-psu-authorization", "Bearer forged")])
            .await
            .unwrap()
            .status(),
        401
    );

    let exit = crate::child::interrupt(&mut child).await;
    assert_eq!(exit.code(), Some(0));
    assert!(!token_path.exists(), "the demo token is removed on exit");

    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    assert!(
        logs.contains("access"),
        "access log lines expected in:\n{logs}"
    );
    // Two requests carried the token (the cookie ones); each has an audit
    // line naming it by fingerprint only.
    let fingerprint = psu_gateway::secret::Secret::new(token.trim()).fingerprint();
    let audits: Vec<&str> = logs.lines().filter(|l| l.contains(" audit: ")).collect();
    assert_eq!(audits.len(), 2, "{logs}");
    assert!(
        audits
            .iter()
            .all(|l| l.contains(&format!("token=\"{fingerprint}\""))
                && l.contains("identity=\"admin\"")),
        "{audits:?}"
    );
    assert!(
        !logs.contains(token.trim()),
        "the token appeared in the logs"
    );
    let cookie_value = cookie.split_once('=').unwrap().1;
    assert!(
        !logs.contains(cookie_value),
        "a cookie value appeared in the logs"
    );
}

#[tokio::test]
async fn demo_per_user_gives_each_user_their_own_token() {
    // Bound whole: dropping the child would kill the demo.
    let demo = start_demo(&["--per-user"]).await;
    let (dir, url, banner) = (&demo.dir, &demo.url, &demo.banner);
    for needle in [
        "/tmp/psu-jar-admin",
        "/tmp/psu-jar-alice",
        "/api/v1/accessible",
    ] {
        assert!(banner.contains(needle), "{needle} missing from:\n{banner}");
    }
    assert!(
        !dir.path().join("target/demo/app-token").exists(),
        "per-user needs no token"
    );
    let client = tls_client(
        &std::fs::read(dir.path().join("certs/gateway.crt")).unwrap(),
        Proto::H1,
    );
    for user in ["admin", "alice"] {
        let cookie = sign_in(&client, url, user).await;
        let whoami = Request::get(format!("{url}/api/v1/accessible"))
            .header("cookie", &cookie)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(whoami).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["identity"], user, "the token PSU saw was {json}");
    }
}
