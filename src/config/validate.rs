//! Turns a [`RawConfig`] into a [`Config`], collecting every error with its span.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::Method;

use super::error::{ConfigErrors, ErrorSink};
use super::raw::{self, RawConfig, S};
use super::*;
use crate::duration::parse_duration;
use crate::routes::{Access, ClientCredentials, PathPattern, Route, RouteTable};
use crate::secret::Secret;
use crate::tls;

pub(crate) fn validate(file: &Path, source: &str) -> Result<Loaded, ConfigErrors> {
    let mut sink = ErrorSink::new(file, source);
    let raw: RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            sink.toml(&e);
            return Err(sink.finish());
        }
    };
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut v = Validator {
        sink,
        base,
        warnings: Vec::new(),
    };
    let listen = v.listen(raw.listen.get_ref());
    let tls = v.tls(raw.tls.get_ref());
    let limits = v.limits(&raw.limits);
    let upstream = v.upstream(raw.upstream.get_ref());
    let session = raw.session.as_ref().and_then(|s| v.session(s.get_ref()));
    let credential = raw.credential.as_ref().and_then(|c| v.credential(c));
    let csrf = v.csrf(&raw.csrf);
    let forwarding = v.forwarding(&raw.forwarding);
    v.proxy_protocol(&raw);
    let admin = raw.admin.as_ref().and_then(|a| v.admin(a.get_ref()));
    let routes = v.routes(&raw, &Sections::of(&raw));
    match (listen, tls, upstream, routes) {
        (Some(listen), Some(tls), Some(upstream), Some(routes)) if v.sink.is_empty() => {
            let config = Config {
                source: file.to_path_buf(),
                listen,
                tls,
                limits,
                upstream,
                session,
                credential,
                csrf,
                forwarding,
                admin,
                routes,
            };
            let warnings = v.warnings.into_iter().chain(warnings(&config)).collect();
            Ok(Loaded { config, warnings })
        }
        _ => Err(v.sink.finish()),
    }
}

/// Which optional sections the file has, valid or not: a route is not
/// blamed for a section that exists but failed its own checks.
struct Sections {
    session: bool,
    roles_pointer: bool,
    credential: bool,
}

impl Sections {
    fn of(raw: &RawConfig) -> Self {
        Self {
            session: raw.session.is_some(),
            roles_pointer: raw
                .session
                .as_ref()
                .is_some_and(|s| s.get_ref().roles_pointer.is_some()),
            credential: raw.credential.is_some(),
        }
    }
}

struct Validator<'a> {
    sink: ErrorSink<'a>,
    base: PathBuf,
    warnings: Vec<String>,
}

