//! Valid headers, attack strings, and the no-over-read property for the PROXY parser.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A v2 header: `cmd` is the version/command byte, `fam` family/transport.
fn v2(cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(cmd);
    out.push(fam);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

fn inet(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut block = src.to_vec();
    block.extend_from_slice(&[198, 51, 100, 2]);
    block.extend_from_slice(&sport.to_be_bytes());
    block.extend_from_slice(&443u16.to_be_bytes());
    block
}

fn inet6(src: Ipv6Addr, sport: u16) -> Vec<u8> {
    let mut block = src.octets().to_vec();
    block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    block.extend_from_slice(&sport.to_be_bytes());
    block.extend_from_slice(&443u16.to_be_bytes());
    block
}

/// Valid headers and the source each names.
fn valid() -> Vec<(Vec<u8>, Option<SocketAddr>)> {
    let unknown_107 = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_LEN - 16));
    assert_eq!(unknown_107.len(), V1_MAX_LEN);
    let mut tlvs = inet([192, 0, 2, 1], 51234);
    // PP2_TYPE_AUTHORITY "localhost", then PP2_TYPE_NOOP with 3 bytes.
    tlvs.extend_from_slice(b"\x02\x00\x09localhost\x04\x00\x03abc");
    let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
    vec![
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\n".to_vec(),
            Some(addr("192.0.2.1:51234")),
        ),
        (
            b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 443\r\n".to_vec(),
            Some(addr("[2001:db8::7]:65535")),
        ),
        (
            b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 443\r\n".to_vec(),
            Some(addr("[::ffff:192.0.2.1]:1")),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), None),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".to_vec(), None),
        (unknown_107.into_bytes(), None),
        (
            v2(0x21, 0x11, &inet([192, 0, 2, 1], 51234)),
            Some(addr("192.0.2.1:51234")),
        ),
        (
            v2(0x21, 0x21, &inet6(v6, 40000)),
            Some(addr("[2001:db8::7]:40000")),
        ),
        (v2(0x21, 0x11, &tlvs), Some(addr("192.0.2.1:51234"))),
        // LOCAL: the balancer's own connection (health checks); addresses ignored.
        (v2(0x20, 0x00, &[]), None),
        (v2(0x20, 0x11, &inet([0, 0, 0, 0], 0)), None),
        // PROXY over AF_UNSPEC: the balancer does not know the client.
        (v2(0x21, 0x00, &[]), None),
        (
            v2(0x21, 0x11, &[0u8; 12].map(|_| 1)),
            Some(addr("1.1.1.1:257")),
        ),
        (
            v2(0x21, 0x11, &[7u8; V2_MAX_PAYLOAD]),
            Some(addr("7.7.7.7:1799")),
        ),
    ]
}

#[test]
fn valid_headers_name_their_source_and_end_where_they_end() {
    for (header, source) in valid() {
        let mut input = header.clone();
        // What follows the header (the ClientHello) is not the parser's business.
        input.extend_from_slice(b"\x16\x03\x01\x02\x00garbage\r\n");
        assert_eq!(
            parse(&input),
            Ok(Progress::Done {
                len: header.len(),
                source
            }),
            "{:?}",
            String::from_utf8_lossy(&header)
        );
    }
}

#[test]
fn every_prefix_asks_for_more_without_reaching_past_the_header() {
    for (header, _) in valid() {
        for cut in 0..header.len() {
            match parse(&header[..cut]) {
                Ok(Progress::Need(more)) => assert!(
                    more >= 1 && cut + more <= header.len(),
                    "{:?} cut at {cut}: asked for {more}",
                    String::from_utf8_lossy(&header)
                ),
                other => panic!(
                    "{:?} cut at {cut}: {other:?}",
                    String::from_utf8_lossy(&header)
                ),
            }
        }
    }
}

