//! The scenarios: each starts a fresh gateway, drives it, reads its CPU
//! time and memory from /proc, then drives the upstream the same way for
//! the ceiling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::Method;

use crate::client::{self, Plan, Proto, RequestSpec, Target};
use crate::cookie::Cookie;
use crate::procs::{self, GatewaySetup, Process, Tuning};
use crate::report::{self, Row};
use crate::Settings;

pub const SESSION_COOKIE: &str = ".AspNetCore.Identity.Application";

/// What every scenario shares: the upstream, how to start a gateway, the
/// TLS client and the secrets a request carries.
pub struct Fixture {
    pub upstream: Process,
    pub setup: GatewaySetup,
    pub tls: client::Tls,
    /// `Bearer <token>`, what the gateway injects (sent by hand when the
    /// upstream is driven directly).
    pub credential: HeaderValue,
    /// A 600-character session value of PSU's shape, about the size of
    /// PSU's.
    pub session: String,
}

impl Fixture {
    pub fn gateway(&self, process: &Process) -> Target {
        Target {
            addr: process.addr,
            tls: Some(self.tls.clone()),
        }
    }

    fn direct(&self) -> Target {
        Target {
            addr: self.upstream.addr,
            tls: None,
        }
    }

    fn cookie(&self) -> Cookie {
        Cookie::fixed(SESSION_COOKIE, &self.session).expect("the fixture's session has PSU's shape")
    }

    /// What the upstream receives on the inject route: the token, no cookie.
    fn injected(&self, path: &'static str) -> RequestSpec {
        spec(
            path,
            vec![(X_PSU_AUTHORIZATION, self.credential.clone())],
            Cookie::None,
        )
    }
}

const X_PSU_AUTHORIZATION: HeaderName = HeaderName::from_static("x-psu-authorization");

pub fn spec(
    path: &'static str,
    headers: Vec<(HeaderName, HeaderValue)>,
    cookie: Cookie,
) -> RequestSpec {
    RequestSpec {
        method: Method::GET,
        path,
        headers,
        cookie,
        upload: 0,
    }
}

pub fn plan(settings: &Settings, proto: Proto) -> Plan {
    Plan {
        proto,
        connections: settings.connections,
        streams: if proto == Proto::H2 {
            settings.streams
        } else {
            1
        },
        warmup: settings.warmup,
        duration: settings.duration,
        new_connection_per_request: false,
    }
}

/// The inject route with the fixture's one session.
pub fn hit_spec(f: &Fixture) -> RequestSpec {
    spec("/api/v1/usersession", vec![], f.cookie())
}

/// Cache hit on the inject route: one session, checked once, then cached.
pub async fn cache_hit(f: &Fixture, s: &Settings, proto: Proto) -> Result<Row, String> {
    let through = hit_spec(f);
    let direct = f.injected("/api/v1/usersession");
    measure(f, through, direct, plan(s, proto), &[], "").await
}

/// Cache hit on the inject route in per-user mode: the user's own token,
/// granted once (a delegated grant, with the fixture's Administrator token
/// as the granting token), then served from the token cache.
pub async fn per_user_hit(f: &Fixture, s: &Settings) -> Result<Row, String> {
    let through = hit_spec(f);
    let direct = f.injected("/api/v1/usersession");
    let per_user = [
        Tuning {
            section: "credential",
            line: r#"mode = "per-user""#.into(),
            why: "this scenario measures per-user mode against the shared default (hit-h1)",
        },
        Tuning {
            section: "credential",
            line: r#"grant = "delegated""#.into(),
            why: "the config's token file becomes the granting token",
        },
    ];
    measure(
        f,
        through,
        direct,
        plan(s, Proto::H1),
        &per_user,
        "per-user",
    )
    .await
}

/// What the miss scenarios set: they measure what a miss costs, not the
/// admission of misses, and every one of their requests is a miss from
/// one address, the load generator's.
fn unthrottled_misses() -> Tuning {
    Tuning {
        section: "session",
        line: r#"miss_rate = "1000000/s""#.into(),
        why: "every request here is a new session from 127.0.0.1, which the default 20/s (burst 40) would answer 429 within the first second",
    }
}

/// The cache-miss scenario has one introspection per request in flight.
fn introspections_in_flight(n: usize) -> Tuning {
    Tuning {
        section: "session",
        line: format!("max_inflight_introspections = {n}"),
        why:
            "one introspection per request in flight, so that none waits for the default cap of 32",
    }
}

