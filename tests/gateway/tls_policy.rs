//! TLS policy against the live gateway: protocol versions, cipher suites,
//! ALPN, 0-RTT, with hand-built ClientHellos where rustls would refuse to
//! send what an attacker or an old client sends, and testssl.sh when it is
//! installed.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::ClientConnection;
use rustls::crypto::ring;
use rustls::{AlertDescription, HandshakeKind, ProtocolVersion, SupportedCipherSuite};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::support::{root_store, Setup, Stack};

const GUARD: Duration = Duration::from_secs(10);

// ---- hand-built ClientHello -------------------------------------------

// TLS 1.2 suites as IANA numbers.
const ECDHE_ECDSA_AES128_GCM: u16 = 0xc02b;
const ECDHE_ECDSA_AES256_GCM: u16 = 0xc02c;
const ECDHE_RSA_AES128_GCM: u16 = 0xc02f;
const ECDHE_RSA_AES256_GCM: u16 = 0xc030;
const ECDHE_ECDSA_CHACHA20: u16 = 0xcca9;
const ECDHE_RSA_CHACHA20: u16 = 0xcca8;
/// What old clients offered: ECDHE with CBC, then plain RSA key exchange.
const LEGACY_SUITES: [u16; 6] = [0xc009, 0xc00a, 0xc013, 0xc014, 0x002f, 0x0035];
/// Non-forward-secret (RSA key exchange, static DH) and CBC/3DES/RC4/NULL
/// suites: the gateway must pick none of them.
const WEAK_SUITES: [u16; 22] = [
    0x002f, 0x0035, 0x003c, 0x003d, 0x009c, 0x009d, // RSA kx, CBC and GCM
    0x000a, 0x0005, 0x0004, 0x0001, 0x0002, 0x003b, // 3DES, RC4, NULL
    0xc009, 0xc00a, 0xc023, 0xc024, // ECDHE-ECDSA CBC
    0xc013, 0xc014, 0xc027, 0xc028, // ECDHE-RSA CBC
    0x0033, 0x0039, // DHE-RSA CBC
];
const MODERN_SUITES: [u16; 6] = [
    ECDHE_ECDSA_AES128_GCM,
    ECDHE_ECDSA_AES256_GCM,
    ECDHE_RSA_AES128_GCM,
    ECDHE_RSA_AES256_GCM,
    ECDHE_ECDSA_CHACHA20,
    ECDHE_RSA_CHACHA20,
];

fn u16_list(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn with_len16(body: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend(with_len16(body));
    out
}

/// A ClientHello record as a pre-TLS-1.3 client sends it: `version` in the
/// hello, no `supported_versions` extension, SNI `localhost`, the usual
/// groups, point formats and signature algorithms.
fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
    let mut sni = vec![0x00];
    sni.extend(with_len16(b"localhost"));
    let mut extensions = extension(0x0000, &with_len16(&sni));
    extensions.extend(extension(
        0x000a,
        &with_len16(&u16_list(&[0x001d, 0x0017, 0x0018])),
    ));
    extensions.extend(extension(0x000b, &[0x01, 0x00]));
    extensions.extend(extension(
        0x000d,
        &with_len16(&u16_list(&[
            0x0403, 0x0503, 0x0804, 0x0805, 0x0401, 0x0501, 0x0201,
        ])),
    ));
    extensions.extend(extension(0xff01, &[0x00]));
    extensions.extend(extension(0x0017, &[]));

    let mut hello = version.to_be_bytes().to_vec();
    hello.extend((0u8..32).map(|i| i.wrapping_mul(37))); // random
    hello.push(0); // no session id
    hello.extend(with_len16(&u16_list(suites)));
    hello.extend([0x01, 0x00]); // compression: null only
    hello.extend(with_len16(&extensions));

    let len = u32::try_from(hello.len()).unwrap().to_be_bytes();
    let mut handshake = vec![0x01, len[1], len[2], len[3]];
    handshake.extend(hello);
    // Record layer version: 0x0301 for everything, as real clients do.
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(with_len16(&handshake));
    record
}

