//! Attack-string tables for the header rules.

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    headers
}

#[test]
fn sanity_refuses_ambiguous_headers() {
    let custom = HeaderName::from_static("x-app-token");
    let cases: &[(&[(&str, &str)], HeaderError)] = &[
        (
            &[("x_psu_authorization", "Bearer x")],
            HeaderError::Underscore,
        ),
        (&[("X_Forwarded_For", "1.2.3.4")], HeaderError::Underscore),
        (
            &[("host", "a"), ("host", "b")],
            HeaderError::Duplicate(header::HOST),
        ),
        (
            &[("host", "a"), ("host", "a")],
            HeaderError::Duplicate(header::HOST),
        ),
        (
            &[("authorization", "a"), ("Authorization", "b")],
            HeaderError::Duplicate(header::AUTHORIZATION),
        ),
        (
            &[("x-psu-authorization", "a"), ("X-PSU-Authorization", "a")],
            HeaderError::Duplicate(X_PSU_AUTHORIZATION),
        ),
        (
            &[("x-app-token", "a"), ("x-app-token", "b")],
            HeaderError::Duplicate(custom.clone()),
        ),
        (
            &[("content-length", "5"), ("content-length", "6")],
            HeaderError::ContentLength,
        ),
        (
            &[("content-length", "5"), ("content-length", "5")],
            HeaderError::ContentLength,
        ),
        (&[("content-length", "5, 5")], HeaderError::ContentLength),
        (&[("content-length", "+5")], HeaderError::ContentLength),
        (&[("content-length", "-1")], HeaderError::ContentLength),
        (&[("content-length", "")], HeaderError::ContentLength),
        (&[("content-length", "0x10")], HeaderError::ContentLength),
        (
            &[("transfer-encoding", "chunked, chunked")],
            HeaderError::TransferEncoding,
        ),
        (
            &[("transfer-encoding", "gzip, chunked")],
            HeaderError::TransferEncoding,
        ),
        (
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            HeaderError::TransferEncoding,
        ),
        (
            &[("transfer-encoding", "xchunked")],
            HeaderError::TransferEncoding,
        ),
        (
            &[("transfer-encoding", "chunked ")],
            HeaderError::TransferEncoding,
        ),
        (
            &[("transfer-encoding", "identity")],
            HeaderError::TransferEncoding,
        ),
        (
            &[("transfer-encoding", "chunked"), ("content-length", "3")],
            HeaderError::LengthAndEncoding,
        ),
        (&[("upgrade", "h2c")], HeaderError::H2cUpgrade),
        (&[("upgrade", "websocket, H2C")], HeaderError::H2cUpgrade),
    ];
    for (pairs, want) in cases {
        assert_eq!(
            check_sanity(&map(pairs), Some(&custom)),
            Err(want.clone()),
            "{pairs:?}"
        );
    }
}

#[test]
fn sanity_accepts_ordinary_requests() {
    let ok: &[&[(&str, &str)]] = &[
        &[
            ("host", "psu.example.com"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ],
        &[("content-length", "0")],
        &[("content-length", "123")],
        &[("transfer-encoding", "Chunked")],
        &[("upgrade", "websocket"), ("connection", "Upgrade")],
        &[
            ("authorization", "Bearer a"),
            ("x-psu-authorization", "Bearer b"),
        ],
    ];
    for pairs in ok {
        assert_eq!(
            check_sanity(&map(pairs), Some(&X_PSU_AUTHORIZATION)),
            Ok(()),
            "{pairs:?}"
        );
    }
}

#[test]
fn connection_options_cannot_remove_decision_inputs() {
    let mut headers = map(&[
        (
            "connection",
            "x-psu-authorization, Cookie, x-forwarded-for, host, x-custom",
        ),
        ("connection", "keep-alive"),
        ("host", "psu.example.com"),
        ("cookie", "a=1"),
        ("x-custom", "gone"),
        ("x-psu-authorization", "Bearer client"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic x"),
        ("te", "trailers"),
        ("trailer", "x-psu-authorization"),
        ("upgrade", "websocket"),
    ]);
    strip_hop_by_hop(&mut headers, false);
    let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["cookie", "host"]);
}

#[test]
fn te_trailers_survives_only_when_asked() {
    let mut headers = map(&[("te", "trailers, deflate")]);
    strip_hop_by_hop(&mut headers, true);
    assert_eq!(headers.get(header::TE).unwrap(), "trailers");
    let mut headers = map(&[("te", "deflate")]);
    strip_hop_by_hop(&mut headers, true);
    assert!(headers.get(header::TE).is_none());
}

#[test]
fn untrusted_forwarding_headers_are_all_dropped() {
    let spoofed = [
        ("x-forwarded-for", "10.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("x-forwarded-host", "evil"),
        ("x-forwarded-port", "80"),
        ("x-forwarded-prefix", "/admin"),
        ("forwarded", "for=10.0.0.1"),
        ("x-real-ip", "10.0.0.1"),
        ("x-original-url", "/api/v1/usersession"),
        ("x-rewrite-url", "/api/v1/usersession"),
        ("x-request-id", "abc"),
    ];
    let mut headers = map(&spoofed);
    let id = request_id(&headers, false);
    let kept = strip_forwarding(&mut headers, false);
    assert!(headers.is_empty(), "{headers:?}");
    assert!(kept.for_chain.is_none());
    assert_ne!(id, "abc");
}

#[test]
fn trusted_proxy_chain_is_extended() {
    let mut headers = map(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "10.0.0.2"),
        ("x-request-id", "lb-123"),
        ("x-real-ip", "1.1.1.1"),
    ]);
    let id = request_id(&headers, true);
    let kept = strip_forwarding(&mut headers, true);
    assert!(headers.is_empty());
    set_forwarding(
        &mut headers,
        &ForwardedFor {
            peer: "10.0.0.3".parse().unwrap(),
            host: "psu.example.com",
            request_id: &id,
            earlier: kept.for_chain.as_deref(),
        },
    );
    assert_eq!(
        headers["x-forwarded-for"],
        "203.0.113.9, 10.0.0.2, 10.0.0.3"
    );
    assert_eq!(headers["x-request-id"], "lb-123");
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-forwarded-host"], "psu.example.com");
}

