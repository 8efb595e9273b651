//! Turns a [`RawConfig`] into a [`Config`], collecting every error with its span.
//! The entry point and the checks every section shares are here; each
//! section's own checks are in `front` (listen, tls, limits, csrf,
//! forwarding, admin), `psu` (upstream, session), `credential` and `routes`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigErrors, ErrorSink};
use super::raw::{RawConfig, S};
use super::*;
use crate::duration::parse_duration;
use crate::rules::routes::{Access, PathPattern};

mod credential;
mod front;
mod psu;
mod routes;

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
    let tls = v.tls(&raw.tls);
    let limits = v.limits(&raw.limits);
    let upstream = v.upstream(raw.upstream.get_ref());
    let session = raw.session.as_ref().and_then(|s| v.session(s.get_ref()));
    let credential = raw.credential.as_ref().and_then(|c| v.credential(c));
    if let (Some(raw_credential), Some(credential)) = (&raw.credential, &credential) {
        v.per_user_needs(&raw, raw_credential, credential);
    }
    let csrf = v.csrf(&raw.csrf);
    let forwarding = v.forwarding(&raw.forwarding);
    v.proxy_protocol(&raw);
    let admin = raw.admin.as_ref().and_then(|a| v.admin(a.get_ref()));
    let log = raw.log.as_ref().and_then(|l| v.log(l));
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
                log,
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

    /// The value `text` names among `choices`, or an error listing them.
    fn one_of<T: Copy>(&mut self, text: &S<String>, key: &str, choices: &[(&str, T)]) -> Option<T> {
        if let Some((_, value)) = choices.iter().find(|(name, _)| name == text.get_ref()) {
            return Some(*value);
        }
        let quoted: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("\"{name}\""))
            .collect();
        let listed = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        self.err(text, key, format!("must be {listed}"));
        None
    }

    /// A rate such as `"20/s"`; `None` when absent or malformed (reported).
    fn rate(&mut self, value: &Option<S<String>>, key: &str) -> Option<crate::rate::Rate> {
        let value = value.as_ref()?;
        match crate::rate::parse_rate(value.get_ref()) {
            Ok(rate) => Some(rate),
            Err(e) => {
                self.err(value, key, e.to_string());
                None
            }
        }
    }

    /// A `path?query` whose path starts with '/' and is already in
    /// normalized form, as PSU endpoints the gateway calls must be.
    fn normalized_path(
        &mut self,
        value: &S<String>,
        key: &str,
        example: &str,
    ) -> Option<http::uri::PathAndQuery> {
        let parsed = value
            .get_ref()
            .parse::<http::uri::PathAndQuery>()
            .ok()
            .filter(|pq| {
                pq.path().starts_with('/')
                    && crate::rules::path::normalize_path(pq.path()).as_deref() == Ok(pq.path())
            });
        if parsed.is_none() {
            self.err(
                value,
                key,
                format!("must be a normalized absolute path such as \"{example}\""),
            );
        }
        parsed
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

    fn errors_marker(&self) -> usize {
        self.sink.len()
    }
}

/// Settings that are allowed but deserve an operator's second look.
fn warnings(config: &Config) -> Vec<String> {
    let mut out = crate::config::exposure::warnings(config);
    let http_proxies =
        !config.forwarding.trusted_proxies.is_empty() && !config.listen.proxy_protocol;
    if http_proxies && config.upstream.windows_auth == crate::config::WindowsAuth::Pin {
        out.push("forwarding.trusted_proxies with upstream.windows_auth = \"pin\": an HTTP proxy in front that carries several users' requests on one connection would share that connection's Windows (NTLM/Negotiate) identity between them; put only TCP (PROXY protocol) balancers in front, or set windows_auth = \"off\"".to_owned());
    }
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
    if let Some(per_user) = config.credential.as_ref().and_then(Credential::per_user) {
        if per_user.grant == Grant::Session {
            out.push(format!("credential.grant = \"session\": PSU picks the granted tokens' lifetime (its documentation shows a year), and a token the gateway drops (after token_ttl = {}, or on reload) stays valid in PSU until then; prefer grant = \"delegated\", which asks for Expiration = now + token_ttl", crate::duration::format_duration(per_user.token_ttl)));
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
