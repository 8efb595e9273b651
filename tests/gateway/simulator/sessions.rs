//! PSU's session cookies in the simulator: sign-in and sign-out, expiry,
//! and ASP.NET Core's chunked cookies.

use super::*;

#[tokio::test]
async fn sign_in_sets_a_cookie_that_accessible_accepts() {
    let h = Harness::start(|_| {}).await;
    let reply = h.sign_in("admin", "admin").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"returnUrl": "/admin"}));
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap();
    let (pair, attributes) = set_cookie.split_once("; ").unwrap();
    let value = pair.strip_prefix(&format!("{COOKIE}=")).unwrap();
    assert_eq!(value.len(), 272);
    assert!(value.starts_with("CfDJ8"), "{value}");
    assert_eq!(attributes, "path=/; secure; samesite=lax; httponly");

    let me = h
        .get(
            "/api/v1/accessible",
            &[("cookie", &format!("theme=dark; {pair}"))],
        )
        .await;
    assert_eq!(me.status, 200);
    assert!(me.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        me.json(),
        serde_json::json!({"identity": "admin", "roles": ["Administrator"]})
    );

    let anonymous = h.get("/api/v1/accessible", &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.body.len()),
        (StatusCode::UNAUTHORIZED, 0)
    );
    let forged = h
        .get(
            "/api/v1/accessible",
            &[("cookie", &format!("{COOKIE}=forged"))],
        )
        .await;
    assert_eq!(forged.status, 401);
}

#[tokio::test]
async fn bad_credentials_are_refused_without_a_cookie() {
    let h = Harness::start(|_| {}).await;
    let wrong = h.sign_in("admin", "reader").await;
    assert_eq!(
        (wrong.status, wrong.body.len()),
        (StatusCode::UNAUTHORIZED, 0)
    );
    assert!(wrong.headers.get("set-cookie").is_none());
    assert_eq!(h.sign_in("nobody", "nobody").await.status, 401);
    let garbage = h
        .send(Method::POST, "/api/v1/signin", &[], "{not json")
        .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(h.get("/api/v1/signin", &[]).await.status, 405);
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let h = Harness::start(|_| {}).await;
    let cookie = h.cookie("admin").await;
    let other = h.cookie("admin").await;
    let reply = h
        .send(Method::POST, "/api/v1/signout", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with(&format!("{COOKIE}=; expires=Thu, 01 Jan 1970")));
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        401
    );
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &other)])
            .await
            .status,
        200,
        "other sessions live on"
    );
    assert_eq!(
        h.send(Method::POST, "/api/v1/signout", &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn expire_sessions_ends_every_session() {
    let h = Harness::start(|_| {}).await;
    let cookie = h.cookie("admin").await;
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    h.sim.expire_sessions();
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        401
    );
    let admin = bearer(&h.token(&["Administrator"]));
    let list = h
        .get("/api/v1/usersession", &[("x-psu-authorization", &admin)])
        .await
        .json();
    assert_eq!(list, serde_json::json!([]));
    let fresh = h.cookie("admin").await;
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &fresh)])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn session_ttl_applies_from_sign_in() {
    let h = Harness::start(|o| o.session_ttl = Duration::ZERO).await;
    let cookie = h.cookie("admin").await;
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn chunked_cookies_round_trip_and_need_every_chunk() {
    let h = Harness::start(|o| {
        o.cookie_chunk_size = Some(70);
        o.cookie_name = "psu".into();
    })
    .await;
    let reply = h.sign_in("admin", "admin").await;
    let names: Vec<String> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split('=').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["psu", "psuC1", "psuC2", "psuC3", "psuC4"]);
    assert!(reply.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("psu=chunks-4;"));
    let cookie = reply.cookie_header();
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &cookie)])
            .await
            .status,
        200
    );
    let missing: Vec<&str> = cookie
        .split("; ")
        .filter(|c| !c.starts_with("psuC3="))
        .collect();
    assert_eq!(
        h.get("/api/v1/accessible", &[("cookie", &missing.join("; "))])
            .await
            .status,
        401
    );
    let signout = h
        .send(Method::POST, "/api/v1/signout", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(
        signout.headers.get_all("set-cookie").iter().count(),
        5,
        "every chunk is deleted"
    );
}
