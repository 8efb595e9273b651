//! Prometheus metrics: one registry per process, kept across reloads, served
//! by the admin listener.
//!
//! Every label value comes from a closed set (status classes, rejection
//! reasons) or from the operator's config (route names): nothing a client
//! sends can create a new series.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::rules::routes::{Access, RouteTable};
use crate::transport::pinned::PinMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub access: &'static str,
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The label `route` takes for a request that matched no route.
pub const NO_ROUTE: &str = "-";

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    injected: Family<RouteLabel, Counter>,
    session_cache: Family<OutcomeLabel, Counter>,
    pub session_cache_evictions: Counter,
    introspections: Family<OutcomeLabel, Counter>,
    pub introspection_seconds: Histogram,
    grants: Family<OutcomeLabel, Counter>,
    pub grant_seconds: Histogram,
    /// Per-user tokens held in memory.
    pub minted_tokens: Gauge,
    pub upstream_seconds: Histogram,
    pub active_connections: Gauge,
    pub tls_handshake_failures: Counter,
    /// Connections closed right after accept: the client address already
    /// had `limits.max_connections_per_client` open.
    pub client_connections_refused: Counter,
    /// Connections the upstream pools opened to PSU.
    pub upstream_connections_opened: Counter,
    /// Client connections holding their own upstream connection (NTLM /
    /// Negotiate), now and in total.
    pub pinned: PinMetrics,
    rejections: Family<ReasonLabel, Counter>,
    config_reloads: Family<OutcomeLabel, Counter>,
    pub token_reload_failures: Counter,
    pub cert_reload_failures: Counter,
    token_age_seconds: Gauge,
    /// Unix seconds when the token in use was read; 0 when there is none.
    token_loaded_at: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("psu_gateway");
        let metrics = Self {
            requests: Family::default(),
            injected: Family::default(),
            session_cache: Family::default(),
            session_cache_evictions: Counter::default(),
            introspections: Family::default(),
            introspection_seconds: latency_histogram(),
            grants: Family::default(),
            grant_seconds: latency_histogram(),
            minted_tokens: Gauge::default(),
            upstream_seconds: latency_histogram(),
            active_connections: Gauge::default(),
            tls_handshake_failures: Counter::default(),
            client_connections_refused: Counter::default(),
            upstream_connections_opened: Counter::default(),
            pinned: PinMetrics::default(),
            rejections: Family::default(),
            config_reloads: Family::default(),
            token_reload_failures: Counter::default(),
            cert_reload_failures: Counter::default(),
            token_age_seconds: Gauge::default(),
            token_loaded_at: AtomicU64::new(0),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "requests",
            "Requests answered, by route, access and status class",
            m.requests.clone(),
        );
        registry.register(
            "injected_requests",
            "Requests forwarded with the app token, by route",
            m.injected.clone(),
        );
        registry.register(
            "session_cache",
            "Session lookups by outcome: hit, miss, negative (a cached refusal)",
            m.session_cache.clone(),
        );
        registry.register(
            "session_cache_evictions",
            "Fresh session verdicts pushed out of the cache because it was full",
            m.session_cache_evictions.clone(),
        );
        registry.register(
            "introspections",
            "Session introspection calls to PSU, by outcome: valid, invalid, failed",
            m.introspections.clone(),
        );
        registry.register(
            "introspection_duration_seconds",
            "Time for PSU to answer a session introspection",
            m.introspection_seconds.clone(),
        );
        registry.register(
            "grants",
            "Per-user token grant calls to PSU, by outcome: granted, refused, failed",
            m.grants.clone(),
        );
        registry.register(
            "grant_duration_seconds",
            "Time for PSU to answer a per-user token grant",
            m.grant_seconds.clone(),
        );
        registry.register(
            "minted_tokens",
            "Per-user tokens held in memory (credential.mode = per-user)",
            m.minted_tokens.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from forwarding a request to PSU's response head",
            m.upstream_seconds.clone(),
        );
        registry.register(
            "active_connections",
            "Client connections open, WebSocket tunnels included",
            m.active_connections.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "client_connections_refused",
            "Connections closed at accept because their client address had limits.max_connections_per_client open",
            m.client_connections_refused.clone(),
        );
        registry.register(
            "upstream_connections_opened",
            "Connections opened to PSU by the upstream pools (a steady load should open almost none)",
            m.upstream_connections_opened.clone(),
        );
        registry.register(
            "pinned_connections",
            "Client connections pinned to their own upstream connection for NTLM / Negotiate",
            m.pinned.open.clone(),
        );
        registry.register(
            "pinned_connections",
            "Upstream connections opened for pinned client connections",
            m.pinned.total.clone(),
        );
        registry.register(
            "rejections",
            "Requests refused by the gateway, by reason",
            m.rejections.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by outcome: ok, failed",
            m.config_reloads.clone(),
        );
        registry.register(
            "token_reload_failures",
            "Token file re-reads that failed (unreadable, empty, invalid); the previous token stays",
            m.token_reload_failures.clone(),
        );
        registry.register(
            "certificate_reload_failures",
            "Certificate/key re-reads that failed; the previous certificate stays",
            m.cert_reload_failures.clone(),
        );
        registry.register(
            "token_age_seconds",
            "Seconds since the app token in use was read",
            m.token_age_seconds.clone(),
        );
        // Zero series from the start, so an alert on "failed" has data.
        for outcome in ["ok", "failed"] {
            drop(
                metrics
                    .config_reloads
                    .get_or_create(&OutcomeLabel { outcome }),
            );
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// Counters for each route's requests, created up front so the hot path
    /// is an atomic add and every route shows in a scrape from the start.
    pub fn route_counters(&self, routes: &RouteTable) -> RouteCounters {
        let mut by_name = HashMap::new();
        for route in routes.routes() {
            by_name.insert(
                route.name.clone(),
                self.counters_for(&route.name, route.access.as_str(), route.access),
            );
        }
        let unmatched = self.counters_for(NO_ROUTE, NO_ROUTE, Access::Deny);
        RouteCounters { by_name, unmatched }
    }

    fn counters_for(&self, route: &str, access: &'static str, kind: Access) -> Counters {
        let by_class = CLASSES.map(|class| {
            self.requests
                .get_or_create(&RequestLabels {
                    route: route.to_owned(),
                    access,
                    class,
                })
                .clone()
        });
        let injected = (kind == Access::Inject).then(|| {
            self.injected
                .get_or_create(&RouteLabel {
                    route: route.to_owned(),
                })
                .clone()
        });
        Counters { by_class, injected }
    }

    pub fn session_lookup(&self, outcome: &'static str) {
        self.session_cache
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn introspection(&self, outcome: &'static str, took: Duration) {
        self.introspections
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.introspection_seconds.observe(took.as_secs_f64());
    }

    pub fn grant(&self, outcome: &'static str, took: Duration) {
        self.grants.get_or_create(&OutcomeLabel { outcome }).inc();
        self.grant_seconds.observe(took.as_secs_f64());
    }

    pub fn rejection(&self, reason: &'static str) {
        self.rejections.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn config_reload(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.config_reloads
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn token_loaded(&self, at: SystemTime) {
        let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.token_loaded_at.store(secs, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let loaded = self.token_loaded_at.load(Ordering::Relaxed);
        if loaded > 0 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.token_age_seconds
                .set(i64::try_from(now.saturating_sub(loaded)).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One route's request counters.
#[derive(Clone)]
struct Counters {
    by_class: [Counter; 5],
    injected: Option<Counter>,
}

/// Per-route counters for one config generation.
#[derive(Clone)]
pub struct RouteCounters {
    by_name: HashMap<String, Counters>,
    unmatched: Counters,
}

impl RouteCounters {
    /// Counts one answered request; `route` is `None` when none matched.
    pub fn answered(&self, route: Option<&str>, status: http::StatusCode, injected: bool) {
        let counters = route
            .and_then(|name| self.by_name.get(name))
            .unwrap_or(&self.unmatched);
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        counters.by_class[class].inc();
        if injected {
            if let Some(counter) = &counters.injected {
                counter.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_counters_only_carry_config_names() {
        let metrics = Metrics::new();
        use crate::rules::routes::{ClientCredentials, PathPattern, Route};
        let route = |name: &str, pattern, access| Route {
            name: name.to_owned(),
            pattern,
            methods: None,
            access,
            roles: Vec::new(),
            client_credentials: ClientCredentials::Strip,
            rate_limit: None,
        };
        let routes = RouteTable::new(vec![
            route(
                "usersession",
                PathPattern::Exact("/api/v1/usersession".to_owned()),
                Access::Inject,
            ),
            route("pages", PathPattern::Prefix("/".to_owned()), Access::Public),
        ])
        .unwrap();
        let counters = metrics.route_counters(&routes);
        counters.answered(Some("usersession"), http::StatusCode::OK, true);
        counters.answered(Some("pages"), http::StatusCode::NOT_FOUND, false);
        // A name no route has (say, a client-chosen path) lands on "-".
        counters.answered(Some("/etc/passwd"), http::StatusCode::OK, false);
        metrics.rejection("csrf");
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"psu_gateway_requests_total{route="usersession",access="inject",class="2xx"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"psu_gateway_requests_total{route="pages",access="public",class="4xx"} 1"#
        ));
        assert!(text.contains(r#"psu_gateway_requests_total{route="-",access="-",class="2xx"} 1"#));
        assert!(text.contains(r#"psu_gateway_injected_requests_total{route="usersession"} 1"#));
        assert!(text.contains(r#"psu_gateway_rejections_total{reason="csrf"} 1"#));
        assert!(!text.contains("passwd"));
    }
}
