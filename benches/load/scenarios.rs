//! The scenarios: each starts a fresh gateway, drives it, reads its CPU
//! time and memory from /proc, then drives the upstream the same way for
//! the ceiling.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::Method;

use crate::client::{self, Cookie, Plan, Proto, RequestSpec, Target};
use crate::procs::{self, GatewaySetup, Process};
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
    /// A 600-character session value, about the size of PSU's.
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
        let value = format!("{SESSION_COOKIE}={}", self.session);
        Cookie::Fixed(HeaderValue::from_str(&value).expect("an ASCII cookie"))
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

fn spec(
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
    measure(f, through, direct, plan(s, proto), "").await
}

/// Every request a session never seen before: one introspection each,
/// so the gateway makes two upstream requests per request.
pub async fn cache_miss(f: &Fixture, s: &Settings) -> Result<Row, String> {
    let prefix = format!("{SESSION_COOKIE}={}-", &f.session[..580]);
    let cookie = Cookie::Unique(prefix, AtomicU64::new(0));
    let through = spec("/api/v1/usersession", vec![], cookie);
    let before = stats(f).await?;
    let mut row = through_gateway(f, through, plan(s, Proto::H1)).await?;
    let after = stats(f).await?;
    row.upstream_rate =
        Some(ceiling(f, f.injected("/api/v1/usersession"), plan(s, Proto::H1)).await);
    let introspections = after.0 - before.0;
    let forwarded = (after.1 - before.1).saturating_sub(introspections);
    row.note = format!(
        "introspections per request {:.3}",
        introspections as f64 / forwarded.max(1) as f64
    );
    Ok(row)
}

/// Public pass-through: no session, no rewrite beyond the forwarding headers.
pub async fn public(f: &Fixture, s: &Settings) -> Result<Row, String> {
    let through = spec("/apps/page", vec![], Cookie::None);
    let direct = spec("/apps/page", vec![], Cookie::None);
    measure(f, through, direct, plan(s, Proto::H1), "").await
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
    let mut row = measure(f, make(), make(), plan, "").await?;
    let per_second = row.rate.unwrap_or(0.0) * s.body_bytes as f64;
    row.note = format!("{}/s through", report::mib(per_second as u64));
    Ok(row)
}

/// Drives a fresh gateway, then the upstream, with the same plan.
async fn measure(
    f: &Fixture,
    through: RequestSpec,
    direct: RequestSpec,
    plan: Plan,
    note: &str,
) -> Result<Row, String> {
    let mut row = through_gateway(f, through, plan).await?;
    row.upstream_rate = Some(ceiling(f, direct, plan).await);
    row.note = note.to_owned();
    Ok(row)
}

/// A fresh gateway process driven by `plan`; CPU time is read at the
/// start and end of the measured window.
async fn through_gateway(f: &Fixture, through: RequestSpec, plan: Plan) -> Result<Row, String> {
    let gateway = procs::start_gateway(&f.setup)?;
    let pid = gateway.pid();
    let cpu_at = |after: Duration| {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            procs::cpu_time(pid)
        })
    };
    let cpu_start = cpu_at(plan.warmup);
    let cpu_end = cpu_at(plan.warmup + plan.duration);
    let outcome = client::run(&f.gateway(&gateway), Arc::new(through), plan).await;
    let cpu = match (cpu_start.await, cpu_end.await) {
        (Ok(Some(start)), Ok(Some(end))) => Some(end.saturating_sub(start)),
        _ => None,
    };
    let requests = outcome.latencies.count();
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
    let gateway = procs::start_gateway(&f.setup)?;
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
        let value = format!("{SESSION_COOKIE}={}-burst-{round}", &f.session[..580]);
        let cookie = HeaderValue::from_str(&value).map_err(|e| e.to_string())?;
        let spec = Arc::new(spec("/api/v1/usersession", vec![], Cookie::Fixed(cookie)));
        let tasks: Vec<_> = senders
            .iter_mut()
            .filter_map(Option::take)
            .map(|mut sender| {
                let spec = spec.clone();
                tokio::spawn(async move {
                    let ok = matches!(client::once(&mut sender, &spec).await, Ok((true, _)));
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
    let gateway = procs::start_gateway(&f.setup)?;
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

/// (introspections, requests) the static upstream has counted.
async fn stats(f: &Fixture) -> Result<(u64, u64), String> {
    let json = client::get_json(f.upstream.addr, "/sim/stats")
        .await
        .map_err(|e| e.to_string())?;
    let field = |name: &str| json[name].as_u64().ok_or(format!("no {name} in {json}"));
    Ok((field("introspections")?, field("requests")?))
}
