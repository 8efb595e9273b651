//! Cookie parsing, session-cookie extraction and stripping, with attack strings.

use super::*;
use http::HeaderValue;
use proptest::prelude::*;

const N: &str = ".AspNetCore.Identity.Application";

fn names() -> Vec<String> {
    vec![N.to_owned()]
}

/// `N`-relative shorthand: `"@=x; @C1=y"` with `@` standing for `N`.
fn h(template: &str) -> String {
    template.replace('@', N)
}

fn present(pairs: &[(&str, &str)]) -> SessionLookup {
    SessionLookup::Present(SessionCookies::new(
        pairs.iter().map(|(n, v)| (h(n), Secret::new(*v))).collect(),
    ))
}

/// The definition of [`shadow_names`], one byte at a time.
fn shadow_names_reference(header: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut start = 0;
    for (i, byte) in header.bytes().enumerate() {
        let tchar = byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
        if tchar {
            continue;
        }
        if byte == b'=' && start < i {
            names.push(&header[start..i]);
        }
        start = i + 1;
    }
    names
}

#[test]
fn shadow_names_cases() {
    let cases: &[(&str, &[&str])] = &[
        ("a=1; b=2", &["a", "b"]),
        ("a=b=c", &["a", "b"]),
        ("abc==", &["abc"]),
        ("=x", &[]),
        ("a=1, N=evil", &["a", "N"]),
        ("a=\"x\"N=y", &["a", "N"]),
        ("\u{a0}N=1", &["N"]),
        ("é=1; ü", &[]),
        ("", &[]),
    ];
    for (header, expected) in cases {
        let got: Vec<&str> = shadow_names(header).collect();
        assert_eq!(&got, expected, "{header:?}");
        assert_eq!(got, shadow_names_reference(header), "{header:?}");
    }
}

fn tossing(name: &str) -> Result<SessionLookup, CookieError> {
    Err(CookieError::Tossing { name: h(name) })
}

#[test]
fn cookie_pairs_are_parsed_leniently() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("a=1; b=2", &[("a", "1"), ("b", "2")]),
        ("a=1;b=2", &[("a", "1"), ("b", "2")]),
        (" a = 1 ;\tb=2\t", &[("a", "1"), ("b", "2")]),
        (";;;;", &[]),
        ("", &[]),
        ("=value; a=1", &[("a", "1")]),
        (" =value", &[]),
        ("novalue; a=1", &[("a", "1")]),
        ("a=", &[("a", "")]),
        ("a=b=c", &[("a", "b=c")]),
        ("a=\"q v\"", &[("a", "\"q v\"")]),
        ("a=\"\"", &[("a", "\"\"")]),
        ("\u{a0}a=1", &[("\u{a0}a", "1")]),
        ("\u{3000}a=1", &[("\u{3000}a", "1")]),
        ("a\u{a0}=1", &[("a\u{a0}", "1")]),
        ("A=1; a=2", &[("A", "1"), ("a", "2")]),
    ];
    for (header, expected) in cases {
        let got: Vec<_> = cookie_pairs(header).collect();
        assert_eq!(&got, expected, "{header:?}");
    }
}

