//! Path normalization: canonical forms, attack paths and their reasons, properties.

#[test]
fn route_keys_are_decoded_and_folded() {
    let cases: &[(&str, Result<&str, PathError>)] = &[
        ("/", Ok("/")),
        ("/API/V1/UserSession/", Ok("/api/v1/usersession")),
        ("/api/v1/a%3Ab", Ok("/api/v1/a:b")),
        ("/api/v1/a%3ab", Ok("/api/v1/a:b")),
        ("/Caf%C3%89/", Ok("/caf\u{e9}")),
        ("/a%20b", Ok("/a b")),
        ("/u%C5%BFersession", Err(PathError::AmbiguousCase)),
        ("/%E2%84%AAey", Err(PathError::AmbiguousCase)),
        ("/%C4%B1d", Err(PathError::AmbiguousCase)),
        ("/%C4%B0d", Err(PathError::AmbiguousCase)),
    ];
    for (normalized, want) in cases {
        assert_eq!(
            route_key(normalized).as_deref().map_err(|e| *e),
            *want,
            "{normalized}"
        );
    }
}

use super::*;
use proptest::prelude::*;

#[test]
fn accepted_paths_have_their_canonical_form() {
    let cases = [
        ("/", "/"),
        ("/api", "/api"),
        ("/api/", "/api/"),
        ("/api/v1/usersession", "/api/v1/usersession"),
        ("/api/v1/%75sersession", "/api/v1/usersession"),
        ("/api/v1/%55SERSESSION", "/api/v1/USERSESSION"),
        ("/a/%7e", "/a/~"),
        ("/a/%7E", "/a/~"),
        ("/a/%2d%2D%5f%5F", "/a/--__"),
        ("/a/%41%5a%61%7a%30%39", "/a/AZaz09"),
        ("/a%3ab", "/a%3Ab"),
        ("/a%3Ab", "/a%3Ab"),
        ("/a:b", "/a:b"),
        ("/api/v1/usersession;x", "/api/v1/usersession;x"),
        ("/a;b=c,d", "/a;b=c,d"),
        ("/API/V1/UserSession", "/API/V1/UserSession"),
        ("/%E2%82%AC", "/%E2%82%AC"),
        ("/%e2%82%ac", "/%E2%82%AC"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/\u{20ac}/x", "/%E2%82%AC/x"),
        ("/\u{1F600}", "/%F0%9F%98%80"),
        ("/%F4%8F%BF%BF", "/%F4%8F%BF%BF"),
        ("/%ED%9F%BF", "/%ED%9F%BF"),
        ("/a%20b", "/a%20b"),
        ("/a b", "/a%20b"),
        ("/%3F%23", "/%3F%23"),
        ("/a?b", "/a%3Fb"),
        (
            "/a\"b{c}|d^e`f<g>h[i]",
            "/a%22b%7Bc%7D%7Cd%5Ee%60f%3Cg%3Eh%5Bi%5D",
        ),
        ("/!$&'()*+,;=:@", "/!$&'()*+,;=:@"),
        ("/a.b/.c/d./..e/f..", "/a.b/.c/d./..e/f.."),
        ("/.well-known/x", "/.well-known/x"),
        ("/a/;", "/a/;"),
        ("/a/;..", "/a/;.."),
        ("/a/%20", "/a/%20"),
        ("/a%2e%2Eb", "/a..b"),
        ("/%2ea", "/.a"),
    ];
    for (raw, expected) in cases {
        assert_eq!(normalize_path(raw).as_deref(), Ok(expected), "{raw:?}");
        assert_eq!(
            normalize_path(expected).as_deref(),
            Ok(expected),
            "{raw:?} twice"
        );
    }
}

#[test]
fn attack_paths_are_refused_for_the_right_reason() {
    use PathError::*;
    let cases: &[(&str, PathError)] = &[
        ("", NotAbsolute),
        ("api/v1", NotAbsolute),
        ("*", NotAbsolute),
        ("%2Fapi", NotAbsolute),
        ("\\api", NotAbsolute),
        ("http://evil/api", NotAbsolute),
        (" /api", NotAbsolute),
        ("/public%2F..%2Fadmin", EncodedDelimiter),
        ("/public%2f..%2fadmin", EncodedDelimiter),
        ("/a%5Cb", EncodedDelimiter),
        ("/a%5cb", EncodedDelimiter),
        ("/a%00", EncodedDelimiter),
        ("/a%25", EncodedDelimiter),
        ("/%252e%252e/admin", EncodedDelimiter),
        ("/a%252Fb", EncodedDelimiter),
        ("/public\\..\\admin", Backslash),
        ("/a\\b", Backslash),
        ("/a\\", Backslash),
        ("/a\u{0}", ControlCharacter),
        ("/a\r\nHost: evil", ControlCharacter),
        ("/a\tb", ControlCharacter),
        ("/a\u{7f}", ControlCharacter),
        ("/a%0d%0aX:1", ControlCharacter),
        ("/a%0A", ControlCharacter),
        ("/a%09", ControlCharacter),
        ("/a%1f", ControlCharacter),
        ("/a%7F", ControlCharacter),
        ("/a%7f", ControlCharacter),
        ("/a#b", Fragment),
        ("/public#/../admin", Fragment),
        ("/.", DotSegment),
        ("/..", DotSegment),
        ("/./a", DotSegment),
        ("/a/./b", DotSegment),
        ("/a/../b", DotSegment),
        ("/a/..", DotSegment),
        ("/a/../", DotSegment),
        ("/public/../admin", DotSegment),
        ("/a/%2e/b", DotSegment),
        ("/a/%2E/b", DotSegment),
        ("/a/%2e%2e/b", DotSegment),
        ("/a/%2E%2E/b", DotSegment),
        ("/a/.%2e/b", DotSegment),
        ("/a/%2e./b", DotSegment),
        ("/a/%2E./", DotSegment),
        ("/a/.../b", DotSegment),
        ("/a/..%20/b", DotSegment),
        ("/a/. ./b", DotSegment),
        ("/a/..;x/b", DotSegment),
        ("/a/..;/b", DotSegment),
        ("/a/.;/b", DotSegment),
        ("/a/%EF%BC%8E%EF%BC%8E/b", DotSegment),
        ("/a/\u{ff0e}\u{ff0e}/b", DotSegment),
        ("/a/%E2%80%A5/b", DotSegment),
        ("/a/%ef%b9%92/b", DotSegment),
        ("//", EmptySegment),
        ("//evil.example/x", EmptySegment),
        ("/a//b", EmptySegment),
        ("/a//", EmptySegment),
        ("///", EmptySegment),
        ("/a/b//", EmptySegment),
        ("/a%C0%AE%C0%AE/b", InvalidUtf8),
        ("/%C0%AE%C0%AE/admin", InvalidUtf8),
        ("/%c0%af", InvalidUtf8),
        ("/%C1%9C", InvalidUtf8),
        ("/%E0%80%AE", InvalidUtf8),
        ("/%F0%80%80%AE", InvalidUtf8),
        ("/%80", InvalidUtf8),
        ("/a%BF", InvalidUtf8),
        ("/%ED%A0%80", InvalidUtf8),
        ("/%ED%BF%BF", InvalidUtf8),
        ("/%F4%90%80%80", InvalidUtf8),
        ("/%F5%80%80%80", InvalidUtf8),
        ("/%FF", InvalidUtf8),
        ("/%C3", InvalidUtf8),
        ("/%C3/%A9", InvalidUtf8),
        ("/%E2%82", InvalidUtf8),
        ("/%C3a", InvalidUtf8),
        ("/%E2\u{20ac}", InvalidUtf8),
        ("/%zz", MalformedEscape),
        ("/%4", MalformedEscape),
        ("/a%", MalformedEscape),
        ("/a%/b", MalformedEscape),
        ("/%%41", MalformedEscape),
        ("/%+1", MalformedEscape),
        ("/%-1", MalformedEscape),
        ("/% 1", MalformedEscape),
        ("/%4g", MalformedEscape),
        ("/%\u{e9}", MalformedEscape),
        ("/%u002e", MalformedEscape),
    ];
    for (raw, expected) in cases {
        assert_eq!(normalize_path(raw), Err(*expected), "{raw:?}");
    }
}

#[test]
fn error_messages_do_not_echo_the_path() {
    let err = normalize_path("/secret-token/%zz").unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}

/// Percent-decodes (test oracle): what a server that decodes everything sees.
fn decode(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Paths built from the characters that matter, so the interesting branches are hit.
fn pathish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just(".".to_owned()),
            Just("%".to_owned()),
            Just(";".to_owned()),
            Just(" ".to_owned()),
            "[a-zA-Z0-9~_:@!\\\\#?\"-]".prop_map(String::from),
            "%[0-9a-fA-F]{2}",
            "[\u{80}-\u{10FFFF}]".prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|parts| format!("/{}", parts.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises this for long runs (see the README).
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_panics_on_arbitrary_strings(raw in any::<String>()) {
        let _ = normalize_path(&raw);
        let _ = normalize_path(&format!("/{raw}"));
    }

    #[test]
    fn is_idempotent(raw in pathish()) {
        if let Ok(once) = normalize_path(&raw) {
            prop_assert_eq!(normalize_path(&once), Ok(once.clone()));
        }
    }

    #[test]
    fn output_is_canonical_and_safe(raw in pathish()) {
        if let Ok(out) = normalize_path(&raw) {
            prop_assert!(out.starts_with('/'));
            prop_assert!(out.bytes().all(|b| b.is_ascii_graphic()), "{}", out);
            for bad in ["//", "%2F", "%5C", "%25", "%00", "\\", "#", "/./", "/../"] {
                prop_assert!(!out.contains(bad), "{} in {}", bad, out);
            }
            prop_assert!(!out.ends_with("/.") && !out.ends_with("/.."));
            // Every escape has two upper-case hex digits.
            for (i, _) in out.match_indices('%') {
                let hex = &out[i + 1..i + 3];
                prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
            }
        }
    }

    #[test]
    fn output_means_the_same_bytes(raw in pathish()) {
        if let Ok(out) = normalize_path(&raw) {
            prop_assert_eq!(decode(&out), decode(&raw));
            prop_assert!(std::str::from_utf8(&decode(&out)).is_ok());
        }
    }

    #[test]
    fn utf8_check_agrees_with_std(bytes in proptest::collection::vec(0x80u8..=0xFF, 1..8)) {
        let joined: String = bytes.iter().map(|b| format!("%{b:02x}")).collect();
        let verdict = normalize_path(&format!("/x{joined}"));
        match std::str::from_utf8(&bytes) {
            Ok(_) => prop_assert!(verdict.is_ok(), "{:?}", verdict),
            Err(_) => prop_assert_eq!(verdict, Err(PathError::InvalidUtf8)),
        }
    }
}
