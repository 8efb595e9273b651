//! The sections that face clients and operators: listen, tls, limits, csrf,
//! forwarding, admin.

use std::time::Duration;

use http::header::HeaderValue;

use super::Validator;
use crate::config::raw::{self, RawConfig};
use crate::config::tls;
use crate::config::{Admin, Csrf, Forwarding, Limits, Listen, Tls, TlsVersion};

impl Validator<'_> {
    pub(super) fn listen(&mut self, raw: &raw::RawListen) -> Option<Listen> {
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
    pub(super) fn proxy_protocol(&mut self, raw: &RawConfig) {
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

    pub(super) fn tls(&mut self, raw: &raw::RawTls) -> Option<Tls> {
        let cert_path = self.resolve(raw.cert.get_ref());
        let key_path = self.resolve(raw.key.get_ref());
        let certs = tls::read_certs(&cert_path).map_err(|e| self.err(&raw.cert, "tls.cert", e));
        let key = tls::read_key(&key_path).map_err(|e| self.err(&raw.key, "tls.key", e));
        let versions = [("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)];
        let min_version = raw
            .min_version
            .as_ref()
            .and_then(|v| self.one_of(v, "tls.min_version", &versions))
            .unwrap_or(TlsVersion::V1_2);
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

    pub(super) fn limits(&mut self, raw: &raw::RawLimits) -> Limits {
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
            max_connections_per_client: self.integer(
                &raw.max_connections_per_client,
                "limits.max_connections_per_client",
                d.max_connections_per_client as u64,
                (1, 1_000_000),
            ) as usize,
        }
    }

    pub(super) fn csrf(&mut self, raw: &raw::RawCsrf) -> Csrf {
        let allowed_origins = raw.allowed_origins.as_ref().map(|list| {
            list.iter()
                .filter_map(|o| {
                    let origin = crate::rules::csrf::normalize_origin(o.get_ref());
                    if origin.is_none() {
                        self.err(o, "csrf.allowed_origins", "expected an origin such as \"https://psu.example.com\" (scheme and host, optional port, no path)");
                    }
                    origin
                })
                .collect()
        });
        Csrf { allowed_origins }
    }

    pub(super) fn forwarding(&mut self, raw: &raw::RawForwarding) -> Forwarding {
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

    pub(super) fn admin(&mut self, raw: &raw::RawAdmin) -> Option<Admin> {
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