#[test]
fn v1_attack_strings_are_refused() {
    let not_proxy = [
        "GET / HTTP/1.1\r\n\r\n",
        "proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXYTCP4 192.0.2.1 198.51.100.2 1 2\r\n",
        " PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
    ];
    for input in not_proxy {
        assert_eq!(
            parse(input.as_bytes()),
            Err(HeaderError::NotProxy),
            "{input:?}"
        );
    }
    let too_long = [
        format!("PROXY {}", "A".repeat(200)),
        format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_LEN - 15)),
    ];
    for input in too_long {
        assert_eq!(
            parse(input.as_bytes()),
            Err(HeaderError::V1TooLong),
            "{input:?}"
        );
    }
    let malformed = [
        "PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\rX",
        "PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\n\r\n",
        "PROXY TCP4 192.0.2.1\0 198.51.100.2 1 2\r\n",
        "PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n",
        "PROXY TCP4 192.0.2.\u{e9} 198.51.100.2 1 2\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 65536\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 99999999999 2\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 +80 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 080 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 8a 443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2  443\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",
        "PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
        "PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
        "PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n",
        "PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.999 1 2\r\n",
        "PROXY TCP4 localhost 198.51.100.2 1 2\r\n",
        "PROXY TCP6 [2001:db8::1] ::1 1 2\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
        "PROXY \r\n",
        "PROXY UNKNOWNX\r\n",
    ];
    for input in malformed {
        let got = parse(input.as_bytes());
        assert!(
            matches!(got, Err(HeaderError::V1Malformed(_))),
            "{input:?}: {got:?}"
        );
    }
    let bogus = [
        ("PROXY TCP4 0.0.0.0 198.51.100.2 1 2\r\n", "0.0.0.0:1"),
        ("PROXY TCP4 224.0.0.1 198.51.100.2 1 2\r\n", "224.0.0.1:1"),
        (
            "PROXY TCP4 255.255.255.255 198.51.100.2 1 2\r\n",
            "255.255.255.255:1",
        ),
        ("PROXY TCP4 192.0.2.1 198.51.100.2 0 443\r\n", "192.0.2.1:0"),
        ("PROXY TCP6 :: ::1 1 2\r\n", "[::]:1"),
        (
            "PROXY TCP6 ::ffff:0.0.0.0 ::1 1 2\r\n",
            "[::ffff:0.0.0.0]:1",
        ),
        ("PROXY TCP6 ff02::1 ::1 1 2\r\n", "[ff02::1]:1"),
    ];
    for (input, source) in bogus {
        let expected = HeaderError::BogusSource(addr(source));
        assert_eq!(parse(input.as_bytes()), Err(expected), "{input:?}");
    }
}

#[test]
fn v2_attack_strings_are_refused() {
    let mut bad_signature = v2(0x21, 0x11, &inet([192, 0, 2, 1], 1));
    bad_signature[11] = b'X';
    let ok4 = inet([192, 0, 2, 1], 1);
    let cases: Vec<(Vec<u8>, HeaderError)> = vec![
        (bad_signature, HeaderError::NotProxy),
        (b"\r\n\r\n\0\r\nQUIT\r".to_vec(), HeaderError::NotProxy),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            HeaderError::NotProxy,
        ),
        (v2(0x11, 0x11, &ok4), HeaderError::V2Version(1)),
        (v2(0x31, 0x11, &ok4), HeaderError::V2Version(3)),
        (v2(0x22, 0x11, &ok4), HeaderError::V2Command(2)),
        (v2(0x2f, 0x11, &ok4), HeaderError::V2Command(0xf)),
        (v2(0x21, 0x12, &ok4), HeaderError::V2Family(0x12)),
        (v2(0x21, 0x31, &[0; 216]), HeaderError::V2Family(0x31)),
        (v2(0x21, 0x10, &ok4), HeaderError::V2Family(0x10)),
        (v2(0x21, 0x01, &[]), HeaderError::V2Family(0x01)),
        (v2(0x21, 0x11, &[0; 11]), HeaderError::V2TooShort(11)),
        (v2(0x21, 0x21, &[0; 35]), HeaderError::V2TooShort(35)),
        (v2(0x21, 0x21, &ok4), HeaderError::V2TooShort(12)),
        (
            v2(0x21, 0x11, &[1; V2_MAX_PAYLOAD + 1]),
            HeaderError::V2TooLong(V2_MAX_PAYLOAD + 1),
        ),
        (
            v2(0x21, 0x11, &inet([0, 0, 0, 0], 1)),
            HeaderError::BogusSource(addr("0.0.0.0:1")),
        ),
        (
            v2(0x21, 0x11, &inet([192, 0, 2, 1], 0)),
            HeaderError::BogusSource(addr("192.0.2.1:0")),
        ),
        (
            v2(0x21, 0x11, &inet([239, 1, 2, 3], 1)),
            HeaderError::BogusSource(addr("239.1.2.3:1")),
        ),
        (
            v2(0x21, 0x21, &inet6(Ipv6Addr::UNSPECIFIED, 1)),
            HeaderError::BogusSource(addr("[::]:1")),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse(&input), Err(expected), "{input:?}");
    }
}