/// Every request a session never seen before: one introspection each,
/// so the gateway makes two upstream requests per request.
pub async fn cache_miss(f: &Fixture, s: &Settings) -> Result<Row, String> {
    let cookie = Cookie::unique(SESSION_COOKIE, &f.session[..584])?;
    let through = spec("/api/v1/usersession", vec![], cookie);
    let tuning = [
        unthrottled_misses(),
        introspections_in_flight(s.connections),
    ];
    let before = stats(f).await?;
    let mut row = through_gateway(f, through, plan(s, Proto::H1), &tuning).await?;
    let after = stats(f).await?;
    row.upstream_rate =
        Some(ceiling(f, f.injected("/api/v1/usersession"), plan(s, Proto::H1)).await);
    let introspections = after.0 - before.0;
    let forwarded = (after.1 - before.1).saturating_sub(introspections);
    row.note = format!(
        "introspections per request {:.3}; {}",
        introspections as f64 / forwarded.max(1) as f64,
        row.note
    );
    Ok(row)
}

/// Public pass-through: no session, no rewrite beyond the forwarding headers.
pub async fn public(f: &Fixture, s: &Settings) -> Result<Row, String> {
    let through = spec("/apps/page", vec![], Cookie::None);
    let direct = spec("/apps/page", vec![], Cookie::None);
    measure(f, through, direct, plan(s, Proto::H1), &[], "").await
}

/// A new TCP and TLS connection (full ECDSA P-256 handshake) per request.
pub async fn handshake(f: &Fixture, s: &Settings) -> Result<Row, String> {
    let plan = Plan {
        new_connection_per_request: true,
        ..plan(s, Proto::H1)
    };
    let through = spec("/apps/page", vec![], Cookie::None);
    let direct = spec("/apps/page", vec![], Cookie::None);
    measure(
        f,
        through,
        direct,
        plan,
        &[],
        "upstream: new TCP connection, no TLS",
    )
    .await
}

/// A body of `settings.body_bytes` streamed down or up, one connection.
pub async fn body(f: &Fixture, s: &Settings, upload: bool) -> Result<Row, String> {
    let plan = Plan {
        connections: 1,
        ..plan(s, Proto::H1)
    };
    let make = || {
        if upload {
            RequestSpec {
                method: Method::POST,
                upload: s.body_bytes,
                ..spec("/sim/sink", vec![], Cookie::None)
            }
        } else {
            let path = format!("/sim/large?bytes={}", s.body_bytes);
            spec(Box::leak(path.into_boxed_str()), vec![], Cookie::None)
        }
    };
    let mut row = measure(f, make(), make(), plan, &[], "").await?;
    let per_second = row.rate.unwrap_or(0.0) * s.body_bytes as f64;
    row.note = format!("{}/s through; {}", report::mib(per_second as u64), row.note);
    Ok(row)
}

/// Drives a fresh gateway, then the upstream, with the same plan.
async fn measure(
    f: &Fixture,
    through: RequestSpec,
    direct: RequestSpec,
    plan: Plan,
    tuning: &[Tuning],
    note: &str,
) -> Result<Row, String> {
    let mut row = through_gateway(f, through, plan, tuning).await?;
    row.upstream_rate = Some(ceiling(f, direct, plan).await);
    if !note.is_empty() {
        row.note = format!("{note}; {}", row.note);
    }
    Ok(row)
}

/// A fresh gateway process driven by `plan`; its CPU time and the upstream
/// connections its pools opened are read at the start and end of the
/// measured window (the note gives those per 1,000 requests).
async fn through_gateway(
    f: &Fixture,
    through: RequestSpec,
    plan: Plan,
    tuning: &[Tuning],
) -> Result<Row, String> {
    let gateway = procs::start_gateway(&f.setup, tuning)?;
    let pid = gateway.pid();
    let admin = gateway.admin;
    let at = |after: Duration| {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let cpu = procs::cpu_time(pid);
            let opened = match admin {
                Some(admin) => counter(admin, UPSTREAM_CONNECTIONS_OPENED).await.ok(),
                None => None,
            };
            (cpu, opened)
        })
    };
    let start = at(plan.warmup);
    let end = at(plan.warmup + plan.duration);
    let outcome = client::run(&f.gateway(&gateway), Arc::new(through), plan).await;
    let ((cpu_start, opened_start), (cpu_end, opened_end)) = (
        start.await.map_err(|e| e.to_string())?,
        end.await.map_err(|e| e.to_string())?,
    );
    let cpu = cpu_start
        .zip(cpu_end)
        .map(|(start, end)| end.saturating_sub(start));
    let requests = outcome.latencies.count();
    let connects = match (opened_start, opened_end) {
        (Some(start), Some(end)) if requests > 0 => format!(
            "upstream connections opened per 1,000 requests {:.2}",
            (end - start) * 1000.0 / requests as f64
        ),
        _ => String::new(),
    };
    Ok(Row {
        rate: Some(outcome.rate()),
        p50: outcome.latencies.quantile(0.5),
        p99: outcome.latencies.quantile(0.99),
        p999: outcome.latencies.quantile(0.999),
        errors: Some(outcome.errors),
        cpu_per_10k: cpu
            .filter(|_| requests > 0)
            .map(|c| c.as_secs_f64() * 10_000.0 / requests as f64),
        peak_rss: procs::memory(pid, "VmHWM"),
        note: connects,
        ..Row::default()
    })
}