impl Validator<'_> {
    fn err<T>(&mut self, value: &S<T>, key: &str, message: impl Into<String>) {
        self.sink.at(Some(value.span()), key, message);
    }

    /// Joins lexically, so `../certs` works even when a directory on the
    /// way does not exist (the demo's embedded config).
    fn resolve(&self, path: &str) -> PathBuf {
        let mut out = PathBuf::new();
        for part in self.base.join(path).components() {
            match part {
                std::path::Component::ParentDir if out.file_name().is_some() => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    }

    fn duration(&mut self, value: &Option<S<String>>, key: &str, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        match parse_duration(value.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.err(value, key, e.to_string());
                default
            }
        }
    }

    fn positive_duration(
        &mut self,
        value: &Option<S<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let d = self.duration(value, key, default);
        if let Some(value) = value.as_ref().filter(|_| d.is_zero()) {
            self.err(value, key, "must be greater than zero");
            return default;
        }
        d
    }

    fn integer(
        &mut self,
        value: &Option<S<i64>>,
        key: &str,
        default: u64,
        range: (u64, u64),
    ) -> u64 {
        let Some(value) = value else { return default };
        match u64::try_from(*value.get_ref()) {
            Ok(n) if (range.0..=range.1).contains(&n) => n,
            _ => {
                self.err(
                    value,
                    key,
                    format!("must be an integer from {} to {}", range.0, range.1),
                );
                default
            }
        }
    }

    fn socket_addr(&mut self, value: &S<String>, key: &str) -> Option<SocketAddr> {
        let parsed = value.get_ref().parse::<SocketAddr>();
        if parsed.is_err() {
            self.err(
                value,
                key,
                "expected an IP address and port such as \"0.0.0.0:8443\" or \"[::]:8443\"",
            );
        }
        parsed.ok()
    }

    fn listen(&mut self, raw: &raw::RawListen) -> Option<Listen> {
        let addr = self.socket_addr(&raw.addr, "listen.addr");
        let mut hostnames = Vec::new();
        for name in &raw.hostnames {
            let lower = name.get_ref().to_ascii_lowercase();
            if is_hostname(&lower) {
                hostnames.push(lower);
            } else {
                self.err(
                    name,
                    "listen.hostnames",
                    "expected a host name without scheme, port or path",
                );
            }
        }
        Some(Listen {
            addr: addr?,
            proxy_protocol: raw.proxy_protocol.as_ref().is_some_and(|on| *on.get_ref()),
            hostnames,
        })
    }

    /// A PROXY header is accepted only from `forwarding.trusted_proxies`:
    /// with none, every connection would be refused.
    fn proxy_protocol(&mut self, raw: &RawConfig) {
        let on = raw.listen.get_ref().proxy_protocol.as_ref();
        let on = on.filter(|on| *on.get_ref());
        if let Some(on) = on.filter(|_| raw.forwarding.trusted_proxies.is_empty()) {
            self.err(
                on,
                "listen.proxy_protocol",
                "needs forwarding.trusted_proxies: only those addresses (the load balancers) may send the PROXY header",
            );
        }
    }

    fn tls(&mut self, raw: &raw::RawTls) -> Option<Tls> {
        let cert_path = self.resolve(raw.cert.get_ref());
        let key_path = self.resolve(raw.key.get_ref());
        let certs = tls::read_certs(&cert_path).map_err(|e| self.err(&raw.cert, "tls.cert", e));
        let key = tls::read_key(&key_path).map_err(|e| self.err(&raw.key, "tls.key", e));
        let min_version = match raw.min_version.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "1.2")) => TlsVersion::V1_2,
            Some((_, "1.3")) => TlsVersion::V1_3,
            Some((v, _)) => {
                self.err(v, "tls.min_version", "must be \"1.2\" or \"1.3\"");
                TlsVersion::V1_2
            }
        };
        let hsts = raw.hsts.as_ref().and_then(|h| {
            let value = HeaderValue::from_str(h.get_ref())
                .ok()
                .filter(|_| !h.get_ref().is_empty());
            if value.is_none() {
                self.err(
                    h,
                    "tls.hsts",
                    "must be a non-empty header value such as \"max-age=63072000\"",
                );
            }
            value
        });
        let tls = Tls {
            cert_path,
            key_path,
            certs: certs.ok()?,
            key: key.ok()?,
            min_version,
            hsts,
        };
        if let Err(e) = tls::server_config(&tls) {
            self.err(
                &raw.key,
                "tls.key",
                format!("cannot be used with tls.cert: {e}"),
            );
            return None;
        }
        Some(tls)
    }

    fn limits(&mut self, raw: &raw::RawLimits) -> Limits {
        let d = Limits::default();
        Limits {
            handshake_timeout: self.positive_duration(
                &raw.handshake_timeout,
                "limits.handshake_timeout",
                d.handshake_timeout,
            ),
            header_timeout: self.positive_duration(
                &raw.header_timeout,
                "limits.header_timeout",
                d.header_timeout,
            ),
            idle_timeout: self.positive_duration(
                &raw.idle_timeout,
                "limits.idle_timeout",
                d.idle_timeout,
            ),
            body_timeout: self.positive_duration(
                &raw.body_timeout,
                "limits.body_timeout",
                d.body_timeout,
            ),
            upstream_timeout: self.positive_duration(
                &raw.upstream_timeout,
                "limits.upstream_timeout",
                d.upstream_timeout,
            ),
            max_header_bytes: self.integer(
                &raw.max_header_bytes,
                "limits.max_header_bytes",
                32_768,
                (8192, 1 << 20),
            ) as usize,
            max_headers: self.integer(&raw.max_headers, "limits.max_headers", 100, (8, 10_000))
                as usize,
            max_body_bytes: self.integer(
                &raw.max_body_bytes,
                "limits.max_body_bytes",
                d.max_body_bytes,
                (0, u64::MAX >> 1),
            ),
            max_connections: self.integer(
                &raw.max_connections,
                "limits.max_connections",
                10_000,
                (1, 1_000_000),
            ) as usize,
            h2_max_concurrent_streams: self.integer(
                &raw.h2_max_concurrent_streams,
                "limits.h2_max_concurrent_streams",
                100,
                (1, 10_000),
            ) as u32,
            tunnel_idle_timeout: self.positive_duration(
                &raw.tunnel_idle_timeout,
                "limits.tunnel_idle_timeout",
                d.tunnel_idle_timeout,
            ),
            shutdown_grace: self.duration(
                &raw.shutdown_grace,
                "limits.shutdown_grace",
                d.shutdown_grace,
            ),
        }
    }

    fn upstream(&mut self, raw: &raw::RawUpstream) -> Option<Upstream> {
        let url = parse_upstream_url(raw.url.get_ref())
            .map_err(|e| self.err(&raw.url, "upstream.url", e));
        let protocol = match raw.protocol.as_ref().map(|p| (p, p.get_ref().as_str())) {
            None | Some((_, "http1")) => UpstreamProtocol::Http1,
            Some((_, "h2")) => UpstreamProtocol::H2,
            Some((p, _)) => {
                self.err(p, "upstream.protocol", "must be \"http1\" or \"h2\"");
                UpstreamProtocol::Http1
            }
        };
        let https = url
            .as_ref()
            .is_ok_and(|(scheme, _)| *scheme == http::uri::Scheme::HTTPS);
        let mut ca = Vec::new();
        if let Some(path) = &raw.ca {
            if !https {
                self.err(path, "upstream.ca", "only applies to an https upstream.url");
            } else if let Ok(certs) = tls::read_certs(&self.resolve(path.get_ref()))
                .map_err(|e| self.err(path, "upstream.ca", e))
            {
                ca = certs;
            }
        }
        let server_name = raw.server_name.as_ref().and_then(|name| {
            if !https {
                self.err(
                    name,
                    "upstream.server_name",
                    "only applies to an https upstream.url",
                );
                return None;
            }
            let valid = rustls_pki_types::ServerName::try_from(name.get_ref().as_str()).is_ok();
            if !valid {
                self.err(
                    name,
                    "upstream.server_name",
                    "not a valid DNS name or IP address",
                );
            }
            valid.then(|| name.get_ref().clone())
        });
        let connect_timeout = self.positive_duration(
            &raw.connect_timeout,
            "upstream.connect_timeout",
            Duration::from_secs(3),
        );
        let pool_idle_timeout = self.positive_duration(
            &raw.pool_idle_timeout,
            "upstream.pool_idle_timeout",
            Duration::from_secs(90),
        );
        let pool_max_idle = self.integer(
            &raw.pool_max_idle,
            "upstream.pool_max_idle",
            64,
            (0, 100_000),
        ) as usize;
        let (scheme, authority) = url.ok()?;
        Some(Upstream {
            scheme,
            authority,
            protocol,
            ca,
            server_name,
            connect_timeout,
            pool_idle_timeout,
            pool_max_idle,
            preserve_host: raw.preserve_host,
        })
    }

    fn session(&mut self, raw: &raw::RawSession) -> Option<Session> {
        let mut cookies = Vec::new();
        match &raw.cookies {
            Some(list) if list.get_ref().is_empty() => {
                self.err(list, "session.cookies", "must name at least one cookie")
            }
            Some(list) => {
                for name in list.get_ref() {
                    if is_token(name.get_ref()) && !cookies.contains(name.get_ref()) {
                        cookies.push(name.get_ref().clone());
                    } else {
                        self.err(name, "session.cookies", "not a valid, unique cookie name");
                    }
                }
            }
            None => cookies.push(".AspNetCore.Identity.Application".to_owned()),
        }
        let introspect_path = match &raw.introspect_path {
            None => Some(http::uri::PathAndQuery::from_static("/api/v1/accessible")),
            Some(p) => {
                let parsed = p
                    .get_ref()
                    .parse::<http::uri::PathAndQuery>()
                    .ok()
                    .filter(|pq| {
                        pq.path().starts_with('/')
                            && crate::path::normalize_path(pq.path()).as_deref() == Ok(pq.path())
                    });
                if parsed.is_none() {
                    self.err(
                        p,
                        "session.introspect_path",
                        "must be a normalized absolute path such as \"/api/v1/accessible\"",
                    );
                }
                parsed
            }
        };
        let identity_pointer = self.pointer(&raw.identity_pointer, "session.identity_pointer");
        let roles_pointer = self.pointer(&raw.roles_pointer, "session.roles_pointer");
        Some(Session {
            cookies,
            introspect_path: introspect_path?,
            identity_pointer,
            roles_pointer,
            cache_ttl: self.duration(&raw.cache_ttl, "session.cache_ttl", Duration::from_secs(30)),
            negative_cache_ttl: self.duration(
                &raw.negative_cache_ttl,
                "session.negative_cache_ttl",
                Duration::from_secs(5),
            ),
            cache_max_entries: self.integer(
                &raw.cache_max_entries,
                "session.cache_max_entries",
                100_000,
                (1, 100_000_000),
            ),
            introspect_timeout: self.positive_duration(
                &raw.introspect_timeout,
                "session.introspect_timeout",
                Duration::from_secs(2),
            ),
        })
    }

    fn pointer(&mut self, value: &Option<S<String>>, key: &str) -> Option<String> {
        let value = value.as_ref()?;
        let text = value.get_ref();
        if text.is_empty() || text.starts_with('/') {
            Some(text.clone())
        } else {
            self.err(
                value,
                key,
                "a JSON pointer is empty or starts with '/', e.g. \"/roles\"",
            );
            None
        }
    }

    fn credential(&mut self, raw: &S<raw::RawCredential>) -> Option<Credential> {
        let c = raw.get_ref();
        let header = match &c.header {
            None => Some(HeaderName::from_static("x-psu-authorization")),
            Some(h) => {
                let name = HeaderName::from_bytes(h.get_ref().as_bytes())
                    .ok()
                    .filter(|n| !is_reserved_header(n) && !n.as_str().contains('_'));
                if name.is_none() {
                    self.err(h, "credential.header", "must be a valid header name without '_' that is not hop-by-hop, Host, Cookie or an X-Forwarded-* header");
                }
                name
            }
        };
        let scheme = match &c.scheme {
            None => "Bearer".to_owned(),
            Some(s) if s.get_ref().is_empty() || is_token(s.get_ref()) => s.get_ref().clone(),
            Some(s) => {
                self.err(
                    s,
                    "credential.scheme",
                    "must be an auth scheme token such as \"Bearer\", or \"\" for the bare token",
                );
                String::new()
            }
        };
        let (source, token) = match (&c.token_file, &c.token_env) {
            (Some(file), None) => {
                let path = self.resolve(file.get_ref());
                let token = std::fs::read_to_string(&path)
                    // Never echo the value: an operator may have pasted the token here.
                    .map_err(|e| format!("cannot read the file named here: {e}"));
                (
                    TokenSource::File(path),
                    token
                        .map_err(|e| self.err(file, "credential.token_file", e))
                        .ok()
                        .and_then(|t| self.token(t, file, "credential.token_file")),
                )
            }
            (None, Some(var)) => {
                let token = std::env::var(var.get_ref()).map_err(|_| {
                    "the environment variable named here is not set or not valid UTF-8".to_owned()
                });
                (
                    TokenSource::Env(var.get_ref().clone()),
                    token
                        .map_err(|e| self.err(var, "credential.token_env", e))
                        .ok()
                        .and_then(|t| self.token(t, var, "credential.token_env")),
                )
            }
            _ => {
                self.err(raw, "credential", "set exactly one of token_file or token_env (the token is never written in this file)");
                return None;
            }
        };
        Some(Credential {
            header: header?,
            scheme,
            source,
            token: token?,
        })
    }

    /// Checks a token without ever putting its text in a message.
    fn token(&mut self, text: String, at: &S<String>, key: &str) -> Option<Secret> {
        crate::token::parse_token(&text)
            .map_err(|e| self.err(at, key, e.to_string()))
            .ok()
    }

    fn csrf(&mut self, raw: &raw::RawCsrf) -> Csrf {
        let allowed_origins = raw.allowed_origins.as_ref().map(|list| {
            list.iter()
                .filter_map(|o| {
                    let origin = crate::csrf::normalize_origin(o.get_ref());
                    if origin.is_none() {
                        self.err(o, "csrf.allowed_origins", "expected an origin such as \"https://psu.example.com\" (scheme and host, optional port, no path)");
                    }
                    origin
                })
                .collect()
        });
        Csrf { allowed_origins }
    }

    fn forwarding(&mut self, raw: &raw::RawForwarding) -> Forwarding {
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .filter_map(|cidr| {
                let text = cidr.get_ref();
                let net = text
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                if net.is_err() {
                    self.err(
                        cidr,
                        "forwarding.trusted_proxies",
                        "expected a CIDR such as \"10.0.0.0/8\" or an IP address",
                    );
                }
                net.ok()
            })
            .collect();
        Forwarding { trusted_proxies }
    }

    fn admin(&mut self, raw: &raw::RawAdmin) -> Option<Admin> {
        let addr = self.socket_addr(&raw.addr, "admin.addr")?;
        if !addr.ip().is_loopback() && !raw.allow_remote {
            self.err(&raw.addr, "admin.addr", "is not a loopback address; set admin.allow_remote = true to expose the admin listener");
            return None;
        }
        let probe_interval = self.positive_duration(
            &raw.probe_interval,
            "admin.probe_interval",
            Duration::from_secs(5),
        );
        Some(Admin {
            addr,
            allow_remote: raw.allow_remote,
            probe_interval,
        })
    }

    fn routes(&mut self, raw: &RawConfig, sections: &Sections) -> Option<RouteTable> {
        if raw.route.is_empty() {
            self.sink.at(
                None,
                "route",
                "at least one [[route]] is required (there is no implicit catch-all)",
            );
            return None;
        }
        let mut routes = Vec::new();
        let mut spans = Vec::new();
        for (index, r) in raw.route.iter().enumerate() {
            let key = format!("route[{index}]");
            if let Some(route) = self.route(r, &key, sections) {
                let duplicate = routes.iter().any(|other: &Route| other.name == route.name);
                if let Some(name) = r.get_ref().name.as_ref().filter(|_| duplicate) {
                    self.err(
                        name,
                        &format!("{key}.name"),
                        format!("duplicate route name {:?}", route.name),
                    );
                }
                routes.push(route);
                let pattern = match (&r.get_ref().path, &r.get_ref().prefix) {
                    (Some(p), _) => (p.span(), format!("{key}.path")),
                    (None, Some(p)) => (p.span(), format!("{key}.prefix")),
                    (None, None) => (r.span(), key),
                };
                spans.push(pattern);
            }
        }
        if routes.len() != raw.route.len() {
            return None;
        }
        match RouteTable::new(routes) {
            Ok(table) => Some(table),
            Err(conflicts) => {
                for c in conflicts {
                    let (span, key) = spans[c.second].clone();
                    self.sink.at(
                        Some(span),
                        key,
                        format!(
                            "ties with {} (same path or prefix with overlapping methods)",
                            spans[c.first].1
                        ),
                    );
                }
                None
            }
        }
    }

    fn route(&mut self, r: &S<raw::RawRoute>, key: &str, sections: &Sections) -> Option<Route> {
        let raw = r.get_ref();
        let before = self.errors_marker();
        let name = match &raw.name {
            Some(n) if is_route_name(n.get_ref()) => n.get_ref().clone(),
            Some(n) => {
                self.err(n, &format!("{key}.name"), "must match [a-z0-9_-]+");
                String::new()
            }
            None => {
                self.err(r, &format!("{key}.name"), "is required");
                String::new()
            }
        };
        let pattern = match (&raw.path, &raw.prefix) {
            (Some(p), None) => self
                .route_path(p, &format!("{key}.path"))
                .map(PathPattern::Exact),
            (None, Some(p)) => self
                .route_path(p, &format!("{key}.prefix"))
                .map(PathPattern::Prefix),
            _ => {
                self.err(r, key, "set exactly one of path or prefix");
                None
            }
        };
        let methods = raw.methods.as_ref().map(|list| {
            list.iter()
                .filter_map(|m| {
                    let text = m.get_ref();
                    let method = Method::from_bytes(text.as_bytes()).ok().filter(|_| {
                        !text.is_empty() && text.bytes().all(|b| b.is_ascii_uppercase())
                    });
                    if method.is_none() {
                        self.err(
                            m,
                            &format!("{key}.methods"),
                            "methods are upper-case tokens such as \"GET\"",
                        );
                    }
                    method
                })
                .collect::<Vec<_>>()
        });
        if raw.methods.as_ref().is_some_and(Vec::is_empty) {
            self.err(
                r,
                &format!("{key}.methods"),
                "an empty methods list matches nothing; remove it to allow any method",
            );
        }
        let access = match raw.access.as_ref().map(|a| (a, a.get_ref().as_str())) {
            Some((_, "public")) => Some(Access::Public),
            Some((_, "session")) => Some(Access::Session),
            Some((_, "inject")) => Some(Access::Inject),
            Some((_, "deny")) => Some(Access::Deny),
            Some((a, _)) => {
                self.err(
                    a,
                    &format!("{key}.access"),
                    "must be \"public\", \"session\", \"inject\" or \"deny\"",
                );
                None
            }
            None => {
                self.err(r, &format!("{key}.access"), "is required");
                None
            }
        };
        let access = access?;
        if access.needs_session() && !sections.session {
            self.err(
                r,
                &format!("{key}.access"),
                format!("\"{}\" needs a [session] section", access.as_str()),
            );
        }
        if access == Access::Inject && !sections.credential {
            self.err(
                r,
                &format!("{key}.access"),
                "\"inject\" needs a [credential] section",
            );
        }
        let roles = self.route_roles(raw, key, access, sections);
        let client_credentials = match (
            raw.client_credentials
                .as_ref()
                .map(|c| (c, c.get_ref().as_str())),
            access,
        ) {
            (Some((_, "strip")), _) => ClientCredentials::Strip,
            (Some((c, "forward")), Access::Inject) => {
                self.err(
                    c,
                    &format!("{key}.client_credentials"),
                    "an inject route always strips client credentials",
                );
                ClientCredentials::Strip
            }
            (Some((_, "forward")), _) => ClientCredentials::Forward,
            (Some((c, _)), _) => {
                self.err(
                    c,
                    &format!("{key}.client_credentials"),
                    "must be \"strip\" or \"forward\"",
                );
                ClientCredentials::Strip
            }
            (None, Access::Public) => ClientCredentials::Forward,
            (None, _) => ClientCredentials::Strip,
        };
        if self.errors_marker() != before {
            return None;
        }
        Some(Route {
            name,
            pattern: pattern?,
            methods,
            access,
            roles,
            client_credentials,
        })
    }

    fn route_roles(
        &mut self,
        raw: &raw::RawRoute,
        key: &str,
        access: Access,
        sections: &Sections,
    ) -> Vec<String> {
        let Some(roles) = &raw.roles else {
            return Vec::new();
        };
        let key = format!("{key}.roles");
        if !access.needs_session() {
            self.err(
                roles,
                &key,
                format!("roles do not apply to \"{}\" routes", access.as_str()),
            );
        } else if sections.session && !sections.roles_pointer {
            self.err(
                roles,
                &key,
                "roles need session.roles_pointer to read the user's roles",
            );
        }
        if roles.get_ref().is_empty() {
            self.err(
                roles,
                &key,
                "an empty roles list would admit nobody; remove it to admit any signed-in user",
            );
        }
        roles
            .get_ref()
            .iter()
            .map(|r| r.get_ref().to_lowercase())
            .collect()
    }

    fn route_path(&mut self, value: &S<String>, key: &str) -> Option<String> {
        let text = value.get_ref();
        let problem = match crate::path::normalize_path(text) {
            Err(e) => format!("must start with '/' and be a normalized path: {e}"),
            Ok(normal) if normal != *text => format!("not in normalized form; write {normal:?}"),
            Ok(normal) => match crate::path::route_key(&normal) {
                Ok(_) => return Some(normal),
                Err(e) => format!("cannot be matched unambiguously: {e}"),
            },
        };
        self.err(value, key, problem);
        None
    }

    fn errors_marker(&self) -> usize {
        self.sink.len()
    }
}

