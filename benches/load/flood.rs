//! The flood, on the default config: one client (the load generator, one
//! address) sends the inject route a new random session cookie of PSU's
//! shape on every request, while a few connections of a signed-in user,
//! whose session is cached, keep working. It shows how much PSU work the
//! flood turns into (`session.miss_rate` bounds it: the static upstream
//! takes any cookie for a live session, so each admitted flood request is
//! one introspection), how many flood requests are answered 429, and what
//! the flood does to the cached user's p99, measured alone just before.
//! Prints its own lines: `cargo bench --bench load -- flood`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::client::{self, Outcome, Plan, Proto};
use crate::cookie::Cookie;
use crate::procs;
use crate::report;
use crate::scenarios::{self, Fixture, SESSION_COOKIE};
use crate::Settings;

/// The inject route, where a session is checked.
const INJECT_PATH: &str = "/api/v1/usersession";
/// The signed-in user's connections, each one request at a time.
const USER_CONNECTIONS: usize = 4;
/// What the gateway counts for each flood request it answers 429.
const MISS_RATE_REJECTIONS: &str = r#"psu_gateway_rejections_total{reason="miss_rate"}"#;

/// The miss budget the gateway ran with, read from its config.
struct Budget {
    per_second: f64,
    burst: f64,
    cache_ttl: Duration,
}

pub async fn run(f: &Fixture, s: &Settings) -> Result<(), String> {
    let gateway = procs::start_gateway(&f.setup, &[])?;
    let budget = budget(&f.setup)?;
    let admin = gateway.admin.ok_or("the gateway has no admin listener")?;
    let target = f.gateway(&gateway);
    let user = Arc::new(scenarios::hit_spec(f));
    // The user signs in: its session's one introspection, before anything
    // is counted; from here on it is a cache hit.
    drop(
        client::hold_idle(&target, &user, 1)
            .await
            .map_err(|e| format!("the user's first request: {e}"))?,
    );
    let user_plan = Plan {
        connections: USER_CONNECTIONS,
        ..scenarios::plan(s, Proto::H1)
    };
    let alone = on_own_thread(&target, &user, user_plan).await?;

    let cookie = Cookie::random(SESSION_COOKIE, f.session.len())?;
    let flood_spec = Arc::new(scenarios::spec(INJECT_PATH, vec![], cookie));
    let flood_plan = scenarios::plan(s, Proto::H1);
    let upstream = f.upstream.addr;
    let before = introspections(upstream).await?;
    let refused_before = scenarios::counter(admin, MISS_RATE_REJECTIONS).await?;
    let started = Instant::now();
    let window_start = introspections_after(upstream, s.warmup);
    let window_end = introspections_after(upstream, s.warmup + s.duration);
    let (flood, during) = tokio::join!(
        client::run(&target, flood_spec, flood_plan),
        on_own_thread(&target, &user, user_plan),
    );
    let during = during?;
    let elapsed = started.elapsed();
    let after = introspections(upstream).await?;
    let refused = scenarios::counter(admin, MISS_RATE_REJECTIONS).await? - refused_before;
    let window = window_end.await.map_err(|e| e.to_string())??
        - window_start.await.map_err(|e| e.to_string())??;

    let secs = s.duration.as_secs_f64();
    let whole = elapsed.as_secs_f64();
    println!(
        "flood: default config (session.miss_rate {}/s, burst {}); {} connections send {INJECT_PATH} a new random session cookie per request while {USER_CONNECTIONS} connections send one cached user's, all from 127.0.0.1, {secs} s after {} s of warm-up",
        report::rate(budget.per_second),
        budget.burst,
        flood_plan.connections,
        s.warmup.as_secs_f64(),
    );
    let answered = flood.latencies.count() + flood.non_2xx.values().sum::<u64>();
    println!(
        "flood: {answered} flood requests answered in the measured {secs} s ({}/s): {} admitted (2xx), {} answered 429, {}; the gateway counted {refused} miss_rate rejections over the whole run",
        report::rate(answered as f64 / secs),
        flood.latencies.count(),
        flood.answered(StatusCode::TOO_MANY_REQUESTS),
        others(&flood, StatusCode::TOO_MANY_REQUESTS),
    );
    println!(
        "flood: PSU introspections {} over the whole flood ({whole:.2} s, warm-up included): {}/s, where the budget allows {}/s ({}/s plus the burst of {}); {window} in the measured {secs} s: {}/s",
        after - before,
        report::rate((after - before) as f64 / whole),
        report::rate(budget.per_second + budget.burst / whole),
        report::rate(budget.per_second),
        budget.burst,
        report::rate(window as f64 / secs),
    );
    let (p99_alone, p99_during) = (
        alone.latencies.quantile(0.99),
        during.latencies.quantile(0.99),
    );
    let ratio = match (p99_alone, p99_during) {
        (Some(a), Some(d)) if !a.is_zero() => format!("{:.2}x", d.as_secs_f64() / a.as_secs_f64()),
        _ => "-".into(),
    };
    println!(
        "flood: the cached user's p99 alone {}, during the flood {}: {ratio} (p50 {} and {}; {} and {} req/s; errors alone {}, during {})",
        latency(p99_alone),
        latency(p99_during),
        latency(alone.latencies.quantile(0.5)),
        latency(during.latencies.quantile(0.5)),
        report::rate(alone.rate()),
        report::rate(during.rate()),
        errors(&alone),
        errors(&during),
    );
    let user_time = 2 * (s.warmup + s.duration);
    if user_time >= budget.cache_ttl {
        println!(
            "flood: the user's session, cached for {} s, expired during the run: its next check is a miss paid from the flood's budget (the same address), so the user's figures include 429s",
            budget.cache_ttl.as_secs()
        );
    }
    Ok(())
}

