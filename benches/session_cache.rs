//! Session-cache hit: `SessionAuth::authenticate` for cookies PSU already
//! confirmed, alone and with a second thread hitting the cache at the same
//! time (budget: under 300 ns). The cache is filled by one real
//! introspection against the simulator on loopback.
//!
//! Run: `cargo bench --bench session_cache` (add `-- --quick` for a short
//! run). Figures are medians; compare within one run only.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderValue;
use psu_gateway::config::{Session, Upstream, UpstreamProtocol, WindowsAuth};
use psu_gateway::pipeline::session::{IntrospectionContext, SessionAuth};
use psu_gateway::rules::cookies::{extract_session, SessionCookies, SessionLookup};
use psu_gateway::sim::{Sim, SimOptions};
use psu_gateway::transport::upstream::UpstreamClient;

const SESSION: &str = ".AspNetCore.Identity.Application";

struct Fixture {
    auth: Arc<SessionAuth>,
    cookies: SessionCookies,
    _sim: Sim,
}

fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    rt.block_on(async {
        let sim = Sim::spawn(
            SimOptions::default(),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        )
        .await
        .unwrap();
        let upstream = UpstreamClient::new(
            &Upstream {
                scheme: http::uri::Scheme::HTTP,
                authority: sim.addr().to_string().parse().unwrap(),
                protocol: UpstreamProtocol::Http1,
                ca: vec![],
                server_name: None,
                connect_timeout: Duration::from_secs(3),
                pool_idle_timeout: Duration::from_secs(90),
                pool_max_idle: 8,
                preserve_host: true,
                max_inflight: 512,
                queue_timeout: Duration::from_secs(2),
                windows_auth: WindowsAuth::Pin,
                max_pinned: 1000,
            },
            Default::default(),
        )
        .unwrap();
        let session = Session {
            cookies: vec![SESSION.to_owned()],
            introspect_path: http::uri::PathAndQuery::from_static("/api/v1/accessible"),
            identity_pointer: Some("/identity".into()),
            roles_pointer: Some("/roles".into()),
            cache_ttl: Duration::from_secs(3600),
            negative_cache_ttl: Duration::from_secs(5),
            cache_max_entries: 100_000,
            introspect_timeout: Duration::from_secs(2),
            cookie_shape: psu_gateway::config::CookieShape::Any,
            max_inflight_introspections: 32,
            miss_rate: psu_gateway::rate::parse_rate("1000000/s").unwrap(),
        };
        let auth = Arc::new(SessionAuth::new(session, upstream, Default::default()));
        let signin =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>()
                .request(
                    http::Request::post(format!("http://{}/api/v1/signin", sim.addr()))
                        .header("content-type", "application/json")
                        .body(r#"{"username":"admin","password":"admin"}"#.into())
                        .unwrap(),
                )
                .await
                .unwrap();
        let set_cookie = signin.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let SessionLookup::Present(cookies) =
            extract_session(&set_cookie, &[SESSION.to_owned()]).unwrap()
        else {
            panic!("no session cookie")
        };
        let id = HeaderValue::from_static("bench");
        let ctx = IntrospectionContext {
            peer: "127.0.0.1".parse().unwrap(),
            host: "localhost",
            upstream_host: "localhost",
            request_id: &id,
        };
        auth.authenticate(&cookies, &ctx)
            .await
            .expect("first call introspects");
        Fixture {
            auth,
            cookies,
            _sim: sim,
        }
    })
}

/// `iters` cache hits, timed inside one task so no runtime entry is counted.
fn hits(rt: &tokio::runtime::Runtime, f: &Fixture, iters: u64) -> Duration {
    rt.block_on(async {
        let id = HeaderValue::from_static("bench");
        let ctx = IntrospectionContext {
            peer: "127.0.0.1".parse().unwrap(),
            host: "localhost",
            upstream_host: "localhost",
            request_id: &id,
        };
        let start = Instant::now();
        for _ in 0..iters {
            black_box(
                f.auth
                    .authenticate(black_box(&f.cookies), &ctx)
                    .await
                    .unwrap(),
            );
        }
        start.elapsed()
    })
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = fixture(&rt);
    // The SHA-256 cache key alone, the part of a hit that grows with the cookie.
    c.bench_function("session_cache_key", |b| {
        b.iter(|| black_box(&f.cookies).cache_key())
    });
    c.bench_function("session_cache_hit", |b| {
        b.iter_custom(|iters| hits(&rt, &f, iters))
    });

    // A second thread hammering the same entry while this one measures.
    let stop = Arc::new(AtomicBool::new(false));
    let contender = {
        let (stop, auth, cookies) = (stop.clone(), f.auth.clone(), f.cookies.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let id = HeaderValue::from_static("contender");
                let ctx = IntrospectionContext {
                    peer: "127.0.0.1".parse().unwrap(),
                    host: "localhost",
                    upstream_host: "localhost",
                    request_id: &id,
                };
                while !stop.load(Ordering::Relaxed) {
                    black_box(auth.authenticate(&cookies, &ctx).await.unwrap());
                }
            });
        })
    };
    c.bench_function("session_cache_hit_2_threads", |b| {
        b.iter_custom(|iters| hits(&rt, &f, iters))
    });
    stop.store(true, Ordering::Relaxed);
    contender.join().unwrap();
}

criterion_group!(session_cache, benches);
criterion_main!(session_cache);