/// What the server's first record was.
#[derive(Debug, PartialEq, Eq)]
enum ServerReply {
    /// ServerHello: negotiated version and cipher suite.
    Hello {
        version: u16,
        suite: u16,
    },
    Alert {
        level: u8,
        description: u8,
    },
    Closed,
    Other(Vec<u8>),
}

/// Sends `hello` over plain TCP and reads the first record the gateway
/// sends (or the close).
async fn send_hello(addr: SocketAddr, hello: &[u8]) -> ServerReply {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() >= 5 && buf.len() >= 5 + usize::from(u16::from_be_bytes([buf[3], buf[4]]))
            {
                return;
            }
        }
    };
    tokio::time::timeout(GUARD, read)
        .await
        .expect("the gateway answered the ClientHello within 10s");
    match buf.as_slice() {
        [] => ServerReply::Closed,
        [0x15, _, _, _, _, level, description, ..] => ServerReply::Alert {
            level: *level,
            description: *description,
        },
        [0x16, _, _, _, _, 0x02, _, _, _, rest @ ..] if rest.len() >= 35 => {
            let version = u16::from_be_bytes([rest[0], rest[1]]);
            let sid = usize::from(rest[34]);
            let suite = u16::from_be_bytes([rest[35 + sid], rest[36 + sid]]);
            ServerReply::Hello { version, suite }
        }
        other => ServerReply::Other(other.to_vec()),
    }
}

const PROTOCOL_VERSION_ALERT: u8 = 70;
const HANDSHAKE_FAILURE_ALERT: u8 = 40;
const INSUFFICIENT_SECURITY_ALERT: u8 = 71;

#[tokio::test]
async fn hand_built_tls12_hello_gets_a_server_hello() {
    // The control for the refusals below: the same builder with version
    // 1.2 and modern suites is a ClientHello the gateway accepts.
    let stack = Setup::default().start().await;
    let reply = send_hello(stack.addr, &client_hello(0x0303, &MODERN_SUITES)).await;
    let ServerReply::Hello { version, suite } = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(version, 0x0303);
    assert!(MODERN_SUITES.contains(&suite), "{suite:#06x}");
}

#[tokio::test]
async fn tls10_and_tls11_hellos_are_refused() {
    let stack = Setup::default().start().await;
    for (name, version) in [("TLS 1.0", 0x0301), ("TLS 1.1", 0x0302)] {
        // Modern suites too, so only the version can be the reason.
        let suites: Vec<u16> = LEGACY_SUITES
            .iter()
            .chain(&MODERN_SUITES)
            .copied()
            .collect();
        let reply = send_hello(stack.addr, &client_hello(version, &suites)).await;
        eprintln!("{name}: {reply:?}");
        assert!(
            matches!(
                reply,
                ServerReply::Alert {
                    level: 2,
                    description: PROTOCOL_VERSION_ALERT
                } | ServerReply::Closed
            ),
            "{name}: {reply:?}"
        );
    }
}

#[tokio::test]
async fn hello_with_only_non_forward_secret_or_cbc_suites_is_refused() {
    let stack = Setup::default().start().await;
    let reply = send_hello(stack.addr, &client_hello(0x0303, &WEAK_SUITES)).await;
    eprintln!("weak suites only: {reply:?}");
    assert!(
        matches!(
            reply,
            ServerReply::Alert {
                level: 2,
                description: HANDSHAKE_FAILURE_ALERT | INSUFFICIENT_SECURITY_ALERT
            } | ServerReply::Closed
        ),
        "{reply:?}"
    );
    // Offered together with one good suite, the good one is chosen.
    let mut suites = WEAK_SUITES.to_vec();
    suites.push(ECDHE_ECDSA_AES128_GCM);
    suites.push(ECDHE_RSA_AES128_GCM);
    let reply = send_hello(stack.addr, &client_hello(0x0303, &suites)).await;
    let ServerReply::Hello { suite, .. } = reply else {
        panic!("{reply:?}");
    };
    assert!(MODERN_SUITES.contains(&suite), "picked {suite:#06x}");
}

