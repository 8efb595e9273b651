//! The config file exactly as written: serde structs, unknown keys refused.
//!
//! Values that need checking beyond their TOML type keep their span so the
//! validator can point at the line that is wrong.

use serde::Deserialize;
use toml::Spanned;

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub listen: S<RawListen>,
    pub tls: S<RawTls>,
    #[serde(default)]
    pub limits: RawLimits,
    pub upstream: S<RawUpstream>,
    pub session: Option<S<RawSession>>,
    pub credential: Option<S<RawCredential>>,
    #[serde(default)]
    pub csrf: RawCsrf,
    #[serde(default)]
    pub forwarding: RawForwarding,
    pub admin: Option<S<RawAdmin>>,
    pub log: Option<S<RawLog>>,
    #[serde(default)]
    pub route: Vec<S<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub addr: S<String>,
    pub proxy_protocol: Option<S<bool>>,
    #[serde(default)]
    pub hostnames: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: Option<S<String>>,
    pub key: Option<S<String>>,
    pub pfx: Option<S<String>>,
    pub pfx_password_file: Option<S<String>>,
    pub pfx_password_env: Option<S<String>>,
    pub min_version: Option<S<String>>,
    pub hsts: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub handshake_timeout: Option<S<String>>,
    pub header_timeout: Option<S<String>>,
    pub idle_timeout: Option<S<String>>,
    pub body_timeout: Option<S<String>>,
    pub upstream_timeout: Option<S<String>>,
    pub max_header_bytes: Option<S<i64>>,
    pub max_headers: Option<S<i64>>,
    pub max_body_bytes: Option<S<i64>>,
    pub max_connections: Option<S<i64>>,
    pub h2_max_concurrent_streams: Option<S<i64>>,
    pub tunnel_idle_timeout: Option<S<String>>,
    pub shutdown_grace: Option<S<String>>,
    pub max_connections_per_client: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub url: S<String>,
    pub protocol: Option<S<String>>,
    pub ca: Option<S<String>>,
    pub server_name: Option<S<String>>,
    pub connect_timeout: Option<S<String>>,
    pub pool_idle_timeout: Option<S<String>>,
    pub pool_max_idle: Option<S<i64>>,
    #[serde(default = "yes")]
    pub preserve_host: bool,
    pub max_inflight: Option<S<i64>>,
    pub queue_timeout: Option<S<String>>,
    pub windows_auth: Option<S<String>>,
    pub max_pinned: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSession {
    pub cookies: Option<S<Vec<S<String>>>>,
    pub introspect_path: Option<S<String>>,
    pub identity_pointer: Option<S<String>>,
    pub roles_pointer: Option<S<String>>,
    pub cache_ttl: Option<S<String>>,
    pub negative_cache_ttl: Option<S<String>>,
    pub cache_max_entries: Option<S<i64>>,
    pub introspect_timeout: Option<S<String>>,
    pub cookie_shape: Option<S<String>>,
    pub max_inflight_introspections: Option<S<i64>>,
    pub miss_rate: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredential {
    pub header: Option<S<String>>,
    pub scheme: Option<S<String>>,
    pub token_file: Option<S<String>>,
    pub token_env: Option<S<String>>,
    pub mode: Option<S<String>>,
    pub grant: Option<S<String>>,
    pub grant_path: Option<S<String>>,
    pub token_pointer: Option<S<String>>,
    pub token_ttl: Option<S<String>>,
    pub grant_roles: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCsrf {
    pub allowed_origins: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwarding {
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub file: Option<S<String>>,
    pub keep: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub addr: S<String>,
    #[serde(default)]
    pub allow_remote: bool,
    pub probe_interval: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub name: Option<S<String>>,
    pub path: Option<S<String>>,
    pub prefix: Option<S<String>>,
    pub methods: Option<Vec<S<String>>>,
    pub access: Option<S<String>>,
    pub roles: Option<S<Vec<S<String>>>>,
    pub client_credentials: Option<S<String>>,
    pub rate_limit: Option<S<String>>,
}

fn yes() -> bool {
    true
}