fn parse_upstream_url(text: &str) -> Result<(http::uri::Scheme, http::uri::Authority), String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("not a URL: {e}"))?;
    let scheme = uri.scheme().cloned().ok_or("expected scheme://host:port")?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err("the scheme must be http or https".to_owned());
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or("expected scheme://host:port")?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not allowed".to_owned());
    }
    let path_ok = uri
        .path_and_query()
        .is_none_or(|pq| pq.as_str() == "/" || pq.as_str().is_empty());
    if !path_ok {
        return Err("no path or query: the upstream URL is scheme://host:port only".to_owned());
    }
    Ok((scheme, authority))
}

fn is_hostname(name: &str) -> bool {
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_route_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// RFC 9110 token characters.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_reserved_header(name: &HeaderName) -> bool {
    crate::headers::is_hop_by_hop(name)
        || matches!(
            name.as_str(),
            "host" | "cookie" | "content-length" | "forwarded" | "x-real-ip" | "x-request-id"
        )
        || name.as_str().starts_with("x-forwarded-")
}

/// Settings that are allowed but deserve an operator's second look.
fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if config
        .credential
        .as_ref()
        .is_some_and(|c| c.header == http::header::AUTHORIZATION)
    {
        out.push("credential.header = \"Authorization\": IIS Windows authentication or another proxy in front of PSU may consume or strip it; X-PSU-Authorization is the header PSU documents for reverse proxies".to_owned());
    }
    for route in config.routes.routes() {
        if let (Access::Inject, PathPattern::Prefix(p)) = (route.access, &route.pattern) {
            let segments = p.split('/').filter(|s| !s.is_empty()).count();
            if segments < 3 {
                out.push(format!("route {:?}: inject on prefix {p:?} covers more than one API path; the app token reaches every endpoint below it", route.name));
            }
        }
    }
    let host = config.upstream.authority.host();
    let loopback = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if config.upstream.scheme == http::uri::Scheme::HTTP && !loopback {
        out.push(format!("upstream.url is http to non-loopback host {host}: the app token and session cookies cross the network in clear; use https"));
    }
    out
}
