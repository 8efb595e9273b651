//! HTTP/2 abuse against the live gateway over TLS (ALPN `h2`), spoken with a
//! tiny raw frame writer and reader so the tests can send what well-behaved
//! clients refuse to send (`wire`). Each test asserts what came back on the
//! wire (RST_STREAM, GOAWAY, close, or a status) and what the simulator
//! received. Malformed requests are here, floods in `floods`; `hpack` reads
//! how the gateway's response fields were encoded.

use std::time::{Duration, Instant};

use http::Method;

use crate::support::{header, Proto, Setup, Stack};

mod floods;
mod hpack;
mod wire;
use wire::*;

/// A valid request on a fresh h2 connection through the ordinary client:
/// proves the gateway still serves, and (sent after the attack) acts as a
/// barrier before asserting what reached the simulator.
async fn sentinel(stack: &Stack) {
    let started = Instant::now();
    let reply = stack
        .send_with(
            Proto::H2,
            Method::GET,
            "/sim/status/204?sentinel",
            &[],
            Default::default(),
        )
        .await;
    assert_eq!(reply.status, 204);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a fresh connection took {:?}",
        started.elapsed()
    );
}

/// Only the valid probes (`/sim/status/204`) may have reached the upstream.
fn assert_only_probes_forwarded(stack: &Stack) {
    let requests = stack.sim.recorder().requests();
    let leaked: Vec<_> = requests
        .iter()
        .filter(|r| r.path != "/sim/status/204")
        .map(|r| (&r.method, &r.path, &r.query))
        .collect();
    assert!(
        leaked.is_empty(),
        "invalid requests reached PSU: {leaked:?}"
    );
    assert!(!requests.is_empty(), "not even the sentinel reached PSU");
}

/// Sends each request (one connection per case, as some are connection
/// errors), asserts it was refused, then that none reached the simulator.
async fn assert_all_refused(stack: &Stack, cases: Vec<(&str, Vec<Vec<u8>>)>) {
    for (name, frames) in cases {
        let mut conn = H2::open(stack).await;
        for bytes in &frames {
            conn.send(bytes).await.expect("send");
        }
        let outcome = conn.outcome(1).await;
        assert!(outcome.is_rejection(), "{name}: got {outcome:?}");
        if outcome.connection_survives() {
            // The connection is still usable after a stream-level refusal.
            let fields = conn.request("/sim/status/204?same-connection", &[]);
            conn.send(&get(3, &as_refs(&fields))).await.unwrap();
            assert_eq!(conn.outcome(3).await, Outcome::Response(204), "{name}");
        }
        eprintln!("{name}: {outcome:?}");
    }
    sentinel(stack).await;
    assert_only_probes_forwarded(stack);
}

/// The frames for one HEADERS (END_STREAM) built from `fields`.
fn one(fields: &[(&[u8], &[u8])]) -> Vec<Vec<u8>> {
    vec![get(1, fields)]
}

#[tokio::test]
async fn harness_sees_valid_requests_answered() {
    // The decoder and writer themselves: a valid request is answered and
    // forwarded, so the refusals below are not artefacts of the harness.
    let stack = Setup::default().start().await;
    let mut conn = H2::open(&stack).await;
    let fields = conn.request("/sim/status/200?case=valid", &[(b"te", b"trailers")]);
    conn.send(&get(1, &as_refs(&fields))).await.unwrap();
    assert_eq!(conn.outcome(1).await, Outcome::Response(200));
    let fields = conn.request("/sim/status/403?case=valid2", &[]);
    conn.send(&get(3, &as_refs(&fields))).await.unwrap();
    assert_eq!(conn.outcome(3).await, Outcome::Response(403));
    assert_eq!(stack.sim.recorder().count("/sim/status/200"), 1);
    assert_eq!(stack.sim.recorder().count("/sim/status/403"), 1);
}

/// Each response's `X-Request-Id` is a never-indexed literal, the one field
/// of the block sent that way, on the first stream of a connection and on
/// later ones (where an indexed id would have been in the dynamic table).
#[tokio::test]
async fn request_ids_go_out_as_never_indexed_literals() {
    let stack = Setup::default().start().await;
    let mut conn = H2::open(&stack).await;
    for stream in [1, 3, 5] {
        let fields = conn.request(&format!("/sim/status/200?n={stream}"), &[]);
        conn.send(&get(stream, &as_refs(&fields))).await.unwrap();
        let head = loop {
            match conn.next().await {
                Event::Frame(f) if f.kind == HEADERS && f.stream == stream => break f,
                Event::Frame(_) => {}
                Event::Closed(why) => panic!("closed before stream {stream}: {why}"),
            }
        };
        assert_eq!(status_of(&head), 200);
        let kinds = hpack::representations(header_block(&head)).expect("a whole block");
        let never = kinds
            .iter()
            .filter(|k| **k == hpack::Representation::NeverIndexed)
            .count();
        assert_eq!(never, 1, "stream {stream}: {kinds:?}");
        assert!(kinds.len() > 2, "stream {stream}: {kinds:?}");
    }
}

