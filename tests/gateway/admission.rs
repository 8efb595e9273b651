//! Admission control: no client turns cheap requests into PSU work. Each
//! test counts what the simulator actually received or had in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;

use crate::support::*;

const ACCESSIBLE: &str = "/api/v1/accessible";

/// A fresh, shape-valid cookie value nobody signed in with.
fn random_session() -> String {
    forged_session(&uuid::Uuid::new_v4().simple().to_string())
}

/// GET over an already connected client, so a flood reuses connections as
/// an attacker's client would.
async fn get_on(client: &TestClient, stack: &Stack, path: &str, cookie: &str) -> Reply {
    let request = Request::get(stack.url(path))
        .header("cookie", cookie)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("gateway answered within 20s")
        .expect("request failed");
    Reply::read(response).await
}

fn assert_retry_after(reply: &Reply, status: u16) {
    reply.assert_problem(status);
    let secs: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&secs), "Retry-After {secs}");
}

fn rejections(stack: &Stack, reason: &str) -> u64 {
    let scrape = stack.live().metrics().encode();
    let line = format!("psu_gateway_rejections_total{{reason=\"{reason}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_random_cookie_flood_is_held_to_the_miss_budget_while_a_signed_in_user_is_served() {
    let stack = Arc::new(
        Setup::default()
            .edit(
                "roles_pointer = \"/roles\"",
                "roles_pointer = \"/roles\"\nmiss_rate = \"5/s\"",
            )
            .start()
            .await,
    );
    let user = stack.sign_in("admin", "admin").await;
    assert_eq!(
        stack
            .get("/api/v1/usersession", &[("cookie", &user)])
            .await
            .status,
        200
    );
    let before = stack.introspections();

    let started = Instant::now();
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move {
                let client = stack.client(Proto::H1);
                let mut statuses = Vec::new();
                for _ in 0..50 {
                    let cookie = format!("{SESSION_COOKIE}={}", random_session());
                    let reply = get_on(&client, &stack, "/api/v1/usersession", &cookie).await;
                    if reply.status == StatusCode::TOO_MANY_REQUESTS {
                        assert_retry_after(&reply, 429);
                    }
                    statuses.push(reply.status.as_u16());
                }
                statuses
            })
        })
        .collect();
    let served = {
        let stack = stack.clone();
        tokio::spawn(async move {
            let client = stack.client(Proto::H1);
            let mut statuses = Vec::new();
            for _ in 0..40 {
                statuses.push(
                    get_on(&client, &stack, "/api/v1/usersession", &user)
                        .await
                        .status,
                );
            }
            statuses
        })
    };
    let mut flooded = Vec::new();
    for task in flood {
        flooded.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let user_statuses = served.await.unwrap();
    assert!(user_statuses.iter().all(|s| *s == 200), "{user_statuses:?}");

    let asked = stack.introspections() - before;
    // Burst twice the rate, then the rate.
    let budget = 10 + (5.0 * elapsed.as_secs_f64()).ceil() as usize;
    assert!(
        asked <= budget,
        "{asked} introspections for 200 random cookies in {elapsed:?}; budget {budget}"
    );
    let throttled = flooded.iter().filter(|s| **s == 429).count();
    assert_eq!(
        throttled + asked,
        200,
        "every flood request was introspected (401) or refused (429)"
    );
    assert!(
        flooded.iter().all(|s| *s == 401 || *s == 429),
        "{flooded:?}"
    );
    assert_eq!(rejections(&stack, "miss_rate"), throttled as u64);
}

#[tokio::test]
async fn malformed_cookie_values_are_never_introspected_and_any_introspects_them() {
    let values = [
        "forged".to_owned(),
        format!("CfDJ8{}", "A".repeat(20)),
        format!("{}=", forged_session("padded")),
        format!("{}+/", forged_session("notbase64url")),
        format!("X{}", forged_session("wrongmagic")),
    ];
    let strict = Setup::default().start().await;
    for value in &values {
        let cookie = format!("{SESSION_COOKIE}={value}");
        strict
            .get("/api/v1/usersession", &[("cookie", &cookie)])
            .await
            .assert_problem(401);
    }
    assert_eq!(strict.introspections(), 0, "a malformed value reached PSU");
    assert_eq!(rejections(&strict, "cookie_shape"), values.len() as u64);
    // The simulator's own cookies have the real shape.
    let user = strict.sign_in("admin", "admin").await;
    assert_eq!(
        strict
            .get("/api/v1/usersession", &[("cookie", &user)])
            .await
            .status,
        200
    );
    assert_eq!(strict.introspections(), 1);

    let any = Setup::default()
        .edit(
            "roles_pointer = \"/roles\"",
            "roles_pointer = \"/roles\"\ncookie_shape = \"any\"",
        )
        .start()
        .await;
    for value in &values {
        let cookie = format!("{SESSION_COOKIE}={value}");
        any.get("/api/v1/usersession", &[("cookie", &cookie)])
            .await
            .assert_problem(401);
    }
    assert_eq!(any.introspections(), values.len());
}

#[tokio::test]
async fn introspections_in_flight_never_exceed_the_cap() {
    let stack = Arc::new(
        Setup::default()
            .sim(|o| o.introspect_delay = Duration::from_millis(150))
            .edit(
                "roles_pointer = \"/roles\"",
                "roles_pointer = \"/roles\"\nmax_inflight_introspections = 2\nmiss_rate = \"1000/s\"\nintrospect_timeout = \"20s\"",
            )
            .start()
            .await,
    );
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move {
                let cookie = format!("{SESSION_COOKIE}={}", random_session());
                stack.get("/sim/echo", &[("cookie", &cookie)]).await.status
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 401);
    }
    assert_eq!(stack.introspections(), 12);
    let most = stack.sim.recorder().concurrency.most_in_flight(ACCESSIBLE);
    assert_eq!(most, 2, "introspections in flight at PSU at once");
}