#[test]
fn extract_session_cases() {
    let big = "x".repeat(8192);
    let all64: String = (1..=64).map(|k| format!("; @C{k}=v{k}")).collect();
    let all64_pairs: Vec<(String, String)> = (1..=64)
        .map(|k| (format!("@C{k}"), format!("v{k}")))
        .chain([("@".to_owned(), "chunks-64".to_owned())])
        .collect();
    let all64_refs: Vec<(&str, &str)> = all64_pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let cases: Vec<(String, Result<SessionLookup, CookieError>)> = vec![
        ("".into(), Ok(SessionLookup::Absent)),
        (";;;;".into(), Ok(SessionLookup::Absent)),
        ("other=1".into(), Ok(SessionLookup::Absent)),
        ("@=".into(), Ok(SessionLookup::Absent)),
        ("@=abc".into(), Ok(present(&[("@", "abc")]))),
        ("x=1; @=abc; y=2".into(), Ok(present(&[("@", "abc")]))),
        ("@=\"abc\"".into(), Ok(present(&[("@", "\"abc\"")]))),
        (format!("@={big}"), Ok(present(&[("@", &big)]))),
        ("=@; @=abc".into(), Ok(present(&[("@", "abc")]))),
        // Exact-case names only; a look-alike is someone else's cookie.
        (
            h(".aspnetcore.identity.application=abc"),
            Ok(SessionLookup::Absent),
        ),
        ("\u{a0}@=abc".into(), Ok(SessionLookup::Absent)),
        ("\u{3000}@=abc".into(), Ok(SessionLookup::Absent)),
        ("@x=abc; x@=abc".into(), Ok(SessionLookup::Absent)),
        // Chunks.
        (
            "@=chunks-2; @C1=a; @C2=b".into(),
            Ok(present(&[("@", "chunks-2"), ("@C1", "a"), ("@C2", "b")])),
        ),
        (
            "@C2=b; x=1; @C1=a; @=chunks-2".into(),
            Ok(present(&[("@", "chunks-2"), ("@C1", "a"), ("@C2", "b")])),
        ),
        (
            "@=chunks-02; @C1=a; @C2=b".into(),
            Ok(present(&[("@", "chunks-02"), ("@C1", "a"), ("@C2", "b")])),
        ),
        (format!("@=chunks-64{all64}"), Ok(present(&all64_refs))),
        (
            "@=chunks-3; @C1=a; @C2=b".into(),
            Ok(SessionLookup::Incomplete),
        ),
        ("@=chunks-1".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks-1; @C1=".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks-1; @C01=a".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks-1; @c1=a".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks-0".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks-x; @C1=a".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks-; @C1=a".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks-+1; @C1=a".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks--1; @C1=a".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks- 1; @C1=a".into(), Ok(SessionLookup::Incomplete)),
        ("@=chunks-65".into(), Ok(SessionLookup::Incomplete)),
        (
            "@=chunks-99999999999999999999999".into(),
            Ok(SessionLookup::Incomplete),
        ),
        // Stray chunks are not part of the session.
        ("@=abc; @C1=x; @C2=y".into(), Ok(present(&[("@", "abc")]))),
        (
            "@=chunks-1; @C1=a; @C2=x".into(),
            Ok(present(&[("@", "chunks-1"), ("@C1", "a")])),
        ),
        ("@C1=x".into(), Ok(SessionLookup::Absent)),
        (
            "@C01=x; @C01=y; @C65=x; @C65=y".into(),
            Ok(SessionLookup::Absent),
        ),
        (
            "@=\"chunks-1\"; @C1=a".into(),
            Ok(present(&[("@", "\"chunks-1\"")])),
        ),
        // Cookie tossing, plain.
        ("@=abc; @=abc".into(), tossing("@")),
        ("@=abc; @=def".into(), tossing("@")),
        ("@=; @=def".into(), tossing("@")),
        ("@=abc; x=1; @=".into(), tossing("@")),
        ("@C1=x; @C1=y".into(), tossing("@C1")),
        ("@=chunks-1; @C1=a; @C1=b".into(), tossing("@C1")),
        // ... case variants (ASP.NET Core folds case) ...
        (
            h("@=abc; .aspnetcore.identity.application=def"),
            tossing(".aspnetcore.identity.application"),
        ),
        (h(".ASPNETCORE.IDENTITY.APPLICATION=x; @=abc"), tossing("@")),
        ("@=chunks-1; @C1=a; @c1=b".into(), tossing("@c1")),
        // ... and names hidden from a ';' split but read by a resynchronizing parser.
        ("a=1, @=evil; @=real".into(), tossing("@")),
        ("a=1,@=evil; @=real".into(), tossing("@")),
        ("a=1 @=evil; @=real".into(), tossing("@")),
        ("a=\"x\"@=evil; @=real".into(), tossing("@")),
        ("a=(@=evil; @=real".into(), tossing("@")),
        ("=@=evil; @=real".into(), tossing("@")),
        ("\u{a0}@=evil; @=real".into(), tossing("@")),
        ("@=real; a=b,@C1=x; @C1=y".into(), tossing("@C1")),
    ];
    for (header, expected) in cases {
        let header = h(&header);
        assert_eq!(extract_session(&header, &names()), expected, "{header:?}");
    }
}

#[test]
fn several_configured_names() {
    let names = vec!["A".to_owned(), "B".to_owned()];
    let cases: &[(&str, Result<SessionLookup, CookieError>)] = &[
        ("x=1", Ok(SessionLookup::Absent)),
        ("B=2; A=1", Ok(pairs(&[("A", "1"), ("B", "2")]))),
        ("B=2", Ok(pairs(&[("B", "2")]))),
        ("A=; B=2", Ok(pairs(&[("B", "2")]))),
        ("A=1; B=chunks-1", Ok(SessionLookup::Incomplete)),
        (
            "A=1; B=2; b=3",
            Err(CookieError::Tossing { name: "b".into() }),
        ),
    ];
    for (header, expected) in cases {
        assert_eq!(&extract_session(header, &names), expected, "{header:?}");
    }
    // Overlapping configured names: `AC1` is a name and `A`'s chunk 1.
    let overlapping = vec!["A".to_owned(), "AC1".to_owned()];
    assert_eq!(
        extract_session("A=chunks-1; AC1=x", &overlapping),
        Ok(pairs(&[("A", "chunks-1"), ("AC1", "x")]))
    );
    assert_eq!(extract_session("A=1", &[]), Ok(SessionLookup::Absent));
}

fn pairs(list: &[(&str, &str)]) -> SessionLookup {
    SessionLookup::Present(SessionCookies::new(
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), Secret::new(*v)))
            .collect(),
    ))
}

