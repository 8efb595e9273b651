//! Per-user credentials: each user's request reaches PSU with that user's
//! own token, granted by PSU and cached; the simulator records every grant
//! and checks the presented token's roles.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use psu_gateway::sim::{verify_token, GrantForm, SimUser, DEV_SIGNING_KEY};

use crate::support::*;

const USERSESSION: &str = "/api/v1/usersession";

/// The base config in per-user mode with `grant = "session"`: no token of
/// the gateway's own.
fn session_grant() -> Setup {
    Setup::default()
        .edit(
            "token_file = \"app-token\"",
            "mode = \"per-user\"\ngrant = \"session\"",
        )
        .sim(|o| {
            o.users
                .push(SimUser::new("alice", "alice", &["Administrator"]))
        })
}

/// The one credential PSU received on `request`, decoded with the
/// simulator's key: whose token it was.
fn presented(request: &psu_gateway::sim::RecordedRequest) -> psu_gateway::sim::TokenClaims {
    let sent = header(request, "x-psu-authorization");
    assert_eq!(sent.len(), 1, "exactly one credential header");
    assert!(header(request, "authorization").is_empty());
    assert!(
        header(request, "cookie").is_empty(),
        "the session cookie was forwarded"
    );
    let token = sent[0].strip_prefix("Bearer ").expect("Bearer");
    verify_token(DEV_SIGNING_KEY.as_bytes(), token, SystemTime::now()).expect("a valid token")
}