/// The same load straight at the upstream: requests per second.
async fn ceiling(f: &Fixture, direct: RequestSpec, plan: Plan) -> f64 {
    client::run(&f.direct(), Arc::new(direct), plan)
        .await
        .rate()
}

/// Single flight: `connections` requests at once with one new session,
/// `rounds` times; PSU must see one introspection per session.
pub async fn miss_burst(f: &Fixture, s: &Settings, rounds: u64) -> Result<Row, String> {
    // The cap on introspections in flight stays the default: single
    // flight leaves one per set.
    let gateway = procs::start_gateway(&f.setup, &[unthrottled_misses()])?;
    let target = f.gateway(&gateway);
    let warm = spec("/apps/page", vec![], Cookie::None);
    let senders = client::hold_idle(&target, &warm, s.connections)
        .await
        .map_err(|e| e.to_string())?;
    let mut senders: Vec<_> = senders.into_iter().map(Some).collect();
    let before = stats(f).await?;
    let mut errors = 0;
    let started = Instant::now();
    for round in 0..rounds {
        let value = format!("{}-burst-{round}", &f.session[..580]);
        let cookie = Cookie::fixed(SESSION_COOKIE, &value)?;
        let spec = Arc::new(spec("/api/v1/usersession", vec![], cookie));
        let tasks: Vec<_> = senders
            .iter_mut()
            .filter_map(Option::take)
            .map(|mut sender| {
                let spec = spec.clone();
                tokio::spawn(async move {
                    let ok = matches!(client::once(&mut sender, &spec).await, Ok((status, _)) if status.is_success());
                    (sender, ok)
                })
            })
            .collect();
        for (slot, task) in senders.iter_mut().zip(tasks) {
            let (sender, ok) = task.await.map_err(|e| e.to_string())?;
            errors += u64::from(!ok);
            *slot = Some(sender);
        }
    }
    let elapsed = started.elapsed();
    let after = stats(f).await?;
    let per_set = (after.0 - before.0) as f64 / rounds as f64;
    Ok(Row {
        rate: Some((rounds * s.connections as u64) as f64 / elapsed.as_secs_f64()),
        errors: Some(errors),
        peak_rss: procs::memory(gateway.pid(), "VmHWM"),
        note: format!(
            "introspections per cookie set {per_set:.2} ({} concurrent requests x {rounds} sets)",
            s.connections
        ),
        ..Row::default()
    })
}

/// RSS idle after start, then with `n` idle TLS keep-alive connections.
pub async fn idle(f: &Fixture, n: usize) -> Result<Row, String> {
    let tuning = [Tuning {
        section: "limits",
        line: format!("max_connections_per_client = {}", n + 1),
        why: "all of this scenario's connections come from one address, the load generator's, and it measures what a connection costs in memory, not the per-client cap (default 256), which would close the rest at accept",
    }];
    let gateway = procs::start_gateway(&f.setup, &tuning)?;
    let pid = gateway.pid();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at_start = procs::memory(pid, "VmRSS").unwrap_or(0);
    let spec = spec("/apps/page", vec![], Cookie::None);
    let held = client::hold_idle(&f.gateway(&gateway), &spec, n)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_idle = procs::memory(pid, "VmRSS").unwrap_or(0);
    drop(held);
    Ok(Row {
        peak_rss: procs::memory(pid, "VmHWM"),
        note: format!(
            "RSS idle after start {}, with {n} idle TLS connections {}",
            report::mib(at_start),
            report::mib(with_idle)
        ),
        ..Row::default()
    })
}

/// The gateway's counter of connections its upstream pools opened.
pub const UPSTREAM_CONNECTIONS_OPENED: &str = "psu_gateway_upstream_connections_opened_total";

/// The sum of every series of a gateway metric at its admin listener's
/// `/metrics`.
pub async fn counter(admin: std::net::SocketAddr, name: &str) -> Result<f64, String> {
    let body = client::get(admin, "/metrics")
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?;
            (labels.is_empty() || labels.starts_with('{')).then(|| value.parse::<f64>().ok())?
        })
        .sum())
}

/// (introspections, requests) the static upstream has counted.
async fn stats(f: &Fixture) -> Result<(u64, u64), String> {
    upstream_stats(f.upstream.addr).await
}

/// (introspections, requests) the static upstream at `addr` has counted.
pub async fn upstream_stats(addr: std::net::SocketAddr) -> Result<(u64, u64), String> {
    let json = client::get_json(addr, "/sim/stats")
        .await
        .map_err(|e| e.to_string())?;
    let field = |name: &str| json[name].as_u64().ok_or(format!("no {name} in {json}"));
    Ok((field("introspections")?, field("requests")?))
}
