//! Hostile and unusual session cookies through the whole gateway.

use crate::support::*;

#[tokio::test]
async fn malformed_cookies_are_unauthenticated_never_a_crash() {
    let stack = Setup::default().start().await;
    let big = "v".repeat(8 * 1024);
    let cases = [
        format!("{SESSION_COOKIE}=\"quoted\""),
        format!("={SESSION_COOKIE}"),
        format!("=; {SESSION_COOKIE}"),
        format!("\u{3000}{SESSION_COOKIE}=x").replace('\u{3000}', " \t"),
        format!("{SESSION_COOKIE} =x"),
        format!("{SESSION_COOKIE}={big}"),
        format!("{SESSION_COOKIE}=chunks-2; {SESSION_COOKIE}C1=a"),
        format!("{SESSION_COOKIE}=chunks-999"),
        format!("{}=x", SESSION_COOKIE.to_uppercase()),
        ";;;;=;=".to_owned(),
    ];
    for cookie in &cases {
        let reply = stack
            .get("/api/v1/usersession", &[("cookie", cookie)])
            .await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 401),
            "{cookie:.80}: {}",
            reply.status
        );
        reply.assert_problem(reply.status.as_u16());
    }
    assert!(stack.upstream_saw("/api/v1/usersession").is_empty());
    // The gateway is still healthy.
    assert_eq!(stack.get("/sim/status/204", &[]).await.status, 204);
}

#[tokio::test]
async fn chunked_session_cookies_work_and_need_every_chunk() {
    let stack = Setup::default()
        .sim(|o| o.cookie_chunk_size = Some(20))
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    assert!(cookie.contains("=chunks-"), "{cookie}");
    assert!(cookie.contains(&format!("{SESSION_COOKIE}C2=")), "{cookie}");
    assert_eq!(
        stack
            .get("/api/v1/usersession", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    let seen = stack.upstream_saw("/api/v1/usersession");
    assert!(
        header(&seen[0], "cookie")
            .iter()
            .all(|c| !c.contains(SESSION_COOKIE)),
        "no chunk travels with the token"
    );
    let missing: Vec<&str> = cookie
        .split("; ")
        .filter(|c| !c.starts_with(&format!("{SESSION_COOKIE}C2=")))
        .collect();
    stack
        .get("/api/v1/usersession", &[("cookie", &missing.join("; "))])
        .await
        .assert_problem(401);
    let mut tossed = cookie.clone();
    tossed.push_str(&format!("; {SESSION_COOKIE}C1=again"));
    stack
        .get("/api/v1/usersession", &[("cookie", &tossed)])
        .await
        .assert_problem(400);
    assert_eq!(stack.upstream_saw("/api/v1/usersession").len(), 1);
}
