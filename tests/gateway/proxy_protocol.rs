//! `listen.proxy_protocol`: PROXY v1/v2 headers written by hand before TLS,
//! from trusted and untrusted loopback addresses, and what PSU then saw.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

/// A second loopback address: Linux routes all of 127/8 to `lo`, so a client
/// bound here is told apart from the 127.0.0.1 a balancer connects from.
pub const CLIENT_IP: [u8; 4] = [127, 0, 0, 2];

/// Opens TCP from `local`, so the gateway sees that peer address.
pub async fn connect_from(local: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}

/// Writes `prefix` in clear, then `request` over TLS, and reads until the
/// server closes. Every failure is returned, none panics: callers count them.
pub async fn tls_request(
    tcp: std::io::Result<TcpStream>,
    ca_pem: &[u8],
    prefix: &[u8],
    request: &[u8],
) -> Result<String, String> {
    let exchange = async {
        let mut tcp = tcp.map_err(|e| format!("connect: {e}"))?;
        tcp.write_all(prefix)
            .await
            .map_err(|e| format!("PROXY header: {e}"))?;
        let mut tls = client_tls(ca_pem);
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let name = ServerName::try_from("localhost").unwrap();
        let mut stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        match stream.read_to_end(&mut out).await {
            Ok(_) => {}
            // A peer closing without close_notify still sent a whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
            Err(e) => return Err(format!("read: {e}")),
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| Err("no answer within 20s".to_owned()))
}

fn get(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

async fn behind_balancer() -> Stack {
    Setup::default()
        .edit(
            "addr = \"127.0.0.1:0\"",
            "addr = \"127.0.0.1:0\"\nproxy_protocol = true",
        )
        .edit(
            "[upstream]",
            "[limits]\nhandshake_timeout = \"1s\"\n\n[forwarding]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[upstream]",
        )
        .start()
        .await
}

fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[command, family]);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

/// Source and destination addresses then ports, as v2 lays them out.
fn v2_block(src: &[u8], dst: &[u8], sport: u16) -> Vec<u8> {
    [src, dst, &sport.to_be_bytes(), &443u16.to_be_bytes()].concat()
}

fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

#[tokio::test]
async fn the_client_in_the_proxy_header_is_the_one_psu_hears_of() {
    let stack = behind_balancer().await;
    let mapped: std::net::Ipv6Addr = "::ffff:192.0.2.44".parse().unwrap();
    let v6: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
    // (PROXY header, X-Forwarded-For PSU must see). The client's own
    // X-Forwarded-For (10.9.9.9) is kept only when the client the header
    // names is itself a trusted proxy: LOCAL and UNKNOWN name nobody, so the
    // balancer (127.0.0.1, trusted) is the client.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 443\r\n".to_vec(),
            "203.0.113.7",
        ),
        (
            b"PROXY TCP6 2001:db8::7 ::1 51234 443\r\n".to_vec(),
            "2001:db8::7",
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), "10.9.9.9, 127.0.0.1"),
        (
            b"PROXY TCP4 127.0.0.1 127.0.0.1 51234 443\r\n".to_vec(),
            "10.9.9.9, 127.0.0.1",
        ),
        (
            v2(
                0x21,
                0x11,
                &v2_block(&[198, 51, 100, 9], &[127, 0, 0, 1], 4000),
            ),
            "198.51.100.9",
        ),
        (
            v2(0x21, 0x21, &v2_block(&v6.octets(), &[0; 16], 4000)),
            "2001:db8::7",
        ),
        (
            v2(0x21, 0x21, &v2_block(&mapped.octets(), &[0; 16], 4000)),
            "192.0.2.44",
        ),
        (v2(0x20, 0x00, &[]), "10.9.9.9, 127.0.0.1"),
    ];
    for (i, (proxy_header, xff)) in cases.iter().enumerate() {
        let path = format!("/sim/status/200?case={i}");
        let tcp = connect_from(loopback(), stack.addr).await;
        let response = tls_request(tcp, stack.ca(), proxy_header, &get(&path)).await;
        let response = response.unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(raw_status(&response), 200, "case {i}: {response}");
        let seen = stack.upstream_saw("/sim/status/200");
        let request = seen
            .iter()
            .find(|r| r.query.as_deref() == Some(&format!("case={i}")))
            .unwrap_or_else(|| panic!("case {i} never reached the simulator"));
        assert_eq!(header(request, "x-forwarded-for"), [*xff], "case {i}");
    }
}

/// A connection the gateway closes before TLS: the handshake fails and PSU
/// hears nothing.
async fn assert_refused(stack: &Stack, from: IpAddr, prefix: &[u8], what: &str) {
    let before = stack.sim.recorder().requests().len();
    let tcp = connect_from(from, stack.addr).await;
    let result = tls_request(tcp, stack.ca(), prefix, &get("/sim/status/200")).await;
    assert!(result.is_err(), "{what}: answered {result:?}");
    assert_eq!(
        stack.sim.recorder().requests().len(),
        before,
        "{what}: reached PSU"
    );
}

#[tokio::test]
async fn only_trusted_peers_may_send_the_header_and_they_must() {
    let stack = behind_balancer().await;
    let header = b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 443\r\n";
    let untrusted = IpAddr::from(CLIENT_IP);
    assert_refused(&stack, untrusted, header, "PROXY header from 127.0.0.2").await;
    assert_refused(&stack, untrusted, b"", "no header from 127.0.0.2").await;
    assert_refused(&stack, loopback(), b"", "no header from the balancer").await;
    let broken: [&[u8]; 4] = [
        b"PROXY TCP4 0.0.0.0 127.0.0.1 51234 443\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 443\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 051234 443\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
    ];
    for header in broken {
        let what = String::from_utf8_lossy(header).into_owned();
        assert_refused(&stack, loopback(), header, &what).await;
    }
    // The listener still serves a well-formed header afterwards.
    let tcp = connect_from(loopback(), stack.addr).await;
    let ok = tls_request(tcp, stack.ca(), header, &get("/sim/status/200")).await;
    assert_eq!(raw_status(&ok.unwrap()), 200);
}

/// A balancer (or anyone from its address) trickling a header is cut at
/// `limits.handshake_timeout`, like a slow TLS handshake.
#[tokio::test]
async fn a_stalled_header_is_cut_at_the_handshake_timeout() {
    let stack = behind_balancer().await;
    let mut tcp = connect_from(loopback(), stack.addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(b"PROXY TCP4 203.0").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest))
        .await
        .expect("closed within 10s");
    let waited = started.elapsed();
    assert!(closed.is_ok() && rest.is_empty(), "{closed:?} {rest:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}, handshake_timeout is 1s"
    );
    assert!(stack.sim.recorder().requests().is_empty());
}

#[test]
fn check_names_the_balancers_that_may_send_the_header() {
    let dir = tempfile::tempdir().unwrap();
    psu_gateway::cli::devcert::write(dir.path(), &["localhost".to_owned()]).unwrap();
    let config = "[listen]\naddr = \"127.0.0.1:8443\"\nproxy_protocol = true\n\n[tls]\ncert = \"gateway.crt\"\nkey = \"gateway.key\"\n\n[forwarding]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.10\"]\n\n[upstream]\nurl = \"http://127.0.0.1:5000\"\n\n[[route]]\nname = \"all\"\nprefix = \"/\"\naccess = \"public\"\n";
    std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_psu-gateway"))
        .args(["check", "--config", "gateway.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("PROXY protocol from 10.0.0.0/8, 192.0.2.10/32"),
        "{stdout}"
    );
}