#[tokio::test]
async fn each_user_reaches_psu_with_their_own_token_and_forged_ones_are_stripped() {
    let stack = session_grant().start().await;
    let admin = stack.sign_in("admin", "admin").await;
    let alice = stack.sign_in("alice", "alice").await;
    for round in 0..6 {
        let (who, cookie) = if round % 2 == 0 {
            ("admin", &admin)
        } else {
            ("alice", &alice)
        };
        let reply = stack
            .get(
                USERSESSION,
                &[
                    ("cookie", cookie),
                    ("x-psu-authorization", "Bearer forged"),
                    ("authorization", "Bearer forged"),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "{who}: {:?}", reply.body);
        let seen = stack.upstream_saw(USERSESSION);
        let claims = presented(seen.last().unwrap());
        assert_eq!(claims.identity, who, "round {round}");
        assert_eq!(claims.roles, ["Administrator"]);
    }
    let grants = stack.sim.grants();
    assert_eq!(grants.len(), 2, "one grant per user: {grants:?}");
    assert!(grants.iter().all(|g| g.form == GrantForm::Session));
    // The grant call carried only the user's session cookie.
    for grant in stack.upstream_saw("/api/v1/apptoken/grant") {
        assert!(header(&grant, "x-psu-authorization").is_empty());
        assert!(header(&grant, "cookie")[0].starts_with(SESSION_COOKIE));
    }
    let scrape = stack.live().metrics().encode();
    assert!(
        scrape.contains("psu_gateway_grants_total{outcome=\"granted\"} 2\n"),
        "{scrape}"
    );
    assert!(scrape.contains("psu_gateway_minted_tokens 2\n"), "{scrape}");
    assert!(
        !scrape.contains(&claims_token(&stack)),
        "a token in the metrics"
    );
}

/// Any token PSU granted, to search for where it must not be.
fn claims_token(stack: &Stack) -> String {
    let seen = stack.upstream_saw(USERSESSION);
    header(&seen[0], "x-psu-authorization")[0]["Bearer ".len()..].to_owned()
}

#[tokio::test]
async fn a_hundred_concurrent_first_requests_make_one_grant() {
    let stack = Arc::new(session_grant().start().await);
    let admin = Arc::new(stack.sign_in("admin", "admin").await);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (stack, admin) = (stack.clone(), admin.clone());
            tokio::spawn(async move { stack.get(USERSESSION, &[("cookie", &admin)]).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(stack.sim.grants().len(), 1);
    for _ in 0..5 {
        assert_eq!(
            stack.get(USERSESSION, &[("cookie", &admin)]).await.status,
            200
        );
    }
    assert_eq!(stack.sim.grants().len(), 1, "reused within token_ttl");
}

#[tokio::test]
async fn a_token_whose_exp_is_near_is_not_reused() {
    // PSU grants 20 s tokens: closer than 30 s to exp from the start.
    let stack = session_grant()
        .sim(|o| o.grant_ttl = Duration::from_secs(20))
        .start()
        .await;
    let admin = stack.sign_in("admin", "admin").await;
    for _ in 0..3 {
        assert_eq!(
            stack.get(USERSESSION, &[("cookie", &admin)]).await.status,
            200
        );
    }
    assert_eq!(stack.sim.grants().len(), 3);
}

#[tokio::test]
async fn psu_applies_each_users_roles_a_readers_own_token_gets_403() {
    let stack = session_grant()
        .edit("roles = [\"Administrator\"]\n", "")
        .start()
        .await;
    let reader = stack.sign_in("reader", "reader").await;
    let reply = stack.get(USERSESSION, &[("cookie", &reader)]).await;
    // PSU's own answer, not the gateway's: the token was the reader's.
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let claims = presented(&stack.upstream_saw(USERSESSION)[0]);
    assert_eq!(
        (claims.identity.as_str(), claims.roles.as_slice()),
        ("reader", &["Reader".to_owned()][..])
    );
}

#[tokio::test]
async fn psu_refusing_the_grant_is_403_and_nothing_is_forwarded() {
    let stack = session_grant()
        .edit("roles = [\"Administrator\"]\n", "")
        .sim(|o| o.self_grant_roles = vec!["Administrator".to_owned()])
        .start()
        .await;
    let reader = stack.sign_in("reader", "reader").await;
    for _ in 0..2 {
        stack
            .get(USERSESSION, &[("cookie", &reader)])
            .await
            .assert_problem(403);
    }
    assert!(stack.upstream_saw(USERSESSION).is_empty());
    assert_eq!(
        stack.upstream_saw("/api/v1/apptoken/grant").len(),
        1,
        "the refusal is negative-cached"
    );
}

#[tokio::test]
async fn a_failing_grant_is_503_with_retry_after_and_never_cached() {
    let stack = session_grant()
        .edit(
            "grant = \"session\"",
            "grant = \"session\"\ngrant_path = \"/sim/status/502\"",
        )
        .start()
        .await;
    let admin = stack.sign_in("admin", "admin").await;
    for _ in 0..2 {
        let reply = stack.get(USERSESSION, &[("cookie", &admin)]).await;
        reply.assert_problem(503);
        assert!(reply.headers.contains_key("retry-after"));
    }
    assert_eq!(
        stack.upstream_saw("/sim/status/502").len(),
        2,
        "a failure is not cached"
    );
    assert!(stack.upstream_saw(USERSESSION).is_empty());
}

/// Delegated: the gateway's Administrator token asks for the user's token.
fn delegated(grant_roles: &str) -> Setup {
    Setup::default()
        .edit(
            "token_file = \"app-token\"",
            &format!("token_file = \"app-token\"\nmode = \"per-user\"\ngrant = \"delegated\"\ntoken_ttl = \"10m\"\n{grant_roles}"),
        )
}

#[tokio::test]
async fn a_delegated_grant_names_the_user_keeps_the_roles_and_asks_for_the_ttl() {
    let stack = delegated("grant_roles = [\"Administrator\", \"Operator\"]")
        .start()
        .await;
    let admin = stack.sign_in("admin", "admin").await;
    let asked = SystemTime::now();
    assert_eq!(
        stack.get(USERSESSION, &[("cookie", &admin)]).await.status,
        200
    );
    let grants = stack.sim.grants();
    assert_eq!(grants.len(), 1);
    let grant = &grants[0];
    assert_eq!(grant.form, GrantForm::Delegated);
    assert_eq!(grant.identity, "admin");
    assert_eq!(
        grant.roles,
        ["Administrator"],
        "kept to grant_roles the user holds"
    );
    let ttl = grant.expires.duration_since(asked).unwrap();
    assert!(
        ttl > Duration::from_secs(590) && ttl <= Duration::from_secs(601),
        "{ttl:?}"
    );
    // The granting token went to grant_path and nowhere else.
    let granting = bearer(&stack.token);
    let grant_call = &stack.upstream_saw("/api/v1/apptoken/grant")[0];
    assert_eq!(
        header(grant_call, "x-psu-authorization"),
        [granting.as_str()]
    );
    assert!(header(grant_call, "cookie").is_empty());
    let claims = presented(&stack.upstream_saw(USERSESSION)[0]);
    assert_eq!(claims.identity, "admin");
    for request in stack.sim.recorder().requests() {
        if request.path != "/api/v1/apptoken/grant" {
            assert!(
                !header(&request, "x-psu-authorization").contains(&granting.as_str()),
                "the granting token reached {}",
                request.path
            );
        }
    }
}

#[tokio::test]
async fn no_role_left_after_grant_roles_is_403_without_a_grant_call() {
    let stack = delegated("grant_roles = [\"Operator\"]").start().await;
    let admin = stack.sign_in("admin", "admin").await;
    stack
        .get(USERSESSION, &[("cookie", &admin)])
        .await
        .assert_problem(403);
    assert!(stack.upstream_saw("/api/v1/apptoken/grant").is_empty());
    assert!(stack.upstream_saw(USERSESSION).is_empty());
}

#[tokio::test]
async fn the_audit_line_names_the_user_and_the_token_used_and_no_log_holds_a_minted_token() {
    let config = format!("{BASE_CONFIG}{DEFAULT_ROUTES}").replace(
        "token_file = \"app-token\"",
        "mode = \"per-user\"\ngrant = \"session\"",
    );
    let gateway = crate::child::ChildGateway::start_with_log(&config, "debug").await;
    let cookie = gateway.sign_in().await;
    let client = gateway.client(Proto::H1);
    let url = gateway.url(USERSESSION);
    assert_eq!(
        crate::child::status_of(&client, &url, Some(&cookie)).await,
        Ok(200)
    );
    let audit = gateway.wait_log(" audit: ").await;
    let seen = gateway.sim.recorder().requests();
    let sent = seen
        .iter()
        .find(|r| r.path == USERSESSION)
        .expect("forwarded");
    let minted = header(sent, "x-psu-authorization")[0]["Bearer ".len()..].to_owned();
    let fingerprint = psu_gateway::secret::Secret::new(minted.as_str()).fingerprint();
    assert!(audit.contains("identity=\"admin\""), "{audit}");
    assert!(
        audit.contains(&format!("token=\"{fingerprint}\"")),
        "{audit}"
    );
    assert!(audit.contains("credential=\"per-user\""), "{audit}");
    let logs = gateway.log_lines().join("\n");
    assert!(!logs.contains(&minted), "a minted token in the log");
    let value = cookie.split_once('=').unwrap().1;
    assert!(!logs.contains(value), "a cookie value in the log");
}

#[tokio::test]
async fn a_grant_outage_is_503_then_the_first_request_after_it_succeeds() {
    let stack = session_grant().sim(|o| o.failing_grants = 2).start().await;
    let admin = stack.sign_in("admin", "admin").await;
    for _ in 0..2 {
        let reply = stack.get(USERSESSION, &[("cookie", &admin)]).await;
        reply.assert_problem(503);
        assert!(reply.headers.contains_key("retry-after"));
    }
    assert!(stack.upstream_saw(USERSESSION).is_empty());
    // PSU has recovered: no failure was cached, the next request is granted.
    assert_eq!(
        stack.get(USERSESSION, &[("cookie", &admin)]).await.status,
        200
    );
    assert_eq!(stack.upstream_saw("/api/v1/apptoken/grant").len(), 3);
    assert_eq!(stack.sim.grants().len(), 1);
}

#[tokio::test]
async fn reuse_stops_at_token_ttl() {
    let ttl = Duration::from_secs(1);
    let stack = session_grant()
        .edit(
            "grant = \"session\"",
            "grant = \"session\"\ntoken_ttl = \"1s\"",
        )
        .start()
        .await;
    let admin = stack.sign_in("admin", "admin").await;
    let granted_at = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(
            stack.get(USERSESSION, &[("cookie", &admin)]).await.status,
            200
        );
    }
    assert_eq!(stack.sim.grants().len(), 1, "reused within token_ttl");
    // Waits out the ttl itself: the behaviour under test is time passing.
    tokio::time::sleep((ttl + Duration::from_millis(200)).saturating_sub(granted_at.elapsed()))
        .await;
    assert_eq!(
        stack.get(USERSESSION, &[("cookie", &admin)]).await.status,
        200
    );
    assert_eq!(
        stack.sim.grants().len(),
        2,
        "a new grant once token_ttl passed"
    );
}