#[tokio::test]
async fn content_length_disagreeing_with_data_is_reset_and_not_forwarded() {
    let stack = Setup::default().start().await;
    let authority = authority(&stack);
    let head = |length: &str, flags: u8| {
        let mut fields = request(&authority, "/sim/status/200?case=cl", &[]);
        fields[0].1 = b"POST".to_vec();
        fields.push((b"content-length".to_vec(), length.as_bytes().to_vec()));
        frame(HEADERS, END_HEADERS | flags, 1, &hpack(&as_refs(&fields)))
    };
    let cases = vec![
        (
            "DATA shorter than content-length",
            vec![head("10", 0), frame(DATA, END_STREAM, 1, b"12345")],
        ),
        (
            "DATA longer than content-length",
            vec![head("3", 0), frame(DATA, END_STREAM, 1, b"1234567890")],
        ),
        (
            "DATA split, total longer than content-length",
            vec![
                head("4", 0),
                frame(DATA, 0, 1, b"123"),
                frame(DATA, END_STREAM, 1, b"45"),
            ],
        ),
        (
            "content-length without any DATA",
            vec![head("10", END_STREAM)],
        ),
    ];
    assert_all_refused(&stack, cases).await;
}

#[tokio::test]
async fn connection_specific_headers_are_rejected() {
    let stack = Setup::default().start().await;
    let authority = authority(&stack);
    let mut cases = Vec::new();
    for (name, value) in [
        ("connection", "keep-alive"),
        ("connection", "close"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("upgrade", "h2c"),
        ("te", "gzip"),
        ("te", "trailers, deflate"),
    ] {
        let fields = request(
            &authority,
            "/sim/status/200?case=conn",
            &[(name.as_bytes(), value.as_bytes())],
        );
        cases.push((name, one(&as_refs(&fields))));
    }
    assert_all_refused(&stack, cases).await;
}

#[tokio::test]
async fn control_characters_in_header_values_are_rejected() {
    let stack = Setup::default().start().await;
    let authority = authority(&stack);
    let mut cases = Vec::new();
    for (name, value) in [
        ("CR", &b"a\rb"[..]),
        ("LF", b"a\nx-psu-authorization: Bearer forged"),
        ("CRLF", b"a\r\nhost: evil.example"),
        ("NUL", b"a\0b"),
    ] {
        let fields = request(
            &authority,
            "/sim/status/200?case=ctl",
            &[(b"x-test", value)],
        );
        cases.push((name, one(&as_refs(&fields))));
    }
    assert_all_refused(&stack, cases).await;
}

#[tokio::test]
async fn uppercase_header_names_are_rejected() {
    let stack = Setup::default().start().await;
    let authority = authority(&stack);
    let mut cases = Vec::new();
    for name in ["X-Test", "Cookie", "X-PSU-Authorization", "HOST"] {
        let fields = request(
            &authority,
            "/sim/status/200?case=upper",
            &[(name.as_bytes(), b"v")],
        );
        cases.push((name, one(&as_refs(&fields))));
    }
    assert_all_refused(&stack, cases).await;
}

#[tokio::test]
async fn pseudo_header_abuse_is_rejected() {
    let stack = Setup::default().start().await;
    let authority = authority(&stack);
    let auth = authority.as_bytes();
    let path: &[u8] = b"/sim/status/200?case=pseudo";
    let m: (&[u8], &[u8]) = (b":method", b"GET");
    let s: (&[u8], &[u8]) = (b":scheme", b"https");
    let a: (&[u8], &[u8]) = (b":authority", auth);
    let p: (&[u8], &[u8]) = (b":path", path);
    let cases = vec![
        ("missing :path", one(&[m, s, a])),
        (
            "missing :path and :authority, host only",
            one(&[m, s, (b"host", auth)]),
        ),
        (
            "duplicate :path",
            one(&[m, s, a, p, (b":path", b"/admin?case=dup")]),
        ),
        (
            "duplicate :method",
            one(&[m, (b":method", b"POST"), s, a, p]),
        ),
        ("pseudo after regular", one(&[m, s, a, (b"x-a", b"1"), p])),
        ("unknown :foo", one(&[m, s, a, p, (b":foo", b"bar")])),
        (
            ":status in a request",
            one(&[m, s, a, p, (b":status", b"200")]),
        ),
        ("missing :method", one(&[s, a, p])),
        ("missing :scheme", one(&[m, a, p])),
        (
            ":path without leading slash",
            one(&[m, s, a, (b":path", b"sim/status/200?case=noslash")]),
        ),
        ("empty :path", one(&[m, s, a, (b":path", b"")])),
        ("asterisk :path", one(&[m, s, a, (b":path", b"*")])),
        (
            "absolute-form :path",
            one(&[
                m,
                s,
                a,
                (b":path", b"https://evil.example/sim/status/200?case=abs"),
            ]),
        ),
        (
            ":authority disagreeing with host",
            one(&[m, s, a, p, (b"host", b"evil.example")]),
        ),
        (
            "two host fields",
            one(&[m, s, p, (b"host", auth), (b"host", b"evil.example")]),
        ),
        (
            "CONNECT",
            one(&[
                (b":method", b"CONNECT"),
                (b":authority", b"evil.example:443"),
            ]),
        ),
    ];
    assert_all_refused(&stack, cases).await;
}

#[tokio::test]
async fn split_cookie_fields_are_joined_into_one_upstream() {
    let stack = Setup::default().start().await;
    let mut conn = H2::open(&stack).await;
    let fields = conn.request(
        "/sim/status/200?cookies",
        &[
            (b"cookie", b"a=1"),
            (b"x-between", b"x"),
            (b"cookie", b"b=2"),
            (b"cookie", b"c=3; d=4"),
        ],
    );
    conn.send(&get(1, &as_refs(&fields))).await.unwrap();
    assert_eq!(conn.outcome(1).await, Outcome::Response(200));
    let seen = stack.upstream_saw("/sim/status/200");
    assert_eq!(seen.len(), 1);
    assert_eq!(header(&seen[0], "cookie"), ["a=1; b=2; c=3; d=4"]);
}
