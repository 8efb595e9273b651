//! HTTP/1.1 request smuggling and header-aliasing attempts, as raw bytes.
//! The simulator's recording must show exactly what a correct proxy sends.

use crate::support::*;

/// Status codes of every response in raw HTTP/1.1 output, in order.
fn statuses(output: &str) -> Vec<u16> {
    output
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| output[at + 9..at + 12].parse().ok())
        .collect()
}

fn paths(stack: &Stack) -> Vec<String> {
    stack
        .sim
        .recorder()
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p != "/api/v1/accessible")
        .collect()
}

const SMUGGLED: &str = "GET /api/v1/usersession HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn framing_obfuscations_are_refused() {
    let stack = Setup::default().start().await;
    let cases = [
        "Transfer-Encoding: chunked, chunked\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding : chunked\r\n",
        "Transfer-Encoding:\tchunked\r\nContent-Length: 3\r\n",
        "Content-Length: +3\r\n",
        "Content-Length: -3\r\n",
        "Content-Length: \r\n",
        "Content-Length: 3, 3\r\n",
        "Content-Length: 3\r\nContent-Length: 4\r\n",
        "Content-Length: 0x3\r\n",
        "X-Folded: a\r\n b\r\n",
        "X-Bad: a\rb\r\n",
        "X-Nul: a\0b\r\n",
    ];
    for framing in cases {
        let bytes = format!("POST /sim/status/204 HTTP/1.1\r\nHost: localhost\r\n{framing}Connection: close\r\n\r\n0\r\n\r\n{SMUGGLED}");
        let output = stack.raw(bytes.as_bytes()).await;
        let got = statuses(&output);
        // "Transfer-Encoding:\tchunked" + Content-Length is resolved by hyper
        // (chunked wins, connection closed): the only case forwarded.
        if framing.starts_with("Transfer-Encoding:\t") {
            assert_eq!(got, [204], "{framing:?}: {output}");
        } else {
            assert_eq!(got, [400], "{framing:?}: {output}");
        }
    }
    let seen = paths(&stack);
    assert!(seen.iter().all(|p| p == "/sim/status/204"), "{seen:?}");
    assert!(seen.len() <= 1, "{seen:?}");
}

#[tokio::test]
async fn pipelined_requests_are_each_decided_on_their_own() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    stack.sim.recorder().clear();
    // A public request, then an inject request without a cookie, then one with.
    let bytes = format!(
        "GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n\
         GET /api/v1/usersession HTTP/1.1\r\nHost: localhost\r\n\r\n\
         GET /api/v1/usersession HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    let output = stack.raw(bytes.as_bytes()).await;
    assert_eq!(statuses(&output), [204, 401, 200], "{output}");
    let seen = stack.sim.recorder().requests();
    let forwarded: Vec<(&str, bool)> = seen
        .iter()
        .filter(|r| r.path != "/api/v1/accessible")
        .map(|r| {
            (
                r.path.as_str(),
                r.headers.contains_key("x-psu-authorization"),
            )
        })
        .collect();
    assert_eq!(
        forwarded,
        [("/sim/status/204", false), ("/api/v1/usersession", true)]
    );
}

#[tokio::test]
async fn a_refused_request_body_is_never_parsed_as_a_request() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    stack.sim.recorder().clear();
    let inner =
        format!("GET /api/v1/usersession HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n");
    // CL.0: a denied route with a body that is itself a request.
    let denied = format!(
        "POST /api/v1/apptoken HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    );
    let output = stack.raw(denied.as_bytes()).await;
    assert_eq!(statuses(&output), [403], "{output}");
    // 0.CL: no framing at all on a GET, body bytes follow: they are the next
    // request on the wire, decided on their own (here: a valid one).
    let unframed = "GET /api/v1/apptoken HTTP/1.1\r\nHost: localhost\r\n\r\nGET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let output = stack.raw(unframed.as_bytes()).await;
    assert_eq!(statuses(&output), [403, 204], "{output}");
    // A request refused for its framing closes the connection.
    let bad = format!("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1, 1\r\n\r\n{inner}");
    let output = stack.raw(bad.as_bytes()).await;
    assert_eq!(statuses(&output), [400], "{output}");
    assert_eq!(paths(&stack), ["/sim/status/204"]);
}