fn session(header: &str) -> SessionCookies {
    match extract_session(&h(header), &names()) {
        Ok(SessionLookup::Present(cookies)) => cookies,
        other => panic!("{header:?}: {other:?}"),
    }
}

#[test]
fn session_cookies_render_sorted_and_redacted() {
    let cookies = session("@C2=b; @=chunks-2; x=1; @C1=a");
    assert_eq!(cookies.cookie_header(), h("@=chunks-2; @C1=a; @C2=b"));
    let names: Vec<_> = cookies.names().collect();
    assert_eq!(names, [h("@"), h("@C1"), h("@C2")]);
    let shown = format!(
        "{:?}",
        SessionLookup::Present(session("@=top-secret-value"))
    );
    assert!(!shown.contains("top-secret"), "{shown}");
    assert!(shown.contains(N), "{shown}");
}

#[test]
fn cache_key_depends_on_session_cookies_only() {
    let key = |header: &str| session(header).cache_key();
    assert_eq!(key("@=abc"), key("x=1; @=abc; y=2"));
    assert_eq!(
        key("@=chunks-2; @C1=a; @C2=b"),
        key("@C2=b; z=9; @C1=a; @=chunks-2; @C3=q")
    );
    assert_ne!(key("@=abc"), key("@=abd"));
    assert_ne!(
        key("@=chunks-2; @C1=a; @C2=b"),
        key("@=chunks-2; @C1=b; @C2=a")
    );
    // Length prefixes: one value that spells two pairs is a different key.
    let one = SessionCookies::new(vec![("a".into(), Secret::new("b; c=d"))]);
    let two = SessionCookies::new(vec![
        ("a".into(), Secret::new("b")),
        ("c".into(), Secret::new("d")),
    ]);
    assert_eq!(one.cookie_header(), two.cookie_header());
    assert_ne!(one.cache_key(), two.cache_key());
    let split = SessionCookies::new(vec![("ab".into(), Secret::new("c"))]);
    let moved = SessionCookies::new(vec![("a".into(), Secret::new("bc"))]);
    assert_ne!(split.cache_key(), moved.cache_key());
}

