//! Introspection answers, and the session cache after a failed lookup and
//! when verdicts expire.

use super::*;

fn config() -> Session {
    Session {
        cookies: vec![".AspNetCore.Identity.Application".into()],
        introspect_path: http::uri::PathAndQuery::from_static("/api/v1/accessible"),
        identity_pointer: Some("/identity".into()),
        roles_pointer: Some("/roles".into()),
        cache_ttl: Duration::from_secs(30),
        negative_cache_ttl: Duration::from_secs(5),
        cache_max_entries: 10,
        introspect_timeout: Duration::from_secs(2),
        cookie_shape: crate::config::CookieShape::Any,
        max_inflight_introspections: 32,
        miss_rate: crate::rate::parse_rate("1000000/s").unwrap(),
    }
}

#[test]
fn identity_and_roles_from_pointers() {
    let id = identity_from_body(
        br#"{"identity":"admin","roles":["Administrator","Reader"]}"#,
        &config(),
    )
    .unwrap();
    assert_eq!(id.name.as_deref(), Some("admin"));
    assert_eq!(id.roles, ["administrator", "reader"]);
    assert!(id.has_any_role(&["reader".into()]));
    assert!(!id.has_any_role(&["operator".into()]));
    let single = identity_from_body(br#"{"identity":"a","roles":"Operator"}"#, &config()).unwrap();
    assert_eq!(single.roles, ["operator"]);
    let absent = identity_from_body(br#"{"identity":"a"}"#, &config()).unwrap();
    assert!(absent.roles.is_empty());
}

#[test]
fn unparseable_bodies_are_unavailable() {
    for body in [
        &b"not json"[..],
        br#"{"roles":[1]}"#,
        br#"{"roles":{"a":1}}"#,
        b"",
    ] {
        assert!(
            identity_from_body(body, &config()).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

fn entry(verdict: Verdict, ttl: Duration) -> Entry {
    Entry {
        verdict,
        until: Instant::now() + ttl,
    }
}

fn cookies(value: &str) -> SessionCookies {
    let header = format!(".AspNetCore.Identity.Application={value}");
    match crate::rules::cookies::extract_session(&header, &config().cookies) {
        Ok(crate::rules::cookies::SessionLookup::Present(cookies)) => cookies,
        _ => panic!("a session cookie"),
    }
}

/// A gateway whose PSU refuses connections, with room for two verdicts.
async fn auth_without_psu() -> SessionAuth {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let upstream = UpstreamClient::new(
        &crate::config::Upstream {
            scheme: http::uri::Scheme::HTTP,
            authority: addr.to_string().parse().unwrap(),
            protocol: crate::config::UpstreamProtocol::Http1,
            ca: vec![],
            server_name: None,
            connect_timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle: 1,
            preserve_host: true,
            max_inflight: 512,
            queue_timeout: Duration::from_secs(2),
            windows_auth: crate::config::WindowsAuth::Pin,
            max_pinned: 1000,
        },
        Default::default(),
    )
    .unwrap();
    let config = Session {
        cache_max_entries: 2,
        ..config()
    };
    SessionAuth::new(config, upstream, Arc::new(Metrics::new()))
}

#[tokio::test]
async fn a_failed_introspection_pushes_no_session_out_and_is_not_kept() {
    let auth = auth_without_psu().await;
    let (a, b) = (cookies("a"), cookies("b"));
    let valid = || Verdict::Valid(Arc::new(Identity::default()));
    auth.cache
        .insert(a.cache_key(), entry(valid(), Duration::from_secs(60)));
    auth.cache
        .insert(b.cache_key(), entry(valid(), Duration::from_secs(60)));
    let id = HeaderValue::from_static("t");
    let ctx = IntrospectionContext {
        peer: "127.0.0.1".parse().unwrap(),
        host: "localhost",
        upstream_host: "localhost",
        request_id: &id,
    };
    for attempt in ["c", "d", "e"] {
        let failed = auth.authenticate(&cookies(attempt), &ctx).await;
        assert!(
            matches!(failed, Err(SessionError::Unavailable { .. })),
            "{failed:?}"
        );
        assert!(auth.cache.get(&cookies(attempt).cache_key()).is_none());
    }
    for kept in [&a, &b] {
        assert!(matches!(
            auth.authenticate(kept, &ctx).await,
            Ok((_, CacheOutcome::Hit))
        ));
    }
    assert_eq!(auth.metrics.session_cache_evictions.get(), 0);
}

#[tokio::test]
async fn expired_verdicts_make_room_without_counting_as_evictions() {
    let auth = auth_without_psu().await;
    let expired: Vec<_> = ["old1", "old2"].map(|v| cookies(v).cache_key()).into();
    for key in &expired {
        auth.cache
            .insert(*key, entry(Verdict::Invalid, Duration::ZERO));
    }
    auth.drop_expired();
    assert!(auth.cache.is_empty(), "expired verdicts are dropped");
    let fresh: Vec<_> = (0..10)
        .map(|n| cookies(&format!("s{n}")).cache_key())
        .collect();
    for key in &fresh {
        auth.cache
            .insert(*key, entry(Verdict::Invalid, Duration::from_secs(60)));
    }
    // Room for two: whichever eight the cache pushed out, each counts.
    assert_eq!(auth.cache.len(), 2);
    assert_eq!(auth.metrics.session_cache_evictions.get(), 8);
    // An expired verdict the cache pushes out for room is not counted.
    let counter = CountEvictions(Counter::default());
    counter.on_evict(&mut (), expired[0], entry(Verdict::Invalid, Duration::ZERO));
    assert_eq!(counter.0.get(), 0);
    counter.on_evict(
        &mut (),
        fresh[0],
        entry(Verdict::Invalid, Duration::from_secs(60)),
    );
    assert_eq!(counter.0.get(), 1);
}
