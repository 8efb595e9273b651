//! App tokens granted over REST in the simulator: self-grant with a session
//! cookie (GET) and an administrator's delegated grant (POST).

use std::time::{SystemTime, UNIX_EPOCH};

use psu_gateway::sim::{verify_token, GrantForm, TokenClaims, DEV_SIGNING_KEY};

use super::*;

const GRANT: &str = "/api/v1/apptoken/grant";
const YEAR: u64 = 365 * 24 * 3600;
/// A fixed expiry far enough ahead to stay in the future.
const EXPIRATION: &str = "2099-12-02T18:00:00Z";
const EXPIRATION_UNIX: u64 = 4_099_917_600;

fn claims(token: &str) -> TokenClaims {
    verify_token(DEV_SIGNING_KEY.as_bytes(), token, SystemTime::now()).expect("a valid token")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
fn utc(secs: u64) -> String {
    psu_gateway::duration::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

fn grant_body(name: &str, role: &str, expiration: &str) -> String {
    serde_json::json!({"Identity": {"Name": name}, "Role": role, "Expiration": expiration})
        .to_string()
}

impl Harness {
    async fn self_grant(&self, cookie: &str) -> Reply {
        self.get(GRANT, &[("cookie", cookie)]).await
    }

    async fn delegated_grant(&self, token: &str, body: &str) -> Reply {
        let headers = [
            ("x-psu-authorization", bearer(token)),
            ("content-type", "application/json".to_owned()),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.send(Method::POST, GRANT, &headers, body).await
    }

    async fn usersession_status(&self, token: &str) -> StatusCode {
        self.get(
            "/api/v1/usersession",
            &[("x-psu-authorization", &bearer(token))],
        )
        .await
        .status
    }
}

/// The token of a 200 grant answer, after checking PSU's shape around it.
fn granted_token(reply: &Reply, identity: &str, role: &str) -> String {
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let answer = reply.json();
    let mut keys: Vec<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created",
            "expiration",
            "id",
            "identity",
            "revoked",
            "revokedDate",
            "role",
            "token"
        ]
    );
    assert!(answer["id"].as_u64().is_some(), "{answer}");
    assert!(answer["identity"]["id"].as_u64().is_some(), "{answer}");
    assert_eq!(answer["identity"]["name"], identity);
    assert_eq!(answer["identity"]["source"], 0);
    assert_eq!(answer["identity"]["role"], Value::Null);
    assert_eq!(answer["revoked"], false);
    assert_eq!(answer["revokedDate"], Value::Null);
    assert_eq!(answer["role"], role);
    let token = answer["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("eyJ"), "{token}");
    let claims = claims(&token);
    assert_eq!(answer["created"], utc(claims.not_before.unwrap()));
    assert_eq!(answer["expiration"], utc(claims.expires));
    token
}

#[tokio::test]
async fn self_granted_tokens_carry_the_users_roles_for_a_year() {
    let h = Harness::start(|_| {}).await;
    let before = unix_now();
    let admin = h.self_grant(&h.cookie("admin").await).await;
    let admin = granted_token(&admin, "admin", "Administrator");
    let claims = claims(&admin);
    assert_eq!(
        (claims.identity.as_str(), claims.roles.as_slice()),
        ("admin", ["Administrator".to_owned()].as_slice())
    );
    let nbf = claims.not_before.unwrap();
    assert!((before..=unix_now()).contains(&nbf), "issued now");
    assert_eq!(claims.expires - nbf, YEAR, "the default grant lifetime");
    assert_eq!(h.usersession_status(&admin).await, 200);

    let reader = h.self_grant(&h.cookie("reader").await).await;
    let reader = granted_token(&reader, "reader", "Reader");
    assert_eq!(self::claims(&reader).roles, ["Reader"]);
    assert_eq!(
        h.usersession_status(&reader).await,
        403,
        "only Administrator may read sessions by default"
    );
}

#[tokio::test]
async fn self_grant_joins_several_roles_and_takes_the_configured_lifetime() {
    let h = Harness::start(|o| {
        o.users = vec![psu_gateway::sim::SimUser::new(
            "ops",
            "ops",
            &["Administrator", "Operator", "Reader"],
        )];
        o.grant_ttl = Duration::from_secs(7200);
    })
    .await;
    let reply = h.self_grant(&h.cookie("ops").await).await;
    let token = granted_token(&reply, "ops", "Administrator, Operator, Reader");
    let claims = claims(&token);
    assert_eq!(claims.roles, ["Administrator", "Operator", "Reader"]);
    assert_eq!(claims.expires - claims.not_before.unwrap(), 7200);
}

#[tokio::test]
async fn self_grant_role_refuses_users_without_it() {
    let h = Harness::start(|o| o.self_grant_roles = vec!["administrator".into()]).await;
    let admin = h.self_grant(&h.cookie("admin").await).await;
    granted_token(&admin, "admin", "Administrator");
    let reader = h.self_grant(&h.cookie("reader").await).await;
    assert_eq!(
        (reader.status, reader.body.len()),
        (StatusCode::FORBIDDEN, 0)
    );
    assert_eq!(h.sim.grants().len(), 1, "a refusal is no grant");
}

#[tokio::test]
async fn self_grant_needs_a_live_session() {
    let h = Harness::start(|_| {}).await;
    let cookie = h.cookie("admin").await;
    let token = bearer(&h.token(&["Administrator"]));
    let forged = format!("{COOKIE}=CfDJ8forged");
    let refused: [(&str, &str); 4] = [
        ("x-none", "1"),
        ("cookie", &forged),
        ("authorization", &token),
        ("x-psu-authorization", &token),
    ];
    for (name, value) in refused {
        let reply = h.get(GRANT, &[(name, value)]).await;
        assert_eq!(
            (reply.status, reply.body.len()),
            (StatusCode::UNAUTHORIZED, 0),
            "{name}"
        );
    }
    assert_eq!(h.self_grant(&cookie).await.status, 200);
    h.sim.expire_sessions();
    let expired = h.self_grant(&cookie).await;
    assert_eq!(
        (expired.status, expired.body.len()),
        (StatusCode::UNAUTHORIZED, 0)
    );
}

#[tokio::test]
async fn delegated_grant_issues_exactly_the_requested_identity_roles_and_expiry() {
    let h = Harness::start(|_| {}).await;
    let admin = h.token(&["Administrator"]);
    let body = grant_body("bob", " Reader, Operator ,", EXPIRATION);
    let reply = h.delegated_grant(&admin, &body).await;
    let token = granted_token(&reply, "bob", "Reader, Operator");
    assert_eq!(reply.json()["expiration"], EXPIRATION);
    let claims = claims(&token);
    assert_eq!(claims.identity, "bob", "unknown identities are created");
    assert_eq!(claims.roles, ["Reader", "Operator"]);
    assert_eq!(claims.expires, EXPIRATION_UNIX);
    let me = h
        .get("/api/v1/accessible", &[("authorization", &bearer(&token))])
        .await;
    assert_eq!(
        me.json(),
        serde_json::json!({"identity": "bob", "roles": ["Reader", "Operator"]})
    );
    assert_eq!(h.usersession_status(&token).await, 403);

    let again = h.delegated_grant(&admin, &body).await.json();
    assert_eq!(
        again["identity"]["id"],
        reply.json()["identity"]["id"],
        "same identity"
    );
    assert_ne!(again["id"], reply.json()["id"], "a new token record");
    let plain = h
        .send(
            Method::POST,
            GRANT,
            &[("authorization", &bearer(&admin))],
            &grant_body("carol", "Administrator", EXPIRATION),
        )
        .await;
    let carol = granted_token(&plain, "carol", "Administrator");
    assert_eq!(h.usersession_status(&carol).await, 200);
}

#[tokio::test]
async fn delegated_grant_needs_an_administrator_token() {
    let h = Harness::start(|_| {}).await;
    let body = grant_body("bob", "Reader", EXPIRATION);
    let cookie = h.cookie("admin").await;
    let no_token = h
        .send(Method::POST, GRANT, &[("cookie", &cookie)], &body)
        .await;
    assert_eq!(
        (no_token.status, no_token.body.len()),
        (StatusCode::UNAUTHORIZED, 0)
    );
    assert_eq!(h.delegated_grant("not.a.token", &body).await.status, 401);
    let revoked = h.sim.mint_token("ops", &["Administrator"], HOUR);
    h.sim.revoke(&revoked.hash);
    assert_eq!(
        h.delegated_grant(revoked.token.expose(), &body)
            .await
            .status,
        401
    );
    for roles in [
        &["Reader"][..],
        &["Operator", "Reader"],
        &[],
        &["administrator"],
    ] {
        let reply = h.delegated_grant(&h.token(roles), &body).await;
        assert_eq!(
            (reply.status, reply.body.len()),
            (StatusCode::FORBIDDEN, 0),
            "{roles:?}"
        );
    }
    assert!(h.sim.grants().is_empty());
}

#[tokio::test]
async fn delegated_grant_refuses_malformed_bodies_and_past_expiry() {
    let h = Harness::start(|_| {}).await;
    let admin = h.token(&["Administrator"]);
    let bad = [
        String::new(),
        "{not json".to_owned(),
        r#"{"Identity":"bob","Role":"Reader","Expiration":"2099-12-02T18:00:00Z"}"#.to_owned(),
        r#"{"Identity":{"Name":"bob"},"Role":"Reader"}"#.to_owned(),
        grant_body("", "Reader", EXPIRATION),
        grant_body("bob", "Reader", "2099-12-02T18:00:00+02:00"),
        grant_body("bob", "Reader", "2099-12-02 18:00"),
        grant_body("bob", "Reader", "2099-02-30T00:00:00Z"),
        grant_body("bob", "Reader", "2001-01-01T00:00:00Z"),
        grant_body("bob", "Reader", &utc(unix_now())),
    ];
    for body in &bad {
        let reply = h.delegated_grant(&admin, body).await;
        assert_eq!(reply.status, 400, "{body}");
        let content_type = reply.headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert!(!reply.body.is_empty(), "a short reason: {body}");
    }
    let past = h
        .delegated_grant(&admin, &grant_body("bob", "Reader", "2001-01-01T00:00:00Z"))
        .await;
    assert_eq!(past.body, "Expiration is in the past\n");
    assert!(h.sim.grants().is_empty());
    let put = h.send(Method::PUT, GRANT, &[], "").await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers["allow"], "GET, POST");
}

#[tokio::test]
async fn every_successful_grant_is_listed() {
    let h = Harness::start(|_| {}).await;
    let admin_token = h.token(&["Administrator"]);
    let own = h.self_grant(&h.cookie("admin").await).await.json();
    let delegated = h
        .delegated_grant(
            &admin_token,
            &grant_body("bob", "Reader, Operator", EXPIRATION),
        )
        .await
        .json();
    assert_eq!(
        h.delegated_grant(&h.token(&["Reader"]), "{}").await.status,
        403
    );
    assert_eq!(h.self_grant("").await.status, 401);

    let grants = h.sim.grants();
    assert_eq!(grants.len(), 2, "{grants:?}");
    let (first, second) = (&grants[0], &grants[1]);
    assert_eq!(first.form, GrantForm::Session);
    assert_eq!(
        (first.identity.as_str(), first.roles.as_slice()),
        ("admin", ["Administrator".to_owned()].as_slice())
    );
    assert_eq!(Some(first.id), own["id"].as_u64());
    let own_claims = claims(own["token"].as_str().unwrap());
    assert_eq!(first.hash, own_claims.hash);
    assert_eq!(
        first.expires,
        UNIX_EPOCH + Duration::from_secs(own_claims.expires)
    );
    assert_eq!(first.created + Duration::from_secs(YEAR), first.expires);

    assert_eq!(second.form, GrantForm::Delegated);
    assert_eq!(second.identity, "bob");
    assert_eq!(second.roles, ["Reader", "Operator"]);
    assert_eq!(
        second.expires,
        UNIX_EPOCH + Duration::from_secs(EXPIRATION_UNIX)
    );
    assert_eq!(Some(second.id), delegated["id"].as_u64());

    let own_token = own["token"].as_str().unwrap();
    assert_eq!(h.usersession_status(own_token).await, 200);
    h.sim.revoke(&first.hash);
    assert_eq!(
        h.usersession_status(own_token).await,
        401,
        "the hash revokes it"
    );
    assert_eq!(
        h.sim.recorder().count(GRANT),
        4,
        "every request is recorded too"
    );
}
