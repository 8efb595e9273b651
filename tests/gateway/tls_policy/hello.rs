//! Hand-built ClientHellos over plain TCP, for what rustls refuses to send:
//! old protocol versions and weak cipher suites.

use super::*;

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
pub(super) const MODERN_SUITES: [u16; 6] = [
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
pub(super) fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
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
pub(super) enum ServerReply {
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

impl ServerReply {
    /// A fatal protocol_version alert, or a close without one.
    pub(super) fn refuses_the_version(&self) -> bool {
        matches!(
            self,
            ServerReply::Alert {
                level: 2,
                description: PROTOCOL_VERSION_ALERT
            } | ServerReply::Closed
        )
    }
}

/// Sends `hello` over plain TCP and reads the first record the gateway
/// sends (or the close).
pub(super) async fn send_hello(addr: SocketAddr, hello: &[u8]) -> ServerReply {
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
        assert!(reply.refuses_the_version(), "{name}: {reply:?}");
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
