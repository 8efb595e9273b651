//! The sections that face clients and operators: listen, tls, limits, csrf,
//! forwarding, admin.

use std::time::Duration;

use http::header::HeaderValue;

use super::Validator;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::raw::{self, RawConfig, S};
use crate::config::tls;
use crate::config::{
    Admin, Csrf, Forwarding, Limits, Listen, LogFile, PfxPassword, Tls, TlsSource, TlsVersion,
};

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

    pub(super) fn tls(&mut self, table: &S<raw::RawTls>) -> Option<Tls> {
        let raw = table.get_ref();
        let material = self.tls_material(table);
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
        let (source, certs, key) = material?;
        let tls = Tls {
            source,
            certs,
            key,
            min_version,
            hsts,
        };
        if let Err(e) = tls::server_config(&tls) {
            match (&raw.key, &raw.pfx) {
                (Some(key), _) => {
                    self.err(key, "tls.key", format!("cannot be used with tls.cert: {e}"))
                }
                (None, Some(pfx)) => self.err(
                    pfx,
                    "tls.pfx",
                    format!("its key cannot be used with its certificate: {e}"),
                ),
                (None, None) => {}
            }
            return None;
        }
        Some(tls)
    }

    /// `cert` + `key`, or `pfx` with its password: exactly one of the two.
    fn tls_material(
        &mut self,
        table: &S<raw::RawTls>,
    ) -> Option<(
        TlsSource,
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    )> {
        let raw = table.get_ref();
        if raw.pfx.is_none() {
            let password = [
                (&raw.pfx_password_file, "tls.pfx_password_file"),
                (&raw.pfx_password_env, "tls.pfx_password_env"),
            ];
            for (value, key) in password {
                if let Some(value) = value {
                    self.err(value, key, "only applies to tls.pfx");
                }
            }
        }
        match (&raw.cert, &raw.key, &raw.pfx) {
            (Some(cert), Some(key), None) => {
                let cert_path = self.resolve(cert.get_ref());
                let key_path = self.resolve(key.get_ref());
                let certs = tls::read_certs(&cert_path).map_err(|e| self.err(cert, "tls.cert", e));
                let key = tls::read_key(&key_path).map_err(|e| self.err(key, "tls.key", e));
                let source = TlsSource::Pem {
                    cert: cert_path,
                    key: key_path,
                };
                Some((source, certs.ok()?, key.ok()?))
            }
            (None, None, Some(pfx)) => {
                let password = self.pfx_password(raw)?;
                let path = self.resolve(pfx.get_ref());
                let read =
                    tls::pfx_password(&password).and_then(|secret| tls::read_pfx(&path, &secret));
                let (certs, key) = read.map_err(|e| self.err(pfx, "tls.pfx", e)).ok()?;
                Some((TlsSource::Pfx { path, password }, certs, key))
            }
            (_, _, Some(pfx)) => {
                self.err(pfx, "tls.pfx", "set either cert + key or pfx, not both");
                None
            }
            (Some(cert), None, None) => {
                self.err(
                    cert,
                    "tls.cert",
                    "needs tls.key beside it (or use tls.pfx instead)",
                );
                None
            }
            (None, Some(key), None) => {
                self.err(
                    key,
                    "tls.key",
                    "needs tls.cert beside it (or use tls.pfx instead)",
                );
                None
            }
            (None, None, None) => {
                self.err(table, "tls", "needs cert + key (PEM) or pfx (PKCS#12)");
                None
            }
        }
    }

    fn pfx_password(&mut self, raw: &raw::RawTls) -> Option<PfxPassword> {
        match (&raw.pfx_password_file, &raw.pfx_password_env) {
            (Some(file), Some(_)) => {
                self.err(
                    file,
                    "tls.pfx_password_file",
                    "set at most one of pfx_password_file and pfx_password_env",
                );
                None
            }
            (Some(file), None) => Some(PfxPassword::File(self.resolve(file.get_ref()))),
            (None, Some(var)) => {
                if std::env::var_os(var.get_ref()).is_none() {
                    self.err(
                        var,
                        "tls.pfx_password_env",
                        format!("environment variable {} is not set", var.get_ref()),
                    );
                    return None;
                }
                Some(PfxPassword::Env(var.get_ref().clone()))
            }
            (None, None) => Some(PfxPassword::Empty),
        }
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

    /// `[log]`: `file` rotated daily, `keep` rotated files.
    pub(super) fn log(&mut self, table: &S<raw::RawLog>) -> Option<LogFile> {
        let raw = table.get_ref();
        let keep = self.integer(&raw.keep, "log.keep", 14, (1, 10_000)) as usize;
        let Some(file) = &raw.file else {
            if let Some(keep) = &raw.keep {
                self.err(keep, "log.keep", "only applies with log.file");
            }
            return None;
        };
        let path = self.resolve(file.get_ref());
        let directory_only = file.get_ref().ends_with(['/', '\\']);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('.') && !directory_only);
        let (Some(name), Some(directory)) = (name, path.parent()) else {
            self.err(
                file,
                "log.file",
                "expected a file path such as \"logs/psu-gateway.log\"",
            );
            return None;
        };
        let (prefix, suffix) = match name.rsplit_once('.') {
            Some((stem, ext)) => (stem.to_owned(), Some(ext.to_owned())),
            None => (name.to_owned(), None),
        };
        Some(LogFile {
            directory: directory.to_path_buf(),
            prefix,
            suffix,
            keep,
        })
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
