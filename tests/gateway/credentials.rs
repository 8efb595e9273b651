//! What happens to credentials a client sends itself, per route access.

use crate::support::*;

#[tokio::test]
async fn inject_route_replaces_client_credentials() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let reply = stack
        .get(
            "/api/v1/usersession",
            &[
                ("cookie", &cookie),
                ("AUTHORIZATION", "Bearer client-token"),
                ("x-Psu-Authorization", "Bearer forged"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = stack.upstream_saw("/api/v1/usersession");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        header(&seen[0], "x-psu-authorization"),
        [bearer(&stack.token)]
    );
    assert!(header(&seen[0], "authorization").is_empty());
}

#[tokio::test]
async fn session_route_removes_client_credentials_and_keeps_the_cookie() {
    let stack = Setup::default().start().await;
    let cookie = stack.sign_in("admin", "admin").await;
    let reply = stack
        .get(
            "/sim/echo",
            &[
                ("cookie", &format!("{cookie}; theme=dark")),
                ("Authorization", "Bearer x"),
                ("X-PSU-AUTHORIZATION", "Bearer y"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = stack.upstream_saw("/sim/echo");
    assert_eq!(seen.len(), 1);
    assert!(header(&seen[0], "authorization").is_empty());
    assert!(header(&seen[0], "x-psu-authorization").is_empty());
    assert_eq!(
        header(&seen[0], "cookie"),
        [format!("{cookie}; theme=dark")]
    );
}

#[tokio::test]
async fn public_route_forwards_client_credentials_unchanged() {
    let stack = Setup::default().start().await;
    let reply = stack
        .get(
            "/sim/status/204",
            &[
                ("Authorization", "Bearer script-token"),
                ("x-psu-authorization", "Bearer other"),
            ],
        )
        .await;
    assert_eq!(reply.status, 204);
    let seen = stack.upstream_saw("/sim/status/204");
    assert_eq!(seen.len(), 1);
    assert_eq!(header(&seen[0], "authorization"), ["Bearer script-token"]);
    assert_eq!(header(&seen[0], "x-psu-authorization"), ["Bearer other"]);
}

#[tokio::test]
async fn public_route_with_strip_removes_them() {
    let stack = Setup::default()
        .edit(
            "prefix = \"/sim/status\"\naccess = \"public\"",
            "prefix = \"/sim/status\"\naccess = \"public\"\nclient_credentials = \"strip\"",
        )
        .start()
        .await;
    let reply = stack
        .get(
            "/sim/status/204",
            &[
                ("Authorization", "Bearer script-token"),
                ("x-psu-authorization", "Bearer other"),
            ],
        )
        .await;
    assert_eq!(reply.status, 204);
    let seen = stack.upstream_saw("/sim/status/204");
    assert!(header(&seen[0], "authorization").is_empty());
    assert!(header(&seen[0], "x-psu-authorization").is_empty());
}

#[tokio::test]
async fn spoofed_forwarding_headers_are_replaced() {
    let stack = Setup::default().start().await;
    let reply = stack
        .get(
            "/sim/status/204",
            &[
                ("x-forwarded-for", "10.9.9.9"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "for=10.9.9.9"),
                ("x-real-ip", "10.9.9.9"),
                ("x-original-url", "/api/v1/usersession"),
                ("x-request-id", "client-chosen"),
                ("connection", "x-forwarded-for, x-request-id"),
            ],
        )
        .await;
    assert_eq!(reply.status, 204);
    let seen = &stack.upstream_saw("/sim/status/204")[0];
    assert_eq!(header(seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header(seen, "x-forwarded-proto"), ["https"]);
    assert_eq!(
        header(seen, "x-forwarded-host"),
        [format!("localhost:{}", stack.addr.port())]
    );
    assert!(
        header(seen, "forwarded").is_empty()
            && header(seen, "x-real-ip").is_empty()
            && header(seen, "x-original-url").is_empty()
    );
    let id = header(seen, "x-request-id");
    assert_eq!(id.len(), 1);
    assert_ne!(id[0], "client-chosen");
    // The gateway's own: a UUIDv4 as 32 lower-case hex digits.
    assert!(
        id[0].len() == 32
            && id[0]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && id[0].as_bytes()[12] == b'4',
        "{}",
        id[0]
    );
}

#[tokio::test]
async fn trusted_proxy_chain_is_kept_and_extended() {
    let stack = Setup::default()
        .edit(
            "[credential]",
            "[forwarding]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\n[credential]",
        )
        .start()
        .await;
    let reply = stack
        .get(
            "/sim/status/204",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-request-id", "lb-42"),
                ("x-forwarded-host", "evil"),
            ],
        )
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.headers["x-request-id"], "lb-42");
    let seen = &stack.upstream_saw("/sim/status/204")[0];
    assert_eq!(header(seen, "x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(header(seen, "x-request-id"), ["lb-42"]);
    assert_eq!(
        header(seen, "x-forwarded-host"),
        [format!("localhost:{}", stack.addr.port())]
    );
}
