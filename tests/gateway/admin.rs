//! The admin listener on a real process: health, readiness that follows
//! PSU, Prometheus metrics whose labels no client can choose.

use std::time::{Duration, Instant};

use crate::child::*;
use crate::support::*;

const ADMIN: &str = "\n[admin]\naddr = \"127.0.0.1:0\"\nprobe_interval = \"100ms\"\n";

fn admin_config() -> String {
    format!("{BASE_CONFIG}{ADMIN}{DEFAULT_ROUTES}")
}

async fn until_admin(gateway: &ChildGateway, path: &str, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = gateway.admin_get(path).await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: wanted {want}, last {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one sample line `name{labels} value` in a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let gateway = ChildGateway::start(&admin_config()).await;
    assert_eq!(
        gateway.admin_get("/healthz").await,
        (200, "ok\n".to_owned())
    );
    until_admin(&gateway, "/readyz", 200).await;

    let cookie = gateway.sign_in().await;
    let client = gateway.client(Proto::H1);
    let h2 = gateway.client(Proto::H2);
    for _ in 0..3 {
        let status = status_of(&client, &gateway.url("/api/v1/usersession"), Some(&cookie)).await;
        assert_eq!(status, Ok(200));
    }
    assert_eq!(
        status_of(&h2, &gateway.url("/api/v1/usersession"), Some(&cookie)).await,
        Ok(200)
    );
    // Refusals of several kinds, with client-chosen text in them.
    let path = "/api/v1/apptoken/secret-path-4711";
    assert_eq!(
        status_of(&client, &gateway.url(path), Some(&cookie)).await,
        Ok(403)
    );
    assert_eq!(
        status_of(&client, &gateway.url("/api/v1/usersession"), None).await,
        Ok(401)
    );
    let forged = &format!(
        ".AspNetCore.Identity.Application={}",
        forged_session("forged-cookie-value-0815")
    );
    assert_eq!(
        status_of(&client, &gateway.url("/api/v1/usersession"), Some(forged)).await,
        Ok(401)
    );
    assert_eq!(
        status_of(&client, &gateway.url("/a/../../etc/passwd"), None).await,
        Ok(400)
    );

    let (status, scrape) = gateway.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let m = |series: &str| sample(&scrape, series);
    assert_eq!(
        m(r#"psu_gateway_requests_total{route="usersession",access="inject",class="2xx"}"#),
        4.0
    );
    assert_eq!(
        m(r#"psu_gateway_requests_total{route="usersession",access="inject",class="4xx"}"#),
        2.0
    );
    assert_eq!(
        m(r#"psu_gateway_requests_total{route="tokens",access="deny",class="4xx"}"#),
        1.0
    );
    assert_eq!(
        m(r#"psu_gateway_requests_total{route="-",access="-",class="4xx"}"#),
        1.0
    );
    assert_eq!(
        m(r#"psu_gateway_injected_requests_total{route="usersession"}"#),
        4.0
    );
    assert_eq!(m(r#"psu_gateway_session_cache_total{outcome="miss"}"#), 2.0);
    assert_eq!(m(r#"psu_gateway_session_cache_total{outcome="hit"}"#), 3.0);
    assert_eq!(
        m(r#"psu_gateway_introspections_total{outcome="valid"}"#),
        1.0
    );
    assert_eq!(
        m(r#"psu_gateway_introspections_total{outcome="invalid"}"#),
        1.0
    );
    assert_eq!(m("psu_gateway_introspection_duration_seconds_count"), 2.0);
    assert_eq!(m(r#"psu_gateway_rejections_total{reason="denied"}"#), 1.0);
    assert_eq!(
        m(r#"psu_gateway_rejections_total{reason="unauthenticated"}"#),
        2.0
    );
    assert_eq!(m(r#"psu_gateway_rejections_total{reason="path"}"#), 1.0);
    // sign-in and the four injected requests went upstream.
    assert_eq!(m("psu_gateway_upstream_duration_seconds_count"), 5.0);
    assert!(m("psu_gateway_active_connections") >= 1.0);
    assert!(m("psu_gateway_token_age_seconds") >= 0.0);
    assert_eq!(m("psu_gateway_tls_handshake_failures_total"), 0.0);
    assert!(scrape.ends_with("# EOF\n"), "{scrape}");
    for secret in [
        gateway.token.as_str(),
        "secret-path-4711",
        "forged-cookie",
        "passwd",
        &cookie[cookie.find('=').unwrap() + 1..],
    ] {
        assert!(!scrape.contains(secret), "{secret} in the scrape");
    }

    // A client that gives up mid-handshake counts as a handshake failure.
    let mut raw = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    drop(raw);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(
        &gateway.admin_get("/metrics").await.1,
        "psu_gateway_tls_handshake_failures_total",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "handshake failure not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Browsers cannot reach the reload endpoint; unknown paths are 404.
    let (status, _) = gateway
        .admin_request("POST", "/reload", "Origin: https://evil.example\r\n")
        .await;
    assert_eq!(status, 403);
    assert_eq!(gateway.admin_request("GET", "/reload", "").await.0, 405);
    assert_eq!(gateway.admin_get("/nope").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_psu_goes_away() {
    let mut gateway = ChildGateway::start(&admin_config()).await;
    until_admin(&gateway, "/readyz", 200).await;
    let sim_addr = gateway.sim.addr();
    // Shut the simulator down (a stand-in takes its place in the struct);
    // its listener and connections close with it.
    let stand_in = psu_gateway::sim::Sim::spawn(
        psu_gateway::sim::SimOptions::default(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    std::mem::replace(&mut gateway.sim, stand_in)
        .shutdown()
        .await;
    assert!(tokio::net::TcpStream::connect(sim_addr).await.is_err());
    let body = until_admin(&gateway, "/readyz", 503).await;
    assert!(body.starts_with("not ready: PSU is unreachable"), "{body}");
    // Still alive, just not ready.
    assert_eq!(gateway.admin_get("/healthz").await.0, 200);
}
