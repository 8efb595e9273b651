//! The sections about PSU: upstream, session (introspection), credential (the app token).

use std::time::Duration;

use http::header::HeaderName;

use super::Validator;
use crate::config::raw::{self, S};
use crate::config::tls;
use crate::config::{
    AppToken, CookieShape, Credential, CredentialMode, Grant, PerUser, Session, TokenSource,
    Upstream, UpstreamProtocol,
};
use crate::rate::Rate;

/// `session.miss_rate` when absent: 20 new cookies a second per client
/// address is far beyond what one person signing in causes.
const DEFAULT_MISS_RATE: Rate = Rate {
    count: std::num::NonZeroU32::new(20).unwrap(),
    per: Duration::from_secs(1),
};
use crate::secret::Secret;

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
            Some(p) => {
                let parsed = p
                    .get_ref()
                    .parse::<http::uri::PathAndQuery>()
                    .ok()
                    .filter(|pq| {
                        pq.path().starts_with('/')
                            && crate::rules::path::normalize_path(pq.path()).as_deref()
                                == Ok(pq.path())
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

    pub(super) fn credential(&mut self, raw: &S<raw::RawCredential>) -> Option<Credential> {
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
        let mode = self.credential_mode(raw);
        let wants_token = !matches!(
            &mode,
            Some(CredentialMode::PerUser(PerUser {
                grant: Grant::Session,
                ..
            }))
        );
        let (source, token) = match (&c.token_file, &c.token_env) {
            (None, None) if !wants_token => {
                return Some(Credential {
                    header: header?,
                    scheme,
                    token: None,
                    mode: mode?,
                })
            }
            (Some(_), _) | (_, Some(_)) if !wants_token => {
                self.err(raw, "credential", "grant = \"session\" uses no token of the gateway's own: remove token_file / token_env");
                return None;
            }
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
                let what = match mode {
                    Some(CredentialMode::PerUser(_)) => "grant = \"delegated\" needs the granting token: set exactly one of token_file or token_env (the token is never written in this file)",
                    _ => "set exactly one of token_file or token_env (the token is never written in this file)",
                };
                self.err(raw, "credential", what);
                return None;
            }
        };
        Some(Credential {
            header: header?,
            scheme,
            token: Some(AppToken {
                source,
                secret: token?,
            }),
            mode: mode?,
        })
    }

    /// What per-user mode needs from `[session]`: the user's name (the
    /// token is the user's, and cached under it) and, for a delegated grant
    /// without `grant_roles`, the user's roles.
    pub(super) fn per_user_needs(
        &mut self,
        raw: &raw::RawConfig,
        at: &S<raw::RawCredential>,
        credential: &Credential,
    ) {
        let Some(per_user) = credential.per_user() else {
            return;
        };
        let session = raw.session.as_ref().map(|s| s.get_ref());
        if session.is_some_and(|s| s.identity_pointer.is_none()) {
            self.err(at, "credential.mode", "per-user needs session.identity_pointer: the token is granted to, and cached for, the signed-in user by name");
        }
        if per_user.grant == Grant::Delegated
            && per_user.grant_roles.is_none()
            && session.is_some_and(|s| s.roles_pointer.is_none())
        {
            self.err(at, "credential.grant_roles", "a delegated grant gives the token the user's roles: set session.roles_pointer, or list grant_roles");
        }
    }

    /// `mode` and the per-user keys; the per-user keys are errors in shared mode.
    fn credential_mode(&mut self, raw: &S<raw::RawCredential>) -> Option<CredentialMode> {
        let c = raw.get_ref();
        let per_user = match &c.mode {
            None => false,
            Some(mode) => self
                .one_of(
                    mode,
                    "credential.mode",
                    &[("shared", false), ("per-user", true)],
                )
                .unwrap_or(false),
        };
        if !per_user {
            let keys = [
                ("grant", c.grant.as_ref().map(|v| v.span())),
                ("grant_path", c.grant_path.as_ref().map(|v| v.span())),
                ("token_pointer", c.token_pointer.as_ref().map(|v| v.span())),
                ("token_ttl", c.token_ttl.as_ref().map(|v| v.span())),
                ("grant_roles", c.grant_roles.as_ref().map(|v| v.span())),
            ];
            for (key, span) in keys {
                if let Some(span) = span {
                    self.sink.at(
                        Some(span),
                        format!("credential.{key}"),
                        "only applies with credential.mode = \"per-user\"",
                    );
                }
            }
            return Some(CredentialMode::Shared);
        }
        let grant = match &c.grant {
            None => Grant::Session,
            Some(g) => self.one_of(
                g,
                "credential.grant",
                &[("session", Grant::Session), ("delegated", Grant::Delegated)],
            )?,
        };
        let grant_path = match &c.grant_path {
            None => http::uri::PathAndQuery::from_static("/api/v1/apptoken/grant"),
            Some(p) => {
                let parsed = p
                    .get_ref()
                    .parse::<http::uri::PathAndQuery>()
                    .ok()
                    .filter(|pq| {
                        pq.path().starts_with('/')
                            && crate::rules::path::normalize_path(pq.path()).as_deref()
                                == Ok(pq.path())
                    });
                match parsed {
                    Some(pq) => pq,
                    None => {
                        self.err(
                            p,
                            "credential.grant_path",
                            "must be a normalized absolute path such as \"/api/v1/apptoken/grant\"",
                        );
                        return None;
                    }
                }
            }
        };
        let token_pointer = match &c.token_pointer {
            None => "/token".to_owned(),
            Some(p) => self.pointer(&Some(p.clone()), "credential.token_pointer")?,
        };
        let token_ttl = self.positive_duration(
            &c.token_ttl,
            "credential.token_ttl",
            Duration::from_secs(15 * 60),
        );
        let grant_roles = match (&c.grant_roles, grant) {
            (Some(roles), Grant::Session) => {
                self.err(roles, "credential.grant_roles", "only applies with grant = \"delegated\" (a session grant carries the user's own roles)");
                None
            }
            (Some(roles), Grant::Delegated) if roles.get_ref().is_empty() => {
                self.err(
                    roles,
                    "credential.grant_roles",
                    "must name at least one role, or be left out for all the user's roles",
                );
                None
            }
            (Some(roles), Grant::Delegated) => Some(
                roles
                    .get_ref()
                    .iter()
                    .map(|r| r.get_ref().clone())
                    .collect(),
            ),
            (None, _) => None,
        };
        Some(CredentialMode::PerUser(PerUser {
            grant,
            grant_path,
            token_pointer,
            token_ttl,
            grant_roles,
        }))
    }

    /// Checks a token without ever putting its text in a message.
    fn token(&mut self, text: String, at: &S<String>, key: &str) -> Option<Secret> {
        crate::config::token::parse_token(&text)
            .map_err(|e| self.err(at, key, e.to_string()))
            .ok()
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
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_reserved_header(name: &HeaderName) -> bool {
    crate::rules::headers::is_hop_by_hop(name)
        || matches!(
            name.as_str(),
            "host" | "cookie" | "content-length" | "forwarded" | "x-real-ip" | "x-request-id"
        )
        || name.as_str().starts_with("x-forwarded-")
}
