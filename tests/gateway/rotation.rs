//! Token and certificate files rotated under a running gateway: the next
//! request uses the new token, the next connection the new certificate, and
//! a broken file leaves the working one in use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

/// The app token PSU saw on the last injected request.
async fn token_sent(stack: &Stack, cookie: &str) -> String {
    let reply = stack
        .get("/api/v1/usersession", &[("cookie", cookie)])
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let seen = stack.upstream_saw("/api/v1/usersession");
    let last = seen.last().expect("the request reached PSU");
    header(last, "x-psu-authorization")[0].to_owned()
}

async fn until_token_sent(stack: &Stack, cookie: &str, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while token_sent(stack, cookie).await != bearer(token) {
        assert!(
            Instant::now() < deadline,
            "the new token was not used within 10s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counter(stack: &Stack, name: &str) -> f64 {
    let scrape = stack.live().metrics().encode();
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in {scrape}"))
        .parse()
        .unwrap()
}

async fn until_counter(stack: &Stack, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(stack, name) < at_least {
        assert!(Instant::now() < deadline, "{name} never reached {at_least}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn mint(stack: &Stack) -> String {
    stack
        .sim
        .mint_token("gateway", &["Administrator"], Duration::from_secs(3600))
        .token
        .expose()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_is_used_for_the_next_request() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    assert_eq!(token_sent(&stack, &cookie).await, bearer(&stack.token));
    let file = stack.dir().join("app-token");

    // The way secret managers do it: a new file renamed over the old.
    let second = mint(&stack);
    std::fs::write(stack.dir().join("app-token.new"), format!("{second}\n")).unwrap();
    std::fs::rename(stack.dir().join("app-token.new"), &file).unwrap();
    until_token_sent(&stack, &cookie, &second).await;

    // Rewritten in place.
    let third = mint(&stack);
    std::fs::write(&file, &third).unwrap();
    until_token_sent(&stack, &cookie, &third).await;

    // Emptied, then deleted: each is refused, counted, and the third token
    // stays in use.
    for (step, broken) in [(1.0, Some("")), (2.0, Some("two words")), (3.0, None)] {
        match broken {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        until_counter(&stack, "psu_gateway_token_reload_failures_total", step).await;
        assert_eq!(token_sent(&stack, &cookie).await, bearer(&third));
    }
    // And a good file again is taken.
    let fourth = mint(&stack);
    std::fs::write(&file, &fourth).unwrap();
    until_token_sent(&stack, &cookie, &fourth).await;
}

/// The leaf certificate a new TLS connection is served.
async fn served_leaf(stack: &Stack, trusted: &[u8]) -> Vec<u8> {
    let mut tls = client_tls(trusted);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = TcpStream::connect(stack.addr).await.unwrap();
    let conn = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake with a trusted certificate");
    conn.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_to_new_connections() {
    let stack = Setup::default().start().await;
    let first_pem = String::from_utf8(stack.ca().to_vec()).unwrap();
    let next = psu_gateway::cli::devcert::generate(&["localhost".to_owned()]).unwrap();
    let both = format!("{first_pem}{}", next.cert_pem);
    assert_eq!(served_leaf(&stack, both.as_bytes()).await, der(&first_pem));

    // A connection opened before the rotation keeps working after it.
    let mut before = stack.connect().await;
    let ask = b"GET /sim/status/200 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    before.write_all(ask).await.unwrap();
    assert_eq!(raw_status(&read_response(&mut before).await), 200);

    // Key first, then certificate, each renamed into place: in between the
    // pair does not match, which must not break anything either.
    let dir = stack.dir();
    std::fs::write(dir.join("key.new"), &next.key_pem).unwrap();
    std::fs::rename(dir.join("key.new"), dir.join("gateway.key")).unwrap();
    std::fs::write(dir.join("crt.new"), &next.cert_pem).unwrap();
    std::fs::rename(dir.join("crt.new"), dir.join("gateway.crt")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_leaf(&stack, both.as_bytes()).await != der(&next.cert_pem) {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 10s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    before.write_all(ask).await.unwrap();
    assert_eq!(raw_status(&read_response(&mut before).await), 200);

    // A broken certificate file is refused and counted; the new one stays.
    let failures = counter(&stack, "psu_gateway_certificate_reload_failures_total");
    std::fs::write(dir.join("gateway.crt"), "not a certificate\n").unwrap();
    until_counter(
        &stack,
        "psu_gateway_certificate_reload_failures_total",
        failures + 1.0,
    )
    .await;
    assert_eq!(
        served_leaf(&stack, both.as_bytes()).await,
        der(&next.cert_pem)
    );
}
