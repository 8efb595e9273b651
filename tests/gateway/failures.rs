//! Upstream and introspection failures: 502, 503 with Retry-After, 504.

use crate::support::*;

#[tokio::test]
async fn introspection_errors_are_503_and_forward_nothing() {
    let stack = Setup::default()
        .edit(
            "introspect_path = \"/api/v1/accessible\"",
            "introspect_path = \"/sim/status/500\"",
        )
        .start()
        .await;
    let cookie = format!("{SESSION_COOKIE}={}", forged_session("whatever"));
    for _ in 0..2 {
        let reply = stack
            .get("/api/v1/usersession", &[("cookie", &cookie)])
            .await;
        reply.assert_problem(503);
        assert!(reply.headers.contains_key("retry-after"));
    }
    assert_eq!(
        stack.upstream_saw("/sim/status/500").len(),
        2,
        "failures are not cached"
    );
    assert!(stack.upstream_saw("/api/v1/usersession").is_empty());
    assert_eq!(
        stack.get("/sim/status/204", &[]).await.status,
        204,
        "public routes still work"
    );
}

#[tokio::test]
async fn introspection_timeout_is_503() {
    let stack = Setup::default()
        .edit(
            "introspect_path = \"/api/v1/accessible\"",
            "introspect_path = \"/sim/status/200?delay_ms=10000\"\nintrospect_timeout = \"300ms\"",
        )
        .start()
        .await;
    let reply = stack
        .get(
            "/api/v1/usersession",
            &[(
                "cookie",
                &format!("{SESSION_COOKIE}={}", forged_session("x")),
            )],
        )
        .await;
    reply.assert_problem(503);
    assert!(reply.headers.contains_key("retry-after"));
    assert!(stack.upstream_saw("/api/v1/usersession").is_empty());
    assert_eq!(stack.get("/sim/status/204", &[]).await.status, 204);
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let stack = Setup::default()
        .edit(
            "[upstream]",
            "[limits]\nupstream_timeout = \"300ms\"\n\n[upstream]",
        )
        .start()
        .await;
    stack
        .get("/sim/status/200?delay_ms=10000", &[])
        .await
        .assert_problem(504);
    assert_eq!(
        stack.get("/sim/status/200?delay_ms=10", &[]).await.status,
        200
    );
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let stack = Setup::default()
        .edit(
            "url = \"{upstream}\"",
            &format!("url = \"http://127.0.0.1:{port}\""),
        )
        .start()
        .await;
    stack.get("/sim/status/200", &[]).await.assert_problem(502);
    // The session check cannot reach PSU either: 503, not 401.
    stack
        .get(
            "/api/v1/usersession",
            &[(
                "cookie",
                &format!("{SESSION_COOKIE}={}", forged_session("x")),
            )],
        )
        .await
        .assert_problem(503);
}
