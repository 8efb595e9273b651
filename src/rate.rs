//! Rates ("20/s", "10/m", "100/h") and a per-client-address limiter over
//! them (governor's keyed GCRA limiter), with its memory bounded.
//!
//! Bounded how: a client is keyed by its IPv4 address or its IPv6 /64 (one
//! host usually holds a whole /64, so spraying addresses inside it gains
//! nothing); keys whose bucket has refilled are dropped at most once a
//! second ([`ClientLimiter::check`] does it on the way); and while
//! [`MAX_CLIENTS`] keys are tracked, every client is charged to one shared
//! overflow bucket, so a spray of source addresses costs one budget, not one
//! per address, and the map stops growing.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How many client keys one limiter tracks before new ones share a bucket.
pub const MAX_CLIENTS: usize = 65_536;

/// How often refilled buckets are dropped.
const RETAIN_EVERY: Duration = Duration::from_secs(1);

/// `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("expected N/s, N/m or N/h with N a positive whole number, e.g. \"20/s\"")]
    Malformed,
}

/// Parses `"N/s"`, `"N/m"` or `"N/h"` with N a positive integer.
pub fn parse_rate(text: &str) -> Result<Rate, RateError> {
    let (count, unit) = text.split_once('/').ok_or(RateError::Malformed)?;
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RateError::Malformed);
    }
    let count: NonZeroU32 = count.parse().map_err(|_| RateError::Malformed)?;
    let per = match unit {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(RateError::Malformed),
    };
    Ok(Rate { count, per })
}

impl Rate {
    /// The rate with a burst of `burst` events.
    fn quota(self, burst: NonZeroU32) -> Quota {
        let period = self.per / self.count.get();
        Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(burst)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Who a budget belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    /// The /64 prefix.
    V6(u64),
    /// Every client that arrived while [`MAX_CLIENTS`] were tracked.
    Overflow,
}

fn client_key(ip: IpAddr) -> ClientKey {
    match ip.to_canonical() {
        IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
        IpAddr::V6(v6) => ClientKey::V6((u128::from(v6) >> 64) as u64),
    }
}

/// A refusal: the client may try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

/// A rate per client address.
pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    clock: DefaultClock,
    retained: Mutex<Instant>,
}

impl std::fmt::Debug for ClientLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimiter")
            .field("clients", &self.limiter.len())
            .finish()
    }
}

impl ClientLimiter {
    /// `rate` per client, with bursts of up to `burst` events.
    pub fn new(rate: Rate, burst: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(rate.quota(burst)),
            clock: DefaultClock::default(),
            retained: Mutex::new(Instant::now()),
        }
    }

    /// Takes one event from `client`'s budget, or says how long until one
    /// is available.
    pub fn check(&self, client: IpAddr) -> Result<(), Throttled> {
        self.retain_now_and_then();
        let mut key = client_key(client);
        if self.limiter.len() >= MAX_CLIENTS {
            key = ClientKey::Overflow;
        }
        self.limiter.check_key(&key).map_err(|not_until| Throttled {
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    /// Client keys tracked now.
    pub fn clients(&self) -> usize {
        self.limiter.len()
    }

    fn retain_now_and_then(&self) {
        let Ok(mut last) = self.retained.try_lock() else {
            return;
        };
        if last.elapsed() >= RETAIN_EVERY {
            *last = Instant::now();
            drop(last);
            self.limiter.retain_recent();
        }
    }
}

/// Whole seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests;
