//! The session cache: one introspection per cookie set, TTLs, revocation delay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn concurrent_first_requests_share_one_introspection() {
    let stack = Arc::new(Setup::default().start().await);
    let cookie = Arc::new(stack.sign_in("admin", "admin").await);
    assert_eq!(stack.introspections(), 0);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (stack, cookie) = (stack.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            stack
                .get("/api/v1/usersession", &[("cookie", &cookie)])
                .await
                .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(
        stack.introspections(),
        1,
        "exactly one introspection for 100 concurrent requests"
    );
    for _ in 0..10 {
        assert_eq!(
            stack
                .get("/api/v1/usersession", &[("cookie", &cookie)])
                .await
                .status,
            200
        );
    }
    assert_eq!(
        stack.introspections(),
        1,
        "cache hits within cache_ttl ask PSU nothing"
    );
    assert_eq!(stack.upstream_saw("/api/v1/usersession").len(), 110);
    let introspection = &stack.upstream_saw("/api/v1/accessible")[0];
    assert_eq!(header(introspection, "cookie"), [cookie.as_str()]);
    assert_eq!(header(introspection, "accept"), ["application/json"]);
    assert_eq!(header(introspection, "x-forwarded-for"), ["127.0.0.1"]);
}

#[tokio::test]
async fn negative_answers_are_cached_too() {
    let stack = Setup::default().start().await;
    let forged = format!("{SESSION_COOKIE}={}", forged_session("forged"));
    for _ in 0..5 {
        stack
            .get("/api/v1/usersession", &[("cookie", &forged)])
            .await
            .assert_problem(401);
    }
    assert_eq!(stack.introspections(), 1);
}

/// A signed-out session keeps working until its cache entry expires: this
/// is the revocation delay the README states (session.cache_ttl).
#[tokio::test]
async fn signed_out_session_stops_working_after_cache_ttl() {
    let ttl = Duration::from_secs(2);
    let stack = Setup::default()
        .edit(
            "roles_pointer = \"/roles\"",
            "roles_pointer = \"/roles\"\ncache_ttl = \"2s\"",
        )
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    let cached_at = Instant::now();
    assert_eq!(
        stack
            .get("/api/v1/usersession", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    let reply = stack
        .send(
            http::Method::POST,
            "/api/v1/signout",
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(reply.status, 200);
    let still_cached = stack
        .get("/api/v1/usersession", &[("cookie", &cookie)])
        .await
        .status;
    if cached_at.elapsed() < ttl {
        assert_eq!(
            still_cached, 200,
            "within cache_ttl the cached verdict is used"
        );
        assert_eq!(stack.introspections(), 1);
    }
    // Waiting out the TTL is what this test is about, not synchronisation.
    tokio::time::sleep((ttl + Duration::from_millis(200)).saturating_sub(cached_at.elapsed()))
        .await;
    stack
        .get("/api/v1/usersession", &[("cookie", &cookie)])
        .await
        .assert_problem(401);
    assert_eq!(stack.introspections(), 2);
}

/// Requests waiting for an introspection that fails share its failure (one
/// call to PSU, every one of them 503 at once) instead of asking PSU one
/// after another; the failure is not cached for the next request.
#[tokio::test]
async fn waiters_share_a_failed_introspection_and_nothing_is_cached() {
    const STALLED: &str = "/sim/status/200";
    let stack = Arc::new(
        Setup::default()
            .edit(
                "introspect_path = \"/api/v1/accessible\"",
                "introspect_path = \"/sim/status/200?delay_ms=10000\"\nintrospect_timeout = \"2s\"",
            )
            .start()
            .await,
    );
    let cookie = Arc::new(format!(
        "{SESSION_COOKIE}={}",
        forged_session("same-for-all")
    ));
    let request = |stack: Arc<Stack>, cookie: Arc<String>| {
        tokio::spawn(async move {
            stack
                .get("/api/v1/usersession", &[("cookie", &cookie)])
                .await
        })
    };
    let first = request(stack.clone(), cookie.clone());
    // The first request's introspection is now stalled at PSU.
    stack.sim.recorder().arrived(STALLED, 1).await;
    let waiters: Vec<_> = (0..19)
        .map(|_| request(stack.clone(), cookie.clone()))
        .collect();
    for task in std::iter::once(first).chain(waiters) {
        task.await.unwrap().assert_problem(503);
    }
    assert_eq!(
        stack.upstream_saw(STALLED).len(),
        1,
        "20 requests with one cookie, one introspection"
    );
    request(stack.clone(), cookie.clone())
        .await
        .unwrap()
        .assert_problem(503);
    assert_eq!(
        stack.upstream_saw(STALLED).len(),
        2,
        "a failure is not cached"
    );
    assert!(stack.upstream_saw("/api/v1/usersession").is_empty());
}
