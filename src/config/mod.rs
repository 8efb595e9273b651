//! The validated, typed configuration: what the gateway runs on.
//!
//! `load` reads a TOML file (config.md's contract), checks every key, reads
//! the files it names (certificate, key, CA, token) and returns either a
//! complete [`Config`] or every problem found, each with its place in the file.

mod error;
mod exposure;
mod raw;
pub mod tls;
pub mod token;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use ipnet::IpNet;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use error::{ConfigError, ConfigErrors};

use crate::rate::Rate;
use crate::rules::routes::RouteTable;
use crate::secret::Secret;

/// A loaded config plus the warnings `check` and start-up print.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct Config {
    pub source: PathBuf,
    pub listen: Listen,
    pub tls: Tls,
    pub limits: Limits,
    pub upstream: Upstream,
    pub session: Option<Session>,
    pub credential: Option<Credential>,
    pub csrf: Csrf,
    pub forwarding: Forwarding,
    pub admin: Option<Admin>,
    pub routes: RouteTable,
    /// `[log] file`: where log lines go instead of stderr (read at start;
    /// a reload cannot move it).
    pub log: Option<LogFile>,
}

/// A log file rotated daily: `dir/stem.YYYY-MM-DD.ext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub directory: PathBuf,
    /// The file name before the date (`psu-gateway` of `psu-gateway.log`).
    pub prefix: String,
    /// After the date (`log`), if the name has an extension.
    pub suffix: Option<String>,
    /// Rotated files kept beside the one being written.
    pub keep: usize,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub proxy_protocol: bool,
    /// Lower-case host names; empty means any host.
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug)]
pub struct Tls {
    /// Where the chain and key are read from (at start, on reload and when
    /// the files change).
    pub source: TlsSource,
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub min_version: TlsVersion,
    pub hsts: Option<HeaderValue>,
}

/// `tls.cert` + `tls.key`, or `tls.pfx`.
#[derive(Debug, Clone)]
pub enum TlsSource {
    Pem {
        cert: PathBuf,
        key: PathBuf,
    },
    Pfx {
        path: PathBuf,
        password: PfxPassword,
    },
}

impl TlsSource {
    /// The files to watch for a new certificate.
    pub fn files(&self) -> Vec<&std::path::Path> {
        match self {
            TlsSource::Pem { cert, key } => vec![cert, key],
            TlsSource::Pfx { path, password } => match password {
                PfxPassword::File(file) => vec![path, file],
                PfxPassword::Empty | PfxPassword::Env(_) => vec![path],
            },
        }
    }
}

/// Where a PFX file's password comes from; never the config file itself.
#[derive(Debug, Clone)]
pub enum PfxPassword {
    /// No `pfx_password_file` / `pfx_password_env`: the empty password.
    Empty,
    File(PathBuf),
    /// The variable's name.
    Env(String),
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: u64,
    pub max_connections: usize,
    pub h2_max_concurrent_streams: u32,
    pub tunnel_idle_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Connections at once from one client address.
    pub max_connections_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(30),
            max_header_bytes: 32_768,
            max_headers: 100,
            max_body_bytes: 10_485_760,
            max_connections: 10_000,
            h2_max_concurrent_streams: 100,
            tunnel_idle_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            max_connections_per_client: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    H2,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    pub protocol: UpstreamProtocol,
    pub ca: Vec<CertificateDer<'static>>,
    pub server_name: Option<String>,
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    pub preserve_host: bool,
    /// Requests waiting for PSU's answer at once, introspection included.
    pub max_inflight: usize,
    /// How long a request waits for one of `max_inflight`.
    pub queue_timeout: Duration,
    /// NTLM / Negotiate pass-through (behaviour.md, "Windows authentication").
    pub windows_auth: WindowsAuth,
    /// Pinned upstream connections at once; beyond, 503.
    pub max_pinned: usize,
}