// ---- rustls clients ---------------------------------------------------

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
    assert!(
        matches!(
            reply,
            ServerReply::Alert {
                level: 2,
                description: PROTOCOL_VERSION_ALERT
            } | ServerReply::Closed
        ),
        "{reply:?}"
    );
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

// ---- testssl.sh ---------------------------------------------------------

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

fn production_like_cert() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(90 * 24 * 3600)).into();
    params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec!["http://crl.invalid/gateway.crl".to_owned()],
    }];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Severities that fail the test. testssl.sh also reports FATAL when a
/// check could not run; that fails too, as a scan that did not happen
/// proves nothing.
const FAILING: [&str; 4] = ["MEDIUM", "HIGH", "CRITICAL", "FATAL"];

#[tokio::test]
async fn testssl_finds_nothing_medium_or_worse() {
    let Some(testssl) = find_on_path("testssl").or_else(|| find_on_path("testssl.sh")) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("testssl.sh is not installed; CI must install it (apt-get install testssl.sh)");
        }
        eprintln!("\n*** SKIPPED: testssl.sh not installed (apt-get install testssl.sh) ***\n");
        return;
    };
    // A certificate shaped like a production one (90 days, a CRL URL), so
    // the scan judges the gateway's TLS and not the dev cert's 2000-year
    // lifetime.
    let (cert, key) = production_like_cert();
    let stack = Setup::default().cert(cert, key).start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, stack.ca()).unwrap();
    let json = dir.path().join("testssl.json");
    let started = Instant::now();
    let mut command = tokio::process::Command::new(&testssl);
    command
        // TLS checks only: protocols, cipher lists, forward secrecy, server
        // preference, certificate, vulnerabilities, client simulation. Not
        // --headers: X-Frame-Options, CSP and the like are PSU's answer
        // passed through (here the simulator's), not the gateway's.
        .args(["-p", "-s", "-f", "-P", "-S", "-U", "-c"])
        .args(["--quiet", "--fast", "--color", "0", "--warnings", "off"])
        .args(["--connect-timeout", "10", "--openssl-timeout", "10"])
        // Loopback only: no DNS look-ups for CAA records or the like.
        .args(["--nodns", "none"])
        .arg("--add-ca")
        .arg(&ca)
        .arg("--jsonfile")
        .arg(&json)
        .arg(format!("127.0.0.1:{}", stack.addr.port()))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(900), command.output())
        .await
        .expect("testssl.sh finished within 15 minutes")
        .expect("testssl.sh runs");
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON from testssl.sh ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let findings: Vec<serde_json::Value> = serde_json::from_str(&text).expect("testssl JSON");
    eprintln!("testssl.sh: {} findings in {elapsed:?}", findings.len());
    let mut bad = Vec::new();
    for finding in &findings {
        let severity = finding["severity"].as_str().unwrap_or("");
        let line = format!(
            "{severity:8} {} {}",
            finding["id"].as_str().unwrap_or("?"),
            finding["finding"].as_str().unwrap_or("")
        );
        eprintln!("  {line}");
        if FAILING.contains(&severity) {
            bad.push(line);
        }
    }
    // The scan really happened: it saw the protocols the gateway speaks.
    let ok = |id: &str| {
        findings.iter().any(|f| {
            f["id"] == id
                && f["finding"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("offered"))
        })
    };
    assert!(
        ok("TLS1_2") && ok("TLS1_3"),
        "testssl.sh did not see TLS 1.2 and 1.3"
    );
    assert!(bad.is_empty(), "testssl.sh findings:\n{}", bad.join("\n"));
}