/// Runs the user's load on a thread and runtime of its own: on the flood's
/// runtime its requests would first queue behind the flood's 64 busy
/// connections in the load generator itself, which is not the gateway's
/// doing.
async fn on_own_thread(
    target: &client::Target,
    spec: &Arc<client::RequestSpec>,
    plan: Plan,
) -> Result<Outcome, String> {
    let (target, spec) = (target.clone(), spec.clone());
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("flood-user".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            let _ = done.send(runtime.block_on(client::run(&target, spec, plan)));
        })
        .map_err(|e| e.to_string())?;
    outcome
        .await
        .map_err(|_| "the user's thread failed".to_owned())
}

/// `session.miss_rate` and `cache_ttl` as the gateway read them; the burst
/// is twice the rate (behaviour.md, "Admission control").
fn budget(setup: &procs::GatewaySetup) -> Result<Budget, String> {
    let path = procs::config_path(setup);
    let loaded =
        psu_gateway::config::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let session = loaded.config.session.ok_or("the config has no [session]")?;
    let count = f64::from(session.miss_rate.count.get());
    Ok(Budget {
        per_second: count / session.miss_rate.per.as_secs_f64(),
        burst: 2.0 * count,
        cache_ttl: session.cache_ttl,
    })
}

async fn introspections(upstream: SocketAddr) -> Result<u64, String> {
    Ok(scenarios::upstream_stats(upstream).await?.0)
}

fn introspections_after(
    upstream: SocketAddr,
    after: Duration,
) -> tokio::task::JoinHandle<Result<u64, String>> {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        introspections(upstream).await
    })
}

fn latency(d: Option<Duration>) -> String {
    d.map_or("-".into(), report::latency)
}

/// Answers other than 2xx and `but`, by status, or "no other answer".
fn others(outcome: &Outcome, but: StatusCode) -> String {
    let mut listed: Vec<String> = outcome
        .non_2xx
        .iter()
        .filter(|(status, _)| **status != but.as_u16())
        .map(|(status, n)| format!("{n} answered {status}"))
        .collect();
    let failed = outcome.errors - outcome.non_2xx.values().sum::<u64>();
    if failed > 0 {
        listed.push(format!("{failed} failed connections or exchanges"));
    }
    if listed.is_empty() {
        "no other answer".into()
    } else {
        listed.join(", ")
    }
}

/// A run's errors, with the statuses behind them.
fn errors(outcome: &Outcome) -> String {
    if outcome.non_2xx.is_empty() {
        return outcome.errors.to_string();
    }
    let statuses: Vec<String> = outcome
        .non_2xx
        .iter()
        .map(|(status, n)| format!("{n} x {status}"))
        .collect();
    format!("{} ({})", outcome.errors, statuses.join(", "))
}
