//! TLS policy against the live gateway: protocol versions, cipher suites,
//! ALPN, 0-RTT with rustls clients here; hand-built ClientHellos where
//! rustls would refuse to send what an attacker or an old client sends in
//! `hello`; testssl.sh, when it is installed, in `testssl`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::ClientConnection;
use rustls::crypto::ring;
use rustls::{AlertDescription, HandshakeKind, ProtocolVersion, SupportedCipherSuite};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::support::{root_store, Setup, Stack};

const GUARD: Duration = Duration::from_secs(10);

mod hello;
mod testssl;

use hello::{client_hello, send_hello, MODERN_SUITES};

fn client_config(
    stack: &Stack,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suites: Option<Vec<SupportedCipherSuite>>,
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut provider = ring::default_provider();
    if let Some(suites) = suites {
        provider.cipher_suites = suites;
    }
    let roots = root_store(stack.ca());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

async fn handshake(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<TlsStream<TcpStream>, rustls::Error> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connect = connector.connect(ServerName::try_from("localhost").unwrap(), tcp);
    match tokio::time::timeout(GUARD, connect)
        .await
        .expect("handshake finished within 10s")
    {
        Ok(stream) => Ok(stream),
        Err(e) => Err(e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned()
            .unwrap_or_else(|| panic!("not a TLS error: {e}"))),
    }
}

const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn negotiated(stream: &TlsStream<TcpStream>) -> (ProtocolVersion, String) {
    let conn = stream.get_ref().1;
    let suite = conn.negotiated_cipher_suite().expect("a suite");
    (
        conn.protocol_version().expect("a version"),
        format!("{:?}", suite.suite()),
    )
}

#[tokio::test]
async fn default_policy_accepts_tls12_and_tls13() {
    let stack = Setup::default().start().await;
    for (versions, expected) in [
        (TLS12, ProtocolVersion::TLSv1_2),
        (TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let stream = handshake(stack.addr, client_config(&stack, versions, None, &[]))
            .await
            .unwrap_or_else(|e| panic!("{expected:?}: {e}"));
        assert_eq!(negotiated(&stream).0, expected);
    }
}

#[tokio::test]
async fn min_version_13_refuses_tls12_clients() {
    let stack = Setup::default()
        .edit(
            "key = \"gateway.key\"\n",
            "key = \"gateway.key\"\nmin_version = \"1.3\"\n",
        )
        .start()
        .await;
    let refused = handshake(stack.addr, client_config(&stack, TLS12, None, &[])).await;
    assert_eq!(
        refused.err(),
        Some(rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion
        ))
    );
    // A hand-built 1.2 hello is refused the same way.
    let reply = send_hello(stack.addr, &client_hello(0x0303, &MODERN_SUITES)).await;
    assert!(reply.refuses_the_version(), "{reply:?}");
    let stream = handshake(stack.addr, client_config(&stack, TLS13, None, &[]))
        .await
        .expect("TLS 1.3 still connects");
    assert_eq!(negotiated(&stream).0, ProtocolVersion::TLSv1_3);
}

#[tokio::test]
async fn every_tls12_suite_offered_is_ecdhe_with_an_aead() {
    let stack = Setup::default().start().await;
    let mut accepted = Vec::new();
    for suite in ring::ALL_CIPHER_SUITES {
        if suite.version() != &rustls::version::TLS12 {
            continue;
        }
        let config = client_config(&stack, TLS12, Some(vec![*suite]), &[]);
        match handshake(stack.addr, config).await {
            Ok(stream) => {
                let (version, name) = negotiated(&stream);
                assert_eq!(version, ProtocolVersion::TLSv1_2);
                assert!(
                    name.starts_with("TLS_ECDHE_")
                        && (name.contains("_GCM_") || name.contains("CHACHA20_POLY1305")),
                    "{name}"
                );
                accepted.push(name);
            }
            // Suites for the other key type (the test certificate is ECDSA).
            Err(e) => assert_eq!(
                e,
                rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
                "{:?}",
                suite.suite()
            ),
        }
    }
    eprintln!("TLS 1.2 suites accepted: {accepted:?}");
    assert!(!accepted.is_empty(), "no TLS 1.2 suite at all");
}

#[tokio::test]
async fn the_server_picks_the_cipher_suite_not_the_client() {
    let stack = Setup::default().start().await;
    for versions in [TLS12, TLS13] {
        let suites: Vec<SupportedCipherSuite> = ring::ALL_CIPHER_SUITES
            .iter()
            .filter(|s| s.version() == versions[0])
            .copied()
            .collect();
        let mut chosen = Vec::new();
        for order in [suites.clone(), suites.iter().rev().copied().collect()] {
            let config = client_config(&stack, versions, Some(order), &[]);
            let stream = handshake(stack.addr, config).await.unwrap();
            chosen.push(negotiated(&stream).1);
        }
        assert_eq!(chosen[0], chosen[1], "the client's order decided");
        assert!(chosen[0].contains("AES_256_GCM"), "{}", chosen[0]);
    }
}

#[tokio::test]
async fn unknown_alpn_is_refused_and_known_ones_are_honoured() {
    let stack = Setup::default().start().await;
    for offer in [&[&b"spdy/3"[..]][..], &[b"foo"], &[b"spdy/3", b"foo"]] {
        let result = handshake(stack.addr, client_config(&stack, TLS13, None, offer)).await;
        assert_eq!(
            result.err(),
            Some(rustls::Error::AlertReceived(
                AlertDescription::NoApplicationProtocol
            )),
            "offered {offer:?}"
        );
    }
    for (offer, expected) in [
        (&[&b"h2"[..]][..], &b"h2"[..]),
        (&[b"http/1.1"], b"http/1.1"),
        (&[b"foo", b"http/1.1"], b"http/1.1"),
        (&[b"http/1.1", b"h2"], b"h2"),
    ] {
        let stream = handshake(stack.addr, client_config(&stack, TLS12, None, offer))
            .await
            .unwrap_or_else(|e| panic!("offered {offer:?}: {e}"));
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(expected));
    }
    // No ALPN at all: HTTP/1.1.
    let mut stream = handshake(stack.addr, client_config(&stack, TLS13, None, &[]))
        .await
        .expect("no ALPN connects");
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    stream
        .write_all(b"GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(GUARD, stream.read_to_end(&mut out))
        .await
        .expect("answer within 10s");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 204 "), "{text}");
}

/// One blocking TLS 1.3 connection with early data enabled: writes
/// `request` as 0-RTT data when the session allows it, finishes the
/// handshake, reads the answer. Returns (offered early data, accepted it,
/// handshake kind, answer).
fn early_data_connection(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> (bool, bool, Option<HandshakeKind>, String) {
    let mut conn = ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
        .expect("client connection");
    let offered = match conn.early_data() {
        Some(mut early) => {
            early.write_all(request).unwrap();
            true
        }
        None => false,
    };
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(GUARD)).unwrap();
    sock.set_write_timeout(Some(GUARD)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("handshake");
    }
    let accepted = conn.is_early_data_accepted();
    let kind = conn.handshake_kind();
    if accepted {
        // The verdict is in; what the server does with the replayable
        // request is beside the point.
        return (offered, accepted, kind, String::new());
    }
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(request).unwrap();
    let mut out = Vec::new();
    if let Err(e) = tls.read_to_end(&mut out) {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }
    (
        offered,
        accepted,
        kind,
        String::from_utf8_lossy(&out).into_owned(),
    )
}

#[tokio::test]
async fn early_data_is_never_accepted_on_resumption() {
    let stack = Setup::default().start().await;
    let mut config = client_config(&stack, TLS13, None, &[b"http/1.1"]);
    config.enable_early_data = true;
    let config = Arc::new(config);
    let addr = stack.addr;
    let request =
        b"GET /sim/status/204?early HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let result = tokio::task::spawn_blocking(move || {
        let first = early_data_connection(addr, config.clone(), request);
        let second = early_data_connection(addr, config, request);
        (first, second)
    });
    let (first, second) = tokio::time::timeout(Duration::from_secs(30), result)
        .await
        .expect("both connections within 30s")
        .unwrap();
    eprintln!("first: {first:?}\nsecond: {second:?}");
    assert_eq!(first.2, Some(HandshakeKind::Full));
    assert!(first.3.starts_with("HTTP/1.1 204 "), "{}", first.3);
    // The second connection resumed the first session: 0-RTT would have
    // been possible, and was not granted.
    assert_eq!(second.2, Some(HandshakeKind::Resumed));
    assert!(!second.1, "early data accepted (offered: {})", second.0);
    assert!(second.3.starts_with("HTTP/1.1 204 "), "{}", second.3);
    assert_eq!(stack.sim.recorder().count("/sim/status/204"), 2);
}