#[tokio::test]
async fn expect_100_continue_on_a_refused_route_sends_no_100() {
    let stack = Setup::default().start().await;
    let bytes = b"POST /api/v1/apptoken HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    let mut conn = stack.connect().await;
    tokio::io::AsyncWriteExt::write_all(&mut conn, bytes)
        .await
        .unwrap();
    let response = read_response(&mut conn).await;
    assert_eq!(raw_status(&response), 403, "{response}");
    assert!(!response.contains("100 Continue"), "{response}");
    // A session route without a session: 401 straight away, no 100 either.
    let mut conn = stack.connect().await;
    tokio::io::AsyncWriteExt::write_all(&mut conn, b"POST /sim/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").await.unwrap();
    let response = read_response(&mut conn).await;
    assert_eq!(raw_status(&response), 401, "{response}");
    assert!(!response.contains("100 Continue"), "{response}");
    assert!(stack.sim.recorder().requests().is_empty());
}

#[tokio::test]
async fn http10_keep_alive_bodies_are_framed_by_content_length() {
    let stack = Setup::default().start().await;
    let bytes = format!(
        "POST /sim/status/204 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{SMUGGLED}\
         GET /sim/status/200 HTTP/1.0\r\nHost: localhost\r\n\r\n",
        SMUGGLED.len()
    );
    let output = stack.raw(bytes.as_bytes()).await;
    let codes: Vec<u16> = output
        .match_indices("HTTP/1.")
        .filter_map(|(at, _)| output[at + 9..at + 12].parse().ok())
        .collect();
    assert_eq!(codes, [204, 200], "{output}");
    let seen = stack.sim.recorder().requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, SMUGGLED.as_bytes());
    assert!(seen.iter().all(|r| r.path != "/api/v1/usersession"));
}

/// Whatever the spelling, the credential reaches the upstream only on a
/// request whose normalized path is the inject route's.
#[tokio::test]
async fn the_credential_only_travels_with_the_inject_route() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let targets = [
        "/api/v1/usersession",
        "/api/v1/usersession/",
        "/API/v1/usersession",
        "/api/v1/user%73ession",
        "/api/v1/usersession;x",
        "/api/v1/usersession%3B",
        "/api/v1/usersession..",
        "/api/v1/usersession/.",
        "/api/v1/usersession%2F",
        "/api/v1/usersession%2f..",
        "/api/v1/x/../usersession",
        "/api/v1/x/%2e%2e/usersession",
        "/api/v1/x/%252e%252e/usersession",
        "/api/v1/x\\..\\usersession",
        "/api/v1//usersession",
        "/api/v1/usersession%00",
        "/api/v1/usersession%20",
        "/api/v1/usersession#",
        "/x?/api/v1/usersession",
        "/api/v1/%C0%AE%C0%AE/v1/usersession",
        "//api/v1/usersession",
        "/api/v1/usersession%E2%80%A8",
    ];
    for target in targets {
        let bytes = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
        stack.raw(bytes.as_bytes()).await;
    }
    let mut carried = 0;
    for request in stack.sim.recorder().requests() {
        if request.headers.contains_key("x-psu-authorization") {
            let key = psu_gateway::rules::path::route_key(&request.path).unwrap();
            assert_eq!(
                key, "/api/v1/usersession",
                "credential sent with {}",
                request.path
            );
            carried += 1;
        }
    }
    // The route itself, its trailing-slash, case and %73 spellings, and
    // `usersession#`: the HTTP stack drops the fragment, so nothing after
    // `#` is routed on or forwarded.
    assert_eq!(carried, 5);
}
