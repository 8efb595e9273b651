//! LOAD_SOAK: the cache-hit load for a long run, sampling the gateway's
//! RSS every 10 s to show whether memory stays flat.

use std::sync::Arc;
use std::time::Duration;

use crate::client::{self, Proto};
use crate::procs;
use crate::report;
use crate::scenarios::{self, Fixture};
use crate::Settings;

const EVERY: Duration = Duration::from_secs(10);

pub async fn run(f: &Fixture, s: &Settings, length: Duration) -> Result<(), String> {
    eprintln!("load: soak for {} s", length.as_secs());
    let gateway = procs::start_gateway(&f.setup, &[])?;
    let pid = gateway.pid();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            match procs::memory(pid, "VmRSS") {
                Some(rss) => samples.push(rss),
                None => return samples,
            }
            if samples.len() as u64 * EVERY.as_secs() >= length.as_secs() {
                return samples;
            }
        }
    });
    let plan = client::Plan {
        duration: length,
        ..scenarios::plan(s, Proto::H1)
    };
    let outcome = client::run(&f.gateway(&gateway), Arc::new(scenarios::hit_spec(f)), plan).await;
    let samples = sampler.await.map_err(|e| e.to_string())?;
    println!(
        "soak: {} s cache-hit HTTP/1.1, {} req/s, {} errors, p99 {}",
        length.as_secs(),
        report::rate(outcome.rate()),
        outcome.errors,
        outcome
            .latencies
            .quantile(0.99)
            .map_or("-".into(), report::latency),
    );
    let (Some(first), Some(last), Some(max)) =
        (samples.first(), samples.last(), samples.iter().max())
    else {
        return Err("no RSS samples".into());
    };
    let mibs: Vec<String> = samples
        .iter()
        .map(|b| format!("{:.1}", *b as f64 / 1048576.0))
        .collect();
    println!("soak: RSS every 10 s (MiB): {}", mibs.join(" "));
    println!(
        "soak: RSS first {} last {} max {}; last vs first {:+.1}%, max vs first {:+.1}%",
        report::mib(*first),
        report::mib(*last),
        report::mib(*max),
        (*last as f64 / *first as f64 - 1.0) * 100.0,
        (*max as f64 / *first as f64 - 1.0) * 100.0,
    );
    Ok(())
}