#[test]
fn strip_removes_session_cookies_and_chunks() {
    let cases: &[(&str, Option<&str>)] = &[
        ("", None),
        (";;;", None),
        ("@=abc", None),
        ("a=1; @=abc; b=2", Some("a=1; b=2")),
        ("  a = 1 ;@=x;;; b=\"q\"", Some("a = 1; b=\"q\"")),
        (
            "@=chunks-2; @C1=a; @C2=b; @C01=z; @C999=q; other=1",
            Some("other=1"),
        ),
        (
            ".aspnetcore.identity.application=x; @c1=y; k=v",
            Some("k=v"),
        ),
        (
            "@x=1; x@=2; @C=3; @Cx=4; @C1x=5",
            Some("@x=1; x@=2; @C=3; @Cx=4; @C1x=5"),
        ),
        ("foo; @=1; =bar", Some("foo; =bar")),
        ("a=1, @=evil; b=2", Some("b=2")),
        ("a=\"x\"@C1=evil; b=2", Some("b=2")),
        ("\u{a0}@=x; b=2", Some("b=2")),
    ];
    for (header, expected) in cases {
        let header = h(header);
        let expected = expected.map(h);
        assert_eq!(
            strip_session_cookies(&header, &names()),
            expected,
            "{header:?}"
        );
    }
    assert_eq!(
        strip_session_cookies("a=1;b=2", &[]).as_deref(),
        Some("a=1; b=2")
    );
}

#[test]
fn join_cookie_fields_cases() {
    let value = |s: &'static str| HeaderValue::from_static(s);
    assert_eq!(join_cookie_fields([]), Ok(None));
    assert_eq!(join_cookie_fields(&[value("a=1")]), Ok(Some("a=1".into())));
    assert_eq!(
        join_cookie_fields(&[value("a=1"), value(""), value(" b=2 "), value("c=3; d=4")]),
        Ok(Some("a=1; b=2; c=3; d=4".into()))
    );
    assert_eq!(join_cookie_fields(&[value(""), value("  ")]), Ok(None));
    for bad in [
        &b"a=\xff"[..],
        b"a=\x80",
        "a=caf\u{e9}".as_bytes(),
        "\u{a0}a=1".as_bytes(),
    ] {
        let bad = HeaderValue::from_bytes(bad).unwrap();
        assert_eq!(
            join_cookie_fields(&[value("a=1"), bad.clone()]),
            Err(CookieError::NotText),
            "{bad:?}"
        );
    }
}

#[test]
fn errors_do_not_carry_values() {
    let err = extract_session(&h("@=secret-one; @=secret-two"), &names()).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("secret"), "{err}");
}

fn other_cookies() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-z]{1,8}=[A-Za-z0-9\"]{0,10}", 0..6)
}

