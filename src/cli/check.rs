//! The human summary `psu-gateway check` prints: the effective route table.

use std::fmt::Write;

use crate::config::{Config, Grant, TokenSource, UpstreamProtocol};
use crate::rules::routes::{ClientCredentials, Route};

pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let hosts = if config.listen.hostnames.is_empty() {
        "any host".to_owned()
    } else {
        config.listen.hostnames.join(", ")
    };
    let protocol = match config.upstream.protocol {
        UpstreamProtocol::Http1 => "http1",
        UpstreamProtocol::H2 => "h2",
    };
    let balancers = if config.listen.proxy_protocol {
        let trusted = &config.forwarding.trusted_proxies;
        let nets: Vec<String> = trusted.iter().map(ToString::to_string).collect();
        format!("; PROXY protocol from {}", nets.join(", "))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "listen    https://{} ({hosts}{balancers})",
        config.listen.addr
    );
    let _ = writeln!(
        out,
        "upstream  {}://{} ({protocol})",
        config.upstream.scheme, config.upstream.authority
    );
    if let Some(c) = &config.credential {
        // Name the key, not its value: an operator may have pasted the token there.
        let source = c.token.as_ref().map(|t| match t.source {
            TokenSource::File(_) => "credential.token_file",
            TokenSource::Env(_) => "credential.token_env",
        });
        let line = match (c.per_user(), source) {
            (None, Some(source)) => format!("shared: <token from {source}>"),
            (None, None) => "shared: <no token>".to_owned(),
            (Some(p), source) => {
                let how = match p.grant {
                    Grant::Session => {
                        "granted by PSU to the signed-in user's own session".to_owned()
                    }
                    Grant::Delegated => format!(
                        "granted with the token from {} for the signed-in user, roles {}",
                        source.unwrap_or("<none>"),
                        p.grant_roles
                            .as_ref()
                            .map_or_else(|| "the user's own".to_owned(), |r| r.join(", "))
                    ),
                };
                format!(
                    "per-user: each user's own token, {how}, via {} {}, reused up to {}",
                    match p.grant {
                        Grant::Session => "GET",
                        Grant::Delegated => "POST",
                    },
                    p.grant_path,
                    crate::duration::format_duration(p.token_ttl)
                )
            }
        };
        let _ = writeln!(out, "inject    {}: {} <{line}>", c.header, c.scheme);
    }
    let _ = writeln!(out, "routes (an exact path beats any prefix, a longer prefix beats a shorter one; no match -> 404):");
    let _ = writeln!(
        out,
        "  {:<20} {:<40} {:<16} {:<8} {:<20} client credentials",
        "name", "match", "methods", "access", "roles"
    );
    let mut routes: Vec<&Route> = config.routes.routes().iter().collect();
    routes.sort_by_key(|r| (r.pattern.to_string().to_ascii_lowercase(), r.name.clone()));
    for r in routes {
        let methods = r.methods.as_ref().map_or_else(
            || "any".to_owned(),
            |m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","),
        );
        let roles = if r.roles.is_empty() {
            "-".to_owned()
        } else {
            r.roles.join(",")
        };
        let creds = match r.client_credentials {
            ClientCredentials::Strip => "strip",
            ClientCredentials::Forward => "forward",
        };
        let _ = writeln!(
            out,
            "  {:<20} {:<40} {:<16} {:<8} {:<20} {creds}",
            r.name,
            r.pattern.to_string(),
            methods,
            r.access.as_str(),
            roles
        );
    }
    out
}
