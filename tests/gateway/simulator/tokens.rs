//! App tokens in the simulator: where PSU accepts them, roles, revocation,
//! and the front-door modes that break them (stripped Authorization, IIS
//! without anonymous authentication).

use super::*;

#[tokio::test]
async fn accessible_also_takes_an_app_token() {
    let h = Harness::start(|_| {}).await;
    let token = h.token(&["Reader", "Operator"]);
    let me = h
        .get("/api/v1/accessible", &[("authorization", &bearer(&token))])
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json(),
        serde_json::json!({"identity": "script", "roles": ["Reader", "Operator"]})
    );
}

#[tokio::test]
async fn usersession_needs_an_app_token_with_an_allowed_role() {
    let h = Harness::start(|_| {}).await;
    let cookie = h.cookie("admin").await;
    h.cookie("reader").await;
    let admin = h.token(&["Administrator"]);

    let reply = h
        .get(
            "/api/v1/usersession",
            &[("x-psu-authorization", &bearer(&admin))],
        )
        .await;
    assert_eq!(reply.status, 200);
    let sessions = reply.json();
    let list = sessions.as_array().expect("an array");
    assert_eq!(list.len(), 2, "{sessions}");
    assert_eq!(list[0]["identity"], "admin");
    assert_eq!(list[0]["remoteIpAddress"], "127.0.0.1");
    for field in ["id", "timestamp", "source", "userAgent"] {
        assert!(list[0].get(field).is_some(), "{field}");
    }
    assert_eq!(
        h.get("/api/v1/usersession", &[("authorization", &bearer(&admin))])
            .await
            .status,
        200
    );

    let refused: [(&str, String, u16); 5] = [
        ("cookie", cookie, 401),
        ("x-psu-authorization", bearer("not.a.token"), 401),
        ("x-psu-authorization", format!("Basic {admin}"), 401),
        ("x-psu-authorization", bearer(&h.token(&["Reader"])), 403),
        ("authorization", bearer(&h.token(&[])), 403),
    ];
    for (name, value, status) in &refused {
        let reply = h.get("/api/v1/usersession", &[(name, value)]).await;
        assert_eq!(reply.status.as_u16(), *status, "{name}: {value}");
        assert!(reply.body.is_empty());
    }
}

#[tokio::test]
async fn x_psu_authorization_wins_over_authorization() {
    let h = Harness::start(|_| {}).await;
    let good = bearer(&h.token(&["Administrator"]));
    let reply = h
        .get(
            "/api/v1/usersession",
            &[
                ("authorization", &good),
                ("x-psu-authorization", "Bearer junk"),
            ],
        )
        .await;
    assert_eq!(reply.status, 401);
    let reply = h
        .get(
            "/api/v1/usersession",
            &[
                ("authorization", "Bearer junk"),
                ("x-psu-authorization", &good),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn revoked_and_foreign_tokens_are_refused() {
    let h = Harness::start(|_| {}).await;
    let minted = h.sim.mint_token("script", &["Administrator"], HOUR);
    let header = bearer(minted.token.expose());
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &header)])
            .await
            .status,
        200
    );
    h.sim.revoke(&minted.hash);
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &header)])
            .await
            .status,
        401
    );

    let preset =
        psu_gateway::sim::mint_token(b"other-key", "x", &["Administrator".to_owned()], HOUR);
    let foreign = bearer(preset.token.expose());
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &foreign)])
            .await
            .status,
        401
    );

    let revoked_at_start = Harness::start(|o| o.revoked = vec![minted.hash.clone()]).await;
    let fresh = revoked_at_start.token(&["Administrator"]);
    let same_hash_elsewhere = revoked_at_start
        .get(
            "/api/v1/usersession",
            &[("x-psu-authorization", &bearer(&fresh))],
        )
        .await;
    assert_eq!(
        same_hash_elsewhere.status, 200,
        "only the listed hash is revoked"
    );
}

#[tokio::test]
async fn allowed_roles_are_configurable() {
    let h = Harness::start(|o| o.allowed_roles = vec!["Operator".into()]).await;
    let operator = bearer(&h.token(&["Reader", "Operator"]));
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &operator)])
            .await
            .status,
        200
    );
    let admin = bearer(&h.token(&["Administrator"]));
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &admin)])
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn strip_authorization_breaks_bearer_but_not_x_psu_authorization() {
    let h = Harness::start(|o| o.strip_authorization = true).await;
    let header = bearer(&h.token(&["Administrator"]));
    assert_eq!(
        h.get("/api/v1/usersession", &[("authorization", &header)])
            .await
            .status,
        401
    );
    assert_eq!(
        h.get("/api/v1/usersession", &[("x-psu-authorization", &header)])
            .await
            .status,
        200
    );
    let seen = h.sim.recorder().requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].headers["authorization"],
        header.as_str(),
        "recorded as it arrived, before stripping"
    );
    let echo = h
        .get("/sim/echo", &[("authorization", &header)])
        .await
        .json();
    assert!(
        echo["headers"].get("authorization").is_none(),
        "PSU never saw it: {echo}"
    );
}

#[tokio::test]
async fn iis_without_anonymous_challenges_everything_but_negotiate() {
    let h = Harness::start(|o| o.iis_anonymous = false).await;
    let token = bearer(&h.token(&["Administrator"]));
    for (method, path, headers) in [
        (
            Method::GET,
            "/sim/status/200",
            vec![("authorization", token.as_str())],
        ),
        (
            Method::GET,
            "/api/v1/usersession",
            vec![("x-psu-authorization", token.as_str())],
        ),
        (Method::POST, "/api/v1/signin", vec![]),
        (Method::GET, "/", vec![]),
    ] {
        let reply = h.send(method, path, &headers, "").await;
        assert_eq!(reply.status, 401, "{path}");
        let challenges: Vec<_> = reply.headers.get_all("www-authenticate").iter().collect();
        assert_eq!(challenges, ["Negotiate", "NTLM"], "{path}");
    }
    let through = h
        .get(
            "/sim/status/204",
            &[("authorization", "Negotiate YIIGfAYGKwYBBQUCoIIGcDCCBmyg")],
        )
        .await;
    assert_eq!(through.status, 204);
    assert_eq!(
        h.sim.recorder().requests().len(),
        5,
        "rejected requests are recorded too"
    );
}