/// The huge length is refused from the fixed 16 bytes, before any payload
/// is awaited, and so is a v1 line too long to end in time.
#[test]
fn oversize_headers_fail_without_waiting_for_the_rest() {
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert_eq!(parse(&huge), Err(HeaderError::V2TooLong(65535)));
    let line = format!("PROXY UNKNOWN {}", "x".repeat(V1_MAX_LEN - 15));
    assert_eq!(line.len(), V1_MAX_LEN - 1);
    assert_eq!(parse(line.as_bytes()), Err(HeaderError::V1TooLong));
    assert_eq!(
        parse(&line.as_bytes()[..V1_MAX_LEN - 2]),
        Ok(Progress::Need(2))
    );
}

#[tokio::test]
async fn a_header_split_across_writes_is_read_exactly() {
    let (mut client, mut server) = tokio::io::duplex(64);
    let writer = tokio::spawn(async move {
        for piece in [
            &b"PRO"[..],
            b"XY TCP4 192.0.2.1 198.",
            b"51.100.2 5",
            b"1234 443\r",
            b"\n\x16\x03\x01",
        ] {
            client.write_all(piece).await.unwrap();
            client.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        client
    });
    let source = read_header(&mut server).await.unwrap();
    assert_eq!(source, Some(addr("192.0.2.1:51234")));
    drop(writer.await.unwrap());
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).await.unwrap();
    assert_eq!(
        rest, b"\x16\x03\x01",
        "the bytes after the header are left for TLS"
    );
}

#[tokio::test]
async fn every_valid_header_leaves_the_following_bytes_unread() {
    for (header, source) in valid() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&header).await.unwrap();
        client.write_all(b"TLS").await.unwrap();
        drop(client);
        assert_eq!(read_header(&mut server).await.unwrap(), source);
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"TLS");
    }
}

#[tokio::test]
async fn a_truncated_header_is_an_io_error() {
    for cut in [1, 10, 30] {
        let (mut client, mut server) = tokio::io::duplex(256);
        client
            .write_all(&b"PROXY TCP4 192.0.2.1 198.51.100.2 51234 443\r\n"[..cut])
            .await
            .unwrap();
        drop(client);
        let got = read_header(&mut server).await;
        assert!(matches!(got, Err(ProxyProtocolError::Io(_))), "{got:?}");
    }
}

fn trusting(nets: &[&str]) -> Forwarding {
    Forwarding {
        trusted_proxies: nets.iter().map(|n| n.parse().unwrap()).collect(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_header_is_read_only_when_expected_and_from_a_trusted_peer() {
    let balancer = addr("10.0.0.5:40000");
    let deadline = Instant::now() + Duration::from_secs(10);
    let header = b"PROXY TCP4 192.0.2.1 10.0.0.9 51234 443\r\n";
    /// The source found, or the start of the error's Debug.
    type Outcome = Result<SocketAddr, &'static str>;
    // (proxy_protocol, trusted, sent, outcome)
    let cases: &[(bool, &[&str], &[u8], Outcome)] = &[
        (false, &["10.0.0.0/8"], header, Ok(balancer)),
        (true, &["10.0.0.0/8"], header, Ok(addr("192.0.2.1:51234"))),
        (true, &["10.0.0.5/32"], header, Ok(addr("192.0.2.1:51234"))),
        (true, &["10.0.0.6/32"], header, Err("Untrusted")),
        (true, &["10.0.0.0/8"], b"PROXY UNKNOWN\r\n", Ok(balancer)),
        (
            true,
            &["10.0.0.0/8"],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\0\0\0\0",
            Err("Header"),
        ),
        (true, &["10.0.0.0/8"], b"PROXY TCP4 ", Err("Timeout")),
    ];
    for (on, trusted, sent, expected) in cases {
        let forwarding = trusting(trusted);
        let (mut client, mut server) = tokio::io::duplex(256);
        client.write_all(sent).await.unwrap();
        let got = expect_header(&mut server, balancer, *on, &forwarding, deadline).await;
        match (&got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected),
            (Err(e), Err(kind)) => assert!(format!("{e:?}").starts_with(kind), "{e:?}"),
            _ => panic!("{sent:?} with {trusted:?}: expected {expected:?}, got {got:?}"),
        }
        // Off, or refused before reading: the bytes are still there.
        if !on
            || got
                .as_ref()
                .is_err_and(|e| matches!(e, ProxyProtocolError::Untrusted))
        {
            drop(client);
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            assert_eq!(&rest, sent);
        }
    }
}

#[test]
fn a_balancer_on_an_ipv4_mapped_address_is_trusted_as_ipv4() {
    let forwarding = trusting(&["10.0.0.0/8"]);
    assert!(forwarding.trusts("::ffff:10.0.0.5".parse().unwrap()));
    assert!(!forwarding.trusts("::ffff:11.0.0.5".parse().unwrap()));
    assert!(!forwarding.trusts("::a00:5".parse().unwrap()));
}
