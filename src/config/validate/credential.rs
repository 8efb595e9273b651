//! The `[credential]` section: the injected header, the operator's token,
//! and per-user mode with its grant settings.

use std::time::Duration;

use http::header::HeaderName;

use super::psu::{is_reserved_header, is_token};
use super::Validator;
use crate::config::raw::{self, S};
use crate::config::{AppToken, Credential, CredentialMode, Grant, PerUser, TokenSource};
use crate::secret::Secret;

impl Validator<'_> {
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
                self.normalized_path(p, "credential.grant_path", "/api/v1/apptoken/grant")?
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
