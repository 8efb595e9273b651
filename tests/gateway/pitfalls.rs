//! The deployment pitfalls PSU operators hit, reproduced with the
//! simulator's front-door modes.

use crate::support::*;

#[tokio::test]
async fn stripped_authorization_breaks_bearer_in_authorization() {
    let stack = Setup::default()
        .sim(|o| o.strip_authorization = true)
        .edit(
            r#"header = "X-PSU-Authorization""#,
            r#"header = "Authorization""#,
        )
        .start()
        .await;
    let cookie = stack.sign_in("admin", "admin").await;
    let reply = stack
        .get("/api/v1/usersession", &[("cookie", &cookie)])
        .await;
    assert_eq!(reply.status, 401, "the layer in front of PSU ate the token");
    let seen = stack.upstream_saw("/api/v1/usersession");
    assert_eq!(
        header(&seen[0], "authorization"),
        [bearer(&stack.token)],
        "the gateway did send it"
    );
}

#[tokio::test]
async fn x_psu_authorization_survives_the_same_layer() {
    let stack = Setup::default()
        .sim(|o| o.strip_authorization = true)
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
async fn iis_without_anonymous_auth_rejects_every_app_token_call() {
    let stack = Setup::default()
        .sim(|o| o.iis_anonymous = false)
        .start()
        .await;
    // A script sending the app token straight through a public route.
    let reply = stack
        .get(
            "/sim/status/200",
            &[("authorization", &bearer(&stack.token))],
        )
        .await;
    assert_eq!(reply.status, 401);
    assert!(reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .any(|v| v == "Negotiate"));
    // Through the inject route even the session check fails: IIS answers
    // PSU's introspection endpoint with 401 too.
    let cookie = format!("{SESSION_COOKIE}={}", forged_session("anything"));
    stack
        .get("/api/v1/usersession", &[("cookie", &cookie)])
        .await
        .assert_problem(401);
    assert_eq!(stack.introspections(), 1);
    assert!(stack.upstream_saw("/api/v1/usersession").is_empty());
}