fn session_cookies() -> impl Strategy<Value = Vec<String>> {
    (1u32..5, "[A-Za-z0-9_-]{1,12}").prop_map(|(chunks, value)| {
        let mut cookies = vec![format!("{N}=chunks-{chunks}")];
        cookies.extend((1..=chunks).map(|k| format!("{N}C{k}={value}{k}")));
        cookies
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises this for long runs (see the README).
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_panics(header in any::<String>(), name in any::<String>()) {
        for names in [names(), vec![name.clone()], vec![name, String::new()]] {
            let _ = extract_session(&header, &names);
            let _ = strip_session_cookies(&header, &names);
            let _ = cookie_pairs(&header).count();
        }
    }

    #[test]
    fn shadow_names_match_the_byte_by_byte_definition(
        header in "[a-zA-Z0-9=;, \"\t.C~!\u{a0}\u{3000}-]{0,80}",
    ) {
        let fast: Vec<&str> = shadow_names(&header).collect();
        prop_assert_eq!(fast, shadow_names_reference(&header));
    }

    #[test]
    fn never_panics_on_cookie_like_text(header in "[a-zA-Z0-9=;, \"\t.C\u{a0}\u{3000}-]{0,64}") {
        let header = h(&header.replace('.', "@"));
        let _ = extract_session(&header, &names());
        let _ = strip_session_cookies(&header, &names());
    }

    #[test]
    fn tossing_is_detected_anywhere(
        others in other_cookies(),
        session in session_cookies(),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        upper in any::<bool>(),
    ) {
        let twin = pick.get(&session);
        let (name, _) = twin.split_once('=').unwrap();
        let name = if upper { name.to_ascii_uppercase() } else { name.to_owned() };
        let mut all: Vec<String> = others.into_iter().chain(session.clone()).collect();
        all.insert(at.index(all.len() + 1), format!("{name}=tossed"));
        let header = all.join("; ");
        let verdict = extract_session(&header, &names());
        prop_assert!(matches!(&verdict, Err(CookieError::Tossing { name: found }) if found.eq_ignore_ascii_case(&name)), "{:?}", verdict);
    }

    #[test]
    fn cache_key_ignores_order_and_other_cookies(
        others in other_cookies(),
        session in session_cookies(),
        seed in any::<u64>(),
    ) {
        let alone = session.join("; ");
        let mut mixed: Vec<String> = others.into_iter().chain(session).collect();
        shuffle(&mut mixed, seed);
        let key = |header: &str| match extract_session(header, &names()) {
            Ok(SessionLookup::Present(cookies)) => Some(cookies.cache_key()),
            _ => None,
        };
        prop_assert!(key(&alone).is_some());
        prop_assert_eq!(key(&alone), key(&mixed.join("; ")));
    }

    #[test]
    fn strip_removes_exactly_the_session_cookies(
        others in other_cookies(),
        session in session_cookies(),
        seed in any::<u64>(),
    ) {
        let mut mixed: Vec<String> = others.iter().cloned().chain(session).collect();
        shuffle(&mut mixed, seed);
        let kept: Vec<&String> = mixed.iter().filter(|c| others.contains(c)).collect();
        let expected = (!kept.is_empty()).then(|| {
            kept.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("; ")
        });
        prop_assert_eq!(strip_session_cookies(&mixed.join("; "), &names()), expected);
    }
}

/// A small deterministic shuffle (no extra dev-dependency).
fn shuffle(items: &mut [String], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = usize::try_from(seed >> 33).unwrap_or(0) % (i + 1);
        items.swap(i, j);
    }
}

/// A Data Protection-shaped value of `len` characters.
fn payload(len: usize) -> String {
    let mut value = String::from("CfDJ8");
    value.extend(std::iter::repeat_n('A', len.saturating_sub(5)));
    value
}

#[test]
fn data_protection_shape_with_attack_strings() {
    assert!(is_data_protection_payload(&payload(64)));
    assert!(is_data_protection_payload(&format!(
        "{}-_09az",
        payload(300)
    )));
    let refused = [
        String::new(),
        "forged-cookie-value-0815".to_owned(),
        payload(63),
        format!("cfdj8{}", &payload(80)[5..]),
        format!("XCfDJ8{}", payload(80)),
        format!("{}=", payload(80)),
        format!("{}+/", payload(80)),
        format!("{} ", payload(80)),
        format!("{}%41", payload(80)),
        format!("{}\u{0}", payload(80)),
        format!("{}é", payload(80)),
        "chunks-2".to_owned(),
    ];
    for value in &refused {
        assert!(!is_data_protection_payload(value), "{value:?}");
    }
}

#[test]
fn the_shape_is_judged_on_chunks_joined_in_order() {
    let names = [".AspNetCore.Identity.Application".to_owned()];
    let whole = payload(400);
    let parts: Vec<&str> = (0..10).map(|i| &whole[i * 40..(i + 1) * 40]).collect();
    let mut header = format!("{}=chunks-{}", names[0], parts.len());
    for (i, part) in parts.iter().enumerate() {
        header.push_str(&format!("; {}C{}={part}", names[0], i + 1));
    }
    let SessionLookup::Present(cookies) = extract_session(&header, &names).unwrap() else {
        panic!("chunked cookie not found");
    };
    assert!(cookies.all_data_protection_payloads());
    // Each chunk alone is too short: only the joined value counts, and a
    // bad byte in any chunk (here chunk 10) is seen in it.
    let swapped = header.replace(
        &format!("C10={}", parts[9]),
        &format!("C10=!{}", &parts[9][1..]),
    );
    let SessionLookup::Present(bad) = extract_session(&swapped, &names).unwrap() else {
        panic!("chunked cookie not found");
    };
    assert!(!bad.all_data_protection_payloads());

    let short = format!("{}={}", names[0], payload(63));
    let SessionLookup::Present(short) = extract_session(&short, &names).unwrap() else {
        panic!("cookie not found");
    };
    assert!(!short.all_data_protection_payloads());
}
