//! Load test of the release gateway as a child process, on loopback: a
//! static upstream (`psu-gateway sim --static`), a fresh gateway per
//! scenario, and a closed-loop hyper/rustls load generator in this process
//! (it shares the machine's cores with both: "load generator included").
//! Every scenario of the table is also run straight at the upstream, the
//! ceiling. Each gateway runs `benches/compare/gateway.toml`, the default
//! config but for what a scenario sets, and says why, in `scenarios.rs`.
//! Prints one Markdown table, then the flood's lines (`flood.rs`), then
//! runs `benches/compare/run.sh` (nginx side by side) when nginx, wrk and
//! h2load are installed.
//!
//! Run: `cargo bench --bench load` (all scenarios), or name some:
//! `cargo bench --bench load -- hit miss flood`. Environment: LOAD_SECS (5),
//! LOAD_WARMUP (1), LOAD_CONNS (64), LOAD_STREAMS (4, h2 streams per
//! connection), LOAD_IDLE (1000), LOAD_BODY_MIB (100), LOAD_THREADS (2,
//! load generator threads), LOAD_SOAK (seconds of the RSS soak, off unless
//! set), LOAD_LOG (gateway log file, /dev/null), LOAD_RUST_LOG (info).

mod client;
mod cookie;
mod flood;
mod histogram;
mod procs;
mod report;
mod scenarios;
mod soak;

use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::client::Proto;
use crate::procs::GatewaySetup;
use crate::scenarios::Fixture;

/// The knobs, from the environment.
pub struct Settings {
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: usize,
    pub streams: usize,
    pub idle: usize,
    pub body_bytes: u64,
    pub threads: usize,
    pub soak: Option<Duration>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Self {
        Self {
            duration: Duration::from_secs_f64(env_or("LOAD_SECS", 5.0)),
            warmup: Duration::from_secs_f64(env_or("LOAD_WARMUP", 1.0)),
            connections: env_or("LOAD_CONNS", 64),
            streams: env_or("LOAD_STREAMS", 4),
            idle: env_or("LOAD_IDLE", 1000),
            body_bytes: env_or("LOAD_BODY_MIB", 100u64) * 1024 * 1024,
            threads: env_or("LOAD_THREADS", 2),
            soak: std::env::var("LOAD_SOAK")
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_secs_f64),
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and a
    // load test has no place in a test run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("load: skipped outside `cargo bench`");
        return;
    }
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run(&settings, &filters)) {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}

async fn run(s: &Settings, filters: &[&str]) -> Result<(), String> {
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    procs::raise_fd_limit();
    let fixture = fixture()?;
    println!(
        "load: {} s per run after {} s warm-up, {} connections ({} h2 streams each), {} load-generator threads, {} cores",
        s.duration.as_secs_f64(),
        s.warmup.as_secs_f64(),
        s.connections,
        s.streams,
        s.threads,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    let idle_name = format!("idle-{}", s.idle);
    let names = [
        "hit-h1",
        "hit-h2",
        "hit-per-user-h1",
        "miss-h1",
        "miss-burst",
        "public-h1",
        "handshake",
        idle_name.as_str(),
        "body-down",
        "body-up",
    ];
    let mut rows = Vec::new();
    for name in names.into_iter().filter(|n| wanted(n)) {
        eprintln!("load: {name}");
        let f = &fixture;
        let mut row = match name {
            "hit-h1" => scenarios::cache_hit(f, s, Proto::H1).await,
            "hit-h2" => scenarios::cache_hit(f, s, Proto::H2).await,
            "hit-per-user-h1" => scenarios::per_user_hit(f, s).await,
            "miss-h1" => scenarios::cache_miss(f, s).await,
            "miss-burst" => scenarios::miss_burst(f, s, 50).await,
            "public-h1" => scenarios::public(f, s).await,
            "handshake" => scenarios::handshake(f, s).await,
            "body-down" => scenarios::body(f, s, false).await,
            "body-up" => scenarios::body(f, s, true).await,
            _ => scenarios::idle(f, s.idle).await,
        }?;
        row.scenario = name.to_owned();
        rows.push(row);
    }
    if !rows.is_empty() {
        report::print(&rows);
    }
    let rate = |name: &str| {
        rows.iter()
            .find(|r| r.scenario == name)
            .and_then(|r| r.rate)
    };
    if let (Some(shared), Some(per_user)) = (rate("hit-h1"), rate("hit-per-user-h1")) {
        println!(
            "per-user cache hit / shared cache hit (HTTP/1.1, same run): {:.3} ({per_user:.0} / {shared:.0} req/s)",
            per_user / shared
        );
    }
    if wanted("flood") {
        eprintln!("load: flood");
        flood::run(&fixture, s).await?;
    }
    if let Some(length) = s.soak.filter(|_| wanted("soak")) {
        soak::run(&fixture, s, length).await?;
    }
    if wanted("compare") {
        compare();
    }
    Ok(())
}

fn fixture() -> Result<Fixture, String> {
    let dir = procs::work_dir()?;
    let paths = psu_gateway::cli::devcert::write(&dir, &["localhost".to_owned()])
        .map_err(|e| e.to_string())?;
    let cert = CertificateDer::from_pem_file(&paths.cert).map_err(|e| e.to_string())?;
    let minted = psu_gateway::sim::mint_token(
        psu_gateway::sim::DEV_SIGNING_KEY.as_bytes(),
        "psu-gateway",
        &["Administrator".to_owned()],
        Duration::from_secs(24 * 3600),
    );
    psu_gateway::cli::devcert::write_private(
        &dir.join("app-token"),
        minted.token.expose().as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let credential = http::HeaderValue::from_str(&format!("Bearer {}", minted.token.expose()))
        .map_err(|e| e.to_string())?;
    let upstream = procs::start_upstream()?;
    let log = std::env::var("LOAD_LOG").unwrap_or_else(|_| "/dev/null".into());
    let session = cookie::random_value(600);
    Ok(Fixture {
        setup: GatewaySetup {
            dir,
            upstream: upstream.addr,
            log: log.into(),
        },
        upstream,
        tls: client::Tls::trusting(cert)?,
        credential,
        session,
    })
}

/// nginx side by side: the script checks for its tools itself and says
/// what is missing.
fn compare() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare/run.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .env("PSU_GATEWAY", procs::BINARY)
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("load: {script} failed ({status})"),
        Err(e) => eprintln!("load: cannot run {script}: {e}"),
    }
}
