//! Micro benchmarks of the pure request-path pieces: path normalization
//! (typical and hostile), route matching with 5/50/500 routes, cookie
//! extraction with the cache key, and the request-head rewrite, plus the
//! three together for one typical request (budget: under 2 µs).
//!
//! Run: `cargo bench --bench pipeline` (criterion; add `-- --quick` for a
//! short run). Figures are medians; compare within one run only.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use psu_gateway::pipeline::rewrite::{rewrite_head, HeadRewrite};
use psu_gateway::rules::cookies::{extract_session, join_cookie_fields, SessionLookup};
use psu_gateway::rules::headers;
use psu_gateway::rules::path::{normalize_path, route_key};
use psu_gateway::rules::routes::{Access, ClientCredentials, PathPattern, Route, RouteTable};

const SESSION: &str = ".AspNetCore.Identity.Application";

fn table(n: usize) -> RouteTable {
    let mut routes = vec![Route {
        name: "usersession".into(),
        pattern: PathPattern::Exact("/api/v1/usersession".into()),
        methods: Some(vec![Method::GET]),
        access: Access::Inject,
        roles: vec![],
        client_credentials: ClientCredentials::Strip,
        rate_limit: None,
    }];
    for i in 1..n {
        let pattern = if i % 2 == 0 {
            PathPattern::Exact(format!("/api/v1/endpoint{i}"))
        } else {
            PathPattern::Prefix(format!("/apps/app{i}"))
        };
        routes.push(Route {
            name: format!("r{i}"),
            pattern,
            methods: None,
            access: Access::Session,
            roles: vec![],
            client_credentials: ClientCredentials::Strip,
            rate_limit: None,
        });
    }
    RouteTable::new(routes).expect("no conflicts")
}

fn request_headers(cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("host", "psu.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
        ),
        ("accept", "application/json"),
        ("accept-language", "en-GB,en;q=0.9"),
        ("cookie", cookie),
        ("x-forwarded-for", "10.0.0.9"),
        ("authorization", "Bearer client"),
        ("connection", "keep-alive"),
        ("sec-fetch-site", "same-origin"),
    ] {
        h.append(
            HeaderName::from_static(n),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The pipeline's rewrite of one request on an inject route: the Cookie
/// fields joined (step 6), then `rewrite_head` in place (step 10).
fn rewrite(
    mut h: HeaderMap,
    route: &Route,
    names: &[String],
    credential: &HeaderValue,
    request_id: &HeaderValue,
) -> HeaderMap {
    let cookie = join_cookie_fields(h.get_all("cookie")).ok().flatten();
    let plan = HeadRewrite {
        route,
        keep_te_trailers: false,
        trusted_peer: false,
        session_cookies: names,
        credential_header: Some(&headers::X_PSU_AUTHORIZATION),
        peer: IpAddr::from([203, 0, 113, 7]),
        host: "psu.example.com",
        upstream_host: HeaderValue::from_str("psu.example.com").unwrap(),
        request_id,
        token: Some(credential),
    };
    rewrite_head(&mut h, cookie, plan);
    h
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_path");
    for (label, path) in [
        ("typical", "/api/v1/usersession"),
        ("encoded", "/api/v1/%75ser%73ession/%E2%82%AC;x"),
        ("hostile", "/api/v1/%2e%2E/%C0%AE/usersession"),
        (
            "long",
            "/apps/dashboard/pages/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/0123456789",
        ),
    ] {
        group.bench_function(label, |b| b.iter(|| normalize_path(black_box(path))));
    }
    group.finish();

    let mut group = c.benchmark_group("route_match");
    for n in [5, 50, 500] {
        let t = table(n);
        let key = route_key("/api/v1/usersession").unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| t.find(black_box(&key), &Method::GET).is_some())
        });
    }
    group.finish();

    let names = vec![SESSION.to_owned()];
    let value = "CfDJ8".to_owned() + &"x".repeat(600);
    let cookie = format!("theme=dark; {SESSION}={value}; lang=en");
    c.bench_function("cookie_extract_and_key", |b| {
        b.iter(|| match extract_session(black_box(&cookie), &names) {
            Ok(SessionLookup::Present(s)) => s.cache_key(),
            _ => unreachable!(),
        })
    });

    let h = request_headers(&cookie);
    let credential = HeaderValue::from_static(
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQb3dlclNoZWxsVW5pdmVyc2FsIn0.sig",
    );
    let request_id = HeaderValue::from_static("4f0c2b1e9d8a4c7b8e6f5a4b3c2d1e0f");
    // The pipeline rewrites the request's own map; each iteration gets a
    // fresh copy, made outside the timing.
    let t = table(50);
    let inject = t
        .find(&route_key("/api/v1/usersession").unwrap(), &Method::GET)
        .unwrap();
    c.bench_function("header_rewrite", |b| {
        b.iter_batched(
            || h.clone(),
            |h| rewrite(h, inject, &names, &credential, &request_id),
            BatchSize::SmallInput,
        )
    });

    c.bench_function("normalize_match_rewrite_typical", |b| {
        b.iter_batched(
            || h.clone(),
            |h| {
                let path = normalize_path(black_box("/api/v1/usersession")).unwrap();
                let key = route_key(&path).unwrap();
                let route = t.find(&key, &Method::GET).unwrap();
                let h = rewrite(h, route, &names, &credential, &request_id);
                (route.access, h.len())
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