#[tokio::test]
async fn misses_beyond_a_full_introspection_cap_are_503_and_hits_are_still_served() {
    // Each introspection takes 800 ms and a miss waits at most 2 s for the
    // one place: of 8 misses at once, about 3 get an answer in time.
    let stack = Arc::new(
        Setup::default()
            .sim(|o| o.introspect_delay = Duration::from_millis(800))
            .edit(
                "roles_pointer = \"/roles\"",
                "roles_pointer = \"/roles\"\nmax_inflight_introspections = 1\nintrospect_timeout = \"2s\"",
            )
            .start()
            .await,
    );
    let user = stack.sign_in("admin", "admin").await;
    assert_eq!(
        stack.get("/sim/echo", &[("cookie", &user)]).await.status,
        200
    );
    let misses: Vec<_> = (0..8)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move {
                let cookie = format!("{SESSION_COOKIE}={}", random_session());
                stack.get("/sim/echo", &[("cookie", &cookie)]).await
            })
        })
        .collect();
    // While the place is taken, a cached session is answered at once.
    stack.sim.recorder().arrived(ACCESSIBLE, 2).await;
    assert_eq!(
        stack.get("/sim/echo", &[("cookie", &user)]).await.status,
        200
    );
    let (mut answered, mut busy) = (0, 0);
    for task in misses {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            401 => answered += 1,
            503 => {
                assert_retry_after(&reply, 503);
                busy += 1;
            }
            other => panic!("status {other}"),
        }
    }
    assert!(busy >= 4, "{busy} of 8 misses were refused");
    assert_eq!(rejections(&stack, "introspection_busy"), busy);
    assert_eq!(
        stack.introspections(),
        1 + answered as usize,
        "a refused miss reached PSU"
    );
    assert_eq!(
        stack.sim.recorder().concurrency.most_in_flight(ACCESSIBLE),
        1
    );
}

#[tokio::test]
async fn upstream_requests_in_flight_never_exceed_the_cap_and_the_queue_answers_503() {
    const SLOW: &str = "/sim/status/200";
    let stack = Arc::new(
        Setup::default()
            .edit(
                "url = \"{upstream}\"",
                "url = \"{upstream}\"\nmax_inflight = 2\nqueue_timeout = \"300ms\"",
            )
            .start()
            .await,
    );
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let stack = stack.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let reply = stack.get(&format!("{SLOW}?delay_ms=2000"), &[]).await;
                (reply, started.elapsed())
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let (reply, took) = task.await.unwrap();
        match reply.status.as_u16() {
            200 => ok += 1,
            503 => {
                assert_retry_after(&reply, 503);
                assert!(
                    took < Duration::from_millis(1900),
                    "the 503 waited for PSU: {took:?}"
                );
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!(ok, 2);
    assert_eq!(
        stack.upstream_saw(SLOW).len(),
        2,
        "queued requests never reached PSU"
    );
    assert_eq!(stack.sim.recorder().concurrency.most_in_flight(SLOW), 2);
    assert_eq!(rejections(&stack, "upstream_busy"), 4);
}

#[tokio::test]
async fn the_sign_in_route_rate_limit_stops_password_guessing() {
    let stack = Setup::default()
        .edit(
            "name = \"signin\"",
            "name = \"signin\"\nrate_limit = \"3/m\"",
        )
        .start()
        .await;
    let guess =
        |password: &str| serde_json::json!({"username": "admin", "password": password}).to_string();
    let mut statuses = Vec::new();
    for attempt in 0..5 {
        let reply = stack
            .send_with(
                Proto::H1,
                Method::POST,
                "/api/v1/signin",
                &[("content-type", "application/json")],
                Bytes::from(guess(&format!("guess-{attempt}"))),
            )
            .await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert_retry_after(&reply, 429);
            let secs: u64 = reply.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                secs >= 10,
                "3/m refills one guess every 20 s, not after {secs} s"
            );
        }
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    assert_eq!(stack.upstream_saw("/api/v1/signin").len(), 3);
    assert_eq!(rejections(&stack, "rate_limit"), 2);
}

/// Waits until the gateway counts `n` open connections (it notices a
/// client's close a moment after the client sees it).
async fn until_open(stack: &Stack, n: i64) {
    let gauge = &stack.live().metrics().active_connections;
    tokio::time::timeout(Duration::from_secs(10), async {
        while gauge.get() != n {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} open connections, expected {n}", gauge.get()));
}

#[tokio::test]
async fn connections_beyond_the_per_client_cap_are_closed_and_come_back_after_one_closes() {
    let stack = Setup::default()
        .edit(
            "[upstream]",
            "[limits]\nmax_connections_per_client = 2\n\n[upstream]",
        )
        .start()
        .await;
    let request = b"GET /sim/status/204 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut first = stack.connect().await;
    let mut second = stack.connect().await;
    for stream in [&mut first, &mut second] {
        tokio::io::AsyncWriteExt::write_all(stream, request)
            .await
            .unwrap();
        assert_eq!(raw_status(&read_response(stream).await), 204);
    }
    // The third is closed before its TLS handshake completes.
    let mut tls = client_tls(stack.ca());
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(stack.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    assert!(
        connector.connect(name, tcp).await.is_err(),
        "a third connection was served"
    );
    let scrape = stack.live().metrics().encode();
    assert!(
        scrape.contains("psu_gateway_client_connections_refused_total 1\n"),
        "{scrape}"
    );

    drop(first);
    until_open(&stack, 1).await;
    let mut third = stack.connect().await;
    tokio::io::AsyncWriteExt::write_all(&mut third, request)
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut third).await), 204);
}
