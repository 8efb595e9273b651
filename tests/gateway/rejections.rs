//! Raw bytes on a real TLS socket: malformed or ambiguous requests are
//! refused by the gateway and nothing reaches the upstream.

use crate::support::*;

fn request(line: &str, headers: &str) -> Vec<u8> {
    format!("{line}\r\n{headers}Connection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn ambiguous_requests_are_refused_before_the_upstream() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    stack.sim.recorder().clear();
    let host = "Host: localhost\r\n";
    let with_cookie = format!("Host: localhost\r\nCookie: {cookie}\r\n");
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "GET /api/v1/%2e%2e/v1/usersession HTTP/1.1",
            with_cookie.clone(),
            400,
        ),
        (
            "GET /api/v1/./usersession HTTP/1.1",
            with_cookie.clone(),
            400,
        ),
        (
            "GET /api//v1/usersession HTTP/1.1",
            with_cookie.clone(),
            400,
        ),
        (
            "GET /api/v1%2Fusersession HTTP/1.1",
            with_cookie.clone(),
            400,
        ),
        (
            "GET /api/v1/usersession%00 HTTP/1.1",
            with_cookie.clone(),
            400,
        ),
        (
            "GET /api/v1/%C0%AE%C0%AE/usersession HTTP/1.1",
            with_cookie.clone(),
            400,
        ),
        ("GET /api/v1/%zz HTTP/1.1", with_cookie.clone(), 400),
        (
            "GET http://localhost/api/v1/usersession HTTP/1.1",
            with_cookie.clone(),
            400,
        ),
        ("OPTIONS * HTTP/1.1", host.to_owned(), 400),
        ("CONNECT localhost:443 HTTP/1.1", host.to_owned(), 400),
        ("TRACE / HTTP/1.1", host.to_owned(), 405),
        ("GET / HTTP/1.1", String::new(), 400),
        (
            "GET / HTTP/1.1",
            "Host: localhost\r\nHost: evil\r\n".to_owned(),
            400,
        ),
        (
            "GET /api/v1/usersession HTTP/1.1",
            format!("{with_cookie}X_PSU_Authorization: Bearer forged\r\n"),
            400,
        ),
        (
            "GET /api/v1/usersession HTTP/1.1",
            format!("{with_cookie}Authorization: a\r\nAuthorization: b\r\n"),
            400,
        ),
        (
            "GET / HTTP/1.1",
            format!("{host}Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"),
            400,
        ),
        (
            "GET /api/v1/usersession HTTP/1.1",
            format!("{with_cookie}Cookie: {SESSION_COOKIE}=tossed\r\n"),
            400,
        ),
    ];
    for (line, headers, status) in &cases {
        let response = stack.raw(&request(line, headers)).await;
        assert_eq!(
            raw_status(&response),
            *status,
            "{line} / {headers:?}:\n{response}"
        );
    }
    let seen = stack.sim.recorder().requests();
    assert!(
        seen.is_empty(),
        "upstream received {:?}",
        seen.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

/// hyper resolves Content-Length + Transfer-Encoding itself (RFC 9112
/// 6.1): the body is framed by the chunked encoding alone and the
/// connection closes after the response, so the bytes after the final chunk
/// are never read as a second request.
#[tokio::test]
async fn content_length_with_chunked_never_smuggles_a_second_request() {
    let stack = Setup::default().start().await;
    let smuggled = "GET /api/v1/usersession HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let bytes = format!(
        "POST /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let response = stack.raw(bytes.as_bytes()).await;
    assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
    assert_eq!(raw_status(&response), 204, "{response}");
    let seen = stack.sim.recorder().requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/sim/status/204");
    assert!(seen[0].body.is_empty());
}

#[tokio::test]
async fn accepted_variants_are_forwarded_as_normalized() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    for target in [
        "/api/v1/%75sersession",
        "/API/V1/UserSession",
        "/api/v1/usersession/",
    ] {
        let bytes = request(
            &format!("GET {target} HTTP/1.1"),
            &format!("Host: localhost\r\nCookie: {cookie}\r\n"),
        );
        let response = stack.raw(&bytes).await;
        assert_eq!(raw_status(&response), 200, "{target}: {response}");
    }
    let paths: Vec<String> = stack
        .sim
        .recorder()
        .requests()
        .into_iter()
        .filter(|r| r.path != "/api/v1/signin" && r.path != "/api/v1/accessible")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        [
            "/api/v1/usersession",
            "/API/V1/UserSession",
            "/api/v1/usersession/"
        ]
    );
}

