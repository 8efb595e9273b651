//! The sections about PSU: upstream, session (introspection), credential (the app token).

use std::time::Duration;

use http::header::HeaderName;

use super::Validator;
use crate::config::raw::{self, S};
use crate::config::tls;
use crate::config::{CookieShape, Session, Upstream, UpstreamProtocol, WindowsAuth};
use crate::rate::Rate;

/// `session.miss_rate` when absent: 20 new cookies a second per client
/// address is far beyond what one person signing in causes.
const DEFAULT_MISS_RATE: Rate = Rate {
    count: std::num::NonZeroU32::new(20).unwrap(),
    per: Duration::from_secs(1),
};

impl Validator<'_> {
    pub(super) fn upstream(&mut self, raw: &raw::RawUpstream) -> Option<Upstream> {
        let url = parse_upstream_url(raw.url.get_ref())
            .map_err(|e| self.err(&raw.url, "upstream.url", e));
        let protocols = [
            ("http1", UpstreamProtocol::Http1),
            ("h2", UpstreamProtocol::H2),
        ];
        let protocol = raw
            .protocol
            .as_ref()
            .and_then(|p| self.one_of(p, "upstream.protocol", &protocols))
            .unwrap_or(UpstreamProtocol::Http1);
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
        let max_inflight = self.integer(
            &raw.max_inflight,
            "upstream.max_inflight",
            512,
            (1, 1_000_000),
        ) as usize;
        let queue_timeout = self.duration(
            &raw.queue_timeout,
            "upstream.queue_timeout",
            Duration::from_secs(2),
        );
        let windows_auth = raw
            .windows_auth
            .as_ref()
            .and_then(|w| {
                let choices = [("pin", WindowsAuth::Pin), ("off", WindowsAuth::Off)];
                self.one_of(w, "upstream.windows_auth", &choices)
            })
            .unwrap_or(WindowsAuth::Pin);
        let max_pinned =
            self.integer(&raw.max_pinned, "upstream.max_pinned", 1000, (1, 1_000_000)) as usize;
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
            max_inflight,
            queue_timeout,
            windows_auth,
            max_pinned,
        })
    }

    pub(super) fn session(&mut self, raw: &raw::RawSession) -> Option<Session> {
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
            Some(p) => self.normalized_path(p, "session.introspect_path", "/api/v1/accessible"),
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
            cookie_shape: match &raw.cookie_shape {
                None => CookieShape::AspNet,
                Some(text) => self
                    .one_of(
                        text,
                        "session.cookie_shape",
                        &[("aspnet", CookieShape::AspNet), ("any", CookieShape::Any)],
                    )
                    .unwrap_or(CookieShape::AspNet),
            },
            max_inflight_introspections: self.integer(
                &raw.max_inflight_introspections,
                "session.max_inflight_introspections",
                32,
                (1, 100_000),
            ) as usize,
            miss_rate: self
                .rate(&raw.miss_rate, "session.miss_rate")
                .unwrap_or(DEFAULT_MISS_RATE),
        })
    }

    pub(super) fn pointer(&mut self, value: &Option<S<String>>, key: &str) -> Option<String> {
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

/// RFC 9110 token characters.
pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(super) fn is_reserved_header(name: &HeaderName) -> bool {
    crate::rules::headers::is_hop_by_hop(name)
        || matches!(
            name.as_str(),
            "host" | "cookie" | "content-length" | "forwarded" | "x-real-ip" | "x-request-id"
        )
        || name.as_str().starts_with("x-forwarded-")
}