#[test]
fn trusted_request_id_must_be_printable() {
    let mut headers = HeaderMap::new();
    headers.insert(X_REQUEST_ID, HeaderValue::from_bytes(b"a b").unwrap());
    assert_ne!(request_id(&headers, true), "a b");
}

/// New ids are 32 lowercase hex digits, fresh each time; every id, kept or
/// new, is never indexed by HPACK.
#[test]
fn request_ids_are_new_uuids_and_never_indexed() {
    let sent = map(&[("x-request-id", "lb-123")]);
    let new = [
        request_id(&sent, false),
        request_id(&HeaderMap::new(), true),
    ];
    for id in &new {
        assert_eq!(id.len(), 32, "{id:?}");
        assert!(id
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        assert!(id.is_sensitive());
    }
    assert_ne!(new[0], new[1]);
    let kept = request_id(&sent, true);
    assert_eq!(kept, "lb-123");
    assert!(kept.is_sensitive());
}

#[test]
fn client_credentials_are_removed_whatever_the_case() {
    let custom = HeaderName::from_static("x-app-token");
    let mut headers = map(&[
        ("AUTHORIZATION", "Bearer a"),
        ("x-PSU-authorization", "Bearer b"),
        ("X-App-Token", "c"),
        ("accept", "*/*"),
    ]);
    strip_client_credentials(&mut headers, Some(&custom));
    assert_eq!(headers.len(), 1);
    assert!(headers.contains_key("accept"));
}

#[test]
fn response_rewrite_strips_hop_by_hop_and_marks_private() {
    let mut headers = map(&[
        ("connection", "x-secret"),
        ("x-secret", "1"),
        ("transfer-encoding", "chunked"),
        ("vary", "Accept"),
        ("content-type", "application/json"),
    ]);
    strip_response_hop_by_hop(&mut headers);
    mark_private(&mut headers);
    assert!(headers.get("x-secret").is_none() && headers.get("transfer-encoding").is_none());
    assert_eq!(headers["cache-control"], "no-store");
    let vary: Vec<_> = headers.get_all("vary").iter().collect();
    assert_eq!(vary, ["Accept", "Cookie"]);
    let mut cached = map(&[("cache-control", "max-age=5")]);
    mark_private(&mut cached);
    assert_eq!(cached["cache-control"], "max-age=5");
}

#[test]
fn every_hop_by_hop_header_is_dropped() {
    let hop = [
        ("connection", "close"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authorization", "Basic x"),
        ("te", "gzip"),
        ("trailer", "x-a"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
    ];
    let mut request = map(&hop);
    strip_hop_by_hop(&mut request, false);
    assert!(request.is_empty(), "{request:?}");
    let mut response = map(&hop);
    strip_response_hop_by_hop(&mut response);
    assert!(response.is_empty(), "{response:?}");
    // Names that merely contain a listed one stay.
    let mut near = map(&[("x-upgrade", "1"), ("connections", "2"), ("tee", "3")]);
    strip_hop_by_hop(&mut near, false);
    assert_eq!(near.len(), 3);
}

proptest::proptest! {
    /// X-Forwarded-For carries the peer exactly as `Display` writes it.
    #[test]
    fn ip_text_is_what_display_writes(v4: u32, v6: u128) {
        for ip in [
            IpAddr::from(std::net::Ipv4Addr::from(v4)),
            IpAddr::from(std::net::Ipv6Addr::from(v6)),
            IpAddr::from(std::net::Ipv4Addr::from(v4).to_ipv6_mapped()),
        ] {
            let mut text = String::new();
            push_ip(&mut text, ip);
            proptest::prop_assert_eq!(text, ip.to_string());
        }
    }
}

#[test]
fn ip_text_edges() {
    for ip in [
        "0.0.0.0",
        "255.255.255.255",
        "100.10.1.0",
        "9.99.199.200",
        "::ffff:1.2.3.4",
        "::1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        let mut text = String::new();
        push_ip(&mut text, ip);
        assert_eq!(text, ip.to_string());
    }
}
