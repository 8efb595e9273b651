//! The route table: names, patterns, methods, access, roles and client credentials.

use http::Method;

use super::{Sections, Validator};
use crate::config::raw::{self, RawConfig, S};
use crate::rules::routes::{Access, ClientCredentials, PathPattern, Route, RouteTable};

impl Validator<'_> {
    pub(super) fn routes(&mut self, raw: &RawConfig, sections: &Sections) -> Option<RouteTable> {
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
        let accesses = [
            ("public", Access::Public),
            ("session", Access::Session),
            ("inject", Access::Inject),
            ("deny", Access::Deny),
        ];
        let access = match &raw.access {
            Some(a) => self.one_of(a, &format!("{key}.access"), &accesses),
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
        let credentials_key = format!("{key}.client_credentials");
        let choices = [
            ("strip", ClientCredentials::Strip),
            ("forward", ClientCredentials::Forward),
        ];
        let chosen = raw
            .client_credentials
            .as_ref()
            .map(|c| (c, self.one_of(c, &credentials_key, &choices)));
        let client_credentials = match (chosen, access) {
            (Some((c, Some(ClientCredentials::Forward))), Access::Inject) => {
                self.err(
                    c,
                    &credentials_key,
                    "an inject route always strips client credentials",
                );
                ClientCredentials::Strip
            }
            (Some((_, Some(chosen))), _) => chosen,
            // Refused above: strip, the safe side.
            (Some((_, None)), _) => ClientCredentials::Strip,
            (None, Access::Public) => ClientCredentials::Forward,
            (None, _) => ClientCredentials::Strip,
        };
        let rate_limit = self.rate(&raw.rate_limit, &format!("{key}.rate_limit"));
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
            rate_limit,
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
        let problem = match crate::rules::path::normalize_path(text) {
            Err(e) => format!("must start with '/' and be a normalized path: {e}"),
            Ok(normal) if normal != *text => format!("not in normalized form; write {normal:?}"),
            Ok(normal) => match crate::rules::path::route_key(&normal) {
                Ok(_) => return Some(normal),
                Err(e) => format!("cannot be matched unambiguously: {e}"),
            },
        };
        self.err(value, key, problem);
        None
    }
}

fn is_route_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}