/// `upstream.windows_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowsAuth {
    /// A client connection that speaks NTLM / Negotiate gets its own
    /// upstream connection.
    Pin,
    /// `Authorization: NTLM|Negotiate` is stripped on every route.
    Off,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub cookies: Vec<String>,
    pub introspect_path: http::uri::PathAndQuery,
    pub identity_pointer: Option<String>,
    pub roles_pointer: Option<String>,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub cache_max_entries: u64,
    pub introspect_timeout: Duration,
    pub cookie_shape: CookieShape,
    /// Introspection calls to PSU at once.
    pub max_inflight_introspections: usize,
    /// Cache misses one client address may cause (burst twice that).
    pub miss_rate: Rate,
}

/// Which session cookie values are worth asking PSU about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieShape {
    /// ASP.NET Core Data Protection payloads only: base64url, `CfDJ8`
    /// first, at least 64 characters.
    AspNet,
    /// Every value.
    Any,
}

#[derive(Debug, Clone)]
pub enum TokenSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone)]
pub struct Credential {
    pub header: HeaderName,
    /// Empty means the bare token.
    pub scheme: String,
    /// Shared mode: the token injected. Per-user, delegated: the granting
    /// token, sent only on `grant_path`. Per-user, session grant: none.
    pub token: Option<AppToken>,
    pub mode: CredentialMode,
}

/// A token the operator gave the gateway, and where it came from.
#[derive(Debug, Clone)]
pub struct AppToken {
    pub source: TokenSource,
    pub secret: Secret,
}

/// Whose token goes on an inject route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialMode {
    /// One token for everybody.
    Shared,
    /// Each signed-in user's own token, granted by PSU.
    PerUser(PerUser),
}

/// How the gateway obtains a user's own token (`credential.mode = "per-user"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerUser {
    pub grant: Grant,
    pub grant_path: http::uri::PathAndQuery,
    /// JSON pointer to the token string in the grant answer.
    pub token_pointer: String,
    /// How long a granted token is reused (and, delegated, its Expiration).
    pub token_ttl: Duration,
    /// Delegated only: the roles a token may carry, as PSU spells them.
    pub grant_roles: Option<Vec<String>>,
}

/// Which of PSU's grant calls the gateway makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// `GET grant_path` with the user's own session cookies.
    Session,
    /// `POST grant_path` with the granting token, naming the user.
    Delegated,
}

impl Credential {
    pub fn per_user(&self) -> Option<&PerUser> {
        match &self.mode {
            CredentialMode::PerUser(per_user) => Some(per_user),
            CredentialMode::Shared => None,
        }
    }
}

impl Credential {
    /// The header value to inject for `token`, marked sensitive so hyper's
    /// HPACK never indexes it and `Debug` of the header map hides it.
    pub fn header_value_for(&self, token: &Secret) -> HeaderValue {
        let text = if self.scheme.is_empty() {
            token.expose().to_owned()
        } else {
            format!("{} {}", self.scheme, token.expose())
        };
        // Validation guarantees visible ASCII for scheme and token.
        let mut value =
            HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

#[derive(Debug, Clone, Default)]
pub struct Csrf {
    /// Normalised `scheme://host[:port]`; `None` means same-origin only.
    pub allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    pub trusted_proxies: Vec<IpNet>,
}

impl Forwarding {
    /// `ip` is in `trusted_proxies`; an IPv4-mapped IPv6 address counts as
    /// the IPv4 address it carries.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub addr: SocketAddr,
    pub allow_remote: bool,
    /// How often `/readyz` learns whether PSU answers.
    pub probe_interval: Duration,
}

/// Reads and validates a config file. Nothing here opens a socket.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            position: None,
            key: "(file)".to_owned(),
            message: format!("cannot read config: {e}"),
        }])
    })?;
    load_str(path, &source)
}

/// Validates config text as if read from `path` (relative paths resolve
/// against its directory).
pub fn load_str(path: &Path, source: &str) -> Result<Loaded, ConfigErrors> {
    validate::validate(path, source)
}
