//! The product's core promise: a signed-in user reaches /api/v1/usersession
//! with the server-side token, and only then.

use http::Method;

use crate::support::*;

async fn usersession_with_cookie(proto: Proto) {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let reply = stack
        .send_with(
            proto,
            Method::GET,
            "/api/v1/usersession",
            &[("cookie", &cookie)],
            Default::default(),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let sessions = reply.json();
    let list = sessions.as_array().expect("a JSON array of sessions");
    assert!(list.iter().any(|s| s["identity"] == "admin"), "{sessions}");
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert!(reply.headers.get_all("vary").iter().any(|v| v == "Cookie"));

    let seen = stack.upstream_saw("/api/v1/usersession");
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(
        header(request, "x-psu-authorization"),
        [bearer(&stack.token)]
    );
    assert!(header(request, "authorization").is_empty());
    assert!(
        header(request, "cookie")
            .iter()
            .all(|c| !c.contains(SESSION_COOKIE)),
        "{:?}",
        header(request, "cookie")
    );
    assert_eq!(header(request, "x-forwarded-proto"), ["https"]);
    assert_eq!(header(request, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(
        header(request, "x-forwarded-host"),
        [format!("localhost:{}", stack.addr.port())]
    );
    assert_eq!(
        header(request, "x-request-id"),
        [reply.headers["x-request-id"].to_str().unwrap()]
    );
}

#[tokio::test]
async fn usersession_over_http1() {
    usersession_with_cookie(Proto::H1).await;
}

#[tokio::test]
async fn usersession_over_h2() {
    usersession_with_cookie(Proto::H2).await;
}

#[tokio::test]
async fn unauthenticated_requests_get_401_and_reach_nothing() {
    let stack = Setup::default().start().await;
    let live = stack.sign_in("admin", "admin").await;

    let signed_out = stack.sign_in("admin", "admin").await;
    let reply = stack
        .send(Method::POST, "/api/v1/signout", &[("cookie", &signed_out)])
        .await;
    assert_eq!(reply.status, 200);

    let expired = stack.sign_in("admin", "admin").await;
    let cases = [
        ("no cookie", String::new()),
        ("forged", format!("{SESSION_COOKIE}=forged-value")),
        ("signed out", signed_out),
        ("other cookie only", "theme=dark".to_owned()),
        ("empty value", format!("{SESSION_COOKIE}=")),
        (
            "chunk header without chunks",
            format!("{SESSION_COOKIE}=chunks-2"),
        ),
    ];
    for (what, cookie) in &cases {
        let headers: Vec<(&str, &str)> = if cookie.is_empty() {
            vec![]
        } else {
            vec![("cookie", cookie.as_str())]
        };
        let reply = stack.get("/api/v1/usersession", &headers).await;
        reply.assert_problem(401);
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("forged-value"),
            "{what}: body echoes the cookie"
        );
    }
    stack.sim.expire_sessions();
    stack
        .get("/api/v1/usersession", &[("cookie", &expired)])
        .await
        .assert_problem(401);
    assert!(
        stack.upstream_saw("/api/v1/usersession").is_empty(),
        "nothing may be forwarded"
    );
    drop(live);
}

#[tokio::test]
async fn a_user_without_the_role_gets_403() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("reader", "reader").await;
    stack
        .get("/api/v1/usersession", &[("cookie", &cookie)])
        .await
        .assert_problem(403);
    assert!(stack.upstream_saw("/api/v1/usersession").is_empty());
    // The same user may use a session route without roles.
    let reply = stack.get("/sim/echo", &[("cookie", &cookie)]).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn roles_match_case_insensitively() {
    let stack = Setup::default()
        .edit(
            r#"roles = ["Administrator"]"#,
            r#"roles = ["ADMINISTRATOR", "operator"]"#,
        )
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    assert_eq!(
        stack
            .get("/api/v1/usersession", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn cross_site_use_of_the_session_is_refused() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let own = format!("https://localhost:{}", stack.addr.port());
    let refused: [&[(&str, &str)]; 4] = [
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        // A sibling subdomain's <img>: same-site, no Origin.
        &[("sec-fetch-site", "same-site")],
    ];
    for extra in refused {
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend_from_slice(extra);
        stack
            .get("/api/v1/usersession", &headers)
            .await
            .assert_problem(403);
    }
    assert!(stack.upstream_saw("/api/v1/usersession").is_empty());
    // A WebSocket upgrade from a foreign page on a session route.
    let upgrade = [
        ("cookie", cookie.as_str()),
        ("origin", "https://evil.example"),
        ("upgrade", "websocket"),
        ("connection", "upgrade"),
    ];
    stack.get("/sim/echo", &upgrade).await.assert_problem(403);
    assert!(stack.upstream_saw("/sim/echo").is_empty());
    let same = stack
        .get(
            "/api/v1/usersession",
            &[
                ("cookie", &cookie),
                ("origin", &own),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(same.status, 200);
}

#[tokio::test]
async fn denied_and_unrouted_paths_reach_nothing() {
    let stack = Setup::default()
        .edit(
            "[[route]]\nname = \"pages\"\nprefix = \"/\"\naccess = \"public\"\n",
            "",
        )
        .start()
        .await;
    stack.get("/api/v1/apptoken", &[]).await.assert_problem(403);
    stack
        .get("/api/v1/AppToken/grant", &[])
        .await
        .assert_problem(403);
    stack.get("/admin", &[]).await.assert_problem(404);
    stack
        .send(Method::POST, "/api/v1/usersession", &[])
        .await
        .assert_problem(404);
    assert!(
        stack.sim.recorder().requests().is_empty(),
        "{:?}",
        stack.sim.recorder().requests()
    );
}
