//! Towards PSU: https with an extra CA and a server-name override, h2.

use psu_gateway::sim::SimOptions;

use crate::support::*;

/// A simulator serving TLS with a certificate for `psu.internal` only.
fn tls_sim(options: &mut SimOptions, ca_out: &std::path::Path) {
    let (pem, config) = server_tls(&["psu.internal"]);
    std::fs::write(ca_out, pem).unwrap();
    options.tls = Some(config);
}

#[tokio::test]
async fn https_upstream_with_private_ca_and_server_name() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("psu-ca.pem");
    let stack = Setup::default()
        .sim(|o| tls_sim(o, &ca))
        .edit(
            "url = \"{upstream}\"",
            &format!(
                "url = \"{{upstream_tls}}\"\nca = \"{}\"\nserver_name = \"psu.internal\"",
                ca.display()
            ),
        )
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    let reply = stack
        .get("/api/v1/usersession", &[("cookie", &cookie)])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        header(
            &stack.upstream_saw("/api/v1/usersession")[0],
            "x-psu-authorization"
        ),
        [bearer(&stack.token)]
    );
}

#[tokio::test]
async fn https_upstream_with_the_wrong_name_is_502() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("psu-ca.pem");
    let stack = Setup::default()
        .sim(|o| tls_sim(o, &ca))
        .edit(
            "url = \"{upstream}\"",
            &format!("url = \"{{upstream_tls}}\"\nca = \"{}\"", ca.display()),
        )
        .start()
        .await;
    // The certificate names psu.internal, the URL says 127.0.0.1.
    stack.get("/sim/status/204", &[]).await.assert_problem(502);
    assert!(stack.sim.recorder().requests().is_empty());
}

#[tokio::test]
async fn h2_towards_the_upstream() {
    let stack = Setup::default()
        .edit(
            "url = \"{upstream}\"",
            "url = \"{upstream}\"\nprotocol = \"h2\"",
        )
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    assert_eq!(
        stack
            .get("/api/v1/usersession", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    let seen = stack.upstream_saw("/api/v1/usersession");
    assert_eq!(seen[0].version, http::Version::HTTP_2);
    assert_eq!(
        header(&seen[0], "x-psu-authorization"),
        [bearer(&stack.token)]
    );
}

#[tokio::test]
async fn h2_clients_with_split_cookies_are_joined() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let reply = stack
        .send_with(
            Proto::H2,
            http::Method::GET,
            "/sim/echo",
            &[("cookie", "theme=dark"), ("cookie", &cookie)],
            Default::default(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = stack.upstream_saw("/sim/echo");
    assert_eq!(
        header(&seen[0], "cookie"),
        [format!("theme=dark; {cookie}")]
    );
    assert_eq!(seen[0].version, http::Version::HTTP_11);
}

/// Trailers would be headers that arrive after every check ran; an h2
/// upstream could receive them, so the gateway drops them.
#[tokio::test]
async fn request_trailers_never_reach_the_upstream() {
    let stack = Setup::default()
        .edit(
            "url = \"{upstream}\"",
            "url = \"{upstream}\"\nprotocol = \"h2\"",
        )
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    let bytes = format!(
        "POST /sim/echo HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\nTrailer: X-PSU-Authorization\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-PSU-Authorization: Bearer smuggled\r\nCookie: {SESSION_COOKIE}=tossed\r\n\r\n"
    );
    let response = stack.raw(bytes.as_bytes()).await;
    assert_eq!(raw_status(&response), 200, "{response}");
    let seen = stack.upstream_saw("/sim/echo");
    assert_eq!(seen.len(), 1);
    assert_eq!(&seen[0].body[..], b"abc");
    assert!(seen[0].body_complete);
    assert!(
        seen[0].trailers.as_ref().is_none_or(|t| t.is_empty()),
        "{:?}",
        seen[0].trailers
    );
    assert!(header(&seen[0], "trailer").is_empty());
}