#[tokio::test]
async fn the_query_never_routes() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let bytes = request(
        "GET /x?/api/v1/usersession HTTP/1.1",
        &format!("Host: localhost\r\nCookie: {cookie}\r\n"),
    );
    let response = stack.raw(&bytes).await;
    assert_eq!(
        raw_status(&response),
        404,
        "the simulator's own 404 for /x:\n{response}"
    );
    let seen = stack.upstream_saw("/x");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].query.as_deref(), Some("/api/v1/usersession"));
    assert!(header(&seen[0], "x-psu-authorization").is_empty());
}

#[tokio::test]
async fn unknown_host_names_get_421() {
    let stack = Setup::default()
        .edit(
            "addr = \"127.0.0.1:0\"",
            "addr = \"127.0.0.1:0\"\nhostnames = [\"localhost\"]",
        )
        .start()
        .await;
    let response = stack
        .raw(&request("GET / HTTP/1.1", "Host: psu.evil.example\r\n"))
        .await;
    assert_eq!(raw_status(&response), 421, "{response}");
    let response = stack
        .raw(&request(
            "GET /sim/status/204 HTTP/1.1",
            "Host: LOCALHOST:8443\r\n",
        ))
        .await;
    assert_eq!(raw_status(&response), 204, "{response}");
    assert_eq!(stack.sim.recorder().requests().len(), 1);
}

/// Kestrel decodes escapes before routing, so the route decision is made on
/// the decoded path too: an escaped ':' cannot slip past a deny route.
#[tokio::test]
async fn escaped_reserved_characters_are_routed_decoded() {
    let stack = Setup::default()
        .edit("[[route]]\nname = \"pages\"", "[[route]]\nname = \"colon\"\npath = \"/sim/a:b\"\naccess = \"deny\"\n\n[[route]]\nname = \"pages\"")
        .start()
        .await;
    for target in ["/sim/a:b", "/sim/a%3Ab", "/sim/a%3ab", "/SIM/A%3AB/"] {
        let response = stack
            .raw(&request(
                &format!("GET {target} HTTP/1.1"),
                "Host: localhost\r\n",
            ))
            .await;
        assert_eq!(raw_status(&response), 403, "{target}: {response}");
    }
    for target in ["/sim/u%C5%BFer", "/sim/%E2%84%AAey"] {
        let response = stack
            .raw(&request(
                &format!("GET {target} HTTP/1.1"),
                "Host: localhost\r\n",
            ))
            .await;
        assert_eq!(raw_status(&response), 400, "{target}: {response}");
    }
    assert!(stack.sim.recorder().requests().is_empty());
}

/// A Cookie field that is not text never authenticates, and cannot hide a
/// duplicated session cookie either.
#[tokio::test]
async fn non_text_cookies_are_unauthenticated_and_still_checked_for_tossing() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    stack.sim.recorder().clear();
    let mut tossed = format!("GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}; {SESSION_COOKIE}=other; x=").into_bytes();
    tossed.extend_from_slice(b"\xff\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&stack.raw(&tossed).await), 400);
    let mut binary =
        format!("GET /api/v1/usersession HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}; x=")
            .into_bytes();
    binary.extend_from_slice(b"\xff\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(&stack.raw(&binary).await), 401);
    assert!(stack.sim.recorder().requests().is_empty());
}
